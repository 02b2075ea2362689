"""Adapter for the ``sm4-async`` bureau family (docs/dialects/sm4-async.md).

Form-encoded ``POST /api/<service>`` requests whose JSON payload travels SM4-CBC
encrypted (``data = base64(iv ‖ ciphertext)``, a fresh IV every time) and signed with
HMAC-SM3 over ``appid=…&data=…&nonce=…&timestamp=…``; JSON answers
``{"code", "message", "data", "sign"}`` whose ``sign`` is verified and whose ``data``
is decrypted. Pinyin field names, money in yuan strings, dates ``yyyyMMdd``, months
``yyyyMM``. One deployment serves one region.

Enrolments, declarations, transfers in and payment notices are asynchronous: their submit service
returns a ticket (idempotent on ``bizNo``) and ``task/result`` tells, later, what the
bureau decided (per line, for a declaration). The adapter polls for a bounded time
and answers ``pending`` (with the ticket) if the bureau has not decided by then.
A transfer out is registered at once and then moves through its stages at the
bureau's pace; ``transfer-out/query`` tells where it stands.

Every attempt is encrypted and signed afresh by ``Sm4AsyncAuth``: ``client.call`` is
given the plaintext JSON, and the auth flow turns it into the form body (a new IV,
timestamp and nonce on each retry), so no retry ever repeats a timestamp or nonce.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hmac as std_hmac
import json
import math
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Literal
from urllib.parse import urlencode

import httpx
import msgspec
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..base import HttpAdapter
from ..context import CallContext
from ..errors import (
    AmbiguousOutcome,
    BusinessRejection,
    ConfigurationError,
    UpstreamAuthenticationError,
    UpstreamError,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamServerError,
)
from ..exactly_once import send_at_most_once
from ..http import RetryPolicy, UpstreamPolicy, retry_after_seconds
from ..models import (
    CarriedInsurance,
    ContributionMonth,
    ContributionPaymentNotice,
    ContributionPaymentReceipt,
    DeclarationChange,
    DeclarationLineResult,
    DeclarationReceipt,
    DeclarationSubmission,
    Employer,
    EnrolmentReceipt,
    EnrolmentSubmission,
    InsuranceType,
    ParticipationRecord,
    ParticipationStatus,
    PaymentStatus,
    Person,
    TransferInReceipt,
    TransferInSubmission,
    TransferOutProgress,
    TransferOutSubmission,
)
from ..protocols import AdapterConfig, AdapterKind, Capability
from ..values import format_yuan as format_money
from ..values import parse_yuan as parse_money
from ..values import parse_yyyymm as parse_period
from ..values import period_slices
from ..values import to_yyyymm as to_wire_period

__all__ = [
    "CONTRIBUTION_PATH",
    "DECLARATION_PATH",
    "PAYMENT_PATH",
    "TRANSFER_IN_PATH",
    "TRANSFER_OUT_PATH",
    "TRANSFER_QUERY_PATH",
    "FORM_CONTENT_TYPE",
    "MAX_PERIOD_SPAN",
    "PERSON_QUERY_PATH",
    "SUBMIT_PATH",
    "TASK_RESULT_PATH",
    "DecryptionError",
    "Sm4AsyncAuth",
    "Sm4AsyncBureauAdapter",
    "Sm4Codec",
    "TaskState",
    "format_money",
    "parse_date",
    "parse_money",
    "parse_period",
    "to_wire_period",
]

PERSON_QUERY_PATH = "/api/person/query"
CONTRIBUTION_PATH = "/api/contribution/query"
SUBMIT_PATH = "/api/enrolment/submit"
TASK_RESULT_PATH = "/api/task/result"
DECLARATION_PATH = "/api/declaration/submit"
TRANSFER_IN_PATH = "/api/transfer-in/submit"
TRANSFER_OUT_PATH = "/api/transfer-out/submit"
TRANSFER_QUERY_PATH = "/api/transfer-out/query"
PAYMENT_PATH = "/api/contribution-payment/submit"

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
#: What ``client.call`` is given: the plaintext payload, which ``Sm4AsyncAuth`` encrypts.
_PLAINTEXT_HEADERS = {"Content-Type": "application/json"}

#: The bureau refuses a contribution range wider than this; longer ones are asked in slices.
MAX_PERIOD_SPAN = 36

_TYPE_TO_CODE: dict[InsuranceType, str] = {
    "pension": "110",
    "unemployment": "210",
    "medical": "310",
    "work_injury": "410",
    "maternity": "510",
}
_CODE_TO_TYPE: dict[str, InsuranceType] = {code: kind for kind, code in _TYPE_TO_CODE.items()}
_STATUS: dict[str, ParticipationStatus] = {"1": "active", "2": "suspended", "3": "terminated", "4": "transferred"}
_PAY_STATUS: dict[str, PaymentStatus] = {"1": "paid", "2": "late", "3": "unpaid"}
_CHANGE_CODE: dict[DeclarationChange, str] = {"new": "1", "leave": "2", "change": "3", "continue": "4"}
_LINE_STATUS: dict[str, Literal["accepted", "rejected"]] = {"1": "accepted", "2": "rejected"}
_DECLARATION_STATUS: dict[str, Literal["accepted", "partially_accepted", "rejected"]] = {
    "SUCCESS": "accepted",
    "PARTIAL": "partially_accepted",
    "FAILED": "rejected",
}
_TRANSFER_STAGE: dict[str, Literal["submitted", "source_reviewed", "funds_transferred", "rejected"]] = {
    "01": "submitted",
    "02": "source_reviewed",
    "03": "funds_transferred",
    "09": "rejected",
}
# Kinds of task (ywlx) behind a ticket or bizNo.
_ENROLMENT, _DECLARATION, _TRANSFER_IN, _PAYMENT = "01", "02", "03", "04"
_KIND_NAMES = {
    _ENROLMENT: "enrolment",
    _DECLARATION: "declaration",
    _TRANSFER_IN: "transfer in",
    _PAYMENT: "payment notice",
}

_SUCCESS = "0"
_AUTH_CODES = frozenset({"40001", "40002", "40004"})
# Refusals the bureau may give before it can sign with our mac_key: it does not know
# the appid (40004), a form field such as appid is missing (40005), or our mac_key is
# not the one it holds (40001, so its sign cannot match ours either). They carry no
# data and only ever make the call fail, so an unverifiable sign on them is tolerated
# (and said in the error) instead of hiding a credential problem behind a protocol one.
_MAYBE_UNSIGNED = frozenset({"40001", "40004", "40005"})
_RATE_LIMITED = "42900"
_SERVER_FAILURE = "50000"
_NOT_FOUND = "61404"
# Which canonical field a business refusal (or a failed task) is about.
_REJECTION_FIELDS = {"61001": "insurance_types", "61002": "insurance_types", "61003": "id_number", "61005": "name"}

_SM4_KEY = re.compile(r"[0-9a-fA-F]{32}")
_DATE = re.compile(r"\d{8}")

_BLOCK = 16  # SM4's block (and IV) size in bytes


# -- crypto ----------------------------------------------------------------------------


class DecryptionError(ValueError):
    """``data`` could not be turned back into a JSON object (says why, never the key)."""


def hmac_sm3_hex(key: bytes, message: str) -> str:
    """Lower-case hex HMAC-SM3 of ``message``'s UTF-8 bytes."""
    mac = crypto_hmac.HMAC(key, hashes.SM3())
    mac.update(message.encode("utf-8"))
    return mac.finalize().hex()


def string_to_sign(fields: dict[str, str]) -> str:
    """``key=value`` pairs, keys in ASCII order, joined with ``&``, values as sent."""
    return "&".join(f"{key}={fields[key]}" for key in sorted(fields))


class Sm4Codec:
    """The bureau's SM4-CBC/PKCS#7 envelope and HMAC-SM3 signatures for one caller."""

    def __init__(self, sm4_key: bytes, mac_key: bytes, *, random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        if len(sm4_key) != _BLOCK:
            raise ValueError("an SM4 key is 16 bytes")
        self._sm4_key = sm4_key
        self._mac_key = mac_key
        self._random_bytes = random_bytes

    @classmethod
    def from_credentials(cls, sm4_key_hex: str, mac_key: str) -> Sm4Codec:
        if not _SM4_KEY.fullmatch(sm4_key_hex):
            raise ValueError("sm4_key must be 32 hexadecimal characters (a 128-bit key)")
        return cls(bytes.fromhex(sm4_key_hex), mac_key.encode("utf-8"))

    def encrypt(self, plaintext: bytes, *, iv: bytes | None = None) -> str:
        """``base64(iv ‖ SM4-CBC(PKCS#7(plaintext)))`` with a fresh random IV."""
        iv = self._random_bytes(_BLOCK) if iv is None else iv
        padder = padding.PKCS7(_BLOCK * 8).padder()
        padded = padder.update(plaintext) + padder.finalize()
        encryptor = Cipher(algorithms.SM4(self._sm4_key), modes.CBC(iv)).encryptor()
        return base64.b64encode(iv + encryptor.update(padded) + encryptor.finalize()).decode("ascii")

    def decrypt(self, data: str) -> bytes:
        """The plaintext of ``data``; ``DecryptionError`` saying what was wrong."""
        try:
            raw = base64.b64decode(data.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise DecryptionError("data is not standard base64") from None
        body = len(raw) - _BLOCK
        if body <= 0 or body % _BLOCK:
            raise DecryptionError(
                f"data holds {len(raw)} bytes: not a {_BLOCK}-byte IV and a positive multiple of {_BLOCK}"
            )
        decryptor = Cipher(algorithms.SM4(self._sm4_key), modes.CBC(raw[:_BLOCK])).decryptor()
        padded = decryptor.update(raw[_BLOCK:]) + decryptor.finalize()
        unpadder = padding.PKCS7(_BLOCK * 8).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise DecryptionError("bad PKCS#7 padding after decryption (wrong sm4_key or corrupted data)") from None

    def decrypt_json(self, data: str) -> dict[str, Any]:
        plaintext = self.decrypt(data)
        try:
            text = plaintext.decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptionError("the decrypted data is not UTF-8") from None
        try:
            payload = json.loads(text)
        except ValueError:
            raise DecryptionError("the decrypted data is not JSON") from None
        if not isinstance(payload, dict):
            raise DecryptionError("the decrypted data is not a JSON object")
        return payload

    def sign(self, fields: dict[str, str]) -> str:
        return hmac_sm3_hex(self._mac_key, string_to_sign(fields))

    def verify(self, fields: dict[str, str], sign: str) -> bool:
        """Whether ``sign`` is our HMAC-SM3 of ``fields`` (compared in constant time)."""
        return std_hmac.compare_digest(self.sign(fields).encode("ascii"), sign.lower().encode("utf-8"))


class Sm4AsyncAuth(httpx.Auth):
    """Turns each attempt's plaintext JSON body into the bureau's signed form.

    Runs for every attempt, so each one gets its own IV, millisecond timestamp and
    nonce: the client resends the same plaintext, never the same form."""

    requires_request_body = True

    def __init__(
        self,
        appid: str,
        codec: Sm4Codec,
        *,
        clock: Callable[[], float] = time.time,
        new_nonce: Callable[[], str] = lambda: secrets.token_hex(16),
    ) -> None:
        self._appid = appid
        self._codec = codec
        self._clock = clock
        self._new_nonce = new_nonce

    def form(self, plaintext: bytes) -> dict[str, str]:
        """The five form fields for one attempt carrying ``plaintext``."""
        fields = {
            "appid": self._appid,
            "timestamp": str(int(self._clock() * 1000)),
            "nonce": self._new_nonce(),
            "data": self._codec.encrypt(plaintext),
        }
        fields["sign"] = self._codec.sign(fields)
        return fields

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        body = urlencode(self.form(request.content)).encode("ascii")
        headers = httpx.Headers(request.headers)
        headers.pop("Content-Length", None)
        headers.pop("Transfer-Encoding", None)
        headers["Content-Type"] = FORM_CONTENT_TYPE
        yield httpx.Request(request.method, request.url, headers=headers, content=body, extensions=request.extensions)


# -- value formats ---------------------------------------------------------------------






def parse_date(value: str | None) -> dt.date | None:
    """``yyyyMMdd`` -> a date; empty -> ``None``."""
    if not value:
        return None
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError(f"bad date {value!r}")
    return dt.datetime.strptime(value, "%Y%m%d").date()










def _str(raw: dict[str, Any], key: str) -> str:
    """``raw[key]`` as a string, ``""`` when absent or null; anything else is malformed."""
    value = raw.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"{key} should be a string, got {value!r}")
    return value


def _count(value: Any, key: str) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
        raise ValueError(f"bad {key} {value!r}")
    count = int(value)
    if count < 0:
        raise ValueError(f"bad {key} {value!r}")
    return count


def _list_of_objects(payload: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = payload.get(key)
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise UpstreamProtocolError(f"answer without a {key!r} list of objects")
    return items


# -- task results ----------------------------------------------------------------------

TaskStateName = Literal["PROCESSING", "SUCCESS", "PARTIAL", "FAILED"]


@dataclass(frozen=True, slots=True)
class TaskState:
    """One ``task/result`` answer (``lines``: a decided declaration's per-line results;
    ``confirmed_amount``: what a successful payment notice confirmed)."""

    ticket: str
    biz_no: str
    state: TaskStateName
    accept_no: str = ""
    accept_date: dt.date | None = None
    fail_code: str = ""
    fail_msg: str = ""
    response: httpx.Response | None = None
    lines: tuple[DeclarationLineResult, ...] = ()
    confirmed_amount: Decimal | None = None


def _line_result(raw: dict[str, Any]) -> DeclarationLineResult:
    line = raw.get("hh")
    if isinstance(line, bool) or not isinstance(line, int) or line < 1:
        raise ValueError(f"bad line number hh={line!r}")
    outcome = _str(raw, "jg")
    if outcome not in _LINE_STATUS:
        raise ValueError(f"unknown line outcome jg={outcome!r}")
    if outcome == "1":
        return DeclarationLineResult(line=line, status="accepted")
    fail_code = _str(raw, "failCode")
    if not fail_code:
        raise ValueError("a rejected line without failCode")
    return DeclarationLineResult(
        line=line, status="rejected", upstream_code=fail_code, upstream_message=_str(raw, "failMsg") or None
    )


# -- the adapter -----------------------------------------------------------------------


class Sm4AsyncBureauAdapter(HttpAdapter):
    kind: ClassVar[AdapterKind] = "social_security"
    dialect: ClassVar[str] = "sm4-async"
    version: ClassVar[str] = "1.0"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.PARTICIPATION_SEARCH,
            Capability.ENROLMENT,
            Capability.ENROLMENT_LOOKUP,
            Capability.CONTRIBUTION_HISTORY,
            Capability.DECLARATION,
            Capability.TRANSFER_OUT,
            Capability.TRANSFER_IN,
            Capability.CONTRIBUTION_PAYMENT,
        }
    )
    # 42900 comes as HTTP 429 with Retry-After and applies nothing; 50000 (HTTP 500)
    # after enrolment/submit may have applied it, so only 429 is "not applied" for a
    # submission (anything else is asked about with task/result by bizNo). A few
    # patient retries; a search still answers within seconds.
    policy: ClassVar[UpstreamPolicy] = UpstreamPolicy(
        retry=RetryPolicy(
            max_attempts=4,
            initial_backoff=0.2,
            max_backoff=2.0,
            deadline=15.0,
            max_retry_after=10.0,
            not_applied_statuses=frozenset({429}),
        )
    )
    one_region: ClassVar[bool] = True  # One sm4-async deployment serves one region; its records carry no region.
    required_credentials: ClassVar[tuple[str, ...]] = ("appid", "sm4_key", "mac_key")

    #: How many times a submission whose outcome was ambiguous is checked and re-sent.
    max_submit_rounds: ClassVar[int] = 3
    #: Defaults of the options ``poll_interval`` and ``poll_timeout`` (seconds).
    default_poll_interval: ClassVar[float] = 0.2
    default_poll_timeout: ClassVar[float] = 5.0

    codec: Sm4Codec

    def __init__(
        self,
        config: AdapterConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        **kwargs: Any,
    ) -> None:
        self.poll_interval = self._seconds_option(config, "poll_interval", self.default_poll_interval, positive=True)
        self.poll_timeout = self._seconds_option(config, "poll_timeout", self.default_poll_timeout, positive=False)
        super().__init__(config, **kwargs)  # checks the credentials, then build_auth
        self.region = config.regions[0]
        self._clock = clock
        self._sleep = sleep

    @staticmethod
    def _seconds_option(config: AdapterConfig, key: str, default: float, *, positive: bool) -> float:
        value = config.options.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigurationError(f"adapter {config.name!r} (sm4-async): option {key!r} must be a number of seconds")
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            raise ConfigurationError(
                f"adapter {config.name!r} (sm4-async): option {key!r} must be {'positive' if positive else 'zero or more'}"
            )
        return float(value)

    def build_auth(self, config: AdapterConfig) -> httpx.Auth:
        try:
            self.codec = Sm4Codec.from_credentials(config.credentials["sm4_key"], config.credentials["mac_key"])
        except ValueError as exc:
            raise ConfigurationError(f"adapter {config.name!r} (sm4-async): {exc}") from None
        return Sm4AsyncAuth(config.credentials["appid"], self.codec)

    # -- envelope -----------------------------------------------------------------------

    def _unwrap(self, response: httpx.Response, *, idempotent: bool) -> dict[str, Any] | None:
        """The decrypted ``data`` of a verified ``0`` answer; otherwise the taxonomy's error."""
        try:
            envelope = msgspec.json.decode(response.content)
        except msgspec.DecodeError as exc:
            raise UpstreamProtocolError(f"the answer is not JSON (HTTP {response.status_code})", response=response) from exc
        fields = {key: envelope.get(key) for key in ("code", "data", "message")} if isinstance(envelope, dict) else {}
        sign = envelope.get("sign") if isinstance(envelope, dict) else None
        if len(fields) != 3 or not all(isinstance(v, str) for v in fields.values()) or not isinstance(sign, str):
            raise UpstreamProtocolError(
                f"no {{code, message, data, sign}} envelope in the answer (HTTP {response.status_code})",
                response=response,
            )
        code, data, message = fields["code"], fields["data"], fields["message"]
        verified = self.codec.verify(fields, sign)
        if not verified and code not in _MAYBE_UNSIGNED:
            raise UpstreamProtocolError(
                f"the answer's sign does not match (code {code}, HTTP {response.status_code}): refused unread",
                response=response,
            )
        if code == _SUCCESS:
            if not response.is_success:
                raise UpstreamProtocolError(f"a success code with HTTP {response.status_code}", response=response)
            if data == "":
                return None
            try:
                return self.codec.decrypt_json(data)
            except DecryptionError as exc:
                raise UpstreamProtocolError(f"the answer's data could not be decrypted: {exc}", response=response) from None
        details: dict[str, Any] = {"upstream_code": code, "upstream_message": message, "response": response}
        unverified = "" if verified else "; the answer's sign could not be verified"
        if code in _AUTH_CODES:
            raise UpstreamAuthenticationError(f"bureau refused our credentials or signature ({code}{unverified})", **details)
        if code == _RATE_LIMITED:
            # Normally HTTP 429, which the client handles itself.
            raise UpstreamRateLimited(
                "bureau is rate limiting (42900)", retry_after=retry_after_seconds(response.headers.get("Retry-After")), **details
            )
        if code == _SERVER_FAILURE:
            # Normally HTTP 500 (the client handles it); may have applied a submission.
            if idempotent:
                raise UpstreamServerError("bureau-side failure (50000)", **details)
            raise AmbiguousOutcome("bureau-side failure (50000) after a state-changing call", **details)
        if code == _NOT_FOUND:
            raise UpstreamNotFound("bureau has no such ticket or business number (61404)", **details)
        # 40003 and 40005 included: the bureau refused what we sent, nothing was applied.
        raise BusinessRejection(
            f"bureau refused the request ({code}{unverified})", field=_REJECTION_FIELDS.get(code), **details
        )

    def _payload(self, response: httpx.Response, *, idempotent: bool = True) -> dict[str, Any]:
        payload = self._unwrap(response, idempotent=idempotent)
        if payload is None:
            raise UpstreamProtocolError("a success without data", response=response)
        return payload

    async def _call(
        self,
        path: str,
        payload: dict[str, Any],
        interpret: Callable[[httpx.Response], Any],
        *,
        operation: str,
        context: CallContext,
        idempotent: bool,
    ) -> Any:
        # The plaintext JSON (UTF-8, names as they are); Sm4AsyncAuth encrypts and
        # signs it afresh for every attempt.
        return await self.client.call(
            "POST", path, interpret, operation=operation, context=context, idempotent=idempotent,
            content=msgspec.json.encode(payload), headers=_PLAINTEXT_HEADERS,
        )

    # -- participation ------------------------------------------------------------------

    def _record(self, raw: dict[str, Any]) -> ParticipationRecord | None:
        insurance_type = _CODE_TO_TYPE.get(_str(raw, "xzlx"))
        if insurance_type is None:  # a local scheme the canonical model does not cover
            return None
        status = _str(raw, "cbzt")
        if status not in _STATUS:
            raise ValueError(f"unknown record status cbzt={status!r}")
        unit_code = _str(raw, "dwbh")
        return ParticipationRecord(
            region=self.region,
            insurance_type=insurance_type,
            status=_STATUS[status],
            employer=Employer(uscc=unit_code, name=_str(raw, "dwmc")) if unit_code else None,
            start_date=parse_date(_str(raw, "cbrq")),
            end_date=parse_date(_str(raw, "zzrq")),
            paid_months=_count(raw.get("jfys"), "jfys"),
            contribution_base=parse_money(_str(raw, "jfjs")),
            last_paid_period=parse_period(_str(raw, "zhjfny")),
        )

    def _records(self, response: httpx.Response) -> list[ParticipationRecord]:
        records = _list_of_objects(self._payload(response), "records")
        return [r for r in map(self._record, records) if r is not None]

    async def search_participation(self, person: Person, *, context: CallContext) -> list[ParticipationRecord]:
        return await self._call(
            PERSON_QUERY_PATH, {"idNo": person.id_number, "name": person.name}, self._records,
            operation="participation.search", context=context, idempotent=True,
        )

    # -- contribution history -----------------------------------------------------------

    def _month(self, raw: dict[str, Any]) -> ContributionMonth | None:
        insurance_type = _CODE_TO_TYPE.get(_str(raw, "xzlx"))
        if insurance_type is None:
            return None
        pay_status = _str(raw, "jfzt")
        if pay_status not in _PAY_STATUS:
            raise ValueError(f"unknown payment status jfzt={pay_status!r}")
        period = parse_period(_str(raw, "ny"))
        if period is None:
            raise ValueError("a month without ny")
        return ContributionMonth(
            region=self.region,
            period=period,
            insurance_type=insurance_type,
            status=_PAY_STATUS[pay_status],
            employer_amount=parse_money(_str(raw, "dwjf")),
            personal_amount=parse_money(_str(raw, "grjf")),
            paid_on=parse_date(_str(raw, "dzrq")),
        )

    def _months(self, response: httpx.Response) -> list[ContributionMonth]:
        months = _list_of_objects(self._payload(response), "months")
        return [m for m in map(self._month, months) if m is not None]

    async def contribution_history(
        self, person: Person, from_period: str, to_period: str, *, context: CallContext
    ) -> list[ContributionMonth]:
        """Months ``from_period``..``to_period`` (``YYYY-MM``, inclusive) the bureau holds.

        A range longer than the bureau accepts in one query is asked for in
        consecutive slices of at most ``MAX_PERIOD_SPAN`` months."""
        months: list[ContributionMonth] = []
        for start, end in period_slices(from_period, to_period, MAX_PERIOD_SPAN):
            payload = {"idNo": person.id_number, "startMonth": start, "endMonth": end}
            if person.name:  # the bureau identifies by idNo alone when the name is unknown
                payload["name"] = person.name
            months += await self._call(
                CONTRIBUTION_PATH, payload, self._months,
                operation="contribution.history", context=context, idempotent=True,
            )
        return months

    # -- enrolment ----------------------------------------------------------------------

    @staticmethod
    def _enrolment_payload(submission: EnrolmentSubmission) -> dict[str, Any]:
        return {
            "bizNo": submission.reference,
            "idNo": submission.person.id_number,
            "name": submission.person.name,
            "dwbh": submission.employer.uscc,
            "dwmc": submission.employer.name,
            "cbrq": submission.hire_date.strftime("%Y%m%d"),
            "xzlx": [_TYPE_TO_CODE[t] for t in submission.insurance_types],
            "jfjs": format_money(submission.contribution_base),
        }

    def _ticket_for(self, reference: str) -> Callable[[httpx.Response], str]:
        def ticket(response: httpx.Response) -> str:
            payload = self._payload(response, idempotent=False)
            biz_no = _str(payload, "bizNo")
            if biz_no and biz_no != reference:
                raise UpstreamProtocolError(f"the bureau answered about submission {biz_no}, not {reference}")
            value = _str(payload, "ticket")
            if not value:
                raise ValueError("a submission answer without a ticket")
            return value

        return ticket

    def _task_for(
        self, *, reference: str | None = None, ticket: str | None = None, kind: str = _ENROLMENT
    ) -> Callable[[httpx.Response], TaskState]:
        what = _KIND_NAMES[kind]

        def task(response: httpx.Response) -> TaskState:
            payload = self._payload(response)
            biz_no, their_ticket, state = _str(payload, "bizNo"), _str(payload, "ticket"), _str(payload, "state")
            if reference is not None and biz_no and biz_no != reference:
                raise UpstreamProtocolError(f"the bureau answered about {what} {biz_no}, not {reference}")
            if ticket is not None and their_ticket and their_ticket != ticket:
                raise UpstreamProtocolError(f"the bureau answered about ticket {their_ticket}, not {ticket}")
            their_kind = _str(payload, "ywlx")
            if their_kind and their_kind != kind:  # older bureaus send no ywlx
                raise UpstreamProtocolError(
                    f"{reference or ticket} is a {_KIND_NAMES.get(their_kind, 'task of kind ' + their_kind)}, not a {what}"
                )
            their_ticket, biz_no = their_ticket or ticket or "", biz_no or reference or ""
            declaration = kind == _DECLARATION
            lines: tuple[DeclarationLineResult, ...] = ()
            if declaration and state in _DECLARATION_STATUS:
                lines = tuple(map(_line_result, _list_of_objects(payload, "mx")))
                accepted = sum(1 for line in lines if line.status == "accepted")
                if not lines or (state == "SUCCESS") != (accepted == len(lines)) or (state == "FAILED") != (accepted == 0):
                    raise ValueError(f"a {state} declaration whose lines say otherwise")
            if state == "SUCCESS" or (state == "PARTIAL" and declaration):
                accept_no = _str(payload, "acceptNo")
                if not accept_no:
                    raise ValueError(f"a {state} task without acceptNo")
                return TaskState(
                    their_ticket, biz_no, state, accept_no=accept_no,
                    accept_date=parse_date(_str(payload, "acceptDate")), response=response, lines=lines,
                    confirmed_amount=parse_money(_str(payload, "qrje")) if kind == _PAYMENT else None,
                )  # fmt: skip
            if state == "FAILED":
                fail_code = _str(payload, "failCode")
                if not fail_code and not declaration:  # a declaration's reasons are per line
                    raise ValueError("a FAILED task without failCode")
                return TaskState(
                    their_ticket, biz_no, "FAILED", accept_date=parse_date(_str(payload, "acceptDate")),
                    fail_code=fail_code, fail_msg=_str(payload, "failMsg"), response=response, lines=lines,
                )  # fmt: skip
            if state == "PROCESSING":
                if not their_ticket:
                    raise ValueError("a PROCESSING task without a ticket")
                return TaskState(their_ticket, biz_no, "PROCESSING", response=response)
            raise ValueError(f"unknown task state {state!r}")

        return task

    async def _task_result(
        self,
        *,
        context: CallContext,
        reference: str | None = None,
        ticket: str | None = None,
        kind: str = _ENROLMENT,
        operation: str | None = None,
    ) -> TaskState | None:
        """``task/result`` by ``bizNo`` or by ticket; ``None`` for ``61404``."""
        payload = {"bizNo": reference} if reference is not None else {"ticket": ticket}
        if operation is None:
            operation = "enrolment.lookup" if reference is not None else "enrolment.poll"
        try:
            return await self._call(
                TASK_RESULT_PATH, payload, self._task_for(reference=reference, ticket=ticket, kind=kind),
                operation=operation, context=context, idempotent=True,
            )
        except UpstreamNotFound:
            return None

    def _outcome(self, reference: str, task: TaskState) -> EnrolmentReceipt:
        """A receipt for a SUCCESS or PROCESSING task; a FAILED one raises its refusal."""
        if task.state == "SUCCESS":
            return EnrolmentReceipt(
                reference=reference, bureau_reference=task.accept_no, status="accepted", accepted_on=task.accept_date
            )
        if task.state == "FAILED":
            raise BusinessRejection(
                f"bureau refused enrolment {reference} ({task.fail_code})",
                upstream_code=task.fail_code,
                upstream_message=task.fail_msg,
                field=_REJECTION_FIELDS.get(task.fail_code),
                upstream=self.name,
                response=task.response,
                request=task.response.request if task.response is not None else None,
            )
        return EnrolmentReceipt(reference=reference, bureau_reference=task.ticket, status="pending")

    async def submit_enrolment(self, submission: EnrolmentSubmission, *, context: CallContext) -> EnrolmentReceipt:
        reference = submission.reference
        payload = self._enrolment_payload(submission)
        sent = await send_at_most_once(
            lambda: self._call(
                SUBMIT_PATH, payload, self._ticket_for(reference),
                operation="enrolment.submit", context=context, idempotent=False,
            ),
            lambda: self._task_result(context=context, reference=reference),
            reference=f"enrolment {reference}", upstream=self.name, rounds=self.max_submit_rounds,
        )
        if isinstance(sent, str):  # a ticket: the bureau took it and decides later
            return await self._await_outcome(reference, sent, context)
        if sent.state != "PROCESSING":  # an earlier, lost submission was found decided
            return self._outcome(reference, sent)
        return await self._await_outcome(reference, sent.ticket, context)

    async def _await_outcome(self, reference: str, ticket: str, context: CallContext) -> EnrolmentReceipt:
        task = await self._await_task(ticket, context)
        if task is None:
            return EnrolmentReceipt(reference=reference, bureau_reference=ticket, status="pending")
        return self._outcome(reference, task)

    async def _await_task(
        self, ticket: str, context: CallContext, *, kind: str = _ENROLMENT, operation: str | None = None
    ) -> TaskState | None:
        """Poll ``task/result`` until the bureau decides, for at most ``poll_timeout``
        (and never past the caller's deadline); ``None`` if undecided by then.

        The submission has landed (the bureau gave a ticket), so a poll that fails for
        any upstream reason ends the wait undecided too: reporting the submission as
        failed would be wrong, and the ``find_*`` lookups tell the rest."""
        budget = self.poll_timeout
        remaining = context.remaining()
        if remaining is not None:
            budget = min(budget, remaining)
        give_up_at = self._clock() + budget
        while (left := give_up_at - self._clock()) > 0:
            await self._sleep(min(self.poll_interval, left))
            try:
                task = await self._task_result(context=context, ticket=ticket, kind=kind, operation=operation)
            except UpstreamError:
                break
            if task is None:  # the bureau forgot the ticket it gave: ask again later by bizNo
                break
            if task.state != "PROCESSING":
                return task
        return None

    async def find_enrolment(self, reference: str, *, context: CallContext) -> EnrolmentReceipt | None:
        """The bureau's state of enrolment ``reference``: accepted, pending (its ticket),
        ``None`` if it never received it; a refused one raises its ``BusinessRejection``."""
        task = await self._task_result(context=context, reference=reference)
        return None if task is None else self._outcome(reference, task)

    # -- asynchronous submissions other than enrolment ------------------------------------

    async def _submit_task(
        self, path: str, payload: dict[str, Any], reference: str, *, kind: str, operation: str, lookup: str,
        context: CallContext,
    ) -> TaskState:  # fmt: skip
        """Submit at most once, then poll: the decided task, or a ``PROCESSING`` one with
        its ticket when the bureau has not decided within the poll budget."""
        sent = await send_at_most_once(
            lambda: self._call(path, payload, self._ticket_for(reference), operation=operation, context=context,
                               idempotent=False),  # fmt: skip
            lambda: self._task_result(context=context, reference=reference, kind=kind, operation=lookup),
            reference=f"{_KIND_NAMES[kind]} {reference}", upstream=self.name, rounds=self.max_submit_rounds,
        )
        if isinstance(sent, str):  # a ticket: the bureau took it and decides later
            ticket = sent
        elif sent.state != "PROCESSING":  # an earlier, lost submission was found decided
            return sent
        else:
            ticket = sent.ticket
        decided = await self._await_task(ticket, context, kind=kind, operation=lookup)
        return decided or TaskState(ticket, reference, "PROCESSING")

    # -- declarations -------------------------------------------------------------------

    @staticmethod
    def _declaration_payload(submission: DeclarationSubmission) -> dict[str, Any]:
        lines = []
        for line in submission.lines:
            raw: dict[str, Any] = {
                "hh": line.line,
                "idNo": line.person.id_number,
                "name": line.person.name,
                "bdlx": _CHANGE_CODE[line.change],
                "xzlx": [_TYPE_TO_CODE[t] for t in line.insurance_types],
            }
            if line.change != "leave":
                if line.contribution_base is None:
                    raise ValueError(f"declaration line {line.line} ({line.change}) needs a contribution base")
                raw["jfjs"] = format_money(line.contribution_base)
            if line.change == "new" and line.hire_date is not None:
                raw["rzrq"] = line.hire_date.strftime("%Y%m%d")
            if line.change == "leave" and line.leave_date is not None:
                raw["lzrq"] = line.leave_date.strftime("%Y%m%d")
            lines.append(raw)
        return {
            "bizNo": submission.reference,
            "dwbh": submission.employer.uscc,
            "dwmc": submission.employer.name,
            "sbny": to_wire_period(submission.period),
            "mx": lines,
        }

    @staticmethod
    def _declaration_receipt(reference: str, task: TaskState) -> DeclarationReceipt:
        if task.state == "PROCESSING":
            return DeclarationReceipt(reference=reference, bureau_reference=task.ticket, status="pending")
        return DeclarationReceipt(
            reference=reference,
            bureau_reference=task.accept_no or task.ticket,
            status=_DECLARATION_STATUS[task.state],
            lines=task.lines,
            decided_on=task.accept_date,
        )

    async def submit_declaration(self, submission: DeclarationSubmission, *, context: CallContext) -> DeclarationReceipt:
        """Declare; ``pending`` (with the ticket) if the bureau has not decided within the
        poll budget. A malformed declaration is refused whole (``BusinessRejection`` 40005);
        refused lines are in the receipt."""
        payload = self._declaration_payload(submission)
        task = await self._submit_task(
            DECLARATION_PATH, payload, submission.reference, kind=_DECLARATION,
            operation="declaration.submit", lookup="declaration.lookup", context=context,
        )  # fmt: skip
        return self._declaration_receipt(submission.reference, task)

    async def find_declaration(self, reference: str, *, context: CallContext) -> DeclarationReceipt | None:
        task = await self._task_result(
            context=context, reference=reference, kind=_DECLARATION, operation="declaration.lookup"
        )
        return None if task is None else self._declaration_receipt(reference, task)

    # -- transfers in -------------------------------------------------------------------

    @staticmethod
    def _transfer_in_payload(submission: TransferInSubmission) -> dict[str, Any]:
        return {
            "bizNo": submission.reference,
            "idNo": submission.person.id_number,
            "name": submission.person.name,
            "zcdq": submission.from_region,
            "zcbh": submission.source_reference,
            "xz": [
                {
                    "xzlx": _TYPE_TO_CODE[item.insurance_type],
                    "jfys": item.paid_months,
                    "cbrq": item.start_date.strftime("%Y%m%d") if item.start_date is not None else "",
                    "zyjj": format_money(item.fund_amount),
                }
                for item in submission.carried
            ],
        }

    @staticmethod
    def _transfer_in_receipt(reference: str, task: TaskState) -> TransferInReceipt:
        if task.state == "SUCCESS":
            return TransferInReceipt(reference=reference, bureau_reference=task.accept_no, status="accepted")
        if task.state == "FAILED":
            return TransferInReceipt(
                reference=reference, bureau_reference=task.ticket, status="rejected",
                reason_code=task.fail_code, reason_message=task.fail_msg or None,
            )  # fmt: skip
        return TransferInReceipt(reference=reference, bureau_reference=task.ticket, status="pending")

    async def submit_transfer_in(self, submission: TransferInSubmission, *, context: CallContext) -> TransferInReceipt:
        """Register the carried insurance; ``pending`` if undecided within the poll budget,
        ``rejected`` with the bureau's reason (e.g. ``61005`` another name on file)."""
        payload = self._transfer_in_payload(submission)
        task = await self._submit_task(
            TRANSFER_IN_PATH, payload, submission.reference, kind=_TRANSFER_IN,
            operation="transfer_in.submit", lookup="transfer_in.lookup", context=context,
        )  # fmt: skip
        return self._transfer_in_receipt(submission.reference, task)

    async def find_transfer_in(self, reference: str, *, context: CallContext) -> TransferInReceipt | None:
        task = await self._task_result(
            context=context, reference=reference, kind=_TRANSFER_IN, operation="transfer_in.lookup"
        )
        return None if task is None else self._transfer_in_receipt(reference, task)

    # -- transfers out ------------------------------------------------------------------

    def _progress_for(self, reference: str, *, idempotent: bool) -> Callable[[httpx.Response], TransferOutProgress]:
        def progress(response: httpx.Response) -> TransferOutProgress:
            payload = self._payload(response, idempotent=idempotent)
            biz_no = _str(payload, "bizNo")
            if biz_no and biz_no != reference:
                raise UpstreamProtocolError(f"the bureau answered about transfer {biz_no}, not {reference}")
            stage = _TRANSFER_STAGE.get(_str(payload, "zyjd"))
            if stage is None:
                raise ValueError(f"unknown transfer stage zyjd={_str(payload, 'zyjd')!r}")
            carried = []
            for raw in _list_of_objects(payload, "xz") if payload.get("xz") is not None else []:
                insurance_type = _CODE_TO_TYPE.get(_str(raw, "xzlx"))
                if insurance_type is None:  # a local scheme the canonical model does not cover
                    continue
                fund = parse_money(_str(raw, "zyjj"))
                if fund is None:
                    raise ValueError("a carried insurance without zyjj")
                carried.append(
                    CarriedInsurance(
                        insurance_type=insurance_type,
                        paid_months=_count(raw.get("jfys"), "jfys"),
                        start_date=parse_date(_str(raw, "cbrq")),
                        fund_amount=fund,
                    )
                )
            reason_code = _str(payload, "bhdm")
            if stage == "rejected" and not reason_code:
                raise ValueError("a rejected transfer without bhdm")
            return TransferOutProgress(
                reference=reference,
                bureau_reference=_str(payload, "zybh") or None,
                stage=stage,
                carried=tuple(carried),
                reason_code=reason_code or None,
                reason_message=_str(payload, "bhyy") or None,
                updated_on=parse_date(_str(payload, "gxrq")),
            )

        return progress

    async def submit_transfer_out(
        self, submission: TransferOutSubmission, *, context: CallContext
    ) -> TransferOutProgress:
        """Apply for the transfer at this (source) bureau; a name that does not match is
        refused at once (``BusinessRejection`` 61005), anything else is decided later."""
        reference = submission.reference
        payload = {
            "bizNo": reference,
            "idNo": submission.person.id_number,
            "name": submission.person.name,
            "zrdq": submission.to_region,
            "xzlx": [_TYPE_TO_CODE[t] for t in submission.insurance_types],
        }
        return await send_at_most_once(
            lambda: self._call(
                TRANSFER_OUT_PATH, payload, self._progress_for(reference, idempotent=False),
                operation="transfer_out.submit", context=context, idempotent=False,
            ),  # fmt: skip
            lambda: self.transfer_out_status(reference, context=context),
            reference=f"transfer out {reference}", upstream=self.name, rounds=self.max_submit_rounds,
        )

    async def transfer_out_status(self, reference: str, *, context: CallContext) -> TransferOutProgress | None:
        """The transfer's stage, dates, reason (if rejected) and what it carried (once the
        funds moved); ``None`` if the bureau never received it."""
        try:
            return await self._call(
                TRANSFER_QUERY_PATH, {"bizNo": reference}, self._progress_for(reference, idempotent=True),
                operation="transfer_out.status", context=context, idempotent=True,
            )  # fmt: skip
        except UpstreamNotFound:
            return None

    # -- payment notices ----------------------------------------------------------------

    @staticmethod
    def _payment_payload(notice: ContributionPaymentNotice) -> dict[str, Any]:
        return {
            "bizNo": notice.reference,
            "dwbh": notice.employer.uscc,
            "dwmc": notice.employer.name,
            "sbny": to_wire_period(notice.period),
            "sblsh": notice.declaration_reference,
            "jkje": format_money(notice.amount),
            "jkrq": notice.paid_on.strftime("%Y%m%d"),
            "yhlsh": notice.payment_reference,
        }

    @staticmethod
    def _payment_receipt(reference: str, task: TaskState) -> ContributionPaymentReceipt:
        if task.state == "SUCCESS":
            return ContributionPaymentReceipt(
                reference=reference, bureau_reference=task.accept_no, status="confirmed",
                confirmed_amount=task.confirmed_amount, confirmed_on=task.accept_date,
            )  # fmt: skip
        if task.state == "FAILED":
            return ContributionPaymentReceipt(
                reference=reference, bureau_reference=task.ticket, status="rejected",
                reason_code=task.fail_code, reason_message=task.fail_msg or None,
            )  # fmt: skip
        return ContributionPaymentReceipt(reference=reference, bureau_reference=task.ticket, status="pending")

    async def notify_contribution_payment(
        self, notice: ContributionPaymentNotice, *, context: CallContext
    ) -> ContributionPaymentReceipt:
        """Send the notice and poll for the bureau's check: ``confirmed``, ``rejected`` with
        its ``6300x`` reason, or ``pending`` (with the ticket) if undecided within the poll
        budget. A malformed notice is refused whole (``BusinessRejection`` 40005)."""
        task = await self._submit_task(
            PAYMENT_PATH, self._payment_payload(notice), notice.reference, kind=_PAYMENT,
            operation="contribution_payment.notify", lookup="contribution_payment.lookup", context=context,
        )  # fmt: skip
        return self._payment_receipt(notice.reference, task)

    async def find_contribution_payment(
        self, reference: str, *, context: CallContext
    ) -> ContributionPaymentReceipt | None:
        task = await self._task_result(
            context=context, reference=reference, kind=_PAYMENT, operation="contribution_payment.lookup"
        )
        return None if task is None else self._payment_receipt(reference, task)
