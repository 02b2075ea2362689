"""The iso20022 mock bank against docs/dialects/iso20022.md, over real HTTP."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

import httpx
import pytest

from mocks.faults import Fault
from mocks.iso20022 import Iso20022Bank

API_KEY = "hgw-test"
SECRET = "test-bank-secret"
PAYMENTS = "/h2h/v1/payments"
STATEMENTS = "/h2h/v1/statements"
STEP = 2.0
CHINA = dt.timezone(dt.timedelta(hours=8))

CHANGSHA = "43050188000012345678"
GUANGZHOU = "44050158000087654321"
WUHAN = "42050116000011223344"
LI_MING = "6217990000000000022"
ZHANG_SAN = "6214830000000000031"
CLOSED = "6217990000000000048"
BLOCKED = "6217990000000000055"
HOLD = "6217990000000000063"

P002 = {"s": "urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"}
C053 = {"c": "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"}


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.now, CHINA).date()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bank(clock: Clock) -> Iterator[Iso20022Bank]:
    with Iso20022Bank(api_key=API_KEY, api_secret=SECRET, settle_seconds=STEP, clock=clock) as server:
        yield server


class Client:
    """Signs requests exactly as the document says, at the bank's (fake) time."""

    def __init__(self, bank: Iso20022Bank, clock: Clock) -> None:
        self.http = httpx.Client(base_url=bank.base_url, timeout=5)
        self.clock = clock

    def headers(self, method: str, target: str, body: bytes, *, key: str = API_KEY, secret: str = SECRET,
                at: float | None = None, nonce: str | None = None) -> dict[str, str]:
        moment = dt.datetime.fromtimestamp(int(self.clock() if at is None else at), dt.UTC)
        request_time = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        nonce = nonce or secrets.token_hex(16)
        to_sign = "\n".join([method, target, request_time, nonce, hashlib.sha256(body).hexdigest()])
        signature = base64.b64encode(hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).digest()).decode()
        return {"X-Api-Key": key, "X-Request-Time": request_time, "X-Nonce": nonce, "X-Signature": signature}

    def upload(self, document: str | bytes, *, content_type: str = "application/xml", **signing: Any) -> httpx.Response:
        body = document.encode("utf-8") if isinstance(document, str) else document
        headers = {"Content-Type": content_type, **self.headers("POST", PAYMENTS, body, **signing)}
        return self.http.post(PAYMENTS, content=body, headers=headers)

    def status(self, target: str) -> httpx.Response:
        return self.http.get(target, headers=self.headers("GET", target, b""))

    def statement(self, payload: Any) -> httpx.Response:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", **self.headers("POST", STATEMENTS, body)}
        return self.http.post(STATEMENTS, content=body, headers=headers)


@pytest.fixture
def client(bank: Iso20022Bank, clock: Clock) -> Iterator[Client]:
    c = Client(bank, clock)
    yield c
    c.http.close()


def agent(code: str) -> str:
    if code.isdigit():
        return f"<FinInstnId><ClrSysMmbId><ClrSysId><Cd>CNAPS</Cd></ClrSysId><MmbId>{code}</MmbId></ClrSysMmbId></FinInstnId>"
    return f"<FinInstnId><BICFI>{code}</BICFI></FinInstnId>"


def pain001(
    e2e: str = "PAY-0001",
    *,
    msg_id: str | None = None,
    amount: str = "1280.50",
    currency: str = "CNY",
    debtor: str = CHANGSHA,
    debtor_agent: str = "999551000012",
    creditor: str = LI_MING,
    creditor_name: str = "李明",
    creditor_agent: str = "999551000012",
    requested_on: dt.date | None = None,
    remittance: str = "Reimbursement R-2026-0042",
    ctrl_sum: str | None = None,
    extra_tx: bool = False,
    creditor_account_xml: str | None = None,
) -> str:
    requested = (requested_on or dt.datetime.now(CHINA).date()).isoformat()
    tx = f"""<CdtTrfTxInf>
<PmtId><InstrId>{e2e}</InstrId><EndToEndId>{e2e}</EndToEndId></PmtId>
<Amt><InstdAmt Ccy="{currency}">{amount}</InstdAmt></Amt>
<CdtrAgt>{agent(creditor_agent)}</CdtrAgt>
<Cdtr><Nm>{escape(creditor_name)}</Nm></Cdtr>
{creditor_account_xml or f"<CdtrAcct><Id><Othr><Id>{creditor}</Id></Othr></Id></CdtrAcct>"}
<Purp><Cd>BEXP</Cd></Purp>
<RmtInf><Ustrd>{escape(remittance)}</Ustrd></RmtInf>
</CdtTrfTxInf>"""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"><CstmrCdtTrfInitn>
<GrpHdr><MsgId>{msg_id or "MSG-" + e2e}</MsgId><CreDtTm>2026-05-11T09:30:00+08:00</CreDtTm>
<NbOfTxs>1</NbOfTxs><CtrlSum>{ctrl_sum or amount}</CtrlSum><InitgPty><Nm>长沙示例制造有限公司</Nm></InitgPty></GrpHdr>
<PmtInf><PmtInfId>{msg_id or "MSG-" + e2e}</PmtInfId><PmtMtd>TRF</PmtMtd>
<ReqdExctnDt><Dt>{requested}</Dt></ReqdExctnDt>
<Dbtr><Nm>长沙示例制造有限公司</Nm></Dbtr>
<DbtrAcct><Id><Othr><Id>{debtor}</Id></Othr></Id><Ccy>CNY</Ccy></DbtrAcct>
<DbtrAgt>{agent(debtor_agent)}</DbtrAgt>
{tx}{tx if extra_tx else ""}
</PmtInf></CstmrCdtTrfInitn></Document>"""


def report(response: httpx.Response) -> dict[str, Any]:
    """The fields of a pain.002 a client reads."""
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "{urn:iso:std:iso:20022:tech:xsd:pain.002.001.10}Document"

    def text(path: str) -> str | None:
        node = root.find("/".join(f"s:{p}" for p in path.split("/")), P002)
        return node.text if node is not None else None

    tx = "CstmrPmtStsRpt/OrgnlPmtInfAndSts/TxInfAndSts"
    return {
        "group_status": text("CstmrPmtStsRpt/OrgnlGrpInfAndSts/GrpSts"),
        "group_reason": text("CstmrPmtStsRpt/OrgnlGrpInfAndSts/StsRsnInf/Rsn/Cd"),
        "msg_id": text("CstmrPmtStsRpt/OrgnlGrpInfAndSts/OrgnlMsgId"),
        "e2e": text(f"{tx}/OrgnlEndToEndId"),
        "status": text(f"{tx}/TxSts"),
        "reason": text(f"{tx}/StsRsnInf/Rsn/Cd"),
        "info": text(f"{tx}/StsRsnInf/AddtlInf"),
        "bank_reference": text(f"{tx}/AcctSvcrRef"),
        "accepted_at": text(f"{tx}/AccptncDtTm"),
        "settled_on": text(f"{tx}/OrgnlTxRef/IntrBkSttlmDt"),
        "amount": text(f"{tx}/OrgnlTxRef/Amt/InstdAmt"),
    }


def status_of(client: Client, e2e: str = "PAY-0001") -> dict[str, Any]:
    response = client.status(f"{PAYMENTS}/{e2e}")
    assert response.status_code == 200, response.text
    return report(response)


# -- the basics ---------------------------------------------------------------------------------


def test_ping_is_unsigned(client: Client) -> None:
    response = client.http.get("/h2h/v1/ping")
    assert response.json() == {"status": "UP", "bank": "SBXACNBJ"}


def test_an_upload_is_received_then_accepted_then_settled_and_booked(
    bank: Iso20022Bank, client: Client, clock: Clock
) -> None:
    before = bank.balance(CHANGSHA)
    response = client.upload(pain001())
    assert response.status_code == 200
    first = report(response)
    assert first | {"bank_reference": None} == {
        "group_status": "RCVD", "group_reason": None, "msg_id": "MSG-PAY-0001", "e2e": "PAY-0001", "status": "RCVD",
        "reason": None, "info": None, "bank_reference": None, "accepted_at": None, "settled_on": None,
        "amount": "1280.50",
    }
    assert first["bank_reference"].startswith(f"SBA{clock.today():%Y%m%d}")
    clock.advance(STEP)
    accepted = status_of(client)
    assert accepted["status"] == "ACSP" and accepted["accepted_at"] is not None
    assert bank.balance(CHANGSHA) == before  # reserved, not booked
    clock.advance(STEP)
    settled = status_of(client)
    assert (settled["status"], settled["settled_on"]) == ("ACSC", clock.today().isoformat())
    assert settled["bank_reference"] == first["bank_reference"]
    assert bank.balance(CHANGSHA) == before - Decimal("1280.50")
    [entry] = [e for e in bank.entries(CHANGSHA) if e.end_to_end_id == "PAY-0001"]
    assert (entry.direction, entry.amount, entry.booked_on) == ("DBIT", Decimal("1280.50"), clock.today())
    assert [p.history for p in bank.payments()] == [["RCVD", "ACSP", "ACSC"]]


def test_a_payment_between_two_client_accounts_is_credited_too(bank: Iso20022Bank, client: Client) -> None:
    before = bank.balance(GUANGZHOU)
    document = pain001(creditor=GUANGZHOU, creditor_name="广州示例科技有限公司", creditor_agent="999581000019")
    assert report(client.upload(document))["status"] == "RCVD"
    bank.settle()
    assert bank.balance(GUANGZHOU) == before + Decimal("1280.50")
    [credit] = [e for e in bank.entries(GUANGZHOU) if e.end_to_end_id == "PAY-0001"]
    assert (credit.direction, credit.domain) == ("CRDT", "PMNT/RCDT/DMCT")


def test_an_unknown_payment_is_404(client: Client) -> None:
    response = client.status(f"{PAYMENTS}/PAY-NEVER")
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"


def test_a_percent_encoded_end_to_end_id_is_found(client: Client) -> None:
    assert report(client.upload(pain001("PAY/1 x")))["status"] == "RCVD"
    assert status_of(client, "PAY%2F1%20x")["e2e"] == "PAY/1 x"


# -- authentication -------------------------------------------------------------------------------


def test_missing_signing_headers_are_refused(client: Client) -> None:
    response = client.http.post(PAYMENTS, content=pain001().encode(), headers={"Content-Type": "application/xml"})
    assert response.status_code == 401 and response.json()["code"] == "AUTH_SIGNATURE"


def test_an_unknown_key_is_refused(client: Client) -> None:
    response = client.upload(pain001(), key="someone-else")
    assert response.status_code == 401 and response.json()["code"] == "AUTH_UNKNOWN_KEY"


def test_a_wrong_signature_is_refused(bank: Iso20022Bank, client: Client) -> None:
    response = client.upload(pain001(), secret="wrong")
    assert response.status_code == 401 and response.json()["code"] == "AUTH_SIGNATURE"
    assert bank.payments() == []


def test_a_stale_request_is_refused(client: Client, clock: Clock) -> None:
    response = client.upload(pain001(), at=clock() - 301)
    assert response.status_code == 401 and response.json()["code"] == "AUTH_EXPIRED"


def test_a_replayed_nonce_is_refused(client: Client) -> None:
    nonce = "a" * 32
    assert client.upload(pain001("PAY-A"), nonce=nonce).status_code == 200
    response = client.upload(pain001("PAY-B"), nonce=nonce)
    assert response.status_code == 401 and response.json()["code"] == "AUTH_REPLAY"


# -- the schema and the usage rules --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ("<not xml", "well-formed"),
        ('<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"/>', "pain.001.001.09"),
        (pain001("E" * 36, msg_id="M1"), "/PmtId/"),
        (pain001(creditor_name="名" * 141), "/Cdtr/Nm"),
        (pain001(amount="12.3456789"), "/InstdAmt"),
        (pain001().replace("<PmtMtd>TRF</PmtMtd>", ""), "/PmtInf"),
        ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><d>&a;</d>', "well-formed"),
    ],
    ids=["not-xml", "other-version", "long-e2e", "long-name", "amount-digits", "missing-element", "entities"],
)
def test_anything_not_valid_against_the_xsd_is_ff01_and_not_recorded(
    bank: Iso20022Bank, client: Client, document: str, where: str
) -> None:
    response = client.upload(document)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "FF01" and where in body["message"]
    assert "名" not in body["message"]
    assert bank.payments() == []


@pytest.mark.parametrize(
    "document",
    [
        pain001(extra_tx=True),
        pain001(ctrl_sum="1.00"),
        pain001(creditor_account_xml="<CdtrAcct><Id><IBAN>DE89370400440532013000</IBAN></Id></CdtrAcct>"),
        pain001().replace("<Cdtr><Nm>李明</Nm></Cdtr>", ""),
        pain001(requested_on=dt.date.today() + dt.timedelta(days=40)),
    ],
    ids=["two-transactions", "ctrl-sum", "iban", "no-creditor", "far-future"],
)
def test_usage_rule_violations_are_ch16_and_not_recorded(bank: Iso20022Bank, client: Client, document: str) -> None:
    response = client.upload(document)
    assert response.status_code == 400 and response.json()["code"] == "CH16", response.text
    assert bank.payments() == []


def test_an_upload_must_be_application_xml(client: Client) -> None:
    response = client.upload(pain001(), content_type="text/plain")
    assert response.status_code == 415 and response.json()["code"] == "MEDIA_TYPE"


def test_a_bic_identifies_an_agent(client: Client) -> None:
    document = pain001(debtor_agent="SBXACNBJ", creditor=ZHANG_SAN, creditor_name="张三", creditor_agent="CMBCCNBS")
    assert report(client.upload(document))["status"] == "RCVD"


# -- rejections --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"currency": "USD"}, "AM03"),
        ({"amount": "0"}, "AM01"),
        ({"amount": "10.005"}, "AM12"),
        ({"amount": "1000000.01"}, "AM02"),
        ({"debtor_agent": "102551001019"}, "RC01"),
        ({"debtor": "99999999999999"}, "AC02"),
        ({"creditor_agent": "999999999999"}, "RC10"),
        ({"creditor_agent": "CMBCCNBS", "creditor": "12AB"}, "AC03"),
        ({"creditor": "6217990000000000998"}, "AC01"),
        ({"requested_on": dt.date.today() - dt.timedelta(days=3)}, "CUTA"),
    ],
)
def test_checks_at_upload_reject_at_once(
    bank: Iso20022Bank, client: Client, overrides: dict[str, Any], reason: str
) -> None:
    answer = report(client.upload(pain001(**overrides)))
    assert (answer["group_status"], answer["status"], answer["reason"]) == ("RJCT", "RJCT", reason)
    assert answer["info"]
    assert status_of(client)["reason"] == reason  # recorded: the status query says the same
    assert [p.status for p in bank.payments()] == ["RJCT"]


def test_a_closed_or_blocked_debtor_account_is_rejected_at_once(bank: Iso20022Bank, client: Client) -> None:
    bank.close_account(CHANGSHA)
    assert report(client.upload(pain001("PAY-A")))["reason"] == "AC04"
    bank.block_account(CHANGSHA)
    assert report(client.upload(pain001("PAY-B")))["reason"] == "AC06"
    bank.reopen_account(CHANGSHA)
    assert report(client.upload(pain001("PAY-C")))["status"] == "RCVD"


def test_the_same_payment_under_another_reference_the_same_day_is_am05(client: Client) -> None:
    assert report(client.upload(pain001("PAY-A")))["status"] == "RCVD"
    assert report(client.upload(pain001("PAY-B")))["reason"] == "AM05"
    assert report(client.upload(pain001("PAY-C", remittance="another claim")))["status"] == "RCVD"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"creditor": CLOSED, "creditor_name": "赵磊"}, "AC04"),
        ({"creditor": BLOCKED, "creditor_name": "陈静"}, "AC06"),
        ({"creditor": HOLD, "creditor_name": "刘洋", "creditor_agent": "999581000019"}, "RR04"),
        ({"creditor_name": "李鸣"}, "BE01"),
        ({"debtor": WUHAN, "amount": "20000.01"}, "AM04"),
    ],
)
def test_checks_after_one_step_reject_then(
    client: Client, clock: Clock, overrides: dict[str, Any], reason: str
) -> None:
    assert report(client.upload(pain001(**overrides)))["status"] == "RCVD"
    clock.advance(STEP)
    answer = status_of(client)
    assert (answer["status"], answer["reason"], answer["settled_on"]) == ("RJCT", reason, None)


@pytest.mark.parametrize("name", ["李明", "Li Ming", " li  MING "])
def test_the_holder_name_matches_in_chinese_or_pinyin(client: Client, name: str) -> None:
    client.upload(pain001(creditor_name=name))
    client.clock.advance(STEP)
    assert status_of(client)["status"] == "ACSP"


def test_accepted_payments_reserve_funds(bank: Iso20022Bank, client: Client, clock: Clock) -> None:
    bank.set_balance(WUHAN, Decimal("1000.00"))
    client.upload(pain001("PAY-A", debtor=WUHAN, amount="600.00"))
    client.upload(pain001("PAY-B", debtor=WUHAN, amount="600.00", remittance="second"))
    clock.advance(STEP)
    assert (status_of(client, "PAY-A")["status"], status_of(client, "PAY-B")["reason"]) == ("ACSP", "AM04")
    clock.advance(STEP)
    assert bank.balance(WUHAN) == Decimal("400.00")


def test_closing_a_creditor_account_rejects_payments_not_yet_checked(bank: Iso20022Bank, client: Client) -> None:
    client.upload(pain001())
    bank.close_account(LI_MING)
    bank.settle()
    assert bank.payment("PAY-0001").reason == "AC04"  # type: ignore[union-attr]


# -- repeated uploads ----------------------------------------------------------------------------------


def test_a_repeated_message_id_is_409_du01_and_changes_nothing(bank: Iso20022Bank, client: Client) -> None:
    client.upload(pain001())
    response = client.upload(pain001("PAY-0002", msg_id="MSG-PAY-0001"))
    assert response.status_code == 409
    answer = report(response)
    assert (answer["group_status"], answer["group_reason"], answer["status"]) == ("RJCT", "DU01", None)
    assert [p.end_to_end_id for p in bank.payments()] == ["PAY-0001"]
    assert client.status(f"{PAYMENTS}/PAY-0002").status_code == 404


def test_a_repeated_end_to_end_id_is_409_du04(bank: Iso20022Bank, client: Client) -> None:
    client.upload(pain001())
    response = client.upload(pain001(msg_id="MSG-OTHER"))
    assert response.status_code == 409 and report(response)["group_reason"] == "DU04"
    assert len(bank.payments()) == 1


def test_a_rejected_upload_uses_up_its_ids(client: Client) -> None:
    assert report(client.upload(pain001(amount="0")))["reason"] == "AM01"
    assert client.upload(pain001(amount="1.00")).status_code == 409


# -- statements ---------------------------------------------------------------------------------------


def statement_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.content)
    stmt = root.find("c:BkToCstmrStmt/c:Stmt", C053)
    assert stmt is not None

    def text(node: ET.Element, path: str) -> str | None:
        found = node.find("/".join(f"c:{p}" for p in path.split("/")), C053)
        return found.text if found is not None else None

    balances = {
        text(b, "Tp/CdOrPrtry/Cd"): (text(b, "Amt"), text(b, "CdtDbtInd"), text(b, "Dt/Dt"))
        for b in stmt.findall("c:Bal", C053)
    }
    entries = [
        {
            "amount": text(n, "Amt"), "direction": text(n, "CdtDbtInd"), "status": text(n, "Sts/Cd"),
            "booked_on": text(n, "BookgDt/Dt"), "ref": text(n, "AcctSvcrRef"),
            "code": "/".join(filter(None, [text(n, "BkTxCd/Domn/Cd"), text(n, "BkTxCd/Domn/Fmly/Cd"),
                                            text(n, "BkTxCd/Domn/Fmly/SubFmlyCd")])),
            "e2e": text(n, "NtryDtls/TxDtls/Refs/EndToEndId"),
            "creditor": text(n, "NtryDtls/TxDtls/RltdPties/Cdtr/Pty/Nm"),
            "creditor_account": text(n, "NtryDtls/TxDtls/RltdPties/CdtrAcct/Id/Othr/Id"),
            "debtor": text(n, "NtryDtls/TxDtls/RltdPties/Dbtr/Pty/Nm"),
            "remittance": text(n, "NtryDtls/TxDtls/RmtInf/Ustrd"),
        }
        for n in stmt.findall("c:Ntry", C053)
    ]
    return {"account": text(stmt, "Acct/Id/Othr/Id"), "owner": text(stmt, "Acct/Ownr/Nm"),
            "balances": balances, "entries": entries}


def test_a_month_of_seeded_history(client: Client) -> None:
    got = statement_of(client.statement({"account": WUHAN, "fromDate": "2026-03-01", "toDate": "2026-03-31"}))
    assert (got["account"], got["owner"]) == (WUHAN, "武汉示例软件有限公司")
    assert [(e["booked_on"], e["direction"], e["amount"], e["code"]) for e in got["entries"]] == [
        ("2026-03-05", "CRDT", "22500.00", "PMNT/RCDT/DMCT"),
        ("2026-03-10", "DBIT", "18000.00", "PMNT/ICDT/SALA"),
        ("2026-03-15", "DBIT", "4300.00", "PMNT/ICDT/TAXS"),
    ]
    opening, _, opened_on = got["balances"]["OPBD"]
    closing, _, closed_on = got["balances"]["CLBD"]
    assert (opened_on, closed_on) == ("2026-03-01", "2026-03-31")
    assert Decimal(closing) - Decimal(opening) == Decimal("200.00")
    assert all(e["status"] == "BOOK" and e["e2e"] for e in got["entries"])


def test_a_settled_payment_reconciles_on_the_statement(bank: Iso20022Bank, client: Client, clock: Clock) -> None:
    today = clock.today().isoformat()
    client.upload(pain001())
    clock.advance(STEP)
    pending = statement_of(client.statement({"account": CHANGSHA, "fromDate": today, "toDate": today}))
    assert [(e["status"], e["e2e"]) for e in pending["entries"]] == [("PDNG", "PAY-0001")]
    assert pending["balances"]["CLBD"][0] == pending["balances"]["OPBD"][0]  # pending is not in the balance
    clock.advance(STEP)
    booked = statement_of(client.statement({"account": CHANGSHA, "fromDate": today, "toDate": today}))
    [entry] = booked["entries"]
    assert entry | {"ref": None} == {
        "amount": "1280.50", "direction": "DBIT", "status": "BOOK", "booked_on": today, "ref": None,
        "code": "PMNT/ICDT/DMCT", "e2e": "PAY-0001", "creditor": "李明", "creditor_account": LI_MING,
        "debtor": "长沙示例制造有限公司", "remittance": "Reimbursement R-2026-0042",
    }
    assert entry["ref"] == bank.payment("PAY-0001").bank_reference  # type: ignore[union-attr]
    assert Decimal(booked["balances"]["OPBD"][0]) - Decimal(booked["balances"]["CLBD"][0]) == Decimal("1280.50")


def test_a_negative_balance_is_a_debit_balance(bank: Iso20022Bank, client: Client, clock: Clock) -> None:
    bank.set_balance(WUHAN, Decimal("-50.00"))
    today = clock.today().isoformat()
    got = statement_of(client.statement({"account": WUHAN, "fromDate": today, "toDate": today}))
    assert got["balances"]["CLBD"][:2] == ("50.00", "DBIT")


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"account": "6217990000000000022", "fromDate": "2026-03-01", "toDate": "2026-03-31"}, 404, "UNKNOWN_ACCOUNT"),
        ({"account": WUHAN, "fromDate": "2026-04-01", "toDate": "2026-03-31"}, 400, "BAD_REQUEST"),
        ({"account": WUHAN, "fromDate": "2025-01-01", "toDate": "2026-01-02"}, 400, "BAD_REQUEST"),
        ({"account": WUHAN, "fromDate": "2026-3-1", "toDate": "2026-03-31"}, 400, "BAD_REQUEST"),
        ({"account": WUHAN, "fromDate": "2026-03-01"}, 400, "BAD_REQUEST"),
    ],
)
def test_statement_requests_the_bank_refuses(client: Client, payload: dict[str, str], status: int, code: str) -> None:
    response = client.statement(payload)
    assert response.status_code == status and response.json()["code"] == code
    assert "6217" not in response.text


def test_366_days_is_the_longest_statement(client: Client) -> None:
    statement_of(client.statement({"account": WUHAN, "fromDate": "2025-01-01", "toDate": "2026-01-01"}))


# -- faults, log, state ------------------------------------------------------------------------------


def test_drop_after_applies_the_upload_and_answers_nothing(bank: Iso20022Bank, client: Client) -> None:
    bank.faults.add(Fault(route=PAYMENTS, kind="drop_after", times=1))
    with pytest.raises(httpx.RemoteProtocolError):
        client.upload(pain001())
    assert [p.end_to_end_id for p in bank.payments()] == ["PAY-0001"]
    assert status_of(client)["status"] == "RCVD"
    [upload, query] = bank.requests.snapshot()
    assert (upload.code, upload.biz_no, upload.operation) == ("DROP", "PAY-0001", "pain.001")
    assert (query.biz_no, query.operation) == ("PAY-0001", "pain.002")


def test_error_and_rate_limit_faults_answer_in_the_documented_form(bank: Iso20022Bank, client: Client) -> None:
    bank.faults.add(Fault(route="pain.002", kind="error", status=503, times=1))
    bank.faults.add(Fault(route=PAYMENTS, kind="rate_limit", retry_after=7, times=1))
    busy = client.upload(pain001())
    assert busy.status_code == 429 and busy.headers["Retry-After"] == "7" and busy.json()["code"] == "RATE_LIMITED"
    assert bank.payments() == []
    client.upload(pain001())
    failed = client.status(f"{PAYMENTS}/PAY-0001")
    assert failed.status_code == 503 and failed.json()["code"] == "UNAVAILABLE"
    assert status_of(client)["status"] == "RCVD"


def test_a_500_fault_is_internal(bank: Iso20022Bank, client: Client) -> None:
    bank.faults.add(Fault(route="*", kind="error", status=500, times=1))
    response = client.upload(pain001())
    assert response.status_code == 500 and response.json()["code"] == "INTERNAL"


def test_faults_can_match_a_creditor_account(bank: Iso20022Bank, client: Client) -> None:
    bank.faults.add(Fault(route=PAYMENTS, kind="error", match_id_number=ZHANG_SAN))
    assert client.upload(pain001("PAY-A")).status_code == 200
    document = pain001("PAY-B", creditor=ZHANG_SAN, creditor_name="张三", creditor_agent="308584000013")
    assert client.upload(document).status_code == 503


def test_request_ids_are_echoed(client: Client) -> None:
    body = b""
    headers = {"X-Request-ID": "req-7", **client.headers("GET", f"{PAYMENTS}/X", body)}
    assert client.http.get(f"{PAYMENTS}/X", headers=headers).headers["X-Request-ID"] == "req-7"


def test_state_masks_accounts_and_names(bank: Iso20022Bank, client: Client) -> None:
    client.upload(pain001())
    state = client.http.get("/__mock__/state").json()
    text = json.dumps(state, ensure_ascii=False)
    for secret in (CHANGSHA, LI_MING, "李明", "长沙示例制造有限公司"):
        assert secret not in text
    assert state["dialect"] == "iso20022"
    assert state["payments"][0]["end_to_end_id"] == "PAY-0001"
    assert {a["balance"] for a in state["accounts"]} >= {"800000.00", "20000.00"}


def test_control_plane_steers_accounts_and_settles(bank: Iso20022Bank, client: Client) -> None:
    assert client.http.post("/__mock__/accounts", json={"account": LI_MING, "state": "blocked"}).status_code == 204
    assert client.http.post("/__mock__/accounts", json={"account": WUHAN, "balance": "12.34"}).status_code == 204
    assert client.http.post("/__mock__/accounts", json={"account": "0", "balance": "1"}).status_code == 400
    assert client.http.post("/__mock__/accounts", json={"account": LI_MING, "state": "lost"}).status_code == 400
    assert bank.balance(WUHAN) == Decimal("12.34")
    client.upload(pain001())
    assert client.http.post("/__mock__/settle").status_code == 204
    assert bank.payment("PAY-0001").reason == "AC06"  # type: ignore[union-attr]


def test_reset_restores_the_seeded_bank(bank: Iso20022Bank, client: Client) -> None:
    client.upload(pain001())
    bank.set_balance(WUHAN, Decimal("1.00"))
    bank.close_account(LI_MING)
    bank.reset()
    assert bank.payments() == [] and len(bank.requests) == 0
    assert bank.balance(WUHAN) == Decimal("20000.00")
    client.upload(pain001())  # the same ids are new again, and the creditor is open
    bank.settle()
    assert bank.payment("PAY-0001").status == "ACSC"  # type: ignore[union-attr]


def test_sandbox_defaults_and_a_negative_step_is_refused() -> None:
    with Iso20022Bank(settle_seconds=0) as bank:
        assert bank.settle_seconds == 0 and "api_secret=sandbox-bank-a-secret" in bank.describe()
    with pytest.raises(ValueError):
        Iso20022Bank(settle_seconds=-1)


@pytest.mark.parametrize(
    ("account", "name", "agent_code"),
    [
        ("43001000000000000017", "长沙市社会保险服务中心", "999551000012"),
        ("33001000000000000012", "杭州市社会保险管理服务中心", "999551000012"),
        ("42001000000000000016", "武汉市社会保险管理中心", "999521000015"),
        ("44001000000000000013", "广州市社会保险基金管理中心", "999581000019"),
        ("44031000000000000018", "深圳市社会保险基金管理局", "999581000019"),
    ],
)
def test_contributions_to_every_bureau_collection_account_settle(
    bank: Iso20022Bank, client: Client, account: str, name: str, agent_code: str
) -> None:
    document = pain001(creditor=account, creditor_name=name, creditor_agent=agent_code, amount="96000.00")
    assert report(client.upload(document))["status"] == "RCVD"
    bank.settle()
    assert bank.payment("PAY-0001").status == "ACSC"  # type: ignore[union-attr]
