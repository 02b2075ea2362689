"""The OData JSON of the finance service: error envelopes, answers, values and the
``$filter`` subset (docs/dialects/odata.md, from the ERP's side)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from mocks.server import Response

SERVICE_ROOT = "/odata/v4/finance"
MEDIA_TYPE = "application/json;odata.metadata=minimal;IEEE754Compatible=true"

# Error codes (the envelope's ``code``).
BAD_REQUEST = "BAD_REQUEST"
INVALID_FILTER = "INVALID_FILTER"
UNSUPPORTED_QUERY_OPTION = "UNSUPPORTED_QUERY_OPTION"
UNKNOWN_COST_CENTER = "UNKNOWN_COST_CENTER"
NO_BUDGET = "NO_BUDGET"
UNKNOWN_GL_ACCOUNT = "UNKNOWN_GL_ACCOUNT"
COST_CENTER_REQUIRED = "COST_CENTER_REQUIRED"
UNBALANCED = "UNBALANCED"
UNAUTHORIZED = "UNAUTHORIZED"
CSRF_TOKEN_REQUIRED = "CSRF_TOKEN_REQUIRED"
NOT_FOUND = "NOT_FOUND"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
DUPLICATE_REFERENCE = "DUPLICATE_REFERENCE"
UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
INTERNAL_ERROR = "INTERNAL_ERROR"

OK = "OK"  # the request log's code for a successful answer

_REFERENCE = re.compile(r"[0-9A-Za-z._:/-]{1,64}")
_PERIOD = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]{1,2})?")
_SHA256 = re.compile(r"[0-9A-Fa-f]{64}")
_CENT = Decimal("0.01")
MAX_ATTACHMENTS = 20


@dataclass(frozen=True)
class Problem:
    """One entry of an error's ``details``."""

    code: str
    message: str
    target: str | None = None

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target is not None:
            entry["target"] = self.target
        return entry


class ODataError(Exception):
    """A refusal, answered as the OData error envelope with ``status``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        details: list[Problem] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.details = details or [Problem(code, message, target)]
        self.headers = dict(headers or {})

    @classmethod
    def of(cls, problems: list[Problem], status: int = HTTPStatus.BAD_REQUEST) -> ODataError:
        """The error for ``problems`` (at least one): the first is the main one."""
        first = problems[0]
        return cls(status, first.code, first.message, target=first.target, details=problems)

    def response(self) -> Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target is not None:
            error["target"] = self.target
        error["details"] = [problem.to_json() for problem in self.details]
        return answer(self.status, {"error": error}, code=self.code, headers=self.headers)


def bad_request(message: str, target: str | None = None) -> ODataError:
    return ODataError(HTTPStatus.BAD_REQUEST, BAD_REQUEST, message, target=target)


def answer(status: int, payload: object, *, code: str = OK, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(status=status, body=body, code=code, headers={"Content-Type": MEDIA_TYPE, **(headers or {})})


def collection(entity_set: str, entities: list[dict[str, Any]]) -> dict[str, Any]:
    return {"@odata.context": f"$metadata#{entity_set}", "value": entities}


def single(entity_set: str, entity: dict[str, Any]) -> dict[str, Any]:
    return {"@odata.context": f"$metadata#{entity_set}/$entity", **entity}


# -- values ---------------------------------------------------------------------------


def format_amount(amount: Decimal) -> str:
    return format(amount.quantize(_CENT), "f")


def read_body(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The JSON object a write sends; ``415`` for another media type, ``400`` for bad JSON."""
    if not content_type or content_type.split(";")[0].strip().lower() != "application/json":
        raise ODataError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, UNSUPPORTED_MEDIA_TYPE, "send application/json;IEEE754Compatible=true"
        )
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bad_request("the body is not JSON") from None
    if not isinstance(obj, dict):
        raise bad_request("the body must be a JSON object")
    return obj


def text(obj: Mapping[str, Any], key: str, *, max_length: int, target: str | None = None, required: bool = True) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > max_length:
        what = "a non-empty string" if required else "a string"
        raise bad_request(f"{key} must be {what} of at most {max_length} characters", target or key)
    return value


def reference(obj: Mapping[str, Any]) -> str:
    value = obj.get("Reference")
    if not isinstance(value, str) or not _REFERENCE.fullmatch(value):
        raise bad_request("Reference must be 1 to 64 characters [0-9A-Za-z._:/-]", "Reference")
    return value


def amount(obj: Mapping[str, Any], key: str = "Amount", target: str | None = None) -> Decimal:
    """A positive ``Edm.Decimal`` sent as a string with at most two places."""
    value = obj.get(key)
    target = target or key
    if not isinstance(value, str):
        raise bad_request(f"{key} is an Edm.Decimal: send it as a string (IEEE754Compatible=true)", target)
    if not _DECIMAL.fullmatch(value):
        raise bad_request(f"{key} must be a decimal with at most two places", target)
    try:
        parsed = Decimal(value)
    except InvalidOperation:
        raise bad_request(f"{key} must be a decimal with at most two places", target) from None
    if parsed <= 0:
        raise bad_request(f"{key} must be positive", target)
    return parsed.quantize(_CENT)


def currency(obj: Mapping[str, Any]) -> str:
    value = obj.get("Currency", "CNY")
    if value != "CNY":
        raise bad_request("Currency must be CNY", "Currency")
    return "CNY"


def period(obj: Mapping[str, Any]) -> str:
    value = obj.get("Period")
    if not isinstance(value, str) or not _PERIOD.fullmatch(value):
        raise bad_request("Period must be YYYY-MM", "Period")
    return value


def iso_date(obj: Mapping[str, Any], key: str) -> date:
    value = obj.get(key)
    try:
        if not isinstance(value, str) or not _DATE.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise bad_request(f"{key} must be an ISO date YYYY-MM-DD", key) from None


@dataclass(frozen=True)
class AttachmentRef:
    file_name: str | None
    kind: str
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"FileName": self.file_name, "Kind": self.kind, "Sha256": self.sha256}


def attachments(obj: Mapping[str, Any]) -> tuple[AttachmentRef, ...]:
    raw = obj.get("Attachments", [])
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_ATTACHMENTS:
        raise bad_request(f"Attachments must be a list of at most {MAX_ATTACHMENTS}", "Attachments")
    refs = []
    for index, item in enumerate(raw):
        target = f"Attachments[{index}]"
        if not isinstance(item, dict):
            raise bad_request("every attachment must be an object", target)
        sha = item.get("Sha256")
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise bad_request("Sha256 must be 64 hexadecimal digits", f"{target}/Sha256")
        file_name = item.get("FileName")
        if file_name is not None and (not isinstance(file_name, str) or not file_name or len(file_name) > 120):
            raise bad_request("FileName must be null or 1 to 120 characters", f"{target}/FileName")
        refs.append(
            AttachmentRef(
                file_name=file_name,
                kind=text(item, "Kind", max_length=40, target=f"{target}/Kind"),
                sha256=sha.lower(),
            )
        )
    return tuple(refs)


# -- query options --------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """The system query options of one request."""

    filters: dict[str, str] = field(default_factory=dict)
    expand: frozenset[str] = frozenset()


_TOKEN = re.compile(r"\s*(?:'((?:[^']|'')*)'|([A-Za-z_][A-Za-z0-9_]*))")


def parse_filter(expression: str, filterable: frozenset[str]) -> dict[str, str]:
    """``A eq 'x' and B eq 'y'`` -> ``{"A": "x", "B": "y"}``; anything else is ``INVALID_FILTER``."""

    def invalid(message: str) -> ODataError:
        return ODataError(HTTPStatus.BAD_REQUEST, INVALID_FILTER, message, target="$filter")

    tokens: list[tuple[str, str]] = []  # ("name" | "literal", value)
    position = 0
    while position < len(expression):
        if not expression[position:].strip():
            break
        match = _TOKEN.match(expression, position)
        if match is None:
            raise invalid(f"cannot read $filter at position {position}")
        literal, name = match.groups()
        tokens.append(("literal", literal.replace("''", "'")) if literal is not None else ("name", name))
        position = match.end()
    conditions: dict[str, str] = {}
    index = 0
    while True:
        if index + 3 > len(tokens):
            raise invalid("expected <Property> eq '<value>'")
        (kind_p, prop), (kind_op, op), (kind_v, value) = tokens[index : index + 3]
        if kind_p != "name" or kind_op != "name" or op != "eq" or kind_v != "literal":
            raise invalid("only <Property> eq '<string>' joined by 'and' is supported")
        if prop not in filterable:
            raise invalid(f"{prop} is not filterable here (filterable: {', '.join(sorted(filterable))})")
        if prop in conditions and conditions[prop] != value:
            conditions[prop] = "\x00"  # two different values for one property: nothing matches
        else:
            conditions[prop] = value
        index += 3
        if index == len(tokens):
            return conditions
        if tokens[index] != ("name", "and"):
            raise invalid("conditions are joined by 'and'")
        index += 1


def parse_query(target: str, *, filterable: frozenset[str], expandable: frozenset[str]) -> Query:
    query_string = target.partition("?")[2]
    filters: dict[str, str] = {}
    expand: set[str] = set()
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        if key == "$filter":
            filters.update(parse_filter(value, filterable))
        elif key == "$expand":
            for name in (part.strip() for part in value.split(",")):
                if name not in expandable:
                    raise bad_request(f"cannot expand {name!r} here", "$expand")
                expand.add(name)
        elif key.startswith("$"):
            raise ODataError(
                HTTPStatus.BAD_REQUEST, UNSUPPORTED_QUERY_OPTION, f"{key} is not supported", target=key
            )
        # Custom (non-$) query options are ignored, as OData allows.
    return Query(filters=filters, expand=frozenset(expand))
