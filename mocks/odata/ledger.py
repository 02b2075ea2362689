"""The ERP's books: cost centres, budgets, the chart of accounts, approval requests
and journal entries.

One lock guards everything, so each operation (a create with its duplicate check, a
read, a decision) is atomic under concurrent requests. Approval requests come up for
decision on the ERP's clock, lazily: every operation first applies the decisions that
have come due, in the order the requests were created.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from http import HTTPStatus
from importlib import resources
from typing import Any

from mocks.odata import wire
from mocks.odata.wire import AttachmentRef, ODataError, Problem, format_amount

PENDING = "Pending"
APPROVED = "Approved"
REJECTED = "Rejected"
POSTED = "Posted"

BUDGET_EXCEEDED = "BUDGET_EXCEEDED"
REJECTED_BY_APPROVER = "REJECTED_BY_APPROVER"

PROFIT_AND_LOSS = "P"
BALANCE_SHEET = "B"

APPROVAL_NUMBER_BASE = 1_000_000_000  # "10" followed by a sequence
JOURNAL_NUMBER_BASE = 5_100_000_000  # "51" followed by a sequence
MAX_ITEMS = 999

# The ERP keeps China Standard Time (no DST), which dates its decisions and postings.
_CHINA = timezone(timedelta(hours=8))


def china_date(at: float) -> str:
    return datetime.fromtimestamp(at, _CHINA).date().isoformat()


def utc_instant(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(value: Decimal | int | str) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class CostCenter:
    cost_center: str
    name: str
    company_code: str

    def to_json(self) -> dict[str, Any]:
        return {"CostCenter": self.cost_center, "Name": self.name, "CompanyCode": self.company_code}


@dataclass(frozen=True)
class GLAccount:
    gl_account: str
    name: str
    account_type: str

    def to_json(self) -> dict[str, Any]:
        return {"GLAccount": self.gl_account, "Name": self.name, "AccountType": self.account_type}


@dataclass(frozen=True)
class Budget:
    cost_center: str
    period: str
    budget: Decimal
    committed: Decimal

    @property
    def available(self) -> Decimal:
        return self.budget - self.committed

    def to_json(self) -> dict[str, Any]:
        return {
            "CostCenter": self.cost_center,
            "Period": self.period,
            "Currency": "CNY",
            "Budget": format_amount(self.budget),
            "Committed": format_amount(self.committed),
            "Available": format_amount(self.available),
        }


@dataclass(frozen=True)
class ApprovalRequest:
    """An approval request as the ERP holds it (a snapshot when handed to tests)."""

    document_number: str
    reference: str
    expense_type: str
    cost_center: str
    period: str
    amount: Decimal
    currency: str
    description: str
    attachments: tuple[AttachmentRef, ...]
    created_at: float
    status: str = PENDING
    decision_date: str | None = None
    rejection_code: str | None = None
    rejection_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "DocumentNumber": self.document_number,
            "Reference": self.reference,
            "ExpenseType": self.expense_type,
            "CostCenter": self.cost_center,
            "Period": self.period,
            "Amount": format_amount(self.amount),
            "Currency": self.currency,
            "Description": self.description,
            "Status": self.status,
            "CreatedAt": utc_instant(self.created_at),
            "DecisionDate": self.decision_date,
            "RejectionCode": self.rejection_code,
            "RejectionReason": self.rejection_reason,
            "Attachments": [attachment.to_json() for attachment in self.attachments],
        }


@dataclass(frozen=True)
class JournalItem:
    line_number: int
    gl_account: str
    cost_center: str | None
    debit_credit_code: str
    amount: Decimal
    item_text: str

    def to_json(self) -> dict[str, Any]:
        return {
            "LineNumber": self.line_number,
            "GLAccount": self.gl_account,
            "CostCenter": self.cost_center,
            "DebitCreditCode": self.debit_credit_code,
            "Amount": format_amount(self.amount),
            "ItemText": self.item_text,
        }


@dataclass(frozen=True)
class JournalEntry:
    document_number: str
    reference: str
    posting_date: str
    creation_date: str
    currency: str
    description: str
    items: tuple[JournalItem, ...]
    attachments: tuple[AttachmentRef, ...]
    status: str = POSTED

    @property
    def total_debit(self) -> Decimal:
        return sum((item.amount for item in self.items if item.debit_credit_code == "S"), Decimal("0.00"))

    def to_json(self, *, expand_items: bool = False) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "DocumentNumber": self.document_number,
            "FiscalYear": self.posting_date[:4],
            "Reference": self.reference,
            "PostingDate": self.posting_date,
            "CreationDate": self.creation_date,
            "Currency": self.currency,
            "Description": self.description,
            "Status": self.status,
            "TotalDebit": format_amount(self.total_debit),
            "Attachments": [attachment.to_json() for attachment in self.attachments],
        }
        if expand_items:
            entity["Items"] = [item.to_json() for item in self.items]
        return entity


@dataclass(frozen=True)
class _Seed:
    cost_centers: dict[str, CostCenter]
    gl_accounts: dict[str, GLAccount]
    budgets: dict[tuple[str, str], Budget]


def _months(first: str, last: str) -> list[str]:
    start = int(first[:4]) * 12 + int(first[5:]) - 1
    end = int(last[:4]) * 12 + int(last[5:]) - 1
    return [f"{index // 12:04d}-{index % 12 + 1:02d}" for index in range(start, end + 1)]


def _load_seed() -> _Seed:
    seed = json.loads(resources.files(__package__).joinpath("seeds", "sandbox.json").read_text(encoding="utf-8"))
    periods = _months(seed["budget_periods"]["first"], seed["budget_periods"]["last"])
    cost_centers = {
        raw["CostCenter"]: CostCenter(raw["CostCenter"], raw["Name"], raw["CompanyCode"]) for raw in seed["cost_centers"]
    }
    budgets = {
        (raw["CostCenter"], period): Budget(raw["CostCenter"], period, _money(raw["MonthlyBudget"]), _money(0))
        for raw in seed["cost_centers"]
        for period in periods
    }
    gl_accounts = {
        raw["GLAccount"]: GLAccount(raw["GLAccount"], raw["Name"], raw["AccountType"]) for raw in seed["gl_accounts"]
    }
    return _Seed(cost_centers, gl_accounts, budgets)


def _matches(entity: Mapping[str, Any], filters: Mapping[str, str]) -> bool:
    return all(entity.get(prop) == value for prop, value in filters.items())


class Ledger:
    """All mutable ERP state."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        decision_seconds: Callable[[], float],
        seed: bool = True,
    ) -> None:
        self._clock = clock
        self._decision_seconds = decision_seconds
        self._seed = seed
        self._lock = threading.Lock()
        self.auto_decide = True
        self.reset()

    def reset(self) -> None:
        """Back to the seeded (or empty) books; numbering restarts and decisions are automatic."""
        seed = _load_seed() if self._seed else _Seed({}, {}, {})
        with self._lock:
            self._cost_centers = dict(seed.cost_centers)
            self._gl_accounts = dict(seed.gl_accounts)
            self._budgets = dict(seed.budgets)
            self._approvals: dict[str, ApprovalRequest] = {}  # by reference, in creation order
            self._journal: dict[str, JournalEntry] = {}  # by reference, in posting order
            self.auto_decide = True

    # -- reads ------------------------------------------------------------------------

    def cost_centers(self, filters: Mapping[str, str]) -> list[dict[str, Any]]:
        with self._lock:
            entities = [cc.to_json() for cc in sorted(self._cost_centers.values(), key=lambda cc: cc.cost_center)]
        return [entity for entity in entities if _matches(entity, filters)]

    def gl_accounts(self, filters: Mapping[str, str]) -> list[dict[str, Any]]:
        with self._lock:
            entities = [account.to_json() for account in sorted(self._gl_accounts.values(), key=lambda a: a.gl_account)]
        return [entity for entity in entities if _matches(entity, filters)]

    def budgets(self, filters: Mapping[str, str]) -> list[dict[str, Any]]:
        with self._lock:
            self._advance()
            entities = [self._budgets[key].to_json() for key in sorted(self._budgets)]
        return [entity for entity in entities if _matches(entity, filters)]

    def approval_requests(self, filters: Mapping[str, str], *, expand_budget: bool) -> list[dict[str, Any]]:
        with self._lock:
            self._advance()
            return [
                self._approval_json(request, expand_budget=expand_budget)
                for request in self._approvals.values()
                if _matches(request.to_json(), filters)
            ]

    def journal_entries(self, filters: Mapping[str, str], *, expand_items: bool) -> list[dict[str, Any]]:
        with self._lock:
            entities = [entry.to_json(expand_items=expand_items) for entry in self._journal.values()]
        return [entity for entity in entities if _matches(entity, filters)]

    def _approval_json(self, request: ApprovalRequest, *, expand_budget: bool) -> dict[str, Any]:
        entity = request.to_json()
        if expand_budget:
            budget = self._budgets.get((request.cost_center, request.period))
            entity["Budget"] = budget.to_json() if budget is not None else None
        return entity

    # -- writes -----------------------------------------------------------------------

    def create_approval(self, obj: Mapping[str, Any], *, expand_budget: bool) -> dict[str, Any]:
        """Create a pending request from a POST body; refusals raise ``ODataError``."""
        reference = wire.reference(obj)
        with self._lock:
            self._advance()
            self._refuse_duplicate(reference, self._approvals)
            expense_type = wire.text(obj, "ExpenseType", max_length=40)
            cost_center = wire.text(obj, "CostCenter", max_length=40)
            period = wire.period(obj)
            amount = wire.amount(obj)
            currency = wire.currency(obj)
            description = wire.text(obj, "Description", max_length=200, required=False)
            attachments = wire.attachments(obj)
            if cost_center not in self._cost_centers:
                raise ODataError.of([Problem(wire.UNKNOWN_COST_CENTER, f"Cost center {cost_center} does not exist", "CostCenter")])
            if (cost_center, period) not in self._budgets:
                raise ODataError.of([Problem(wire.NO_BUDGET, f"Cost center {cost_center} has no budget for {period}", "Period")])
            request = ApprovalRequest(
                document_number=str(APPROVAL_NUMBER_BASE + len(self._approvals) + 1),
                reference=reference,
                expense_type=expense_type,
                cost_center=cost_center,
                period=period,
                amount=amount,
                currency=currency,
                description=description,
                attachments=attachments,
                created_at=self._clock(),
            )
            self._approvals[reference] = request
            return self._approval_json(request, expand_budget=expand_budget)

    def create_journal_entry(self, obj: Mapping[str, Any], *, expand_items: bool) -> dict[str, Any]:
        """Post a journal entry from a POST body, or refuse it whole with ``ODataError``."""
        reference = wire.reference(obj)
        with self._lock:
            self._refuse_duplicate(reference, self._journal)
            posting_date = wire.iso_date(obj, "PostingDate")
            currency = wire.currency(obj)
            description = wire.text(obj, "Description", max_length=200, required=False)
            attachments = wire.attachments(obj)
            items = _items(obj)
            problems = self._booking_problems(items)
            if problems:
                raise ODataError.of(problems)
            entry = JournalEntry(
                document_number=str(JOURNAL_NUMBER_BASE + len(self._journal) + 1),
                reference=reference,
                posting_date=posting_date.isoformat(),
                creation_date=china_date(self._clock()),
                currency=currency,
                description=description,
                items=items,
                attachments=attachments,
            )
            self._journal[reference] = entry
            return entry.to_json(expand_items=expand_items)

    def _booking_problems(self, items: tuple[JournalItem, ...]) -> list[Problem]:
        problems: list[Problem] = []
        for item in items:
            target = f"Items[{item.line_number}]"
            account = self._gl_accounts.get(item.gl_account)
            if account is None:
                problems.append(
                    Problem(wire.UNKNOWN_GL_ACCOUNT, f"G/L account {item.gl_account} does not exist", f"{target}/GLAccount")
                )
            if item.cost_center is not None and item.cost_center not in self._cost_centers:
                problems.append(
                    Problem(wire.UNKNOWN_COST_CENTER, f"Cost center {item.cost_center} does not exist", f"{target}/CostCenter")
                )
            if account is not None and account.account_type == PROFIT_AND_LOSS and item.cost_center is None:
                problems.append(
                    Problem(
                        wire.COST_CENTER_REQUIRED,
                        f"G/L account {item.gl_account} is a profit-and-loss account and needs a cost center",
                        f"{target}/CostCenter",
                    )
                )
        debits = sum((i.amount for i in items if i.debit_credit_code == "S"), Decimal("0.00"))
        credits = sum((i.amount for i in items if i.debit_credit_code == "H"), Decimal("0.00"))
        if debits != credits:
            problems.append(
                Problem(
                    wire.UNBALANCED, f"Debits {format_amount(debits)} do not equal credits {format_amount(credits)}", "Items"
                )
            )
        return problems

    @staticmethod
    def _refuse_duplicate(reference: str, existing: Mapping[str, object]) -> None:
        if reference in existing:
            raise ODataError(
                HTTPStatus.CONFLICT,
                wire.DUPLICATE_REFERENCE,
                f"An entity with Reference {reference} already exists",
                target="Reference",
            )

    # -- decisions --------------------------------------------------------------------

    def _advance(self) -> None:
        """Decide every pending request that has come due, oldest first (the lock is held)."""
        if not self.auto_decide:
            return
        now = self._clock()
        step = self._decision_seconds()
        for request in list(self._approvals.values()):
            due = request.created_at + step
            if request.status == PENDING and due <= now:
                budget = self._budgets.get((request.cost_center, request.period))
                if budget is not None and request.amount <= budget.available:
                    self._approve(request, at=due)
                else:
                    available = budget.available if budget is not None else Decimal("0.00")
                    self._reject(
                        request,
                        at=due,
                        code=BUDGET_EXCEEDED,
                        reason=(
                            f"Amount {format_amount(request.amount)} exceeds the available budget"
                            f" {format_amount(available)} of {request.cost_center} for {request.period}"
                        ),
                    )

    def _approve(self, request: ApprovalRequest, *, at: float) -> None:
        key = (request.cost_center, request.period)
        budget = self._budgets[key]
        self._budgets[key] = dataclasses.replace(budget, committed=budget.committed + request.amount)
        self._approvals[request.reference] = dataclasses.replace(request, status=APPROVED, decision_date=china_date(at))

    def _reject(self, request: ApprovalRequest, *, at: float, code: str, reason: str) -> None:
        self._approvals[request.reference] = dataclasses.replace(
            request, status=REJECTED, decision_date=china_date(at), rejection_code=code, rejection_reason=reason
        )

    def decide(self, reference: str, *, approve: bool, reason: str | None = None) -> ApprovalRequest:
        """Decide a pending request by hand (``KeyError`` if unknown, ``ValueError`` if decided)."""
        with self._lock:
            self._advance()
            request = self._approvals.get(reference)
            if request is None:
                raise KeyError(f"no approval request with Reference {reference}")
            if request.status != PENDING:
                raise ValueError(f"approval request {reference} is already {request.status}")
            if approve:
                if (request.cost_center, request.period) not in self._budgets:
                    raise ValueError(f"{request.cost_center} has no budget for {request.period} to commit against")
                self._approve(request, at=self._clock())
            else:
                self._reject(
                    request, at=self._clock(), code=REJECTED_BY_APPROVER, reason=reason or "Rejected by the approver"
                )
            return self._approvals[reference]

    def set_auto_decide(self, enabled: bool) -> None:
        with self._lock:
            self._advance()  # what came due while enabled is decided before the switch
            self.auto_decide = enabled

    def set_budget(
        self, cost_center: str, period: str, budget: Decimal, committed: Decimal | None = None
    ) -> Budget:
        with self._lock:
            self._advance()
            if cost_center not in self._cost_centers:
                raise KeyError(f"no cost center {cost_center}")
            wire.period({"Period": period})
            current = self._budgets.get((cost_center, period))
            if committed is None:
                committed = current.committed if current is not None else Decimal("0.00")
            entry = Budget(cost_center, period, _money(budget), _money(committed))
            self._budgets[(cost_center, period)] = entry
            return entry

    # -- inspection ---------------------------------------------------------------------

    def approvals(self) -> list[ApprovalRequest]:
        with self._lock:
            self._advance()
            return list(self._approvals.values())

    def journal(self) -> list[JournalEntry]:
        with self._lock:
            return list(self._journal.values())

    def budget(self, cost_center: str, period: str) -> Budget | None:
        with self._lock:
            self._advance()
            return self._budgets.get((cost_center, period))

    def snapshot(self) -> dict[str, Any]:
        """The books for the control plane; free texts are left out (they may name people)."""
        with self._lock:
            self._advance()
            touched = {(r.cost_center, r.period) for r in self._approvals.values()}
            return {
                "auto_decide": self.auto_decide,
                "cost_centers": [cc.to_json() for cc in self._cost_centers.values()],
                "gl_accounts": [account.to_json() for account in self._gl_accounts.values()],
                "budgets_with_requests": [self._budgets[key].to_json() for key in sorted(touched) if key in self._budgets],
                "approval_requests": [
                    {k: v for k, v in r.to_json().items() if k != "Description"} for r in self._approvals.values()
                ],
                "journal_entries": [
                    {
                        **{k: v for k, v in e.to_json().items() if k != "Description"},
                        "Items": [{k: v for k, v in i.to_json().items() if k != "ItemText"} for i in e.items],
                    }
                    for e in self._journal.values()
                ],
            }


def _items(obj: Mapping[str, Any]) -> tuple[JournalItem, ...]:
    raw = obj.get("Items")
    if not isinstance(raw, list) or not 2 <= len(raw) <= MAX_ITEMS:
        raise wire.bad_request(f"Items must be a list of 2 to {MAX_ITEMS} items", "Items")
    items: list[JournalItem] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise wire.bad_request("every item must be an object", f"Items[{index + 1}]")
        line_number = item.get("LineNumber")
        if not isinstance(line_number, int) or isinstance(line_number, bool) or line_number < 1:
            raise wire.bad_request("LineNumber must be a positive integer", f"Items[{index + 1}]/LineNumber")
        target = f"Items[{line_number}]"
        code = item.get("DebitCreditCode")
        if code not in ("S", "H"):
            raise wire.bad_request("DebitCreditCode must be S (debit) or H (credit)", f"{target}/DebitCreditCode")
        cost_center = item.get("CostCenter")
        if cost_center is not None and (not isinstance(cost_center, str) or not cost_center or len(cost_center) > 40):
            raise wire.bad_request("CostCenter must be null or 1 to 40 characters", f"{target}/CostCenter")
        items.append(
            JournalItem(
                line_number=line_number,
                gl_account=wire.text(item, "GLAccount", max_length=20, target=f"{target}/GLAccount"),
                cost_center=cost_center,
                debit_credit_code=code,
                amount=wire.amount(item, target=f"{target}/Amount"),
                item_text=wire.text(item, "ItemText", max_length=50, target=f"{target}/ItemText", required=False),
            )
        )
    if len({item.line_number for item in items}) != len(items):
        raise wire.bad_request("LineNumber must be unique within the entry", "Items")
    return tuple(items)
