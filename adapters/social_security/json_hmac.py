"""Adapter for the ``json-hmac`` bureau family (docs/dialects/json-hmac.md).

JSON over POST, HMAC-SHA256 signed headers, ``{"code", "msg", "data"}`` envelopes,
money in integer fen, dates as ``yyyyMMdd``, paged queries.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Generator
from decimal import Decimal
from typing import Any, ClassVar

import httpx
import msgspec

from ..base import HttpAdapter
from ..context import CallContext
from ..errors import (
    BusinessRejection,
    UpstreamAuthenticationError,
    UpstreamNotFound,
    UpstreamProtocolError,
)
from ..exactly_once import send_at_most_once
from ..http import RetryPolicy, UpstreamPolicy
from ..models import (
    Employer,
    EnrolmentReceipt,
    EnrolmentSubmission,
    InsuranceType,
    ParticipationRecord,
    ParticipationStatus,
    Person,
    money,
)
from ..protocols import AdapterConfig, AdapterKind, Capability

__all__ = ["JsonHmacAuth", "JsonHmacBureauAdapter"]

QUERY_PATH = "/api/v1/insured/query"
SUBMIT_PATH = "/api/v1/enrolment/submit"
ENROLMENT_QUERY_PATH = "/api/v1/enrolment/query"

_TYPE_TO_CODE: dict[InsuranceType, str] = {
    "pension": "110",
    "unemployment": "210",
    "medical": "310",
    "work_injury": "410",
    "maternity": "510",
}
_CODE_TO_TYPE: dict[str, InsuranceType] = {code: kind for kind, code in _TYPE_TO_CODE.items()}
_STATUS: dict[str, ParticipationStatus] = {"1": "active", "2": "suspended", "3": "terminated"}

_AUTH_CODES = frozenset({"1001", "1002", "1003", "1004"})
# Which canonical field a business refusal is about, where the code says so.
_REJECTION_FIELDS = {"2003": "id_number", "2005": "name", "2001": "insurance_types"}


class JsonHmacAuth(httpx.Auth):
    """Signs every attempt afresh: timestamp, nonce and HMAC over the body hash."""

    requires_request_body = True

    def __init__(self, app_id: str, app_secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self._app_id = app_id
        self._secret = app_secret.encode()
        self._clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        timestamp = str(int(self._clock()))
        nonce = secrets.token_hex(16)
        string_to_sign = "\n".join(
            (
                request.method.upper(),
                request.url.raw_path.decode("ascii"),
                timestamp,
                nonce,
                hashlib.sha256(request.content).hexdigest(),
            )
        )
        request.headers["X-App-Id"] = self._app_id
        request.headers["X-Timestamp"] = timestamp
        request.headers["X-Nonce"] = nonce
        request.headers["X-Signature"] = hmac.new(self._secret, string_to_sign.encode(), hashlib.sha256).hexdigest()
        yield request


def fen_to_yuan(fen: int) -> Decimal:
    return money(Decimal(fen) / 100)


def yuan_to_fen(amount: Decimal) -> int:
    fen = money(amount) * 100
    return int(fen.to_integral_value())


def parse_date(value: str | None) -> dt.date | None:
    """``yyyyMMdd`` -> a date; ``""`` -> ``None``."""
    if not value:
        return None
    # strptime alone is lenient ("2023111" would pass, as 2023-11-01 or 2023-01-11?).
    if len(value) != 8 or not value.isdigit():
        raise ValueError(f"bad date {value!r}")
    return dt.datetime.strptime(value, "%Y%m%d").date()


def format_period(value: str | None) -> str | None:
    """``yyyyMM`` -> ``YYYY-MM``."""
    if not value:
        return None
    if len(value) != 6 or not value.isdigit():
        raise ValueError(f"bad period {value!r}")
    return f"{value[:4]}-{value[4:]}"


class JsonHmacBureauAdapter(HttpAdapter):
    kind: ClassVar[AdapterKind] = "social_security"
    dialect: ClassVar[str] = "json-hmac"
    version: ClassVar[str] = "1.0"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.PARTICIPATION_SEARCH, Capability.ENROLMENT, Capability.ENROLMENT_LOOKUP}
    )
    # These bureaus rate-limit with Retry-After and are slow at month end: a few
    # patient retries, but a search must still answer within seconds.
    policy: ClassVar[UpstreamPolicy] = UpstreamPolicy(
        retry=RetryPolicy(max_attempts=4, initial_backoff=0.2, max_backoff=2.0, deadline=15.0, max_retry_after=10.0)
    )
    one_region: ClassVar[bool] = True  # One json-hmac deployment is one city's bureau; its records carry no region.
    required_credentials: ClassVar[tuple[str, ...]] = ("app_id", "app_secret")

    #: How many times a submission whose outcome was ambiguous is checked and re-sent.
    max_submit_rounds: ClassVar[int] = 3

    def __init__(self, config: AdapterConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.page_size = int(config.options.get("page_size", 50))

    def build_auth(self, config: AdapterConfig) -> httpx.Auth:
        return JsonHmacAuth(config.credentials["app_id"], config.credentials["app_secret"])

    # -- envelope -----------------------------------------------------------------

    def _unwrap(self, response: httpx.Response) -> Any:
        try:
            envelope = msgspec.json.decode(response.content)
            code = envelope["code"]
            message = str(envelope.get("msg", ""))
        except (msgspec.DecodeError, KeyError, TypeError) as exc:
            raise UpstreamProtocolError(
                f"no envelope in the answer (HTTP {response.status_code})", response=response
            ) from exc
        if code == "0000":
            return envelope.get("data")
        details = {"upstream_code": code, "upstream_message": message, "response": response}
        if code in _AUTH_CODES:
            raise UpstreamAuthenticationError(f"bureau refused our signature ({code})", **details)
        if code == "2404":
            raise UpstreamNotFound("bureau has no such enrolment", **details)
        raise BusinessRejection(
            f"bureau refused the request ({code})", field=_REJECTION_FIELDS.get(code), **details
        )

    # -- participation ------------------------------------------------------------

    def _record(self, raw: dict[str, Any]) -> ParticipationRecord | None:
        insurance_type = _CODE_TO_TYPE.get(raw["insuranceType"])
        if insurance_type is None:  # a local scheme the canonical model does not cover
            return None
        unit_code = raw.get("unitCode") or ""
        base = raw.get("baseAmount")
        return ParticipationRecord(
            region=self.config.regions[0],
            insurance_type=insurance_type,
            status=_STATUS[raw["status"]],
            employer=Employer(uscc=unit_code, name=raw.get("unitName") or "") if unit_code else None,
            start_date=parse_date(raw.get("startDate")),
            end_date=parse_date(raw.get("endDate")),
            paid_months=int(raw.get("paidMonths") or 0),
            contribution_base=fen_to_yuan(int(base)) if base is not None else None,
            last_paid_period=format_period(raw.get("lastPaidPeriod")),
        )

    async def search_participation(self, person: Person, *, context: CallContext) -> list[ParticipationRecord]:
        records: list[ParticipationRecord] = []
        page = 1
        seen = 0
        while True:
            body = msgspec.json.encode(
                {"idCardNo": person.id_number, "name": person.name, "pageNo": page, "pageSize": self.page_size}
            )
            batch, count, total = await self.client.call(
                "POST", QUERY_PATH, self._page, operation="participation.search",
                context=context, idempotent=True, content=body, headers={"Content-Type": "application/json"},
            )
            seen += count
            records.extend(batch)
            if not count or seen >= total:
                return records
            page += 1

    def _page(self, response: httpx.Response) -> tuple[list[ParticipationRecord], int, int]:
        """One page of a participation query: its mapped records, how many raw records
        it held, and the bureau's ``total``. Parsed inside the call, so that a
        malformed record is an ``UpstreamProtocolError`` like any unreadable answer."""
        data = self._unwrap(response)
        if not isinstance(data, dict):
            raise UpstreamProtocolError("participation answer without a data object", response=response)
        batch = data.get("records") or []
        records = [r for r in map(self._record, batch) if r is not None]
        return records, len(batch), int(data.get("total", 0))

    # -- enrolment ----------------------------------------------------------------

    def _receipt(self, response: httpx.Response) -> EnrolmentReceipt:
        data = self._unwrap(response)
        return EnrolmentReceipt(
            reference=data["bizNo"],
            bureau_reference=data["acceptNo"],
            status="accepted" if data["status"] == "ACCEPTED" else "pending",
            accepted_on=parse_date(data.get("acceptedAt")),
        )

    async def submit_enrolment(self, submission: EnrolmentSubmission, *, context: CallContext) -> EnrolmentReceipt:
        body = msgspec.json.encode(
            {
                "bizNo": submission.reference,
                "idCardNo": submission.person.id_number,
                "name": submission.person.name,
                "unitCode": submission.employer.uscc,
                "unitName": submission.employer.name,
                "startDate": submission.hire_date.strftime("%Y%m%d"),
                "insuranceTypes": [_TYPE_TO_CODE[t] for t in submission.insurance_types],
                "baseAmount": yuan_to_fen(submission.contribution_base),
            }
        )
        return await send_at_most_once(
            lambda: self.client.call(
                "POST", SUBMIT_PATH, self._receipt, operation="enrolment.submit",
                context=context, idempotent=False, content=body, headers={"Content-Type": "application/json"},
            ),
            lambda: self.find_enrolment(submission.reference, context=context),
            reference=f"enrolment {submission.reference}", upstream=self.name, rounds=self.max_submit_rounds,
        )

    async def find_enrolment(self, reference: str, *, context: CallContext) -> EnrolmentReceipt | None:
        body = msgspec.json.encode({"bizNo": reference})
        try:
            return await self.client.call(
                "POST", ENROLMENT_QUERY_PATH, self._receipt, operation="enrolment.lookup",
                context=context, idempotent=True, content=body, headers={"Content-Type": "application/json"},
            )
        except UpstreamNotFound:
            return None
