"""Bureau payment confirmation, adapter against its real mock over loopback, for every
bureau dialect: declare a month, tell the bureau it was paid, see the months paid in
the contribution history; refusals; exactly once when the answer to a notice is lost;
and the mocks' clerk correction of a person's contribution status."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters import AdapterConfig, BusinessRejection, CallContext, ContributionPayments, Employer, Person
from adapters.http import RetryPolicy, UpstreamPolicy
from adapters.models import (
    ContributionPaymentNotice,
    ContributionPaymentReceipt,
    DeclarationLine,
    DeclarationSubmission,
)
from adapters.social_security.json_hmac import JsonHmacBureauAdapter
from adapters.social_security.sm4_async import Sm4AsyncBureauAdapter
from adapters.social_security.xml_gbk import XmlGbkBureauAdapter
from mocks import JsonHmacBureau, Sm4AsyncBureau, XmlGbkBureau, parse_fault

FAST = UpstreamPolicy(retry=RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.01, jitter=0.0))
PAID_ON = dt.date(2026, 8, 20)


@dataclass
class Upstream:
    """One dialect's mock bureau and an adapter configured for it."""

    dialect: str
    bureau: Any
    adapter: Any
    region: str
    employer: Employer
    person: Person
    change: str
    insurance_types: tuple[str, ...]
    base: Decimal
    notify_route: str  # what a fault names to hit the notice

    def declaration(self, reference: str, period: str = "2026-08") -> DeclarationSubmission:
        line = DeclarationLine(
            line=1,
            person=self.person,
            change=self.change,  # type: ignore[arg-type]
            insurance_types=self.insurance_types,  # type: ignore[arg-type]
            contribution_base=self.base,
            hire_date=dt.date(2026, 8, 3) if self.change == "new" else None,
        )
        return DeclarationSubmission(reference, self.region, self.employer, period, (line,))

    def notice(self, reference: str, declaration_reference: str, **overrides: Any) -> ContributionPaymentNotice:
        values: dict[str, Any] = {
            "reference": reference,
            "region": self.region,
            "employer": self.employer,
            "period": "2026-08",
            "declaration_reference": declaration_reference,
            "amount": Decimal("2600.00"),
            "paid_on": PAID_ON,
            "payment_reference": "E2E-20260820-000001",
        }
        values.update(overrides)
        return ContributionPaymentNotice(**values)

    def payments_for(self, reference: str) -> list[Any]:
        """What the mock holds for the notice ``reference`` (each dialect names it bizNo)."""
        return [p for p in self.bureau.contribution_payments() if _biz_no(p) == reference]


def _biz_no(payment: Any) -> str:
    if hasattr(payment, "biz_no"):
        return payment.biz_no
    return payment.notice.biz_no


def _json_hmac() -> Upstream:
    bureau = JsonHmacBureau("440100").start()
    adapter = JsonHmacBureauAdapter(
        AdapterConfig(name="gz", base_url=bureau.base_url, regions=("440100",),
                      credentials={"app_id": bureau.app_id, "app_secret": bureau.app_secret}),
        policy=FAST,
    )  # fmt: skip
    return Upstream(
        "json-hmac", bureau, adapter, "440100", Employer("91440101MA59BX4C3Y", "广州示例科技有限公司"),
        Person("440104199003120213", "Wang Fang"), "continue", ("pension", "medical", "unemployment"),
        Decimal("8000.00"), "/api/v1/contribution/payment/notify",
    )  # fmt: skip


def _xml_gbk() -> Upstream:
    bureau = XmlGbkBureau("420100").start()
    adapter = XmlGbkBureauAdapter(
        AdapterConfig(name="wh", base_url=bureau.base_url, regions=("420100",),
                      credentials={"user_id": bureau.user_id, "password": bureau.password}),
        policy=FAST,
    )  # fmt: skip
    return Upstream(
        "xml-gbk", bureau, adapter, "420100", Employer("91420100MA4K2QXL25", "武汉示例软件有限公司"),
        Person("430102199511080356", "李明"), "new", ("pension", "medical"), Decimal("8000.00"), "P001",
    )  # fmt: skip


def _sm4_async() -> Upstream:
    bureau = Sm4AsyncBureau("430100", processing_delay=0.2).start()
    adapter = Sm4AsyncBureauAdapter(
        AdapterConfig(name="cs", base_url=bureau.base_url, regions=("430100",),
                      credentials={"appid": bureau.appid, "sm4_key": bureau.sm4_key, "mac_key": bureau.mac_key},
                      options={"poll_interval": 0.05, "poll_timeout": 5.0}),
        policy=FAST,
    )  # fmt: skip
    return Upstream(
        "sm4-async", bureau, adapter, "430100", Employer("91430100MA4L16JQ9D", "长沙示例制造有限公司"),
        Person("430102199511080356", "Li Ming"), "new", ("pension", "medical"), Decimal("8000.00"),
        "/api/contribution-payment/submit",
    )  # fmt: skip


BUILDERS: dict[str, Callable[[], Upstream]] = {"json-hmac": _json_hmac, "xml-gbk": _xml_gbk, "sm4-async": _sm4_async}


@pytest.fixture(params=sorted(BUILDERS))
async def upstream(request: pytest.FixtureRequest) -> AsyncIterator[Upstream]:
    built = BUILDERS[request.param]()
    try:
        yield built
    finally:
        await built.adapter.aclose()
        built.bureau.stop()


async def declared(upstream: Upstream, reference: str) -> None:
    receipt = await upstream.adapter.submit_declaration(upstream.declaration(reference), context=CallContext())
    assert receipt.status == "accepted", receipt


async def months_of(upstream: Upstream, period: str = "2026-08") -> dict[str, Any]:
    months = await upstream.adapter.contribution_history(upstream.person, period, period, context=CallContext())
    return {month.insurance_type: month for month in months}


async def test_adapters_declare_and_implement_contribution_payments(upstream: Upstream) -> None:
    assert "contribution_payment" in upstream.adapter.capabilities
    assert isinstance(upstream.adapter, ContributionPayments)


async def test_a_confirmed_payment_marks_the_declared_month_paid(upstream: Upstream) -> None:
    await declared(upstream, "HGW-DECL-PAY-0001")
    assert await months_of(upstream) == {}  # declared, not yet paid: the bureau holds no month
    receipt = await upstream.adapter.notify_contribution_payment(
        upstream.notice("HGW-PAYN-0001", "HGW-DECL-PAY-0001"), context=CallContext()
    )
    assert receipt.reference == "HGW-PAYN-0001"
    assert receipt.status == "confirmed" and receipt.confirmed_amount == Decimal("2600.00")
    assert receipt.bureau_reference and receipt.confirmed_on is not None

    months = await months_of(upstream)
    # Wang Fang holds pension and medical in Guangzhou: the unemployment listed on her
    # continue line never applied, so it is not marked paid.
    assert set(months) == {"pension", "medical"}
    pension, medical = months["pension"], months["medical"]
    assert pension.status == medical.status == "paid"
    assert pension.paid_on == medical.paid_on == PAID_ON
    assert pension.region == upstream.region
    assert (pension.employer_amount, pension.personal_amount) == (Decimal("1280.00"), Decimal("640.00"))
    assert (medical.employer_amount, medical.personal_amount) == (Decimal("640.00"), Decimal("160.00"))

    again = await upstream.adapter.find_contribution_payment("HGW-PAYN-0001", context=CallContext())
    assert again == receipt
    assert await upstream.adapter.find_contribution_payment("HGW-PAYN-NEVER", context=CallContext()) is None

    records = await upstream.adapter.search_participation(upstream.person, context=CallContext())
    pension_record = next(r for r in records if r.insurance_type == "pension" and r.status == "active")
    assert pension_record.last_paid_period == "2026-08"


async def test_sending_the_same_notice_again_changes_nothing(upstream: Upstream) -> None:
    await declared(upstream, "HGW-DECL-PAY-0002")
    notice = upstream.notice("HGW-PAYN-0002", "HGW-DECL-PAY-0002")
    first = await upstream.adapter.notify_contribution_payment(notice, context=CallContext())
    second = await upstream.adapter.notify_contribution_payment(notice, context=CallContext())
    assert first == second and first.status == "confirmed"
    assert len(upstream.payments_for("HGW-PAYN-0002")) == 1


async def refusal(upstream: Upstream, notice: ContributionPaymentNotice) -> tuple[str, str | None]:
    """The bureau's code for a refused notice, however the dialect says it."""
    try:
        receipt: ContributionPaymentReceipt = await upstream.adapter.notify_contribution_payment(
            notice, context=CallContext()
        )
    except BusinessRejection as rejection:
        assert upstream.dialect == "xml-gbk"  # it refuses with a ReturnCode and stores nothing
        assert await upstream.adapter.find_contribution_payment(notice.reference, context=CallContext()) is None
        return str(rejection.upstream_code), rejection.upstream_message
    assert upstream.dialect != "xml-gbk"
    assert receipt.status == "rejected" and receipt.confirmed_amount is None
    assert await upstream.adapter.find_contribution_payment(notice.reference, context=CallContext()) == receipt
    return str(receipt.reason_code), receipt.reason_message


REFUSALS = {
    # reason: (json-hmac, xml-gbk, sm4-async)
    "unknown declaration": ("2501", "B008", "63001"),
    "declaration not accepted": ("2502", "B009", "63002"),
    "another unit": ("2503", "B010", "63003"),
    "another period": ("2503", "B010", "63003"),
    "amount not positive": ("2504", "B011", "63004"),
    "already confirmed": ("2505", "B012", "63005"),
}


@pytest.mark.parametrize("reason", sorted(REFUSALS))
async def test_refused_notices_mark_nothing_paid(upstream: Upstream, reason: str) -> None:
    await declared(upstream, "HGW-DECL-PAY-0003")
    notice = upstream.notice("HGW-PAYN-0003", "HGW-DECL-PAY-0003")
    if reason == "unknown declaration":
        notice = upstream.notice("HGW-PAYN-0003", "HGW-DECL-NEVER-SENT")
    elif reason == "declaration not accepted":
        # Declaring the person again as a new hire is refused (already active): the
        # declaration lands with no line accepted.
        refused = upstream.declaration("HGW-DECL-PAY-0004")
        refused = DeclarationSubmission(
            refused.reference, refused.region, refused.employer, refused.period,
            (DeclarationLine(1, upstream.person, "new", ("pension",), upstream.base),),
        )  # fmt: skip
        receipt = await upstream.adapter.submit_declaration(refused, context=CallContext())
        assert receipt.status == "rejected", receipt
        notice = upstream.notice("HGW-PAYN-0003", "HGW-DECL-PAY-0004")
    elif reason == "another unit":
        notice = upstream.notice("HGW-PAYN-0003", "HGW-DECL-PAY-0003", employer=Employer("91110000MA0000000X", "x"))
    elif reason == "another period":
        notice = upstream.notice("HGW-PAYN-0003", "HGW-DECL-PAY-0003", period="2026-09")
    elif reason == "amount not positive":
        notice = upstream.notice("HGW-PAYN-0003", "HGW-DECL-PAY-0003", amount=Decimal("0.00"))
    elif reason == "already confirmed":
        first = await upstream.adapter.notify_contribution_payment(
            upstream.notice("HGW-PAYN-FIRST", "HGW-DECL-PAY-0003"), context=CallContext()
        )
        assert first.status == "confirmed"
    code, message = await refusal(upstream, notice)
    assert code == REFUSALS[reason][_column(upstream)]
    assert message
    if reason != "already confirmed":
        assert await months_of(upstream) == {}


def _column(upstream: Upstream) -> int:
    return ("json-hmac", "xml-gbk", "sm4-async").index(upstream.dialect)


async def test_a_notice_whose_answer_is_lost_is_confirmed_exactly_once(upstream: Upstream) -> None:
    await declared(upstream, "HGW-DECL-PAY-0005")
    upstream.bureau.faults.add(parse_fault(f"{upstream.notify_route}:drop_after:times=1"))
    receipt = await upstream.adapter.notify_contribution_payment(
        upstream.notice("HGW-PAYN-0005", "HGW-DECL-PAY-0005"), context=CallContext()
    )
    assert receipt.status == "confirmed"
    assert len(upstream.payments_for("HGW-PAYN-0005")) == 1
    sent = [r for r in upstream.bureau.requests if (r.operation or r.path) == upstream.notify_route]
    assert len(sent) == 1 and sent[0].code == "DROP"  # asked about, never sent again
    assert (await months_of(upstream))["pension"].status == "paid"


async def test_the_sm4_bureau_answers_pending_then_confirms_on_its_clock() -> None:
    now = [time.time()]  # the bureau's clock, moved by hand (within its 300 s signature window)
    bureau = Sm4AsyncBureau("430100", processing_delay=30.0, clock=lambda: now[0]).start()
    adapter = Sm4AsyncBureauAdapter(
        AdapterConfig(name="cs", base_url=bureau.base_url, regions=("430100",),
                      credentials={"appid": bureau.appid, "sm4_key": bureau.sm4_key, "mac_key": bureau.mac_key},
                      options={"poll_interval": 0.01, "poll_timeout": 0.05}),
        policy=FAST,
    )  # fmt: skip
    upstream = Upstream(
        "sm4-async", bureau, adapter, "430100", Employer("91430100MA4L16JQ9D", "长沙示例制造有限公司"),
        Person("430102199511080356", "Li Ming"), "new", ("pension", "medical"), Decimal("8000.00"),
        "/api/contribution-payment/submit",
    )  # fmt: skip
    try:
        declaration = await adapter.submit_declaration(upstream.declaration("HGW-DECL-PAY-0006"), context=CallContext())
        assert declaration.status == "pending"
        receipt = await adapter.notify_contribution_payment(
            upstream.notice("HGW-PAYN-0006", "HGW-DECL-PAY-0006"), context=CallContext()
        )
        assert receipt.status == "pending" and receipt.bureau_reference.startswith("T430100-")
        assert await adapter.find_contribution_payment("HGW-PAYN-0006", context=CallContext()) == receipt
        assert await months_of(upstream) == {}
        now[0] += 31  # the bureau decides the declaration, then the notice
        found = await adapter.find_contribution_payment("HGW-PAYN-0006", context=CallContext())
        assert found is not None and found.status == "confirmed"
        assert found.bureau_reference.startswith("430100-R-") and found.confirmed_amount == Decimal("2600.00")
        assert (await months_of(upstream))["medical"].status == "paid"
    finally:
        await adapter.aclose()
        bureau.stop()


# -- a bureau clerk corrects a person's contribution status ----------------------------


async def test_zhang_sans_late_months_corrected_to_paid_in_wuhan() -> None:
    zhang_san = Person("420102198805200177", "张三")
    with XmlGbkBureau("420100") as bureau:
        adapter = XmlGbkBureauAdapter(
            AdapterConfig(name="wh", base_url=bureau.base_url, regions=("420100",),
                          credentials={"user_id": bureau.user_id, "password": bureau.password}),
            policy=FAST,
        )  # fmt: skip
        try:
            before = await adapter.contribution_history(zhang_san, "2024-08", "2024-09", context=CallContext())
            assert {m.status for m in before} == {"late"}
            async with httpx.AsyncClient(base_url=bureau.base_url, timeout=5) as control:
                for period in ("2024-08", "2024-09"):
                    r = await control.post(
                        "/__mock__/contributions",
                        json={"id_number": zhang_san.id_number, "period": period, "status": "paid"},
                    )
                    assert r.status_code == 200, r.text
                    assert r.json()["id_number"] == "4201**********0177"
                    assert len(r.json()["months"]) == 2  # pension and medical
            after = await adapter.contribution_history(zhang_san, "2024-08", "2024-09", context=CallContext())
            assert len(after) == 4
            assert {m.status for m in after} == {"paid"}
            assert {m.paid_on for m in after} == {dt.date(2024, 10, 28)}  # the date the money came in stays
        finally:
            await adapter.aclose()


async def test_every_bureau_mock_corrects_contribution_status(upstream: Upstream) -> None:
    await declared(upstream, "HGW-DECL-PAY-0007")
    await upstream.adapter.notify_contribution_payment(
        upstream.notice("HGW-PAYN-0007", "HGW-DECL-PAY-0007"), context=CallContext()
    )
    corrected = upstream.bureau.set_contribution_status(upstream.person.id_number, "2026-08", "unpaid", "pension")
    assert len(corrected) == 1
    months = await months_of(upstream)
    assert months["pension"].status == "unpaid" and months["pension"].paid_on is None
    assert months["medical"].status == "paid"
    async with httpx.AsyncClient(base_url=upstream.bureau.base_url, timeout=5) as control:
        r = await control.post(
            "/__mock__/contributions",
            json={"id_number": upstream.person.id_number, "period": "2026-08", "status": "late",
                  "paid_on": "2026-10-08"},
        )  # fmt: skip
    assert r.status_code == 200, r.text
    months = await months_of(upstream)
    assert {m.status for m in months.values()} == {"late"}
    assert {m.paid_on for m in months.values()} == {dt.date(2026, 10, 8)}
