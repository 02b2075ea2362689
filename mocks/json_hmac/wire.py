"""The json-hmac wire format: result codes, envelopes and request bodies.

Request parsing is strict on purpose: the mock exists to catch adapters that
drift from docs/dialects/json-hmac.md, so anything the document does not allow
is answered ``1100``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Any

from mocks.resident_id import is_well_formed
from mocks.server import Response

OK = "0000"
BAD_SIGNATURE = "1001"
STALE_TIMESTAMP = "1002"
NONCE_REPLAYED = "1003"
UNKNOWN_APP = "1004"
MALFORMED = "1100"
ALREADY_ACTIVE = "2001"
BAD_CHECK_DIGIT = "2003"
NAME_MISMATCH = "2005"
NO_SUCH_ENROLMENT = "2404"
RATE_LIMITED = "4290"
BUREAU_FAILURE = "5000"

_HTTP_STATUS = {
    OK: HTTPStatus.OK,
    BAD_SIGNATURE: HTTPStatus.UNAUTHORIZED,
    STALE_TIMESTAMP: HTTPStatus.UNAUTHORIZED,
    NONCE_REPLAYED: HTTPStatus.UNAUTHORIZED,
    UNKNOWN_APP: HTTPStatus.UNAUTHORIZED,
    MALFORMED: HTTPStatus.BAD_REQUEST,
    ALREADY_ACTIVE: HTTPStatus.OK,
    BAD_CHECK_DIGIT: HTTPStatus.OK,
    NAME_MISMATCH: HTTPStatus.OK,
    NO_SUCH_ENROLMENT: HTTPStatus.OK,
    RATE_LIMITED: HTTPStatus.TOO_MANY_REQUESTS,
    BUREAU_FAILURE: HTTPStatus.SERVICE_UNAVAILABLE,
}

_MESSAGES = {
    OK: "成功",
    BAD_SIGNATURE: "签名无效",
    STALE_TIMESTAMP: "时间戳超出有效期",
    NONCE_REPLAYED: "请求重复提交",
    UNKNOWN_APP: "应用标识无效",
    MALFORMED: "请求格式错误",
    ALREADY_ACTIVE: "该险种已有有效参保记录",
    BAD_CHECK_DIGIT: "公民身份号码校验位错误",
    NAME_MISMATCH: "姓名与公民身份号码不符",
    NO_SUCH_ENROLMENT: "受理记录不存在",
    RATE_LIMITED: "请求过于频繁，请稍后重试",
    BUREAU_FAILURE: "系统繁忙，请稍后重试",
}

INSURANCE_TYPES = frozenset({"110", "210", "310", "410", "510"})
_BIZ_NO = re.compile(r"[0-9A-Za-z-]{8,40}")
_DATE = re.compile(r"[0-9]{8}")
MAX_PAGE_SIZE = 50
DEFAULT_PAGE_SIZE = 20


class BureauError(Exception):
    """A request the bureau answers with an error envelope."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or _MESSAGES[code])
        self.code = code
        self.detail = detail

    def response(self) -> Response:
        return failure(self.code, detail=self.detail)


def success(data: object, *, msg: str = _MESSAGES[OK]) -> Response:
    return Response.json(HTTPStatus.OK, {"code": OK, "msg": msg, "data": data}, code=OK)


def failure(
    code: str, *, detail: str = "", status: int | None = None, headers: dict[str, str] | None = None
) -> Response:
    """An error envelope; ``data`` is absent because only ``0000`` carries it.

    ``detail`` (never personal data) is appended to ``msg`` to help adapter authors.
    """
    msg = f"{_MESSAGES[code]}: {detail}" if detail else _MESSAGES[code]
    return Response.json(
        status if status is not None else _HTTP_STATUS[code],
        {"code": code, "msg": msg},
        code=code,
        headers=headers,
    )


@dataclass(frozen=True)
class InsuredQuery:
    id_number: str
    name: str
    page_no: int
    page_size: int


@dataclass(frozen=True)
class EnrolmentSubmit:
    biz_no: str
    id_number: str
    name: str
    unit_code: str
    unit_name: str
    start_date: str
    insurance_types: tuple[str, ...]
    base_amount: int


def body_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or ``1100``."""
    try:
        obj = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        raise BureauError(MALFORMED, "body is not UTF-8 JSON") from None
    if not isinstance(obj, dict):
        raise BureauError(MALFORMED, "body is not a JSON object")
    return obj


def _text(obj: dict[str, Any], key: str) -> str:
    """A required string field; blank counts as missing."""
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BureauError(MALFORMED, f"{key} must be a non-empty string")
    return value


def _integer(obj: dict[str, Any], key: str, default: int | None = None) -> int:
    value = obj.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BureauError(MALFORMED, f"{key} must be an integer")
    return value


def _id_number(obj: dict[str, Any]) -> str:
    value = _text(obj, "idCardNo")
    if not is_well_formed(value):
        raise BureauError(MALFORMED, "idCardNo must be 17 digits and a digit or X")
    return value


def _biz_no(obj: dict[str, Any]) -> str:
    value = _text(obj, "bizNo")
    if not _BIZ_NO.fullmatch(value):
        raise BureauError(MALFORMED, "bizNo must be 8 to 40 characters [0-9A-Za-z-]")
    return value


def _date(obj: dict[str, Any], key: str) -> str:
    value = _text(obj, key)
    try:
        if not _DATE.fullmatch(value):
            raise ValueError(value)
        datetime.strptime(value, "%Y%m%d")
    except ValueError:
        raise BureauError(MALFORMED, f"{key} must be a yyyyMMdd date") from None
    return value


def parse_insured_query(body: bytes) -> InsuredQuery:
    obj = body_object(body)
    page_no = _integer(obj, "pageNo", 1)
    page_size = _integer(obj, "pageSize", DEFAULT_PAGE_SIZE)
    if page_no < 1:
        raise BureauError(MALFORMED, "pageNo starts at 1")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise BureauError(MALFORMED, f"pageSize must be 1 to {MAX_PAGE_SIZE}")
    return InsuredQuery(_id_number(obj), _text(obj, "name"), page_no, page_size)


def parse_enrolment_submit(body: bytes) -> EnrolmentSubmit:
    obj = body_object(body)
    types = obj.get("insuranceTypes")
    if not isinstance(types, list) or not types or not all(isinstance(t, str) and t in INSURANCE_TYPES for t in types):
        raise BureauError(MALFORMED, "insuranceTypes must be a non-empty list of known codes")
    base_amount = _integer(obj, "baseAmount")
    if base_amount <= 0:
        raise BureauError(MALFORMED, "baseAmount must be a positive integer (fen)")
    return EnrolmentSubmit(
        biz_no=_biz_no(obj),
        id_number=_id_number(obj),
        name=_text(obj, "name"),
        unit_code=_text(obj, "unitCode"),
        unit_name=_text(obj, "unitName"),
        start_date=_date(obj, "startDate"),
        insurance_types=tuple(dict.fromkeys(types)),
        base_amount=base_amount,
    )


def parse_enrolment_query(body: bytes) -> str:
    """The ``bizNo`` asked about."""
    return _biz_no(body_object(body))
