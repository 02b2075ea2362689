"""The openbanking adapter against the independently written mock bank, over loopback."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from adapters import (
    AccountParty,
    AdapterConfig,
    BusinessRejection,
    CallContext,
    PaymentSubmission,
    UpstreamAuthenticationError,
    UpstreamNotFound,
)
from adapters.bank.openbanking import OpenBankingBankAdapter
from adapters.http import CircuitPolicy, RetryPolicy, Timeouts, UpstreamPolicy
from mocks.faults import Fault
from mocks.openbanking import OpenBankingBank, sandbox_credentials

CHINA = dt.timezone(dt.timedelta(hours=8))
STEP = 2.0
CTX = CallContext(request_id="it-openbanking")

CHANGSHA = AccountParty(name="长沙示例制造有限公司", account="31310001000000000101", bank_code="313100000013")
GUANGZHOU = AccountParty(name="广州示例科技有限公司", account="31310001000000000202", bank_code="313100000013")
LOW_BALANCE = AccountParty(name="长沙示例制造有限公司", account="31310001000000000909", bank_code="313100000013")
LI_MING = AccountParty(name="李明", account="6222020200112233453", bank_code="102100099996")


class Clock:
    """The mock bank's clock: real time until a test moves it on."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def policy(read_timeout: float = 2.0) -> UpstreamPolicy:
    return UpstreamPolicy(
        timeouts=Timeouts(connect=2.0, read=read_timeout, write=2.0, pool=2.0),
        retry=RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05, jitter=0.0, deadline=8.0),
        circuit=CircuitPolicy(failure_threshold=1000),
    )


@pytest.fixture(scope="module")
def credentials() -> dict[str, str]:
    return sandbox_credentials()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bank(credentials: dict[str, str], clock: Clock) -> Iterator[OpenBankingBank]:
    # One set of credentials, generated once, configures both sides.
    with OpenBankingBank(settle_seconds=STEP, clock=clock, **credentials) as server:
        yield server


@pytest.fixture
async def make_adapter(
    bank: OpenBankingBank, credentials: dict[str, str]
) -> AsyncIterator[Callable[..., OpenBankingBankAdapter]]:
    made: list[OpenBankingBankAdapter] = []

    def make(*, creds: dict[str, str] | None = None, read_timeout: float = 2.0) -> OpenBankingBankAdapter:
        config = AdapterConfig(
            name="sandbox-bank-b",
            base_url=bank.base_url,
            regions=(),
            credentials=creds or credentials,
            options={"accounts": [CHANGSHA.account, GUANGZHOU.account]},
            environment="sandbox",
        )
        adapter = OpenBankingBankAdapter(config, policy=policy(read_timeout))
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def adapter(make_adapter: Callable[..., OpenBankingBankAdapter]) -> OpenBankingBankAdapter:
    return make_adapter()


def today(clock: Clock) -> dt.date:
    return dt.datetime.fromtimestamp(clock.now, CHINA).date()


def payment(clock: Clock, reference: str = "HGW-PAY-IT-0001", **overrides: Any) -> PaymentSubmission:
    values: dict[str, Any] = {
        "reference": reference,
        "debtor": CHANGSHA,
        "creditor": LI_MING,
        "amount": Decimal("1250.00"),
        "purpose": "reimbursement",
        "remittance": "Reimbursement R-2026-0042",
        "requested_on": today(clock),
    }
    values.update(overrides)
    return PaymentSubmission(**values)


# -- the happy path and every status --------------------------------------------------------


async def test_a_payment_goes_submitted_accepted_settled_and_onto_the_statement(
    adapter: OpenBankingBankAdapter, bank: OpenBankingBank, clock: Clock
) -> None:
    receipt = await adapter.initiate_payment(payment(clock), context=CTX)
    assert (receipt.reference, receipt.status) == ("HGW-PAY-IT-0001", "submitted")
    assert receipt.bank_reference == bank.payment_by_reference("HGW-PAY-IT-0001").payment_id
    clock.advance(STEP)
    accepted = await adapter.find_payment("HGW-PAY-IT-0001", context=CTX)
    assert accepted is not None and accepted.status == "accepted" and accepted.settled_on is None
    pending = await adapter.statement(CHANGSHA.account, today(clock), today(clock), context=CTX)
    assert [(e.status, e.reference) for e in pending.entries] == [("pending", "HGW-PAY-IT-0001")]
    assert pending.closing_balance == Decimal("5000000.00")
    clock.advance(STEP)
    settled = await adapter.find_payment("HGW-PAY-IT-0001", context=CTX)
    assert settled is not None and settled.status == "settled" and settled.settled_on == today(clock)
    assert (await adapter.payment_status(receipt.bank_reference, context=CTX)).status == "settled"
    statement = await adapter.statement(CHANGSHA.account, today(clock), today(clock), context=CTX)
    assert (statement.opening_balance, statement.closing_balance) == (Decimal("5000000.00"), Decimal("4998750.00"))
    [entry] = statement.entries
    assert (entry.reference, entry.amount, entry.direction, entry.status) == ("HGW-PAY-IT-0001", Decimal("1250.00"), "debit", "booked")
    assert (entry.counterparty_account, entry.counterparty_name) == (LI_MING.account, LI_MING.name)
    assert entry.remittance == "Reimbursement R-2026-0042" and entry.bank_transaction_code == "ICDT-DMCT"
    assert bank.balance(CHANGSHA.account) == Decimal("4998750.00")


async def test_a_payment_between_two_employer_accounts_is_credited_on_the_other(
    adapter: OpenBankingBankAdapter, clock: Clock
) -> None:
    await adapter.initiate_payment(payment(clock, creditor=GUANGZHOU, purpose="other"), context=CTX)
    clock.advance(STEP * 2)
    statement = await adapter.statement(GUANGZHOU.account, today(clock), today(clock), context=CTX)
    [entry] = statement.entries
    assert (entry.direction, entry.counterparty_account, entry.bank_transaction_code) == ("credit", CHANGSHA.account, "RCDT-DMCT")
    assert statement.closing_balance == Decimal("5001250.00")


async def test_unknown_payments_and_accounts(adapter: OpenBankingBankAdapter) -> None:
    assert await adapter.find_payment("HGW-PAY-NEVER-SENT", context=CTX) is None
    with pytest.raises(UpstreamNotFound):
        await adapter.payment_status("OBP-999999", context=CTX)
    with pytest.raises(UpstreamNotFound):
        await adapter.statement("6222000000000000000", dt.date(2026, 1, 1), dt.date(2026, 1, 31), context=CTX)


# -- business rejections -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason", "code"),
    [
        ({"creditor": AccountParty("张三", "6222000000000000012", "102100099996")}, "account_closed", "AC04"),
        ({"creditor": AccountParty("陈静", "6222000000000000020", "102100099996")}, "account_blocked", "AC06"),
        ({"creditor": AccountParty("无此人", "6222000000000000046", "102100099996")}, "invalid_account", "AC01"),
        ({"creditor": AccountParty("李鸣", LI_MING.account, LI_MING.bank_code)}, "creditor_name_mismatch", "BE01"),
        ({"creditor": AccountParty("赵磊", "6222000000000000053", "102100099996")}, "regulatory", "RR04"),
        ({"creditor": AccountParty("刘洋", "6222000000000000061", "102100099996")}, "other", "MS03"),
        ({"creditor": AccountParty("李明", LI_MING.account, "000100000000")}, "invalid_bank_code", "RC01"),
        ({"creditor": AccountParty("李明", LI_MING.account, "DEUTDEFFXXX")}, "invalid_bank_code", "RC01"),
        ({"debtor": LOW_BALANCE}, "insufficient_funds", "AM04"),
        ({"amount": Decimal("1000000.01")}, "invalid_amount", "AM02"),
        ({"requested_on": dt.date(2020, 1, 2)}, "cut_off_passed", "TM01"),
        ({"debtor": AccountParty("别家公司", "31310009999999999999", "313100000013")}, "invalid_account", "AC02"),
    ],
)
async def test_each_rejection_reaches_the_receipt_with_the_banks_code(
    adapter: OpenBankingBankAdapter, clock: Clock, overrides: dict[str, Any], reason: str, code: str
) -> None:
    receipt = await adapter.initiate_payment(payment(clock, **overrides), context=CTX)
    assert receipt.status == "submitted"
    clock.advance(STEP)
    rejected = await adapter.find_payment(receipt.reference, context=CTX)
    assert rejected is not None
    assert (rejected.status, rejected.reason, rejected.upstream_code) == ("rejected", reason, code)
    assert rejected.upstream_message


async def test_steered_accounts_reject_until_reopened(
    adapter: OpenBankingBankAdapter, bank: OpenBankingBank, clock: Clock
) -> None:
    bank.close_account(LI_MING.account)
    first = await adapter.initiate_payment(payment(clock, "HGW-PAY-IT-C1"), context=CTX)
    clock.advance(STEP)
    assert (await adapter.find_payment(first.reference, context=CTX)).reason == "account_closed"
    bank.reopen_account(LI_MING.account)
    bank.cut_off_passed = True
    second = await adapter.initiate_payment(payment(clock, "HGW-PAY-IT-C2"), context=CTX)
    clock.advance(STEP)
    assert (await adapter.find_payment(second.reference, context=CTX)).reason == "cut_off_passed"


async def test_a_refused_field_is_a_business_rejection_and_nothing_is_created(
    adapter: OpenBankingBankAdapter, bank: OpenBankingBank, clock: Clock
) -> None:
    with pytest.raises(BusinessRejection) as caught:
        await adapter.initiate_payment(payment(clock, remittance="x" * 141), context=CTX)
    assert (caught.value.upstream_code, caught.value.field) == ("OB.Field.Invalid", "remittance")
    assert bank.payments() == []


# -- credentials ---------------------------------------------------------------------------


async def test_a_signature_with_another_key_is_refused_as_authentication(
    make_adapter: Callable[..., OpenBankingBankAdapter], bank: OpenBankingBank, credentials: dict[str, str], clock: Clock
) -> None:
    wrong_key = {**credentials, "signing_key": sandbox_credentials()["signing_key"]}
    with pytest.raises(UpstreamAuthenticationError) as caught:
        await make_adapter(creds=wrong_key).initiate_payment(payment(clock), context=CTX)
    assert caught.value.upstream_code == "OB.Signature.Invalid"
    assert bank.payments() == []
    assert bank.count(operation="payments.initiate") == 1  # refused once, not retried


async def test_a_wrong_client_secret_is_refused_as_authentication(
    make_adapter: Callable[..., OpenBankingBankAdapter], bank: OpenBankingBank, credentials: dict[str, str], clock: Clock
) -> None:
    with pytest.raises(UpstreamAuthenticationError) as caught:
        await make_adapter(creds={**credentials, "client_secret": "wrong"}).initiate_payment(payment(clock), context=CTX)
    assert caught.value.upstream_code == "invalid_client"
    assert bank.count(operation="payments.initiate") == 0


async def test_an_expired_token_is_replaced_once_and_the_call_repeated(
    adapter: OpenBankingBankAdapter, bank: OpenBankingBank, clock: Clock
) -> None:
    await adapter.find_payment("HGW-PAY-IT-X", context=CTX)
    await adapter.find_payment("HGW-PAY-IT-X", context=CTX)
    assert bank.count(operation="token") == 1  # cached
    bank.expire_tokens()
    receipt = await adapter.initiate_payment(payment(clock), context=CTX)
    assert receipt.status == "submitted"
    assert bank.count(operation="token") == 2
    assert bank.count(operation="payments.initiate", code="OB.Token.Invalid") == 1
    assert bank.count(operation="payments.initiate", code="created") == 1
    assert len(bank.payments()) == 1


# -- faults and exactly once ---------------------------------------------------------------


async def test_a_lost_answer_is_looked_up_not_resent_and_the_bank_holds_one_payment(
    adapter: OpenBankingBankAdapter, bank: OpenBankingBank, clock: Clock
) -> None:
    bank.faults.add(Fault(route="payments.initiate", kind="drop_after", times=1))
    receipt = await adapter.initiate_payment(payment(clock), context=CTX)
    [held] = [p for p in bank.payments() if p.reference == "HGW-PAY-IT-0001"]
    assert (receipt.reference, receipt.bank_reference, receipt.status) == (held.reference, held.payment_id, "submitted")
    assert bank.count(operation="payments.initiate") == 1  # sent once, applied, answer dropped
    assert bank.count(operation="payments.initiate", code="DROP") == 1
    assert bank.count(operation="payments.find") == 1  # then asked by EndToEndIdentification
    assert [r.biz_no for r in bank.requests if r.operation == "payments.find"] == ["HGW-PAY-IT-0001"]


async def test_a_send_dropped_before_it_was_applied_is_sent_again_once(
    adapter: OpenBankingBankAdapter, bank: OpenBankingBank, clock: Clock
) -> None:
    bank.faults.add(Fault(route="payments.initiate", kind="drop", times=1))
    receipt = await adapter.initiate_payment(payment(clock), context=CTX)
    assert receipt.status == "submitted"
    assert len(bank.payments()) == 1
    assert bank.count(operation="payments.initiate", code="DROP") == 1
    assert bank.count(operation="payments.find") == 1  # asked, not found...
    assert bank.count(operation="payments.initiate", code="created") == 1  # ...then sent again


async def test_a_500_is_asked_about_then_sent_again(adapter: OpenBankingBankAdapter, bank: OpenBankingBank, clock: Clock) -> None:
    bank.faults.add(Fault(route="payments.initiate", kind="error", status=500, times=1))
    receipt = await adapter.initiate_payment(payment(clock), context=CTX)
    assert receipt.status == "submitted" and len(bank.payments()) == 1
    assert bank.count(operation="payments.initiate") == 2 and bank.count(operation="payments.find") == 1


async def test_503_and_rate_limits_are_retried_without_a_lookup(
    adapter: OpenBankingBankAdapter, bank: OpenBankingBank, clock: Clock
) -> None:
    bank.faults.add(Fault(route="payments.initiate", kind="error", status=503, times=1))
    bank.faults.add(Fault(route="payments.initiate", kind="rate_limit", retry_after=0, times=1))
    receipt = await adapter.initiate_payment(payment(clock), context=CTX)
    assert receipt.status == "submitted" and len(bank.payments()) == 1
    assert bank.count(operation="payments.initiate", code="OB.Server.Unavailable") == 1
    assert bank.count(operation="payments.initiate", code="OB.RateLimit.Exceeded") == 1
    assert bank.count(operation="payments.find") == 0


async def test_a_timeout_racing_the_lookup_still_leaves_one_payment(
    make_adapter: Callable[..., OpenBankingBankAdapter], bank: OpenBankingBank, clock: Clock
) -> None:
    # The bank answers the initiation too late; whatever the lookup sees, the
    # idempotency key keeps a resend from creating a second payment.
    adapter = make_adapter(read_timeout=0.3)
    bank.faults.add(Fault(route="payments.initiate", kind="latency", latency_ms=800, times=1))
    receipt = await adapter.initiate_payment(payment(clock), context=CTX)
    time.sleep(0.8)  # let the delayed original finish
    assert receipt.reference == "HGW-PAY-IT-0001"
    [held] = bank.payments()
    assert receipt.bank_reference == held.payment_id
    assert bank.count(operation="payments.find") >= 1


async def test_the_banks_own_replay_answers_a_repeated_initiation(
    adapter: OpenBankingBankAdapter, bank: OpenBankingBank, clock: Clock
) -> None:
    first = await adapter.initiate_payment(payment(clock), context=CTX)
    clock.advance(STEP)
    again = await adapter.initiate_payment(payment(clock), context=CTX)
    assert again.bank_reference == first.bank_reference and again.status == "submitted"  # the stored answer
    assert len(bank.payments()) == 1
    assert bank.count(operation="payments.initiate", code="replayed") == 1
    # The same reference with another body is refused by the bank, not paid twice.
    with pytest.raises(BusinessRejection) as caught:
        await adapter.initiate_payment(payment(clock, amount=Decimal("1.00")), context=CTX)
    assert caught.value.upstream_code == "OB.Idempotency.KeyReused"
    assert len(bank.payments()) == 1
