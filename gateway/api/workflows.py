"""Workflows over several upstreams: the monthly contribution run and reimbursements."""

from __future__ import annotations

from litestar import Controller, Request, get, post

from ..idempotency import IDEMPOTENCY_TOKEN
from .dependencies import ApiCall
from .schemas import ContributionRunIn, ContributionRunOut, ReimbursementIn, ReimbursementOut
from .social_security import IDEMPOTENCY_HEADER

__all__ = ["ContributionRunsController", "ReimbursementsController"]


class ContributionRunsController(Controller):
    path = "/v1/social-security/contribution-runs"
    tags = ["social security"]

    @post(
        "/",
        opt={"scope": "social_security:submit", "idempotent": True},
        status_code=202,
        summary="Run a month's contributions: declaration, approval, payment, confirmation, voucher",
    )
    async def create_run(
        self, data: ContributionRunIn, idempotency_key: IDEMPOTENCY_HEADER, call: ApiCall, request: Request
    ) -> ContributionRunOut:
        """The declaration is checked at once (422 `declaration_invalid` creates nothing); the run then moves by
        itself, survives restarts without repeating a finished step, and stops with the reason if a step is refused.
        Past `payment_deadline`, unfinished runs raise `contribution_run.overdue` (levels 1-3)."""
        return await call.gateway.contribution_runs.create(
            call.client, data, call.upstreams, call.context, request.scope.get(IDEMPOTENCY_TOKEN)
        )

    @get("/{run_id:str}", opt={"scope": "social_security:read"}, summary="A contribution run: steps, deadline, escalation")
    async def get_run(self, run_id: str, call: ApiCall) -> ContributionRunOut:
        return await call.gateway.contribution_runs.get(call.client.id, run_id)  # type: ignore[no-any-return]


class ReimbursementsController(Controller):
    path = "/v1/reimbursements"
    tags = ["payments"]

    @post("/", opt={"scope": "payments:create", "idempotent": True}, status_code=202, summary="Reimburse a claim")
    async def create_reimbursement(
        self, data: ReimbursementIn, idempotency_key: IDEMPOTENCY_HEADER, call: ApiCall, request: Request
    ) -> ReimbursementOut:
        """Checks the employee's last 3 months of contributions in every region: `blocked` with the months and
        reasons if any is late or unpaid; otherwise paid out through the bank and followed to `paid`."""
        return await call.gateway.reimbursements.create(
            call.client, data, call.upstreams, call.context, request.scope.get(IDEMPOTENCY_TOKEN)
        )

    @post(
        "/{reimbursement_id:str}/recheck",
        opt={"scope": "payments:create", "idempotent": True},
        status_code=200,
        summary="Check a blocked reimbursement's contributions again",
    )
    async def recheck(
        self, reimbursement_id: str, idempotency_key: IDEMPOTENCY_HEADER, call: ApiCall
    ) -> ReimbursementOut:
        return await call.gateway.reimbursements.recheck(call.client, reimbursement_id, call.context)

    @get("/{reimbursement_id:str}", opt={"scope": "payments:read"}, summary="A reimbursement")
    async def get_reimbursement(self, reimbursement_id: str, call: ApiCall) -> ReimbursementOut:
        return await call.gateway.reimbursements.get(call.client.id, reimbursement_id)  # type: ignore[no-any-return]
