"""The kingdee adapter against the kingdee mock ERP over loopback: two independent
readings of docs/dialects/kingdee.md that must agree, including when answers are lost."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from adapters import (
    AdapterConfig,
    ApprovalReceipt,
    ApprovalSubmission,
    BudgetPosition,
    BusinessRejection,
    CallContext,
    UpstreamNotFound,
    UpstreamServerError,
    UpstreamTimeout,
    VoucherLine,
    VoucherSubmission,
)
from adapters.erp.kingdee import KingdeeErpAdapter
from adapters.http import CircuitPolicy, RetryPolicy, Timeouts, UpstreamPolicy
from mocks.faults import Fault, parse_fault
from mocks.kingdee import KingdeeErp

CREDENTIALS = {"acct_id": "HGW-LOOPBACK", "username": "hgw-loopback", "password": "loopback-password"}
CTX = CallContext(request_id="loopback")
DECISION = 0.2
# Social-insurance expense and the bank deposit account of the sandbox chart.
EXPENSE, BANK = "6602.01", "1002.01"
POLICY = UpstreamPolicy(
    timeouts=Timeouts(connect=2.0, read=2.0, write=2.0, pool=2.0),
    retry=RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05, jitter=0.0, deadline=8.0, max_retry_after=2.0),
    circuit=CircuitPolicy(failure_threshold=1000),
)


@pytest.fixture
def erp() -> Iterator[KingdeeErp]:
    with KingdeeErp(decision_seconds=DECISION, **CREDENTIALS) as server:
        yield server


@pytest.fixture
async def adapter(erp: KingdeeErp) -> AsyncIterator[KingdeeErpAdapter]:
    config = AdapterConfig(name="kingdee-loopback", base_url=erp.base_url, credentials=dict(CREDENTIALS))
    made = KingdeeErpAdapter(config, policy=POLICY)
    yield made
    await made.aclose()


def approval(reference: str = "HGW-AP-LOOP-1", amount: str = "86500.00", **overrides: Any) -> ApprovalSubmission:
    values: dict[str, Any] = {
        "reference": reference,
        "kind": "social_security_contribution",
        "amount": Decimal(amount),
        "cost_center": "CS-HR",
        "period": "2026-11",
        "description": "2026-11 社保缴费",
    }
    values.update(overrides)
    return ApprovalSubmission(**values)


def voucher(reference: str = "HGW-VC-LOOP-1", amount: str = "86500.00", **overrides: Any) -> VoucherSubmission:
    values: dict[str, Any] = {
        "reference": reference,
        "date": dt.date(2026, 11, 30),
        "lines": (
            VoucherLine(account=EXPENSE, debit=Decimal(amount), credit=Decimal(0), cost_center="CS-HR", description="社保费用"),
            VoucherLine(account=BANK, debit=Decimal(0), credit=Decimal(amount), description="银行付款"),
        ),
        "description": "2026-11 社保缴费",
    }
    values.update(overrides)
    return VoucherSubmission(**values)


async def decided(adapter: KingdeeErpAdapter, reference: str, *, within: float = 5.0) -> ApprovalReceipt:
    """Poll ``find_approval`` until the approver has decided (bounded)."""
    give_up = time.monotonic() + within
    while True:
        receipt = await adapter.find_approval(reference, context=CTX)
        assert receipt is not None
        if receipt.status != "pending" or time.monotonic() > give_up:
            return receipt
        await asyncio.sleep(DECISION / 2)


def bills_of(erp: KingdeeErp, form: str, reference: str) -> list[Any]:
    return [bill for bill in erp.bills(form) if bill.external_no == reference]


# -- budgets ----------------------------------------------------------------------------------


async def test_budgets_of_the_seeded_cost_centres(adapter: KingdeeErpAdapter) -> None:
    assert await adapter.budget("CS-HR", "2026-11", context=CTX) == BudgetPosition(
        cost_center="CS-HR", period="2026-11", budget=Decimal("300000.00"), committed=Decimal("0.00")
    )
    gz = await adapter.budget("GZ-HR", "2024-01", context=CTX)
    assert gz.budget == Decimal("200000.00")
    with pytest.raises(UpstreamNotFound):
        await adapter.budget("CS-HR", "2027-01", context=CTX)
    with pytest.raises(UpstreamNotFound):
        await adapter.budget("SZ-HR", "2026-11", context=CTX)


# -- approvals --------------------------------------------------------------------------------


async def test_an_approval_within_budget_is_approved_and_occupies_it(adapter: KingdeeErpAdapter, erp: KingdeeErp) -> None:
    erp.set_budget("CS-HR", "2026-11", "100000.00", committed="10000.55")
    receipt = await adapter.submit_approval(approval(), context=CTX)
    assert receipt.status == "pending" and receipt.document_number == "FYSQ000001"
    assert receipt.budget == BudgetPosition(
        cost_center="CS-HR", period="2026-11", budget=Decimal("100000.00"), committed=Decimal("10000.55")
    )
    final = await decided(adapter, "HGW-AP-LOOP-1")
    assert final.status == "approved" and final.decided_on is not None
    assert final.budget is not None and final.budget.committed == Decimal("96500.55")
    assert erp.budget("CS-HR", "2026-11") == (Decimal("100000.00"), Decimal("96500.55"))
    [bill] = bills_of(erp, "ER_ExpenseRequest", "HGW-AP-LOOP-1")
    assert bill.status == "C" and bill.expense_item == "FY001" and bill.amount == Decimal("86500.00")


async def test_an_approval_over_the_available_budget_is_rejected(adapter: KingdeeErpAdapter, erp: KingdeeErp) -> None:
    erp.set_budget("GZ-HR", "2026-11", "50000.00", committed="0")
    await adapter.submit_approval(approval("HGW-AP-LOOP-2", "50000.01", cost_center="GZ-HR"), context=CTX)
    final = await decided(adapter, "HGW-AP-LOOP-2")
    assert final.status == "rejected" and final.reason_code == "BUDGET_EXCEEDED"
    assert final.reason_message is not None and "50000.01" in final.reason_message
    assert final.budget is not None and final.budget.committed == Decimal("0.00")


async def test_the_approvers_own_decisions(adapter: KingdeeErpAdapter, erp: KingdeeErp) -> None:
    erp.set_auto_decide(False)
    await adapter.submit_approval(approval("HGW-AP-LOOP-3", "10.00"), context=CTX)
    await adapter.submit_approval(approval("HGW-AP-LOOP-4", "20.00", kind="reimbursement"), context=CTX)
    await asyncio.sleep(DECISION * 2)
    assert (await adapter.find_approval("HGW-AP-LOOP-3", context=CTX)).status == "pending"  # type: ignore[union-attr]
    erp.decide("HGW-AP-LOOP-3", False, "附件不全")
    erp.decide("HGW-AP-LOOP-4", True)
    rejected = await adapter.find_approval("HGW-AP-LOOP-3", context=CTX)
    assert rejected is not None and (rejected.status, rejected.reason_code, rejected.reason_message) == (
        "rejected", "REJECTED", "附件不全"
    )
    approved = await adapter.find_approval("HGW-AP-LOOP-4", context=CTX)
    assert approved is not None and approved.status == "approved"
    assert bills_of(erp, "ER_ExpenseRequest", "HGW-AP-LOOP-4")[0].expense_item == "FY002"
    assert await adapter.find_approval("HGW-AP-NEVER", context=CTX) is None


async def test_submitting_an_approval_again_changes_nothing(adapter: KingdeeErpAdapter, erp: KingdeeErp) -> None:
    first = await adapter.submit_approval(approval(), context=CTX)
    again = await adapter.submit_approval(approval(), context=CTX)
    assert again.document_number == first.document_number
    assert len(bills_of(erp, "ER_ExpenseRequest", "HGW-AP-LOOP-1")) == 1
    assert erp.count(operation="Save") == 1 and erp.count(operation="Submit") == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"cost_center": "SZ-HR"}, "cost_center"),
        ({"period": "2027-01"}, "period"),
        ({"kind": "FY404"}, "kind"),
        ({"amount": Decimal("0")}, "amount"),
        ({"description": "说" * 256}, "description"),
    ],
)
async def test_approval_refusals_name_the_field(
    adapter: KingdeeErpAdapter, erp: KingdeeErp, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(BusinessRejection) as caught:
        await adapter.submit_approval(approval(**overrides), context=CTX)
    assert caught.value.field == field and caught.value.upstream_code == "11" and caught.value.upstream_message
    assert erp.bills() == []


# -- vouchers ---------------------------------------------------------------------------------


async def test_a_contribution_voucher_is_posted(adapter: KingdeeErpAdapter, erp: KingdeeErp) -> None:
    receipt = await adapter.post_voucher(voucher(), context=CTX)
    assert (receipt.status, receipt.document_number) == ("posted", "PZ-202611-0001")
    assert receipt.posted_on is not None
    [bill] = bills_of(erp, "GL_VOUCHER", "HGW-VC-LOOP-1")
    assert bill.status == "C" and bill.posted
    assert [(line["account"], line["debit"], line["credit"]) for line in bill.lines] == [
        (EXPENSE, Decimal("86500.00"), Decimal("0.00")),
        (BANK, Decimal("0.00"), Decimal("86500.00")),
    ]
    assert await adapter.find_voucher("HGW-VC-LOOP-1", context=CTX) == receipt
    assert await adapter.find_voucher("HGW-VC-NEVER", context=CTX) is None
    again = await adapter.post_voucher(voucher(), context=CTX)
    assert again == receipt and erp.count(operation="Save") == 1


async def test_a_voucher_rejected_in_the_erp(adapter: KingdeeErpAdapter, erp: KingdeeErp) -> None:
    erp.faults.add(Fault(route="Audit", kind="error", status=503, times=10))  # the adapter cannot audit it
    with pytest.raises(UpstreamServerError):
        await adapter.post_voucher(voucher(), context=CTX)
    erp.faults.clear()
    erp.decide("HGW-VC-LOOP-1", False, "科目错误")
    receipt = await adapter.post_voucher(voucher(), context=CTX)
    assert (receipt.status, receipt.reason_code, receipt.reason_message) == ("rejected", "REJECTED", "科目错误")
    assert erp.count(operation="Save") == 1 and erp.count(operation="Audit", code="0") == 0


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        (
            (VoucherLine(account=EXPENSE, debit=Decimal("100"), credit=Decimal(0)),
             VoucherLine(account=BANK, debit=Decimal(0), credit=Decimal("99.99"))),
            "lines",
        ),
        (
            (VoucherLine(account=EXPENSE, debit=Decimal("100"), credit=Decimal(0)),
             VoucherLine(account="9999.99", debit=Decimal(0), credit=Decimal("100"))),
            "lines[1].account",
        ),
        (
            (VoucherLine(account=EXPENSE, debit=Decimal("100"), credit=Decimal(0), cost_center="SZ-HR"),
             VoucherLine(account=BANK, debit=Decimal(0), credit=Decimal("100"))),
            "lines[0].cost_center",
        ),
        ((VoucherLine(account=EXPENSE, debit=Decimal("100"), credit=Decimal(0)),), "lines"),
    ],
)
async def test_voucher_refusals_name_the_line(
    adapter: KingdeeErpAdapter, erp: KingdeeErp, lines: tuple[VoucherLine, ...], field: str
) -> None:
    with pytest.raises(BusinessRejection) as caught:
        await adapter.post_voucher(voucher(lines=lines), context=CTX)
    assert caught.value.field == field and caught.value.upstream_code == "11"
    assert erp.bills() == []


async def test_a_voucher_outside_the_open_periods_is_refused_on_its_date(adapter: KingdeeErpAdapter) -> None:
    with pytest.raises(BusinessRejection) as caught:
        await adapter.post_voucher(voucher(date=dt.date(2027, 1, 5)), context=CTX)
    assert caught.value.field == "date"


# -- sessions ---------------------------------------------------------------------------------


async def test_an_expired_session_is_renewed_once(adapter: KingdeeErpAdapter, erp: KingdeeErp) -> None:
    await adapter.budget("CS-HR", "2026-11", context=CTX)
    await adapter.budget("CS-HR", "2026-11", context=CTX)
    assert erp.count(operation="ValidateUser") == 1
    erp.expire_sessions()
    receipt = await adapter.post_voucher(voucher(), context=CTX)
    assert receipt.status == "posted"
    assert erp.count(operation="ValidateUser") == 2
    assert erp.count(operation="ExecuteBillQuery", code="1") == 1  # the one call refused, then repeated


async def test_a_session_that_times_out_is_renewed(erp: KingdeeErp) -> None:
    erp.session_ttl = 0.3
    config = AdapterConfig(name="kingdee-loopback", base_url=erp.base_url, credentials=dict(CREDENTIALS))
    adapter = KingdeeErpAdapter(config, policy=POLICY)
    try:
        await adapter.budget("CS-HR", "2026-11", context=CTX)
        await asyncio.sleep(0.4)
        await adapter.budget("CS-HR", "2026-11", context=CTX)
        assert erp.count(operation="ValidateUser") == 2
    finally:
        await adapter.aclose()


# -- faults and exactly once --------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["Save", "Submit", "Audit"])
async def test_a_voucher_step_whose_answer_is_lost_is_asked_about_not_repeated(
    adapter: KingdeeErpAdapter, erp: KingdeeErp, operation: str
) -> None:
    erp.faults.add(parse_fault(f"{operation}:drop_after:times=1"))
    receipt = await adapter.post_voucher(voucher(), context=CTX)
    assert receipt.status == "posted" and receipt.document_number == "PZ-202611-0001"
    [bill] = bills_of(erp, "GL_VOUCHER", "HGW-VC-LOOP-1")
    assert bill.status == "C"
    assert (erp.count(operation="Save"), erp.count(operation="Submit"), erp.count(operation="Audit")) == (1, 1, 1)
    assert erp.count(operation=operation, code="DROP") == 1
    # After the lost answer the adapter asked by reference before going on.
    log = [(r.operation, r.code) for r in erp.requests]
    dropped_at = log.index((operation, "DROP"))
    assert log[dropped_at + 1] == ("ExecuteBillQuery", "0")


@pytest.mark.parametrize("operation", ["Save", "Submit"])
async def test_an_approval_step_whose_answer_is_lost_is_asked_about_not_repeated(
    adapter: KingdeeErpAdapter, erp: KingdeeErp, operation: str
) -> None:
    erp.faults.add(Fault(route=operation, kind="drop_after", times=1))
    receipt = await adapter.submit_approval(approval(), context=CTX)
    assert receipt.status == "pending" and receipt.document_number == "FYSQ000001"
    [bill] = bills_of(erp, "ER_ExpenseRequest", "HGW-AP-LOOP-1")
    assert bill.status in ("B", "C")  # submitted (the approver may already have decided)
    assert erp.count(operation="Save") == 1 and erp.count(operation="Submit") == 1
    assert (await decided(adapter, "HGW-AP-LOOP-1")).status == "approved"


async def test_lost_answers_on_every_step_of_many_vouchers_leave_one_bill_each(
    adapter: KingdeeErpAdapter, erp: KingdeeErp
) -> None:
    for operation in ("Save", "Submit", "Audit"):
        erp.faults.add(Fault(route=operation, kind="drop_after", times=2))
    references = [f"HGW-VC-LOOP-{n}" for n in range(1, 5)]
    receipts = await asyncio.gather(*(adapter.post_voucher(voucher(ref), context=CTX) for ref in references))
    assert {receipt.status for receipt in receipts} == {"posted"}
    for reference in references:
        [bill] = bills_of(erp, "GL_VOUCHER", reference)
        assert bill.status == "C"
    assert len(erp.bills("GL_VOUCHER")) == 4
    assert sorted(r.document_number for r in receipts) == [f"PZ-202611-000{n}" for n in range(1, 5)]  # type: ignore[type-var]
    assert erp.count(operation="Save") == 4 and erp.count(operation="Audit") == 4


async def test_a_save_lost_before_it_was_applied_is_sent_again_once(adapter: KingdeeErpAdapter, erp: KingdeeErp) -> None:
    erp.faults.add(Fault(route="Save", kind="drop", times=1))
    receipt = await adapter.post_voucher(voucher(), context=CTX)
    assert receipt.status == "posted"
    assert erp.count(operation="Save") == 2 and erp.count(operation="Save", code="0") == 1
    assert len(bills_of(erp, "GL_VOUCHER", "HGW-VC-LOOP-1")) == 1


async def test_a_500_after_submit_is_ambiguous_and_resolved_by_asking(adapter: KingdeeErpAdapter, erp: KingdeeErp) -> None:
    erp.faults.add(Fault(route="Submit", kind="error", status=500, times=1))
    receipt = await adapter.post_voucher(voucher(), context=CTX)
    assert receipt.status == "posted"
    # The ERP applied nothing on that 500; asked, it showed the voucher still saved, so it was submitted again.
    assert erp.count(operation="Submit") == 2 and erp.count(operation="Submit", code="0") == 1
    assert len(bills_of(erp, "GL_VOUCHER", "HGW-VC-LOOP-1")) == 1


async def test_busy_and_rate_limited_answers_are_retried(adapter: KingdeeErpAdapter, erp: KingdeeErp) -> None:
    erp.faults.add(Fault(route="Save", kind="error", status=503, times=1))
    erp.faults.add(Fault(route="ExecuteBillQuery", kind="rate_limit", retry_after=1, times=1))
    started = time.monotonic()
    receipt = await adapter.post_voucher(voucher(), context=CTX)
    assert receipt.status == "posted"
    assert time.monotonic() - started >= 1.0  # Retry-After was honoured
    assert erp.count(operation="Save") == 2 and erp.count(operation="Save", code="4") == 1
    assert erp.count(operation="ExecuteBillQuery", code="14") == 1
    assert len(erp.bills("GL_VOUCHER")) == 1


async def test_a_query_that_never_answers_is_a_timeout(erp: KingdeeErp) -> None:
    erp.faults.add(Fault(route="ExecuteBillQuery", kind="drop"))
    config = AdapterConfig(name="kingdee-loopback", base_url=erp.base_url, credentials=dict(CREDENTIALS))
    adapter = KingdeeErpAdapter(config, policy=POLICY)
    try:
        with pytest.raises(UpstreamTimeout):
            await adapter.find_voucher("HGW-VC-LOOP-1", context=CTX)
        assert erp.count(operation="ExecuteBillQuery") == POLICY.retry.max_attempts
    finally:
        await adapter.aclose()
