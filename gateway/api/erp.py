"""ERP documents: finance approvals with their budget comparison, vouchers, budgets."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, get, post
from litestar.params import QueryParameter

from ..idempotency import IDEMPOTENCY_TOKEN
from .dependencies import ApiCall
from .schemas import ApprovalIn, ApprovalOut, BudgetOut, VoucherIn, VoucherOut
from .social_security import IDEMPOTENCY_HEADER

__all__ = ["ErpController"]


class ErpController(Controller):
    path = "/v1/erp"
    tags = ["erp"]

    @post("/approvals", opt={"scope": "erp:write", "idempotent": True}, status_code=202, summary="Ask finance to approve")
    async def create_approval(
        self, data: ApprovalIn, idempotency_key: IDEMPOTENCY_HEADER, call: ApiCall, request: Request
    ) -> ApprovalOut:
        """The budget of `cost_center` for `period` is read first and returned as `budget`
        (`remaining` = budget - committed - requested); the decision is polled and announced by webhook."""
        return await call.gateway.approvals.create(
            call.client, data, call.upstreams, call.context, request.scope.get(IDEMPOTENCY_TOKEN)
        )

    @get("/approvals/{approval_id:str}", opt={"scope": "erp:read"}, summary="An approval request")
    async def get_approval(self, approval_id: str, call: ApiCall) -> ApprovalOut:
        return await call.gateway.approvals.get(call.client.id, approval_id)  # type: ignore[no-any-return]

    @post("/vouchers", opt={"scope": "erp:write", "idempotent": True}, status_code=201, summary="Post a journal voucher")
    async def create_voucher(
        self, data: VoucherIn, idempotency_key: IDEMPOTENCY_HEADER, call: ApiCall, request: Request
    ) -> VoucherOut:
        """Debits must equal credits (else 422 `voucher_unbalanced`). Answers with the ERP's document number once
        posted; an ERP whose workflow is still under way answers `pending`, and the gateway follows it."""
        return await call.gateway.vouchers.create(
            call.client, data, call.upstreams, call.context, request.scope.get(IDEMPOTENCY_TOKEN)
        )

    @get("/vouchers/{voucher_id:str}", opt={"scope": "erp:read"}, summary="A voucher")
    async def get_voucher(self, voucher_id: str, call: ApiCall) -> VoucherOut:
        return await call.gateway.vouchers.get(call.client.id, voucher_id)  # type: ignore[no-any-return]

    @get("/budgets/{cost_center:str}", opt={"scope": "erp:read"}, summary="A cost centre's budget for a period")
    async def get_budget(
        self,
        cost_center: str,
        call: ApiCall,
        period: Annotated[str, QueryParameter(name="period", pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")],
        erp: Annotated[str | None, QueryParameter(name="erp", description="ERP instance (default: the only one)")] = None,
    ) -> BudgetOut:
        return await call.gateway.budgets.get(call.upstreams, erp, cost_center, period, call.context)
