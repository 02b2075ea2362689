"""The iso20022 bank adapter against its real mock (Sandbox Bank A) over loopback:
payments through every status, every rejection, statements that reconcile, faults,
and exactly once when the answer to an upload is lost."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from adapters import (
    AccountParty,
    AdapterConfig,
    CallContext,
    PaymentSubmission,
    UpstreamAuthenticationError,
    UpstreamNotFound,
)
from adapters.bank.iso20022 import Iso20022BankAdapter
from adapters.http import RetryPolicy, Timeouts, UpstreamPolicy
from mocks import Fault
from mocks.iso20022 import Iso20022Bank

STEP = 2.0
CHINA = dt.timezone(dt.timedelta(hours=8))
PAYMENTS = "/h2h/v1/payments"
STATEMENTS = "/h2h/v1/statements"
CONTEXT = CallContext(request_id="it-iso20022")
FAST = UpstreamPolicy(
    timeouts=Timeouts(connect=2.0, read=2.0, write=2.0, pool=2.0),
    retry=RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.01, jitter=0.0, deadline=10.0),
)

CHANGSHA = AccountParty(name="长沙示例制造有限公司", account="43050188000012345678", bank_code="999551000012")
GUANGZHOU = AccountParty(name="广州示例科技有限公司", account="44050158000087654321", bank_code="999581000019")
WUHAN = AccountParty(name="武汉示例软件有限公司", account="42050116000011223344", bank_code="999521000015")
LI_MING = AccountParty(name="李明", account="6217990000000000022", bank_code="999551000012")
WANG_FANG = AccountParty(name="Wang Fang", account="6217990000000000014", bank_code="999581000019")


class Clock:
    """The bank's clock, moved by the test (signatures stay within the 300 s window)."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = STEP) -> None:
        self.now += seconds

    def today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.now, CHINA).date()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def credentials() -> dict[str, str]:
    """One fresh set, passed to the mock's constructor and the adapter's configuration alike."""
    return {"api_key": "hgw-it-" + secrets.token_hex(4), "api_secret": secrets.token_urlsafe(24)}


@pytest.fixture
def bank(clock: Clock, credentials: dict[str, str]) -> Iterator[Iso20022Bank]:
    with Iso20022Bank(settle_seconds=STEP, clock=clock, **credentials) as server:
        yield server


def configure(bank: Iso20022Bank, credentials: dict[str, str]) -> AdapterConfig:
    accounts = [{"account": a.account, "name": a.name, "bank_code": a.bank_code} for a in (CHANGSHA, GUANGZHOU, WUHAN)]
    return AdapterConfig(
        name="sandbox-bank-a", base_url=bank.base_url, credentials=credentials,
        options={"accounts": accounts}, environment="sandbox",
    )


@pytest.fixture
async def adapter(bank: Iso20022Bank, credentials: dict[str, str]) -> AsyncIterator[Iso20022BankAdapter]:
    instance = Iso20022BankAdapter(configure(bank, credentials), policy=FAST)
    yield instance
    await instance.aclose()


def payment(reference: str = "PAY-IT-0001", **overrides: Any) -> PaymentSubmission:
    values: dict[str, Any] = {
        "reference": reference,
        "debtor": CHANGSHA,
        "creditor": LI_MING,
        "amount": Decimal("1280.50"),
        "purpose": "reimbursement",
        "remittance": f"Reimbursement {reference}",
        "requested_on": dt.datetime.now(CHINA).date(),
    }
    values.update(overrides)
    return PaymentSubmission(**values)


def uploads(bank: Iso20022Bank) -> int:
    return bank.count(path=PAYMENTS)


def status_queries(bank: Iso20022Bank) -> int:
    return bank.count(operation="pain.002")


# -- the happy path -----------------------------------------------------------------------------------


async def test_a_payment_goes_through_every_status_and_reconciles(
    adapter: Iso20022BankAdapter, bank: Iso20022Bank, clock: Clock
) -> None:
    submission = payment()
    receipt = await adapter.initiate_payment(submission, context=CONTEXT)
    assert (receipt.reference, receipt.status, receipt.reason) == ("PAY-IT-0001", "submitted", None)
    assert receipt.bank_reference and receipt.bank_reference.startswith("SBA")
    clock.advance()
    accepted = await adapter.find_payment("PAY-IT-0001", context=CONTEXT)
    assert accepted is not None and (accepted.status, accepted.settled_on) == ("accepted", None)
    today = clock.today()
    pending = await adapter.statement(CHANGSHA.account, today, today, context=CONTEXT)
    assert [(e.status, e.reference) for e in pending.entries] == [("pending", "PAY-IT-0001")]
    clock.advance()
    settled = await adapter.find_payment("PAY-IT-0001", context=CONTEXT)
    assert settled is not None
    assert (settled.status, settled.settled_on, settled.bank_reference) == ("settled", today, receipt.bank_reference)

    statement = await adapter.statement(CHANGSHA.account, today, today, context=CONTEXT)
    [entry] = statement.entries
    assert (entry.reference, entry.direction, entry.status, entry.amount) == (
        "PAY-IT-0001", "debit", "booked", Decimal("1280.50"),
    )
    assert (entry.counterparty_name, entry.counterparty_account) == ("李明", LI_MING.account)
    assert (entry.entry_reference, entry.booked_on, entry.remittance) == (
        receipt.bank_reference, today, "Reimbursement PAY-IT-0001",
    )
    assert entry.bank_transaction_code == "PMNT/ICDT/DMCT"
    assert statement.opening_balance is not None and statement.closing_balance is not None
    assert statement.opening_balance - statement.closing_balance == Decimal("1280.50")
    assert statement.closing_balance == bank.balance(CHANGSHA.account) == Decimal("4998719.50")


async def test_chinese_names_and_maximum_lengths_pass_the_banks_own_schema_check(
    adapter: Iso20022BankAdapter, bank: Iso20022Bank
) -> None:
    creditor = AccountParty(name="欧阳" + "娜" * 138, account="6" * 32, bank_code="CMBCCNBS")
    submission = payment("P" * 35, creditor=creditor, remittance="报销款" * 46 + "报销", purpose="other")
    receipt = await adapter.initiate_payment(submission, context=CONTEXT)
    assert receipt.status == "submitted"
    stored = bank.payment("P" * 35)
    assert stored is not None
    assert (stored.transfer.creditor_name, stored.transfer.remittance) == (creditor.name, submission.remittance)
    assert stored.transfer.purpose == "OTHR"


async def test_a_contribution_between_two_client_accounts(adapter: Iso20022BankAdapter, bank: Iso20022Bank) -> None:
    creditor = AccountParty(name=GUANGZHOU.name, account=GUANGZHOU.account, bank_code="SBXACNBJ")
    await adapter.initiate_payment(
        payment(creditor=creditor, amount=Decimal("96000.00"), purpose="social_security_contribution"),
        context=CONTEXT,
    )
    bank.settle()
    today = dt.datetime.now(CHINA).date()
    statement = await adapter.statement(GUANGZHOU.account, today, today, context=CONTEXT)
    [credit] = statement.entries
    assert (credit.direction, credit.reference, credit.counterparty_name) == ("credit", "PAY-IT-0001", CHANGSHA.name)
    assert bank.payment("PAY-IT-0001").transfer.purpose == "GOVI"  # type: ignore[union-attr]


async def test_a_year_and_more_of_statements_with_seeded_history(
    adapter: Iso20022BankAdapter, bank: Iso20022Bank
) -> None:
    statement = await adapter.statement(WUHAN.account, dt.date(2025, 6, 1), dt.date(2026, 10, 31), context=CONTEXT)
    assert bank.count(path=STATEMENTS) == 2  # the bank serves at most 366 days per request
    assert len(statement.entries) == 30
    assert {e.bank_transaction_code for e in statement.entries} == {"PMNT/RCDT/DMCT", "PMNT/ICDT/SALA", "PMNT/ICDT/TAXS"}
    assert statement.closing_balance == Decimal("20000.00")
    assert statement.opening_balance == Decimal("18000.00")
    salary = next(e for e in statement.entries if e.bank_transaction_code == "PMNT/ICDT/SALA")
    assert (salary.direction, salary.amount, salary.booked_on) == ("debit", Decimal("18000.00"), dt.date(2026, 1, 10))


async def test_unknown_payments_and_accounts(adapter: Iso20022BankAdapter) -> None:
    assert await adapter.find_payment("PAY-NEVER-SENT", context=CONTEXT) is None
    with pytest.raises(UpstreamNotFound):
        await adapter.statement(LI_MING.account, dt.date(2026, 1, 1), dt.date(2026, 1, 31), context=CONTEXT)


async def test_wrong_credentials_are_refused(bank: Iso20022Bank, credentials: dict[str, str]) -> None:
    wrong = {**credentials, "api_secret": "not-the-secret"}
    adapter = Iso20022BankAdapter(configure(bank, wrong), policy=FAST)
    try:
        with pytest.raises(UpstreamAuthenticationError):
            await adapter.initiate_payment(payment(), context=CONTEXT)
    finally:
        await adapter.aclose()
    assert bank.payments() == []


# -- rejections -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason", "code"),
    [
        ({"creditor": AccountParty("李明", LI_MING.account, "999999999999")}, "invalid_bank_code", "RC10"),
        ({"creditor": AccountParty("李明", "6217990000000000998", "999551000012")}, "invalid_account", "AC01"),
        ({"creditor": AccountParty("李明", "12-34", "308584000013")}, "invalid_account", "AC03"),
        ({"amount": Decimal("1000000.01")}, "invalid_amount", "AM02"),
        ({"amount": Decimal("0.00")}, "invalid_amount", "AM01"),
        ({"requested_on": dt.date(2026, 1, 5)}, "cut_off_passed", "CUTA"),
    ],
)
async def test_rejections_at_upload(
    adapter: Iso20022BankAdapter, bank: Iso20022Bank, overrides: dict[str, Any], reason: str, code: str
) -> None:
    receipt = await adapter.initiate_payment(payment(**overrides), context=CONTEXT)
    assert (receipt.status, receipt.reason, receipt.upstream_code) == ("rejected", reason, code)
    assert receipt.upstream_message
    assert await adapter.find_payment("PAY-IT-0001", context=CONTEXT) == receipt


@pytest.mark.parametrize(
    ("overrides", "reason", "code"),
    [
        ({"creditor": AccountParty("赵磊", "6217990000000000048", "999551000012")}, "account_closed", "AC04"),
        ({"creditor": AccountParty("陈静", "6217990000000000055", "999551000012")}, "account_blocked", "AC06"),
        ({"creditor": AccountParty("刘洋", "6217990000000000063", "999581000019")}, "regulatory", "RR04"),
        ({"creditor": AccountParty("王小芳", WANG_FANG.account, WANG_FANG.bank_code)}, "creditor_name_mismatch", "BE01"),
        ({"debtor": WUHAN, "amount": Decimal("20000.01")}, "insufficient_funds", "AM04"),
    ],
)
async def test_rejections_at_the_check_step(
    adapter: Iso20022BankAdapter, clock: Clock, overrides: dict[str, Any], reason: str, code: str
) -> None:
    assert (await adapter.initiate_payment(payment(**overrides), context=CONTEXT)).status == "submitted"
    clock.advance()
    receipt = await adapter.find_payment("PAY-IT-0001", context=CONTEXT)
    assert receipt is not None
    assert (receipt.status, receipt.reason, receipt.upstream_code) == ("rejected", reason, code)


async def test_steering_the_bank_changes_the_outcome(adapter: Iso20022BankAdapter, bank: Iso20022Bank) -> None:
    bank.set_balance(CHANGSHA.account, Decimal("100.00"))
    await adapter.initiate_payment(payment("PAY-IT-A"), context=CONTEXT)
    bank.close_account(WANG_FANG.account)
    await adapter.initiate_payment(payment("PAY-IT-B", creditor=WANG_FANG, amount=Decimal("1.00")), context=CONTEXT)
    bank.settle()
    a = await adapter.find_payment("PAY-IT-A", context=CONTEXT)
    b = await adapter.find_payment("PAY-IT-B", context=CONTEXT)
    assert a is not None and b is not None
    assert (a.reason, b.reason) == ("insufficient_funds", "account_closed")


async def test_the_same_payment_under_a_second_reference_is_a_duplicate(adapter: Iso20022BankAdapter) -> None:
    first = await adapter.initiate_payment(payment("PAY-IT-A", remittance="R-1"), context=CONTEXT)
    second = await adapter.initiate_payment(payment("PAY-IT-B", remittance="R-1"), context=CONTEXT)
    assert (first.status, second.status, second.reason, second.upstream_code) == (
        "submitted", "rejected", "duplicate_payment", "AM05",
    )


# -- faults -------------------------------------------------------------------------------------------------


async def test_a_busy_bank_is_retried_and_pays_once(adapter: Iso20022BankAdapter, bank: Iso20022Bank) -> None:
    bank.faults.add(Fault(route=PAYMENTS, kind="rate_limit", retry_after=0, times=1))
    bank.faults.add(Fault(route=PAYMENTS, kind="error", status=503, times=1))
    receipt = await adapter.initiate_payment(payment(), context=CONTEXT)
    assert receipt.status == "submitted"
    assert uploads(bank) == 3 and status_queries(bank) == 0
    assert len(bank.payments()) == 1


async def test_a_500_to_an_upload_is_asked_about_then_sent_once_more(
    adapter: Iso20022BankAdapter, bank: Iso20022Bank
) -> None:
    bank.faults.add(Fault(route=PAYMENTS, kind="error", status=500, times=1))  # not applied
    receipt = await adapter.initiate_payment(payment(), context=CONTEXT)
    assert receipt.status == "submitted"
    assert uploads(bank) == 2 and status_queries(bank) == 1
    assert [p.end_to_end_id for p in bank.payments()] == ["PAY-IT-0001"]


async def test_status_queries_and_statements_survive_transient_faults(
    adapter: Iso20022BankAdapter, bank: Iso20022Bank
) -> None:
    await adapter.initiate_payment(payment(), context=CONTEXT)
    bank.faults.add(Fault(route="pain.002", kind="drop", times=1))
    bank.faults.add(Fault(route="pain.002", kind="error", status=503, times=1))
    receipt = await adapter.find_payment("PAY-IT-0001", context=CONTEXT)
    assert receipt is not None and receipt.status == "submitted"
    assert status_queries(bank) == 3
    bank.faults.add(Fault(route=STATEMENTS, kind="error", status=502, times=1))
    today = dt.datetime.now(CHINA).date()
    await adapter.statement(CHANGSHA.account, today, today, context=CONTEXT)
    assert bank.count(path=STATEMENTS) == 2


# -- exactly once ---------------------------------------------------------------------------------------------


async def test_a_lost_answer_is_asked_about_and_never_uploaded_twice(
    adapter: Iso20022BankAdapter, bank: Iso20022Bank, clock: Clock
) -> None:
    bank.faults.add(Fault(route=PAYMENTS, kind="drop_after", times=1))
    submission = payment()
    receipt = await adapter.initiate_payment(submission, context=CONTEXT)
    assert (receipt.reference, receipt.status) == ("PAY-IT-0001", "submitted")
    # The bank applied the upload and the answer was lost: the adapter asked instead of resending.
    records = bank.requests.snapshot()
    assert [(r.operation, r.code) for r in records] == [("pain.001", "DROP"), ("pain.002", "RCVD")]
    assert uploads(bank) == 1 and status_queries(bank) == 1
    assert [p.end_to_end_id for p in bank.payments()] == ["PAY-IT-0001"]

    # Asked again later (a retry after a crash), the bank keeps the one it has.
    again = await adapter.initiate_payment(submission, context=CONTEXT)
    assert again.bank_reference == receipt.bank_reference
    assert bank.count(path=PAYMENTS, code="DU01") == 1
    assert len(bank.payments()) == 1

    clock.advance()
    clock.advance()
    settled = await adapter.find_payment("PAY-IT-0001", context=CONTEXT)
    assert settled is not None and settled.status == "settled"
    debits = [e for e in bank.entries(CHANGSHA.account) if e.end_to_end_id == "PAY-IT-0001"]
    assert len(debits) == 1  # booked once


async def test_an_upload_dropped_before_the_bank_saw_it_is_sent_again_once(
    adapter: Iso20022BankAdapter, bank: Iso20022Bank
) -> None:
    bank.faults.add(Fault(route=PAYMENTS, kind="drop", times=1))
    receipt = await adapter.initiate_payment(payment(), context=CONTEXT)
    assert receipt.status == "submitted"
    assert [(r.operation, r.code) for r in bank.requests.snapshot()] == [
        ("pain.001", "DROP"), ("pain.002", "NOT_FOUND"), ("pain.001", "RCVD"),
    ]
    assert len(bank.payments()) == 1
