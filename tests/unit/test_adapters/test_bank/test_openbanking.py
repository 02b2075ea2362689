"""The openbanking bank adapter against docs/dialects/openbanking.md, with respx."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jws
from joserfc.jwk import ECKey
from joserfc.registry import HeaderParameter

from adapters import (
    AccountParty,
    AdapterConfig,
    AmbiguousOutcome,
    BankAdapter,
    BusinessRejection,
    CallContext,
    Capability,
    ConfigurationError,
    PaymentReceipt,
    PaymentSubmission,
    Statements,
    UpstreamAuthenticationError,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRateLimited,
)
from adapters.bank.openbanking import OpenBankingBankAdapter

from .._support import FakeClock, SleepRecorder, fast_policy

BASE_URL = "https://bank-b.test"
TOKEN = "/oauth2/token"
PAYMENTS = "/open-banking/v3.1/pisp/domestic-payments"
ACCOUNTS = "/open-banking/v3.1/aisp/accounts"
CLIENT_ID = "hgw-unit-test"
CLIENT_SECRET = "unit-test-secret"
DEBTOR = AccountParty(name="长沙示例制造有限公司", account="31310001000000000101", bank_code="313100000013")
CREDITOR = AccountParty(name="李明", account="6222020200112233453", bank_code="102100099996")
REFERENCE = "HGW-PAY-01JD8Z3K4Q"
CTX = CallContext(request_id="req-1")
VERIFY_REGISTRY = jws.JWSRegistry(header_registry={"iat": HeaderParameter("issued at", "int")}, algorithms=["ES256"])


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


PRIVATE_KEY = ec.generate_private_key(ec.SECP256R1())
SIGNING_KEY = _pem(PRIVATE_KEY)
PUBLIC_KEY = ECKey.import_key(
    PRIVATE_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
)


def config(**overrides: Any) -> AdapterConfig:
    settings: dict[str, Any] = {
        "name": "bank-b",
        "base_url": BASE_URL,
        "regions": (),
        "credentials": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "signing_key": SIGNING_KEY},
        "options": {},
        "environment": "sandbox",
    }
    settings.update(overrides)
    return AdapterConfig(**settings)


def submission(**overrides: Any) -> PaymentSubmission:
    values: dict[str, Any] = {
        "reference": REFERENCE,
        "debtor": DEBTOR,
        "creditor": CREDITOR,
        "amount": Decimal("1250.5"),
        "purpose": "reimbursement",
        "remittance": "Reimbursement R-2026-0042",
        "requested_on": dt.date(2026, 11, 2),
    }
    values.update(overrides)
    return PaymentSubmission(**values)


def resource(status: str = "Pending", *, reference: str = REFERENCE, payment_id: str = "OBP-000001", **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "DomesticPaymentId": payment_id,
        "Status": status,
        "CreationDateTime": "2026-11-02T10:15:00+08:00",
        "StatusUpdateDateTime": "2026-11-02T10:15:04+08:00",
        "Initiation": {"EndToEndIdentification": reference, "InstructionIdentification": reference},
    }
    data.update(extra)
    return data


def created(status: str = "Pending", **extra: Any) -> httpx.Response:
    return httpx.Response(201, json={"Data": resource(status, **extra), "Links": {"Self": f"{PAYMENTS}/OBP-000001"}})


def found(*resources: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"Data": {"DomesticPayment": list(resources)}, "Links": {"Self": PAYMENTS}})


def error(status: int, code: str, message: str = "refused", path: str | None = None, **headers: str) -> httpx.Response:
    entry = {"ErrorCode": code, "Message": message, **({"Path": path} if path else {})}
    return httpx.Response(
        status, json={"Id": "e1", "Code": str(status), "Message": "refused", "Errors": [entry]}, headers=headers
    )


def token_answer(value: str = "tok-1", expires_in: int = 300) -> httpx.Response:
    return httpx.Response(200, json={"access_token": value, "token_type": "Bearer", "expires_in": expires_in, "scope": "payments accounts"})


@pytest.fixture
def bank() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def token_route(bank: respx.MockRouter) -> respx.Route:
    return bank.post(TOKEN).mock(return_value=token_answer())


@pytest.fixture
async def make_adapter(bank: respx.MockRouter) -> AsyncIterator[Callable[..., OpenBankingBankAdapter]]:
    made: list[OpenBankingBankAdapter] = []

    def make(*, sleep: SleepRecorder | None = None, **kwargs: Any) -> OpenBankingBankAdapter:
        kwargs.setdefault("policy", fast_policy())
        kwargs.setdefault("transport", httpx.MockTransport(bank.async_handler))
        adapter = OpenBankingBankAdapter(kwargs.pop("config", None) or config(), **kwargs)
        if sleep is not None:
            adapter.client._sleep = sleep
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def adapter(make_adapter: Callable[..., OpenBankingBankAdapter], token_route: respx.Route) -> OpenBankingBankAdapter:
    return make_adapter()


def verified(request: httpx.Request) -> dict[str, Any]:
    """The protected header of the request's detached JWS, verified over its body."""
    signature = request.headers["x-jws-signature"]
    header, payload, sig = signature.split(".")
    assert payload == ""  # detached
    obj = jws.deserialize_compact(signature, PUBLIC_KEY, payload=request.content, registry=VERIFY_REGISTRY)
    return dict(obj.protected)


# -- declarations and configuration ----------------------------------------------------------


def test_declares_a_bank_with_statements(adapter: OpenBankingBankAdapter) -> None:
    assert (adapter.kind, adapter.dialect) == ("bank", "openbanking")
    assert adapter.capabilities == {Capability.PAYMENT_INITIATION, Capability.PAYMENT_STATUS, Capability.STATEMENTS}
    assert adapter.required_credentials == ("client_id", "client_secret", "signing_key")
    assert isinstance(adapter, BankAdapter) and isinstance(adapter, Statements)
    assert adapter.policy.retry.not_applied_statuses == {429, 503}


@pytest.mark.parametrize(
    "credentials",
    [
        {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "signing_key": "not a key"},
        {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "signing_key": PUBLIC_KEY.as_pem().decode()},
        {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "signing_key": _pem(ec.generate_private_key(ec.SECP384R1())),
        },
    ],
)
def test_unusable_credentials_are_a_configuration_error(credentials: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        OpenBankingBankAdapter(config(credentials=credentials))


# -- initiation ----------------------------------------------------------------------------


async def test_initiation_sends_the_documented_signed_request(
    adapter: OpenBankingBankAdapter, bank: respx.MockRouter, token_route: respx.Route
) -> None:
    route = bank.post(PAYMENTS).mock(return_value=created())
    receipt = await adapter.initiate_payment(submission(), context=CTX)
    assert receipt == PaymentReceipt(reference=REFERENCE, bank_reference="OBP-000001", status="submitted")
    request = route.calls.last.request
    assert request.headers["Authorization"] == "Bearer tok-1"
    assert request.headers["x-idempotency-key"] == REFERENCE
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Request-ID"] == "req-1"
    assert json.loads(request.content) == {
        "Data": {
            "Initiation": {
                "InstructionIdentification": REFERENCE,
                "EndToEndIdentification": REFERENCE,
                "InstructedAmount": {"Amount": "1250.50", "Currency": "CNY"},
                "DebtorAccount": {"SchemeName": "CN.BankAccount", "Identification": DEBTOR.account, "Name": DEBTOR.name},
                "CreditorAccount": {"SchemeName": "CN.BankAccount", "Identification": CREDITOR.account, "Name": CREDITOR.name},
                "CreditorAgent": {"SchemeName": "CN.CNAPS", "Identification": "102100099996"},
                "RemittanceInformation": {"Unstructured": "Reimbursement R-2026-0042"},
                "PaymentPurpose": "EXPENSE_REIMBURSEMENT",
                "RequestedExecutionDate": "2026-11-02",
            }
        }
    }
    protected = verified(request)
    assert protected["alg"] == "ES256" and protected["kid"] == CLIENT_ID
    assert abs(protected["iat"] - time.time()) < 5
    # The token request: client credentials by HTTP Basic, form-encoded.
    token_request = token_route.calls.last.request
    expected_basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert token_request.headers["Authorization"] == f"Basic {expected_basic}"
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert urllib.parse.parse_qs(token_request.content.decode()) == {
        "grant_type": ["client_credentials"], "scope": ["payments accounts"]
    }


@pytest.mark.parametrize(
    ("purpose", "bank_code", "wire_purpose", "agent"),
    [
        ("social_security_contribution", "ICBKCNBJXXX", "SOCIAL_INSURANCE", {"SchemeName": "BICFI", "Identification": "ICBKCNBJXXX"}),
        ("other", "ICBKCNBJ", "OTHER", {"SchemeName": "BICFI", "Identification": "ICBKCNBJ"}),
    ],
)
async def test_purposes_and_bics(
    adapter: OpenBankingBankAdapter, bank: respx.MockRouter, purpose: str, bank_code: str, wire_purpose: str, agent: dict[str, str]
) -> None:
    route = bank.post(PAYMENTS).mock(return_value=created())
    creditor = AccountParty(name=CREDITOR.name, account=CREDITOR.account, bank_code=bank_code)
    await adapter.initiate_payment(submission(purpose=purpose, creditor=creditor), context=CTX)
    initiation = json.loads(route.calls.last.request.content)["Data"]["Initiation"]
    assert initiation["PaymentPurpose"] == wire_purpose and initiation["CreditorAgent"] == agent


async def test_a_bank_code_that_is_neither_cnaps_nor_bic_is_refused_before_sending(
    adapter: OpenBankingBankAdapter, bank: respx.MockRouter, token_route: respx.Route
) -> None:
    route = bank.post(PAYMENTS).mock(return_value=created())
    creditor = AccountParty(name=CREDITOR.name, account=CREDITOR.account, bank_code="ICBC-BEIJING")
    with pytest.raises(BusinessRejection) as caught:
        await adapter.initiate_payment(submission(creditor=creditor), context=CTX)
    assert caught.value.field == "creditor.bank_code"
    assert not route.called and not token_route.called


async def test_the_token_is_cached_and_renewed_before_it_expires(
    make_adapter: Callable[..., OpenBankingBankAdapter], bank: respx.MockRouter
) -> None:
    clock = FakeClock()
    tokens = bank.post(TOKEN).mock(side_effect=[token_answer("tok-1", 300), token_answer("tok-2", 300)])
    lookups = bank.get(PAYMENTS).mock(return_value=found())
    adapter = make_adapter(clock=clock)
    await adapter.find_payment(REFERENCE, context=CTX)
    clock.advance(200)
    await adapter.find_payment(REFERENCE, context=CTX)
    assert tokens.call_count == 1
    clock.advance(75)  # within 30 s of expiry: renewed before use
    await adapter.find_payment(REFERENCE, context=CTX)
    assert tokens.call_count == 2
    assert [c.request.headers["Authorization"] for c in lookups.calls] == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


async def test_a_refused_token_is_fetched_again_once_and_the_call_repeated(
    adapter: OpenBankingBankAdapter, bank: respx.MockRouter
) -> None:
    tokens = bank.post(TOKEN).mock(side_effect=[token_answer("old"), token_answer("new")])
    route = bank.post(PAYMENTS).mock(
        side_effect=[error(401, "OB.Token.Invalid", **{"WWW-Authenticate": 'Bearer error="invalid_token"'}), created()]
    )
    receipt = await adapter.initiate_payment(submission(), context=CTX)
    assert receipt.bank_reference == "OBP-000001"
    assert tokens.call_count == 2
    first, second = (c.request for c in route.calls)
    assert first.headers["Authorization"] == "Bearer old" and second.headers["Authorization"] == "Bearer new"
    assert first.content == second.content and second.headers["x-idempotency-key"] == REFERENCE
    verified(second)


async def test_a_fresh_token_refused_too_is_an_authentication_error(
    adapter: OpenBankingBankAdapter, bank: respx.MockRouter, token_route: respx.Route
) -> None:
    route = bank.get(PAYMENTS).mock(return_value=error(401, "OB.Token.Invalid"))
    with pytest.raises(UpstreamAuthenticationError) as caught:
        await adapter.find_payment(REFERENCE, context=CTX)
    assert caught.value.upstream_code == "OB.Token.Invalid"
    assert route.call_count == 2 and token_route.call_count == 2


async def test_refused_client_credentials(make_adapter: Callable[..., OpenBankingBankAdapter], bank: respx.MockRouter) -> None:
    bank.post(TOKEN).mock(return_value=httpx.Response(401, json={"error": "invalid_client", "error_description": "wrong secret"}))
    payments = bank.post(PAYMENTS).mock(return_value=created())
    with pytest.raises(UpstreamAuthenticationError) as caught:
        await make_adapter().initiate_payment(submission(), context=CTX)
    assert (caught.value.upstream_code, caught.value.upstream_message) == ("invalid_client", "wrong secret")
    assert not payments.called


@pytest.mark.parametrize("code", ["OB.Signature.Invalid", "OB.Signature.Missing", "OB.Signature.Expired"])
async def test_a_refused_signature_is_an_authentication_error(
    adapter: OpenBankingBankAdapter, bank: respx.MockRouter, token_route: respx.Route, code: str
) -> None:
    route = bank.post(PAYMENTS).mock(return_value=error(400, code))
    lookup = bank.get(PAYMENTS).mock(return_value=found())
    with pytest.raises(UpstreamAuthenticationError) as caught:
        await adapter.initiate_payment(submission(), context=CTX)
    assert caught.value.upstream_code == code
    assert route.call_count == 1 and token_route.call_count == 1 and not lookup.called


@pytest.mark.parametrize(
    ("status", "code", "path", "field"),
    [
        (400, "OB.Field.Invalid", "Data.Initiation.InstructedAmount.Amount", "amount"),
        (400, "OB.Field.Invalid", "Data.Initiation.CreditorAccount.Name", "creditor.name"),
        (400, "OB.Field.Invalid", "Data.Initiation.CreditorAccount.Identification", "creditor.account"),
        (400, "OB.Field.Invalid", "Data.Initiation.RemittanceInformation.Unstructured", "remittance"),
        (400, "OB.Field.Missing", "Data.Initiation.EndToEndIdentification", "reference"),
        (422, "OB.Idempotency.KeyReused", None, None),
    ],
)
async def test_refused_requests_are_business_rejections(
    adapter: OpenBankingBankAdapter, bank: respx.MockRouter, status: int, code: str, path: str | None, field: str | None
) -> None:
    bank.post(PAYMENTS).mock(return_value=error(status, code, "the bank's words", path))
    with pytest.raises(BusinessRejection) as caught:
        await adapter.initiate_payment(submission(), context=CTX)
    assert (caught.value.upstream_code, caught.value.upstream_message, caught.value.field) == (code, "the bank's words", field)


async def test_an_answer_for_another_payment_is_a_protocol_error(adapter: OpenBankingBankAdapter, bank: respx.MockRouter) -> None:
    bank.post(PAYMENTS).mock(return_value=created(reference="SOMEONE-ELSE"))
    with pytest.raises(UpstreamProtocolError):
        await adapter.initiate_payment(submission(), context=CTX)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(201, content=b"<html>ok</html>"),
        httpx.Response(201, json={"Data": resource("Sent")}),
        httpx.Response(418, content=b"teapot"),
        error(405, "OB.Method.NotAllowed"),
    ],
)
async def test_unreadable_answers_are_protocol_errors(
    adapter: OpenBankingBankAdapter, bank: respx.MockRouter, response: httpx.Response
) -> None:
    bank.get(PAYMENTS).mock(return_value=response)
    bank.post(PAYMENTS).mock(return_value=response)
    with pytest.raises(UpstreamProtocolError):
        await adapter.initiate_payment(submission(), context=CTX)


# -- exactly once --------------------------------------------------------------------------


async def test_a_lost_answer_is_looked_up_instead_of_resent(adapter: OpenBankingBankAdapter, bank: respx.MockRouter) -> None:
    route = bank.post(PAYMENTS).mock(side_effect=httpx.ReadTimeout("lost"))
    lookup = bank.get(PAYMENTS).mock(return_value=found(resource("AcceptedSettlementInProcess")))
    receipt = await adapter.initiate_payment(submission(), context=CTX)
    assert receipt.status == "accepted" and receipt.bank_reference == "OBP-000001"
    assert route.call_count == 1 and lookup.call_count == 1
    assert urllib.parse.parse_qs(lookup.calls.last.request.url.query.decode()) == {"EndToEndIdentification": [REFERENCE]}


async def test_a_send_that_never_arrived_is_sent_again_with_the_same_key(
    adapter: OpenBankingBankAdapter, bank: respx.MockRouter
) -> None:
    route = bank.post(PAYMENTS).mock(side_effect=[httpx.RemoteProtocolError("dropped"), created()])
    lookup = bank.get(PAYMENTS).mock(return_value=found())
    receipt = await adapter.initiate_payment(submission(), context=CTX)
    assert receipt.status == "submitted"
    assert route.call_count == 2 and lookup.call_count == 1
    first, second = (c.request for c in route.calls)
    assert first.content == second.content
    assert first.headers["x-idempotency-key"] == second.headers["x-idempotency-key"] == REFERENCE


async def test_a_500_to_an_initiation_is_asked_about(adapter: OpenBankingBankAdapter, bank: respx.MockRouter) -> None:
    route = bank.post(PAYMENTS).mock(return_value=error(500, "OB.Server.Error"))
    lookup = bank.get(PAYMENTS).mock(return_value=found(resource()))
    receipt = await adapter.initiate_payment(submission(), context=CTX)
    assert receipt.status == "submitted" and route.call_count == 1 and lookup.call_count == 1


async def test_503_and_429_are_retried_without_asking(
    make_adapter: Callable[..., OpenBankingBankAdapter], bank: respx.MockRouter, token_route: respx.Route
) -> None:
    sleeps = SleepRecorder()
    adapter = make_adapter(sleep=sleeps, policy=fast_policy(max_attempts=3, max_retry_after=10.0))
    route = bank.post(PAYMENTS).mock(
        side_effect=[error(503, "OB.Server.Unavailable"), error(429, "OB.RateLimit.Exceeded", **{"Retry-After": "3"}), created()]
    )
    lookup = bank.get(PAYMENTS).mock(return_value=found())
    receipt = await adapter.initiate_payment(submission(), context=CTX)
    assert receipt.bank_reference == "OBP-000001"
    assert route.call_count == 3 and not lookup.called
    assert sleeps.waits[-1] >= 3.0


async def test_rate_limited_beyond_the_attempts_is_rate_limited(
    make_adapter: Callable[..., OpenBankingBankAdapter], bank: respx.MockRouter, token_route: respx.Route
) -> None:
    adapter = make_adapter(sleep=SleepRecorder())
    bank.get(PAYMENTS).mock(return_value=error(429, "OB.RateLimit.Exceeded", **{"Retry-After": "1"}))
    with pytest.raises(UpstreamRateLimited):
        await adapter.find_payment(REFERENCE, context=CTX)


async def test_when_the_bank_cannot_be_asked_the_outcome_stays_ambiguous(
    adapter: OpenBankingBankAdapter, bank: respx.MockRouter
) -> None:
    route = bank.post(PAYMENTS).mock(side_effect=httpx.ReadTimeout("lost"))
    bank.get(PAYMENTS).mock(return_value=error(503, "OB.Server.Unavailable"))
    with pytest.raises(AmbiguousOutcome):
        await adapter.initiate_payment(submission(), context=CTX)
    assert route.call_count == 1


# -- status --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "canonical"),
    [("Pending", "submitted"), ("AcceptedSettlementInProcess", "accepted"), ("AcceptedSettlementCompleted", "settled")],
)
async def test_statuses_map_to_canonical_ones(
    adapter: OpenBankingBankAdapter, bank: respx.MockRouter, status: str, canonical: str
) -> None:
    extra = {"SettlementDate": "2026-11-03"} if status == "AcceptedSettlementCompleted" else {}
    bank.get(PAYMENTS).mock(return_value=found(resource(status, **extra)))
    receipt = await adapter.find_payment(REFERENCE, context=CTX)
    assert receipt is not None and receipt.status == canonical and receipt.reason is None
    assert receipt.settled_on == (dt.date(2026, 11, 3) if extra else None)


async def test_a_settled_payment_without_a_settlement_date_settled_on_its_update_day(
    adapter: OpenBankingBankAdapter, bank: respx.MockRouter
) -> None:
    bank.get(PAYMENTS).mock(return_value=found(resource("AcceptedSettlementCompleted")))
    receipt = await adapter.find_payment(REFERENCE, context=CTX)
    assert receipt is not None and receipt.settled_on == dt.date(2026, 11, 2)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("AC01", "invalid_account"),
        ("AC02", "invalid_account"),
        ("AC04", "account_closed"),
        ("AC06", "account_blocked"),
        ("BE01", "creditor_name_mismatch"),
        ("AM04", "insufficient_funds"),
        ("AM02", "invalid_amount"),
        ("AM05", "duplicate_payment"),
        ("RC01", "invalid_bank_code"),
        ("RR04", "regulatory"),
        ("TM01", "cut_off_passed"),
        ("MS03", "other"),
        ("ZZ99", "other"),
    ],
)
async def test_rejections_keep_the_banks_code_and_message(
    adapter: OpenBankingBankAdapter, bank: respx.MockRouter, code: str, reason: str
) -> None:
    rejected = resource("Rejected", StatusReason=[{"Code": code, "Message": "the bank's reason"}])
    bank.get(PAYMENTS).mock(return_value=found(rejected))
    receipt = await adapter.find_payment(REFERENCE, context=CTX)
    assert receipt == PaymentReceipt(
        reference=REFERENCE, bank_reference="OBP-000001", status="rejected", reason=reason,
        upstream_code=code, upstream_message="the bank's reason",
    )


async def test_a_payment_that_never_arrived_is_none(adapter: OpenBankingBankAdapter, bank: respx.MockRouter) -> None:
    bank.get(PAYMENTS).mock(return_value=found())
    assert await adapter.find_payment(REFERENCE, context=CTX) is None


async def test_of_several_payments_with_the_reference_the_oldest_is_ours(
    adapter: OpenBankingBankAdapter, bank: respx.MockRouter
) -> None:
    duplicate = resource("Rejected", payment_id="OBP-000002", StatusReason=[{"Code": "AM05", "Message": "dup"}])
    bank.get(PAYMENTS).mock(return_value=found(resource("AcceptedSettlementInProcess"), duplicate))
    receipt = await adapter.find_payment(REFERENCE, context=CTX)
    assert receipt is not None and (receipt.bank_reference, receipt.status) == ("OBP-000001", "accepted")


async def test_a_lookup_answered_with_another_reference_is_a_protocol_error(
    adapter: OpenBankingBankAdapter, bank: respx.MockRouter
) -> None:
    bank.get(PAYMENTS).mock(return_value=found(resource(reference="OTHER")))
    with pytest.raises(UpstreamProtocolError):
        await adapter.find_payment(REFERENCE, context=CTX)


async def test_payment_status_by_the_banks_id(adapter: OpenBankingBankAdapter, bank: respx.MockRouter) -> None:
    bank.get(f"{PAYMENTS}/OBP-000001").mock(return_value=httpx.Response(200, json={"Data": resource("AcceptedSettlementInProcess")}))
    bank.get(f"{PAYMENTS}/OBP-000404").mock(return_value=error(404, "OB.Resource.NotFound"))
    receipt = await adapter.payment_status("OBP-000001", context=CTX)
    assert receipt.status == "accepted"
    with pytest.raises(UpstreamNotFound):
        await adapter.payment_status("OBP-000404", context=CTX)


# -- statements ----------------------------------------------------------------------------


def transaction(n: int, **overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "TransactionId": f"OBT-{n:06d}",
        "TransactionReference": f"HGW-PAY-{n}",
        "Status": "Booked",
        "CreditDebitIndicator": "Debit",
        "Amount": {"Amount": "1250.00", "Currency": "CNY"},
        "BookingDateTime": "2026-11-02T23:30:00+08:00",
        "ValueDateTime": "2026-11-02T23:30:00+08:00",
        "TransactionInformation": "Reimbursement",
        "BankTransactionCode": {"Code": "ICDT", "SubCode": "DMCT"},
        "CreditorAccount": {"SchemeName": "CN.BankAccount", "Identification": CREDITOR.account, "Name": CREDITOR.name},
    }
    raw.update(overrides)
    return raw


def transactions_page(items: list[dict[str, Any]], next_link: str | None = None) -> httpx.Response:
    links = {"Self": "x", **({"Next": next_link} if next_link else {})}
    return httpx.Response(
        200,
        json={
            "Data": {
                "AccountId": "ACC-0001",
                "Currency": "CNY",
                "Balance": {
                    "OpeningBooked": {"Amount": "5000000.00", "Currency": "CNY"},
                    "ClosingBooked": {"Amount": "4997500.00", "Currency": "CNY"},
                },
                "Transaction": items,
            },
            "Links": links,
            "Meta": {"TotalPages": 2 if next_link else 1},
        },
    )


def accounts_answer() -> httpx.Response:
    account = {"SchemeName": "CN.BankAccount", "Identification": DEBTOR.account, "Name": DEBTOR.name}
    return httpx.Response(200, json={"Data": {"Account": [{"AccountId": "ACC-0001", "Currency": "CNY", "Account": account}]}})


async def test_statement_reads_every_page_by_account_id(adapter: OpenBankingBankAdapter, bank: respx.MockRouter) -> None:
    accounts = bank.get(ACCOUNTS).mock(return_value=accounts_answer())
    credit = transaction(
        2, CreditDebitIndicator="Credit", Status="Pending", BankTransactionCode={"Code": "RCDT", "SubCode": "DMCT"},
        CreditorAccount=None, DebtorAccount={"SchemeName": "CN.BankAccount", "Identification": "31310001000000000202", "Name": "广州示例科技有限公司"},
    )
    del credit["CreditorAccount"]
    pages = bank.get(f"{ACCOUNTS}/ACC-0001/transactions").mock(
        side_effect=[
            transactions_page([transaction(1)], f"https://elsewhere.test{ACCOUNTS}/ACC-0001/transactions?fromBookingDate=2026-11-01&toBookingDate=2026-11-30&page=2"),
            transactions_page([credit]),
        ]
    )
    statement = await adapter.statement(DEBTOR.account, dt.date(2026, 11, 1), dt.date(2026, 11, 30), context=CTX)
    assert (statement.account, statement.currency) == (DEBTOR.account, "CNY")
    assert (statement.from_date, statement.to_date) == (dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    assert (statement.opening_balance, statement.closing_balance) == (Decimal("5000000.00"), Decimal("4997500.00"))
    debit, received = statement.entries
    assert debit.entry_reference == "OBT-000001" and debit.booked_on == dt.date(2026, 11, 2)  # the China date
    assert (debit.amount, debit.direction, debit.status, debit.reference) == (Decimal("1250.00"), "debit", "booked", "HGW-PAY-1")
    assert (debit.counterparty_name, debit.counterparty_account) == (CREDITOR.name, CREDITOR.account)
    assert (debit.remittance, debit.bank_transaction_code) == ("Reimbursement", "ICDT-DMCT")
    assert (received.direction, received.status, received.counterparty_account) == ("credit", "pending", "31310001000000000202")
    # Account numbers never travel in a URL: the bank's AccountId does.
    for call in [*accounts.calls, *pages.calls]:
        assert DEBTOR.account not in str(call.request.url)
    first_query = urllib.parse.parse_qs(pages.calls[0].request.url.query.decode())
    assert first_query == {"fromBookingDate": ["2026-11-01"], "toBookingDate": ["2026-11-30"]}
    assert pages.calls[1].request.url.host == "bank-b.test"  # followed on this bank, not the link's host
    assert urllib.parse.parse_qs(pages.calls[1].request.url.query.decode())["page"] == ["2"]
    # The account id is remembered.
    pages.side_effect = [transactions_page([])]
    await adapter.statement(DEBTOR.account, dt.date(2026, 12, 1), dt.date(2026, 12, 1), context=CTX)
    assert accounts.call_count == 1


async def test_statement_of_an_account_the_bank_does_not_hold(adapter: OpenBankingBankAdapter, bank: respx.MockRouter) -> None:
    bank.get(ACCOUNTS).mock(return_value=accounts_answer())
    with pytest.raises(UpstreamNotFound):
        await adapter.statement("6222000000000000000", dt.date(2026, 11, 1), dt.date(2026, 11, 30), context=CTX)


async def test_statement_with_an_unreadable_entry_is_a_protocol_error(
    adapter: OpenBankingBankAdapter, bank: respx.MockRouter
) -> None:
    bank.get(ACCOUNTS).mock(return_value=accounts_answer())
    bank.get(f"{ACCOUNTS}/ACC-0001/transactions").mock(return_value=transactions_page([transaction(1, Amount={"Amount": "1e3", "Currency": "CNY"})]))
    with pytest.raises(UpstreamProtocolError):
        await adapter.statement(DEBTOR.account, dt.date(2026, 11, 1), dt.date(2026, 11, 30), context=CTX)
