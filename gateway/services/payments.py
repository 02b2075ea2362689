"""Payments: credit transfers in CNY through a bank, with exactly-once effect.

A payment gets its id and its upstream reference (derived from the id) before the
bank is called; after an ambiguous failure the bank is asked by that reference
before anything is sent again (``ask_then_send``; the adapter does the same within
one attempt). Status moves ``pending -> submitted -> accepted -> settled`` or to
``rejected``; the poller follows the bank until a final status, and each change is
a webhook (``payment.<status>``). Contribution runs and reimbursements create
their payments through ``start`` with their own idempotency token and ``origin``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters import AccountParty, BankAdapter, CallContext, PaymentReceipt, PaymentSubmission

from ..api.schemas import MaskedAccountParty, PaymentIn, PaymentOut, PaymentRejection
from ..auth import Client
from ..encryption import mask_account_number, mask_name
from ..errors import ProblemError
from ..ids import new_id, upstream_reference
from ..registry import UpstreamSet
from ..store import payments
from ..validation import check_account_number, check_amount, check_bank_code, check_currency
from ..workers import utcnow
from .accounts import debtor_party
from .timeline import load_timeline, record_status
from .tracked import UpstreamDocument
from .upstream_outcomes import Failure

__all__ = ["PaymentService", "check_creditor", "find_bank"]

log = logging.getLogger("hr_gateway.payments")
_FINAL = frozenset({"settled", "rejected"})
_ORDER = {"pending": 0, "submitted": 1, "accepted": 2, "settled": 3, "rejected": 3}


def find_bank(upstreams: UpstreamSet, name: str, field: str = "bank") -> BankAdapter:
    bank = upstreams.bank(name)
    if bank is None:
        raise ProblemError(
            "unknown_bank", f"{field}: no bank named {name!r} for this key", field=field, known=upstreams.names("bank")
        )
    return bank


def check_creditor(name: str, account: str, bank_code: str, field: str) -> AccountParty:
    return AccountParty(
        name.strip(),
        check_account_number(account, f"{field}.account"),
        check_bank_code(bank_code, f"{field}.bank_code"),
    )


class PaymentService(UpstreamDocument):
    table = payments
    kind = "payment"
    final = _FINAL
    unsent = "pending"
    not_found = "no payment with this id for this client"

    # -- the API ---------------------------------------------------------------------

    async def create(
        self, client: Client, body: PaymentIn, upstreams: UpstreamSet, context: CallContext, token: str | None
    ) -> PaymentOut:
        bank = find_bank(upstreams, body.bank)
        check_currency(body.currency, "currency")
        amount = check_amount(body.amount, "amount")
        creditor = check_creditor(body.creditor.name, body.creditor.account, body.creditor.bank_code, "creditor")
        debtor = debtor_party(self.cipher, upstreams, bank, body.debtor_account, "debtor_account")
        payment_id = await self.start(
            client, bank, debtor, creditor, amount, body.purpose, body.reference.strip(), token, context
        )
        return await self.get(client.id, payment_id)

    async def start(
        self,
        client: Client,
        bank: BankAdapter,
        debtor: AccountParty,
        creditor: AccountParty,
        amount: Decimal,
        purpose: str,
        remittance: str,
        token: str | None,
        context: CallContext,
        *,
        origin: str = "api",
        origin_id: str | None = None,
    ) -> str:
        """Create the payment (or find the one created with ``token``) and send it now."""
        row = await self.find_by_token(client.id, token)
        resumed = row is not None
        if row is None:
            try:
                row = await self._insert(
                    client, bank, debtor, creditor, amount, purpose, remittance, token, origin, origin_id
                )
            except IntegrityError:
                # Created by a concurrent call with the same token: that one is the payment.
                row, resumed = await self.find_by_token(client.id, token), True
                if row is None:
                    raise
        if row.status == "pending":
            await self.submit(row, context.with_gateway_id(row.id), ask_first=resumed)
        return str(row.id)

    async def _insert(
        self,
        client: Client,
        bank: BankAdapter,
        debtor: AccountParty,
        creditor: AccountParty,
        amount: Decimal,
        purpose: str,
        remittance: str,
        token: str | None,
        origin: str,
        origin_id: str | None,
    ) -> Any:
        payment_id = new_id("pay")
        now = utcnow()
        async with self.engine.begin() as conn:
            await conn.execute(
                payments.insert().values(
                    id=payment_id,
                    client_id=client.id,
                    environment=client.environment,
                    idempotency_token=token,
                    bank=bank.name,
                    debtor_enc=self.cipher.encrypt(json.dumps(_party(debtor)), "payments.debtor"),
                    creditor_enc=self.cipher.encrypt(json.dumps(_party(creditor)), "payments.creditor"),
                    amount=str(amount),
                    currency="CNY",
                    purpose=purpose,
                    remittance_enc=self.cipher.encrypt(remittance, "payments.remittance"),
                    status="pending",
                    reference=upstream_reference(payment_id),
                    origin=origin,
                    origin_id=origin_id,
                    # Due only if this request dies before sending: then the poller sends it (asking first).
                    next_poll_at=now + dt.timedelta(seconds=30),
                    poll_attempts=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            await record_status(conn, self.kind, payment_id, "pending")
            return (await conn.execute(payments.select().where(payments.c.id == payment_id))).first()

    # -- talking to the bank ---------------------------------------------------------

    def _submission(self, row: Any) -> PaymentSubmission:
        debtor = json.loads(self.cipher.decrypt(row.debtor_enc, "payments.debtor"))
        creditor = json.loads(self.cipher.decrypt(row.creditor_enc, "payments.creditor"))
        return PaymentSubmission(
            reference=row.reference,
            debtor=AccountParty(**debtor),
            creditor=AccountParty(**creditor),
            amount=Decimal(row.amount),
            purpose=row.purpose,
            remittance=self.cipher.decrypt(row.remittance_enc, "payments.remittance"),
            requested_on=row.created_at.date(),
        )

    def upstream(self, row: Any) -> BankAdapter | None:
        upstreams = self.upstreams_for(row.environment)
        return upstreams.bank(row.bank) if upstreams else None

    async def ask(self, upstream: BankAdapter, row: Any, context: CallContext) -> PaymentReceipt | None:
        return await upstream.find_payment(row.reference, context=context)

    async def send(self, upstream: BankAdapter, row: Any, context: CallContext) -> PaymentReceipt:
        return await upstream.initiate_payment(self._submission(row), context=context)

    def refused(self, failure: Failure) -> dict[str, Any]:
        return {"reason": json.dumps({
            "reason": "other", "upstream_code": failure.upstream_code, "upstream_message": failure.upstream_message,
        }, ensure_ascii=False)}

    async def apply(self, row: Any, receipt: PaymentReceipt) -> None:
        await self._apply(row.id, receipt)

    async def _apply(self, payment_id: str, receipt: PaymentReceipt) -> None:
        row = await self.row(payment_id)
        if row is None or row.status in _FINAL:
            return
        status = receipt.status
        # Banks report in order, but a status query may race a newer answer: never move back.
        if _ORDER[status] < _ORDER[row.status]:
            status = row.status
        values: dict[str, Any] = {"bank_reference": receipt.bank_reference or row.bank_reference}
        if status == "rejected":
            values["reason"] = json.dumps(
                {"reason": receipt.reason or "other", "upstream_code": receipt.upstream_code,
                 "upstream_message": receipt.upstream_message}, ensure_ascii=False,
            )
        if status == "settled":
            values["settled_on"] = (receipt.settled_on or dt.date.today()).isoformat()
        # Each status the bank passed through is on the timeline, even if a poll saw two at once.
        for step in ("submitted", "accepted"):
            if _ORDER[row.status] < _ORDER[step] < _ORDER[status] and status != "rejected":
                await self.transition(payment_id, step)
        await self.transition(payment_id, status, values)

    # -- what the client sees --------------------------------------------------------

    async def out(self, conn: AsyncConnection, row: Any) -> PaymentOut:
        reason = json.loads(row.reason) if row.reason else None
        return PaymentOut(
            id=row.id,
            status=row.status,
            bank=row.bank,
            debtor=self._masked(row.debtor_enc, "payments.debtor"),
            creditor=self._masked(row.creditor_enc, "payments.creditor"),
            amount=Decimal(row.amount),
            currency=row.currency,
            purpose=row.purpose,
            reference=self.cipher.decrypt(row.remittance_enc, "payments.remittance"),
            upstream_reference=row.reference,
            bank_reference=row.bank_reference,
            rejection=PaymentRejection(**reason) if reason else None,
            settled_on=dt.date.fromisoformat(row.settled_on) if row.settled_on else None,
            origin={"kind": row.origin, "id": row.origin_id} if row.origin != "api" and row.origin_id else None,
            timeline=await load_timeline(conn, self.kind, row.id),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def _masked(self, token: str, column: str) -> MaskedAccountParty:
        party = json.loads(self.cipher.decrypt(token, column))
        return MaskedAccountParty(mask_name(party["name"]), mask_account_number(party["account"]), party["bank_code"])

    async def status_of(self, payment_id: str) -> tuple[str, dict[str, Any] | None]:
        row = await self.row(payment_id)
        return row.status, (json.loads(row.reason) if row.reason else None)


def _party(party: AccountParty) -> dict[str, str]:
    return {"name": party.name, "account": party.account, "bank_code": party.bank_code}


