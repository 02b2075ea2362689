"""The kingdee WebAPI wire format as docs/dialects/kingdee.md describes it:
service paths, ``Result.ResponseStatus`` envelopes, amounts as JSON numbers read as
decimals, and the ``FilterString`` / ``OrderString`` grammar of ``ExecuteBillQuery``."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from http import HTTPStatus
from typing import Any

from mocks.server import Response

PREFIX = "/k3cloud/Kingdee.BOS.WebApi.ServicesStub."
LOGIN_PATH = PREFIX + "AuthService.ValidateUser.common.kdsvc"
SERVICES = ("Save", "Submit", "Audit", "View", "ExecuteBillQuery")
SERVICE_PATHS = {PREFIX + f"DynamicFormService.{service}.common.kdsvc": service for service in SERVICES}
SESSION_COOKIE = "kdservice-sessionid"

# MsgCode values of the failure envelope.
OK = 0
SESSION_LOST = 1
NO_RIGHT = 2
ERP_FAILURE = 4
MALFORMED = 8
NO_SUCH_FIELD = 9
NO_SUCH_BILL = 10
VALIDATION = 11
NOT_OPERABLE = 12
CALL_LIMIT = 14

SESSION_LOST_MESSAGE = "会话信息已丢失，请重新登录"
MAX_AMOUNT = Decimal(10) ** 12
_TWO_PLACES = Decimal("0.01")
_CHINA = dt.timezone(dt.timedelta(hours=8))


@dataclass(frozen=True)
class FieldError:
    field: str | None
    message: str
    index: int = 0


class ErpError(Exception):
    """A refusal answered with the failure envelope (nothing applied)."""

    def __init__(self, msg_code: int, *errors: FieldError) -> None:
        super().__init__(errors[0].message if errors else str(msg_code))
        self.msg_code = msg_code
        self.errors = errors or (FieldError(None, "请求无效"),)

    @classmethod
    def of(cls, msg_code: int, message: str, field: str | None = None) -> ErpError:
        return cls(msg_code, FieldError(field, message))


# -- JSON -------------------------------------------------------------------------------


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        # Amounts are below 10^12 with two places: a double holds them exactly enough
        # that its shortest repr is the same decimal.
        return float(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def dumps(payload: object) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=_default).encode("utf-8")


def loads(body: bytes) -> Any:
    """A JSON body with every non-integer number read as a ``Decimal``."""
    try:
        return json.loads(body.decode("utf-8"), parse_float=Decimal)
    except (ValueError, RecursionError):
        raise ErpError.of(MALFORMED, "请求内容不是有效的 JSON") from None


def json_response(payload: object, *, status: int = HTTPStatus.OK, code: str = "0", headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        status=status,
        body=dumps(payload),
        code=code,
        headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
    )


# -- envelopes --------------------------------------------------------------------------


def response_status(msg_code: int, errors: Sequence[FieldError] = (), entities: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    return {
        "ErrorCode": 0 if msg_code == OK else 500,
        "IsSuccess": msg_code == OK,
        "MsgCode": msg_code,
        "Errors": [{"FieldName": e.field, "Message": e.message, "DIndex": e.index} for e in errors],
        "SuccessEntitys": list(entities),
        "SuccessMessages": [],
    }


def success(entities: Sequence[Mapping[str, Any]], *, saved: Mapping[str, Any] | None = None) -> Response:
    result: dict[str, Any] = {"ResponseStatus": response_status(OK, entities=entities)}
    if saved is not None:
        result.update({"Id": saved["Id"], "Number": saved["Number"], "NeedReturnData": []})
    return json_response({"Result": result})


def failure(
    msg_code: int,
    errors: Sequence[FieldError],
    *,
    entities: Sequence[Mapping[str, Any]] = (),
    status: int = HTTPStatus.OK,
    headers: Mapping[str, str] | None = None,
    nested: bool = False,
) -> Response:
    """The failure envelope; ``nested`` wraps it in two arrays as ExecuteBillQuery does."""
    payload: object = {"Result": {"ResponseStatus": response_status(msg_code, errors, entities)}}
    if nested:
        payload = [[payload]]
    return json_response(payload, status=status, code=str(msg_code), headers=headers)


def error_response(error: ErpError, *, nested: bool = False) -> Response:
    return failure(error.msg_code, error.errors, nested=nested)


# -- values -----------------------------------------------------------------------------


def amount(value: object) -> Decimal | None:
    """A JSON number with at most two decimals below 10^12, or None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        return None
    number = Decimal(value)
    if not number.is_finite() or abs(number) >= MAX_AMOUNT or number != number.quantize(_TWO_PLACES):
        return None
    return number.quantize(_TWO_PLACES)


def base_data(value: object) -> str | None:
    """The code of a ``{"FNumber": "<code>"}`` reference, or None."""
    if isinstance(value, Mapping):
        number = value.get("FNumber")
        if isinstance(number, str) and number:
            return number
    return None


def erp_date(day: dt.date | None) -> str | None:
    return None if day is None else f"{day.isoformat()}T00:00:00"


def china_date(timestamp: float) -> dt.date:
    return dt.datetime.fromtimestamp(timestamp, _CHINA).date()


_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(T00:00:00)?")


def parse_date(value: object) -> dt.date | None:
    if not isinstance(value, str):
        return None
    match = _DATE.fullmatch(value)
    if match is None:
        return None
    try:
        return dt.date.fromisoformat(match.group(1))
    except ValueError:
        return None


# -- ExecuteBillQuery grammar -----------------------------------------------------------

_FIELD_KEY = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?"
_CONDITION = re.compile(
    rf"\s*(?P<key>{_FIELD_KEY})\s*=\s*(?:'(?P<text>(?:[^']|'')*)'|(?P<number>-?\d+(?:\.\d+)?))\s*"
)
_AND = re.compile(r"AND(?=\s)", re.IGNORECASE)
_ORDER = re.compile(rf"\s*(?P<key>{_FIELD_KEY})(?:\s+(?P<direction>ASC|DESC))?\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Condition:
    key: str
    value: str | Decimal

    def matches(self, actual: object) -> bool:
        if actual is None:
            return False
        if isinstance(self.value, Decimal):
            if isinstance(actual, bool):
                return Decimal(int(actual)) == self.value
            if isinstance(actual, (int, Decimal)):
                return Decimal(actual) == self.value
            return str(actual) == str(self.value)
        if isinstance(actual, bool):
            return self.value == ("1" if actual else "0")
        return str(actual) == self.value


def parse_filter(text: str) -> list[Condition]:
    """``Key = 'text' AND Key = 12.5 …``; anything else is MsgCode 8."""
    conditions: list[Condition] = []
    if not text.strip():
        return conditions
    position = 0
    while True:
        match = _CONDITION.match(text, position)
        if match is None:
            raise ErpError.of(MALFORMED, f"过滤条件无法解析：{text[position:position + 40]}", "FilterString")
        raw_text, number = match.group("text"), match.group("number")
        value: str | Decimal = raw_text.replace("''", "'") if raw_text is not None else Decimal(number)
        conditions.append(Condition(match.group("key"), value))
        position = match.end()
        if position == len(text):
            return conditions
        joiner = _AND.match(text, position)
        if joiner is None:
            raise ErpError.of(MALFORMED, f"过滤条件无法解析：{text[position:position + 40]}", "FilterString")
        position = joiner.end()


def parse_order(text: str) -> tuple[str, bool] | None:
    """``Key [ASC|DESC]`` -> (key, descending); empty -> None."""
    if not text.strip():
        return None
    match = _ORDER.fullmatch(text)
    if match is None:
        raise ErpError.of(MALFORMED, f"排序条件无法解析：{text[:40]}", "OrderString")
    return match.group("key"), (match.group("direction") or "ASC").upper() == "DESC"


def parse_field_keys(value: object) -> list[str]:
    if not isinstance(value, str) or not value.strip():
        raise ErpError.of(MALFORMED, "FieldKeys 不能为空", "FieldKeys")
    keys = [key.strip() for key in value.split(",")]
    if any(not key for key in keys):
        raise ErpError.of(MALFORMED, "FieldKeys 格式错误", "FieldKeys")
    return keys
