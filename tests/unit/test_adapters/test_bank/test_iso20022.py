"""The iso20022 bank adapter against docs/dialects/iso20022.md, with respx."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import importlib.resources
import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
import xmlschema

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
    StatementEntry,
    Statements,
    UpstreamAuthenticationError,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamServerError,
)
from adapters.bank.iso20022 import Iso20022BankAdapter, build_pain001, message_id

from .._support import fast_policy

BASE_URL = "https://bank-a.test"
API_KEY = "hgw-unit-test"
SECRET = "unit-test-bank-secret"
PAYMENTS = "/h2h/v1/payments"
STATEMENTS = "/h2h/v1/statements"
NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"}
CONTEXT = CallContext(request_id="req-1")

CHANGSHA = AccountParty(name="长沙示例制造有限公司", account="43050188000012345678", bank_code="999551000012")
LI_MING = AccountParty(name="李明", account="6217990000000000022", bank_code="999551000012")


@pytest.fixture(scope="module")
def xsd() -> xmlschema.XMLSchema:
    """The official schema, loaded here on its own (not through the adapter)."""
    return xmlschema.XMLSchema(str(importlib.resources.files("sepaxml") / "schemas" / "pain.001.001.09.xsd"))


def submission(**overrides: Any) -> PaymentSubmission:
    values: dict[str, Any] = {
        "reference": "PAY-0001",
        "debtor": CHANGSHA,
        "creditor": LI_MING,
        "amount": Decimal("1280.50"),
        "purpose": "reimbursement",
        "remittance": "Reimbursement R-2026-0042",
        "requested_on": dt.date(2026, 5, 11),
    }
    values.update(overrides)
    return PaymentSubmission(**values)


def config(**overrides: Any) -> AdapterConfig:
    settings: dict[str, Any] = {
        "name": "bank-a",
        "base_url": BASE_URL,
        "credentials": {"api_key": API_KEY, "api_secret": SECRET},
        "environment": "sandbox",
    }
    settings.update(overrides)
    return AdapterConfig(**settings)


@pytest.fixture
def bank() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
async def make_adapter(bank: respx.MockRouter) -> AsyncIterator[Callable[..., Iso20022BankAdapter]]:
    made: list[Iso20022BankAdapter] = []

    def make(cfg: AdapterConfig | None = None, **kwargs: Any) -> Iso20022BankAdapter:
        kwargs.setdefault("policy", fast_policy())
        kwargs.setdefault("transport", httpx.MockTransport(bank.async_handler))
        adapter = Iso20022BankAdapter(cfg or config(), **kwargs)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def adapter(make_adapter: Callable[..., Iso20022BankAdapter]) -> Iso20022BankAdapter:
    return make_adapter()


# -- what the bank answers, written from the protocol document ----------------------------


def status_report(
    tx_status: str | None = "RCVD",
    *,
    reference: str = "PAY-0001",
    reason: str | None = None,
    info: tuple[str, ...] = (),
    settled: str | None = None,
    group_status: str | None = None,
) -> str:
    reason_xml = ""
    if reason is not None:
        reason_xml = f"<StsRsnInf><Rsn><Cd>{reason}</Cd></Rsn>" + "".join(f"<AddtlInf>{i}</AddtlInf>" for i in info)
        reason_xml += "</StsRsnInf>"
    settled_xml = f"<IntrBkSttlmDt>{settled}</IntrBkSttlmDt>" if settled else ""
    tx_xml = f"<TxSts>{tx_status}</TxSts>" if tx_status else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt>
<GrpHdr><MsgId>SBA-STS-1</MsgId><CreDtTm>2026-05-11T09:30:04+08:00</CreDtTm></GrpHdr>
<OrgnlGrpInfAndSts><OrgnlMsgId>M</OrgnlMsgId><OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId>
<GrpSts>{group_status or tx_status}</GrpSts></OrgnlGrpInfAndSts>
<OrgnlPmtInfAndSts><OrgnlPmtInfId>M</OrgnlPmtInfId><TxInfAndSts><StsId>S1</StsId>
<OrgnlEndToEndId>{reference}</OrgnlEndToEndId>{tx_xml}{reason_xml}
<AcctSvcrRef>SBA2026051100000007</AcctSvcrRef>
<OrgnlTxRef><Amt><InstdAmt Ccy="CNY">1280.50</InstdAmt></Amt>{settled_xml}</OrgnlTxRef>
</TxInfAndSts></OrgnlPmtInfAndSts></CstmrPmtStsRpt></Document>"""


def repeated(code: str = "DU01") -> httpx.Response:
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt>
<GrpHdr><MsgId>SBA-STS-2</MsgId><CreDtTm>2026-05-11T09:31:00+08:00</CreDtTm></GrpHdr>
<OrgnlGrpInfAndSts><OrgnlMsgId>M</OrgnlMsgId><OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId><GrpSts>RJCT</GrpSts>
<StsRsnInf><Rsn><Cd>{code}</Cd></Rsn><AddtlInf>duplicate</AddtlInf></StsRsnInf></OrgnlGrpInfAndSts>
</CstmrPmtStsRpt></Document>"""
    return httpx.Response(409, content=body.encode(), headers={"Content-Type": "application/xml"})


def xml(body: str, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=body.encode("utf-8"), headers={"Content-Type": "application/xml"})


def refusal(status: int, code: str, message: str = "refused", **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": message}, headers=headers)


def status_route(bank: respx.MockRouter, reference: str = "PAY-0001") -> respx.Route:
    return bank.get(f"{PAYMENTS}/{reference}")


# -- configuration ---------------------------------------------------------------------------


def test_declares_a_bank_with_payments_and_statements(adapter: Iso20022BankAdapter) -> None:
    assert (adapter.kind, adapter.dialect) == ("bank", "iso20022")
    assert adapter.capabilities == {Capability.PAYMENT_INITIATION, Capability.PAYMENT_STATUS, Capability.STATEMENTS}
    assert adapter.required_credentials == ("api_key", "api_secret")
    assert isinstance(adapter, BankAdapter) and isinstance(adapter, Statements)


def test_missing_credentials_are_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="api_secret"):
        Iso20022BankAdapter(config(credentials={"api_key": API_KEY}))


@pytest.mark.parametrize("accounts", [[{"account": "1"}], "43050188000012345678", [{"account": 1, "name": "x", "bank_code": "y"}]])
def test_malformed_accounts_option_is_a_configuration_error(accounts: Any) -> None:
    with pytest.raises(ConfigurationError, match="options.accounts"):
        Iso20022BankAdapter(config(options={"accounts": accounts}))


async def test_a_debtor_account_not_configured_is_refused_before_sending(
    make_adapter: Callable[..., Iso20022BankAdapter], bank: respx.MockRouter
) -> None:
    other = {"account": "44050158000087654321", "name": "广州示例科技有限公司", "bank_code": "999581000019"}
    adapter = make_adapter(config(options={"accounts": [other]}))
    assert list(adapter.accounts) == ["44050158000087654321"]
    upload = bank.post(PAYMENTS)
    with pytest.raises(ConfigurationError, match="debtor account"):
        await adapter.initiate_payment(submission(), context=CONTEXT)
    assert not upload.called


# -- pain.001 ----------------------------------------------------------------------------------


def parse(document: bytes) -> ET.Element:
    return ET.fromstring(document)


def text(root: ET.Element, path: str) -> str | None:
    node = root.find(path, NS)
    return node.text if node is not None else None


def test_pain001_is_valid_and_carries_the_payment(xsd: xmlschema.XMLSchema) -> None:
    document = build_pain001(submission(), created_at=dt.datetime(2026, 5, 11, 1, 30, tzinfo=dt.UTC))
    assert document.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    xsd.validate(document.decode("utf-8"))
    root = parse(document)
    assert root.tag == "{urn:iso:std:iso:20022:tech:xsd:pain.001.001.09}Document"
    hdr = "p:CstmrCdtTrfInitn/p:GrpHdr"
    pmt = "p:CstmrCdtTrfInitn/p:PmtInf"
    tx = f"{pmt}/p:CdtTrfTxInf"
    assert text(root, f"{hdr}/p:MsgId") == message_id("PAY-0001")
    assert text(root, f"{hdr}/p:CreDtTm") == "2026-05-11T09:30:00+08:00"
    assert (text(root, f"{hdr}/p:NbOfTxs"), text(root, f"{hdr}/p:CtrlSum")) == ("1", "1280.50")
    assert text(root, f"{pmt}/p:PmtInfId") == message_id("PAY-0001")
    assert text(root, f"{pmt}/p:PmtMtd") == "TRF"
    assert text(root, f"{pmt}/p:ReqdExctnDt/p:Dt") == "2026-05-11"
    assert text(root, f"{pmt}/p:Dbtr/p:Nm") == "长沙示例制造有限公司"
    assert text(root, f"{pmt}/p:DbtrAcct/p:Id/p:Othr/p:Id") == "43050188000012345678"
    assert text(root, f"{pmt}/p:DbtrAgt/p:FinInstnId/p:ClrSysMmbId/p:ClrSysId/p:Cd") == "CNAPS"
    assert text(root, f"{pmt}/p:DbtrAgt/p:FinInstnId/p:ClrSysMmbId/p:MmbId") == "999551000012"
    assert text(root, f"{tx}/p:PmtId/p:EndToEndId") == "PAY-0001"
    amount = root.find(f"{tx}/p:Amt/p:InstdAmt", NS)
    assert amount is not None and (amount.text, amount.get("Ccy")) == ("1280.50", "CNY")
    assert text(root, f"{tx}/p:Cdtr/p:Nm") == "李明"
    assert text(root, f"{tx}/p:CdtrAcct/p:Id/p:Othr/p:Id") == "6217990000000000022"
    assert text(root, f"{tx}/p:CdtrAgt/p:FinInstnId/p:ClrSysMmbId/p:MmbId") == "999551000012"
    assert text(root, f"{tx}/p:Purp/p:Cd") == "BEXP"
    assert text(root, f"{tx}/p:RmtInf/p:Ustrd") == "Reimbursement R-2026-0042"


def test_message_id_is_deterministic_and_fits_max35() -> None:
    assert message_id("PAY-0001") == message_id("PAY-0001") != message_id("PAY-0002")
    assert re.fullmatch(r"HGW[0-9A-F]{32}", message_id("x" * 35))


@pytest.mark.parametrize(
    ("purpose", "code"), [("reimbursement", "BEXP"), ("social_security_contribution", "GOVI"), ("other", "OTHR")]
)
def test_purposes_travel_as_iso_purpose_codes(purpose: str, code: str, xsd: xmlschema.XMLSchema) -> None:
    document = build_pain001(submission(purpose=purpose), created_at=dt.datetime.now(dt.UTC))
    xsd.validate(document.decode())
    assert text(parse(document), "p:CstmrCdtTrfInitn/p:PmtInf/p:CdtTrfTxInf/p:Purp/p:Cd") == code


def test_a_bic_identifies_the_agent_by_bicfi(xsd: xmlschema.XMLSchema) -> None:
    creditor = AccountParty(name="张三", account="6214830000000000031", bank_code="CMBCCNBSXXX")
    document = build_pain001(submission(creditor=creditor), created_at=dt.datetime.now(dt.UTC))
    xsd.validate(document.decode())
    agent = "p:CstmrCdtTrfInitn/p:PmtInf/p:CdtTrfTxInf/p:CdtrAgt/p:FinInstnId"
    root = parse(document)
    assert text(root, f"{agent}/p:BICFI") == "CMBCCNBSXXX"
    assert root.find(f"{agent}/p:ClrSysMmbId", NS) is None


def test_maximum_length_fields_and_chinese_names_validate(xsd: xmlschema.XMLSchema) -> None:
    name = ("广州示例科技有限公司" * 14)[:140]
    long_payment = submission(
        reference="R" * 35,
        debtor=AccountParty(name=name, account="9" * 34, bank_code="999581000019"),
        creditor=AccountParty(name="欧阳" + "娜" * 138, account="1" * 34, bank_code="SBXACNBJ"),
        remittance="报销" * 70,
    )
    document = build_pain001(long_payment, created_at=dt.datetime.now(dt.UTC))
    xsd.validate(document.decode("utf-8"))
    root = parse(document)
    assert text(root, "p:CstmrCdtTrfInitn/p:PmtInf/p:Dbtr/p:Nm") == name
    assert text(root, "p:CstmrCdtTrfInitn/p:PmtInf/p:CdtTrfTxInf/p:PmtId/p:EndToEndId") == "R" * 35
    assert text(root, "p:CstmrCdtTrfInitn/p:PmtInf/p:CdtTrfTxInf/p:RmtInf/p:Ustrd") == "报销" * 70


def test_an_empty_remittance_is_left_out(xsd: xmlschema.XMLSchema) -> None:
    document = build_pain001(submission(remittance=""), created_at=dt.datetime.now(dt.UTC))
    xsd.validate(document.decode())
    assert parse(document).find("p:CstmrCdtTrfInitn/p:PmtInf/p:CdtTrfTxInf/p:RmtInf", NS) is None


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        ({"creditor": AccountParty(name="名" * 141, account="6217990000000000022", bank_code="999551000012")}, "/Cdtr/Nm$"),
        ({"creditor": AccountParty(name="李明", account="1" * 35, bank_code="999551000012")}, "/CdtrAcct/Id/Othr/Id$"),
        ({"reference": "R" * 36}, "/CdtTrfTxInf/PmtId/"),
        ({"remittance": "x" * 141}, "/RmtInf/Ustrd$"),
        ({"amount": Decimal("-1.00")}, "/Amt/InstdAmt$"),
    ],
)
async def test_a_payment_that_does_not_fit_the_schema_is_never_sent(
    adapter: Iso20022BankAdapter, bank: respx.MockRouter, overrides: dict[str, Any], where: str
) -> None:
    upload = bank.post(PAYMENTS)
    with pytest.raises(ValueError, match=where):
        await adapter.initiate_payment(submission(**overrides), context=CONTEXT)
    assert not upload.called


async def test_an_amount_with_three_decimals_is_refused(adapter: Iso20022BankAdapter, bank: respx.MockRouter) -> None:
    upload = bank.post(PAYMENTS)
    with pytest.raises(ValueError, match="two decimal"):
        await adapter.initiate_payment(submission(amount=Decimal("1.005")), context=CONTEXT)
    assert not upload.called


# -- signing ----------------------------------------------------------------------------------


async def test_uploads_are_signed_as_documented(adapter: Iso20022BankAdapter, bank: respx.MockRouter, xsd: Any) -> None:
    upload = bank.post(PAYMENTS).mock(return_value=xml(status_report("RCVD")))
    await adapter.initiate_payment(submission(), context=CONTEXT)
    request = upload.calls.last.request
    assert request.headers["Content-Type"] == "application/xml"
    assert request.headers["X-Request-ID"] == "req-1"
    assert request.headers["X-Api-Key"] == API_KEY
    request_time = request.headers["X-Request-Time"]
    sent_at = dt.datetime.strptime(request_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
    assert abs(sent_at - time.time()) < 5
    nonce = request.headers["X-Nonce"]
    assert re.fullmatch(r"[0-9A-Za-z]{16,64}", nonce)
    to_sign = "\n".join(["POST", PAYMENTS, request_time, nonce, hashlib.sha256(request.content).hexdigest()])
    expected = base64.b64encode(hmac.new(SECRET.encode(), to_sign.encode(), hashlib.sha256).digest()).decode()
    assert request.headers["X-Signature"] == expected
    xsd.validate(request.content.decode("utf-8"))  # what went over the wire, not only what was built


async def test_status_queries_are_signed_over_the_encoded_path(
    adapter: Iso20022BankAdapter, bank: respx.MockRouter
) -> None:
    route = bank.get(url__regex=r"/h2h/v1/payments/.+").mock(return_value=xml(status_report(reference="PAY/1 x")))
    receipt = await adapter.find_payment("PAY/1 x", context=CONTEXT)
    assert receipt is not None and receipt.reference == "PAY/1 x"
    request = route.calls.last.request
    assert request.url.raw_path == b"/h2h/v1/payments/PAY%2F1%20x"
    h = request.headers
    to_sign = "\n".join(["GET", "/h2h/v1/payments/PAY%2F1%20x", h["X-Request-Time"], h["X-Nonce"], hashlib.sha256(b"").hexdigest()])
    assert h["X-Signature"] == base64.b64encode(hmac.new(SECRET.encode(), to_sign.encode(), hashlib.sha256).digest()).decode()
    assert request.content == b""


async def test_every_attempt_is_signed_with_a_fresh_nonce(adapter: Iso20022BankAdapter, bank: respx.MockRouter) -> None:
    route = status_route(bank).mock(side_effect=[refusal(503, "UNAVAILABLE"), xml(status_report("ACSP"))])
    await adapter.find_payment("PAY-0001", context=CONTEXT)
    nonces = {call.request.headers["X-Nonce"] for call in route.calls}
    assert route.call_count == 2 and len(nonces) == 2


# -- status reports ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("RCVD", "submitted"),
        ("PDNG", "submitted"),
        ("ACTC", "accepted"),
        ("ACCP", "accepted"),
        ("ACSP", "accepted"),
        ("ACWC", "accepted"),
        ("ACSC", "settled"),
        ("ACCC", "settled"),
    ],
)
async def test_transaction_statuses_map_to_canonical_statuses(
    adapter: Iso20022BankAdapter, bank: respx.MockRouter, code: str, status: str
) -> None:
    status_route(bank).mock(return_value=xml(status_report(code)))
    receipt = await adapter.find_payment("PAY-0001", context=CONTEXT)
    assert receipt == PaymentReceipt(reference="PAY-0001", bank_reference="SBA2026051100000007", status=status)


async def test_the_group_status_stands_in_when_there_is_no_transaction_status(
    adapter: Iso20022BankAdapter, bank: respx.MockRouter
) -> None:
    status_route(bank).mock(return_value=xml(status_report(None, group_status="ACSP")))
    receipt = await adapter.find_payment("PAY-0001", context=CONTEXT)
    assert receipt is not None and receipt.status == "accepted"


async def test_settled_payments_carry_the_settlement_date(adapter: Iso20022BankAdapter, bank: respx.MockRouter) -> None:
    status_route(bank).mock(return_value=xml(status_report("ACSC", settled="2026-05-12")))
    receipt = await adapter.find_payment("PAY-0001", context=CONTEXT)
    assert receipt is not None and receipt.settled_on == dt.date(2026, 5, 12)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("AC01", "invalid_account"),
        ("AC02", "invalid_account"),
        ("AC03", "invalid_account"),
        ("AC04", "account_closed"),
        ("AC06", "account_blocked"),
        ("BE01", "creditor_name_mismatch"),
        ("AM04", "insufficient_funds"),
        ("AM01", "invalid_amount"),
        ("AM02", "invalid_amount"),
        ("AM12", "invalid_amount"),
        ("AM05", "duplicate_payment"),
        ("RC01", "invalid_bank_code"),
        ("RC10", "invalid_bank_code"),
        ("RR01", "regulatory"),
        ("RR02", "regulatory"),
        ("RR03", "regulatory"),
        ("RR04", "regulatory"),
        ("CUTA", "cut_off_passed"),
        ("MS03", "other"),
        ("AM03", "other"),
    ],
)
async def test_rejection_reasons_map_and_keep_the_bank_code_and_text(
    adapter: Iso20022BankAdapter, bank: respx.MockRouter, code: str, reason: str
) -> None:
    status_route(bank).mock(return_value=xml(status_report("RJCT", reason=code, info=("收款账户已销户", "account closed"))))
    receipt = await adapter.find_payment("PAY-0001", context=CONTEXT)
    assert receipt is not None
    assert (receipt.status, receipt.reason, receipt.upstream_code) == ("rejected", reason, code)
    assert receipt.upstream_message == "收款账户已销户 account closed"


async def test_a_rejection_without_a_reason_is_other(adapter: Iso20022BankAdapter, bank: respx.MockRouter) -> None:
    status_route(bank).mock(return_value=xml(status_report("RJCT")))
    receipt = await adapter.find_payment("PAY-0001", context=CONTEXT)
    assert receipt is not None and (receipt.reason, receipt.upstream_code) == ("other", None)


async def test_an_unknown_payment_is_none(adapter: Iso20022BankAdapter, bank: respx.MockRouter) -> None:
    status_route(bank).mock(return_value=refusal(404, "NOT_FOUND"))
    assert await adapter.find_payment("PAY-0001", context=CONTEXT) is None


@pytest.mark.parametrize(
    "body",
    [
        status_report("WHAT"),
        status_report("RCVD", reference="PAY-OTHER"),
        "<not xml",
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"/>',
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><d>&b;</d>',
    ],
    ids=["unknown-status", "other-payment", "not-xml", "other-message", "entity-expansion"],
)
async def test_unreadable_status_reports_are_protocol_errors(
    adapter: Iso20022BankAdapter, bank: respx.MockRouter, body: str
) -> None:
    status_route(bank).mock(return_value=xml(body))
    with pytest.raises(UpstreamProtocolError):
        await adapter.find_payment("PAY-0001", context=CONTEXT)


async def test_a_refused_signature_is_an_authentication_error(
    adapter: Iso20022BankAdapter, bank: respx.MockRouter
) -> None:
    status_route(bank).mock(return_value=refusal(401, "AUTH_SIGNATURE"))
    with pytest.raises(UpstreamAuthenticationError) as caught:
        await adapter.find_payment("PAY-0001", context=CONTEXT)
    assert caught.value.upstream_code == "AUTH_SIGNATURE"


# -- initiating payments -------------------------------------------------------------------------


async def test_an_immediate_rejection_is_a_rejected_receipt(adapter: Iso20022BankAdapter, bank: respx.MockRouter) -> None:
    bank.post(PAYMENTS).mock(return_value=xml(status_report("RJCT", reason="RC10", info=("unknown creditor agent",))))
    receipt = await adapter.initiate_payment(submission(), context=CONTEXT)
    assert (receipt.status, receipt.reason, receipt.upstream_code) == ("rejected", "invalid_bank_code", "RC10")


@pytest.mark.parametrize("code", ["FF01", "CH16", "MEDIA_TYPE"])
async def test_an_upload_the_bank_cannot_take_is_a_business_rejection(
    adapter: Iso20022BankAdapter, bank: respx.MockRouter, code: str
) -> None:
    status = 415 if code == "MEDIA_TYPE" else 400
    upload = bank.post(PAYMENTS).mock(return_value=refusal(status, code, "not valid at /Document/x"))
    lookup = status_route(bank)
    with pytest.raises(BusinessRejection) as caught:
        await adapter.initiate_payment(submission(), context=CONTEXT)
    assert (caught.value.upstream_code, caught.value.upstream_message) == (code, "not valid at /Document/x")
    assert upload.call_count == 1 and not lookup.called


@pytest.mark.parametrize("code", ["DU01", "DU04"])
async def test_a_repeated_upload_answers_the_payment_the_bank_already_has(
    adapter: Iso20022BankAdapter, bank: respx.MockRouter, code: str
) -> None:
    upload = bank.post(PAYMENTS).mock(return_value=repeated(code))
    lookup = status_route(bank).mock(return_value=xml(status_report("ACSC", settled="2026-05-11")))
    receipt = await adapter.initiate_payment(submission(), context=CONTEXT)
    assert (receipt.status, receipt.settled_on) == ("settled", dt.date(2026, 5, 11))
    assert upload.call_count == 1 and lookup.call_count == 1


async def test_a_repeat_the_bank_cannot_find_is_a_business_rejection(
    adapter: Iso20022BankAdapter, bank: respx.MockRouter
) -> None:
    bank.post(PAYMENTS).mock(return_value=repeated("DU01"))
    status_route(bank).mock(return_value=refusal(404, "NOT_FOUND"))
    with pytest.raises(BusinessRejection) as caught:
        await adapter.initiate_payment(submission(), context=CONTEXT)
    assert caught.value.upstream_code == "DU01"


async def test_a_lost_answer_is_asked_about_not_resent(adapter: Iso20022BankAdapter, bank: respx.MockRouter) -> None:
    upload = bank.post(PAYMENTS).mock(side_effect=httpx.ReadTimeout("lost"))
    lookup = status_route(bank).mock(return_value=xml(status_report("RCVD")))
    receipt = await adapter.initiate_payment(submission(), context=CONTEXT)
    assert receipt.status == "submitted"
    assert upload.call_count == 1 and lookup.call_count == 1


async def test_a_500_to_an_upload_is_ambiguous_and_asked_about(adapter: Iso20022BankAdapter, bank: respx.MockRouter) -> None:
    upload = bank.post(PAYMENTS).mock(side_effect=[refusal(500, "INTERNAL"), xml(status_report("RCVD"))])
    lookup = status_route(bank).mock(return_value=refusal(404, "NOT_FOUND"))
    receipt = await adapter.initiate_payment(submission(), context=CONTEXT)
    # It had not landed, so it was sent again, once.
    assert receipt.status == "submitted"
    assert upload.call_count == 2 and lookup.call_count == 1
    first, second = (ET.fromstring(c.request.content) for c in upload.calls)
    assert text(first, "p:CstmrCdtTrfInitn/p:GrpHdr/p:MsgId") == text(second, "p:CstmrCdtTrfInitn/p:GrpHdr/p:MsgId")


async def test_an_upload_lost_every_time_and_never_landed_fails_retryably(
    adapter: Iso20022BankAdapter, bank: respx.MockRouter
) -> None:
    upload = bank.post(PAYMENTS).mock(side_effect=httpx.ReadTimeout("lost"))
    lookup = status_route(bank).mock(return_value=refusal(404, "NOT_FOUND"))
    with pytest.raises(UpstreamServerError):
        await adapter.initiate_payment(submission(), context=CONTEXT)
    assert upload.call_count == lookup.call_count == Iso20022BankAdapter.max_submit_rounds


async def test_a_lost_answer_when_the_bank_cannot_be_asked_stays_ambiguous(
    adapter: Iso20022BankAdapter, bank: respx.MockRouter
) -> None:
    bank.post(PAYMENTS).mock(side_effect=httpx.ReadTimeout("lost"))
    status_route(bank).mock(return_value=refusal(503, "UNAVAILABLE"))
    with pytest.raises(AmbiguousOutcome):
        await adapter.initiate_payment(submission(), context=CONTEXT)


async def test_busy_answers_to_an_upload_are_retried(adapter: Iso20022BankAdapter, bank: respx.MockRouter) -> None:
    upload = bank.post(PAYMENTS).mock(
        side_effect=[
            refusal(429, "RATE_LIMITED", **{"Retry-After": "0"}),
            refusal(503, "UNAVAILABLE"),
            xml(status_report("RCVD")),
        ]
    )
    lookup = status_route(bank)
    receipt = await adapter.initiate_payment(submission(), context=CONTEXT)
    assert receipt.status == "submitted"
    assert upload.call_count == 3 and not lookup.called


async def test_an_upload_answered_about_another_payment_is_a_protocol_error(
    adapter: Iso20022BankAdapter, bank: respx.MockRouter
) -> None:
    bank.post(PAYMENTS).mock(return_value=xml(status_report("RCVD", reference="PAY-OTHER")))
    with pytest.raises(UpstreamProtocolError):
        await adapter.initiate_payment(submission(), context=CONTEXT)


# -- statements -------------------------------------------------------------------------------------


def camt053(account: str = "43050188000012345678", *, entries: str = "", opening: str = "5000000.00",
            opening_sign: str = "CRDT", closing: str = "4998719.50") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
<GrpHdr><MsgId>SBA-STM-3</MsgId><CreDtTm>2026-05-11T10:00:00+08:00</CreDtTm></GrpHdr>
<Stmt><Id>SBA-STM-3</Id><CreDtTm>2026-05-11T10:00:00+08:00</CreDtTm>
<Acct><Id><Othr><Id>{account}</Id></Othr></Id><Ccy>CNY</Ccy></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">{opening}</Amt><CdtDbtInd>{opening_sign}</CdtDbtInd>
<Dt><Dt>2026-04-01</Dt></Dt></Bal>
<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">{closing}</Amt><CdtDbtInd>CRDT</CdtDbtInd>
<Dt><Dt>2026-04-30</Dt></Dt></Bal>
{entries}
</Stmt></BkToCstmrStmt></Document>"""


DEBIT = """<Ntry><NtryRef>1</NtryRef><Amt Ccy="CNY">1280.50</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
<BookgDt><Dt>2026-04-12</Dt></BookgDt><ValDt><Dt>2026-04-13</Dt></ValDt><AcctSvcrRef>SBA2026041200000003</AcctSvcrRef>
<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>ICDT</Cd><SubFmlyCd>DMCT</SubFmlyCd></Fmly></Domn></BkTxCd>
<NtryDtls><TxDtls><Refs><EndToEndId>PAY-0001</EndToEndId></Refs>
<RltdPties><Dbtr><Pty><Nm>长沙示例制造有限公司</Nm></Pty></Dbtr><DbtrAcct><Id><Othr><Id>43050188000012345678</Id></Othr></Id></DbtrAcct>
<Cdtr><Pty><Nm>李明</Nm></Pty></Cdtr><CdtrAcct><Id><Othr><Id>6217990000000000022</Id></Othr></Id></CdtrAcct></RltdPties>
<RmtInf><Ustrd>Reimbursement</Ustrd><Ustrd>R-2026-0042</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"""

CREDIT = """<Ntry><NtryRef>2</NtryRef><Amt Ccy="CNY">515000.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
<BookgDt><DtTm>2026-04-05T10:00:00+08:00</DtTm></BookgDt><AcctSvcrRef>SBA2026040500000001</AcctSvcrRef>
<BkTxCd><Prtry><Cd>RCV</Cd></Prtry></BkTxCd>
<NtryDtls><TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>
<RltdPties><Dbtr><Pty><Nm>湖南示例贸易有限公司</Nm></Pty></Dbtr><DbtrAcct><Id><Othr><Id>73010000000000000091</Id></Othr></Id></DbtrAcct>
<Cdtr><Pty><Nm>长沙示例制造有限公司</Nm></Pty></Cdtr></RltdPties></TxDtls></NtryDtls></Ntry>"""

PENDING = """<Ntry><Amt Ccy="CNY">99.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>PDNG</Cd></Sts>
<BookgDt><Dt>2026-04-30</Dt></BookgDt><AcctSvcrRef>SBA2026043000000009</AcctSvcrRef></Ntry>
<Ntry><Amt Ccy="CNY">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>INFO</Cd></Sts>
<BookgDt><Dt>2026-04-30</Dt></BookgDt><AcctSvcrRef>SBA-INFO</AcctSvcrRef></Ntry>"""


async def test_a_statement_is_normalised(adapter: Iso20022BankAdapter, bank: respx.MockRouter) -> None:
    route = bank.post(STATEMENTS).mock(return_value=xml(camt053(entries=DEBIT + CREDIT + PENDING)))
    statement = await adapter.statement(
        "43050188000012345678", dt.date(2026, 4, 1), dt.date(2026, 4, 30), context=CONTEXT
    )
    request = route.calls.last.request
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {"account": "43050188000012345678", "fromDate": "2026-04-01", "toDate": "2026-04-30"}
    assert "43050188000012345678" not in str(request.url)
    assert (statement.account, statement.currency) == ("43050188000012345678", "CNY")
    assert (statement.from_date, statement.to_date) == (dt.date(2026, 4, 1), dt.date(2026, 4, 30))
    assert (statement.opening_balance, statement.closing_balance) == (Decimal("5000000.00"), Decimal("4998719.50"))
    debit, credit, pending = statement.entries
    assert debit == StatementEntry(
        entry_reference="SBA2026041200000003", booked_on=dt.date(2026, 4, 12), value_on=dt.date(2026, 4, 13),
        amount=Decimal("1280.50"), currency="CNY", direction="debit", status="booked", reference="PAY-0001",
        counterparty_name="李明", counterparty_account="6217990000000000022",
        remittance="Reimbursement R-2026-0042", bank_transaction_code="PMNT/ICDT/DMCT",
    )
    assert credit == StatementEntry(
        entry_reference="SBA2026040500000001", booked_on=dt.date(2026, 4, 5), value_on=None,
        amount=Decimal("515000.00"), currency="CNY", direction="credit", status="booked", reference=None,
        counterparty_name="湖南示例贸易有限公司", counterparty_account="73010000000000000091",
        remittance=None, bank_transaction_code="RCV",
    )
    assert (pending.status, pending.direction, pending.amount, pending.reference) == (
        "pending", "debit", Decimal("99.00"), None,
    )


async def test_a_debit_balance_is_negative(adapter: Iso20022BankAdapter, bank: respx.MockRouter) -> None:
    bank.post(STATEMENTS).mock(return_value=xml(camt053(opening="12.30", opening_sign="DBIT")))
    statement = await adapter.statement("43050188000012345678", dt.date(2026, 4, 1), dt.date(2026, 4, 30), context=CONTEXT)
    assert statement.opening_balance == Decimal("-12.30") and statement.entries == ()


async def test_a_long_period_is_asked_for_in_slices_the_bank_serves(
    adapter: Iso20022BankAdapter, bank: respx.MockRouter
) -> None:
    route = bank.post(STATEMENTS).mock(
        side_effect=[
            xml(camt053(entries=CREDIT, opening="100.00", closing="200.00")),
            xml(camt053(entries=DEBIT, opening="200.00", closing="300.00")),
        ]
    )
    statement = await adapter.statement("43050188000012345678", dt.date(2025, 1, 1), dt.date(2026, 4, 30), context=CONTEXT)
    asked = [json.loads(call.request.content) for call in route.calls]
    assert [(a["fromDate"], a["toDate"]) for a in asked] == [("2025-01-01", "2026-01-01"), ("2026-01-02", "2026-04-30")]
    assert (statement.opening_balance, statement.closing_balance) == (Decimal("100.00"), Decimal("300.00"))
    assert [e.entry_reference for e in statement.entries] == ["SBA2026040500000001", "SBA2026041200000003"]


async def test_an_unknown_account_is_not_found(adapter: Iso20022BankAdapter, bank: respx.MockRouter) -> None:
    bank.post(STATEMENTS).mock(return_value=refusal(404, "UNKNOWN_ACCOUNT"))
    with pytest.raises(UpstreamNotFound) as caught:
        await adapter.statement("1234567890", dt.date(2026, 4, 1), dt.date(2026, 4, 30), context=CONTEXT)
    assert caught.value.upstream_code == "UNKNOWN_ACCOUNT"


async def test_a_statement_of_another_account_is_a_protocol_error(
    adapter: Iso20022BankAdapter, bank: respx.MockRouter
) -> None:
    bank.post(STATEMENTS).mock(return_value=xml(camt053(account="44050158000087654321")))
    with pytest.raises(UpstreamProtocolError):
        await adapter.statement("43050188000012345678", dt.date(2026, 4, 1), dt.date(2026, 4, 30), context=CONTEXT)


async def test_a_reversed_period_is_refused_before_asking(adapter: Iso20022BankAdapter, bank: respx.MockRouter) -> None:
    route = bank.post(STATEMENTS)
    with pytest.raises(ValueError):
        await adapter.statement("43050188000012345678", dt.date(2026, 5, 1), dt.date(2026, 4, 30), context=CONTEXT)
    assert not route.called
