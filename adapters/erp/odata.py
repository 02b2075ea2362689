"""Adapter for SAP-style ERPs speaking the ``odata`` protocol (docs/dialects/odata.md).

OData v4 JSON under a service root, Basic authentication, a CSRF token (with the
session cookie it belongs to) on every write, reads by ``$filter``, decimals as
strings (``IEEE754Compatible=true``), OData error envelopes. Budgets are read as they
stand; approval requests are created and then decided by the ERP's approvers (polled
with ``find_approval``); journal entries are posted at once or refused.

Creates take effect at most once per canonical ``reference``: the ERP holds each
``Reference`` once (a repeat is ``409 DUPLICATE_REFERENCE``) and after an ambiguous
send the adapter asks ``$filter=Reference eq '…'`` before sending again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

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
    ApprovalReceipt,
    ApprovalSubmission,
    Attachment,
    BudgetPosition,
    VoucherLine,
    VoucherReceipt,
    VoucherSubmission,
    money,
)
from ..protocols import AdapterConfig, AdapterKind, Capability
from ..values import format_yuan, parse_yuan, to_yyyymm

__all__ = ["CsrfTokenRequired", "DEFAULT_SERVICE_PATH", "DuplicateReference", "ODataErpAdapter", "filter_literal"]

T = TypeVar("T")

DEFAULT_SERVICE_PATH = "/odata/v4/finance"
MEDIA_TYPE = "application/json;IEEE754Compatible=true"
_READ_HEADERS = {"Accept": MEDIA_TYPE}
# The ERP's limits on free texts; longer canonical texts are cut to fit (they are labels).
MAX_DESCRIPTION = 200
MAX_ITEM_TEXT = 50

_APPROVAL_STATUS = {"Pending": "pending", "Approved": "approved", "Rejected": "rejected"}
_VOUCHER_STATUS = {"Posted": "posted"}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

# Which canonical field an error's ``target`` is about.
_TARGET_FIELDS = {
    "Reference": "reference",
    "ExpenseType": "kind",
    "CostCenter": "cost_center",
    "Period": "period",
    "Amount": "amount",
    "Currency": "amount",
    "Description": "description",
    "PostingDate": "date",
    "Items": "lines",
    "Attachments": "attachments",
}
_ITEM_FIELDS = {"GLAccount": "account", "CostCenter": "cost_center", "ItemText": "description"}
_ITEM_TARGET = re.compile(r"Items\[(\d+)\](?:/(\w+))?")
_ATTACHMENT_TARGET = re.compile(r"Attachments\[(\d+)\](?:/\w+)?")


class CsrfTokenRequired(UpstreamAuthenticationError):
    """``403`` with ``X-CSRF-Token: Required``: the token is missing or expired.

    The ERP refused the write before applying it, so after fetching a new token the
    adapter sends it once more. Seen only by the audit log and, if a fresh token is
    refused too, as the cause of the final error."""


class DuplicateReference(BusinessRejection):
    """``409 DUPLICATE_REFERENCE``: the entity set already holds this reference, so the
    earlier create landed; the adapter answers with that entity."""


@dataclass(frozen=True, slots=True)
class _CsrfSession:
    token: str
    cookie: str  # the Cookie header of the session the token belongs to ("" if none)


def filter_literal(value: str) -> str:
    """An OData string literal: single quotes, an inner quote doubled."""
    return "'" + value.replace("'", "''") + "'"


def _filter(**conditions: str) -> str:
    """``$filter=A eq 'x' and B eq 'y'``, URL-encoded."""
    expression = " and ".join(f"{prop} eq {filter_literal(value)}" for prop, value in conditions.items())
    return "$filter=" + quote(expression, safe="")


def _field_of(target: object) -> str | None:
    if not isinstance(target, str):
        return None
    item = _ITEM_TARGET.fullmatch(target)
    if item is not None:
        line = f"lines[{int(item.group(1)) - 1}]"
        name = _ITEM_FIELDS.get(item.group(2) or "")
        return f"{line}.{name}" if name else line
    attachment = _ATTACHMENT_TARGET.fullmatch(target)
    if attachment is not None:
        return f"attachments[{attachment.group(1)}]"
    return _TARGET_FIELDS.get(target)


def _parse_date(value: object) -> dt.date | None:
    """An ``Edm.Date`` (``YYYY-MM-DD``); ``null`` -> ``None``."""
    if value is None:
        return None
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError(f"bad date {value!r}")
    return dt.date.fromisoformat(value)


def _amount(value: object) -> Any:
    parsed = parse_yuan(value)
    if parsed is None:
        raise ValueError("an amount is missing")
    return parsed


def _cookie_header(response: httpx.Response) -> str:
    """The session cookies to send back: those the request carried, updated with any
    the answer set."""
    cookies: dict[str, str] = {}
    for pair in (response.request.headers.get("Cookie") or "").split(";"):
        name, sep, value = pair.strip().partition("=")
        if sep and name:
            cookies[name] = value
    for header in response.headers.get_list("Set-Cookie"):
        name, sep, value = header.split(";", 1)[0].strip().partition("=")
        if sep and name:
            cookies[name] = value
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


class ODataErpAdapter(HttpAdapter):
    kind: ClassVar[AdapterKind] = "erp"
    dialect: ClassVar[str] = "odata"
    version: ClassVar[str] = "1.0"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.APPROVAL, Capability.VOUCHER, Capability.BUDGET_QUERY}
    )
    # 429 and 503 come with Retry-After and apply nothing, so they are retried even
    # after a create; a 500 after a create may have landed and is asked about by
    # Reference instead. A few patient retries within seconds: approvals are polled.
    policy: ClassVar[UpstreamPolicy] = UpstreamPolicy(
        retry=RetryPolicy(
            max_attempts=4,
            initial_backoff=0.2,
            max_backoff=2.0,
            deadline=15.0,
            max_retry_after=10.0,
            not_applied_statuses=frozenset({429, 503}),
        )
    )
    required_credentials: ClassVar[tuple[str, ...]] = ("username", "password")

    #: How many times a create whose outcome was ambiguous is checked and re-sent.
    max_submit_rounds: ClassVar[int] = 3

    def __init__(self, config: AdapterConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.service_path = "/" + str(config.options.get("service_path", DEFAULT_SERVICE_PATH)).strip("/")
        self._csrf: _CsrfSession | None = None
        # Outlives a refused token: the next fetch names the session it belongs to.
        self._session_cookie = ""
        self._csrf_lock = asyncio.Lock()

    def build_auth(self, config: AdapterConfig) -> httpx.Auth:
        return httpx.BasicAuth(config.credentials["username"], config.credentials["password"])

    # -- answers ------------------------------------------------------------------------

    def _refusal(self, response: httpx.Response) -> Exception:
        """The taxonomy's error for a non-2xx answer (429/5xx never get here)."""
        code: str | None = None
        message = ""
        target: object = None
        try:
            error = msgspec.json.decode(response.content)["error"]
            code, message, target = str(error["code"]), str(error.get("message", "")), error.get("target")
        except (msgspec.DecodeError, KeyError, TypeError):
            pass
        status = response.status_code
        details: dict[str, Any] = {"upstream_code": code, "upstream_message": message or None, "response": response}
        if status == 401:
            return UpstreamAuthenticationError("ERP refused our credentials", **details)
        if status == 403:
            if response.headers.get("X-CSRF-Token", "").strip().lower() == "required":
                return CsrfTokenRequired("ERP asks for a (new) CSRF token", **details)
            return UpstreamAuthenticationError(f"ERP refused the request ({code or status})", **details)
        if code is None:
            return UpstreamProtocolError(f"no OData error in the answer (HTTP {status})", response=response)
        if status == 409 and code == "DUPLICATE_REFERENCE":
            return DuplicateReference(
                "ERP already holds this reference", upstream_code=code, upstream_message=message, response=response
            )
        if status in (400, 409, 422) and code not in ("INVALID_FILTER", "UNSUPPORTED_QUERY_OPTION"):
            return BusinessRejection(
                f"ERP refused the request ({code})",
                upstream_code=code,
                upstream_message=message,
                field=_field_of(target),
                response=response,
            )
        # 404, 405, 415 or a query the ERP cannot read: this service is not what the
        # adapter was configured for (service_path) or does not follow its protocol.
        return UpstreamProtocolError(f"ERP answered {status} {code}: {message}", **details)

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        if not response.is_success:
            raise self._refusal(response)
        data = msgspec.json.decode(response.content)
        if not isinstance(data, dict):
            raise ValueError("the answer is not a JSON object")
        return data

    def _parsed(self, response: httpx.Response, build: Callable[[dict[str, Any]], T]) -> T:
        """``build`` of the answer; anything unreadable is an ``UpstreamProtocolError``."""
        data = self._json(response)
        try:
            return build(data)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise UpstreamProtocolError(f"unreadable answer from the ERP: {exc}", response=response) from exc

    @staticmethod
    def _values(data: dict[str, Any]) -> list[dict[str, Any]]:
        values = data["value"]
        if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
            raise ValueError("value is not a list of entities")
        return values

    @staticmethod
    def _budget_of(raw: dict[str, Any]) -> BudgetPosition:
        return BudgetPosition(
            cost_center=str(raw["CostCenter"]),
            period=str(raw["Period"]),
            budget=_amount(raw["Budget"]),
            committed=_amount(raw["Committed"]),
            currency=str(raw.get("Currency") or "CNY"),
        )

    def _approval_of(self, raw: dict[str, Any]) -> ApprovalReceipt:
        budget = raw.get("Budget")
        return ApprovalReceipt(
            reference=str(raw["Reference"]),
            document_number=raw.get("DocumentNumber") or None,
            status=_APPROVAL_STATUS[raw["Status"]],  # type: ignore[arg-type]
            budget=self._budget_of(budget) if isinstance(budget, dict) else None,
            decided_on=_parse_date(raw.get("DecisionDate")),
            reason_code=raw.get("RejectionCode") or None,
            reason_message=raw.get("RejectionReason") or None,
        )

    @staticmethod
    def _voucher_of(raw: dict[str, Any]) -> VoucherReceipt:
        status = _VOUCHER_STATUS[raw["Status"]]
        return VoucherReceipt(
            reference=str(raw["Reference"]),
            document_number=raw.get("DocumentNumber") or None,
            status=status,  # type: ignore[arg-type]
            posted_on=_parse_date(raw.get("CreationDate")) if status == "posted" else None,
        )

    @staticmethod
    def _one(entities: list[Any], what: str) -> Any:
        """The single match of a read by key or reference; ``None`` when there is none."""
        if len(entities) > 1:
            raise ValueError(f"the ERP holds {len(entities)} {what} for one key")
        return entities[0] if entities else None

    # -- reads ----------------------------------------------------------------------------

    async def _read(
        self, query: str, build: Callable[[dict[str, Any]], T], *, operation: str, context: CallContext
    ) -> T:
        return await self.client.call(
            "GET", f"{self.service_path}/{query}", lambda r: self._parsed(r, build),
            operation=operation, context=context, idempotent=True, headers=_READ_HEADERS,
        )

    async def budget(self, cost_center: str, period: str, *, context: CallContext) -> BudgetPosition:
        to_yyyymm(period)  # refuses anything but YYYY-MM before a call is made
        found = await self._read(
            f"Budgets?{_filter(CostCenter=cost_center, Period=period)}",
            lambda data: self._one([self._budget_of(v) for v in self._values(data)], "budgets"),
            operation="budget.read", context=context,
        )
        if found is None:
            raise UpstreamNotFound(f"the ERP has no budget for {cost_center} in {period}", upstream=self.name)
        return found

    async def find_approval(self, reference: str, *, context: CallContext) -> ApprovalReceipt | None:
        return await self._read(
            f"ApprovalRequests?{_filter(Reference=reference)}&$expand=Budget",
            lambda data: self._one([self._approval_of(v) for v in self._values(data)], "approval requests"),
            operation="approval.lookup", context=context,
        )

    async def find_voucher(self, reference: str, *, context: CallContext) -> VoucherReceipt | None:
        return await self._read(
            f"JournalEntries?{_filter(Reference=reference)}",
            lambda data: self._one([self._voucher_of(v) for v in self._values(data)], "journal entries"),
            operation="voucher.lookup", context=context,
        )

    # -- CSRF -----------------------------------------------------------------------------

    async def _csrf_session(self, context: CallContext) -> _CsrfSession:
        """The CSRF token and its session cookie, fetched if there is none.

        Concurrent writers wait for one fetch instead of each making their own."""
        session = self._csrf
        if session is not None:
            return session
        async with self._csrf_lock:
            if self._csrf is not None:
                return self._csrf
            headers = {**_READ_HEADERS, "X-CSRF-Token": "Fetch"}
            if self._session_cookie:
                headers["Cookie"] = self._session_cookie
            self._csrf = await self.client.call(
                "GET", f"{self.service_path}/", self._fetched,
                operation="csrf.fetch", context=context, idempotent=True, headers=headers,
            )
            self._session_cookie = self._csrf.cookie
            return self._csrf

    def _fetched(self, response: httpx.Response) -> _CsrfSession:
        if not response.is_success:
            raise self._refusal(response)
        token = response.headers.get("X-CSRF-Token", "").strip()
        if not token or token.lower() == "required":
            raise UpstreamProtocolError("the ERP answered a token fetch without a token", response=response)
        return _CsrfSession(token=token, cookie=_cookie_header(response))

    def _forget(self, session: _CsrfSession) -> None:
        """Drop ``session`` unless another caller has already replaced it."""
        if self._csrf is session:
            self._csrf = None

    async def _post(
        self, query: str, body: bytes, build: Callable[[dict[str, Any]], T], *, operation: str, context: CallContext
    ) -> T:
        """A create with a CSRF token; on ``CSRF_TOKEN_REQUIRED`` fetch a new token once
        and send it again (the refusal applied nothing, so the repeat is safe)."""

        async def send(session: _CsrfSession) -> T:
            headers = {"Content-Type": MEDIA_TYPE, "Accept": MEDIA_TYPE, "X-CSRF-Token": session.token}
            if session.cookie:
                headers["Cookie"] = session.cookie
            return await self.client.call(
                "POST", f"{self.service_path}/{query}", lambda r: self._parsed(r, build),
                operation=operation, context=context, idempotent=False, content=body, headers=headers,
            )

        session = await self._csrf_session(context)
        try:
            return await send(session)
        except CsrfTokenRequired:
            self._forget(session)
        session = await self._csrf_session(context)
        try:
            return await send(session)
        except CsrfTokenRequired as exc:
            self._forget(session)
            raise UpstreamAuthenticationError(
                "the ERP refused a freshly fetched CSRF token too",
                upstream=exc.upstream,
                request=exc.request,
                response=exc.response,
                upstream_code=exc.upstream_code,
                upstream_message=exc.upstream_message,
            ) from exc

    async def _create_once(
        self,
        create: Callable[[], Awaitable[T]],
        find: Callable[[], Awaitable[T | None]],
        *,
        what: str,
    ) -> T:
        """``create()`` at most once per reference: after an ambiguous send ask ``find()``;
        a ``DUPLICATE_REFERENCE`` means an earlier send landed, so answer what it made."""

        async def send() -> T:
            try:
                return await create()
            except DuplicateReference as exc:
                found = await find()
                if found is None:
                    raise UpstreamProtocolError(
                        f"the ERP calls {what} a duplicate but cannot find it", upstream=self.name,
                        response=exc.response,
                    ) from exc
                return found

        return await send_at_most_once(send, find, reference=what, upstream=self.name, rounds=self.max_submit_rounds)

    # -- writes ---------------------------------------------------------------------------

    @staticmethod
    def _attachments(attachments: tuple[Attachment, ...]) -> list[dict[str, Any]]:
        return [{"FileName": a.name, "Kind": a.kind, "Sha256": a.sha256.lower()} for a in attachments]

    async def submit_approval(self, submission: ApprovalSubmission, *, context: CallContext) -> ApprovalReceipt:
        to_yyyymm(submission.period)
        body = msgspec.json.encode(
            {
                "Reference": submission.reference,
                "ExpenseType": submission.kind,
                "CostCenter": submission.cost_center,
                "Period": submission.period,
                "Amount": format_yuan(submission.amount),
                "Currency": "CNY",
                "Description": submission.description[:MAX_DESCRIPTION],
                "Attachments": self._attachments(submission.attachments),
            }
        )
        return await self._create_once(
            lambda: self._post(
                "ApprovalRequests?$expand=Budget", body, self._approval_of,
                operation="approval.submit", context=context,
            ),
            lambda: self.find_approval(submission.reference, context=context),
            what=f"approval {submission.reference}",
        )

    def _item(self, number: int, line: VoucherLine) -> dict[str, Any]:
        debit, credit = money(line.debit), money(line.credit)
        if debit < 0 or credit < 0 or (debit != 0) == (credit != 0):
            raise BusinessRejection(
                f"voucher line {number} must have exactly one of debit and credit, and it positive",
                upstream_code="LINE_NOT_ONE_SIDED",
                upstream_message="the ERP books each item on one side with a positive amount",
                field=f"lines[{number - 1}]",
                upstream=self.name,
            )
        return {
            "LineNumber": number,
            "GLAccount": line.account,
            "CostCenter": line.cost_center or None,
            "DebitCreditCode": "S" if debit else "H",
            "Amount": format_yuan(debit or credit),
            "ItemText": line.description[:MAX_ITEM_TEXT],
        }

    async def post_voucher(self, submission: VoucherSubmission, *, context: CallContext) -> VoucherReceipt:
        body = msgspec.json.encode(
            {
                "Reference": submission.reference,
                "PostingDate": submission.date.isoformat(),
                "Currency": "CNY",
                "Description": submission.description[:MAX_DESCRIPTION],
                "Items": [self._item(number, line) for number, line in enumerate(submission.lines, start=1)],
                "Attachments": self._attachments(submission.attachments),
            }
        )
        return await self._create_once(
            lambda: self._post("JournalEntries", body, self._voucher_of, operation="voucher.post", context=context),
            lambda: self.find_voucher(submission.reference, context=context),
            what=f"voucher {submission.reference}",
        )
