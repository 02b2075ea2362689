"""The contribution-status decision (pure) and its fan-out (with fake bureaus)."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

from adapters import (
    BusinessRejection,
    CallContext,
    Capability,
    ContributionMonth,
    Person,
    UpstreamServerError,
)
from gateway.registry import UpstreamSet
from gateway.services.contribution_status import (
    Window,
    add_months,
    check_contribution_status,
    decide,
    fetch_contributions,
    lookback_window,
    period_range,
    select_window,
)


def row(region, period, insurance_type="pension", status="paid", *, paid_on=None):
    paid = paid_on if paid_on is not None else (None if status == "unpaid" else dt.date(2024, 12, 1))
    return ContributionMonth(region, period, insurance_type, status, Decimal("1440.00"), Decimal("720.00"), paid)


def statuses(decision):
    return {(m.period, m.insurance_type): (m.status, m.region) for m in decision.months}


def codes(decision):
    return [(r.code, r.period, r.insurance_type, r.region) for r in decision.reasons]


# -- periods and windows --------------------------------------------------------------


def test_period_arithmetic_crosses_years():
    assert add_months("2024-01", -1) == "2023-12"
    assert add_months("2023-12", 13) == "2025-01"
    assert period_range("2024-11", "2025-02") == ["2024-11", "2024-12", "2025-01", "2025-02"]
    assert Window.ending("2024-02", 3) == Window("2023-12", "2024-02")
    assert "2024-01" in Window("2023-12", "2024-02") and "2024-03" not in Window("2023-12", "2024-02")


def test_the_lookback_is_36_months_ending_with_the_previous_month():
    assert lookback_window(dt.date(2026, 11, 22)) == Window("2023-11", "2026-10")
    assert lookback_window(dt.date(2026, 1, 1)) == Window("2023-01", "2025-12")


def test_the_window_ends_at_until_when_given():
    assert select_window([row("420100", "2024-10")], 3, "2024-07") == Window("2024-05", "2024-07")
    assert select_window([], 1, "2024-07") == Window("2024-07", "2024-07")


def test_the_window_ends_at_the_latest_month_any_bureau_holds():
    rows = [row("420100", "2024-10"), row("440100", "2025-02", status="unpaid"), row("430100", "2023-06")]
    assert select_window(rows, 3, None) == Window("2024-12", "2025-02")
    assert select_window(rows, 12, None) == Window("2024-03", "2025-02")


def test_no_records_and_no_until_give_no_window():
    assert select_window([], 3, None) is None


# -- per month and insurance type ------------------------------------------------------


def test_all_paid_is_eligible():
    rows = [row("420100", p, t) for p in ("2024-08", "2024-09", "2024-10") for t in ("pension", "medical")]
    decision = decide(rows, Window("2024-08", "2024-10"))
    assert decision.eligible and decision.complete and decision.reasons == []
    assert len(decision.months) == 6
    # oldest month first, insurance types in the canonical order within a month
    assert [(m.period, m.insurance_type) for m in decision.months][:2] == [("2024-08", "pension"), ("2024-08", "medical")]


def test_zhang_sans_late_months_block_the_claim():
    rows = [row("420100", p, t, "late" if p in ("2024-08", "2024-09") else "paid")
            for p in ("2024-08", "2024-09", "2024-10") for t in ("pension", "medical")]
    decision = decide(rows, Window("2024-08", "2024-10"))
    assert not decision.eligible
    assert codes(decision) == [
        ("late", "2024-08", "pension", "420100"), ("late", "2024-08", "medical", "420100"),
        ("late", "2024-09", "pension", "420100"), ("late", "2024-09", "medical", "420100"),
    ]
    assert statuses(decision)[("2024-10", "pension")] == ("paid", "420100")


def test_paid_in_some_region_wins_over_late_and_unpaid_elsewhere():
    rows = [
        row("440100", "2024-08", status="unpaid"),
        row("420100", "2024-08", status="late"),
        row("430100", "2024-08", status="paid", paid_on=dt.date(2024, 9, 10)),
    ]
    decision = decide(rows, Window("2024-08", "2024-08"))
    [month] = decision.months
    assert (month.status, month.region, month.paid_on) == ("paid", "430100", dt.date(2024, 9, 10))
    assert month.employer_amount == Decimal("1440.00") and month.personal_amount == Decimal("720.00")
    assert decision.eligible


def test_late_wins_over_unpaid():
    rows = [row("440100", "2024-08", status="unpaid"), row("420100", "2024-08", status="late")]
    decision = decide(rows, Window("2024-08", "2024-08"))
    assert statuses(decision) == {("2024-08", "pension"): ("late", "420100")}
    assert codes(decision) == [("late", "2024-08", "pension", "420100")]


def test_unpaid_everywhere_is_unpaid():
    rows = [row("440100", "2024-08", status="unpaid"), row("420100", "2024-08", status="unpaid")]
    decision = decide(rows, Window("2024-08", "2024-08"))
    assert statuses(decision) == {("2024-08", "pension"): ("unpaid", "420100")}
    assert codes(decision) == [("unpaid", "2024-08", "pension", "420100")]
    assert "unpaid in 420100" in decision.reasons[0].message


def test_a_missing_month_of_a_type_on_record_is_unpaid():
    rows = [row("420100", "2024-08", "pension"), row("420100", "2024-10", "pension"),
            row("420100", "2024-08", "medical"), row("420100", "2024-09", "medical"), row("420100", "2024-10", "medical")]
    decision = decide(rows, Window("2024-08", "2024-10"))
    missing = [m for m in decision.months if m.status == "unpaid"]
    assert [(m.period, m.insurance_type, m.region, m.on_record) for m in missing] == [
        ("2024-09", "pension", "420100", False)
    ]
    assert missing[0].paid_on is None and missing[0].employer_amount is None
    assert codes(decision) == [("unpaid", "2024-09", "pension", "420100")]
    assert "no pension contribution for 2024-09 is on record" in decision.reasons[0].message


def test_a_missing_month_is_blamed_on_the_region_holding_the_types_latest_month():
    # moved from Guangzhou to Wuhan in the window; 2024-10 not on record anywhere
    rows = [row("440100", "2024-08"), row("420100", "2024-09")]
    decision = decide(rows, Window("2024-08", "2024-10"))
    assert statuses(decision) == {
        ("2024-08", "pension"): ("paid", "440100"),
        ("2024-09", "pension"): ("paid", "420100"),
        ("2024-10", "pension"): ("unpaid", "420100"),
    }


def test_only_types_on_record_within_the_window_are_judged():
    rows = [row("420100", p) for p in ("2024-08", "2024-09", "2024-10")]
    rows.append(row("420100", "2024-05", "medical", "unpaid"))  # before the window
    decision = decide(rows, Window("2024-08", "2024-10"))
    assert {m.insurance_type for m in decision.months} == {"pension"}
    assert decision.eligible


def test_rows_outside_the_window_are_ignored():
    rows = [row("420100", "2024-07", status="late"), row("420100", "2024-08")]
    decision = decide(rows, Window("2024-08", "2024-08"))
    assert decision.eligible and list(statuses(decision)) == [("2024-08", "pension")]


# -- no contributions, incomplete answers ------------------------------------------------


def test_no_records_is_not_eligible_with_no_contributions():
    decision = decide([], None)
    assert not decision.eligible and decision.complete
    assert codes(decision) == [("no_contributions", None, None, None)]
    decision = decide([row("420100", "2024-05")], Window("2024-08", "2024-10"))
    assert codes(decision) == [("no_contributions", None, None, None)]
    assert "from 2024-08 to 2024-10" in decision.reasons[0].message


def test_a_region_that_did_not_answer_makes_the_status_unknown():
    rows = [row("420100", p) for p in ("2024-08", "2024-09", "2024-10")]
    decision = decide(rows, Window("2024-08", "2024-10"), unknown_regions=[("330100", "timeout")])
    assert not decision.complete and not decision.eligible
    assert codes(decision) == [("status_unknown", None, None, "330100")]
    assert "330100" in decision.reasons[0].message and "in time" in decision.reasons[0].message


def test_unknown_regions_come_after_the_month_reasons_and_replace_no_contributions():
    rows = [row("420100", "2024-10", status="late")]
    decision = decide(rows, Window("2024-10", "2024-10"),
                      unknown_regions=[("440300", "unavailable"), ("330100", "rejected")])
    assert codes(decision) == [
        ("late", "2024-10", "pension", "420100"),
        ("status_unknown", None, None, "330100"),
        ("status_unknown", None, None, "440300"),
    ]
    nothing = decide([], None, unknown_regions=[("330100", "timeout")])
    assert [r.code for r in nothing.reasons] == ["status_unknown"]


# -- the fan-out --------------------------------------------------------------------------


class FakeBureau:
    kind = "social_security"
    capabilities = frozenset({Capability.PARTICIPATION_SEARCH, Capability.CONTRIBUTION_HISTORY})

    def __init__(self, name, answer=(), *, error=None, delay=0.0):
        self.name = name
        self.answer = list(answer)
        self.error = error
        self.delay = delay
        self.calls = []

    async def contribution_history(self, person, from_period, to_period, *, context):
        self.calls.append((person, from_period, to_period, context))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.answer


class NoHistory(FakeBureau):
    capabilities = frozenset({Capability.PARTICIPATION_SEARCH})


def upstream_set(**bureaus):
    result = UpstreamSet("sandbox")
    result.bureaus.update(bureaus)
    return result


PERSON = Person("420102198805200177", "")
WINDOW = Window("2024-08", "2024-10")


async def test_every_region_with_contribution_history_is_asked_for_the_window():
    wuhan = FakeBureau("wh", [row("420100", "2024-09"), row("420100", "2024-07"), row("440100", "2024-09")])
    changsha = FakeBureau("cs", [row("", "2024-10")])
    guangzhou = NoHistory("gz")
    result = await fetch_contributions(
        upstream_set(**{"420100": wuhan, "430100": changsha, "440100": guangzhou}), PERSON, WINDOW,
        CallContext("req-1", "client-1"), deadline=1.0,
    )
    assert [(r.region, r.upstream, r.outcome) for r in result.regions] == [("420100", "wh", "ok"), ("430100", "cs", "ok")]
    assert guangzhou.calls == []
    person, first, last, context = wuhan.calls[0]
    assert (person, first, last) == (PERSON, "2024-08", "2024-10")
    assert context.request_id == "req-1" and context.extra == {"region": "420100"} and context.deadline is not None
    # rows outside the window or of another region are dropped; a blank region is the answering one
    assert [(m.region, m.period) for m in result.months] == [("420100", "2024-09"), ("430100", "2024-10")]
    assert result.complete and result.unknown == []


async def test_failures_become_region_outcomes():
    result = await fetch_contributions(
        upstream_set(**{
            "420100": FakeBureau("wh", error=UpstreamServerError("bureau answered 500")),
            "430100": FakeBureau("cs", error=BusinessRejection("refused", upstream_code="2005", upstream_message="姓名不符")),
            "440100": FakeBureau("gz", error=RuntimeError("bug")),
            "440300": FakeBureau("sz", delay=5.0),
            "330100": FakeBureau("hz", [row("330100", "2024-09")]),
        }),
        PERSON, WINDOW, CallContext(), deadline=0.2,
    )
    by_region = {r.region: r for r in result.regions}
    assert {region: r.outcome for region, r in by_region.items()} == {
        "330100": "ok", "420100": "unavailable", "430100": "rejected", "440100": "unavailable", "440300": "timeout",
    }
    assert by_region["430100"].error["upstream_code"] == "2005"
    assert by_region["440300"].error["code"] == "upstream_timeout"
    assert by_region["440100"].error["code"] == "upstream_unavailable"
    assert not result.complete
    assert result.unknown == [("420100", "unavailable"), ("430100", "rejected"), ("440100", "unavailable"),
                              ("440300", "timeout")]
    assert [m.region for m in result.months] == ["330100"]


async def test_the_fan_out_answers_within_the_deadline():
    deadline = 0.2
    loop = asyncio.get_running_loop()
    started = loop.time()
    await fetch_contributions(upstream_set(**{"440300": FakeBureau("sz", delay=10.0)}), PERSON, WINDOW, CallContext(),
                              deadline=deadline)
    assert loop.time() - started < deadline + 1.0


# -- fetch and decide -------------------------------------------------------------------


class RangeBureau(FakeBureau):
    """Answers only the rows inside the asked range, like a real bureau."""

    async def contribution_history(self, person, from_period, to_period, *, context):
        await super().contribution_history(person, from_period, to_period, context=context)
        return [m for m in self.answer if from_period <= m.period <= to_period]


TODAY = dt.date(2026, 11, 22)


async def test_without_until_the_lookback_is_asked_and_the_window_ends_at_the_latest_month():
    wuhan = RangeBureau("wh", [row("420100", p, status="late" if p == "2024-09" else "paid")
                               for p in ("2024-07", "2024-08", "2024-09", "2024-10")])
    decision, fetched = await check_contribution_status(
        upstream_set(**{"420100": wuhan}), PERSON, 3, None, CallContext(), today=TODAY, deadline=1.0
    )
    assert [call[1:3] for call in wuhan.calls] == [("2023-11", "2026-10")]
    assert decision.window == Window("2024-08", "2024-10")
    assert codes(decision) == [("late", "2024-09", "pension", "420100")]
    assert len(fetched.months) == 4


async def test_with_until_only_the_window_is_asked():
    wuhan = RangeBureau("wh", [row("420100", "2024-07")])
    decision, _ = await check_contribution_status(
        upstream_set(**{"420100": wuhan}), PERSON, 2, "2024-08", CallContext(), today=TODAY, deadline=1.0
    )
    assert [call[1:3] for call in wuhan.calls] == [("2024-07", "2024-08")]
    assert statuses(decision) == {("2024-07", "pension"): ("paid", "420100"), ("2024-08", "pension"): ("unpaid", "420100")}


async def test_a_window_reaching_back_before_the_lookback_is_asked_again():
    # the latest month on record is the lookback's first: the two months before it were not asked yet
    wuhan = RangeBureau("wh", [row("420100", p) for p in ("2023-09", "2023-10", "2023-11")])
    decision, _ = await check_contribution_status(
        upstream_set(**{"420100": wuhan}), PERSON, 3, None, CallContext(), today=TODAY, deadline=1.0
    )
    assert [call[1:3] for call in wuhan.calls] == [("2023-11", "2026-10"), ("2023-09", "2023-11")]
    assert decision.window == Window("2023-09", "2023-11") and decision.eligible


async def test_nothing_on_record_in_the_lookback():
    decision, _ = await check_contribution_status(
        upstream_set(**{"420100": RangeBureau("wh", [row("420100", "2019-01")])}), PERSON, 3, None, CallContext(),
        today=TODAY, deadline=1.0,
    )
    assert decision.window is None and codes(decision) == [("no_contributions", None, None, None)]
