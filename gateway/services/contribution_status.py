"""Contribution status: was every month of a window paid, in every region?

Before a hospitalisation claim is paid, HR checks the last few months of a person's
contributions. Two parts:

* the decision (``select_window``, ``decide``): pure functions over the
  ``ContributionMonth`` rows the bureaus returned and each region's outcome, so they
  are tested without any upstream;
* the fan-out (``fetch_contributions``): every region whose bureau declares
  ``Capability.CONTRIBUTION_HISTORY``, at once, within the search deadline, one
  outcome per region (``ok``, ``unavailable``, ``timeout``, ``rejected``) classified
  exactly like participation searches.

Per month and insurance type the status is ``paid`` if some region has it paid,
else ``late`` if some region has it late, else ``unpaid``; a month of the window
missing for an insurance type that appears in other months of the window is
``unpaid``. Only insurance types on record within the window are judged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, cast

from adapters import (
    INSURANCE_TYPES,
    BureauAdapter,
    CallContext,
    Capability,
    ContributionHistory,
    ContributionMonth,
    InsuranceType,
    Person,
    UpstreamError,
)

from ..registry import UpstreamSet
from .participation import _failure  # one classification of region failures for every fan-out

__all__ = [
    "LOOKBACK_MONTHS",
    "Decision",
    "FetchResult",
    "MonthStatus",
    "Reason",
    "RegionFetch",
    "Window",
    "add_months",
    "check_contribution_status",
    "decide",
    "fetch_contributions",
    "lookback_window",
    "period_range",
    "select_window",
]

log = logging.getLogger("hr_gateway.contribution_status")

#: Without an explicit ``until``, how far back the bureaus are asked (months ending
#: with the previous calendar month).
LOOKBACK_MONTHS = 36

PaymentStatus = Literal["paid", "late", "unpaid"]
ReasonCode = Literal["late", "unpaid", "no_contributions", "status_unknown"]

_PERIOD = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
_RANK: dict[str, int] = {"paid": 0, "late": 1, "unpaid": 2}
_TYPE_ORDER = {t: i for i, t in enumerate(INSURANCE_TYPES)}
_UNKNOWN = {
    "timeout": "did not answer in time",
    "unavailable": "is unavailable",
    "rejected": "refused the query",
}


# -- periods -------------------------------------------------------------------------


def _index(period: str) -> int:
    match = _PERIOD.fullmatch(period)
    if match is None:
        raise ValueError(f"not a period YYYY-MM: {period!r}")
    return int(match.group(1)) * 12 + int(match.group(2)) - 1


def _period(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def add_months(period: str, months: int) -> str:
    """``add_months("2024-10", -2) == "2024-08"``."""
    return _period(_index(period) + months)


def period_range(first: str, last: str) -> list[str]:
    """Every period from ``first`` to ``last``, inclusive, oldest first."""
    return [_period(i) for i in range(_index(first), _index(last) + 1)]


def month_of(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


@dataclass(frozen=True, slots=True)
class Window:
    """Periods ``first``..``last`` inclusive."""

    first: str
    last: str

    @classmethod
    def ending(cls, last: str, months: int) -> Window:
        return cls(add_months(last, -(months - 1)), last)

    @property
    def periods(self) -> list[str]:
        return period_range(self.first, self.last)

    def __contains__(self, period: object) -> bool:
        return isinstance(period, str) and self.first <= period <= self.last


def lookback_window(today: dt.date, months: int = LOOKBACK_MONTHS) -> Window:
    """``months`` months ending with the calendar month before ``today``."""
    return Window.ending(add_months(month_of(today), -1), months)


def select_window(rows: Iterable[ContributionMonth], months: int, until: str | None) -> Window | None:
    """The window to judge: the ``months`` months ending at ``until`` if given, else
    ending at the latest period any bureau has on record (``None`` if none has any)."""
    if until is not None:
        return Window.ending(until, months)
    latest = max((row.period for row in rows), default=None)
    return None if latest is None else Window.ending(latest, months)


# -- the decision --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MonthStatus:
    """One month of one insurance type, combined over every region."""

    period: str
    insurance_type: InsuranceType
    status: PaymentStatus
    region: str | None
    employer_amount: Decimal | None = None
    personal_amount: Decimal | None = None
    paid_on: dt.date | None = None
    on_record: bool = True  # False: no bureau holds this month (it counts as unpaid)


@dataclass(frozen=True, slots=True)
class Reason:
    code: ReasonCode
    message: str
    period: str | None = None
    insurance_type: InsuranceType | None = None
    region: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    window: Window | None
    months: list[MonthStatus]
    reasons: list[Reason]
    complete: bool

    @property
    def eligible(self) -> bool:
        return self.complete and bool(self.months) and not self.reasons


def _best(rows: Sequence[ContributionMonth]) -> ContributionMonth:
    """The row that decides a month: paid before late before unpaid, then by region."""
    return min(rows, key=lambda r: (_RANK[r.status], r.region))


def decide(
    rows: Iterable[ContributionMonth],
    window: Window | None,
    *,
    unknown_regions: Sequence[tuple[str, str]] = (),
) -> Decision:
    """Judge ``window`` from the rows every answering region returned.

    ``unknown_regions`` lists ``(region, outcome)`` for each region that did not
    answer (``unavailable``, ``timeout``, ``rejected``): its months are unknown, so
    the status is incomplete and never eligible.
    """
    complete = not unknown_regions
    held: dict[tuple[str, str], list[ContributionMonth]] = {}
    if window is not None:
        for row in rows:
            if row.period in window:
                held.setdefault((row.period, row.insurance_type), []).append(row)
    types = sorted({t for _, t in held}, key=lambda t: _TYPE_ORDER.get(t, len(_TYPE_ORDER)))

    months: list[MonthStatus] = []
    for insurance_type in types:
        # Where this type's latest month in the window is held: the region a missing month is blamed on.
        latest = max((rows_ for (p, t), rows_ in held.items() if t == insurance_type), key=lambda rs: rs[0].period)
        home = _best(latest).region
        for period in window.periods if window is not None else []:
            found = held.get((period, insurance_type))
            if not found:
                months.append(MonthStatus(period, insurance_type, "unpaid", home, on_record=False))
                continue
            best = _best(found)
            months.append(
                MonthStatus(
                    period, insurance_type, best.status, best.region,
                    best.employer_amount, best.personal_amount, best.paid_on,
                )
            )
    months.sort(key=lambda m: (m.period, _TYPE_ORDER.get(m.insurance_type, len(_TYPE_ORDER))))

    reasons: list[Reason] = []
    for m in months:
        if m.status == "late":
            reasons.append(Reason("late", f"{m.insurance_type} for {m.period} was paid late in {m.region}",
                                  m.period, m.insurance_type, m.region))
        elif m.status == "unpaid":
            message = (
                f"{m.insurance_type} for {m.period} is unpaid in {m.region}" if m.on_record
                else f"no {m.insurance_type} contribution for {m.period} is on record (last held in {m.region})"
            )
            reasons.append(Reason("unpaid", message, m.period, m.insurance_type, m.region))
    if not months and complete:
        where = f" from {window.first} to {window.last}" if window is not None else ""
        reasons.append(Reason("no_contributions", f"no bureau has contributions on record for the person{where}"))
    for region, outcome in sorted(unknown_regions):
        what = _UNKNOWN.get(outcome, f"could not be asked ({outcome})")
        reasons.append(
            Reason("status_unknown", f"the bureau of {region} {what}, so the contribution status there is unknown",
                   region=region)
        )
    return Decision(window, months, reasons, complete)


# -- the fan-out ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegionFetch:
    region: str
    upstream: str
    outcome: Literal["ok", "unavailable", "timeout", "rejected"]
    months: list[ContributionMonth]
    latency_ms: float
    error: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    regions: list[RegionFetch]

    @property
    def complete(self) -> bool:
        return all(r.outcome == "ok" for r in self.regions)

    @property
    def months(self) -> list[ContributionMonth]:
        return [m for r in self.regions for m in r.months]

    @property
    def unknown(self) -> list[tuple[str, str]]:
        return [(r.region, r.outcome) for r in self.regions if r.outcome != "ok"]


async def _ask(
    bureau: BureauAdapter, region: str, query: Callable[[ContributionHistory], Awaitable[list[ContributionMonth]]],
    window: Window,
) -> RegionFetch:
    started = time.monotonic()
    try:
        months = await query(cast(ContributionHistory, bureau))
    except Exception as exc:  # one region's failure is that region's outcome
        if not isinstance(exc, UpstreamError):
            log.exception("adapter %s failed unexpectedly", bureau.name)
        outcome, error = _failure(exc)
        return RegionFetch(region, bureau.name, outcome, [], (time.monotonic() - started) * 1000, error)  # type: ignore[arg-type]
    months = [m for m in months if m.region in ("", region) and m.period in window]
    months = [m if m.region else _with_region(m, region) for m in months]
    return RegionFetch(region, bureau.name, "ok", months, (time.monotonic() - started) * 1000)


def _with_region(month: ContributionMonth, region: str) -> ContributionMonth:
    return ContributionMonth(region, month.period, month.insurance_type, month.status,
                             month.employer_amount, month.personal_amount, month.paid_on)


async def fetch_contributions(
    upstreams: UpstreamSet, person: Person, window: Window, context: CallContext, *, deadline: float
) -> FetchResult:
    """Ask every region with ``CONTRIBUTION_HISTORY`` for ``window`` at once, answering within ``deadline`` seconds."""
    started = time.monotonic()
    tasks: dict[asyncio.Task[RegionFetch], tuple[str, BureauAdapter]] = {}
    for region in upstreams.regions(Capability.CONTRIBUTION_HISTORY):
        bureau = upstreams.bureau_for(region, Capability.CONTRIBUTION_HISTORY)
        assert bureau is not None
        region_context = CallContext(
            context.request_id, context.client_id, None, started + deadline, {"region": region}
        )

        def query(b: ContributionHistory, ctx: CallContext = region_context) -> Awaitable[list[ContributionMonth]]:
            return b.contribution_history(person, window.first, window.last, context=ctx)

        tasks[asyncio.create_task(_ask(bureau, region, query, window))] = (region, bureau)
    done, pending = await asyncio.wait(tasks, timeout=deadline) if tasks else (set(), set())
    results = [t.result() for t in done]
    for task in pending:
        task.cancel()
        region, bureau = tasks[task]
        results.append(
            RegionFetch(region, bureau.name, "timeout", [], deadline * 1000,
                        {"code": "upstream_timeout", "detail": f"no answer within the search deadline of {deadline:g}s"})
        )
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    return FetchResult(sorted(results, key=lambda r: r.region))


async def check_contribution_status(
    upstreams: UpstreamSet,
    person: Person,
    months: int,
    until: str | None,
    context: CallContext,
    *,
    today: dt.date,
    deadline: float,
) -> tuple[Decision, FetchResult]:
    """Fetch and decide. With ``until`` the bureaus are asked for exactly the window;
    without it for the ``LOOKBACK_MONTHS`` ending last month, and the window ends at the
    latest month on record (asked again if it reaches back before the lookback)."""
    asked = Window.ending(until, months) if until is not None else lookback_window(today)
    fetched = await fetch_contributions(upstreams, person, asked, context, deadline=deadline)
    window = select_window(fetched.months, months, until)
    if window is not None and window.first < asked.first:
        fetched = await fetch_contributions(upstreams, person, window, context, deadline=deadline)
    return decide(fetched.months, window, unknown_regions=fetched.unknown), fetched
