"""Reimbursements: pay a claim only when the last three months of contributions are paid.

The check is the contribution-status check over every region (three months ending
at ``until``, or at the latest month on record). Not eligible: the reimbursement is
``blocked`` with the months and reasons, and ``recheck`` tries again once HR has
had the arrears fixed. Eligible: a payment to the employee's account is created
(``origin`` reimbursement) and followed until it settles (``paid``) or is refused
(``rejected``). Every status is a webhook (``reimbursement.<status>``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters import AccountParty, CallContext, Person

from ..api.schemas import (
    AttachmentIn,
    BlockedMonth,
    MaskedAccountParty,
    MaskedPerson,
    ReimbursementIn,
    ReimbursementOut,
)
from ..auth import Client
from ..encryption import FieldCipher, mask_account_number, mask_id_number, mask_name
from ..errors import ProblemError
from ..ids import new_id
from ..registry import UpstreamSet
from ..store import reimbursements
from ..validation import check_amount, check_id_number
from ..workers import Advance, utcnow
from .accounts import debtor_party
from .contribution_status import check_contribution_status
from .events import EventPublisher
from .payments import PaymentService, check_creditor, find_bank
from .timeline import load_timeline, record_status
from .tracked import TrackedResource

__all__ = ["Owner", "ReimbursementService"]

log = logging.getLogger("hr_gateway.reimbursements")

#: How many months of contributions a claim needs (the customer's rule).
CHECKED_MONTHS = 3


@dataclass(frozen=True)
class Owner:
    """The client a background step acts for (its id and environment are all it needs)."""

    id: str
    environment: str


class ReimbursementService(TrackedResource):
    table = reimbursements
    kind = "reimbursement"
    final = frozenset({"paid", "rejected"})
    announced = frozenset({"blocked", "paying", "paid", "rejected"})
    not_found = "no reimbursement with this id for this client"

    def __init__(
        self, engine: AsyncEngine, cipher: FieldCipher, events: EventPublisher, upstreams_for: Any, *,
        poll_seconds: float, payments: PaymentService, search_deadline: float,
    ) -> None:
        super().__init__(engine, cipher, events, upstreams_for, poll_seconds=poll_seconds)
        self.payments = payments
        self.search_deadline = search_deadline

    async def create(
        self, client: Client, body: ReimbursementIn, upstreams: UpstreamSet, context: CallContext, token: str | None
    ) -> ReimbursementOut:
        row = await self.find_by_token(client.id, token)
        if row is None:
            person = Person(check_id_number(body.employee.id_number, "employee.id_number"), body.employee.name.strip())
            amount = check_amount(body.amount, "amount")
            payout_name = body.payout_account.name or person.name
            payout = check_creditor(payout_name, body.payout_account.account, body.payout_account.bank_code, "payout_account")
            bank, debtor = self._paying_account(upstreams, body)
            row = await self._insert(client, person, amount, payout, body, bank.name, debtor, token)
        if row.status == "checking":
            await self._check_and_pay(row, context.with_gateway_id(row.id))
        return await self.get(client.id, row.id)

    async def recheck(self, client: Client, reimbursement_id: str, context: CallContext) -> ReimbursementOut:
        out: ReimbursementOut = await self.get(client.id, reimbursement_id)
        if out.status not in ("blocked", "checking"):
            raise ProblemError(
                "reimbursement_not_blocked", f"the reimbursement is {out.status}; only a blocked one is checked again"
            )
        row = await self.row(reimbursement_id)
        await self._check_and_pay(row, context.with_gateway_id(row.id))
        return await self.get(client.id, reimbursement_id)

    def _paying_account(self, upstreams: UpstreamSet, body: ReimbursementIn) -> tuple[Any, AccountParty]:
        if body.bank is not None:
            bank = find_bank(upstreams, body.bank)
            number = body.debtor_account or bank.config.options.get("reimbursement_account")
        else:
            # The operator names the account claims are paid from on one bank instance.
            bank = next(
                (b for n in upstreams.names("bank") if (b := upstreams.bank(n)) and b.config.options.get("reimbursement_account")),
                None,
            )
            if bank is None:
                raise ProblemError("unknown_bank", "bank: none given and no bank is configured to pay reimbursements",
                                   field="bank", known=upstreams.names("bank"))
            number = body.debtor_account or bank.config.options["reimbursement_account"]
        if not number:
            raise ProblemError("unknown_debtor_account", f"debtor_account: {bank.name} has no reimbursement account; "
                               "name one", field="debtor_account")
        return bank, debtor_party(self.cipher, upstreams, bank, str(number), "debtor_account")

    async def _insert(
        self, client: Client, person: Person, amount: Decimal, payout: AccountParty, body: ReimbursementIn,
        bank: str, debtor: AccountParty, token: str | None,
    ) -> Any:
        reimbursement_id = new_id("rmb")
        now = utcnow()
        party = {"name": payout.name, "account": payout.account, "bank_code": payout.bank_code}
        async with self.engine.begin() as conn:
            await conn.execute(
                reimbursements.insert().values(
                    id=reimbursement_id, client_id=client.id, environment=client.environment, idempotency_token=token,
                    person_bidx=self.cipher.blind_index(person.id_number),
                    id_number_enc=self.cipher.encrypt(person.id_number, "reimbursements.id_number"),
                    name_enc=self.cipher.encrypt(person.name, "reimbursements.name"),
                    amount=str(amount),
                    payout_enc=self.cipher.encrypt(json.dumps(party, ensure_ascii=False), "reimbursements.payout"),
                    documents=json.dumps([{"kind": d.kind, "sha256": d.sha256, "name": d.name} for d in body.documents]),
                    bank=bank,
                    debtor_account_enc=self.cipher.encrypt(debtor.account, "reimbursements.debtor_account"),
                    until_period=body.until, status="checking",
                    next_poll_at=now + dt.timedelta(seconds=30), poll_attempts=0, created_at=now, updated_at=now,
                )
            )
            await record_status(conn, self.kind, reimbursement_id, "checking")
            return (await conn.execute(reimbursements.select().where(reimbursements.c.id == reimbursement_id))).first()

    async def _check_and_pay(self, row: Any, context: CallContext) -> None:
        upstreams = self.upstreams_for(row.environment)
        if upstreams is None:
            return
        person = Person(
            self.cipher.decrypt(row.id_number_enc, "reimbursements.id_number"),
            self.cipher.decrypt(row.name_enc, "reimbursements.name"),
        )
        decision, _ = await check_contribution_status(
            upstreams, person, CHECKED_MONTHS, row.until_period, context,
            today=dt.date.today(), deadline=time.monotonic() + self.search_deadline,
        )
        check = {
            "checked_at": utcnow().isoformat(),
            "window": {"first": decision.window.first, "last": decision.window.last} if decision.window else None,
            "complete": decision.complete,
            "eligible": decision.eligible,
            "reasons": [
                {"code": r.code, "message": r.message, "period": r.period, "insurance_type": r.insurance_type,
                 "region": r.region}
                for r in decision.reasons
            ],
            "months": [
                {"period": m.period, "insurance_type": m.insurance_type, "status": m.status, "region": m.region}
                for m in decision.months
            ],
        }
        if not decision.eligible:
            if not decision.reasons:
                check["reasons"] = [{"code": "no_contributions", "message": "no contributions on record in the window",
                                     "period": None, "insurance_type": None, "region": None}]
            await self.transition(row.id, "blocked", {"eligibility": json.dumps(check, ensure_ascii=False), "next_poll_at": None})
            return
        bank = upstreams.bank(row.bank)
        if bank is None:
            raise ProblemError("unknown_bank", f"bank {row.bank!r} is no longer configured")
        payout = json.loads(self.cipher.decrypt(row.payout_enc, "reimbursements.payout"))
        debtor = debtor_party(
            self.cipher, upstreams, bank, self.cipher.decrypt(row.debtor_account_enc, "reimbursements.debtor_account"),
            "debtor_account",
        )
        # Recorded before the payment is created: a crash in between finds it by its token.
        await self.transition(row.id, "checking", {"eligibility": json.dumps(check, ensure_ascii=False)})
        payment_id = await self.payments.start(
            Owner(row.client_id, row.environment), bank, debtor, AccountParty(**payout), Decimal(row.amount),
            "reimbursement", f"Reimbursement {row.id}", f"reimb-{row.id}", context,
            origin="reimbursement", origin_id=row.id,
        )
        await self.transition(row.id, "paying", {"payment_id": payment_id})
        await self._follow_payment(row.id, payment_id)

    async def _follow_payment(self, reimbursement_id: str, payment_id: str) -> None:
        status, reason = await self.payments.status_of(payment_id)
        if status == "settled":
            await self.transition(reimbursement_id, "paid")
        elif status == "rejected":
            await self.transition(reimbursement_id, "rejected", {"reason": json.dumps(reason, ensure_ascii=False)})

    async def advance(self, row: Any) -> Advance:
        if row.status in self.final or row.status == "blocked":
            return Advance.done()
        context = CallContext(request_id=f"poll-{row.id}", client_id=row.client_id, gateway_id=row.id)
        if row.status == "checking":
            await self._check_and_pay(row, context)
        elif row.payment_id:
            await self._follow_payment(row.id, row.payment_id)
        current = await self.row(row.id)
        if current.status in self.final or current.status == "blocked":
            return Advance.done()
        return Advance.again_in(self.poll_seconds)

    async def out(self, conn: AsyncConnection, row: Any) -> ReimbursementOut:
        payout = json.loads(self.cipher.decrypt(row.payout_enc, "reimbursements.payout"))
        check = json.loads(row.eligibility) if row.eligibility else None
        blocked = []
        if row.status == "blocked" and check:
            blocked = [
                BlockedMonth(r["period"] or "", r["insurance_type"] or "", r["code"], r["message"])
                for r in check["reasons"]
            ]
        return ReimbursementOut(
            id=row.id, status=row.status,
            employee=MaskedPerson(mask_id_number(self.cipher.decrypt(row.id_number_enc, "reimbursements.id_number"))),
            amount=Decimal(row.amount),
            payout_account=MaskedAccountParty(
                mask_name(payout["name"]), mask_account_number(payout["account"]), payout["bank_code"]
            ),
            documents=[AttachmentIn(**d) for d in json.loads(row.documents)],
            bank=row.bank, check=check, blocked=blocked, payment_id=row.payment_id,
            rejection=json.loads(row.reason) if row.reason else None,
            timeline=await load_timeline(conn, self.kind, row.id),
            created_at=row.created_at, updated_at=row.updated_at,
        )
