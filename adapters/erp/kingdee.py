"""Adapter for the ``kingdee`` ERP (docs/dialects/kingdee.md).

A Kingdee-K/3-Cloud-style WebAPI: a session from ``ValidateUser`` carried as the
``kdservice-sessionid`` cookie; bills saved, submitted and audited through
``DynamicFormService`` calls with ``Result.ResponseStatus`` envelopes; bills and
budget balances read with ``ExecuteBillQuery``. Amounts are JSON numbers, read as
decimals here and never through binary floating point.

The ERP does not recognise a repeated ``Save``, so every write is keyed by the
canonical reference (``FExternalNo``): before saving, the adapter looks the bill up
and continues the workflow from the status it finds (saved → Submit, submitted →
Audit for vouchers), and after an ambiguous step it asks again before repeating it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

import httpx
import msgspec

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
    ApprovalReceipt,
    ApprovalSubmission,
    Attachment,
    BudgetPosition,
    VoucherReceipt,
    VoucherSubmission,
    money,
)
from ..protocols import AdapterConfig, AdapterKind, Capability

__all__ = ["BillNotOperable", "KingdeeErpAdapter", "SessionLost", "service_path"]

T = TypeVar("T")

_PREFIX = "/k3cloud/Kingdee.BOS.WebApi.ServicesStub."
LOGIN_PATH = _PREFIX + "AuthService.ValidateUser.common.kdsvc"
SESSION_COOKIE = "kdservice-sessionid"


def service_path(service: str) -> str:
    """The path of a ``DynamicFormService`` service (``Save``, ``Submit``, …)."""
    return f"{_PREFIX}DynamicFormService.{service}.common.kdsvc"


EXPENSE_REQUEST = "ER_ExpenseRequest"
VOUCHER = "GL_VOUCHER"
BUDGET_BALANCE = "BM_BudgetBalance"
CNY = "PRE001"

#: Canonical approval kinds -> the ERP's expense items; any other kind is sent as the
#: item's code itself (an operator's own expense item). ``options.expense_items``
#: adds to or overrides these.
DEFAULT_EXPENSE_ITEMS = {"social_security_contribution": "FY001", "reimbursement": "FY002", "other": "FY999"}

# MsgCode values (see the protocol's table).
_SESSION_LOST = 1
_NO_RIGHT = 2
_ERP_FAILURE = 4
_NO_SUCH_BILL = 10
_NOT_OPERABLE = 12
_CALL_LIMIT = 14

_APPROVAL_FIELDS = {
    "FExternalNo": "reference",
    "FExpenseItem": "kind",
    "FCostCenter": "cost_center",
    "FPeriod": "period",
    "FAmount": "amount",
    "FDescription": "description",
    "FAttachments": "attachments",
}
_VOUCHER_FIELDS = {
    "FExternalNo": "reference",
    "FDate": "date",
    "FExplanation": "description",
    "FAttachments": "attachments",
    "FEntity": "lines",
}
_VOUCHER_ROW_FIELDS = {
    "FACCOUNTID": "account",
    "FCOSTCENTER": "cost_center",
    "FDEBIT": "debit",
    "FCREDIT": "credit",
    "FEXPLANATION": "description",
}
_ROW_FIELD = re.compile(r"FEntity\[(\d+)\]\.(\w+)")
_ERP_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(T\d{2}:\d{2}:\d{2}(\.\d+)?)?")
_BILL_KEYS = ("FID", "FBillNo", "FDocumentStatus", "FApproveDate", "FRejectCode", "FRejectReason")
_APPROVAL_KEYS = (*_BILL_KEYS, "FCostCenter.FNumber", "FPeriod")
_BUDGET_KEYS = ("FCostCenter.FNumber", "FPeriod", "FBudgetAmount", "FOccupiedAmount", "FCurrency.FNumber")
_STATUSES = frozenset("ABCD")

_encoder = msgspec.json.Encoder(decimal_format="number")


class SessionLost(UpstreamAuthenticationError):
    """``MsgCode`` 1: the session is missing, unknown or expired. Nothing was applied,
    so after logging in again the adapter repeats the call once (a write too)."""


class BillNotOperable(BusinessRejection):
    """``MsgCode`` 12: the bill's status does not allow the operation (it has moved on,
    or someone else moved it). The workflow reads the bill again and carries on."""


@dataclass(frozen=True, slots=True)
class _Bill:
    """What the ERP holds for one reference, read with ``ExecuteBillQuery``."""

    id: int
    number: str
    status: str  # A saved, B submitted, C audited, D rejected
    approved_on: dt.date | None = None
    reject_code: str | None = None
    reject_reason: str | None = None
    cost_center: str | None = None
    period: str | None = None


def _loads(response: httpx.Response) -> Any:
    return json.loads(response.content.decode("utf-8"), parse_float=Decimal)


def _amount(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise ValueError(f"bad amount {value!r}")
    return money(value)


def _date(value: object) -> dt.date | None:
    if value is None or value == "":
        return None
    match = _ERP_DATE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"bad date {value!r}")
    return dt.date.fromisoformat(match.group(1))


def _optional_text(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}")
    return value


def _quoted(value: str) -> str:
    """A FilterString text literal (a quote is written twice)."""
    return "'" + value.replace("'", "''") + "'"


def _attachments(attachments: Sequence[Attachment]) -> list[dict[str, Any]]:
    return [{"FKind": a.kind, "FSha256": a.sha256, "FName": a.name} for a in attachments]


class KingdeeErpAdapter(HttpAdapter):
    """Approvals as expense requests (Save → Submit; the approvers audit or reject),
    vouchers as GL vouchers (Save → Submit → Audit = posted), budgets from the budget
    balance form.

    Options: ``lcid`` (2052), ``account_book`` (``001``), ``voucher_group``
    (``PRE001``), ``expense_items`` (canonical kind -> expense item code, merged over
    ``DEFAULT_EXPENSE_ITEMS``).
    """

    kind: ClassVar[AdapterKind] = "erp"
    dialect: ClassVar[str] = "kingdee"
    version: ClassVar[str] = "1.0"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.APPROVAL, Capability.VOUCHER, Capability.BUDGET_QUERY}
    )
    # 429 and 503 come from the infrastructure before the ERP and apply nothing, so
    # they are retried even after a write; another 5xx after a write is ambiguous and
    # is resolved by looking the bill up. ERPs are slow at month end: patient retries.
    policy: ClassVar[UpstreamPolicy] = UpstreamPolicy(
        retry=RetryPolicy(
            max_attempts=4,
            initial_backoff=0.25,
            max_backoff=3.0,
            deadline=20.0,
            max_retry_after=10.0,
            not_applied_statuses=frozenset({429, 503}),
        )
    )
    required_credentials: ClassVar[tuple[str, ...]] = ("acct_id", "username", "password")

    #: How many times one workflow step whose outcome was ambiguous is checked and re-sent.
    max_submit_rounds: ClassVar[int] = 3
    #: Save, Submit and Audit, plus re-reads when someone else moved the bill.
    max_workflow_steps: ClassVar[int] = 6

    def __init__(self, config: AdapterConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        options = config.options
        try:
            self.lcid = int(options.get("lcid", 2052))
            self.account_book = str(options.get("account_book", "001"))
            self.voucher_group = str(options.get("voucher_group", "PRE001"))
            items = options.get("expense_items", {})
            if not isinstance(items, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in items.items()
            ):
                raise ValueError("expense_items must map approval kinds to expense item codes")
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"adapter {config.name!r} (kingdee): {exc}") from None
        self.expense_items = {**DEFAULT_EXPENSE_ITEMS, **items}
        self._session: str | None = None
        self._login_lock = asyncio.Lock()

    # -- session ------------------------------------------------------------------------

    async def _session_id(self, context: CallContext) -> str:
        """The current session, logging in if there is none; concurrent callers share one login."""
        if self._session is not None:
            return self._session
        async with self._login_lock:
            if self._session is None:
                body = _encoder.encode(
                    {
                        "acctID": self.config.credentials["acct_id"],
                        "username": self.config.credentials["username"],
                        "password": self.config.credentials["password"],
                        "lcid": self.lcid,
                    }
                )
                self._session = await self.client.call(
                    "POST", LOGIN_PATH, self._login_answer, operation="session.login",
                    context=context, idempotent=True,  # a login changes nothing the ERP keeps
                    content=body, headers={"Content-Type": "application/json"},
                )
            return self._session

    @staticmethod
    def _login_answer(response: httpx.Response) -> str:
        if response.status_code != 200:
            raise UpstreamProtocolError(f"login answered HTTP {response.status_code}", response=response)
        answer = _loads(response)
        if not isinstance(answer, dict):
            raise ValueError("login answer is not an object")
        if answer.get("LoginResultType") != 1:
            message = _optional_text(answer.get("Message")) or ""
            raise UpstreamAuthenticationError(
                "ERP refused the account set, user or password",
                upstream_code=f"LoginResultType={answer.get('LoginResultType')}",
                upstream_message=message,
            )
        session = answer.get("KDSVCSessionId") or response.cookies.get(SESSION_COOKIE)
        if not isinstance(session, str) or not session:
            raise ValueError("login answer without a session id")
        return session

    def _forget(self, session: str) -> None:
        """Drop ``session`` unless another caller has already replaced it."""
        if self._session == session:
            self._session = None

    async def _call(
        self,
        service: str,
        payload: Mapping[str, Any],
        interpret: Callable[[httpx.Response], T],
        *,
        operation: str,
        context: CallContext,
        idempotent: bool,
    ) -> T:
        """One service call in a session; on "session lost" log in again once and repeat it."""
        body = _encoder.encode(payload)
        for attempt in (1, 2):
            session = await self._session_id(context)
            try:
                return await self.client.call(
                    "POST", service_path(service), interpret, operation=operation, context=context,
                    idempotent=idempotent, content=body,
                    headers={"Content-Type": "application/json", "Cookie": f"{SESSION_COOKIE}={session}"},
                )
            except SessionLost as exc:
                self._forget(session)
                if attempt == 2:
                    raise UpstreamAuthenticationError(
                        "ERP lost a fresh session too",
                        upstream=exc.upstream, request=exc.request, response=exc.response,
                        upstream_code=exc.upstream_code, upstream_message=exc.upstream_message,
                    ) from exc
        raise AssertionError("unreachable")

    # -- envelopes ----------------------------------------------------------------------

    def _refusal(
        self, response: httpx.Response, status: Mapping[str, Any], *, idempotent: bool, fields: Mapping[str, str]
    ) -> UpstreamError:
        """The taxonomy's error for a failure ``ResponseStatus``."""
        code = status.get("MsgCode")
        errors = status.get("Errors") or []
        if not isinstance(errors, list) or not all(isinstance(e, dict) for e in errors):
            raise ValueError("ResponseStatus.Errors is not a list of objects")
        message = "; ".join(str(e.get("Message") or "") for e in errors) or "refused"
        first_field = next((e.get("FieldName") for e in errors if e.get("FieldName")), None)
        details: dict[str, Any] = {"upstream_code": str(code), "upstream_message": message, "response": response}
        if code == _SESSION_LOST:
            return SessionLost("ERP lost the session (MsgCode 1)", **details)
        if code == _NO_RIGHT:
            return UpstreamAuthenticationError("the ERP user has no right to this operation (MsgCode 2)", **details)
        if code == _ERP_FAILURE:
            if idempotent:
                return UpstreamServerError("ERP failed while processing (MsgCode 4)", **details)
            return AmbiguousOutcome("ERP failed while processing a write (MsgCode 4)", **details)
        if code == _CALL_LIMIT:
            return UpstreamRateLimited(
                "ERP call limit reached (MsgCode 14)",
                retry_after=retry_after_seconds(response.headers.get("Retry-After")), **details,
            )
        if code == _NO_SUCH_BILL:
            return UpstreamNotFound("ERP has no such bill (MsgCode 10)", **details)
        if code == _NOT_OPERABLE:
            return BillNotOperable("the bill's status does not allow this (MsgCode 12)", **details)
        # 8, 9 and 11: the ERP refused what was sent; nothing was applied.
        return BusinessRejection(
            f"ERP refused the request (MsgCode {code})", field=_canonical_field(first_field, fields), **details
        )

    def _operation_answer(
        self, *, idempotent: bool, fields: Mapping[str, str] | None = None
    ) -> Callable[[httpx.Response], dict[str, Any]]:
        """Interpret a Save/Submit/Audit answer: the ``Result`` object of a success."""

        def interpret(response: httpx.Response) -> dict[str, Any]:
            answer = _loads(response)
            result = answer.get("Result") if isinstance(answer, dict) else None
            status = result.get("ResponseStatus") if isinstance(result, dict) else None
            if not isinstance(status, dict):
                raise UpstreamProtocolError(
                    f"no Result.ResponseStatus in the answer (HTTP {response.status_code})", response=response
                )
            if status.get("IsSuccess") is True and response.status_code == 200:
                return result  # type: ignore[return-value]  # checked: a dict
            raise self._refusal(response, status, idempotent=idempotent, fields=fields or {})

        return interpret

    def _rows_answer(self, width: int) -> Callable[[httpx.Response], list[list[Any]]]:
        """Interpret an ExecuteBillQuery answer: rows of ``width`` values, or the nested failure."""

        def interpret(response: httpx.Response) -> list[list[Any]]:
            answer = _loads(response)
            if not isinstance(answer, list) or not all(isinstance(row, list) for row in answer):
                raise UpstreamProtocolError(
                    f"ExecuteBillQuery answer is not a list of rows (HTTP {response.status_code})", response=response
                )
            if answer and answer[0] and isinstance(answer[0][0], dict):
                result = answer[0][0].get("Result")
                status = result.get("ResponseStatus") if isinstance(result, dict) else None
                if not isinstance(status, dict):
                    raise ValueError("a failed query without Result.ResponseStatus")
                raise self._refusal(response, status, idempotent=True, fields={})
            if response.status_code != 200 or any(len(row) != width for row in answer):
                raise ValueError(f"rows of another width than the {width} field keys asked for")
            return answer

        return interpret

    async def _query(
        self, form: str, keys: Sequence[str], filter_string: str, *, operation: str, context: CallContext
    ) -> list[list[Any]]:
        payload = {
            "data": {
                "FormId": form,
                "FieldKeys": ",".join(keys),
                "FilterString": filter_string,
                "OrderString": "FID ASC" if form != BUDGET_BALANCE else "",
                "TopRowCount": 0,
                "StartRow": 0,
                "Limit": 2000,
            }
        }
        return await self._call(
            "ExecuteBillQuery", payload, self._rows_answer(len(keys)), operation=operation, context=context, idempotent=True
        )

    # -- the workflow ---------------------------------------------------------------------

    async def _find_bill(self, form: str, reference: str, *, context: CallContext) -> _Bill | None:
        """The ERP's bill carrying ``reference``, or None if it holds none. Should there be
        more than one, the first saved is the one the workflow continues."""
        keys = _APPROVAL_KEYS if form == EXPENSE_REQUEST else _BILL_KEYS
        rows = await self._query(
            form, keys, f"FExternalNo = {_quoted(reference)}", operation=f"{_noun(form)}.lookup", context=context
        )
        if not rows:
            return None
        row = dict(zip(keys, rows[0], strict=True))
        try:
            bill_id, number, status = row["FID"], row["FBillNo"], row["FDocumentStatus"]
            if isinstance(bill_id, bool) or not isinstance(bill_id, int) or not isinstance(number, str) or not number:
                raise ValueError(f"a {form} row without FID or FBillNo")
            if status not in _STATUSES:
                raise ValueError(f"unknown FDocumentStatus {status!r}")
            return _Bill(
                id=bill_id,
                number=number,
                status=status,
                approved_on=_date(row["FApproveDate"]),
                reject_code=_optional_text(row["FRejectCode"]),
                reject_reason=_optional_text(row["FRejectReason"]),
                cost_center=_optional_text(row.get("FCostCenter.FNumber")),
                period=_optional_text(row.get("FPeriod")),
            )
        except ValueError as exc:
            raise UpstreamProtocolError(f"unreadable {form} row: {exc}", upstream=self.name) from exc

    async def _must_find(self, form: str, reference: str, *, context: CallContext) -> _Bill:
        bill = await self._find_bill(form, reference, context=context)
        if bill is None:
            raise UpstreamProtocolError(f"the ERP no longer finds the {form} bill of {reference}", upstream=self.name)
        return bill

    async def _save(
        self, form: str, reference: str, model: Mapping[str, Any], fields: Mapping[str, str], *, context: CallContext
    ) -> _Bill:
        """Save once: after an ambiguous Save, look the reference up before saving again."""
        noun = _noun(form)

        async def save() -> _Bill:
            result = await self._call(
                "Save", {"formid": form, "data": {"Model": model}},
                self._operation_answer(idempotent=False, fields=fields),
                operation=f"{noun}.save", context=context, idempotent=False,
            )
            bill_id, number = result.get("Id"), result.get("Number")
            if isinstance(bill_id, bool) or not isinstance(bill_id, int) or not isinstance(number, str) or not number:
                raise UpstreamProtocolError("a successful Save without Id and Number", upstream=self.name)
            return _Bill(id=bill_id, number=number, status="A")

        return await send_at_most_once(
            save,
            lambda: self._find_bill(form, reference, context=context),
            reference=f"{noun} {reference}", upstream=self.name, rounds=self.max_submit_rounds,
        )

    async def _step(self, form: str, reference: str, bill: _Bill, service: str, *, context: CallContext) -> _Bill:
        """Submit (A → B) or Audit (B → C) once; an ambiguous step is asked about first."""
        noun = _noun(form)
        after = "B" if service == "Submit" else "C"

        async def send() -> _Bill:
            try:
                await self._call(
                    service, {"formid": form, "data": {"Numbers": [bill.number]}},
                    self._operation_answer(idempotent=False),
                    operation=f"{noun}.{service.lower()}", context=context, idempotent=False,
                )
            except BillNotOperable:
                # Already moved on (by our own earlier, unanswered call or by someone in
                # the ERP): carry on from where it is now, unless it has not moved at all.
                found = await self._must_find(form, reference, context=context)
                if found.status == bill.status:
                    raise
                return found
            return replace(bill, status=after)

        async def landed() -> _Bill | None:
            found = await self._must_find(form, reference, context=context)
            return None if found.status == bill.status else found

        return await send_at_most_once(
            send, landed, reference=f"{service} of {noun} {reference}", upstream=self.name, rounds=self.max_submit_rounds
        )

    async def _run(
        self, form: str, reference: str, model: Mapping[str, Any], fields: Mapping[str, str], *,
        audit: bool, context: CallContext,
    ) -> _Bill:
        """Bring the bill of ``reference`` as far as this adapter takes it: saved and
        submitted (and audited, if ``audit``), whatever state an earlier attempt left."""
        bill = await self._find_bill(form, reference, context=context)
        moved = False
        for _ in range(self.max_workflow_steps):
            if bill is None:
                bill = await self._save(form, reference, model, fields, context=context)
            elif bill.status == "A":
                bill = await self._step(form, reference, bill, "Submit", context=context)
            elif bill.status == "B" and audit:
                bill = await self._step(form, reference, bill, "Audit", context=context)
            else:
                # B awaiting the approvers, C done or D rejected: read it as it stands
                # (dates and reasons) unless the last answer was that read already.
                return await self._must_find(form, reference, context=context) if moved else bill
            moved = True
        raise UpstreamProtocolError(
            f"the {form} bill of {reference} did not settle in {self.max_workflow_steps} steps", upstream=self.name
        )

    # -- budgets --------------------------------------------------------------------------

    async def budget(self, cost_center: str, period: str, *, context: CallContext) -> BudgetPosition:
        rows = await self._query(
            BUDGET_BALANCE, _BUDGET_KEYS,
            f"FCostCenter.FNumber = {_quoted(cost_center)} AND FPeriod = {_quoted(period)}",
            operation="budget.query", context=context,
        )
        if not rows:
            raise UpstreamNotFound(f"the ERP holds no budget for {cost_center} in {period}", upstream=self.name)
        row = dict(zip(_BUDGET_KEYS, rows[0], strict=True))
        currency = row["FCurrency.FNumber"]
        try:
            budget, committed = _amount(row["FBudgetAmount"]), _amount(row["FOccupiedAmount"])
        except ValueError as exc:
            raise UpstreamProtocolError(f"unreadable budget row: {exc}", upstream=self.name) from exc
        return BudgetPosition(
            cost_center=cost_center,
            period=period,
            budget=budget,
            committed=committed,
            currency="CNY" if currency in (None, CNY) else str(currency),
        )

    async def _budget_or_none(self, cost_center: str | None, period: str | None, context: CallContext) -> BudgetPosition | None:
        if not cost_center or not period:
            return None
        try:
            return await self.budget(cost_center, period, context=context)
        except UpstreamNotFound:
            return None

    # -- approvals ------------------------------------------------------------------------

    def _approval_model(self, submission: ApprovalSubmission) -> dict[str, Any]:
        model: dict[str, Any] = {
            "FID": 0,
            "FExternalNo": submission.reference,
            "FExpenseItem": {"FNumber": self.expense_items.get(submission.kind, submission.kind)},
            "FCostCenter": {"FNumber": submission.cost_center},
            "FPeriod": submission.period,
            "FAmount": money(submission.amount),
            "FCurrency": {"FNumber": CNY},
        }
        if submission.description:
            model["FDescription"] = submission.description
        if submission.attachments:
            model["FAttachments"] = _attachments(submission.attachments)
        return model

    async def _approval_receipt(self, reference: str, bill: _Bill, context: CallContext) -> ApprovalReceipt:
        status = {"C": "approved", "D": "rejected"}.get(bill.status, "pending")
        return ApprovalReceipt(
            reference=reference,
            document_number=bill.number,
            status=status,  # type: ignore[arg-type]  # one of the three literals
            budget=await self._budget_or_none(bill.cost_center, bill.period, context),
            decided_on=bill.approved_on if status != "pending" else None,
            reason_code=bill.reject_code if status == "rejected" else None,
            reason_message=bill.reject_reason if status == "rejected" else None,
        )

    async def submit_approval(self, submission: ApprovalSubmission, *, context: CallContext) -> ApprovalReceipt:
        """Save and submit the expense request (once per reference); the approvers decide."""
        bill = await self._run(
            EXPENSE_REQUEST, submission.reference, self._approval_model(submission), _APPROVAL_FIELDS,
            audit=False, context=context,
        )
        return await self._approval_receipt(submission.reference, bill, context)

    async def find_approval(self, reference: str, *, context: CallContext) -> ApprovalReceipt | None:
        bill = await self._find_bill(EXPENSE_REQUEST, reference, context=context)
        if bill is None:
            return None
        return await self._approval_receipt(reference, bill, context)

    # -- vouchers -------------------------------------------------------------------------

    def _voucher_model(self, submission: VoucherSubmission) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        for line in submission.lines:
            row: dict[str, Any] = {
                "FACCOUNTID": {"FNumber": line.account},
                "FDEBIT": money(line.debit),
                "FCREDIT": money(line.credit),
            }
            if line.description:
                row["FEXPLANATION"] = line.description
            if line.cost_center:
                row["FCOSTCENTER"] = {"FNumber": line.cost_center}
            rows.append(row)
        model: dict[str, Any] = {
            "FID": 0,
            "FExternalNo": submission.reference,
            "FAccountBookID": {"FNumber": self.account_book},
            "FVOUCHERGROUPID": {"FNumber": self.voucher_group},
            "FDate": submission.date.isoformat(),
            "FEntity": rows,
        }
        if submission.description:
            model["FExplanation"] = submission.description
        if submission.attachments:
            model["FAttachments"] = _attachments(submission.attachments)
        return model

    @staticmethod
    def _voucher_receipt(reference: str, bill: _Bill) -> VoucherReceipt:
        if bill.status == "C":
            return VoucherReceipt(reference=reference, document_number=bill.number, status="posted", posted_on=bill.approved_on)
        if bill.status == "D":
            return VoucherReceipt(
                reference=reference, document_number=bill.number, status="rejected",
                reason_code=bill.reject_code, reason_message=bill.reject_reason,
            )
        return VoucherReceipt(reference=reference, document_number=bill.number, status="pending")

    async def post_voucher(self, submission: VoucherSubmission, *, context: CallContext) -> VoucherReceipt:
        """Save, submit and audit the voucher (once per reference); audited is posted."""
        bill = await self._run(
            VOUCHER, submission.reference, self._voucher_model(submission), _VOUCHER_FIELDS, audit=True, context=context
        )
        return self._voucher_receipt(submission.reference, bill)

    async def find_voucher(self, reference: str, *, context: CallContext) -> VoucherReceipt | None:
        bill = await self._find_bill(VOUCHER, reference, context=context)
        return None if bill is None else self._voucher_receipt(reference, bill)


def _noun(form: str) -> str:
    return "approval" if form == EXPENSE_REQUEST else "voucher"


def _canonical_field(field_name: object, fields: Mapping[str, str]) -> str | None:
    """The canonical field a refusal's ``FieldName`` is about (voucher rows counted from 1
    by the ERP, from 0 in ``lines``)."""
    if not isinstance(field_name, str):
        return None
    if field_name in fields:
        return fields[field_name]
    row = _ROW_FIELD.fullmatch(field_name)
    if row is not None and "FEntity" in fields:
        index = int(row.group(1)) - 1
        inner = _VOUCHER_ROW_FIELDS.get(row.group(2))
        return f"lines[{index}]" + (f".{inner}" if inner else "")
    return None
