"""The monthly contribution run: a durable workflow of five upstream steps.

    declaration (bureau) -> approval (ERP, with the budget) -> payment (bank)
    -> confirmation (bureau confirms the funds) -> voucher (ERP)

Each step is a row in ``contribution_run_steps``, written ``in_progress`` with the
id of the resource that carries it (a declaration, an approval, a payment, a
voucher; the confirmation carries its own reference) before the upstream is
called, and each resource is created with an idempotency token derived from the
run. A gateway restarted at any point therefore finds the step where it was and
never creates a second declaration, approval or payment. The resources move on
their own (their poller jobs); the run's job watches them, starts the next step,
and stops the run when a step is refused, with the step and the upstream's reason.

Deadlines: while the run is unfinished, ``contribution_run.overdue`` is raised
with ``level`` 1, 2, 3 when the payment deadline is passed by each configured
delay (default 0 h, 24 h, 48 h).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters import (
    AccountParty,
    CallContext,
    Capability,
    ContributionPaymentNotice,
    ContributionPayments,
    Employer,
    ErpAdapter,
    UpstreamError,
    VoucherLine,
)

from ..api.schemas import (
    ContributionRunIn,
    ContributionRunOut,
    DeadlineOut,
    DeclarationIn,
    DeclarationLineIn,
    EmployerIn,
    RunStepOut,
)
from ..auth import Client
from ..encryption import FieldCipher
from ..errors import ProblemError
from ..ids import new_id, upstream_reference
from ..registry import UpstreamSet
from ..store import contribution_run_steps, contribution_runs, declarations
from ..validation import check_uscc
from ..workers import Advance, utcnow
from .accounts import debtor_party
from .declarations import DeclarationService
from .erp import ApprovalService, VoucherService, find_erp
from .events import EventPublisher
from .payments import PaymentService, find_bank
from .reimbursements import Owner
from .tracked import TrackedResource
from .upstream_outcomes import FailureKind, ask_then_send, classify

__all__ = ["STEPS", "ContributionRunService"]

log = logging.getLogger("hr_gateway.contribution_runs")

STEPS: tuple[str, ...] = ("declaration", "approval", "payment", "confirmation", "voucher")
_ZERO = Decimal("0.00")


def run_settings(erp: ErpAdapter) -> dict[str, Any]:
    """The ERP instance's ``options.contribution_run``: cost centre per employer and
    the G/L accounts the voucher debits (expense) and credits (bank)."""
    return dict(erp.config.options.get("contribution_run", {}))


class ContributionRunService(TrackedResource):
    table = contribution_runs
    kind = "contribution_run"
    final = frozenset({"completed", "failed"})
    announced = frozenset({"completed", "failed"})
    not_found = "no contribution run with this id for this client"

    def __init__(
        self, engine: AsyncEngine, cipher: FieldCipher, events: EventPublisher, upstreams_for: Any, *,
        poll_seconds: float, declarations: DeclarationService, approvals: ApprovalService,
        payments: PaymentService, vouchers: VoucherService, escalation_delays: Sequence[float],
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(engine, cipher, events, upstreams_for, poll_seconds=poll_seconds)
        self.declarations = declarations
        self.approvals = approvals
        self.payments = payments
        self.vouchers = vouchers
        self.escalation_delays = tuple(escalation_delays)
        self.wake = wake

    # -- creation --------------------------------------------------------------------

    async def create(
        self, client: Client, body: ContributionRunIn, upstreams: UpstreamSet, context: CallContext, token: str | None
    ) -> ContributionRunOut:
        row = await self.find_by_token(client.id, token)
        if row is None:
            row = await self._create(client, body, upstreams, token)
            self.wake()
        # The poller takes it from here (it is due at once): one worker per run, never two.
        return await self.get(client.id, row.id)

    async def _create(self, client: Client, body: ContributionRunIn, upstreams: UpstreamSet, token: str | None) -> Any:
        uscc = check_uscc(body.employer.uscc, "employer.uscc")
        if body.payment_deadline.tzinfo is None:
            raise ProblemError("invalid_field", "payment_deadline: give a UTC offset, e.g. 2024-09-15T17:00:00+08:00",
                               field="payment_deadline")
        erp = find_erp(upstreams, body.erp)
        bank = find_bank(upstreams, body.bank)
        debtor = debtor_party(self.cipher, upstreams, bank, body.debtor_account, "debtor_account")
        bureau = upstreams.bureau_for(body.region, Capability.DECLARATION)
        if bureau is None:
            raise ProblemError("unknown_region", f"region: no bureau takes declarations for {body.region}", field="region",
                               known_regions=upstreams.regions(Capability.DECLARATION))
        if Capability.CONTRIBUTION_PAYMENT not in bureau.capabilities:
            raise ProblemError("capability_unsupported", f"the {body.region} bureau cannot confirm contribution payments")
        payee = bureau.config.options.get("collection_account")
        if not payee:
            raise ProblemError(
                "capability_unsupported", f"no collection account is configured for the {body.region} bureau"
            )
        settings = run_settings(erp)
        cost_center = body.cost_center or settings.get("cost_centers", {}).get(uscc)
        if not cost_center:
            raise ProblemError("cost_center_required", f"cost_center: {erp.name} has none for this employer; send one",
                               field="cost_center")
        accounts = {"expense": settings.get("expense_account"), "bank": settings.get("bank_account")}
        if not all(accounts.values()):
            raise ProblemError("capability_unsupported",
                               f"{erp.name} has no expense and bank accounts configured for contribution vouchers")
        # Checked now so a run is never created around a declaration that cannot be sent.
        await self.declarations.check(
            client,
            DeclarationIn(employer=body.employer, region=body.region, period=body.period, lines=body.lines,
                          all_or_nothing=True),
        )
        async with self.engine.connect() as conn:
            running = (
                await conn.execute(
                    select(contribution_runs.c.id).where(
                        contribution_runs.c.client_id == client.id,
                        contribution_runs.c.employer_uscc == uscc,
                        contribution_runs.c.region == body.region,
                        contribution_runs.c.period == body.period,
                        contribution_runs.c.status == "running",
                    )
                )
            ).first()
        if running is not None:
            raise ProblemError("contribution_run_in_progress", "finish or fail that run first", run_id=running.id)
        run_id = new_id("run")
        now = utcnow()
        async with self.engine.begin() as conn:
            await conn.execute(
                contribution_runs.insert().values(
                    id=run_id, client_id=client.id, environment=client.environment, idempotency_token=token,
                    employer_uscc=uscc, employer_name=body.employer.name.strip(), region=body.region,
                    period=body.period, erp=erp.name, bank=bank.name,
                    debtor_account_enc=self.cipher.encrypt(debtor.account, "contribution_runs.debtor_account"),
                    payee_enc=self.cipher.encrypt(json.dumps(dict(payee), ensure_ascii=False), "contribution_runs.payee"),
                    cost_center=cost_center, accounts=json.dumps(accounts),
                    lines_enc=self.cipher.encrypt(
                        msgspec.json.encode(body.lines).decode(), "contribution_runs.lines"
                    ),
                    payment_deadline=body.payment_deadline, status="running", current_step="declaration",
                    escalation_level=0, next_poll_at=now, poll_attempts=0, created_at=now, updated_at=now,
                )
            )
            for position, step in enumerate(STEPS):
                await conn.execute(
                    contribution_run_steps.insert().values(run_id=run_id, step=step, position=position, status="pending")
                )
            row = (await conn.execute(contribution_runs.select().where(contribution_runs.c.id == run_id))).first()
        return row

    def _stored_declaration(self, row: Any) -> DeclarationIn:
        lines = msgspec.json.decode(
            self.cipher.decrypt(row.lines_enc, "contribution_runs.lines"), type=list[DeclarationLineIn]
        )
        return DeclarationIn(
            employer=EmployerIn(row.employer_uscc, row.employer_name), region=row.region, period=row.period,
            lines=lines, all_or_nothing=True,
        )

    # -- the workflow ----------------------------------------------------------------

    async def advance(self, row: Any) -> Advance:
        if row.status in self.final:
            return Advance.done()
        await self._escalate(row)
        context = CallContext(request_id=f"run-{row.id}", client_id=row.client_id, gateway_id=row.id)
        for step in await self._steps(row.id):
            if step.status == "completed":
                continue
            outcome = await self._work(row, step, context)
            if outcome != "completed":
                break
            row = await self.row(row.id)
        else:
            await self.transition(row.id, "completed", {"current_step": None})
            return Advance.done()
        current = await self.row(row.id)
        return Advance.done() if current.status in self.final else Advance.again_in(self.poll_seconds)

    async def _steps(self, run_id: str) -> list[Any]:
        async with self.engine.connect() as conn:
            return list(
                (
                    await conn.execute(
                        contribution_run_steps.select()
                        .where(contribution_run_steps.c.run_id == run_id)
                        .order_by(contribution_run_steps.c.position)
                    )
                ).all()
            )

    async def _work(self, row: Any, step: Any, context: CallContext) -> str:
        owner = Owner(row.client_id, row.environment)
        upstreams = self.upstreams_for(row.environment)
        if upstreams is None:
            return "waiting"
        try:
            handler = getattr(self, f"_step_{step.step}")
            return str(await handler(row, step, owner, upstreams, context))
        except ProblemError as exc:
            if exc.code in ("upstream_unavailable", "upstream_timeout", "outcome_unknown", "upstream_error"):
                log.warning("run %s: %s step waits: %s", row.id, step.step, exc.detail)
                return "waiting"
            await self._fail(row, step.step, exc.code, exc.detail or exc.title, exc.extensions.get("upstream"))
            return "failed"

    async def _mark(self, run_id: str, step: str, status: str, *, resource: tuple[str, str] | None = None,
                    reference: str | None = None, detail: dict[str, Any] | None = None) -> None:
        now = utcnow()
        values: dict[str, Any] = {"status": status}
        if status == "in_progress":
            values["started_at"] = func.coalesce(contribution_run_steps.c.started_at, now)
        if status in ("completed", "failed"):
            values["completed_at"] = now
        if resource is not None:
            values["resource_kind"], values["resource_id"] = resource
        if reference is not None:
            values["reference"] = reference
        if detail is not None:
            values["detail"] = json.dumps(detail, ensure_ascii=False)
        async with self.engine.begin() as conn:
            await conn.execute(
                contribution_run_steps.update()
                .where(contribution_run_steps.c.run_id == run_id, contribution_run_steps.c.step == step,
                       contribution_run_steps.c.status != "completed")
                .values(**values)
            )
            next_step = STEPS[STEPS.index(step) + 1] if status == "completed" and step != STEPS[-1] else step
            await conn.execute(
                contribution_runs.update().where(contribution_runs.c.id == run_id)
                .values(current_step=next_step, updated_at=now)
            )
            if status == "completed":
                run = (await conn.execute(contribution_runs.select().where(contribution_runs.c.id == run_id))).first()
                await self.events.publish(
                    conn, client_id=run.client_id, environment=run.environment, type="contribution_run.step_completed",
                    data={"step": step, "contribution_run": msgspec.to_builtins(await self.out(conn, run))},
                )
        if status == "completed":
            self.events.notify()

    async def _fail(self, row: Any, step: str, code: str, message: str, upstream: Any = None) -> None:
        await self._mark(row.id, step, "failed", detail={"code": code, "message": message})
        reason = {"step": step, "code": code, "message": message, "upstream": upstream}
        await self.transition(row.id, "failed", {"reason": json.dumps(reason, ensure_ascii=False)})

    async def _step_declaration(self, row: Any, step: Any, owner: Owner, upstreams: UpstreamSet, context: CallContext) -> str:
        if step.status == "pending":
            await self._mark(row.id, "declaration", "in_progress")
        try:
            out = await self.declarations.create(
                owner, self._stored_declaration(row), upstreams, context, f"crun-{row.id}"  # type: ignore[arg-type]
            )
        except ProblemError as exc:
            if exc.code == "upstream_rejected" and exc.extensions.get("declaration_id"):
                await self._mark(row.id, "declaration", "in_progress",
                                 resource=("declaration", exc.extensions["declaration_id"]))
            raise
        if step.resource_id is None:
            await self._mark(row.id, "declaration", "in_progress", resource=("declaration", out.id))
        if out.status in ("accepted", "partially_accepted"):
            amount = out.totals.accepted.employer + out.totals.accepted.employee
            async with self.engine.begin() as conn:
                await conn.execute(contribution_runs.update().where(contribution_runs.c.id == row.id).values(amount=str(amount)))
            await self._mark(row.id, "declaration", "completed", detail={
                "status": out.status, "amount": str(amount), "lines_accepted": out.totals.by_status.get("accepted", 0),
            })
            return "completed"
        return "waiting"

    async def _step_approval(self, row: Any, step: Any, owner: Owner, upstreams: UpstreamSet, context: CallContext) -> str:
        if step.resource_id is None:
            erp = find_erp(upstreams, row.erp)
            if step.status == "pending":
                await self._mark(row.id, "approval", "in_progress")
            approval_id = await self.approvals.start(
                owner, erp, "social_security_contribution", Decimal(row.amount), row.cost_center, row.period,  # type: ignore[arg-type]
                f"Social insurance {row.region} {row.period}",
                f"Social insurance contributions {row.period}, region {row.region}, employer {row.employer_uscc}",
                (), f"approval-{row.id}", context, origin="contribution_run", origin_id=row.id,
            )
            await self._mark(row.id, "approval", "in_progress", resource=("erp_approval", approval_id))
        else:
            approval_id = step.resource_id
        approval = await self.approvals.row(approval_id)
        if approval.status == "approved":
            await self._mark(row.id, "approval", "completed", detail={"document_number": approval.document_number})
            return "completed"
        if approval.status == "rejected":
            reason = json.loads(approval.reason) if approval.reason else {}
            await self._fail(row, "approval", "approval_rejected", reason.get("message") or "finance rejected the approval",
                             {"code": reason.get("code"), "message": reason.get("message")})
            return "failed"
        return "waiting"

    async def _step_payment(self, row: Any, step: Any, owner: Owner, upstreams: UpstreamSet, context: CallContext) -> str:
        if step.resource_id is None:
            bank = find_bank(upstreams, row.bank)
            debtor = debtor_party(
                self.cipher, upstreams, bank,
                self.cipher.decrypt(row.debtor_account_enc, "contribution_runs.debtor_account"), "debtor_account",
            )
            payee = json.loads(self.cipher.decrypt(row.payee_enc, "contribution_runs.payee"))
            if step.status == "pending":
                await self._mark(row.id, "payment", "in_progress")
            payment_id = await self.payments.start(
                owner, bank, debtor, AccountParty(payee["name"], str(payee["account"]), str(payee["bank_code"])),  # type: ignore[arg-type]
                Decimal(row.amount), "social_security_contribution",
                f"SI {row.region} {row.period} {row.employer_uscc}", f"payment-{row.id}", context,
                origin="contribution_run", origin_id=row.id,
            )
            await self._mark(row.id, "payment", "in_progress", resource=("payment", payment_id))
        else:
            payment_id = step.resource_id
        payment = await self.payments.row(payment_id)
        if payment.status == "settled":
            await self._mark(row.id, "payment", "completed",
                             detail={"settled_on": payment.settled_on, "upstream_reference": payment.reference})
            return "completed"
        if payment.status == "rejected":
            reason = json.loads(payment.reason) if payment.reason else {}
            await self._fail(row, "payment", "payment_rejected",
                             reason.get("upstream_message") or f"the bank rejected the payment ({reason.get('reason')})",
                             {"code": reason.get("upstream_code"), "message": reason.get("upstream_message"),
                              "reason": reason.get("reason")})
            return "failed"
        return "waiting"

    async def _step_confirmation(self, row: Any, step: Any, owner: Owner, upstreams: UpstreamSet, context: CallContext) -> str:
        bureau = upstreams.bureau_for(row.region, Capability.CONTRIBUTION_PAYMENT)
        if bureau is None or not isinstance(bureau, ContributionPayments):
            return "waiting"
        reference = upstream_reference(row.id) + "-C"
        steps = {s.step: s for s in await self._steps(row.id)}
        declaration = await self.declarations_row(steps["declaration"].resource_id)
        payment = await self.payments.row(steps["payment"].resource_id)
        sent_before = step.status == "in_progress"
        if not sent_before:
            await self._mark(row.id, "confirmation", "in_progress", reference=reference)
        notice = ContributionPaymentNotice(
            reference=reference, region=row.region, employer=Employer(row.employer_uscc, row.employer_name),
            period=row.period, declaration_reference=declaration.reference, amount=Decimal(row.amount),
            paid_on=dt.date.fromisoformat(payment.settled_on) if payment.settled_on else dt.date.today(),
            payment_reference=payment.reference,
        )
        try:
            receipt = await ask_then_send(
                lambda: bureau.find_contribution_payment(reference, context=context),
                lambda: bureau.notify_contribution_payment(notice, context=context),
                ask_first=sent_before,
            )
        except UpstreamError as exc:
            failure = classify(exc)
            if failure.kind is FailureKind.REJECTED:
                await self._fail(row, "confirmation", "confirmation_rejected", failure.upstream_message or failure.message,
                                 {"code": failure.upstream_code, "message": failure.upstream_message})
                return "failed"
            log.warning("run %s: the %s bureau could not be told now: %s", row.id, row.region, failure.message)
            return "waiting"
        if receipt.status == "confirmed":
            await self._mark(row.id, "confirmation", "completed", detail={
                "bureau_reference": receipt.bureau_reference,
                "confirmed_amount": str(receipt.confirmed_amount) if receipt.confirmed_amount is not None else None,
            })
            return "completed"
        if receipt.status == "rejected":
            await self._fail(row, "confirmation", "confirmation_rejected", receipt.reason_message or "refused",
                             {"code": receipt.reason_code, "message": receipt.reason_message})
            return "failed"
        return "waiting"

    async def declarations_row(self, declaration_id: str) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(declarations.select().where(declarations.c.id == declaration_id))).first()

    async def _step_voucher(self, row: Any, step: Any, owner: Owner, upstreams: UpstreamSet, context: CallContext) -> str:
        if step.resource_id is None:
            erp = find_erp(upstreams, row.erp)
            accounts = json.loads(row.accounts)
            amount = Decimal(row.amount)
            memo = f"Social insurance {row.region} {row.period}"
            lines = (
                VoucherLine(accounts["expense"], amount, _ZERO, row.cost_center, memo),
                VoucherLine(accounts["bank"], _ZERO, amount, None, memo),
            )
            if step.status == "pending":
                await self._mark(row.id, "voucher", "in_progress")
            voucher_id = await self.vouchers.start(
                owner, erp, dt.date.today(), lines, memo, f"{memo}, employer {row.employer_uscc}", (),  # type: ignore[arg-type]
                f"voucher-{row.id}", context, origin="contribution_run", origin_id=row.id,
            )
            await self._mark(row.id, "voucher", "in_progress", resource=("erp_voucher", voucher_id))
        else:
            voucher_id = step.resource_id
        voucher = await self.vouchers.row(voucher_id)
        if voucher.status == "posted":
            await self._mark(row.id, "voucher", "completed", detail={"document_number": voucher.document_number})
            return "completed"
        if voucher.status == "rejected":
            reason = json.loads(voucher.reason) if voucher.reason else {}
            await self._fail(row, "voucher", "voucher_rejected", reason.get("message") or "the ERP refused the voucher",
                             reason)
            return "failed"
        return "waiting"

    # -- deadlines -------------------------------------------------------------------

    async def _escalate(self, row: Any) -> None:
        now = utcnow()
        level = row.escalation_level
        due = [i + 1 for i, delay in enumerate(self.escalation_delays)
               if i + 1 > level and now >= row.payment_deadline + dt.timedelta(seconds=delay)]
        if not due:
            return
        async with self.engine.begin() as conn:
            updated = await conn.execute(
                contribution_runs.update()
                .where(contribution_runs.c.id == row.id, contribution_runs.c.escalation_level == level)
                .values(escalation_level=max(due), updated_at=now)
            )
            if updated.rowcount != 1:
                return  # another replica escalated it first
            run = (await conn.execute(contribution_runs.select().where(contribution_runs.c.id == row.id))).first()
            out = msgspec.to_builtins(await self.out(conn, run))
            for new_level in due:
                await self.events.publish(
                    conn, client_id=row.client_id, environment=row.environment, type="contribution_run.overdue",
                    data={"level": new_level, "step": run.current_step, "contribution_run": out},
                )
        self.events.notify()
        log.warning("run %s is overdue: escalation level %d (step %s)", row.id, max(due), row.current_step)

    # -- what the client sees --------------------------------------------------------

    async def out(self, conn: AsyncConnection, row: Any) -> ContributionRunOut:
        steps = (
            await conn.execute(
                contribution_run_steps.select()
                .where(contribution_run_steps.c.run_id == row.id)
                .order_by(contribution_run_steps.c.position)
            )
        ).all()
        remaining = int((row.payment_deadline - utcnow()).total_seconds())
        return ContributionRunOut(
            id=row.id, status=row.status, employer=Employer(row.employer_uscc, row.employer_name), region=row.region,
            period=row.period, erp=row.erp, bank=row.bank, cost_center=row.cost_center,
            amount=Decimal(row.amount) if row.amount else None,
            current_step=row.current_step if row.status == "running" else None,
            steps=[
                RunStepOut(
                    step=s.step, status=s.status,
                    resource={"kind": s.resource_kind, "id": s.resource_id} if s.resource_id else (
                        {"kind": "bureau_confirmation", "reference": s.reference} if s.reference else None),
                    started_at=s.started_at, completed_at=s.completed_at,
                    detail=json.loads(s.detail) if s.detail else None,
                )
                for s in steps
            ],
            deadline=DeadlineOut(at=row.payment_deadline, seconds_remaining=remaining,
                                 overdue=remaining < 0 and row.status == "running"),
            escalation_level=row.escalation_level,
            failure=json.loads(row.reason) if row.reason else None,
            created_at=row.created_at, updated_at=row.updated_at,
        )
