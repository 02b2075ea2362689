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
BAD_CHECK_DIGIT = "61003"
NAME_MISMATCH = "61005"
NO_SUCH_TASK = "61404"

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
    BAD_CHECK_DIGIT: "公民身份号码校验位错误",
    NAME_MISMATCH: "姓名与公民身份号码不符",
    NO_SUCH_TASK: "任务单号或业务流水号不存在",
}

FORM_FIELDS = ("appid", "timestamp", "nonce", "data", "sign")
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
WINDOW_MS = 300_000
INSURANCE_TYPES = frozenset({"110", "210", "310", "410", "510"})
MAX_MONTHS = 36
ACTIVE = "1"

_NONCE = re.compile(r"[0-9a-zA-Z]{16,64}")
_TIMESTAMP = re.compile(r"[0-9]{1,16}")
_BIZ_NO = re.compile(r"[0-9A-Za-z-]{8,40}")
_DATE = re.compile(r"[0-9]{8}")
_MONTH = re.compile(r"[0-9]{4}(0[1-9]|1[0-2])")
_MONEY = re.compile(r"(0|[1-9][0-9]*)\.[0-9]{2}")


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
    name: str
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
    query = ContributionQuery(_id_number(obj), _text(obj, "name"), _month(obj, "startMonth"), _month(obj, "endMonth"))
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
