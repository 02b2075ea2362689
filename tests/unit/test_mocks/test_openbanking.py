"""The openbanking mock bank against docs/dialects/openbanking.md, over real HTTP.

Requests are built and signed here from the protocol description (joserfc for the
detached JWS), never with the adapter's code."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import ECKey
from joserfc.registry import HeaderParameter

from mocks.faults import Fault
from mocks.openbanking import SANDBOX_SIGNING_KEY, OpenBankingBank, sandbox_credentials

PAYMENTS = "/open-banking/v3.1/pisp/domestic-payments"
ACCOUNTS = "/open-banking/v3.1/aisp/accounts"
CHINA = dt.timezone(dt.timedelta(hours=8))
STEP = 2.0

CHANGSHA = ("31310001000000000101", "长沙示例制造有限公司")
GUANGZHOU = ("31310001000000000202", "广州示例科技有限公司")
LOW_BALANCE = ("31310001000000000909", "长沙示例制造有限公司")
LI_MING = ("6222020200112233453", "李明")
ICBC = "102100099996"

REGISTRY = jws.JWSRegistry(header_registry={"iat": HeaderParameter("issued at", "int")})


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def china_today(clock: Clock) -> dt.date:
    return dt.datetime.fromtimestamp(clock.now, CHINA).date()


def sign(body: bytes, key: str, *, kid: str, iat: int, alg: str = "ES256") -> str:
    compact = jws.serialize_compact({"alg": alg, "kid": kid, "iat": iat}, body, ECKey.import_key(key), registry=REGISTRY)
    header, _, signature = compact.split(".")
    return f"{header}..{signature}"


def initiation(reference: str = "HGW-PAY-0001", **overrides: Any) -> dict[str, Any]:
    init: dict[str, Any] = {
        "InstructionIdentification": reference,
        "EndToEndIdentification": reference,
        "InstructedAmount": {"Amount": "1250.00", "Currency": "CNY"},
        "DebtorAccount": {"SchemeName": "CN.BankAccount", "Identification": CHANGSHA[0], "Name": CHANGSHA[1]},
        "CreditorAccount": {"SchemeName": "CN.BankAccount", "Identification": LI_MING[0], "Name": LI_MING[1]},
        "CreditorAgent": {"SchemeName": "CN.CNAPS", "Identification": ICBC},
        "RemittanceInformation": {"Unstructured": "Reimbursement R-0042"},
        "PaymentPurpose": "EXPENSE_REIMBURSEMENT",
    }
    init.update(overrides)
    return {"Data": {"Initiation": init}}


def creditor(account: str, name: str) -> dict[str, str]:
    return {"SchemeName": "CN.BankAccount", "Identification": account, "Name": name}


class Client:
    """A hand-written client of the protocol: token, signing, idempotency key."""

    def __init__(self, bank: OpenBankingBank, credentials: dict[str, str], clock: Clock) -> None:
        self.bank = bank
        self.credentials = credentials
        self.clock = clock
        self.http = httpx.Client(base_url=bank.base_url, timeout=5)
        self._token: str | None = None

    def token(self, scope: str | None = None) -> str:
        form = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
        r = self.http.post(
            "/oauth2/token", data=form, auth=(self.credentials["client_id"], self.credentials["client_secret"])
        )
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def bearer(self) -> dict[str, str]:
        if self._token is None:
            self._token = self.token()
        return {"Authorization": f"Bearer {self._token}"}

    def initiate(
        self, payload: Any, *, key: str | None = "HGW-PAY-0001", signature: str | None = None, raw: bytes | None = None
    ) -> httpx.Response:
        body = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
        headers = {**self.bearer(), "Content-Type": "application/json"}
        headers["x-jws-signature"] = signature if signature is not None else sign(
            body, self.credentials["signing_key"], kid=self.credentials["client_id"], iat=int(self.clock())
        )
        if key is not None:
            headers["x-idempotency-key"] = key
        return self.http.post(PAYMENTS, content=body, headers=headers)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params, headers=self.bearer())

    def payment(self, payment_id: str) -> dict[str, Any]:
        r = self.get(f"{PAYMENTS}/{payment_id}")
        assert r.status_code == 200, r.text
        return r.json()["Data"]


@pytest.fixture(scope="module")
def credentials() -> dict[str, str]:
    return sandbox_credentials()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bank(credentials: dict[str, str], clock: Clock) -> Iterator[OpenBankingBank]:
    with OpenBankingBank(settle_seconds=STEP, clock=clock, **credentials) as server:
        yield server


@pytest.fixture
def client(bank: OpenBankingBank, credentials: dict[str, str], clock: Clock) -> Iterator[Client]:
    c = Client(bank, credentials, clock)
    yield c
    c.http.close()


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) >= {"Id", "Code", "Message", "Errors"}
    return body["Errors"][0]["ErrorCode"]


# -- tokens --------------------------------------------------------------------------------


def test_token_endpoint_issues_expiring_bearer_tokens(client: Client, bank: OpenBankingBank, clock: Clock) -> None:
    r = client.http.post(
        "/oauth2/token", data={"grant_type": "client_credentials", "scope": "payments accounts"},
        auth=(bank.client_id, client.credentials["client_secret"]),
    )
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300 and body["scope"] == "accounts payments"
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert client.http.get(ACCOUNTS, headers=headers).status_code == 200
    clock.advance(301)
    expired = client.http.get(ACCOUNTS, headers=headers)
    assert expired.status_code == 401 and error_code(expired) == "OB.Token.Invalid"
    assert expired.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize(
    ("auth", "form", "status", "error"),
    [
        (("hgw-sandbox", "wrong"), {"grant_type": "client_credentials"}, 401, "invalid_client"),
        (("someone", None), {"grant_type": "client_credentials"}, 401, "invalid_client"),
        (None, {"grant_type": "client_credentials"}, 401, "invalid_client"),
        ("ok", {"grant_type": "password"}, 400, "unsupported_grant_type"),
        ("ok", {"grant_type": "client_credentials", "scope": "payments admin"}, 400, "invalid_scope"),
    ],
)
def test_token_endpoint_refuses_in_the_oauth_format(
    client: Client, auth: Any, form: dict[str, str], status: int, error: str
) -> None:
    if auth == "ok":
        auth = (client.credentials["client_id"], client.credentials["client_secret"])
    elif isinstance(auth, tuple) and auth[1] is None:
        auth = (auth[0], client.credentials["client_secret"])
    r = client.http.post("/oauth2/token", data=form, auth=auth)
    assert (r.status_code, r.json()["error"]) == (status, error)


def test_missing_unknown_and_expired_tokens_are_refused(client: Client, bank: OpenBankingBank) -> None:
    assert error_code(client.http.get(ACCOUNTS)) == "OB.Token.Invalid"
    assert client.http.get(ACCOUNTS, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get(ACCOUNTS).status_code == 200
    bank.expire_tokens()
    assert client.get(ACCOUNTS).status_code == 401


def test_a_token_without_the_scope_is_forbidden(client: Client) -> None:
    token = client.token("accounts")
    r = client.http.get(PAYMENTS, params={"EndToEndIdentification": "X"}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403 and error_code(r) == "OB.Token.InsufficientScope"


# -- signatures ----------------------------------------------------------------------------


def test_signature_problems_are_refused_and_create_nothing(
    client: Client, bank: OpenBankingBank, clock: Clock
) -> None:
    body = json.dumps(initiation()).encode()
    other_key = sandbox_credentials()["signing_key"]
    kid = bank.client_id
    now = int(clock())
    cases = {
        "OB.Signature.Missing": "",
        "OB.Signature.Invalid": sign(body, other_key, kid=kid, iat=now),
        "OB.Signature.Malformed": sign(body, client.credentials["signing_key"], kid="another-client", iat=now),
        "OB.Signature.Expired": sign(body, client.credentials["signing_key"], kid=kid, iat=now - 301),
    }
    for expected, signature in cases.items():
        r = client.initiate(None, raw=body, signature=signature)
        assert (r.status_code, error_code(r)) == (400, expected), expected
    # A signature of another body (the body changed after signing).
    signed_other = sign(b'{"Data":{}}', client.credentials["signing_key"], kid=kid, iat=now)
    assert error_code(client.initiate(None, raw=body, signature=signed_other)) == "OB.Signature.Invalid"
    # An attached (not detached) JWS and another algorithm are malformed.
    attached = jws.serialize_compact(
        {"alg": "ES256", "kid": kid, "iat": now}, body, ECKey.import_key(client.credentials["signing_key"]),
        registry=REGISTRY,
    )
    assert error_code(client.initiate(None, raw=body, signature=attached)) == "OB.Signature.Malformed"
    hs = jws.serialize_compact({"alg": "HS256", "kid": kid}, body, __import__("joserfc.jwk").jwk.OctKey.import_key("k" * 32))
    hs_detached = hs.split(".")[0] + ".." + hs.split(".")[2]
    assert error_code(client.initiate(None, raw=body, signature=hs_detached)) == "OB.Signature.Malformed"
    assert bank.payments() == []


def test_a_bank_built_without_credentials_uses_the_well_known_sandbox_ones(clock: Clock) -> None:
    creds = {"client_id": "hgw-sandbox", "client_secret": "sandbox-secret-openbanking", "signing_key": SANDBOX_SIGNING_KEY}
    with OpenBankingBank(clock=clock) as bank:
        c = Client(bank, creds, clock)
        assert c.initiate(initiation()).status_code == 201
        assert "client_secret=sandbox-secret-openbanking" in bank.describe()
        c.http.close()


def test_chosen_credentials_are_never_described(bank: OpenBankingBank, credentials: dict[str, str]) -> None:
    assert credentials["client_secret"] not in bank.describe()
    assert "PRIVATE" not in bank.describe()


# -- initiation and idempotency ------------------------------------------------------------


def test_initiation_creates_a_pending_payment(client: Client, bank: OpenBankingBank) -> None:
    r = client.initiate(initiation())
    assert r.status_code == 201, r.text
    body = r.json()
    data = body["Data"]
    assert data["DomesticPaymentId"] == "OBP-000001" and data["Status"] == "Pending"
    assert data["Initiation"] == initiation()["Data"]["Initiation"]
    assert dt.datetime.fromisoformat(data["CreationDateTime"]).utcoffset() == dt.timedelta(hours=8)
    assert body["Links"]["Self"] == f"{PAYMENTS}/OBP-000001"
    [payment] = bank.payments()
    assert payment.reference == "HGW-PAY-0001" and payment.initiation.amount == Decimal("1250.00")


def test_the_same_key_and_body_replay_the_stored_answer(client: Client, bank: OpenBankingBank, clock: Clock) -> None:
    first = client.initiate(initiation())
    clock.advance(STEP * 3)  # the payment settles meanwhile; the replay is still the stored answer
    # The same JSON value with other spacing and key order is the same body.
    reordered = json.dumps(initiation(), sort_keys=True, indent=2).encode()
    again = client.initiate(None, raw=reordered)
    assert again.status_code == 201
    assert again.content == first.content
    assert again.headers["x-idempotent-replayed"] == "true"
    assert "x-idempotent-replayed" not in first.headers
    assert len(bank.payments()) == 1


def test_the_same_key_with_another_body_is_refused(client: Client, bank: OpenBankingBank) -> None:
    client.initiate(initiation())
    changed = initiation(InstructedAmount={"Amount": "1250.01", "Currency": "CNY"})
    r = client.initiate(changed)
    assert (r.status_code, error_code(r)) == (422, "OB.Idempotency.KeyReused")
    assert len(bank.payments()) == 1


def test_idempotency_key_is_required_and_checked(client: Client, bank: OpenBankingBank) -> None:
    r = client.initiate(initiation(), key=None)
    assert (r.status_code, error_code(r)) == (400, "OB.Header.Missing")
    r = client.initiate(initiation(), key="has spaces")
    assert (r.status_code, error_code(r)) == (400, "OB.Header.Invalid")
    assert bank.payments() == []


def test_a_refused_request_does_not_use_up_its_key(client: Client, bank: OpenBankingBank) -> None:
    bad = initiation(InstructedAmount={"Amount": "-1", "Currency": "CNY"})
    assert client.initiate(bad).status_code == 400
    assert client.initiate(initiation()).status_code == 201


@pytest.mark.parametrize(
    ("change", "code", "path"),
    [
        ({"InstructedAmount": {"Amount": "0.00", "Currency": "CNY"}}, "OB.Field.Invalid", "Data.Initiation.InstructedAmount.Amount"),
        ({"InstructedAmount": {"Amount": "1.234", "Currency": "CNY"}}, "OB.Field.Invalid", "Data.Initiation.InstructedAmount.Amount"),
        ({"InstructedAmount": {"Amount": 12.5, "Currency": "CNY"}}, "OB.Field.Invalid", "Data.Initiation.InstructedAmount.Amount"),
        ({"InstructedAmount": {"Amount": "1.00", "Currency": "USD"}}, "OB.Field.Invalid", "Data.Initiation.InstructedAmount.Currency"),
        ({"EndToEndIdentification": "X" * 36}, "OB.Field.Invalid", "Data.Initiation.EndToEndIdentification"),
        ({"EndToEndIdentification": None}, "OB.Field.Invalid", "Data.Initiation.EndToEndIdentification"),
        ({"CreditorAccount": creditor("12AB", "李明")}, "OB.Field.Invalid", "Data.Initiation.CreditorAccount.Identification"),
        ({"CreditorAgent": {"SchemeName": "CN.CNAPS", "Identification": "1021"}}, "OB.Field.Invalid", "Data.Initiation.CreditorAgent.Identification"),
        ({"CreditorAgent": {"SchemeName": "IBAN", "Identification": "X"}}, "OB.Field.Invalid", "Data.Initiation.CreditorAgent.SchemeName"),
        ({"RemittanceInformation": {"Unstructured": "x" * 141}}, "OB.Field.Invalid", "Data.Initiation.RemittanceInformation.Unstructured"),
        ({"PaymentPurpose": "SALARY"}, "OB.Field.Invalid", "Data.Initiation.PaymentPurpose"),
        ({"RequestedExecutionDate": "2026-13-01"}, "OB.Field.Invalid", "Data.Initiation.RequestedExecutionDate"),
    ],
)
def test_invalid_fields_are_refused_with_their_path(
    client: Client, bank: OpenBankingBank, change: dict[str, Any], code: str, path: str
) -> None:
    r = client.initiate(initiation(**change))
    assert r.status_code == 400
    assert r.json()["Errors"][0] == {**r.json()["Errors"][0], "ErrorCode": code, "Path": path}
    assert bank.payments() == []


def test_missing_fields_and_bodies_that_are_not_json_objects(client: Client) -> None:
    payload = initiation()
    del payload["Data"]["Initiation"]["CreditorAgent"]
    r = client.initiate(payload)
    assert error_code(r) == "OB.Field.Missing" and r.json()["Errors"][0]["Path"] == "Data.Initiation.CreditorAgent"
    assert error_code(client.initiate(None, raw=b"[1, 2]")) == "OB.Resource.InvalidFormat"
    assert error_code(client.initiate(None, raw=b"\xff\xfe")) == "OB.Resource.InvalidFormat"


# -- status --------------------------------------------------------------------------------


def test_a_payment_is_checked_then_settled_on_the_clock(client: Client, bank: OpenBankingBank, clock: Clock) -> None:
    payment_id = client.initiate(initiation()).json()["Data"]["DomesticPaymentId"]
    assert client.payment(payment_id)["Status"] == "Pending"
    clock.advance(STEP)
    accepted = client.payment(payment_id)
    assert accepted["Status"] == "AcceptedSettlementInProcess" and "SettlementDate" not in accepted
    assert bank.balance(CHANGSHA[0]) == Decimal("5000000.00")  # reserved, not yet booked
    assert bank.available_balance(CHANGSHA[0]) == Decimal("4998750.00")
    clock.advance(STEP)
    settled = client.payment(payment_id)
    assert settled["Status"] == "AcceptedSettlementCompleted"
    assert settled["SettlementDate"] == china_today(clock).isoformat()
    assert "StatusReason" not in settled
    assert bank.balance(CHANGSHA[0]) == bank.available_balance(CHANGSHA[0]) == Decimal("4998750.00")


def test_a_future_execution_date_waits_for_its_day(client: Client, clock: Clock) -> None:
    tomorrow = china_today(clock) + dt.timedelta(days=1)
    payment_id = client.initiate(initiation(RequestedExecutionDate=tomorrow.isoformat())).json()["Data"]["DomesticPaymentId"]
    clock.advance(STEP * 3)
    assert client.payment(payment_id)["Status"] == "AcceptedSettlementInProcess"
    clock.advance(24 * 3600)
    client._token = None  # a day later the token has long expired
    settled = client.payment(payment_id)
    assert settled["Status"] == "AcceptedSettlementCompleted" and settled["SettlementDate"] == tomorrow.isoformat()


def test_unknown_payment_ids_are_not_found(client: Client) -> None:
    r = client.get(f"{PAYMENTS}/OBP-999999")
    assert (r.status_code, error_code(r)) == (404, "OB.Resource.NotFound")


def test_lookup_by_end_to_end_identification(client: Client) -> None:
    client.initiate(initiation("HGW-PAY-A"), key="HGW-PAY-A")
    found = client.get(PAYMENTS, EndToEndIdentification="HGW-PAY-A")
    assert found.status_code == 200
    [data] = found.json()["Data"]["DomesticPayment"]
    assert data["DomesticPaymentId"] == "OBP-000001" and data["Initiation"]["EndToEndIdentification"] == "HGW-PAY-A"
    never = client.get(PAYMENTS, EndToEndIdentification="HGW-PAY-NEVER")
    assert never.status_code == 200 and never.json()["Data"]["DomesticPayment"] == []
    missing = client.get(PAYMENTS)
    assert (missing.status_code, error_code(missing)) == (400, "OB.Field.Missing")


# -- rejections ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"CreditorAccount": creditor("6222000000000000012", "张三")}, "AC04"),
        ({"CreditorAccount": creditor("6222000000000000020", "陈静")}, "AC06"),
        ({"CreditorAccount": creditor("6222000000000000046", "无此人")}, "AC01"),
        ({"CreditorAccount": creditor("6222000000000000053", "赵磊")}, "RR04"),
        ({"CreditorAccount": creditor("6222000000000000061", "刘洋")}, "MS03"),
        ({"CreditorAccount": creditor(LI_MING[0], "李鸣")}, "BE01"),
        ({"CreditorAgent": {"SchemeName": "CN.CNAPS", "Identification": "000100000000"}}, "RC01"),
        ({"CreditorAgent": {"SchemeName": "BICFI", "Identification": "DEUTDEFFXXX"}}, "RC01"),
        ({"InstructedAmount": {"Amount": "1000000.01", "Currency": "CNY"}}, "AM02"),
        ({"DebtorAccount": creditor(*LOW_BALANCE)}, "AM04"),
        ({"DebtorAccount": creditor("31310009999999999999", "别人的公司")}, "AC02"),
        ({"RequestedExecutionDate": "2020-01-02"}, "TM01"),
    ],
)
def test_each_rule_rejects_at_the_check(
    client: Client, clock: Clock, change: dict[str, Any], code: str
) -> None:
    payment_id = client.initiate(initiation(**change)).json()["Data"]["DomesticPaymentId"]
    assert client.payment(payment_id)["Status"] == "Pending"
    clock.advance(STEP)
    data = client.payment(payment_id)
    assert data["Status"] == "Rejected"
    [reason] = data["StatusReason"]
    assert reason["Code"] == code and reason["Message"]


def test_unknown_creditors_at_other_banks_and_bics_of_domestic_banks_pass(client: Client, clock: Clock) -> None:
    payload = initiation(
        CreditorAccount=creditor("6228480000000000001", "某某"),
        CreditorAgent={"SchemeName": "BICFI", "Identification": "ICBKCNBJ"},
    )
    payment_id = client.initiate(payload).json()["Data"]["DomesticPaymentId"]
    clock.advance(STEP)
    assert client.payment(payment_id)["Status"] == "AcceptedSettlementInProcess"


def test_steered_accounts_and_cut_off(client: Client, bank: OpenBankingBank, clock: Clock) -> None:
    bank.close_account(CHANGSHA[0])
    bank.block_account(LI_MING[0])
    bank.cut_off_passed = True
    ids = [
        client.initiate(initiation("R-1"), key="R-1").json()["Data"]["DomesticPaymentId"],
        client.initiate(initiation("R-2", DebtorAccount=creditor(*GUANGZHOU)), key="R-2").json()["Data"]["DomesticPaymentId"],
    ]
    clock.advance(STEP)
    assert client.payment(ids[0])["StatusReason"][0]["Code"] == "AC04"  # the debtor is closed
    assert client.payment(ids[1])["StatusReason"][0]["Code"] == "TM01"  # today, after the cut-off
    bank.cut_off_passed = False
    third = client.initiate(initiation("R-3", DebtorAccount=creditor(*GUANGZHOU)), key="R-3").json()["Data"]
    clock.advance(STEP)
    assert client.payment(third["DomesticPaymentId"])["StatusReason"][0]["Code"] == "AC06"  # blocked creditor
    bank.reopen_account(LI_MING[0])
    fourth = client.initiate(initiation("R-4", DebtorAccount=creditor(*GUANGZHOU)), key="R-4").json()["Data"]
    clock.advance(STEP)
    assert client.payment(fourth["DomesticPaymentId"])["Status"] == "AcceptedSettlementInProcess"


def test_the_same_end_to_end_id_under_another_key_is_a_duplicate(client: Client, clock: Clock) -> None:
    first = client.initiate(initiation("E2E-1"), key="K-1").json()["Data"]["DomesticPaymentId"]
    second = client.initiate(initiation("E2E-1"), key="K-2").json()["Data"]["DomesticPaymentId"]
    clock.advance(STEP)
    assert client.payment(first)["Status"] == "AcceptedSettlementInProcess"
    assert client.payment(second)["StatusReason"][0]["Code"] == "AM05"


def test_earlier_payments_reserve_funds_first(client: Client, bank: OpenBankingBank, clock: Clock) -> None:
    small = {"DebtorAccount": creditor(*LOW_BALANCE), "InstructedAmount": {"Amount": "60.00", "Currency": "CNY"}}
    first = client.initiate(initiation("F-1", **small), key="F-1").json()["Data"]["DomesticPaymentId"]
    clock.advance(0.5)
    second = client.initiate(initiation("F-2", **small), key="F-2").json()["Data"]["DomesticPaymentId"]
    clock.advance(STEP * 2)
    assert client.payment(first)["Status"] == "AcceptedSettlementCompleted"
    assert client.payment(second)["StatusReason"][0]["Code"] == "AM04"
    bank.set_balance(LOW_BALANCE[0], "500.00")
    assert bank.balance(LOW_BALANCE[0]) == Decimal("500.00")
    third = client.initiate(initiation("F-3", **small), key="F-3").json()["Data"]["DomesticPaymentId"]
    clock.advance(STEP)
    assert client.payment(third)["Status"] == "AcceptedSettlementInProcess"


# -- accounts ------------------------------------------------------------------------------


def account_id(client: Client, number: str) -> str:
    accounts = client.get(ACCOUNTS).json()["Data"]["Account"]
    return next(a["AccountId"] for a in accounts if a["Account"]["Identification"] == number)


def test_accounts_list_the_seeded_employer_accounts(client: Client) -> None:
    accounts = client.get(ACCOUNTS).json()["Data"]["Account"]
    assert [(a["Account"]["Identification"], a["Account"]["Name"], a["Currency"]) for a in accounts] == [
        (CHANGSHA[0], CHANGSHA[1], "CNY"),
        (GUANGZHOU[0], GUANGZHOU[1], "CNY"),
        ("31310001000000000303", "武汉示例软件有限公司", "CNY"),
        (LOW_BALANCE[0], LOW_BALANCE[1], "CNY"),
    ]
    assert len({a["AccountId"] for a in accounts}) == 4


def test_transactions_show_pending_then_booked_entries_with_balances(client: Client, clock: Clock) -> None:
    today = china_today(clock).isoformat()
    to_guangzhou = initiation("T-1", CreditorAccount=creditor(*GUANGZHOU), CreditorAgent={"SchemeName": "CN.CNAPS", "Identification": "313100000013"})
    client.initiate(to_guangzhou, key="T-1")
    changsha = account_id(client, CHANGSHA[0])
    clock.advance(STEP)
    pending = client.get(f"{ACCOUNTS}/{changsha}/transactions", fromBookingDate=today, toBookingDate=today).json()
    [entry] = pending["Data"]["Transaction"]
    assert entry["Status"] == "Pending" and entry["CreditDebitIndicator"] == "Debit"
    assert pending["Data"]["Balance"]["ClosingBooked"]["Amount"] == "5000000.00"
    clock.advance(STEP)
    booked = client.get(f"{ACCOUNTS}/{changsha}/transactions", fromBookingDate=today, toBookingDate=today).json()
    assert booked["Data"]["Balance"] == {
        "OpeningBooked": {"Amount": "5000000.00", "Currency": "CNY"},
        "ClosingBooked": {"Amount": "4998750.00", "Currency": "CNY"},
    }
    [debit] = booked["Data"]["Transaction"]
    assert debit["Status"] == "Booked" and debit["TransactionReference"] == "T-1"
    assert debit["Amount"] == {"Amount": "1250.00", "Currency": "CNY"}
    assert debit["BankTransactionCode"] == {"Code": "ICDT", "SubCode": "DMCT"}
    assert debit["CreditorAccount"]["Identification"] == GUANGZHOU[0]
    assert debit["TransactionInformation"] == "Reimbursement R-0042"
    assert "Next" not in booked["Links"] and booked["Meta"] == {"TotalPages": 1}
    # The creditor is another client account: a credit was booked there too.
    guangzhou = account_id(client, GUANGZHOU[0])
    credit = client.get(f"{ACCOUNTS}/{guangzhou}/transactions", fromBookingDate=today, toBookingDate=today).json()
    [entry] = credit["Data"]["Transaction"]
    assert entry["CreditDebitIndicator"] == "Credit" and entry["DebtorAccount"]["Identification"] == CHANGSHA[0]
    assert entry["BankTransactionCode"] == {"Code": "RCDT", "SubCode": "DMCT"}
    # A later range opens with the settled balance and holds nothing.
    tomorrow = (china_today(clock) + dt.timedelta(days=1)).isoformat()
    later = client.get(f"{ACCOUNTS}/{changsha}/transactions", fromBookingDate=tomorrow, toBookingDate=tomorrow).json()
    assert later["Data"]["Balance"]["OpeningBooked"]["Amount"] == "4998750.00" and later["Data"]["Transaction"] == []


def test_transactions_are_paged_by_fifty(client: Client, clock: Clock) -> None:
    for n in range(51):
        client.initiate(initiation(f"P-{n:03d}", InstructedAmount={"Amount": "1.00", "Currency": "CNY"}), key=f"P-{n:03d}")
    clock.advance(STEP * 2)
    today = china_today(clock).isoformat()
    changsha = account_id(client, CHANGSHA[0])
    first = client.get(f"{ACCOUNTS}/{changsha}/transactions", fromBookingDate=today, toBookingDate=today).json()
    assert len(first["Data"]["Transaction"]) == 50 and first["Meta"] == {"TotalPages": 2}
    second = client.http.get(first["Links"]["Next"], headers=client.bearer()).json()
    assert [t["TransactionReference"] for t in second["Data"]["Transaction"]] == ["P-050"]
    assert "Next" not in second["Links"]
    assert second["Data"]["Balance"] == first["Data"]["Balance"]


def test_transactions_refuse_unknown_accounts_and_bad_ranges(client: Client) -> None:
    r = client.get(f"{ACCOUNTS}/ACC-9999/transactions", fromBookingDate="2026-01-01", toBookingDate="2026-01-31")
    assert (r.status_code, error_code(r)) == (404, "OB.Resource.NotFound")
    changsha = account_id(client, CHANGSHA[0])
    bad = client.get(f"{ACCOUNTS}/{changsha}/transactions", fromBookingDate="2026-02-01", toBookingDate="2026-01-31")
    assert (bad.status_code, error_code(bad)) == (400, "OB.Field.Invalid")
    missing = client.get(f"{ACCOUNTS}/{changsha}/transactions", fromBookingDate="2026-02-01")
    assert error_code(missing) == "OB.Field.Missing" and missing.json()["Errors"][0]["Path"] == "toBookingDate"


def test_unknown_paths_and_methods(client: Client) -> None:
    assert error_code(client.get("/open-banking/v3.1/pisp/other")) == "OB.Resource.NotFound"
    r = client.http.delete(PAYMENTS, headers=client.bearer())
    assert (r.status_code, error_code(r)) == (405, "OB.Method.NotAllowed")


# -- faults, state, control plane ----------------------------------------------------------


def test_injected_faults_speak_the_envelope(client: Client, bank: OpenBankingBank) -> None:
    bank.faults.add(Fault(route="payments.find", kind="error", status=503, times=1))
    bank.faults.add(Fault(route="payments.initiate", kind="error", status=500, times=1))
    bank.faults.add(Fault(route=ACCOUNTS, kind="rate_limit", retry_after=7, times=1))
    busy = client.get(PAYMENTS, EndToEndIdentification="X")
    assert (busy.status_code, error_code(busy)) == (503, "OB.Server.Unavailable")
    failed = client.initiate(initiation())
    assert (failed.status_code, error_code(failed)) == (500, "OB.Server.Error")
    limited = client.get(ACCOUNTS)
    assert (limited.status_code, error_code(limited), limited.headers["Retry-After"]) == (429, "OB.RateLimit.Exceeded", "7")
    assert bank.payments() == []  # the 500 fault answered instead of the bank
    assert bank.count(operation="payments.initiate", code="OB.Server.Error") == 1


def test_drop_after_applies_the_initiation_and_loses_the_answer(client: Client, bank: OpenBankingBank) -> None:
    bank.faults.add(Fault(route="payments.initiate", kind="drop_after", times=1))
    with pytest.raises(httpx.RemoteProtocolError):
        client.initiate(initiation())
    assert [p.reference for p in bank.payments()] == ["HGW-PAY-0001"]
    assert bank.payment_by_reference("HGW-PAY-0001") is not None
    assert bank.count(operation="payments.initiate", code="DROP") == 1
    # The lookup is another operation on the same path: the fault did not touch it.
    assert len(client.get(PAYMENTS, EndToEndIdentification="HGW-PAY-0001").json()["Data"]["DomesticPayment"]) == 1


def test_faults_can_match_a_creditor_account(client: Client, bank: OpenBankingBank) -> None:
    bank.faults.add(Fault(route="*", kind="error", status=503, match_id_number=LI_MING[0]))
    assert client.initiate(initiation()).status_code == 503
    other = initiation("HGW-PAY-0002", CreditorAccount=creditor("6222020200112233446", "王芳"))
    assert client.initiate(other, key="HGW-PAY-0002").status_code == 201


def test_state_masks_account_numbers_and_names(client: Client, bank: OpenBankingBank) -> None:
    client.initiate(initiation())
    dumped = json.dumps(client.http.get("/__mock__/state").json(), ensure_ascii=False)
    for secret in (CHANGSHA[0], LI_MING[0], LI_MING[1], CHANGSHA[1]):
        assert secret not in dumped
    assert "3131************0101" in dumped and "李*" in dumped
    payments = client.http.get("/__mock__/payments").json()
    assert payments[0]["creditor_account"] == "6222***********3453"


def test_control_plane_steers_the_bank(client: Client, bank: OpenBankingBank, clock: Clock) -> None:
    assert client.http.post("/__mock__/accounts/status", json={"account": LI_MING[0], "status": "closed"}).status_code == 204
    assert client.http.post("/__mock__/accounts/balance", json={"account": CHANGSHA[0], "amount": "10.00"}).status_code == 204
    assert bank.balance(CHANGSHA[0]) == Decimal("10.00")
    assert client.http.post("/__mock__/accounts/status", json={"account": LI_MING[0], "status": "gone"}).status_code == 400
    assert client.http.post("/__mock__/cut-off", json={"passed": True}).status_code == 204 and bank.cut_off_passed
    assert client.get(ACCOUNTS).status_code == 200
    assert client.http.post("/__mock__/tokens/expire").status_code == 204
    assert client.get(ACCOUNTS).status_code == 401


def test_reset_restores_the_seeded_bank(client: Client, bank: OpenBankingBank, clock: Clock) -> None:
    client.initiate(initiation())
    bank.close_account(LI_MING[0])
    bank.set_balance(CHANGSHA[0], "1.00")
    bank.cut_off_passed = True
    bank.reset()
    assert bank.payments() == [] and not bank.cut_off_passed
    assert bank.balance(CHANGSHA[0]) == Decimal("5000000.00")
    assert client.get(ACCOUNTS).status_code == 401  # tokens are gone too
