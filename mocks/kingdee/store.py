"""The ERP's books: base data, budgets, bills of each form, and the approver.

All state lives behind one lock. Time comes from the injected clock; the approver
decides each submitted expense request ``decision_seconds`` after its ``Submit``,
evaluated whenever the ERP is asked anything (so a test's clock moves decisions).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from mocks.kingdee.wire import (
    MALFORMED,
    NO_RIGHT,
    NO_SUCH_BILL,
    NO_SUCH_FIELD,
    NOT_OPERABLE,
    VALIDATION,
    Condition,
    ErpError,
    FieldError,
    amount,
    base_data,
    china_date,
    erp_date,
    parse_date,
)

EXPENSE_REQUEST = "ER_ExpenseRequest"
VOUCHER = "GL_VOUCHER"
BUDGET_BALANCE = "BM_BudgetBalance"
BILL_FORMS = (EXPENSE_REQUEST, VOUCHER)
FORMS = (*BILL_FORMS, BUDGET_BALANCE)

CURRENCY = "PRE001"
ACCOUNT_BOOKS = {"001": "沙箱示例集团"}
VOUCHER_GROUPS = {"PRE001": "记"}
COST_CENTRES = {"CS-HR": "长沙人力资源部", "GZ-HR": "广州人力资源部"}
EXPENSE_ITEMS = {"FY001": "社会保险费", "FY002": "员工报销", "FY999": "其他费用"}
ACCOUNTS = {
    "6602.01": "管理费用-社会保险费",
    "6602.02": "管理费用-报销费用",
    "2211.02": "应付职工薪酬-社会保险费",
    "1002.01": "银行存款-基本户",
}
SEED_BUDGETS = {"CS-HR": Decimal("300000.00"), "GZ-HR": Decimal("200000.00")}
FIRST_PERIOD, LAST_PERIOD = "2024-01", "2026-12"
BUDGET_EXCEEDED = "BUDGET_EXCEEDED"

_PERIOD = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_TEXT = 255
_MAX_EXTERNAL_NO = 80


def _periods() -> list[str]:
    first_year, last_year = int(FIRST_PERIOD[:4]), int(LAST_PERIOD[:4])
    return [f"{year:04d}-{month:02d}" for year in range(first_year, last_year + 1) for month in range(1, 13)]


@dataclass
class Budget:
    budget: Decimal
    committed: Decimal = Decimal("0.00")


@dataclass
class Bill:
    """One saved bill; ``model`` is what was saved (amounts as ``Decimal``)."""

    form: str
    id: int
    number: str
    external_no: str
    model: dict[str, Any]
    created_on: dt.date
    status: str = "A"
    submitted_at: float | None = None
    submitted_on: dt.date | None = None
    approved_on: dt.date | None = None
    reject_code: str | None = None
    reject_reason: str | None = None
    # expense requests
    cost_center: str | None = None
    period: str | None = None
    amount: Decimal | None = None
    expense_item: str | None = None
    # vouchers
    date: dt.date | None = None
    debit_total: Decimal | None = None
    credit_total: Decimal | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def posted(self) -> bool:
        return self.form == VOUCHER and self.status == "C"

    def entity(self) -> dict[str, Any]:
        return {"Id": self.id, "Number": self.number, "DIndex": 0}

    def view(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "Number": self.number,
            "DocumentStatus": self.status,
            "ApproveDate": erp_date(self.approved_on),
            **{k: v for k, v in self.model.items() if k != "FID"},
        }

    def summary(self) -> dict[str, Any]:
        """A JSON-ready view for the mock's state dump (an ERP holds no personal data)."""
        data: dict[str, Any] = {
            "form": self.form,
            "id": self.id,
            "number": self.number,
            "external_no": self.external_no,
            "status": self.status,
            "approved_on": self.approved_on.isoformat() if self.approved_on else None,
            "reject_code": self.reject_code,
            "reject_reason": self.reject_reason,
        }
        if self.form == EXPENSE_REQUEST:
            data.update(cost_center=self.cost_center, period=self.period, amount=str(self.amount))
        else:
            data.update(date=self.date.isoformat() if self.date else None, total=str(self.debit_total))
        return data


def _field_values(bill: Bill) -> dict[str, object]:
    common: dict[str, object] = {
        "FID": bill.id,
        "FBillNo": bill.number,
        "FExternalNo": bill.external_no,
        "FDocumentStatus": bill.status,
        "FCreateDate": erp_date(bill.created_on),
        "FSubmitDate": erp_date(bill.submitted_on),
        "FApproveDate": erp_date(bill.approved_on),
        "FRejectCode": bill.reject_code,
        "FRejectReason": bill.reject_reason,
    }
    if bill.form == EXPENSE_REQUEST:
        return {
            **common,
            "FExpenseItem.FNumber": bill.expense_item,
            "FCostCenter.FNumber": bill.cost_center,
            "FPeriod": bill.period,
            "FAmount": bill.amount,
            "FDescription": bill.model.get("FDescription"),
        }
    return {
        **common,
        "FVOUCHERID": bill.id,
        "FDate": erp_date(bill.date),
        "FPosted": bill.posted,
        "FDebitTotal": bill.debit_total,
        "FCreditTotal": bill.credit_total,
    }


QUERY_FIELDS: dict[str, frozenset[str]] = {
    EXPENSE_REQUEST: frozenset(
        {
            "FID", "FBillNo", "FExternalNo", "FDocumentStatus", "FExpenseItem.FNumber", "FCostCenter.FNumber",
            "FPeriod", "FAmount", "FDescription", "FCreateDate", "FSubmitDate", "FApproveDate", "FRejectCode",
            "FRejectReason",
        }
    ),
    VOUCHER: frozenset(
        {
            "FVOUCHERID", "FID", "FBillNo", "FExternalNo", "FDocumentStatus", "FDate", "FPosted", "FDebitTotal",
            "FCreditTotal", "FCreateDate", "FSubmitDate", "FApproveDate", "FRejectCode", "FRejectReason",
        }
    ),
    BUDGET_BALANCE: frozenset(
        {"FCostCenter.FNumber", "FPeriod", "FBudgetAmount", "FOccupiedAmount", "FAvailableAmount", "FCurrency.FNumber"}
    ),
}


# -- validation -------------------------------------------------------------------------


class _Errors:
    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def add(self, field_name: str, message: str) -> None:
        self.items.append(FieldError(field_name, message))

    def raise_any(self) -> None:
        if self.items:
            raise ErpError(VALIDATION, *self.items)


def _text(model: Mapping[str, Any], key: str, errors: _Errors, *, required: bool, limit: int) -> str | None:
    value = model.get(key)
    if value is None or (value == "" and not required):
        if required:
            errors.add(key, f"{key} 不能为空")
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        errors.add(key, f"{key} 必须是 1 到 {limit} 个字符的文本")
        return None
    return value


def _reference(model: Mapping[str, Any], key: str, known: Mapping[str, str], what: str, errors: _Errors, *, required: bool = True) -> str | None:
    raw = model.get(key)
    if raw is None and not required:
        return None
    code = base_data(raw)
    if code is None:
        errors.add(key, f"{what}不能为空")
        return None
    if code not in known:
        errors.add(key, f"{what} {code} 不存在")
        return None
    return code


def _attachments(model: Mapping[str, Any], errors: _Errors) -> None:
    raw = model.get("FAttachments")
    if raw is None:
        return
    if not isinstance(raw, list) or not all(
        isinstance(item, Mapping)
        and isinstance(item.get("FKind"), str)
        and item["FKind"]
        and isinstance(item.get("FSha256"), str)
        and _SHA256.fullmatch(item["FSha256"])
        and (item.get("FName") is None or isinstance(item.get("FName"), str))
        for item in raw
    ):
        errors.add("FAttachments", "附件格式错误：每个附件需要 FKind 和 64 位小写十六进制 FSha256")


# -- the store --------------------------------------------------------------------------


class Store:
    """Base data, budgets and bills; ``advance`` runs the approver."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        decision_seconds: Callable[[], float],
    ) -> None:
        self._clock = clock
        self._decision_seconds = decision_seconds
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.auto_decide = True
            self._budgets: dict[tuple[str, str], Budget] = {
                (centre, period): Budget(amount) for centre, amount in SEED_BUDGETS.items() for period in _periods()
            }
            self._bills: list[Bill] = []
            self._next_id = 100001
            self._sequences: dict[str, int] = {}

    # -- steering -------------------------------------------------------------------

    def set_budget(self, cost_center: str, period: str, budget: Decimal, committed: Decimal | None = None) -> None:
        if cost_center not in COST_CENTRES:
            raise KeyError(f"unknown cost centre {cost_center!r}")
        if not _PERIOD.fullmatch(period):
            raise ValueError(f"period must be yyyy-MM, got {period!r}")
        with self._lock:
            current = self._budgets.get((cost_center, period))
            kept = current.committed if current is not None else Decimal("0.00")
            self._budgets[(cost_center, period)] = Budget(
                Decimal(budget).quantize(Decimal("0.01")),
                Decimal(committed if committed is not None else kept).quantize(Decimal("0.01")),
            )

    def budget(self, cost_center: str, period: str) -> Budget | None:
        with self._lock:
            self.advance()
            found = self._budgets.get((cost_center, period))
            return None if found is None else dataclasses.replace(found)

    def decide(self, reference: str, approve: bool, reason: str = "", code: str | None = None) -> Bill:
        """The approver's decision on the submitted bill carrying ``reference``."""
        with self._lock:
            self.advance()
            candidates = [bill for bill in self._bills if bill.external_no == reference and bill.status == "B"]
            if not candidates:
                raise KeyError(f"no submitted bill carries {reference!r}")
            bill = candidates[0]
            self._decide(bill, approve, self._clock(), code=code or "REJECTED", reason=reason or "审批驳回")
            return dataclasses.replace(bill)

    def bills(self, form: str | None = None) -> list[Bill]:
        with self._lock:
            self.advance()
            return [dataclasses.replace(bill) for bill in self._bills if form is None or bill.form == form]

    # -- the approver ---------------------------------------------------------------

    def advance(self) -> None:
        """Decide every expense request whose decision time has come (in submit order)."""
        with self._lock:
            if not self.auto_decide:
                return
            step = self._decision_seconds()
            now = self._clock()
            due = sorted(
                (
                    bill
                    for bill in self._bills
                    if bill.form == EXPENSE_REQUEST
                    and bill.status == "B"
                    and bill.submitted_at is not None
                    and bill.submitted_at + step <= now
                ),
                key=lambda bill: (bill.submitted_at, bill.id),
            )
            for bill in due:
                assert bill.submitted_at is not None
                budget = self._budgets[(bill.cost_center or "", bill.period or "")]
                available = budget.budget - budget.committed
                assert bill.amount is not None
                fits = bill.amount <= available
                self._decide(
                    bill,
                    fits,
                    bill.submitted_at + step,
                    code=BUDGET_EXCEEDED,
                    reason=f"预算余额不足：可用 {available:.2f}，申请 {bill.amount:.2f}",
                )

    def _decide(self, bill: Bill, approve: bool, at: float, *, code: str, reason: str) -> None:
        bill.approved_on = china_date(at)
        if approve:
            bill.status = "C"
            if bill.form == EXPENSE_REQUEST:
                self._budgets[(bill.cost_center or "", bill.period or "")].committed += bill.amount or Decimal(0)
        else:
            bill.status = "D"
            bill.reject_code, bill.reject_reason = code, reason

    # -- Save -------------------------------------------------------------------------

    def save(self, form: str, model: object) -> Bill:
        if not isinstance(model, dict):
            raise ErpError.of(MALFORMED, "缺少 Model", "Model")
        fid = model.get("FID", 0)
        if isinstance(fid, bool) or not isinstance(fid, int):
            raise ErpError.of(MALFORMED, "FID 必须是整数", "FID")
        if fid != 0:
            raise ErpError.of(MALFORMED, "本环境只支持新增单据（FID 为 0）", "FID")
        with self._lock:
            self.advance()
            now = self._clock()
            if form == EXPENSE_REQUEST:
                bill = self._expense_request(model, now)
            elif form == VOUCHER:
                bill = self._voucher(model, now)
            else:
                raise ErpError.of(MALFORMED, f"表单 {form} 不支持保存", "formid")
            self._bills.append(bill)
            self._next_id += 1
            return dataclasses.replace(bill)

    def _expense_request(self, model: dict[str, Any], now: float) -> Bill:
        errors = _Errors()
        external_no = _text(model, "FExternalNo", errors, required=True, limit=_MAX_EXTERNAL_NO)
        item = _reference(model, "FExpenseItem", EXPENSE_ITEMS, "费用项目", errors)
        centre = _reference(model, "FCostCenter", COST_CENTRES, "成本中心", errors)
        period = model.get("FPeriod")
        if not isinstance(period, str) or not _PERIOD.fullmatch(period):
            errors.add("FPeriod", "期间格式应为 yyyy-MM")
            period = None
        elif centre is not None and (centre, period) not in self._budgets:
            errors.add("FPeriod", f"成本中心 {centre} 在 {period} 期间没有预算")
        value = amount(model.get("FAmount"))
        if value is None or value <= 0:
            errors.add("FAmount", "金额必须大于 0，最多两位小数")
        if model.get("FCurrency") is not None and base_data(model.get("FCurrency")) != CURRENCY:
            errors.add("FCurrency", "币别只支持 PRE001（人民币）")
        _text(model, "FDescription", errors, required=False, limit=_MAX_TEXT)
        _attachments(model, errors)
        errors.raise_any()
        number = f"FYSQ{self._next_sequence('FYSQ'):06d}"
        return Bill(
            form=EXPENSE_REQUEST,
            id=self._next_id,
            number=number,
            external_no=external_no or "",
            model=dict(model),
            created_on=china_date(now),
            cost_center=centre,
            period=period,
            amount=value,
            expense_item=item,
        )

    def _voucher(self, model: dict[str, Any], now: float) -> Bill:
        errors = _Errors()
        external_no = _text(model, "FExternalNo", errors, required=True, limit=_MAX_EXTERNAL_NO)
        _reference(model, "FAccountBookID", ACCOUNT_BOOKS, "账簿", errors)
        _reference(model, "FVOUCHERGROUPID", VOUCHER_GROUPS, "凭证字", errors, required=False)
        day = parse_date(model.get("FDate"))
        if day is None:
            errors.add("FDate", "日期格式应为 yyyy-MM-dd")
        elif not FIRST_PERIOD <= day.strftime("%Y-%m") <= LAST_PERIOD:
            errors.add("FDate", f"会计期间 {day.strftime('%Y-%m')} 未开启")
        _text(model, "FExplanation", errors, required=False, limit=_MAX_TEXT)
        _attachments(model, errors)
        rows = model.get("FEntity")
        debit_total = credit_total = Decimal("0.00")
        lines: list[dict[str, Any]] = []
        if not isinstance(rows, list) or len(rows) < 2 or not all(isinstance(row, dict) for row in rows):
            errors.add("FEntity", "凭证至少需要两条分录")
        else:
            row_errors = len(errors.items)
            for n, row in enumerate(rows, start=1):
                account = _reference(row, "FACCOUNTID", ACCOUNTS, "科目", _Prefixed(errors, n))
                centre = _reference(row, "FCOSTCENTER", COST_CENTRES, "成本中心", _Prefixed(errors, n), required=False)
                _text(row, "FEXPLANATION", _Prefixed(errors, n), required=False, limit=_MAX_TEXT)  # type: ignore[arg-type]
                debit, credit = amount(row.get("FDEBIT", 0)), amount(row.get("FCREDIT", 0))
                if debit is None or debit < 0:
                    errors.add(f"FEntity[{n}].FDEBIT", f"第 {n} 行借方金额无效")
                elif credit is None or credit < 0:
                    errors.add(f"FEntity[{n}].FCREDIT", f"第 {n} 行贷方金额无效")
                elif (debit == 0) == (credit == 0):
                    errors.add(f"FEntity[{n}].FDEBIT", f"第 {n} 行借方和贷方必须且只能有一方不为零")
                else:
                    debit_total += debit
                    credit_total += credit
                lines.append({"account": account, "cost_center": centre, "debit": debit, "credit": credit})
            if len(errors.items) == row_errors and debit_total != credit_total:
                errors.add("FEntity", f"借贷不平衡：借方 {debit_total:.2f}，贷方 {credit_total:.2f}")
        errors.raise_any()
        assert day is not None
        month = day.strftime("%Y%m")
        number = f"PZ-{month}-{self._next_sequence('PZ' + month):04d}"
        return Bill(
            form=VOUCHER,
            id=self._next_id,
            number=number,
            external_no=external_no or "",
            model=dict(model),
            created_on=china_date(now),
            date=day,
            debit_total=debit_total,
            credit_total=credit_total,
            lines=lines,
        )

    def _next_sequence(self, series: str) -> int:
        self._sequences[series] = self._sequences.get(series, 0) + 1
        return self._sequences[series]

    # -- Submit / Audit / View ----------------------------------------------------------

    def _find(self, form: str, key: str | int) -> Bill | None:
        for bill in self._bills:
            if bill.form == form and (bill.number == key if isinstance(key, str) else bill.id == key):
                return bill
        return None

    def transition(
        self, form: str, keys: list[str | int], operation: str
    ) -> tuple[list[tuple[int, Bill]], list[tuple[int, FieldError]]]:
        """Submit or audit each bill; returns (position, bill) per success and (MsgCode,
        error) per failure."""
        if form not in BILL_FORMS:
            raise ErpError.of(MALFORMED, f"表单 {form} 不存在", "formid")
        if operation == "Audit" and form == EXPENSE_REQUEST:
            raise ErpError.of(NO_RIGHT, "当前用户没有费用申请单的审核权限")
        done: list[tuple[int, Bill]] = []
        failed: list[tuple[int, FieldError]] = []
        with self._lock:
            self.advance()
            now = self._clock()
            for index, key in enumerate(keys):
                bill = self._find(form, key)
                if bill is None:
                    failed.append((NO_SUCH_BILL, FieldError(None, f"单据 {key} 不存在", index)))
                    continue
                allowed = ("A", "D") if operation == "Submit" else ("B",)
                if bill.status not in allowed:
                    failed.append(
                        (NOT_OPERABLE, FieldError(None, f"单据 {bill.number} 状态为 {bill.status}，不能{_VERB[operation]}", index))
                    )
                    continue
                if operation == "Submit":
                    bill.status = "B"
                    bill.submitted_at = now
                    bill.submitted_on = china_date(now)
                    bill.approved_on = bill.reject_code = bill.reject_reason = None
                else:
                    bill.status = "C"
                    bill.approved_on = china_date(now)
                done.append((index, dataclasses.replace(bill)))
        return done, failed

    def view(self, form: str, key: str | int) -> Bill:
        if form not in BILL_FORMS:
            raise ErpError.of(MALFORMED, f"表单 {form} 不存在", "formid")
        with self._lock:
            self.advance()
            bill = self._find(form, key)
            if bill is None:
                raise ErpError.of(NO_SUCH_BILL, f"单据 {key} 不存在")
            return dataclasses.replace(bill)

    # -- ExecuteBillQuery -----------------------------------------------------------

    def query(
        self,
        form: str,
        keys: list[str],
        conditions: list[Condition],
        order: tuple[str, bool] | None,
        start: int,
        limit: int,
    ) -> list[list[object]]:
        known = QUERY_FIELDS.get(form)
        if known is None:
            raise ErpError.of(MALFORMED, f"表单 {form} 不存在", "FormId")
        for key in [*keys, *(c.key for c in conditions), *([order[0]] if order else [])]:
            if key not in known:
                raise ErpError.of(NO_SUCH_FIELD, f"字段 {key} 不存在", key)
        with self._lock:
            self.advance()
            if form == BUDGET_BALANCE:
                rows = [
                    {
                        "FCostCenter.FNumber": centre,
                        "FPeriod": period,
                        "FBudgetAmount": budget.budget,
                        "FOccupiedAmount": budget.committed,
                        "FAvailableAmount": budget.budget - budget.committed,
                        "FCurrency.FNumber": CURRENCY,
                    }
                    for (centre, period), budget in sorted(self._budgets.items())
                ]
            else:
                rows = [_field_values(bill) for bill in self._bills if bill.form == form]
        rows = [row for row in rows if all(c.matches(row.get(c.key)) for c in conditions)]
        if order is not None:
            key, descending = order
            present = [row for row in rows if row.get(key) is not None]
            absent = [row for row in rows if row.get(key) is None]
            rows = sorted(present, key=lambda row: row[key], reverse=descending) + absent  # type: ignore[arg-type, return-value]
        return [[row.get(key) for key in keys] for row in rows[start : start + limit]]

    # -- state dump -------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            self.advance()
            return {
                "auto_decide": self.auto_decide,
                "bills": [bill.summary() for bill in self._bills],
                "budgets": [
                    {"cost_center": centre, "period": period, "budget": str(b.budget), "committed": str(b.committed)}
                    for (centre, period), b in sorted(self._budgets.items())
                    if b.committed or b.budget != SEED_BUDGETS.get(centre)
                ],
            }


_VERB = {"Submit": "提交", "Audit": "审核"}


class _Prefixed(_Errors):
    """Errors of voucher row ``n``: field names become ``FEntity[n].<key>``."""

    def __init__(self, target: _Errors, row: int) -> None:
        self.target = target
        self.row = row

    def add(self, field_name: str, message: str) -> None:
        self.target.add(f"FEntity[{self.row}].{field_name}", f"第 {self.row} 行：{message}")
