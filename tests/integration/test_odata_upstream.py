"""The odata ERP adapter against the odata mock ERP over loopback: budgets, every
approval status, vouchers, refusals, CSRF renewal, faults and exactly-once creates."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from adapters import (
    AdapterConfig,
    ApprovalReceipt,
    ApprovalSubmission,
    Attachment,
    BusinessRejection,
    CallContext,
    UpstreamAuthenticationError,
    UpstreamNotFound,
    VoucherLine,
    VoucherSubmission,
)
from adapters.erp.odata import ODataErpAdapter
from adapters.http import CircuitPolicy, RetryPolicy, Timeouts, UpstreamPolicy
from mocks.faults import Fault, FaultKind, parse_fault
from mocks.odata import ODataErp

CTX = CallContext(request_id="it-odata")
DECISION_SECONDS = 0.2
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
CREATE_APPROVAL = "ApprovalRequests.create"
CREATE_ENTRY = "JournalEntries.create"

MakeAdapter = Callable[..., ODataErpAdapter]


def policy(**retry: Any) -> UpstreamPolicy:
    """Quick retries and short timeouts, so fault tests finish in well under a second."""
    settings: dict[str, Any] = {
        "max_attempts": 3, "initial_backoff": 0.01, "max_backoff": 0.05, "jitter": 0.0,
        "deadline": 5.0, "max_retry_after": 2.0, "not_applied_statuses": frozenset({429, 503}),
    }
    settings.update(retry)
    return UpstreamPolicy(
        timeouts=Timeouts(connect=1.0, read=1.0, write=1.0, pool=1.0),
        retry=RetryPolicy(**settings),
        circuit=CircuitPolicy(failure_threshold=1000),
    )


@pytest.fixture(scope="module")
def server() -> Iterator[ODataErp]:
    with ODataErp(decision_seconds=DECISION_SECONDS) as erp:
        yield erp


@pytest.fixture
def erp(server: ODataErp) -> ODataErp:
    server.reset()
    server.decision_seconds = DECISION_SECONDS
    server.csrf_token_seconds = 1800.0
    return server


@pytest.fixture
async def make_adapter(erp: ODataErp) -> AsyncIterator[MakeAdapter]:
    made: list[ODataErpAdapter] = []

    def make(*, password: str | None = None, upstream_policy: UpstreamPolicy | None = None) -> ODataErpAdapter:
        config = AdapterConfig(
            name="sandbox-erp-odata",
            base_url=erp.base_url,
            credentials={"username": erp.username, "password": password or erp.password},
            environment="sandbox",
        )
        adapter = ODataErpAdapter(config, policy=upstream_policy or policy())
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def adapter(make_adapter: MakeAdapter) -> ODataErpAdapter:
    return make_adapter()


def approval(reference: str = "HGW-APPROVAL-1", **overrides: Any) -> ApprovalSubmission:
    values: dict[str, Any] = {
        "reference": reference,
        "kind": "social_security_contribution",
        "amount": Decimal("123456.78"),
        "cost_center": "CC-HR-CS",
        "period": "2024-05",
        "description": "Social insurance contributions 2024-05",
        "attachments": (Attachment(kind="declaration", sha256=SHA.upper(), name="declaration-2024-05.pdf"),),
    }
    values.update(overrides)
    return ApprovalSubmission(**values)


def contribution_voucher(reference: str = "HGW-VOUCHER-1", amount: str = "123456.78", **overrides: Any) -> VoucherSubmission:
    """What the contribution run posts: social-insurance expense paid from bank A."""
    values: dict[str, Any] = {
        "reference": reference,
        "date": dt.date(2024, 5, 31),
        "lines": (
            VoucherLine(account="660201", debit=Decimal(amount), credit=Decimal("0"), cost_center="CC-HR-CS",
                        description="Employer contributions 2024-05"),
            VoucherLine(account="100201", debit=Decimal("0"), credit=Decimal(amount), description="Paid from bank A"),
        ),
        "description": "Social insurance contributions 2024-05",
    }
    values.update(overrides)
    return VoucherSubmission(**values)


async def decided(adapter: ODataErpAdapter, reference: str, *, within: float = 3.0) -> ApprovalReceipt:
    """Poll ``find_approval`` until the ERP has decided (as the gateway's poller does)."""
    deadline = time.monotonic() + within
    while True:
        receipt = await adapter.find_approval(reference, context=CTX)
        assert receipt is not None
        if receipt.status != "pending" or time.monotonic() > deadline:
            return receipt
        await asyncio.sleep(DECISION_SECONDS / 2)


# -- budgets and approvals ---------------------------------------------------------------------


async def test_seeded_budgets_and_a_month_without_one(adapter: ODataErpAdapter) -> None:
    changsha = await adapter.budget("CC-HR-CS", "2024-01", context=CTX)
    assert (changsha.budget, changsha.committed, changsha.currency) == (Decimal("500000.00"), Decimal("0.00"), "CNY")
    guangzhou = await adapter.budget("CC-HR-GZ", "2026-12", context=CTX)
    assert guangzhou.budget == Decimal("300000.00")
    with pytest.raises(UpstreamNotFound):
        await adapter.budget("CC-HR-CS", "2027-01", context=CTX)
    with pytest.raises(UpstreamNotFound):
        await adapter.budget("CC-NOPE", "2024-05", context=CTX)


async def test_an_approval_within_budget_is_approved_and_commits(adapter: ODataErpAdapter, erp: ODataErp) -> None:
    receipt = await adapter.submit_approval(approval(), context=CTX)
    assert receipt.status == "pending" and receipt.document_number == "1000000001"
    assert receipt.budget is not None and receipt.budget.committed == Decimal("0.00")
    final = await decided(adapter, "HGW-APPROVAL-1")
    assert final.status == "approved" and final.decided_on is not None
    assert final.reason_code is None and final.document_number == "1000000001"
    assert final.budget is not None and final.budget.committed == Decimal("123456.78")
    assert (await adapter.budget("CC-HR-CS", "2024-05", context=CTX)).committed == Decimal("123456.78")
    [stored] = erp.approvals()
    assert stored.attachments[0].sha256 == SHA and stored.attachments[0].file_name == "declaration-2024-05.pdf"


async def test_an_approval_beyond_the_budget_is_rejected_with_the_budget_reason(adapter: ODataErpAdapter) -> None:
    await adapter.submit_approval(approval("HGW-ADM-1", cost_center="CC-ADM-CS", amount=Decimal("8000")), context=CTX)
    await adapter.submit_approval(approval("HGW-ADM-2", cost_center="CC-ADM-CS", amount=Decimal("2000.01")), context=CTX)
    assert (await decided(adapter, "HGW-ADM-1")).status == "approved"
    rejected = await decided(adapter, "HGW-ADM-2")
    assert rejected.status == "rejected" and rejected.reason_code == "BUDGET_EXCEEDED"
    assert rejected.reason_message is not None and "2000.00" in rejected.reason_message
    assert rejected.budget is not None and rejected.budget.committed == Decimal("8000.00")


async def test_a_reduced_budget_rejects_what_no_longer_fits(adapter: ODataErpAdapter, erp: ODataErp) -> None:
    erp.set_budget("CC-HR-GZ", "2025-03", "1000.00", committed="900.00")
    position = await adapter.budget("CC-HR-GZ", "2025-03", context=CTX)
    assert (position.budget, position.committed) == (Decimal("1000.00"), Decimal("900.00"))
    await adapter.submit_approval(
        approval("HGW-GZ-1", cost_center="CC-HR-GZ", period="2025-03", amount=Decimal("100.01")), context=CTX
    )
    assert (await decided(adapter, "HGW-GZ-1")).reason_code == "BUDGET_EXCEEDED"


async def test_pending_until_an_approver_decides_by_hand(adapter: ODataErpAdapter, erp: ODataErp) -> None:
    erp.set_auto_decide(False)
    await adapter.submit_approval(approval("HGW-HAND-1"), context=CTX)
    await adapter.submit_approval(approval("HGW-HAND-2"), context=CTX)
    await asyncio.sleep(DECISION_SECONDS * 2)
    assert (await adapter.find_approval("HGW-HAND-1", context=CTX)).status == "pending"  # type: ignore[union-attr]
    erp.decide("HGW-HAND-1", approve=True)
    erp.decide("HGW-HAND-2", approve=False, reason="Duplicate of last month's request")
    approved = await adapter.find_approval("HGW-HAND-1", context=CTX)
    rejected = await adapter.find_approval("HGW-HAND-2", context=CTX)
    assert approved is not None and approved.status == "approved"
    assert rejected is not None and rejected.status == "rejected"
    assert (rejected.reason_code, rejected.reason_message) == ("REJECTED_BY_APPROVER", "Duplicate of last month's request")


async def test_an_approval_that_never_landed_is_none(adapter: ODataErpAdapter) -> None:
    assert await adapter.find_approval("HGW-NEVER-SENT", context=CTX) is None
    assert await adapter.find_voucher("HGW-NEVER-SENT", context=CTX) is None


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"cost_center": "CC-NOPE"}, "UNKNOWN_COST_CENTER", "cost_center"),
        ({"period": "2023-12"}, "NO_BUDGET", "period"),
        ({"kind": "x" * 41}, "BAD_REQUEST", "kind"),
    ],
)
async def test_refused_approvals_carry_the_erp_code(
    adapter: ODataErpAdapter, erp: ODataErp, overrides: dict[str, Any], code: str, field: str
) -> None:
    with pytest.raises(BusinessRejection) as caught:
        await adapter.submit_approval(approval(**overrides), context=CTX)
    assert (caught.value.upstream_code, caught.value.field) == (code, field)
    assert erp.approvals() == []


# -- vouchers ------------------------------------------------------------------------------------


async def test_the_contribution_voucher_is_posted(adapter: ODataErpAdapter, erp: ODataErp) -> None:
    receipt = await adapter.post_voucher(contribution_voucher(), context=CTX)
    assert receipt.status == "posted" and receipt.document_number == "5100000001"
    assert receipt.posted_on is not None
    assert await adapter.find_voucher("HGW-VOUCHER-1", context=CTX) == receipt
    [entry] = erp.journal_entries()
    assert [(i.gl_account, i.debit_credit_code, i.amount, i.cost_center) for i in entry.items] == [
        ("660201", "S", Decimal("123456.78"), "CC-HR-CS"),
        ("100201", "H", Decimal("123456.78"), None),
    ]
    assert entry.posting_date == "2024-05-31"


@pytest.mark.parametrize(
    ("lines", "code", "field"),
    [
        (
            (VoucherLine(account="660201", debit=Decimal("10"), credit=Decimal("0"), cost_center="CC-HR-CS"),
             VoucherLine(account="100201", debit=Decimal("0"), credit=Decimal("9.99"))),
            "UNBALANCED", "lines",
        ),
        (
            (VoucherLine(account="660299", debit=Decimal("10"), credit=Decimal("0"), cost_center="CC-HR-CS"),
             VoucherLine(account="100201", debit=Decimal("0"), credit=Decimal("10"))),
            "UNKNOWN_GL_ACCOUNT", "lines[0].account",
        ),
        (
            (VoucherLine(account="660201", debit=Decimal("10"), credit=Decimal("0")),
             VoucherLine(account="100201", debit=Decimal("0"), credit=Decimal("10"))),
            "COST_CENTER_REQUIRED", "lines[0].cost_center",
        ),
        (
            (VoucherLine(account="660201", debit=Decimal("10"), credit=Decimal("0"), cost_center="CC-HR-CS"),
             VoucherLine(account="100201", debit=Decimal("0"), credit=Decimal("10"), cost_center="CC-NOPE")),
            "UNKNOWN_COST_CENTER", "lines[1].cost_center",
        ),
    ],
)
async def test_refused_vouchers_carry_the_erp_code(
    adapter: ODataErpAdapter, erp: ODataErp, lines: tuple[VoucherLine, ...], code: str, field: str
) -> None:
    with pytest.raises(BusinessRejection) as caught:
        await adapter.post_voucher(contribution_voucher(lines=lines), context=CTX)
    assert (caught.value.upstream_code, caught.value.field) == (code, field)
    assert erp.journal_entries() == []


# -- authentication and CSRF ------------------------------------------------------------------------


async def test_wrong_credentials_are_an_authentication_error(make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(password="wrong")
    with pytest.raises(UpstreamAuthenticationError):
        await adapter.budget("CC-HR-CS", "2024-05", context=CTX)
    with pytest.raises(UpstreamAuthenticationError):
        await adapter.submit_approval(approval(), context=CTX)


async def test_one_token_serves_many_writes_and_an_expired_one_is_renewed(
    adapter: ODataErpAdapter, erp: ODataErp
) -> None:
    await adapter.submit_approval(approval("HGW-CSRF-1"), context=CTX)
    await adapter.post_voucher(contribution_voucher("HGW-CSRF-V1"), context=CTX)
    assert erp.count(operation="ServiceDocument.read") == 1
    erp.expire_csrf_tokens()
    await adapter.submit_approval(approval("HGW-CSRF-2"), context=CTX)
    assert erp.count(operation="ServiceDocument.read") == 2
    assert erp.count(operation=CREATE_APPROVAL, code="CSRF_TOKEN_REQUIRED") == 1
    assert [a.reference for a in erp.approvals()] == ["HGW-CSRF-1", "HGW-CSRF-2"]
    assert erp.state()["sessions"] == 1  # the renewed token belongs to the same session


async def test_a_token_that_outlived_its_lifetime_is_renewed(adapter: ODataErpAdapter, erp: ODataErp) -> None:
    erp.csrf_token_seconds = 0.2
    await adapter.submit_approval(approval("HGW-LIFE-1"), context=CTX)
    await asyncio.sleep(0.3)
    await adapter.submit_approval(approval("HGW-LIFE-2"), context=CTX)
    assert len(erp.approvals()) == 2
    assert erp.count(operation="ServiceDocument.read") == 2


# -- faults -----------------------------------------------------------------------------------------


async def test_a_busy_erp_is_waited_for(adapter: ODataErpAdapter, erp: ODataErp) -> None:
    erp.faults.add(parse_fault("Budgets.read:rate_limit:retry_after=0,times=1"))
    erp.faults.add(Fault(route=CREATE_APPROVAL, kind=FaultKind.ERROR, status=503, retry_after=0, times=1))
    assert (await adapter.budget("CC-HR-CS", "2024-05", context=CTX)).budget == Decimal("500000.00")
    receipt = await adapter.submit_approval(approval(), context=CTX)
    assert receipt.status == "pending"
    assert erp.count(operation=CREATE_APPROVAL) == 2  # 503 applied nothing: simply sent again
    assert erp.count(operation="ApprovalRequests.read") == 0  # and nothing to ask about
    assert len(erp.approvals()) == 1


async def test_a_500_after_a_create_is_asked_about_before_sending_again(adapter: ODataErpAdapter, erp: ODataErp) -> None:
    erp.faults.add(parse_fault(f"{CREATE_APPROVAL}:error:status=500,times=1"))
    receipt = await adapter.submit_approval(approval(), context=CTX)
    assert receipt.document_number == "1000000001"
    codes = [(r.operation, r.code) for r in erp.requests if r.operation != "ServiceDocument.read"]
    assert codes == [(CREATE_APPROVAL, "INTERNAL_ERROR"), ("ApprovalRequests.read", "OK"), (CREATE_APPROVAL, "OK")]
    assert len(erp.approvals()) == 1


async def test_a_connection_dropped_before_the_create_is_sent_again(adapter: ODataErpAdapter, erp: ODataErp) -> None:
    erp.faults.add(parse_fault(f"{CREATE_ENTRY}:drop:times=1"))
    receipt = await adapter.post_voucher(contribution_voucher(), context=CTX)
    assert receipt.status == "posted"
    assert erp.count(operation=CREATE_ENTRY) == 2 and erp.count(operation="JournalEntries.read") == 1
    assert len(erp.journal_entries()) == 1


async def test_a_create_that_times_out_lands_once(make_adapter: MakeAdapter, erp: ODataErp) -> None:
    adapter = make_adapter(
        upstream_policy=policy().evolve(timeouts=Timeouts(connect=1.0, read=0.2, write=1.0, pool=1.0))
    )
    erp.faults.add(parse_fault(f"{CREATE_APPROVAL}:latency:ms=500,times=1"))
    receipt = await adapter.submit_approval(approval(), context=CTX)
    assert receipt.reference == "HGW-APPROVAL-1"
    assert erp.count(operation="ApprovalRequests.read") >= 1  # it asked before anything was resent
    await asyncio.sleep(0.5)  # let the slow first create finish inside the ERP
    assert [a.reference for a in erp.approvals()] == ["HGW-APPROVAL-1"]


# -- exactly once ----------------------------------------------------------------------------------


async def test_an_approval_whose_answer_is_lost_exists_exactly_once(adapter: ODataErpAdapter, erp: ODataErp) -> None:
    erp.faults.add(parse_fault(f"{CREATE_APPROVAL}:drop_after:times=1"))
    receipt = await adapter.submit_approval(approval("HGW-ONCE-A"), context=CTX)
    assert receipt.reference == "HGW-ONCE-A" and receipt.document_number == "1000000001"
    # The ERP applied the create and the answer was lost: the adapter asked, it did not resend.
    assert erp.count(operation=CREATE_APPROVAL) == 1
    assert erp.count(operation=CREATE_APPROVAL, code="DROP") == 1
    lookups = [r for r in erp.requests if r.operation == "ApprovalRequests.read"]
    assert [(r.biz_no, r.code) for r in lookups] == [("HGW-ONCE-A", "OK")]
    assert [a.reference for a in erp.approvals()].count("HGW-ONCE-A") == 1
    # Submitting the same reference again (a resumed gateway) still makes nothing new.
    again = await adapter.submit_approval(approval("HGW-ONCE-A"), context=CTX)
    assert again.document_number == "1000000001"
    assert erp.count(operation=CREATE_APPROVAL, code="DUPLICATE_REFERENCE") == 1
    assert len(erp.approvals()) == 1


async def test_a_voucher_whose_answer_is_lost_exists_exactly_once(adapter: ODataErpAdapter, erp: ODataErp) -> None:
    erp.faults.add(parse_fault(f"{CREATE_ENTRY}:drop_after:times=1"))
    receipt = await adapter.post_voucher(contribution_voucher("HGW-ONCE-V"), context=CTX)
    assert receipt.status == "posted" and receipt.document_number == "5100000001"
    assert erp.count(operation=CREATE_ENTRY) == 1
    assert erp.count(operation=CREATE_ENTRY, code="DROP") == 1
    assert erp.count(operation="JournalEntries.read") == 1
    assert [e.reference for e in erp.journal_entries()] == ["HGW-ONCE-V"]


async def test_concurrent_submissions_of_one_reference_make_one_request(
    make_adapter: MakeAdapter, erp: ODataErp
) -> None:
    # Two gateway replicas racing on one approval: the ERP's unique Reference decides.
    first, second = make_adapter(), make_adapter()
    receipts = await asyncio.gather(
        *(a.submit_approval(approval("HGW-RACE"), context=CTX) for a in (first, second, first, second))
    )
    assert {r.document_number for r in receipts} == {"1000000001"}
    assert len(erp.approvals()) == 1
