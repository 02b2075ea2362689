"""Terminations: stop a person's contributions with an employer from a leave date.

Bureaus take this as a one-line ``leave`` declaration (减员) for the month of the
leave date, so every bureau that accepts declarations accepts terminations. The
termination has its own resource, idempotency and webhooks
(``termination.accepted`` / ``termination.rejected``); undecided ones are polled.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import (
    INSURANCE_TYPES,
    CallContext,
    Capability,
    DeclarationLine,
    DeclarationReceipt,
    DeclarationSubmission,
    Employer,
    Person,
    UpstreamError,
)

from ..api.schemas import MaskedPerson, TerminationIn, TerminationOut
from ..auth import Client
from ..encryption import FieldCipher, mask_id_number
from ..errors import ProblemError
from ..ids import new_id, upstream_reference
from ..registry import UpstreamSet
from ..store import terminations
from ..validation import check_date, check_id_number, check_region, check_uscc
from ..workers import Advance, utcnow
from .events import EventPublisher
from .upstream_outcomes import FailureKind, ask_then_send, classify

__all__ = ["TerminationService"]

log = logging.getLogger("hr_gateway.terminations")
_ID_COLUMN = "terminations.id_number"
_NAME_COLUMN = "terminations.name"
_FINAL = frozenset({"accepted", "rejected"})


class TerminationService:
    def __init__(
        self,
        engine: AsyncEngine,
        cipher: FieldCipher,
        events: EventPublisher,
        upstreams_for: Callable[[str], UpstreamSet | None],
        *,
        poll_seconds: float,
    ) -> None:
        self.engine = engine
        self.cipher = cipher
        self.events = events
        self.upstreams_for = upstreams_for
        self.poll_seconds = poll_seconds

    async def create(
        self, client: Client, body: TerminationIn, upstreams: UpstreamSet, context: CallContext, idempotency_token: str | None
    ) -> TerminationOut:
        person = Person(check_id_number(body.employee.id_number, "employee.id_number"), body.employee.name.strip())
        employer = Employer(check_uscc(body.employer.uscc, "employer.uscc"), body.employer.name.strip())
        check_region(body.region, upstreams.regions(Capability.DECLARATION), "region")
        today = dt.date.today()
        check_date(body.leave_date, "leave_date", earliest=dt.date(1990, 1, 1), latest=today + dt.timedelta(days=366))
        types = body.insurance_types or list(INSURANCE_TYPES)
        if len(set(types)) != len(types):
            raise ProblemError("invalid_field", "insurance_types: a type is listed twice", field="insurance_types")
        row = await self._find_by_token(client, idempotency_token) if idempotency_token else None
        resumed = row is not None
        if row is None:
            row = await self._create(client, body, person, employer, types, upstreams, idempotency_token)
        if row.status == "submitting":
            await self._submit(row, context.with_gateway_id(row.id), ask_first=resumed)
        out = await self.get(client, row.id)
        if out.status == "rejected" and out.error:
            raise ProblemError(
                "upstream_rejected",
                f"the {out.region} bureau refused the termination: {out.error.get('upstream_message')}",
                upstream={"code": out.error.get("upstream_code"), "message": out.error.get("upstream_message")},
                termination_id=out.id,
            )
        return out

    async def get(self, client: Client, termination_id: str) -> TerminationOut:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    terminations.select().where(terminations.c.id == termination_id, terminations.c.client_id == client.id)
                )
            ).first()
        if row is None:
            raise ProblemError("not_found", "no termination with this id for this client")
        return self._out(row)

    def _out(self, row: Any) -> TerminationOut:
        return TerminationOut(
            id=row.id,
            status=row.status,
            region=row.region,
            employee=MaskedPerson(mask_id_number(self.cipher.decrypt(row.id_number_enc, _ID_COLUMN))),
            employer=Employer(row.employer_uscc, row.employer_name),
            leave_date=dt.date.fromisoformat(row.leave_date),
            insurance_types=row.insurance_types.split(),
            reason=row.reason,
            reference=row.reference,
            bureau_reference=row.bureau_reference,
            error=json.loads(row.error) if row.error else None,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    async def _find_by_token(self, client: Client, token: str) -> Any:
        async with self.engine.connect() as conn:
            return (
                await conn.execute(
                    terminations.select().where(
                        terminations.c.client_id == client.id, terminations.c.idempotency_token == token
                    )
                )
            ).first()

    async def _create(
        self,
        client: Client,
        body: TerminationIn,
        person: Person,
        employer: Employer,
        types: list[str],
        upstreams: UpstreamSet,
        token: str | None,
    ) -> Any:
        gateway_id = new_id("ter")
        now = utcnow()
        bureau = upstreams.bureau_for(body.region, Capability.DECLARATION)
        assert bureau is not None
        async with self.engine.begin() as conn:
            await conn.execute(
                terminations.insert().values(
                    id=gateway_id,
                    client_id=client.id,
                    environment=client.environment,
                    idempotency_token=token,
                    region=body.region,
                    upstream=bureau.name,
                    person_bidx=self.cipher.blind_index(person.id_number),
                    id_number_enc=self.cipher.encrypt(person.id_number, _ID_COLUMN),
                    name_enc=self.cipher.encrypt(person.name, _NAME_COLUMN),
                    employer_uscc=employer.uscc,
                    employer_name=employer.name,
                    leave_date=body.leave_date.isoformat(),
                    insurance_types=" ".join(t for t in INSURANCE_TYPES if t in types),
                    reason=body.reason,
                    status="submitting",
                    reference=upstream_reference(gateway_id),
                    # Due only if this request dies before submitting: then the poller does it.
                    next_poll_at=now + dt.timedelta(seconds=30),
                    poll_attempts=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            return (await conn.execute(terminations.select().where(terminations.c.id == gateway_id))).first()

    def _submission(self, row: Any) -> DeclarationSubmission:
        leave_date = dt.date.fromisoformat(row.leave_date)
        person = Person(self.cipher.decrypt(row.id_number_enc, _ID_COLUMN), self.cipher.decrypt(row.name_enc, _NAME_COLUMN))
        return DeclarationSubmission(
            reference=row.reference,
            region=row.region,
            employer=Employer(row.employer_uscc, row.employer_name),
            period=f"{leave_date.year:04d}-{leave_date.month:02d}",
            lines=(
                DeclarationLine(
                    line=1,
                    person=person,
                    change="leave",
                    insurance_types=tuple(row.insurance_types.split()),
                    contribution_base=None,
                    leave_date=leave_date,
                ),
            ),
        )

    async def _submit(self, row: Any, context: CallContext, *, ask_first: bool) -> bool:
        upstreams = self.upstreams_for(row.environment)
        bureau = upstreams.bureau_for(row.region, Capability.DECLARATION) if upstreams else None
        if bureau is None:
            return False
        try:
            receipt: DeclarationReceipt = await ask_then_send(
                lambda: bureau.find_declaration(row.reference, context=context),  # type: ignore[attr-defined]
                lambda: bureau.submit_declaration(self._submission(row), context=context),  # type: ignore[attr-defined]
                ask_first=ask_first,
            )
        except UpstreamError as exc:
            failure = classify(exc)
            if failure.kind is FailureKind.REJECTED:
                await self._apply(row.id, None, error=failure.as_error())
                return True
            log.warning("termination %s: the %s bureau could not take it now: %s", row.id, row.region, failure.message)
            async with self.engine.begin() as conn:
                await conn.execute(
                    terminations.update()
                    .where(terminations.c.id == row.id)
                    .values(next_poll_at=utcnow() + dt.timedelta(seconds=self.poll_seconds))
                )
            return False
        await self._apply(row.id, receipt)
        return True

    async def _follow(self, row: Any, context: CallContext) -> bool:
        upstreams = self.upstreams_for(row.environment)
        bureau = upstreams.bureau_for(row.region, Capability.DECLARATION) if upstreams else None
        if bureau is None:
            return False
        try:
            receipt = await bureau.find_declaration(row.reference, context=context)  # type: ignore[attr-defined]
        except UpstreamError as exc:
            log.warning("termination %s: asking the %s bureau failed: %s", row.id, row.region, classify(exc).message)
            return False
        if receipt is None:
            log.error("termination %s: the %s bureau no longer knows reference %s", row.id, row.region, row.reference)
            return False
        await self._apply(row.id, receipt)
        return True

    async def advance(self, row: Any) -> Advance:
        if row.status in _FINAL:
            return Advance.done()
        context = CallContext(request_id=f"poll-{row.id}", client_id=row.client_id, gateway_id=row.id)
        if row.status == "pending":
            # Acknowledged by the bureau: only ever ask, never send again.
            if not await self._follow(row, context):
                return Advance.back_off()
        elif not await self._submit(row, context, ask_first=True):
            return Advance.back_off()
        async with self.engine.connect() as conn:
            status = (await conn.execute(select(terminations.c.status).where(terminations.c.id == row.id))).scalar_one()
        return Advance.done() if status in _FINAL else Advance.again_in(self.poll_seconds)

    async def _apply(self, termination_id: str, receipt: DeclarationReceipt | None, *, error: dict[str, Any] | None = None) -> None:
        if receipt is not None and receipt.status != "pending":
            line = next((r for r in receipt.lines if r.line == 1), None)
            if receipt.status != "accepted":
                error = {
                    "code": "upstream_rejected",
                    "upstream_code": line.upstream_code if line else None,
                    "upstream_message": line.upstream_message if line else None,
                    "field": None,
                }
        status = "rejected" if error else ("pending" if receipt is None or receipt.status == "pending" else "accepted")
        async with self.engine.begin() as conn:
            row = (await conn.execute(terminations.select().where(terminations.c.id == termination_id))).first()
            if row is None or row.status in _FINAL:
                return
            await conn.execute(
                terminations.update()
                .where(terminations.c.id == termination_id)
                .values(
                    status=status,
                    bureau_reference=receipt.bureau_reference if receipt else row.bureau_reference,
                    # Undecided: ask the bureau again after one poll interval.
                    next_poll_at=None if status in _FINAL else utcnow() + dt.timedelta(seconds=self.poll_seconds),
                    error=json.dumps(error, ensure_ascii=False) if error else None,
                    updated_at=utcnow(),
                )
            )
            if status in _FINAL:
                updated = (await conn.execute(terminations.select().where(terminations.c.id == termination_id))).first()
                out = self._out(updated)
                await self.events.publish(
                    conn, client_id=row.client_id, environment=row.environment, type=f"termination.{status}",
                    data={"termination": msgspec.to_builtins(out)},
                )
        if status in _FINAL:
            self.events.notify()

