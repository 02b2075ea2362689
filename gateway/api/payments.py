"""Payments through banks, and the accounts the gateway pays from with their statements."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from litestar import Controller, Request, get, post
from litestar.params import QueryParameter

from ..idempotency import IDEMPOTENCY_TOKEN
from .dependencies import ApiCall
from .schemas import AccountOut, PaymentIn, PaymentOut, StatementOut
from .social_security import IDEMPOTENCY_HEADER

__all__ = ["AccountsController", "PaymentsController"]


class PaymentsController(Controller):
    path = "/v1/payments"
    tags = ["payments"]

    @post("/", opt={"scope": "payments:create", "idempotent": True}, status_code=202, summary="Pay in CNY through a bank")
    async def create_payment(
        self, data: PaymentIn, idempotency_key: IDEMPOTENCY_HEADER, call: ApiCall, request: Request
    ) -> PaymentOut:
        """`bank` is an adapter instance (GET /v1/adapters), `debtor_account` one of its accounts (GET /v1/accounts).
        The payment is sent at once and followed until `settled` or `rejected`; each change is a webhook.
        It takes effect at the bank at most once, whatever fails on the way."""
        return await call.gateway.payments.create(
            call.client, data, call.upstreams, call.context, request.scope.get(IDEMPOTENCY_TOKEN)
        )

    @get("/{payment_id:str}", opt={"scope": "payments:read"}, summary="A payment, with its timeline")
    async def get_payment(self, payment_id: str, call: ApiCall) -> PaymentOut:
        return await call.gateway.payments.get(call.client.id, payment_id)  # type: ignore[no-any-return]


class AccountsController(Controller):
    path = "/v1/accounts"
    tags = ["payments"]

    @get("/", opt={"scope": "payments:read"}, summary="The accounts the gateway may pay from")
    async def list_accounts(self, call: ApiCall) -> list[AccountOut]:
        """Ids are opaque (account numbers never appear in a URL); numbers are masked."""
        return call.gateway.statements.list(call.upstreams)

    @get("/{account_id:str}/statements", opt={"scope": "payments:read"}, summary="An account's booked entries")
    async def statement(
        self,
        account_id: str,
        call: ApiCall,
        from_date: Annotated[dt.date, QueryParameter(name="from", description="First booking date (inclusive)")],
        to_date: Annotated[dt.date, QueryParameter(name="to", description="Last booking date (inclusive)")],
    ) -> StatementOut:
        """Entries from the bank's statement (camt.053 or its own format), normalised; an entry that carries a
        gateway payment's reference names that payment (`payment_id`), so the statement reconciles."""
        return await call.gateway.statements.statement(
            call.client, call.upstreams, account_id, from_date, to_date, call.context
        )
