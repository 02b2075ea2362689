"""The sm4-async wire format: result codes, the request form, the encrypted and
signed response envelope, and the JSON of each service.

Parsing is strict on purpose: the mock exists to catch adapters that drift from
docs/dialects/sm4-async.md, so a form field or JSON field the document does not
allow is answered ``40005``.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from email.message import Message
from http import HTTPStatus
from typing import Any

from mocks.resident_id import is_well_formed
from mocks.server import Response
from mocks.sm4_async import crypto

OK = "0"
BAD_SIGNATURE = "40001"
STALE_TIMESTAMP = "40002"
UNDECRYPTABLE = "40003"
UNKNOWN_APP = "40004"
MALFORMED = "40005"
RATE_LIMITED = "42900"
BUREAU_FAILURE = "50000"
ALREADY_ACTIVE = "61001"
NOT_INSURED_HERE = "61002"
BAD_CHECK_DIGIT = "61003"
NAME_MISMATCH = "61005"
NO_SUCH_TASK = "61404"
# Why a payment notice task fails (its failCode).
NO_SUCH_DECLARATION = "63001"
DECLARATION_NOT_ACCEPTED = "63002"
NOT_THE_DECLARATION = "63003"
AMOUNT_NOT_POSITIVE = "63004"
ALREADY_CONFIRMED = "63005"

HTTP_STATUS: dict[str, int] = {
    OK: HTTPStatus.OK,
    BAD_SIGNATURE: HTTPStatus.UNAUTHORIZED,
    STALE_TIMESTAMP: HTTPStatus.UNAUTHORIZED,
    UNDECRYPTABLE: HTTPStatus.BAD_REQUEST,
    UNKNOWN_APP: HTTPStatus.UNAUTHORIZED,
    MALFORMED: HTTPStatus.BAD_REQUEST,
    RATE_LIMITED: HTTPStatus.TOO_MANY_REQUESTS,
    BUREAU_FAILURE: HTTPStatus.INTERNAL_SERVER_ERROR,
    ALREADY_ACTIVE: HTTPStatus.OK,
    NOT_INSURED_HERE: HTTPStatus.OK,
    BAD_CHECK_DIGIT: HTTPStatus.OK,
    NAME_MISMATCH: HTTPStatus.OK,
    NO_SUCH_TASK: HTTPStatus.OK,
}

MESSAGES: dict[str, str] = {
    OK: "成功",
    BAD_SIGNATURE: "签名验证失败",
    STALE_TIMESTAMP: "时间戳超出有效范围",
    UNDECRYPTABLE: "报文解密失败",
    UNKNOWN_APP: "应用标识无效",
    MALFORMED: "请求参数缺失或格式错误",
    RATE_LIMITED: "请求过于频繁，请稍后重试",
    BUREAU_FAILURE: "系统繁忙，请稍后重试",
    ALREADY_ACTIVE: "该险种已有有效参保记录",
    NOT_INSURED_HERE: "该人员在本单位无有效参保记录",
    BAD_CHECK_DIGIT: "公民身份号码校验位错误",
    NAME_MISMATCH: "姓名与公民身份号码不符",
    NO_SUCH_TASK: "任务单号或业务流水号不存在",
    NO_SUCH_DECLARATION: "申报流水号不存在",
    DECLARATION_NOT_ACCEPTED: "申报未受理，不能确认缴费",
    NOT_THE_DECLARATION: "缴费单位或申报年月与申报不符",
    AMOUNT_NOT_POSITIVE: "缴费金额必须大于零",
    ALREADY_CONFIRMED: "该申报已确认缴费",
}

# Reasons a transfer out is rejected (bhdm / bhyy of transfer-out/query), not answer codes.
NOTHING_TO_TRANSFER = "62001"
CHANGED_BEFORE_TRANSFER = "62002"
REASONS: dict[str, str] = {
    NOTHING_TO_TRANSFER: "申请转出的险种在本地无有效或中断参保记录",
    CHANGED_BEFORE_TRANSFER: "参保状态已变更，无法划转基金",
}

FORM_FIELDS = ("appid", "timestamp", "nonce", "data", "sign")
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
WINDOW_MS = 300_000
INSURANCE_TYPES = frozenset({"110", "210", "310", "410", "510"})
MAX_MONTHS = 36
ACTIVE = "1"
SUSPENDED = "2"
TERMINATED = "3"
TRANSFERRED_OUT = "4"
RECORD_STATUSES = frozenset({ACTIVE, SUSPENDED, TERMINATED, TRANSFERRED_OUT})

# Declaration line changes (bdlx).
NEW = "1"
LEAVE = "2"
BASE_CHANGE = "3"
CONTINUE = "4"
CHANGES = frozenset({NEW, LEAVE, BASE_CHANGE, CONTINUE})
MAX_LINES = 500

# Kinds of task (ywlx).
ENROLMENT = "01"
DECLARATION = "02"
TRANSFER_IN = "03"
PAYMENT = "04"
MAX_BANK_SERIAL_NO = 64

_NONCE = re.compile(r"[0-9a-zA-Z]{16,64}")
_TIMESTAMP = re.compile(r"[0-9]{1,16}")
_BIZ_NO = re.compile(r"[0-9A-Za-z-]{8,40}")
_DATE = re.compile(r"[0-9]{8}")
_MONTH = re.compile(r"[0-9]{4}(0[1-9]|1[0-2])")
_MONEY = re.compile(r"(0|[1-9][0-9]*)\.[0-9]{2}")
_SIGNED_MONEY = re.compile(r"-?(0|[1-9][0-9]*)\.[0-9]{2}")


class BureauError(Exception):
    """A request the bureau answers with an error code (and ``data`` ``""``)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or MESSAGES[code])
        self.code = code
        self.detail = detail


# Envelope


@dataclass(frozen=True)
class Codec:
    """The keys of the one issued app: opens request ``data``, seals and signs answers."""

    sm4_key: bytes
    mac_key: str

    def open(self, data: str) -> dict[str, Any]:
        """The JSON object inside ``data``, or ``40003``."""
        try:
            plaintext = crypto.decrypt(self.sm4_key, data)
        except crypto.UndecryptableError as exc:
            raise BureauError(UNDECRYPTABLE, str(exc)) from None
        try:
            obj = json.loads(plaintext.decode("utf-8"), parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            raise BureauError(UNDECRYPTABLE, "plaintext is not UTF-8 JSON") from None
        if not isinstance(obj, dict):
            raise BureauError(UNDECRYPTABLE, "plaintext is not a JSON object")
        return obj

    def seal(self, payload: object) -> str:
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        return crypto.encrypt(self.sm4_key, text.encode("utf-8"))

    def respond(
        self,
        code: str,
        payload: object | None = None,
        *,
        detail: str = "",
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """The signed envelope; ``payload`` is sealed into ``data`` only for code ``0``.

        ``detail`` (never personal data) is appended to an error's message to help
        adapter authors; it is covered by the signature like the rest.
        """
        message = f"{MESSAGES[code]}: {detail}" if detail and code != OK else MESSAGES[code]
        data = self.seal(payload) if code == OK and payload is not None else ""
        envelope = {"code": code, "message": message, "data": data}
        envelope["sign"] = crypto.sign(self.mac_key, envelope)
        return Response.json(
            HTTP_STATUS[code] if status is None else status,
            envelope,
            code=code,
            headers=headers,
        )

    def failure(self, error: BureauError, *, status: int | None = None) -> Response:
        return self.respond(error.code, detail=error.detail, status=status)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


# The request form


def read_form(body: bytes, headers: Message) -> dict[str, str]:
    """The five form fields, each present once, non-blank and well-formed, or ``40005``.

    ``data`` and ``sign`` are only checked for presence here: what is wrong with
    them is ``40003`` / ``40001``, decided later in the document's order.
    """
    if headers.get_content_type() != FORM_CONTENT_TYPE:
        raise BureauError(MALFORMED, f"Content-Type must be {FORM_CONTENT_TYPE}")
    try:
        text = body.decode("utf-8")
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=True) if text else []
    except (UnicodeDecodeError, ValueError):
        raise BureauError(MALFORMED, "body is not form-encoded") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key not in FORM_FIELDS:
            raise BureauError(MALFORMED, f"unexpected form field {key[:32]!r}")
        if key in form:
            raise BureauError(MALFORMED, f"form field {key} given twice")
        form[key] = value
    for key in FORM_FIELDS:
        if not form.get(key):
            raise BureauError(MALFORMED, f"form field {key} is missing")
    if not _TIMESTAMP.fullmatch(form["timestamp"]):
        raise BureauError(MALFORMED, "timestamp must be Unix milliseconds, decimal")
    if not _NONCE.fullmatch(form["nonce"]):
        raise BureauError(MALFORMED, "nonce must be 16 to 64 characters [0-9a-zA-Z]")
    return form


def peek_form(body: bytes) -> dict[str, str]:
    """Best effort, for the request log and fault matching: the form's first values."""
    try:
        return dict(reversed(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True)))
    except (UnicodeDecodeError, ValueError):
        return {}


# Service requests


@dataclass(frozen=True)
class PersonQuery:
    id_number: str
    name: str


@dataclass(frozen=True)
class ContributionQuery:
    id_number: str
    name: str | None  # None: the idNo alone identifies the person
    start_month: str
    end_month: str


@dataclass(frozen=True)
class EnrolmentSubmit:
    biz_no: str
    id_number: str
    name: str
    dwbh: str
    dwmc: str
    cbrq: str
    xzlx: tuple[str, ...]
    jfjs: str


@dataclass(frozen=True)
class TaskQuery:
    ticket: str | None
    biz_no: str | None


def _text(obj: Mapping[str, Any], key: str) -> str:
    """A required string field; blank counts as missing."""
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BureauError(MALFORMED, f"{key} must be a non-empty string")
    return value


def _id_number(obj: Mapping[str, Any]) -> str:
    value = _text(obj, "idNo")
    if not is_well_formed(value):
        raise BureauError(MALFORMED, "idNo must be 17 digits and a digit or X")
    return value


def _biz_no(obj: Mapping[str, Any]) -> str:
    value = _text(obj, "bizNo")
    if not _BIZ_NO.fullmatch(value):
        raise BureauError(MALFORMED, "bizNo must be 8 to 40 characters [0-9A-Za-z-]")
    return value


def _date(obj: Mapping[str, Any], key: str) -> str:
    value = _text(obj, key)
    try:
        if not _DATE.fullmatch(value):
            raise ValueError(value)
        datetime.strptime(value, "%Y%m%d")
    except ValueError:
        raise BureauError(MALFORMED, f"{key} must be a yyyyMMdd date") from None
    return value


def _month(obj: Mapping[str, Any], key: str) -> str:
    value = _text(obj, key)
    if not _MONTH.fullmatch(value):
        raise BureauError(MALFORMED, f"{key} must be a yyyyMM month")
    return value


def is_money(value: object) -> bool:
    """Yuan as a decimal string with exactly two places, e.g. ``"6000.00"``."""
    return isinstance(value, str) and _MONEY.fullmatch(value) is not None


def month_index(month: str) -> int:
    return int(month[:4]) * 12 + int(month[4:]) - 1


def parse_person_query(obj: Mapping[str, Any]) -> PersonQuery:
    return PersonQuery(_id_number(obj), _text(obj, "name"))


def parse_contribution_query(obj: Mapping[str, Any]) -> ContributionQuery:
    name = _text(obj, "name") if "name" in obj else None
    query = ContributionQuery(_id_number(obj), name, _month(obj, "startMonth"), _month(obj, "endMonth"))
    span = month_index(query.end_month) - month_index(query.start_month) + 1
    if span < 1:
        raise BureauError(MALFORMED, "startMonth must not be after endMonth")
    if span > MAX_MONTHS:
        raise BureauError(MALFORMED, f"at most {MAX_MONTHS} months per query")
    return query


def parse_enrolment_submit(obj: Mapping[str, Any]) -> EnrolmentSubmit:
    types = obj.get("xzlx")
    if (
        not isinstance(types, list)
        or not types
        or not all(isinstance(t, str) and t in INSURANCE_TYPES for t in types)
    ):
        raise BureauError(MALFORMED, "xzlx must be a non-empty list of known insurance types")
    jfjs = obj.get("jfjs")
    if not is_money(jfjs) or Decimal(jfjs) <= 0:
        raise BureauError(MALFORMED, "jfjs must be positive yuan with two decimal places, e.g. \"8000.00\"")
    return EnrolmentSubmit(
        biz_no=_biz_no(obj),
        id_number=_id_number(obj),
        name=_text(obj, "name"),
        dwbh=_text(obj, "dwbh"),
        dwmc=_text(obj, "dwmc"),
        cbrq=_date(obj, "cbrq"),
        xzlx=tuple(dict.fromkeys(types)),
        jfjs=jfjs,
    )


def parse_task_query(obj: Mapping[str, Any]) -> TaskQuery:
    """``ticket`` or ``bizNo`` (both may be given; they must then name the same task)."""
    ticket = _text(obj, "ticket") if "ticket" in obj else None
    biz_no = _biz_no(obj) if "bizNo" in obj else None
    if ticket is None and biz_no is None:
        raise BureauError(MALFORMED, "give ticket or bizNo")
    return TaskQuery(ticket, biz_no)


# Declarations and transfers


@dataclass(frozen=True)
class DeclarationLine:
    hh: int
    id_number: str
    name: str
    bdlx: str
    xzlx: tuple[str, ...]
    jfjs: str  # "" for a leave
    rzrq: str  # "" unless given on a new line
    lzrq: str  # "" unless given on a leave line


@dataclass(frozen=True)
class DeclarationSubmit:
    biz_no: str
    dwbh: str
    dwmc: str
    sbny: str
    lines: tuple[DeclarationLine, ...]


@dataclass(frozen=True)
class Carried:
    """One carried insurance type of a transfer (an ``xz`` item)."""

    xzlx: str
    jfys: int
    cbrq: str
    zyjj: str
    jfjs: str  # "" when not given

    def to_wire(self) -> dict[str, Any]:
        return {"xzlx": self.xzlx, "jfys": self.jfys, "cbrq": self.cbrq, "zyjj": self.zyjj}


@dataclass(frozen=True)
class TransferInSubmit:
    biz_no: str
    id_number: str
    name: str
    zcdq: str
    zcbh: str
    carried: tuple[Carried, ...]


@dataclass(frozen=True)
class TransferOutSubmit:
    biz_no: str
    id_number: str
    name: str
    zrdq: str
    xzlx: tuple[str, ...]


@dataclass(frozen=True)
class TransferQuery:
    biz_no: str | None
    zybh: str | None


_REGION_CODE = re.compile(r"[0-9]{6}")


def _types(obj: Mapping[str, Any], where: str = "") -> tuple[str, ...]:
    types = obj.get("xzlx")
    if (
        not isinstance(types, list)
        or not types
        or not all(isinstance(t, str) and t in INSURANCE_TYPES for t in types)
    ):
        raise BureauError(MALFORMED, f"{where}xzlx must be a non-empty list of known insurance types")
    return tuple(dict.fromkeys(types))


def _positive_money(obj: Mapping[str, Any], key: str, where: str = "") -> str:
    value = obj.get(key)
    if not is_money(value) or Decimal(value) <= 0:
        raise BureauError(MALFORMED, f"{where}{key} must be positive yuan with two decimal places")
    return value


def _absent(obj: Mapping[str, Any], key: str, where: str) -> None:
    if obj.get(key, "") != "":
        raise BureauError(MALFORMED, f"{where}{key} is not allowed for this bdlx")


def _optional_date(obj: Mapping[str, Any], key: str) -> str:
    return "" if obj.get(key, "") == "" else _date(obj, key)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _region(obj: Mapping[str, Any], key: str) -> str:
    value = _text(obj, key)
    if not _REGION_CODE.fullmatch(value):
        raise BureauError(MALFORMED, f"{key} must be a six-digit region code")
    return value


def _declaration_line(obj: object, position: int) -> DeclarationLine:
    where = f"mx[{position}]."
    if not isinstance(obj, dict):
        raise BureauError(MALFORMED, f"mx[{position}] must be an object")
    hh = obj.get("hh")
    if not isinstance(hh, int) or isinstance(hh, bool) or hh < 1:
        raise BureauError(MALFORMED, f"{where}hh must be a positive integer")
    bdlx = obj.get("bdlx")
    if bdlx not in CHANGES:
        raise BureauError(MALFORMED, f"{where}bdlx must be one of 1, 2, 3, 4")
    if bdlx == LEAVE:
        _absent(obj, "jfjs", where)
        jfjs = ""
    else:
        jfjs = _positive_money(obj, "jfjs", where)
    if bdlx != NEW:
        _absent(obj, "rzrq", where)
    if bdlx != LEAVE:
        _absent(obj, "lzrq", where)
    try:
        return DeclarationLine(
            hh=hh,
            id_number=_id_number(obj),
            name=_text(obj, "name"),
            bdlx=bdlx,
            xzlx=_types(obj, where),
            jfjs=jfjs,
            rzrq=_optional_date(obj, "rzrq"),
            lzrq=_optional_date(obj, "lzrq"),
        )
    except BureauError as error:
        if error.detail.startswith(where):
            raise
        raise BureauError(error.code, where + error.detail) from None


def parse_declaration_submit(obj: Mapping[str, Any]) -> DeclarationSubmit:
    biz_no = _biz_no(obj)
    lines = obj.get("mx")
    if not isinstance(lines, list) or not lines or len(lines) > MAX_LINES:
        raise BureauError(MALFORMED, f"mx must be a list of 1 to {MAX_LINES} lines")
    parsed = tuple(_declaration_line(line, position) for position, line in enumerate(lines))
    if len({line.hh for line in parsed}) != len(parsed):
        raise BureauError(MALFORMED, "hh must be unique within the declaration")
    return DeclarationSubmit(
        biz_no=biz_no,
        dwbh=_text(obj, "dwbh"),
        dwmc=_text(obj, "dwmc"),
        sbny=_month(obj, "sbny"),
        lines=tuple(sorted(parsed, key=lambda line: line.hh)),
    )


def _carried(obj: object, position: int) -> Carried:
    where = f"xz[{position}]."
    if not isinstance(obj, dict):
        raise BureauError(MALFORMED, f"xz[{position}] must be an object")
    xzlx = obj.get("xzlx")
    if not isinstance(xzlx, str) or xzlx not in INSURANCE_TYPES:
        raise BureauError(MALFORMED, f"{where}xzlx must be a known insurance type")
    if not _count(obj.get("jfys")):
        raise BureauError(MALFORMED, f"{where}jfys must be an integer of at least 0")
    if not is_money(obj.get("zyjj")):
        raise BureauError(MALFORMED, f"{where}zyjj must be yuan with two decimal places")
    jfjs = obj.get("jfjs", "")
    if jfjs != "" and not is_money(jfjs):
        raise BureauError(MALFORMED, f"{where}jfjs must be yuan with two decimal places")
    try:
        cbrq = _optional_date(obj, "cbrq")
    except BureauError:
        raise BureauError(MALFORMED, f"{where}cbrq must be a yyyyMMdd date or empty") from None
    return Carried(xzlx=xzlx, jfys=obj["jfys"], cbrq=cbrq, zyjj=obj["zyjj"], jfjs=jfjs)


def parse_transfer_in_submit(obj: Mapping[str, Any]) -> TransferInSubmit:
    items = obj.get("xz")
    if not isinstance(items, list) or not items:
        raise BureauError(MALFORMED, "xz must be a non-empty list")
    carried = tuple(_carried(item, position) for position, item in enumerate(items))
    if len({item.xzlx for item in carried}) != len(carried):
        raise BureauError(MALFORMED, "xz must carry each insurance type once")
    return TransferInSubmit(
        biz_no=_biz_no(obj),
        id_number=_id_number(obj),
        name=_text(obj, "name"),
        zcdq=_region(obj, "zcdq"),
        zcbh=_text(obj, "zcbh"),
        carried=carried,
    )


def parse_transfer_out_submit(obj: Mapping[str, Any]) -> TransferOutSubmit:
    return TransferOutSubmit(
        biz_no=_biz_no(obj),
        id_number=_id_number(obj),
        name=_text(obj, "name"),
        zrdq=_region(obj, "zrdq"),
        xzlx=_types(obj),
    )


def parse_transfer_query(obj: Mapping[str, Any]) -> TransferQuery:
    """``bizNo`` or ``zybh`` (both may be given; they must then name the same transfer)."""
    biz_no = _biz_no(obj) if "bizNo" in obj else None
    zybh = _text(obj, "zybh") if "zybh" in obj else None
    if biz_no is None and zybh is None:
        raise BureauError(MALFORMED, "give bizNo or zybh")
    return TransferQuery(biz_no, zybh)


# Payment notices


@dataclass(frozen=True)
class PaymentSubmit:
    biz_no: str
    dwbh: str
    dwmc: str
    sbny: str
    sblsh: str  # the declaration's bizNo
    jkje: str  # may be zero or negative: the task fails with 63004, the form is fine
    jkrq: str
    yhlsh: str


def parse_payment_submit(obj: Mapping[str, Any]) -> PaymentSubmit:
    sblsh = _text(obj, "sblsh")
    if not _BIZ_NO.fullmatch(sblsh):
        raise BureauError(MALFORMED, "sblsh must be 8 to 40 characters [0-9A-Za-z-]")
    jkje = obj.get("jkje")
    if not isinstance(jkje, str) or not _SIGNED_MONEY.fullmatch(jkje):
        raise BureauError(MALFORMED, "jkje must be yuan with two decimal places")
    yhlsh = _text(obj, "yhlsh")
    if len(yhlsh) > MAX_BANK_SERIAL_NO:
        raise BureauError(MALFORMED, f"yhlsh is at most {MAX_BANK_SERIAL_NO} characters")
    return PaymentSubmit(
        biz_no=_biz_no(obj),
        dwbh=_text(obj, "dwbh"),
        dwmc=_text(obj, "dwmc"),
        sbny=_month(obj, "sbny"),
        sblsh=sblsh,
        jkje=jkje,
        jkrq=_date(obj, "jkrq"),
        yhlsh=yhlsh,
    )
