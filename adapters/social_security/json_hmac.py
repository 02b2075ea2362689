"""Adapter for the ``json-hmac`` bureau family (docs/dialects/json-hmac.md).

JSON over POST, HMAC-SHA256 signed headers, ``{"code", "msg", "data"}`` envelopes,
money in integer fen, dates as ``yyyyMMdd``, paged queries. Declarations,
transfers in and payment notices are decided at once by these bureaus; transfers
out move through stages that are asked for by reference.
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
    CarriedInsurance,
    ContributionMonth,
    ContributionPaymentNotice,
    ContributionPaymentReceipt,
    DeclarationChange,
    DeclarationLine,
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
    money,
)
from ..protocols import AdapterConfig, AdapterKind, Capability
from ..values import to_yyyymm

__all__ = ["JsonHmacAuth", "JsonHmacBureauAdapter"]

QUERY_PATH = "/api/v1/insured/query"
SUBMIT_PATH = "/api/v1/enrolment/submit"
ENROLMENT_QUERY_PATH = "/api/v1/enrolment/query"
DECLARATION_PATH = "/api/v1/declaration/submit"
DECLARATION_QUERY_PATH = "/api/v1/declaration/query"
TRANSFER_OUT_PATH = "/api/v1/transfer/out/submit"
TRANSFER_OUT_QUERY_PATH = "/api/v1/transfer/out/query"
TRANSFER_IN_PATH = "/api/v1/transfer/in/submit"
TRANSFER_IN_QUERY_PATH = "/api/v1/transfer/in/query"
CONTRIBUTION_PATH = "/api/v1/contribution/query"
PAYMENT_NOTIFY_PATH = "/api/v1/contribution/payment/notify"
PAYMENT_QUERY_PATH = "/api/v1/contribution/payment/query"
_JSON = {"Content-Type": "application/json"}

_TYPE_TO_CODE: dict[InsuranceType, str] = {
    "pension": "110",
    "unemployment": "210",
    "medical": "310",
    "work_injury": "410",
    "maternity": "510",
}
_CODE_TO_TYPE: dict[str, InsuranceType] = {code: kind for kind, code in _TYPE_TO_CODE.items()}
_STATUS: dict[str, ParticipationStatus] = {"1": "active", "2": "suspended", "3": "terminated", "4": "transferred"}
_CHANGE: dict[DeclarationChange, str] = {"new": "01", "leave": "02", "change": "03", "continue": "04"}
_DECLARATION_STATUS = {"ACCEPTED": "accepted", "PARTIAL": "partially_accepted", "REJECTED": "rejected"}
_LINE_STATUS = {"ACCEPTED": "accepted", "REJECTED": "rejected"}
_STAGE = {
    "SUBMITTED": "submitted",
    "SOURCE_REVIEWED": "source_reviewed",
    "FUNDS_TRANSFERRED": "funds_transferred",
    "REJECTED": "rejected",
}
_TRANSFER_IN_STATUS = {"ACCEPTED": "accepted", "REJECTED": "rejected"}
_PAY_STATUS: dict[str, PaymentStatus] = {"1": "paid", "2": "late", "3": "unpaid"}
_PAYMENT_STATUS = {"CONFIRMED": "confirmed", "REJECTED": "rejected"}

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
            raise UpstreamNotFound("bureau has no such submission", **details)
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

    # -- shared plumbing of submissions ----------------------------------------------------

    async def _lookup(
        self, path: str, query: dict[str, Any], parse: Callable[[httpx.Response], Any], *,
        operation: str, context: CallContext,
    ) -> Any:
        """A read by reference; the bureau's ``2404`` means it never landed (``None``)."""
        try:
            return await self.client.call(
                "POST", path, parse, operation=operation, context=context, idempotent=True,
                content=msgspec.json.encode(query), headers=_JSON,
            )
        except UpstreamNotFound:
            return None

    def _data_object(self, response: httpx.Response, what: str) -> dict[str, Any]:
        data = self._unwrap(response)
        if not isinstance(data, dict):
            raise UpstreamProtocolError(f"{what} answer without a data object", response=response)
        return data

    def _parsed(self, response: httpx.Response, what: str, build: Callable[[dict[str, Any]], Any]) -> Any:
        """``build(data)``, with anything unreadable in the data as an ``UpstreamProtocolError``."""
        data = self._data_object(response, what)
        try:
            return build(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise UpstreamProtocolError(f"unreadable {what} answer", response=response) from exc

    # -- declarations ----------------------------------------------------------------------

    @staticmethod
    def _declaration_detail(line: DeclarationLine) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "lineNo": line.line,
            "idCardNo": line.person.id_number,
            "name": line.person.name,
            "changeType": _CHANGE[line.change],
            "insuranceTypes": [_TYPE_TO_CODE[t] for t in line.insurance_types],
        }
        if line.change != "leave" and line.contribution_base is not None:
            detail["baseAmount"] = yuan_to_fen(line.contribution_base)
        if line.change == "new" and line.hire_date is not None:
            detail["hireDate"] = line.hire_date.strftime("%Y%m%d")
        if line.change == "leave" and line.leave_date is not None:
            detail["leaveDate"] = line.leave_date.strftime("%Y%m%d")
        return detail

    @staticmethod
    def _declaration_receipt(data: dict[str, Any]) -> DeclarationReceipt:
        # An answer in a state this document does not name is taken as still undecided.
        status = _DECLARATION_STATUS.get(data["status"], "pending")
        lines = tuple(
            DeclarationLineResult(
                line=int(detail["lineNo"]),
                status=_LINE_STATUS[detail["status"]],  # type: ignore[arg-type]
                upstream_code=None if detail["status"] == "ACCEPTED" else str(detail["code"]),
                upstream_message=None if detail["status"] == "ACCEPTED" else str(detail.get("msg", "")),
            )
            for detail in data.get("details") or []
        )
        return DeclarationReceipt(
            reference=data["bizNo"],
            bureau_reference=data.get("declareNo") or None,
            status=status,  # type: ignore[arg-type]
            lines=lines,
            decided_on=parse_date(data.get("declaredAt")) if status != "pending" else None,
        )

    def _declaration(self, response: httpx.Response) -> DeclarationReceipt:
        return self._parsed(response, "declaration", self._declaration_receipt)

    async def submit_declaration(
        self, submission: DeclarationSubmission, *, context: CallContext
    ) -> DeclarationReceipt:
        body = msgspec.json.encode(
            {
                "bizNo": submission.reference,
                "unitCode": submission.employer.uscc,
                "unitName": submission.employer.name,
                "period": to_yyyymm(submission.period),
                "details": [self._declaration_detail(line) for line in submission.lines],
            }
        )
        return await send_at_most_once(
            lambda: self.client.call(
                "POST", DECLARATION_PATH, self._declaration, operation="declaration.submit",
                context=context, idempotent=False, content=body, headers=_JSON,
            ),
            lambda: self.find_declaration(submission.reference, context=context),
            reference=f"declaration {submission.reference}", upstream=self.name, rounds=self.max_submit_rounds,
        )

    async def find_declaration(self, reference: str, *, context: CallContext) -> DeclarationReceipt | None:
        return await self._lookup(
            DECLARATION_QUERY_PATH, {"bizNo": reference}, self._declaration,
            operation="declaration.lookup", context=context,
        )

    # -- transfers out ---------------------------------------------------------------------

    @staticmethod
    def _carried(raw: dict[str, Any]) -> CarriedInsurance | None:
        insurance_type = _CODE_TO_TYPE.get(raw["insuranceType"])
        if insurance_type is None:  # a local scheme the canonical model does not cover
            return None
        return CarriedInsurance(
            insurance_type=insurance_type,
            paid_months=int(raw["paidMonths"]),
            start_date=parse_date(raw.get("startDate")),
            fund_amount=fen_to_yuan(int(raw["fundAmount"])),
        )

    def _progress_of(self, data: dict[str, Any]) -> TransferOutProgress:
        stage = _STAGE[data["stage"]]
        carried = tuple(c for c in map(self._carried, data.get("carried") or []) if c is not None)
        return TransferOutProgress(
            reference=data["bizNo"],
            bureau_reference=data.get("transferNo") or None,
            stage=stage,  # type: ignore[arg-type]
            carried=carried,
            reason_code=data.get("reasonCode") or None,
            reason_message=data.get("reasonMsg") or None,
            updated_on=parse_date(data.get("updatedAt")),
        )

    def _progress(self, response: httpx.Response) -> TransferOutProgress:
        return self._parsed(response, "transfer-out", self._progress_of)

    async def submit_transfer_out(
        self, submission: TransferOutSubmission, *, context: CallContext
    ) -> TransferOutProgress:
        body = msgspec.json.encode(
            {
                "bizNo": submission.reference,
                "idCardNo": submission.person.id_number,
                "name": submission.person.name,
                "targetRegion": submission.to_region,
                "insuranceTypes": [_TYPE_TO_CODE[t] for t in submission.insurance_types],
            }
        )
        return await send_at_most_once(
            lambda: self.client.call(
                "POST", TRANSFER_OUT_PATH, self._progress, operation="transfer_out.submit",
                context=context, idempotent=False, content=body, headers=_JSON,
            ),
            lambda: self.transfer_out_status(submission.reference, context=context),
            reference=f"transfer out {submission.reference}", upstream=self.name, rounds=self.max_submit_rounds,
        )

    async def transfer_out_status(self, reference: str, *, context: CallContext) -> TransferOutProgress | None:
        return await self._lookup(
            TRANSFER_OUT_QUERY_PATH, {"bizNo": reference}, self._progress,
            operation="transfer_out.status", context=context,
        )

    # -- transfers in ----------------------------------------------------------------------

    @staticmethod
    def _transfer_in_receipt(data: dict[str, Any]) -> TransferInReceipt:
        return TransferInReceipt(
            reference=data["bizNo"],
            bureau_reference=data.get("transferInNo") or None,
            status=_TRANSFER_IN_STATUS.get(data["status"], "pending"),  # type: ignore[arg-type]
            reason_code=data.get("reasonCode") or None,
            reason_message=data.get("reasonMsg") or None,
        )

    def _transfer_in(self, response: httpx.Response) -> TransferInReceipt:
        return self._parsed(response, "transfer-in", self._transfer_in_receipt)

    async def submit_transfer_in(self, submission: TransferInSubmission, *, context: CallContext) -> TransferInReceipt:
        body = msgspec.json.encode(
            {
                "bizNo": submission.reference,
                "idCardNo": submission.person.id_number,
                "name": submission.person.name,
                "sourceRegion": submission.from_region,
                "sourceTransferNo": submission.source_reference,
                "carried": [
                    {
                        "insuranceType": _TYPE_TO_CODE[item.insurance_type],
                        "paidMonths": item.paid_months,
                        "startDate": item.start_date.strftime("%Y%m%d") if item.start_date else "",
                        "fundAmount": yuan_to_fen(item.fund_amount),
                    }
                    for item in submission.carried
                ],
            }
        )
        return await send_at_most_once(
            lambda: self.client.call(
                "POST", TRANSFER_IN_PATH, self._transfer_in, operation="transfer_in.submit",
                context=context, idempotent=False, content=body, headers=_JSON,
            ),
            lambda: self.find_transfer_in(submission.reference, context=context),
            reference=f"transfer in {submission.reference}", upstream=self.name, rounds=self.max_submit_rounds,
        )

    async def find_transfer_in(self, reference: str, *, context: CallContext) -> TransferInReceipt | None:
        return await self._lookup(
            TRANSFER_IN_QUERY_PATH, {"bizNo": reference}, self._transfer_in,
            operation="transfer_in.lookup", context=context,
        )

    # -- contribution history --------------------------------------------------------------

    def _month(self, raw: dict[str, Any]) -> ContributionMonth | None:
        insurance_type = _CODE_TO_TYPE.get(raw["insuranceType"])
        if insurance_type is None:
            return None
        period = format_period(raw["period"])
        if period is None:
            raise ValueError("a month without a period")
        unit_amount, personal_amount = raw.get("unitAmount"), raw.get("personalAmount")
        return ContributionMonth(
            region=self.config.regions[0],
            period=period,
            insurance_type=insurance_type,
            status=_PAY_STATUS[raw["payStatus"]],
            employer_amount=fen_to_yuan(int(unit_amount)) if unit_amount is not None else None,
            personal_amount=fen_to_yuan(int(personal_amount)) if personal_amount is not None else None,
            paid_on=parse_date(raw.get("paidDate")),
        )

    def _months(self, response: httpx.Response) -> tuple[list[ContributionMonth], int, int]:
        """One page of months: the mapped months, how many raw months it held, the ``total``."""

        def build(data: dict[str, Any]) -> tuple[list[ContributionMonth], int, int]:
            batch = data.get("months") or []
            months = [m for m in map(self._month, batch) if m is not None]
            return months, len(batch), int(data.get("total", 0))

        return self._parsed(response, "contribution", build)

    async def contribution_history(
        self, person: Person, from_period: str, to_period: str, *, context: CallContext
    ) -> list[ContributionMonth]:
        start, end = to_yyyymm(from_period), to_yyyymm(to_period)
        if start > end:
            raise ValueError(f"from_period {from_period} is after to_period {to_period}")
        query: dict[str, Any] = {"idCardNo": person.id_number, "startPeriod": start, "endPeriod": end}
        if person.name:  # an unknown name is left out: the ID number alone identifies
            query["name"] = person.name
        months: list[ContributionMonth] = []
        page, seen = 1, 0
        while True:
            batch, count, total = await self.client.call(
                "POST", CONTRIBUTION_PATH, self._months, operation="contribution.history",
                context=context, idempotent=True,
                content=msgspec.json.encode({**query, "pageNo": page, "pageSize": self.page_size}), headers=_JSON,
            )
            seen += count
            months.extend(batch)
            if not count or seen >= total:
                return months
            page += 1

    # -- payment confirmation --------------------------------------------------------------

    @staticmethod
    def _payment_receipt(data: dict[str, Any]) -> ContributionPaymentReceipt:
        status = _PAYMENT_STATUS.get(data["status"], "pending")
        confirmed = status == "confirmed"
        return ContributionPaymentReceipt(
            reference=data["bizNo"],
            bureau_reference=data.get("confirmNo") or None,
            status=status,  # type: ignore[arg-type]
            confirmed_amount=fen_to_yuan(int(data["confirmedAmount"])) if confirmed else None,
            reason_code=data.get("reasonCode") or None,
            reason_message=data.get("reasonMsg") or None,
            confirmed_on=parse_date(data.get("confirmedAt")) if confirmed else None,
        )

    def _payment(self, response: httpx.Response) -> ContributionPaymentReceipt:
        return self._parsed(response, "payment notice", self._payment_receipt)

    async def notify_contribution_payment(
        self, notice: ContributionPaymentNotice, *, context: CallContext
    ) -> ContributionPaymentReceipt:
        """Decided at once: ``confirmed``, or ``rejected`` with the bureau's ``25xx`` reason
        (the bureau stores a refused notice too, so a lookup finds it)."""
        body = msgspec.json.encode(
            {
                "bizNo": notice.reference,
                "unitCode": notice.employer.uscc,
                "unitName": notice.employer.name,
                "period": to_yyyymm(notice.period),
                "declareBizNo": notice.declaration_reference,
                "payAmount": yuan_to_fen(notice.amount),
                "paidDate": notice.paid_on.strftime("%Y%m%d"),
                "bankSerialNo": notice.payment_reference,
            }
        )
        return await send_at_most_once(
            lambda: self.client.call(
                "POST", PAYMENT_NOTIFY_PATH, self._payment, operation="contribution_payment.notify",
                context=context, idempotent=False, content=body, headers=_JSON,
            ),
            lambda: self.find_contribution_payment(notice.reference, context=context),
            reference=f"payment notice {notice.reference}", upstream=self.name, rounds=self.max_submit_rounds,
        )

    async def find_contribution_payment(
        self, reference: str, *, context: CallContext
    ) -> ContributionPaymentReceipt | None:
        return await self._lookup(
            PAYMENT_QUERY_PATH, {"bizNo": reference}, self._payment,
            operation="contribution_payment.lookup", context=context,
        )
