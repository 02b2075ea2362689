"""ERP documents: finance approvals with a budget comparison, journal vouchers, budgets.

Approvals are decided by people in the ERP: the request is sent at once (with the
budget position read just before) and the poller asks until it is decided
(``erp_approval.approved`` / ``erp_approval.rejected``). Vouchers must balance
before anything is sent; most ERPs post them at once, and a workflow still under
way is followed like an approval (``erp_voucher.posted`` / ``erp_voucher.rejected``).
Both are sent at most once per reference, as payments are.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters import (
    ApprovalReceipt,
    ApprovalSubmission,
    Attachment,
    BudgetPosition,
    CallContext,
    ErpAdapter,
    UpstreamError,
    UpstreamNotFound,
    VoucherLine,
    VoucherReceipt,
    VoucherSubmission,
)

from ..api.schemas import (
    ApprovalIn,
    ApprovalOut,
    AttachmentIn,
    BudgetComparison,
    BudgetOut,
    VoucherIn,
    VoucherLineIn,
    VoucherOut,
)
from ..auth import Client
from ..errors import ProblemError
from ..ids import new_id, upstream_reference
from ..registry import UpstreamSet
from ..store import erp_approvals, erp_vouchers
from ..validation import check_amount
from ..workers import utcnow
from .timeline import load_timeline, record_status
from .tracked import UpstreamDocument
from .upstream_outcomes import FailureKind, classify

__all__ = ["ApprovalService", "BudgetService", "VoucherService", "check_voucher_lines", "find_erp"]

log = logging.getLogger("hr_gateway.erp")
_ZERO = Decimal("0.00")


def find_erp(upstreams: UpstreamSet, name: str, field: str = "erp") -> ErpAdapter:
    erp = upstreams.erp(name)
    if erp is None:
        raise ProblemError(
            "unknown_erp", f"{field}: no ERP named {name!r} for this key", field=field, known=upstreams.names("erp")
        )
    return erp


def _unavailable(erp: str, exc: UpstreamError) -> ProblemError:
    failure = classify(exc)
    if failure.kind is FailureKind.REJECTED:
        return ProblemError(
            "upstream_rejected", f"{erp} refused: {failure.upstream_message}",
            upstream={"code": failure.upstream_code, "message": failure.upstream_message, "field": failure.field},
        )
    if failure.timeout:
        return ProblemError("upstream_timeout", f"{erp} did not answer in time")
    return ProblemError("upstream_unavailable", f"{erp} could not be reached: {failure.message}")


def _attachments(items: list[AttachmentIn]) -> tuple[Attachment, ...]:
    return tuple(Attachment(a.kind, a.sha256, a.name) for a in items)


def _comparison(position: BudgetPosition, requested: Decimal) -> dict[str, str]:
    return {
        "budget": str(position.budget),
        "committed": str(position.committed),
        "requested": str(requested),
        "remaining": str(position.budget - position.committed - requested),
    }


class BudgetService:
    async def get(
        self, upstreams: UpstreamSet, erp_name: str | None, cost_center: str, period: str, context: CallContext
    ) -> BudgetOut:
        if erp_name is None:
            names = upstreams.names("erp")
            if len(names) != 1:
                raise ProblemError("unknown_erp", "erp: name the ERP to ask (?erp=...)", field="erp", known=names)
            erp_name = names[0]
        erp = find_erp(upstreams, erp_name)
        try:
            position = await erp.budget(cost_center, period, context=context)
        except UpstreamNotFound:
            raise ProblemError("not_found", f"{erp.name} has no budget for this cost centre and period") from None
        except UpstreamError as exc:
            raise _unavailable(erp.name, exc) from None
        return BudgetOut(
            erp=erp.name, cost_center=position.cost_center, period=position.period, currency=position.currency,
            budget=position.budget, committed=position.committed, remaining=position.budget - position.committed,
        )


class ApprovalService(UpstreamDocument):
    table = erp_approvals
    kind = "erp_approval"
    final = frozenset({"approved", "rejected"})
    announced = frozenset({"pending", "approved", "rejected"})
    not_found = "no approval with this id for this client"

    async def create(
        self, client: Client, body: ApprovalIn, upstreams: UpstreamSet, context: CallContext, token: str | None
    ) -> ApprovalOut:
        erp = find_erp(upstreams, body.erp)
        amount = check_amount(body.amount, "amount")
        approval_id = await self.start(
            client, erp, body.kind, amount, body.cost_center, body.period, body.reference.strip(), body.description,
            _attachments(body.attachments), token, context,
        )
        return await self.get(client.id, approval_id)

    async def start(
        self,
        client: Client,
        erp: ErpAdapter,
        kind: str,
        amount: Decimal,
        cost_center: str,
        period: str,
        client_reference: str,
        description: str,
        attachments: tuple[Attachment, ...],
        token: str | None,
        context: CallContext,
        *,
        origin: str = "api",
        origin_id: str | None = None,
    ) -> str:
        row = await self.find_by_token(client.id, token)
        resumed = row is not None
        if row is None:
            # The budget is read first: an unknown cost centre is refused before anything is sent.
            try:
                position = await erp.budget(cost_center, period, context=context)
            except UpstreamNotFound:
                raise ProblemError(
                    "not_found", f"{erp.name} has no budget for cost centre {cost_center!r} in {period}",
                    field="cost_center",
                ) from None
            except UpstreamError as exc:
                raise _unavailable(erp.name, exc) from None
            approval_id = new_id("apr")
            now = utcnow()
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(
                        erp_approvals.insert().values(
                            id=approval_id, client_id=client.id, environment=client.environment, idempotency_token=token,
                            erp=erp.name, kind=kind, amount=str(amount), cost_center=cost_center, period=period,
                            client_reference=client_reference, description=description,
                            attachments=json.dumps([{"kind": a.kind, "sha256": a.sha256, "name": a.name} for a in attachments]),
                            budget=json.dumps(_comparison(position, amount)), status="submitting",
                            reference=upstream_reference(approval_id), origin=origin, origin_id=origin_id,
                            next_poll_at=now + dt.timedelta(seconds=30), poll_attempts=0, created_at=now, updated_at=now,
                        )
                    )
                    await record_status(conn, self.kind, approval_id, "submitting")
                    row = (await conn.execute(erp_approvals.select().where(erp_approvals.c.id == approval_id))).first()
            except IntegrityError:
                # Created by a concurrent call with the same token: that one is the request.
                row, resumed = await self.find_by_token(client.id, token), True
                if row is None:
                    raise
        if row.status == "submitting":
            await self.submit(row, context.with_gateway_id(row.id), ask_first=resumed)
        return str(row.id)

    def upstream(self, row: Any) -> ErpAdapter | None:
        upstreams = self.upstreams_for(row.environment)
        return upstreams.erp(row.erp) if upstreams else None

    async def ask(self, upstream: ErpAdapter, row: Any, context: CallContext) -> ApprovalReceipt | None:
        return await upstream.find_approval(row.reference, context=context)

    async def send(self, upstream: ErpAdapter, row: Any, context: CallContext) -> ApprovalReceipt:
        return await upstream.submit_approval(self._submission(row), context=context)

    def _submission(self, row: Any) -> ApprovalSubmission:
        return ApprovalSubmission(
            reference=row.reference, kind=row.kind, amount=Decimal(row.amount), cost_center=row.cost_center,
            period=row.period, description=row.description or row.client_reference,
            attachments=tuple(Attachment(a["kind"], a["sha256"], a.get("name")) for a in json.loads(row.attachments)),
        )

    async def apply(self, row: Any, receipt: ApprovalReceipt) -> None:
        values: dict[str, Any] = {"document_number": receipt.document_number or row.document_number}
        if receipt.decided_on:
            values["decided_on"] = receipt.decided_on.isoformat()
        if receipt.status == "rejected":
            values["reason"] = json.dumps({"code": receipt.reason_code, "message": receipt.reason_message}, ensure_ascii=False)
        await self.transition(row.id, receipt.status, values)

    async def out(self, conn: AsyncConnection, row: Any) -> ApprovalOut:
        budget = json.loads(row.budget) if row.budget else None
        return ApprovalOut(
            id=row.id, status=row.status, erp=row.erp, kind=row.kind, amount=Decimal(row.amount),
            cost_center=row.cost_center, period=row.period, reference=row.client_reference,
            upstream_reference=row.reference, document_number=row.document_number,
            budget=BudgetComparison(**{k: Decimal(v) for k, v in budget.items()}) if budget else None,
            decided_on=dt.date.fromisoformat(row.decided_on) if row.decided_on else None,
            rejection=json.loads(row.reason) if row.reason else None,
            attachments=[AttachmentIn(**a) for a in json.loads(row.attachments)],
            origin={"kind": row.origin, "id": row.origin_id} if row.origin != "api" and row.origin_id else None,
            timeline=await load_timeline(conn, self.kind, row.id),
            created_at=row.created_at, updated_at=row.updated_at,
        )


def check_voucher_lines(lines: list[VoucherLineIn]) -> tuple[tuple[VoucherLine, ...], Decimal]:
    """The lines as canonical ones and the total; 422 unless every line has exactly
    one side above zero and debits equal credits."""
    result = []
    debits = credits = _ZERO
    for i, line in enumerate(lines):
        field = f"lines[{i}]"
        debit = check_amount(line.debit, f"{field}.debit", positive=False)
        credit = check_amount(line.credit, f"{field}.credit", positive=False)
        if (debit > 0) == (credit > 0):
            raise ProblemError(
                "invalid_voucher_line", f"{field}: exactly one of debit and credit must be above zero", field=field
            )
        debits += debit
        credits += credit
        result.append(VoucherLine(line.account.strip(), debit, credit, line.cost_center, line.description))
    if debits != credits:
        raise ProblemError(
            "voucher_unbalanced", f"debits {debits} do not equal credits {credits}",
            debits=str(debits), credits=str(credits),
        )
    return tuple(result), debits


class VoucherService(UpstreamDocument):
    table = erp_vouchers
    kind = "erp_voucher"
    final = frozenset({"posted", "rejected"})
    announced = frozenset({"posted", "rejected"})
    not_found = "no voucher with this id for this client"

    async def create(
        self, client: Client, body: VoucherIn, upstreams: UpstreamSet, context: CallContext, token: str | None
    ) -> VoucherOut:
        erp = find_erp(upstreams, body.erp)
        lines, _ = check_voucher_lines(body.lines)
        voucher_id = await self.start(
            client, erp, body.date, lines, body.reference.strip(), body.description, _attachments(body.attachments),
            token, context,
        )
        out: VoucherOut = await self.get(client.id, voucher_id)
        if out.status == "rejected" and out.rejection:
            raise ProblemError(
                "upstream_rejected", f"{erp.name} refused the voucher: {out.rejection.get('message')}",
                upstream={"code": out.rejection.get("code"), "message": out.rejection.get("message"),
                          "field": out.rejection.get("field")},
                voucher_id=out.id,
            )
        return out

    async def start(
        self,
        client: Client,
        erp: ErpAdapter,
        date: dt.date,
        lines: tuple[VoucherLine, ...],
        client_reference: str,
        description: str,
        attachments: tuple[Attachment, ...],
        token: str | None,
        context: CallContext,
        *,
        origin: str = "api",
        origin_id: str | None = None,
    ) -> str:
        row = await self.find_by_token(client.id, token)
        resumed = row is not None
        if row is None:
            voucher_id = new_id("vch")
            now = utcnow()
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(
                        erp_vouchers.insert().values(
                            id=voucher_id, client_id=client.id, environment=client.environment, idempotency_token=token,
                            erp=erp.name, voucher_date=date.isoformat(),
                            lines=json.dumps([
                                {"account": ln.account, "debit": str(ln.debit), "credit": str(ln.credit),
                                 "cost_center": ln.cost_center, "description": ln.description} for ln in lines
                            ], ensure_ascii=False),
                            total=str(sum((ln.debit for ln in lines), _ZERO)), client_reference=client_reference,
                            description=description,
                            attachments=json.dumps([{"kind": a.kind, "sha256": a.sha256, "name": a.name} for a in attachments]),
                            status="submitting", reference=upstream_reference(voucher_id), origin=origin,
                            origin_id=origin_id, next_poll_at=now + dt.timedelta(seconds=30), poll_attempts=0,
                            created_at=now, updated_at=now,
                        )
                    )
                    await record_status(conn, self.kind, voucher_id, "submitting")
                    row = (await conn.execute(erp_vouchers.select().where(erp_vouchers.c.id == voucher_id))).first()
            except IntegrityError:
                row, resumed = await self.find_by_token(client.id, token), True
                if row is None:
                    raise
        if row.status == "submitting":
            await self.submit(row, context.with_gateway_id(row.id), ask_first=resumed)
        return str(row.id)

    def upstream(self, row: Any) -> ErpAdapter | None:
        upstreams = self.upstreams_for(row.environment)
        return upstreams.erp(row.erp) if upstreams else None

    async def ask(self, upstream: ErpAdapter, row: Any, context: CallContext) -> VoucherReceipt | None:
        return await upstream.find_voucher(row.reference, context=context)

    async def send(self, upstream: ErpAdapter, row: Any, context: CallContext) -> VoucherReceipt:
        return await upstream.post_voucher(self._submission(row), context=context)

    def _submission(self, row: Any) -> VoucherSubmission:
        return VoucherSubmission(
            reference=row.reference,
            date=dt.date.fromisoformat(row.voucher_date),
            lines=tuple(
                VoucherLine(ln["account"], Decimal(ln["debit"]), Decimal(ln["credit"]), ln["cost_center"], ln["description"])
                for ln in json.loads(row.lines)
            ),
            description=row.description or row.client_reference,
            attachments=tuple(Attachment(a["kind"], a["sha256"], a.get("name")) for a in json.loads(row.attachments)),
        )

    async def apply(self, row: Any, receipt: VoucherReceipt) -> None:
        values: dict[str, Any] = {"document_number": receipt.document_number or row.document_number}
        if receipt.posted_on:
            values["posted_on"] = receipt.posted_on.isoformat()
        if receipt.status == "rejected":
            values["reason"] = json.dumps({"code": receipt.reason_code, "message": receipt.reason_message}, ensure_ascii=False)
        await self.transition(row.id, receipt.status, values)

    async def out(self, conn: AsyncConnection, row: Any) -> VoucherOut:
        return VoucherOut(
            id=row.id, status=row.status, erp=row.erp, date=dt.date.fromisoformat(row.voucher_date),
            lines=[VoucherLineIn(ln["account"], Decimal(ln["debit"]), Decimal(ln["credit"]), ln["cost_center"],
                                 ln["description"]) for ln in json.loads(row.lines)],
            total=Decimal(row.total), reference=row.client_reference, upstream_reference=row.reference,
            document_number=row.document_number,
            posted_on=dt.date.fromisoformat(row.posted_on) if row.posted_on else None,
            rejection=json.loads(row.reason) if row.reason else None,
            attachments=[AttachmentIn(**a) for a in json.loads(row.attachments)],
            origin={"kind": row.origin, "id": row.origin_id} if row.origin != "api" and row.origin_id else None,
            created_at=row.created_at, updated_at=row.updated_at,
        )
