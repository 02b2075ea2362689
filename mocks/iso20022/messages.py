"""The iso20022 bank's wire formats: pain.001 uploads in, pain.002 and camt.053 out.

Uploads are parsed with defusedxml and validated against the official
pain.001.001.09 XSD (the one sepaxml ships) before anything else is read, then held
to the bank's usage rules. Anything the document does not allow is refused, so that
an adapter drifting from docs/dialects/iso20022.md fails its tests.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import json
import re
import threading
import xml.etree.ElementTree as ET  # building only; parsing goes through defusedxml
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from typing import Any

import xmlschema
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from mocks.server import Response

PAIN001 = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
PAIN002 = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"
CAMT053 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
XML_CONTENT_TYPE = "application/xml; charset=utf-8"
CHINA = dt.timezone(dt.timedelta(hours=8))

# JSON error codes (outside ISO 20022 messages).
FORMAT = "FF01"
USAGE_RULE = "CH16"
BAD_REQUEST = "BAD_REQUEST"
AUTH_SIGNATURE = "AUTH_SIGNATURE"
AUTH_UNKNOWN_KEY = "AUTH_UNKNOWN_KEY"
AUTH_EXPIRED = "AUTH_EXPIRED"
AUTH_REPLAY = "AUTH_REPLAY"
NOT_FOUND = "NOT_FOUND"
UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
METHOD = "METHOD"
MEDIA_TYPE = "MEDIA_TYPE"
RATE_LIMITED = "RATE_LIMITED"
INTERNAL = "INTERNAL"
UNAVAILABLE = "UNAVAILABLE"

_STATUS = {
    FORMAT: HTTPStatus.BAD_REQUEST,
    USAGE_RULE: HTTPStatus.BAD_REQUEST,
    BAD_REQUEST: HTTPStatus.BAD_REQUEST,
    AUTH_SIGNATURE: HTTPStatus.UNAUTHORIZED,
    AUTH_UNKNOWN_KEY: HTTPStatus.UNAUTHORIZED,
    AUTH_EXPIRED: HTTPStatus.UNAUTHORIZED,
    AUTH_REPLAY: HTTPStatus.UNAUTHORIZED,
    NOT_FOUND: HTTPStatus.NOT_FOUND,
    UNKNOWN_ACCOUNT: HTTPStatus.NOT_FOUND,
    METHOD: HTTPStatus.METHOD_NOT_ALLOWED,
    MEDIA_TYPE: HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    RATE_LIMITED: HTTPStatus.TOO_MANY_REQUESTS,
    INTERNAL: HTTPStatus.INTERNAL_SERVER_ERROR,
    UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
}

_MESSAGES = {
    FORMAT: "报文格式错误 invalid file format",
    USAGE_RULE: "报文内容不符合本行规则 content against the bank's usage rules",
    BAD_REQUEST: "请求格式错误 malformed request",
    AUTH_SIGNATURE: "签名无效 signature invalid",
    AUTH_UNKNOWN_KEY: "API key 无效 unknown API key",
    AUTH_EXPIRED: "请求时间超出有效期 request time outside the window",
    AUTH_REPLAY: "请求重复 nonce already used",
    NOT_FOUND: "无此支付 no such payment",
    UNKNOWN_ACCOUNT: "非本客户账户 not an account of this client",
    METHOD: "方法不允许 method not allowed",
    MEDIA_TYPE: "媒体类型不支持 use application/xml",
    RATE_LIMITED: "请求过于频繁 too many requests",
    INTERNAL: "系统错误 internal error",
    UNAVAILABLE: "系统维护 service unavailable",
}


class BankError(Exception):
    """A request answered with a JSON error body instead of an ISO 20022 message."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or _MESSAGES[code])
        self.code = code
        self.detail = detail

    def response(self, headers: dict[str, str] | None = None) -> Response:
        return error(self.code, detail=self.detail, headers=headers)


def error(code: str, *, detail: str = "", status: int | None = None, headers: dict[str, str] | None = None) -> Response:
    """A JSON error body; ``detail`` (never personal data) is appended to the message."""
    message = f"{_MESSAGES[code]}: {detail}" if detail else _MESSAGES[code]
    return Response.json(status or _STATUS[code], {"code": code, "message": message}, code=code, headers=headers)


def xml_response(status: int, root: ET.Element, *, code: str) -> Response:
    """The document built under ``root`` (whose ``xmlns`` attribute names its namespace)."""
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return Response(status=status, body=body, code=code, headers={"Content-Type": XML_CONTENT_TYPE})


# -- pain.001 ---------------------------------------------------------------------------

_schema: xmlschema.XMLSchema | None = None
_schema_lock = threading.Lock()


def pain001_schema() -> xmlschema.XMLSchema:
    """The official pain.001.001.09 XSD, loaded once (loading takes a moment)."""
    global _schema
    with _schema_lock:
        if _schema is None:
            path = importlib.resources.files("sepaxml") / "schemas" / "pain.001.001.09.xsd"
            _schema = xmlschema.XMLSchema(str(path))
        return _schema


@dataclass(frozen=True)
class Agent:
    """A bank as a message names it: its BIC or its CNAPS member id (the BIC wins)."""

    bic: str | None
    member_id: str | None

    @property
    def code(self) -> str:
        return self.bic or self.member_id or ""


@dataclass(frozen=True)
class CreditTransfer:
    """One payment as uploaded (a pain.001 with one PmtInf and one CdtTrfTxInf)."""

    msg_id: str
    pmt_inf_id: str
    instr_id: str | None
    end_to_end_id: str
    requested_on: dt.date
    debtor_name: str
    debtor_account: str
    debtor_agent: Agent
    creditor_name: str
    creditor_account: str
    creditor_agent: Agent
    amount: Decimal
    amount_text: str
    currency: str
    purpose: str | None
    remittance: str | None


def _q(tag: str, ns: str = PAIN001) -> str:
    return f"{{{ns}}}{tag}"


def _path(*tags: str, ns: str = PAIN001) -> str:
    return "/".join(_q(tag, ns) for tag in tags)


def _text(node: ET.Element, *tags: str) -> str | None:
    found = node.find(_path(*tags))
    if found is None or found.text is None:
        return None
    return found.text


def _required(node: ET.Element, what: str, *tags: str) -> str:
    value = _text(node, *tags)
    if value is None:
        raise BankError(USAGE_RULE, f"{what} is required")
    return value


def _account(node: ET.Element, what: str, tag: str) -> str:
    account = node.find(_q(tag))
    if account is None:
        raise BankError(USAGE_RULE, f"{what} is required")
    value = _text(account, "Id", "Othr", "Id")
    if value is None:
        raise BankError(USAGE_RULE, f"{what} must be a domestic account number in Id/Othr/Id")
    return value


def _agent(node: ET.Element, what: str, tag: str) -> Agent:
    agent = node.find(_q(tag))
    if agent is None:
        raise BankError(USAGE_RULE, f"{what} is required")
    institution = agent.find(_q("FinInstnId"))
    assert institution is not None  # the XSD requires it
    bic = _text(institution, "BICFI")
    member_id = _text(institution, "ClrSysMmbId", "MmbId")
    system = _text(institution, "ClrSysMmbId", "ClrSysId", "Cd")
    if system is not None and system != "CNAPS":
        raise BankError(USAGE_RULE, f"{what}: the clearing system must be CNAPS")
    if bic is None and member_id is None:
        raise BankError(USAGE_RULE, f"{what} needs BICFI or ClrSysMmbId")
    return Agent(bic=bic, member_id=member_id)


def _decimal(value: str, what: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:  # the XSD already made it a decimal; this is a safety net
        raise BankError(FORMAT, f"{what} is not a decimal") from None


def parse_pain001(body: bytes) -> CreditTransfer:
    """The payment in an upload, or ``BankError`` (``FF01`` / ``CH16``)."""
    try:
        root = SafeET.fromstring(body)
    except (ET.ParseError, DefusedXmlException, ValueError):
        raise BankError(FORMAT, "not well-formed XML") from None
    if root.tag != _q("Document"):
        raise BankError(FORMAT, "not a pain.001.001.09 document")
    failure = next(pain001_schema().iter_errors(root), None)
    if failure is not None:
        # The path only: the reason may quote a value, and values may be personal data.
        where = (failure.path or "/Document").replace(f"{{{PAIN001}}}", "")
        raise BankError(FORMAT, f"not valid against pain.001.001.09 at {where}")
    initiation = root.find(_q("CstmrCdtTrfInitn"))
    assert initiation is not None
    header = initiation.find(_q("GrpHdr"))
    assert header is not None
    instructions = initiation.findall(_q("PmtInf"))
    if len(instructions) != 1:
        raise BankError(USAGE_RULE, "exactly one PmtInf per message")
    pmt_inf = instructions[0]
    transactions = pmt_inf.findall(_q("CdtTrfTxInf"))
    if len(transactions) != 1:
        raise BankError(USAGE_RULE, "exactly one CdtTrfTxInf per message")
    tx = transactions[0]
    if _text(header, "NbOfTxs") != "1" or _text(pmt_inf, "NbOfTxs") not in (None, "1"):
        raise BankError(USAGE_RULE, "NbOfTxs must be 1")
    if _text(pmt_inf, "PmtMtd") != "TRF":
        raise BankError(USAGE_RULE, "PmtMtd must be TRF")
    requested = _text(pmt_inf, "ReqdExctnDt", "Dt")
    if requested is None:
        raise BankError(USAGE_RULE, "ReqdExctnDt must be given as Dt")
    amount_node = tx.find(_path("Amt", "InstdAmt"))
    if amount_node is None or amount_node.text is None:
        raise BankError(USAGE_RULE, "Amt/InstdAmt is required")
    amount_text = amount_node.text.strip()
    amount = _decimal(amount_text, "InstdAmt")
    for where, node in (("GrpHdr", header), ("PmtInf", pmt_inf)):
        control = _text(node, "CtrlSum")
        if control is not None and _decimal(control, "CtrlSum") != amount:
            raise BankError(USAGE_RULE, f"{where}/CtrlSum must equal the amount")
    remittance_lines = [n.text for n in tx.findall(_path("RmtInf", "Ustrd")) if n.text]
    return CreditTransfer(
        msg_id=_required(header, "GrpHdr/MsgId", "MsgId"),
        pmt_inf_id=_required(pmt_inf, "PmtInfId", "PmtInfId"),
        instr_id=_text(tx, "PmtId", "InstrId"),
        end_to_end_id=_required(tx, "EndToEndId", "PmtId", "EndToEndId"),
        requested_on=dt.date.fromisoformat(requested),
        debtor_name=_required(pmt_inf, "Dbtr/Nm", "Dbtr", "Nm"),
        debtor_account=_account(pmt_inf, "DbtrAcct", "DbtrAcct"),
        debtor_agent=_agent(pmt_inf, "DbtrAgt", "DbtrAgt"),
        creditor_name=_required(tx, "Cdtr/Nm", "Cdtr", "Nm"),
        creditor_account=_account(tx, "CdtrAcct", "CdtrAcct"),
        creditor_agent=_agent(tx, "CdtrAgt", "CdtrAgt"),
        amount=amount,
        amount_text=amount_text,
        currency=amount_node.get("Ccy", ""),
        purpose=_text(tx, "Purp", "Cd") or _text(tx, "Purp", "Prtry"),
        remittance=" ".join(remittance_lines) if remittance_lines else None,
    )


def peek_upload(body: bytes) -> tuple[str | None, str | None]:
    """Best effort ``(EndToEndId, creditor account)`` of an upload, for faults and the log."""
    try:
        root = SafeET.fromstring(body)
    except (ET.ParseError, DefusedXmlException, ValueError):
        return None, None
    tx = root.find(_path("CstmrCdtTrfInitn", "PmtInf", "CdtTrfTxInf"))
    if tx is None:
        return None, None
    return _text(tx, "PmtId", "EndToEndId"), _text(tx, "CdtrAcct", "Id", "Othr", "Id")


# -- pain.002 ---------------------------------------------------------------------------


def _add(parent: ET.Element, tag: str, text: str | None = None, ns: str = PAIN002, **attrs: str) -> ET.Element:
    # Unqualified: the root's xmlns attribute puts the whole document in its namespace.
    child = ET.SubElement(parent, tag, attrs)
    if text is not None:
        child.text = text
    return child


def _chain(parent: ET.Element, tags: str, text: str, ns: str, **attrs: str) -> ET.Element:
    """``a/b/c`` under ``parent`` with ``text`` in the innermost element."""
    node = parent
    names = tags.split("/")
    for name in names[:-1]:
        node = _add(node, name, ns=ns)
    return _add(node, names[-1], text, ns=ns, **attrs)


def china_time(at: float) -> str:
    return dt.datetime.fromtimestamp(at, CHINA).replace(microsecond=0).isoformat()


def _status_root(report_id: str, created_at: float, bic: str) -> tuple[ET.Element, ET.Element]:
    root = ET.Element("Document", {"xmlns": PAIN002})
    report = _add(root, "CstmrPmtStsRpt")
    header = _add(report, "GrpHdr")
    _add(header, "MsgId", report_id)
    _add(header, "CreDtTm", china_time(created_at))
    _chain(header, "DbtrAgt/FinInstnId/BICFI", bic, PAIN002)
    return root, report


def _reason(parent: ET.Element, code: str, info: str | None) -> None:
    reason = _add(parent, "StsRsnInf")
    _chain(reason, "Rsn/Cd", code, PAIN002)
    if info:
        _add(reason, "AddtlInf", info[:105])


def duplicate_report(report_id: str, created_at: float, bic: str, msg_id: str, code: str, info: str) -> Response:
    """409: a repeated upload, refused as a whole; nothing was recorded."""
    root, report = _status_root(report_id, created_at, bic)
    group = _add(report, "OrgnlGrpInfAndSts")
    _add(group, "OrgnlMsgId", msg_id)
    _add(group, "OrgnlMsgNmId", "pain.001.001.09")
    _add(group, "GrpSts", "RJCT")
    _reason(group, code, info)
    return xml_response(HTTPStatus.CONFLICT, root, code=code)


@dataclass(frozen=True)
class TransactionStatus:
    """What a pain.002 says about one payment."""

    msg_id: str
    pmt_inf_id: str
    instr_id: str | None
    end_to_end_id: str
    status: str
    reason: str | None
    reason_info: str | None
    bank_reference: str
    amount_text: str
    currency: str
    requested_on: dt.date
    accepted_at: float | None
    settled_on: dt.date | None


def status_report(report_id: str, created_at: float, bic: str, tx: TransactionStatus) -> Response:
    root, report = _status_root(report_id, created_at, bic)
    group = _add(report, "OrgnlGrpInfAndSts")
    _add(group, "OrgnlMsgId", tx.msg_id)
    _add(group, "OrgnlMsgNmId", "pain.001.001.09")
    _add(group, "OrgnlNbOfTxs", "1")
    _add(group, "GrpSts", tx.status)
    instruction = _add(report, "OrgnlPmtInfAndSts")
    _add(instruction, "OrgnlPmtInfId", tx.pmt_inf_id)
    info = _add(instruction, "TxInfAndSts")
    _add(info, "StsId", report_id)
    if tx.instr_id is not None:
        _add(info, "OrgnlInstrId", tx.instr_id)
    _add(info, "OrgnlEndToEndId", tx.end_to_end_id)
    _add(info, "TxSts", tx.status)
    if tx.reason is not None:
        _reason(info, tx.reason, tx.reason_info)
    if tx.accepted_at is not None:
        _add(info, "AccptncDtTm", china_time(tx.accepted_at))
    _add(info, "AcctSvcrRef", tx.bank_reference)
    original = _add(info, "OrgnlTxRef")
    _chain(original, "Amt/InstdAmt", tx.amount_text, PAIN002, Ccy=tx.currency or "CNY")
    if tx.settled_on is not None:
        _add(original, "IntrBkSttlmDt", tx.settled_on.isoformat())
    _chain(original, "ReqdExctnDt/Dt", tx.requested_on.isoformat(), PAIN002)
    return xml_response(HTTPStatus.OK, root, code=tx.status)


# -- camt.053 ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StatementLine:
    """One ``Ntry`` of a statement."""

    entry_no: int
    amount: Decimal
    direction: str  # CRDT / DBIT
    status: str  # BOOK / PDNG
    booked_on: dt.date
    value_on: dt.date
    bank_reference: str
    domain: str  # PMNT/ICDT/DMCT
    end_to_end_id: str | None
    debtor_name: str
    debtor_account: str
    creditor_name: str
    creditor_account: str
    remittance: str | None


@dataclass(frozen=True)
class StatementRequest:
    account: str
    from_date: dt.date
    to_date: dt.date


MAX_STATEMENT_DAYS = 366


def parse_statement_request(body: bytes) -> StatementRequest:
    try:
        obj: Any = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        raise BankError(BAD_REQUEST, "body is not UTF-8 JSON") from None
    if not isinstance(obj, dict) or set(obj) != {"account", "fromDate", "toDate"}:
        raise BankError(BAD_REQUEST, "give exactly account, fromDate and toDate")
    account = obj["account"]
    if not isinstance(account, str) or not account:
        raise BankError(BAD_REQUEST, "account must be a non-empty string")
    dates = []
    for key in ("fromDate", "toDate"):
        value = obj[key]
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise BankError(BAD_REQUEST, f"{key} must be an ISO date")
        try:
            dates.append(dt.date.fromisoformat(value))
        except ValueError:
            raise BankError(BAD_REQUEST, f"{key} must be an ISO date") from None
    from_date, to_date = dates
    if from_date > to_date:
        raise BankError(BAD_REQUEST, "fromDate is after toDate")
    if (to_date - from_date).days + 1 > MAX_STATEMENT_DAYS:
        raise BankError(BAD_REQUEST, f"at most {MAX_STATEMENT_DAYS} days per statement")
    return StatementRequest(account, from_date, to_date)


def _money(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.01")), "f")


def _balance(parent: ET.Element, code: str, amount: Decimal, day: dt.date) -> None:
    balance = _add(parent, "Bal", ns=CAMT053)
    _chain(balance, "Tp/CdOrPrtry/Cd", code, CAMT053)
    _add(balance, "Amt", _money(abs(amount)), ns=CAMT053, Ccy="CNY")
    _add(balance, "CdtDbtInd", "DBIT" if amount < 0 else "CRDT", ns=CAMT053)
    _chain(balance, "Dt/Dt", day.isoformat(), CAMT053)


def _party(parent: ET.Element, role: str, name: str, account: str) -> None:
    _chain(parent, f"{role}/Pty/Nm", name, CAMT053)
    _chain(parent, f"{role}Acct/Id/Othr/Id", account, CAMT053)


def statement(
    statement_id: str,
    created_at: float,
    bic: str,
    *,
    request: StatementRequest,
    owner: str,
    opening: Decimal,
    closing: Decimal,
    lines: list[StatementLine],
) -> Response:
    ns = CAMT053
    root = ET.Element("Document", {"xmlns": ns})
    message = _add(root, "BkToCstmrStmt", ns=ns)
    header = _add(message, "GrpHdr", ns=ns)
    _add(header, "MsgId", statement_id, ns=ns)
    _add(header, "CreDtTm", china_time(created_at), ns=ns)
    stmt = _add(message, "Stmt", ns=ns)
    _add(stmt, "Id", statement_id, ns=ns)
    _add(stmt, "CreDtTm", china_time(created_at), ns=ns)
    period = _add(stmt, "FrToDt", ns=ns)
    _add(period, "FrDtTm", f"{request.from_date.isoformat()}T00:00:00+08:00", ns=ns)
    _add(period, "ToDtTm", f"{request.to_date.isoformat()}T23:59:59+08:00", ns=ns)
    account = _add(stmt, "Acct", ns=ns)
    _chain(account, "Id/Othr/Id", request.account, ns)
    _add(account, "Ccy", "CNY", ns=ns)
    _chain(account, "Ownr/Nm", owner, ns)
    _chain(account, "Svcr/FinInstnId/BICFI", bic, ns)
    _balance(stmt, "OPBD", opening, request.from_date)
    _balance(stmt, "CLBD", closing, request.to_date)
    for line in lines:
        entry = _add(stmt, "Ntry", ns=ns)
        _add(entry, "NtryRef", str(line.entry_no), ns=ns)
        _add(entry, "Amt", _money(line.amount), ns=ns, Ccy="CNY")
        _add(entry, "CdtDbtInd", line.direction, ns=ns)
        _chain(entry, "Sts/Cd", line.status, ns)
        _chain(entry, "BookgDt/Dt", line.booked_on.isoformat(), ns)
        _chain(entry, "ValDt/Dt", line.value_on.isoformat(), ns)
        _add(entry, "AcctSvcrRef", line.bank_reference, ns=ns)
        domain, family, sub_family = line.domain.split("/")
        code = _add(_add(entry, "BkTxCd", ns=ns), "Domn", ns=ns)
        _add(code, "Cd", domain, ns=ns)
        fmly = _add(code, "Fmly", ns=ns)
        _add(fmly, "Cd", family, ns=ns)
        _add(fmly, "SubFmlyCd", sub_family, ns=ns)
        details = _add(_add(entry, "NtryDtls", ns=ns), "TxDtls", ns=ns)
        refs = _add(details, "Refs", ns=ns)
        _add(refs, "AcctSvcrRef", line.bank_reference, ns=ns)
        _add(refs, "EndToEndId", line.end_to_end_id or "NOTPROVIDED", ns=ns)
        _add(details, "Amt", _money(line.amount), ns=ns, Ccy="CNY")
        _add(details, "CdtDbtInd", line.direction, ns=ns)
        parties = _add(details, "RltdPties", ns=ns)
        _party(parties, "Dbtr", line.debtor_name, line.debtor_account)
        _party(parties, "Cdtr", line.creditor_name, line.creditor_account)
        if line.remittance:
            _chain(details, "RmtInf/Ustrd", line.remittance, ns)
    return xml_response(HTTPStatus.OK, root, code="OK")
