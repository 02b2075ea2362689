"""The openbanking wire format: error envelopes, value notations and the initiation body.

Parsing is strict on purpose: the mock exists to catch adapters that drift from
docs/dialects/openbanking.md, so whatever the document does not allow is refused
with the error code and ``Path`` it names.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from dataclasses import dataclass
from decimal import Decimal
from http import HTTPStatus
from typing import Any

from mocks.server import Response

CHINA = dt.timezone(dt.timedelta(hours=8))

INVALID_FORMAT = "OB.Resource.InvalidFormat"
FIELD_MISSING = "OB.Field.Missing"
FIELD_INVALID = "OB.Field.Invalid"
HEADER_MISSING = "OB.Header.Missing"
HEADER_INVALID = "OB.Header.Invalid"
SIGNATURE_MISSING = "OB.Signature.Missing"
SIGNATURE_MALFORMED = "OB.Signature.Malformed"
SIGNATURE_INVALID = "OB.Signature.Invalid"
SIGNATURE_EXPIRED = "OB.Signature.Expired"
TOKEN_INVALID = "OB.Token.Invalid"
INSUFFICIENT_SCOPE = "OB.Token.InsufficientScope"
NOT_FOUND = "OB.Resource.NotFound"
METHOD_NOT_ALLOWED = "OB.Method.NotAllowed"
KEY_REUSED = "OB.Idempotency.KeyReused"
RATE_LIMITED = "OB.RateLimit.Exceeded"
SERVER_ERROR = "OB.Server.Error"
UNAVAILABLE = "OB.Server.Unavailable"

_STATUS = {
    INVALID_FORMAT: HTTPStatus.BAD_REQUEST,
    FIELD_MISSING: HTTPStatus.BAD_REQUEST,
    FIELD_INVALID: HTTPStatus.BAD_REQUEST,
    HEADER_MISSING: HTTPStatus.BAD_REQUEST,
    HEADER_INVALID: HTTPStatus.BAD_REQUEST,
    SIGNATURE_MISSING: HTTPStatus.BAD_REQUEST,
    SIGNATURE_MALFORMED: HTTPStatus.BAD_REQUEST,
    SIGNATURE_INVALID: HTTPStatus.BAD_REQUEST,
    SIGNATURE_EXPIRED: HTTPStatus.BAD_REQUEST,
    TOKEN_INVALID: HTTPStatus.UNAUTHORIZED,
    INSUFFICIENT_SCOPE: HTTPStatus.FORBIDDEN,
    NOT_FOUND: HTTPStatus.NOT_FOUND,
    METHOD_NOT_ALLOWED: HTTPStatus.METHOD_NOT_ALLOWED,
    KEY_REUSED: HTTPStatus.UNPROCESSABLE_ENTITY,
    RATE_LIMITED: HTTPStatus.TOO_MANY_REQUESTS,
    SERVER_ERROR: HTTPStatus.INTERNAL_SERVER_ERROR,
    UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
}

_DEFAULT_MESSAGES = {
    INVALID_FORMAT: "The body is not a UTF-8 JSON object",
    FIELD_MISSING: "A required field is missing",
    FIELD_INVALID: "A field is invalid",
    HEADER_MISSING: "A required header is missing",
    HEADER_INVALID: "A header is invalid",
    SIGNATURE_MISSING: "x-jws-signature is missing",
    SIGNATURE_MALFORMED: "x-jws-signature is not a usable detached JWS",
    SIGNATURE_INVALID: "x-jws-signature does not verify over the body",
    SIGNATURE_EXPIRED: "x-jws-signature iat is outside the accepted window",
    TOKEN_INVALID: "The access token is missing, unknown or expired",
    INSUFFICIENT_SCOPE: "The access token lacks the scope of this API",
    NOT_FOUND: "No such resource",
    METHOD_NOT_ALLOWED: "Method not allowed on this resource",
    KEY_REUSED: "x-idempotency-key was already used with a different body",
    RATE_LIMITED: "Too many requests",
    SERVER_ERROR: "Internal bank error",
    UNAVAILABLE: "The bank is temporarily unavailable",
}

PAYMENT_PURPOSES = frozenset({"EXPENSE_REIMBURSEMENT", "SOCIAL_INSURANCE", "OTHER"})
_AMOUNT = re.compile(r"\d{1,13}(\.\d{1,2})?")
_ACCOUNT = re.compile(r"\d{6,32}")
_CNAPS = re.compile(r"\d{12}")
_BIC = re.compile(r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:-]{1,64}")
MAX_ID = 35
MAX_NAME = 140
MAX_REMITTANCE = 140


class BankError(Exception):
    """A request the bank answers with an error envelope."""

    def __init__(
        self, error_code: str, message: str = "", *, path: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message or _DEFAULT_MESSAGES[error_code])
        self.error_code = error_code
        self.message = message or _DEFAULT_MESSAGES[error_code]
        self.path = path
        self.headers = headers or {}

    def response(self, status: int | None = None) -> Response:
        return error_response(self.error_code, self.message, path=self.path, status=status, headers=self.headers)


def error_response(
    error_code: str,
    message: str = "",
    *,
    path: str | None = None,
    status: int | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    http_status = HTTPStatus(status if status is not None else _STATUS[error_code])
    entry: dict[str, str] = {"ErrorCode": error_code, "Message": message or _DEFAULT_MESSAGES[error_code]}
    if path is not None:
        entry["Path"] = path
    body = {
        "Id": secrets.token_hex(8),
        "Code": f"{http_status.value} {http_status.phrase}",
        "Message": "The request was refused" if http_status < 500 else "The bank could not process the request",
        "Errors": [entry],
    }
    return Response.json(http_status, body, code=error_code, headers=headers)


def instant(at: float) -> str:
    """An instant as ISO 8601 with the China offset, whole seconds."""
    return dt.datetime.fromtimestamp(at, CHINA).replace(microsecond=0).isoformat()


def china_date(at: float) -> dt.date:
    return dt.datetime.fromtimestamp(at, CHINA).date()


def amount_text(amount: Decimal) -> str:
    return format(amount.quantize(Decimal("0.01")), "f")


def body_object(body: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BankError(INVALID_FORMAT) from None
    if not isinstance(obj, dict):
        raise BankError(INVALID_FORMAT)
    return obj


def fingerprint(obj: object) -> str:
    """The body's JSON value in one canonical text: key order and spacing do not count."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Party:
    account: str
    name: str


@dataclass(frozen=True)
class Initiation:
    """A domestic payment initiation as received (``raw`` is echoed in answers)."""

    instruction_id: str
    end_to_end_id: str
    amount: Decimal
    debtor: Party
    creditor: Party
    agent_scheme: str
    agent_id: str
    remittance: str
    purpose: str
    requested_date: dt.date | None
    raw: dict[str, Any]


def _object(obj: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    if key not in obj:
        raise BankError(FIELD_MISSING, f"{path} is required", path=path)
    value = obj[key]
    if not isinstance(value, dict):
        raise BankError(FIELD_INVALID, f"{path} must be an object", path=path)
    return value


def _text(obj: dict[str, Any], key: str, path: str, max_length: int) -> str:
    if key not in obj:
        raise BankError(FIELD_MISSING, f"{path} is required", path=path)
    value = obj[key]
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise BankError(FIELD_INVALID, f"{path} must be 1 to {max_length} characters", path=path)
    return value


def _party(obj: dict[str, Any], key: str, path: str) -> Party:
    raw = _object(obj, key, path)
    if _text(raw, "SchemeName", f"{path}.SchemeName", 40) != "CN.BankAccount":
        raise BankError(FIELD_INVALID, f"{path}.SchemeName must be CN.BankAccount", path=f"{path}.SchemeName")
    account = _text(raw, "Identification", f"{path}.Identification", 32)
    if not _ACCOUNT.fullmatch(account):
        raise BankError(FIELD_INVALID, f"{path}.Identification must be 6 to 32 digits", path=f"{path}.Identification")
    return Party(account=account, name=_text(raw, "Name", f"{path}.Name", MAX_NAME))


def parse_initiation(obj: dict[str, Any]) -> Initiation:
    data = _object(obj, "Data", "Data")
    raw = _object(data, "Initiation", "Data.Initiation")
    path = "Data.Initiation"
    amount_obj = _object(raw, "InstructedAmount", f"{path}.InstructedAmount")
    amount_text_ = _text(amount_obj, "Amount", f"{path}.InstructedAmount.Amount", 20)
    if not _AMOUNT.fullmatch(amount_text_) or Decimal(amount_text_) <= 0:
        raise BankError(
            FIELD_INVALID,
            "Amount must be a positive decimal with at most 2 places",
            path=f"{path}.InstructedAmount.Amount",
        )
    if _text(amount_obj, "Currency", f"{path}.InstructedAmount.Currency", 3) != "CNY":
        raise BankError(FIELD_INVALID, "Currency must be CNY", path=f"{path}.InstructedAmount.Currency")
    agent = _object(raw, "CreditorAgent", f"{path}.CreditorAgent")
    scheme = _text(agent, "SchemeName", f"{path}.CreditorAgent.SchemeName", 40)
    agent_id = _text(agent, "Identification", f"{path}.CreditorAgent.Identification", 12)
    if scheme == "CN.CNAPS":
        if not _CNAPS.fullmatch(agent_id):
            raise BankError(FIELD_INVALID, "a CNAPS code has 12 digits", path=f"{path}.CreditorAgent.Identification")
    elif scheme == "BICFI":
        if not _BIC.fullmatch(agent_id):
            raise BankError(FIELD_INVALID, "not a BIC", path=f"{path}.CreditorAgent.Identification")
    else:
        raise BankError(
            FIELD_INVALID, "SchemeName must be CN.CNAPS or BICFI", path=f"{path}.CreditorAgent.SchemeName"
        )
    remittance = _object(raw, "RemittanceInformation", f"{path}.RemittanceInformation")
    purpose = raw.get("PaymentPurpose", "OTHER")
    if purpose not in PAYMENT_PURPOSES:
        raise BankError(
            FIELD_INVALID, f"PaymentPurpose must be one of {', '.join(sorted(PAYMENT_PURPOSES))}",
            path=f"{path}.PaymentPurpose",
        )
    requested: dt.date | None = None
    if "RequestedExecutionDate" in raw:
        value = raw["RequestedExecutionDate"]
        try:
            if not isinstance(value, str) or not _DATE.fullmatch(value):
                raise ValueError(value)
            requested = dt.date.fromisoformat(value)
        except ValueError:
            raise BankError(
                FIELD_INVALID, "RequestedExecutionDate must be an ISO date", path=f"{path}.RequestedExecutionDate"
            ) from None
    return Initiation(
        instruction_id=_text(raw, "InstructionIdentification", f"{path}.InstructionIdentification", MAX_ID),
        end_to_end_id=_text(raw, "EndToEndIdentification", f"{path}.EndToEndIdentification", MAX_ID),
        amount=Decimal(amount_text_).quantize(Decimal("0.01")),
        debtor=_party(raw, "DebtorAccount", f"{path}.DebtorAccount"),
        creditor=_party(raw, "CreditorAccount", f"{path}.CreditorAccount"),
        agent_scheme=scheme,
        agent_id=agent_id,
        remittance=_text(remittance, "Unstructured", f"{path}.RemittanceInformation.Unstructured", MAX_REMITTANCE),
        purpose=purpose,
        requested_date=requested,
        raw=raw,
    )


def parse_date_param(value: str | None, name: str) -> dt.date:
    if value is None:
        raise BankError(FIELD_MISSING, f"{name} is required", path=name)
    try:
        if not _DATE.fullmatch(value):
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise BankError(FIELD_INVALID, f"{name} must be an ISO date", path=name) from None
