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
NOT_INSURED_HERE = "2002"
BAD_CHECK_DIGIT = "2003"
NAME_MISMATCH = "2005"
NO_SUCH_ENROLMENT = "2404"
NO_RECORD_TO_TRANSFER = "3001"
# Reasons a payment notice is refused (``reasonCode`` of a REJECTED notice).
NO_SUCH_DECLARATION = "2501"
DECLARATION_NOT_ACCEPTED = "2502"
NOT_THE_DECLARATION = "2503"
AMOUNT_NOT_POSITIVE = "2504"
ALREADY_CONFIRMED = "2505"
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
    NOT_INSURED_HERE: HTTPStatus.OK,
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
    NOT_INSURED_HERE: "该单位无此人有效参保记录",
    BAD_CHECK_DIGIT: "公民身份号码校验位错误",
    NAME_MISMATCH: "姓名与公民身份号码不符",
    NO_SUCH_ENROLMENT: "受理记录不存在",
    NO_RECORD_TO_TRANSFER: "转出地无该险种有效参保记录",
    NO_SUCH_DECLARATION: "申报记录不存在",
    DECLARATION_NOT_ACCEPTED: "申报未受理，不能确认缴费",
    NOT_THE_DECLARATION: "缴费单位或所属期与申报不符",
    AMOUNT_NOT_POSITIVE: "缴费金额必须大于零",
    ALREADY_CONFIRMED: "该申报已由其他缴费通知确认",
    RATE_LIMITED: "请求过于频繁，请稍后重试",
    BUREAU_FAILURE: "系统繁忙，请稍后重试",
}

INSURANCE_TYPES = frozenset({"110", "210", "310", "410", "510"})
_BIZ_NO = re.compile(r"[0-9A-Za-z-]{8,40}")
_DATE = re.compile(r"[0-9]{8}")
_PERIOD = re.compile(r"[0-9]{4}(0[1-9]|1[0-2])")
_REGION = re.compile(r"[0-9]{6}")
MAX_DECLARATION_LINES = 500
MAX_TRANSFER_NO = 64
MAX_BANK_SERIAL_NO = 64

CHANGE_NEW = "01"
CHANGE_LEAVE = "02"
CHANGE_BASE = "03"
CHANGE_CONTINUE = "04"
CHANGE_TYPES = frozenset({CHANGE_NEW, CHANGE_LEAVE, CHANGE_BASE, CHANGE_CONTINUE})
MAX_PAGE_SIZE = 50
DEFAULT_PAGE_SIZE = 20


def message(code: str) -> str:
    """The bureau's standard message for a result code."""
    return _MESSAGES[code]


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


# -- declarations, transfers, contribution history ------------------------------------


@dataclass(frozen=True)
class DeclarationDetail:
    line_no: int
    id_number: str
    name: str
    change_type: str
    insurance_types: tuple[str, ...]
    base_amount: int | None
    hire_date: str
    leave_date: str


@dataclass(frozen=True)
class DeclarationSubmit:
    biz_no: str
    unit_code: str
    unit_name: str
    period: str
    details: tuple[DeclarationDetail, ...]


@dataclass(frozen=True)
class TransferOutSubmit:
    biz_no: str
    id_number: str
    name: str
    target_region: str
    insurance_types: tuple[str, ...]


@dataclass(frozen=True)
class CarriedItem:
    insurance_type: str
    paid_months: int
    start_date: str
    fund_amount: int
    base_amount: int


@dataclass(frozen=True)
class TransferInSubmit:
    biz_no: str
    id_number: str
    name: str
    source_region: str
    source_transfer_no: str
    carried: tuple[CarriedItem, ...]


@dataclass(frozen=True)
class ContributionQuery:
    id_number: str
    name: str | None
    start_period: str
    end_period: str
    page_no: int
    page_size: int


def _insurance_types(obj: dict[str, Any]) -> tuple[str, ...]:
    types = obj.get("insuranceTypes")
    if not isinstance(types, list) or not types or not all(isinstance(t, str) and t in INSURANCE_TYPES for t in types):
        raise BureauError(MALFORMED, "insuranceTypes must be a non-empty list of known codes")
    return tuple(dict.fromkeys(types))


def _period(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not _PERIOD.fullmatch(value):
        raise BureauError(MALFORMED, f"{key} must be a yyyyMM period")
    return value


def _optional_date(obj: dict[str, Any], key: str) -> str:
    """A ``yyyyMMdd`` date that may be absent or ``""``."""
    if obj.get(key) in (None, ""):
        return ""
    return _date(obj, key)


def _other_region(obj: dict[str, Any], key: str, own_region: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not _REGION.fullmatch(value) or value == own_region:
        raise BureauError(MALFORMED, f"{key} must be another region's six-digit code")
    return value


def _declaration_detail(raw: object) -> DeclarationDetail:
    if not isinstance(raw, dict):
        raise BureauError(MALFORMED, "every detail must be an object")
    line_no = _integer(raw, "lineNo")
    if line_no < 1:
        raise BureauError(MALFORMED, "lineNo must be a positive integer")
    change_type = raw.get("changeType")
    if change_type not in CHANGE_TYPES:
        raise BureauError(MALFORMED, f"line {line_no}: unknown changeType")
    if change_type == CHANGE_LEAVE:
        if "baseAmount" in raw:
            raise BureauError(MALFORMED, f"line {line_no}: baseAmount must be absent for 02")
        base_amount = None
    else:
        base_amount = _integer(raw, "baseAmount")
        if base_amount <= 0:
            raise BureauError(MALFORMED, f"line {line_no}: baseAmount must be a positive integer (fen)")
    hire_date = _optional_date(raw, "hireDate")
    leave_date = _optional_date(raw, "leaveDate")
    if hire_date and change_type != CHANGE_NEW:
        raise BureauError(MALFORMED, f"line {line_no}: hireDate belongs to 01 only")
    if leave_date and change_type != CHANGE_LEAVE:
        raise BureauError(MALFORMED, f"line {line_no}: leaveDate belongs to 02 only")
    return DeclarationDetail(
        line_no=line_no,
        id_number=_id_number(raw),
        name=_text(raw, "name"),
        change_type=change_type,
        insurance_types=_insurance_types(raw),
        base_amount=base_amount,
        hire_date=hire_date,
        leave_date=leave_date,
    )


def parse_declaration_submit(body: bytes) -> DeclarationSubmit:
    obj = body_object(body)
    biz_no = _biz_no(obj)
    period = _period(obj, "period")
    raw_details = obj.get("details")
    if not isinstance(raw_details, list) or not 1 <= len(raw_details) <= MAX_DECLARATION_LINES:
        raise BureauError(MALFORMED, f"details must be a list of 1 to {MAX_DECLARATION_LINES} lines")
    details = tuple(_declaration_detail(raw) for raw in raw_details)
    if len({d.line_no for d in details}) != len(details):
        raise BureauError(MALFORMED, "lineNo must be unique within a declaration")
    return DeclarationSubmit(
        biz_no=biz_no,
        unit_code=_text(obj, "unitCode"),
        unit_name=_text(obj, "unitName"),
        period=period,
        details=tuple(sorted(details, key=lambda d: d.line_no)),
    )


def parse_biz_no_query(body: bytes) -> str:
    """The ``bizNo`` asked about (declaration and transfer-in queries)."""
    return _biz_no(body_object(body))


def parse_transfer_out_submit(body: bytes, own_region: str) -> TransferOutSubmit:
    obj = body_object(body)
    return TransferOutSubmit(
        biz_no=_biz_no(obj),
        id_number=_id_number(obj),
        name=_text(obj, "name"),
        target_region=_other_region(obj, "targetRegion", own_region),
        insurance_types=_insurance_types(obj),
    )


def parse_transfer_out_query(body: bytes) -> tuple[str | None, str | None]:
    """``(bizNo, None)`` or ``(None, transferNo)``: exactly one of the two is asked by."""
    obj = body_object(body)
    if ("bizNo" in obj) == ("transferNo" in obj):
        raise BureauError(MALFORMED, "give exactly one of bizNo and transferNo")
    if "bizNo" in obj:
        return _biz_no(obj), None
    return None, _text(obj, "transferNo")


def _carried_item(raw: object) -> CarriedItem:
    if not isinstance(raw, dict):
        raise BureauError(MALFORMED, "every carried entry must be an object")
    insurance_type = raw.get("insuranceType")
    if insurance_type not in INSURANCE_TYPES:
        raise BureauError(MALFORMED, "carried insuranceType must be a known code")
    paid_months = _integer(raw, "paidMonths")
    fund_amount = _integer(raw, "fundAmount")
    base_amount = _integer(raw, "baseAmount", 0)
    if min(paid_months, fund_amount, base_amount) < 0:
        raise BureauError(MALFORMED, "carried paidMonths, fundAmount and baseAmount must not be negative")
    return CarriedItem(
        insurance_type=insurance_type,
        paid_months=paid_months,
        start_date=_optional_date(raw, "startDate"),
        fund_amount=fund_amount,
        base_amount=base_amount,
    )


def parse_transfer_in_submit(body: bytes, own_region: str) -> TransferInSubmit:
    obj = body_object(body)
    raw_carried = obj.get("carried")
    if not isinstance(raw_carried, list) or not raw_carried:
        raise BureauError(MALFORMED, "carried must be a non-empty list")
    carried = tuple(_carried_item(raw) for raw in raw_carried)
    if len({c.insurance_type for c in carried}) != len(carried):
        raise BureauError(MALFORMED, "each insuranceType may be carried once")
    source_transfer_no = _text(obj, "sourceTransferNo")
    if len(source_transfer_no) > MAX_TRANSFER_NO:
        raise BureauError(MALFORMED, f"sourceTransferNo is at most {MAX_TRANSFER_NO} characters")
    return TransferInSubmit(
        biz_no=_biz_no(obj),
        id_number=_id_number(obj),
        name=_text(obj, "name"),
        source_region=_other_region(obj, "sourceRegion", own_region),
        source_transfer_no=source_transfer_no,
        carried=carried,
    )


def parse_contribution_query(body: bytes) -> ContributionQuery:
    obj = body_object(body)
    page_no = _integer(obj, "pageNo", 1)
    page_size = _integer(obj, "pageSize", DEFAULT_PAGE_SIZE)
    if page_no < 1:
        raise BureauError(MALFORMED, "pageNo starts at 1")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise BureauError(MALFORMED, f"pageSize must be 1 to {MAX_PAGE_SIZE}")
    start, end = _period(obj, "startPeriod"), _period(obj, "endPeriod")
    if start > end:
        raise BureauError(MALFORMED, "startPeriod is after endPeriod")
    name = _text(obj, "name") if "name" in obj else None
    return ContributionQuery(_id_number(obj), name, start, end, page_no, page_size)


# -- payment confirmation ----------------------------------------------------------------


@dataclass(frozen=True)
class PaymentNotice:
    biz_no: str
    unit_code: str
    unit_name: str
    period: str
    declare_biz_no: str
    pay_amount: int
    paid_date: str
    bank_serial_no: str


def parse_payment_notify(body: bytes) -> PaymentNotice:
    obj = body_object(body)
    declare_biz_no = _text(obj, "declareBizNo")
    if not _BIZ_NO.fullmatch(declare_biz_no):
        raise BureauError(MALFORMED, "declareBizNo must be 8 to 40 characters [0-9A-Za-z-]")
    bank_serial_no = _text(obj, "bankSerialNo")
    if len(bank_serial_no) > MAX_BANK_SERIAL_NO:
        raise BureauError(MALFORMED, f"bankSerialNo is at most {MAX_BANK_SERIAL_NO} characters")
    return PaymentNotice(
        biz_no=_biz_no(obj),
        unit_code=_text(obj, "unitCode"),
        unit_name=_text(obj, "unitName"),
        period=_period(obj, "period"),
        declare_biz_no=declare_biz_no,
        pay_amount=_integer(obj, "payAmount"),
        paid_date=_date(obj, "paidDate"),
        bank_serial_no=bank_serial_no,
    )
