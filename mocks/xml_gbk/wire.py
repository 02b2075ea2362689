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
NO_SUCH_ENROLMENT = "B404"

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
    NO_SUCH_ENROLMENT: HTTPStatus.OK,
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
    NO_SUCH_ENROLMENT: "受理记录不存在",
}

LOGIN, Q001, Q002, E001, E002 = "LOGIN", "Q001", "Q002", "E001", "E002"
TRANS_CODES = frozenset({LOGIN, Q001, Q002, E001, E002})
INSURANCE_TYPES = frozenset({"110", "210", "310", "410", "510"})
ACTIVE, SUSPENDED, TERMINATED = "参保缴费", "暂停缴费", "终止参保"
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
    query = MonthsQuery(
        _id_number(body), required_text(body, "Name"), _period(body, "FromPeriod"), _period(body, "ToPeriod")
    )
    span = period_index(query.to_period) - period_index(query.from_period)
    if span < 0:
        malformed("FromPeriod must not be after ToPeriod")
    if span > MAX_PERIOD_SPAN:
        malformed(f"FromPeriod and ToPeriod must be at most {MAX_PERIOD_SPAN} months apart")
    return query


def parse_enrolment(body: Element) -> EnrolmentRequest:
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
        insurance_types=tuple(dict.fromkeys(types)),
        base=base,
    )


def parse_enrolment_query(body: Element) -> str:
    """The ``BizNo`` asked about."""
    return _biz_no(body)
