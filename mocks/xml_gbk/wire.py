"""The xml-gbk wire format: return codes, GBK documents, envelopes and bodies.

Request parsing is strict on purpose: the mock exists to catch adapters that drift
from docs/dialects/xml-gbk.md, so anything the document does not allow is answered
``S400``. That includes a request without ``Content-Type: text/xml; charset=GBK``,
a document type declaration (refused before any entity could be declared, so no
entity expansion ever happens), repeated or nested leaf elements, and values
outside the documented formats.
"""

from __future__ import annotations

import re
import xml.parsers.expat
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from email.message import Message
from http import HTTPStatus
from typing import NoReturn
from xml.etree.ElementTree import Element, SubElement, TreeBuilder, tostring

from mocks.resident_id import is_well_formed
from mocks.server import Response

OK = "0000"
SESSION_INVALID = "AUTH01"
LOGIN_REFUSED = "AUTH02"
MALFORMED = "S400"
BUSY = "S503"
BUREAU_FAILURE = "S999"
ALREADY_ACTIVE = "B001"
BAD_CHECK_DIGIT = "B003"
NAME_MISMATCH = "B005"
NOT_INSURED_HERE = "B006"
NOTHING_TO_TRANSFER = "B007"
NO_SUCH_BUSINESS = "B404"
# Refusals of a payment notice (P001).
NO_SUCH_DECLARATION = "B008"
DECLARATION_REFUSED = "B009"
NOT_THE_DECLARATION = "B010"
AMOUNT_NOT_POSITIVE = "B011"
ALREADY_CONFIRMED = "B012"

HTTP_STATUS = {
    OK: HTTPStatus.OK,
    SESSION_INVALID: HTTPStatus.UNAUTHORIZED,
    LOGIN_REFUSED: HTTPStatus.UNAUTHORIZED,
    MALFORMED: HTTPStatus.BAD_REQUEST,
    BUSY: HTTPStatus.SERVICE_UNAVAILABLE,
    BUREAU_FAILURE: HTTPStatus.INTERNAL_SERVER_ERROR,
    ALREADY_ACTIVE: HTTPStatus.OK,
    BAD_CHECK_DIGIT: HTTPStatus.OK,
    NAME_MISMATCH: HTTPStatus.OK,
    NOT_INSURED_HERE: HTTPStatus.OK,
    NOTHING_TO_TRANSFER: HTTPStatus.OK,
    NO_SUCH_BUSINESS: HTTPStatus.OK,
    NO_SUCH_DECLARATION: HTTPStatus.OK,
    DECLARATION_REFUSED: HTTPStatus.OK,
    NOT_THE_DECLARATION: HTTPStatus.OK,
    AMOUNT_NOT_POSITIVE: HTTPStatus.OK,
    ALREADY_CONFIRMED: HTTPStatus.OK,
}

MESSAGES = {
    OK: "成功",
    SESSION_INVALID: "会话无效或已过期，请重新登录",
    LOGIN_REFUSED: "用户名或密码错误",
    MALFORMED: "报文格式错误",
    BUSY: "系统繁忙，请稍后重试",
    BUREAU_FAILURE: "系统内部错误",
    ALREADY_ACTIVE: "该险种已有有效参保记录",
    BAD_CHECK_DIGIT: "公民身份号码校验位错误",
    NAME_MISMATCH: "姓名与公民身份号码不符",
    NOT_INSURED_HERE: "该单位无此人有效参保记录",
    NOTHING_TO_TRANSFER: "无可转出的参保记录",
    NO_SUCH_BUSINESS: "业务记录不存在",
    NO_SUCH_DECLARATION: "申报记录不存在",
    DECLARATION_REFUSED: "申报不予受理，不能确认缴费",
    NOT_THE_DECLARATION: "缴费单位或所属期与申报不符",
    AMOUNT_NOT_POSITIVE: "缴费金额必须大于零",
    ALREADY_CONFIRMED: "该申报已确认缴费",
}

LOGIN, Q001, Q002, E001, E002 = "LOGIN", "Q001", "Q002", "E001", "E002"
D001, D002, T001, T002, T003, T004 = "D001", "D002", "T001", "T002", "T003", "T004"
P001, P002 = "P001", "P002"
TRANS_CODES = frozenset({LOGIN, Q001, Q002, E001, E002, D001, D002, T001, T002, T003, T004, P001, P002})
INSURANCE_TYPES = frozenset({"110", "210", "310", "410", "510"})
INSURANCE_NAMES = {"110": "养老保险", "210": "失业保险", "310": "医疗保险", "410": "工伤保险", "510": "生育保险"}
ACTIVE, SUSPENDED, TERMINATED, TRANSFERRED_OUT = "参保缴费", "暂停缴费", "终止参保", "已转出"
# Declaration change types (变更类型): 增员, 减员, 基数调整, 续缴.
CHANGE_NEW, CHANGE_LEAVE, CHANGE_BASE, CHANGE_CONTINUE = "1", "2", "3", "4"
CHANGE_TYPES = frozenset({CHANGE_NEW, CHANGE_LEAVE, CHANGE_BASE, CHANGE_CONTINUE})
DECL_ACCEPTED, DECL_PARTIAL, DECL_REJECTED = "1", "2", "3"
LINE_ACCEPTED, LINE_REFUSED = "1", "0"
STAGE_SUBMITTED, STAGE_REVIEWED, STAGE_FUNDS_TRANSFERRED, STAGE_REJECTED = "1", "2", "3", "9"
IN_ACCEPTED, IN_REFUSED = "1", "9"
PAID, PAID_LATE, UNPAID = "1", "2", "3"
MAX_PERIOD_SPAN = 36
CONTENT_TYPE = "text/xml; charset=GBK"
DECLARATION = '<?xml version="1.0" encoding="GBK"?>'

_XML_DECLARATION = re.compile(rb"<\?xml\s([^?>]*)\?>")
_ENCODING = re.compile(rb"""\bencoding\s*=\s*(["'])([^"']*)\1""")
_SERIAL_NO = re.compile(r"[0-9A-Za-z-]{1,32}")
_BIZ_NO = re.compile(r"[0-9A-Za-z-]{8,40}")
_TOKENISH = re.compile(r"[0-9A-Za-z_.-]{1,40}")
_REQUEST_TIME = re.compile(r"[0-9]{14}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PERIOD = re.compile(r"[0-9]{4}(0[1-9]|1[0-2])")
_MONEY = re.compile(r"(0|[1-9][0-9]*)\.[0-9]{2}")
_SIGNED_MONEY = re.compile(r"-?(0|[1-9][0-9]*)\.[0-9]{2}")
MAX_BANK_SERIAL_NO = 64
_LINE_NO = re.compile(r"[1-9][0-9]{0,5}")
_MONTHS = re.compile(r"0|[1-9][0-9]{0,3}")
_REGION_CODE = re.compile(r"[0-9]{6}")
_TRANSFER_NO = re.compile(r"[0-9]{6}-T-[0-9]{6}")


class BureauError(Exception):
    """A request the bureau answers with an error envelope."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or MESSAGES[code])
        self.code = code
        self.detail = detail


def malformed(detail: str) -> NoReturn:
    raise BureauError(MALFORMED, detail)


# Documents


def check_content_type(headers: Message) -> None:
    """The request must say ``text/xml; charset=GBK`` (charset case-insensitive)."""
    if headers.get("Content-Type") is None:
        malformed("Content-Type must be text/xml; charset=GBK")
    if headers.get_content_type() != "text/xml" or headers.get_content_charset() != "gbk":
        malformed("Content-Type must be text/xml; charset=GBK")


def _refuse_doctype(*args: object) -> None:
    raise BureauError(MALFORMED, "document type and entity declarations are not allowed")


def read_document(body: bytes) -> Element:
    """The root element of a GBK-encoded, GBK-declared, well-formed XML document."""
    declaration = _XML_DECLARATION.match(body)
    if declaration is None:
        malformed('the document must start with <?xml version="1.0" encoding="GBK"?>')
    encoding = _ENCODING.search(declaration.group(1))
    if encoding is None or encoding.group(2).lower() != b"gbk":
        malformed('the document must declare encoding="GBK"')
    try:
        text = body.decode("gbk")
    except UnicodeDecodeError:
        malformed("the document is not valid GBK")
    builder = TreeBuilder()
    # The declared GBK is checked above; expat reads the already decoded text as UTF-8.
    parser = xml.parsers.expat.ParserCreate(encoding="utf-8")
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_doctype
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(text.encode("utf-8"), True)
    except xml.parsers.expat.ExpatError as exc:
        raise BureauError(MALFORMED, f"not well-formed: {xml.parsers.expat.ErrorString(exc.code)}") from None
    return builder.close()


def _only(parent: Element, tag: str) -> Element | None:
    """The single ``tag`` child of ``parent``, None when absent; repeated is S400."""
    found = parent.findall(tag)
    if len(found) > 1:
        malformed(f"{tag} appears more than once")
    return found[0] if found else None


def leaf_text(parent: Element, tag: str) -> str | None:
    """The trimmed text of an optional leaf element; None when absent, "" when empty."""
    element = _only(parent, tag)
    if element is None:
        return None
    if len(element):
        malformed(f"{tag} must not contain elements")
    return (element.text or "").strip()


def required_text(parent: Element, tag: str) -> str:
    value = leaf_text(parent, tag)
    if not value:
        malformed(f"{tag} is required")
    return value


def peek(root: Element | None, section: str, tag: str) -> str | None:
    """Best-effort, never-failing read of ``<section><tag>`` for logs, faults and echoes."""
    if root is None:
        return None
    parent = root.find(section)
    element = parent.find(tag) if parent is not None else None
    if element is None or len(element):
        return None
    return (element.text or "").strip() or None


def echoable(value: str | None, pattern: re.Pattern[str] = _TOKENISH) -> str:
    """A received value safe to repeat in a response head, else ""."""
    return value if value is not None and pattern.fullmatch(value) else ""


def echo_serial_no(value: str | None) -> str:
    return echoable(value, _SERIAL_NO)


# Envelope


@dataclass(frozen=True)
class Envelope:
    trans_code: str
    serial_no: str
    session_token: str
    """"" when absent or empty."""
    body: Element


def read_envelope(root: Element) -> Envelope:
    if root.tag != "Request":
        malformed("the root element must be Request")
    head = _only(root, "Head")
    body = _only(root, "Body")
    if head is None or body is None:
        malformed("Request needs a Head and a Body")
    trans_code = required_text(head, "TransCode")
    if trans_code not in TRANS_CODES:
        malformed("unknown TransCode")
    serial_no = required_text(head, "SerialNo")
    if not _SERIAL_NO.fullmatch(serial_no):
        malformed("SerialNo must be 1 to 32 characters [0-9A-Za-z-]")
    request_time = required_text(head, "RequestTime")
    try:
        if not _REQUEST_TIME.fullmatch(request_time):
            raise ValueError(request_time)
        datetime.strptime(request_time, "%Y%m%d%H%M%S")
    except ValueError:
        malformed("RequestTime must be yyyyMMddHHmmss")
    return Envelope(trans_code, serial_no, leaf_text(head, "SessionToken") or "", body)


# Responses


def respond(
    code: str,
    *,
    trans_code: str = "",
    serial_no: str = "",
    body: Element | None = None,
    detail: str = "",
    status: int | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A GBK response document; only ``0000`` carries a non-empty Body.

    ``detail`` (never personal data) is appended to ``ReturnMsg`` to help adapter authors.
    """
    root = Element("Response")
    head = SubElement(root, "Head")
    SubElement(head, "TransCode").text = trans_code
    SubElement(head, "SerialNo").text = serial_no
    SubElement(head, "ReturnCode").text = code
    SubElement(head, "ReturnMsg").text = f"{MESSAGES[code]}: {detail}" if detail else MESSAGES[code]
    root.append(body if body is not None and code == OK else Element("Body"))
    text = DECLARATION + tostring(root, encoding="unicode")
    return Response(
        status=status if status is not None else HTTP_STATUS[code],
        body=text.encode("gbk", errors="xmlcharrefreplace"),
        code=code,
        headers={"Content-Type": CONTENT_TYPE, **(headers or {})},
    )


def add_leaf(parent: Element, tag: str, value: str) -> None:
    """A leaf element; an empty value gives an empty element (no value)."""
    SubElement(parent, tag).text = value or None


def money(value: Decimal) -> str:
    return f"{value:.2f}"


# Bodies


@dataclass(frozen=True)
class Login:
    user_id: str
    password: str


@dataclass(frozen=True)
class PersonQuery:
    id_number: str
    name: str


@dataclass(frozen=True)
class MonthsQuery:
    id_number: str
    name: str
    from_period: str
    to_period: str


@dataclass(frozen=True)
class EnrolmentRequest:
    biz_no: str
    id_number: str
    name: str
    unit_code: str
    unit_name: str
    begin_date: str
    insurance_types: tuple[str, ...]
    base: Decimal


def _id_number(body: Element) -> str:
    value = required_text(body, "IdNo")
    if not is_well_formed(value):
        malformed("IdNo must be 17 digits and a digit or X")
    return value


def _biz_no(body: Element) -> str:
    value = required_text(body, "BizNo")
    if not _BIZ_NO.fullmatch(value):
        malformed("BizNo must be 8 to 40 characters [0-9A-Za-z-]")
    return value


def _period(body: Element, tag: str) -> str:
    value = required_text(body, tag)
    if not _PERIOD.fullmatch(value):
        malformed(f"{tag} must be a yyyyMM period")
    return value


def _date(body: Element, tag: str) -> str:
    value = required_text(body, tag)
    try:
        if not _DATE.fullmatch(value):
            raise ValueError(value)
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        malformed(f"{tag} must be a yyyy-MM-dd date")
    return value


def parse_money(value: str) -> Decimal | None:
    """Yuan with exactly two decimal places, or None."""
    return Decimal(value) if _MONEY.fullmatch(value) else None


def period_index(period: str) -> int:
    return int(period[:4]) * 12 + int(period[4:]) - 1


def parse_login(body: Element) -> Login:
    return Login(required_text(body, "UserId"), required_text(body, "Password"))


def parse_person_query(body: Element) -> PersonQuery:
    return PersonQuery(_id_number(body), required_text(body, "Name"))


def parse_months_query(body: Element) -> MonthsQuery:
    # The name is optional in Q002: "" means the ID number alone identifies.
    query = MonthsQuery(
        _id_number(body), leaf_text(body, "Name") or "", _period(body, "FromPeriod"), _period(body, "ToPeriod")
    )
    span = period_index(query.to_period) - period_index(query.from_period)
    if span < 0:
        malformed("FromPeriod must not be after ToPeriod")
    if span > MAX_PERIOD_SPAN:
        malformed(f"FromPeriod and ToPeriod must be at most {MAX_PERIOD_SPAN} months apart")
    return query


def _insurance_types(body: Element) -> tuple[str, ...]:
    types_element = _only(body, "InsTypes")
    if types_element is None:
        malformed("InsTypes is required")
    types: list[str] = []
    for child in types_element:
        if child.tag != "InsType" or len(child):
            malformed("InsTypes may only contain InsType elements")
        code = (child.text or "").strip()
        if code not in INSURANCE_TYPES:
            malformed("InsType must be one of 110, 210, 310, 410, 510")
        types.append(code)
    if not types:
        malformed("InsTypes needs at least one InsType")
    return tuple(dict.fromkeys(types))


def parse_enrolment(body: Element) -> EnrolmentRequest:
    types = _insurance_types(body)
    base = parse_money(required_text(body, "Base"))
    if base is None or base <= 0:
        malformed("Base must be positive yuan with two decimal places")
    return EnrolmentRequest(
        biz_no=_biz_no(body),
        id_number=_id_number(body),
        name=required_text(body, "Name"),
        unit_code=required_text(body, "UnitCode"),
        unit_name=required_text(body, "UnitName"),
        begin_date=_date(body, "BeginDate"),
        insurance_types=types,
        base=base,
    )


def parse_enrolment_query(body: Element) -> str:
    """The ``BizNo`` asked about."""
    return _biz_no(body)


def parse_biz_no_query(body: Element) -> str:
    """The ``BizNo`` of a ``D002`` or ``T004``."""
    return _biz_no(body)


@dataclass(frozen=True)
class DeclarationLine:
    line_no: int
    id_number: str
    name: str
    change_type: str
    insurance_types: tuple[str, ...]
    base: Decimal | None
    hire_date: str
    """"" when absent."""
    leave_date: str
    """"" unless a leave."""


@dataclass(frozen=True)
class DeclarationRequest:
    biz_no: str
    unit_code: str
    unit_name: str
    period: str
    lines: tuple[DeclarationLine, ...]


def _optional_date(body: Element, tag: str) -> str:
    return _date(body, tag) if leaf_text(body, tag) else ""


def _declaration_line(line: Element) -> DeclarationLine:
    line_no = required_text(line, "LineNo")
    if not _LINE_NO.fullmatch(line_no):
        malformed("LineNo must be a positive integer")
    change_type = required_text(line, "ChangeType")
    if change_type not in CHANGE_TYPES:
        malformed("ChangeType must be one of 1, 2, 3, 4")
    base_text = leaf_text(line, "Base") or ""
    if change_type == CHANGE_LEAVE:
        if base_text:
            malformed("a leave (ChangeType 2) carries no Base")
        base = None
    else:
        base = parse_money(base_text)
        if base is None or base <= 0:
            malformed("Base must be positive yuan with two decimal places")
    return DeclarationLine(
        line_no=int(line_no),
        id_number=_id_number(line),
        name=required_text(line, "Name"),
        change_type=change_type,
        insurance_types=_insurance_types(line),
        base=base,
        hire_date=_optional_date(line, "HireDate") if change_type == CHANGE_NEW else "",
        leave_date=_date(line, "LeaveDate") if change_type == CHANGE_LEAVE else "",
    )


def parse_declaration(body: Element) -> DeclarationRequest:
    lines_element = _only(body, "Lines")
    if lines_element is None:
        malformed("Lines is required")
    lines: list[DeclarationLine] = []
    for child in lines_element:
        if child.tag != "Line":
            malformed("Lines may only contain Line elements")
        lines.append(_declaration_line(child))
    if not lines:
        malformed("Lines needs at least one Line")
    if len({line.line_no for line in lines}) != len(lines):
        malformed("LineNo must be unique within a declaration")
    return DeclarationRequest(
        biz_no=_biz_no(body),
        unit_code=required_text(body, "UnitCode"),
        unit_name=required_text(body, "UnitName"),
        period=_period(body, "Period"),
        lines=tuple(sorted(lines, key=lambda line: line.line_no)),
    )


def _other_region(body: Element, tag: str, own_region: str) -> str:
    value = required_text(body, tag)
    if not _REGION_CODE.fullmatch(value) or value == own_region:
        malformed(f"{tag} must be a six-digit region code other than this bureau's")
    return value


@dataclass(frozen=True)
class TransferOutRequest:
    biz_no: str
    id_number: str
    name: str
    to_region: str
    insurance_types: tuple[str, ...]


def parse_transfer_out(body: Element, own_region: str) -> TransferOutRequest:
    return TransferOutRequest(
        biz_no=_biz_no(body),
        id_number=_id_number(body),
        name=required_text(body, "Name"),
        to_region=_other_region(body, "ToRegion", own_region),
        insurance_types=_insurance_types(body),
    )


@dataclass(frozen=True)
class TransferQuery:
    """A ``T002``: exactly one of the two is set."""

    biz_no: str | None
    transfer_no: str | None


def parse_transfer_query(body: Element) -> TransferQuery:
    has_biz_no, has_transfer_no = bool(leaf_text(body, "BizNo")), bool(leaf_text(body, "TransferNo"))
    if has_biz_no == has_transfer_no:
        malformed("give exactly one of BizNo and TransferNo")
    if has_biz_no:
        return TransferQuery(_biz_no(body), None)
    transfer_no = required_text(body, "TransferNo")
    if not _TRANSFER_NO.fullmatch(transfer_no):
        malformed("TransferNo must be a region code, -T- and six digits")
    return TransferQuery(None, transfer_no)


@dataclass(frozen=True)
class CarriedItem:
    ins_type: str
    paid_months: int
    begin_date: str
    """"" when absent."""
    fund_amount: Decimal
    base: Decimal | None


@dataclass(frozen=True)
class TransferInRequest:
    biz_no: str
    id_number: str
    name: str
    from_region: str
    source_transfer_no: str
    carried: tuple[CarriedItem, ...]


def _carried_item(item: Element) -> CarriedItem:
    ins_type = required_text(item, "InsType")
    if ins_type not in INSURANCE_TYPES:
        malformed("InsType must be one of 110, 210, 310, 410, 510")
    months = required_text(item, "PaidMonths")
    if not _MONTHS.fullmatch(months):
        malformed("PaidMonths must be a non-negative integer")
    fund = parse_money(required_text(item, "FundAmount"))
    if fund is None:
        malformed("FundAmount must be yuan with two decimal places")
    base_text = leaf_text(item, "Base")
    base = parse_money(base_text) if base_text else None
    if base_text and base is None:
        malformed("Base must be yuan with two decimal places")
    return CarriedItem(ins_type, int(months), _optional_date(item, "BeginDate"), fund, base)


def parse_transfer_in(body: Element, own_region: str) -> TransferInRequest:
    carried_element = _only(body, "Carried")
    if carried_element is None:
        malformed("Carried is required")
    items: list[CarriedItem] = []
    for child in carried_element:
        if child.tag != "Item":
            malformed("Carried may only contain Item elements")
        items.append(_carried_item(child))
    if not items:
        malformed("Carried needs at least one Item")
    if len({item.ins_type for item in items}) != len(items):
        malformed("each InsType may be carried once")
    return TransferInRequest(
        biz_no=_biz_no(body),
        id_number=_id_number(body),
        name=required_text(body, "Name"),
        from_region=_other_region(body, "FromRegion", own_region),
        source_transfer_no=required_text(body, "SourceTransferNo"),
        carried=tuple(items),
    )


@dataclass(frozen=True)
class PaymentNotice:
    biz_no: str
    unit_code: str
    unit_name: str
    period: str
    decl_biz_no: str
    pay_amount: Decimal
    """May be zero or negative: the bureau refuses that with B011, not S400."""
    pay_date: str
    bank_serial_no: str


def parse_payment_notice(body: Element) -> PaymentNotice:
    decl_biz_no = required_text(body, "DeclBizNo")
    if not _BIZ_NO.fullmatch(decl_biz_no):
        malformed("DeclBizNo must be 8 to 40 characters [0-9A-Za-z-]")
    amount = required_text(body, "PayAmount")
    if not _SIGNED_MONEY.fullmatch(amount):
        malformed("PayAmount must be yuan with two decimal places")
    bank_serial_no = required_text(body, "BankSerialNo")
    if len(bank_serial_no) > MAX_BANK_SERIAL_NO:
        malformed(f"BankSerialNo is at most {MAX_BANK_SERIAL_NO} characters")
    return PaymentNotice(
        biz_no=_biz_no(body),
        unit_code=required_text(body, "UnitCode"),
        unit_name=required_text(body, "UnitName"),
        period=_period(body, "Period"),
        decl_biz_no=decl_biz_no,
        pay_amount=Decimal(amount),
        pay_date=_date(body, "PayDate"),
        bank_serial_no=bank_serial_no,
    )
