"""Enrolment: check for active participation elsewhere, then submit exactly once.

The enrolment row (with its deterministic upstream reference) is written before the
first upstream call and is linked to the Idempotency-Key. A retry of a request whose
outcome was unknown finds the row, asks the bureau whether the reference landed, and
only then submits again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import (
    AmbiguousOutcome,
    BureauAdapter,
    BusinessRejection,
    CallContext,
    Capability,
    Employer,
    EnrolmentReceipt,
    EnrolmentSubmission,
    Person,
    UpstreamAuthenticationError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    money,
)

from ..api.schemas import EnrolmentIn, EnrolmentOut, MaskedPerson
from ..auth import Client
from ..encryption import FieldCipher, mask_id_number
from ..errors import ProblemError
from ..ids import new_id, upstream_reference
from ..registry import UpstreamSet
from ..store import enrolments
from ..validation import check_amount, check_date, check_id_number, check_region, check_uscc
from ..workers import Advance
from .events import EventPublisher, NoEvents
from .participation import search_participation

__all__ = ["EnrolmentService"]

log = logging.getLogger("hr_gateway.enrolments")
_ID_COLUMN = "enrolments.id_number"
_NAME_COLUMN = "enrolments.name"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class EnrolmentService:
    def __init__(
        self,
        engine: AsyncEngine,
        cipher: FieldCipher,
        *,
        search_deadline: float,
        events: EventPublisher | None = None,
        upstreams_for: Callable[[str], UpstreamSet | None] | None = None,
        poll_seconds: float = 5.0,
    ) -> None:
        self.engine = engine
        self.cipher = cipher
        self.search_deadline = search_deadline
        self.events: EventPublisher = events or NoEvents()
        self.upstreams_for = upstreams_for
        self.poll_seconds = poll_seconds

    # -- reading ------------------------------------------------------------------

    def _out(self, row: Any) -> EnrolmentOut:
        return EnrolmentOut(
            id=row.id,
            status=row.status,
            region=row.region,
            employee=MaskedPerson(mask_id_number(self.cipher.decrypt(row.id_number_enc, _ID_COLUMN))),
            employer=Employer(uscc=row.employer_uscc, name=row.employer_name),
            hire_date=dt.date.fromisoformat(row.hire_date),
            insurance_types=row.insurance_types.split(),
            contribution_base=Decimal(row.contribution_base),
            reference=row.reference,
            bureau_reference=row.bureau_reference,
            error=json.loads(row.error) if row.error else None,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    async def get(self, client: Client, enrolment_id: str) -> EnrolmentOut:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    enrolments.select().where(enrolments.c.id == enrolment_id, enrolments.c.client_id == client.id)
                )
            ).first()
        if row is None:
            raise ProblemError("not_found", "no enrolment with this id for this client")
        return self._out(row)

    # -- validating ---------------------------------------------------------------

    @staticmethod
    def validate(body: EnrolmentIn, upstreams: UpstreamSet) -> tuple[Person, Employer, BureauAdapter]:
        person = Person(check_id_number(body.employee.id_number, "employee.id_number"), body.employee.name.strip())
        employer = Employer(check_uscc(body.employer.uscc, "employer.uscc"), body.employer.name.strip())
        region = check_region(body.region, upstreams.regions(Capability.ENROLMENT), "region")
        check_amount(body.contribution_base, "contribution_base")
        today = dt.date.today()
        check_date(body.hire_date, "hire_date", earliest=dt.date(1990, 1, 1), latest=today + dt.timedelta(days=366))
        if len(set(body.insurance_types)) != len(body.insurance_types):
            raise ProblemError("invalid_field", "insurance_types: a type is listed twice", field="insurance_types")
        bureau = upstreams.bureau_for(region, Capability.ENROLMENT)
        assert bureau is not None
        return person, employer, bureau

    # -- enrolling ----------------------------------------------------------------

    async def enrol(
        self, client: Client, body: EnrolmentIn, upstreams: UpstreamSet, context: CallContext, idempotency_token: str | None
    ) -> EnrolmentOut:
        """``idempotency_token`` identifies this use of the Idempotency-Key; a retry
        that carries it resumes the enrolment started under it."""
        person, employer, bureau = self.validate(body, upstreams)
        row = await self._find_by_token(client, idempotency_token) if idempotency_token else None
        resumed = row is not None
        if row is None:
            await self._refuse_if_active_elsewhere(person, body, upstreams, context)
            row = await self._create(client, body, person, employer, bureau, idempotency_token)
        elif row.status == "accepted":
            return self._out(row)
        elif row.status == "rejected":
            raise self._rejection(row, json.loads(row.error or "{}"))
        return await self._submit(row, person, employer, body, bureau, context.with_gateway_id(row.id), resumed=resumed)

    async def _refuse_if_active_elsewhere(
        self, person: Person, body: EnrolmentIn, upstreams: UpstreamSet, context: CallContext
    ) -> None:
        others = [r for r in upstreams.regions(Capability.PARTICIPATION_SEARCH) if r != body.region]
        result = await search_participation(upstreams, person, others, context, deadline=self.search_deadline)
        wanted = set(body.insurance_types)
        conflicts = [r for r in result.active() if r.insurance_type in wanted]
        if conflicts:
            raise ProblemError(
                "transfer_required",
                f"{mask_id_number(person.id_number)} is actively insured in "
                f"{', '.join(sorted({c.region for c in conflicts}))}; transfer the relationship to {body.region} first",
                conflicts=[
                    {
                        "region": c.region,
                        "insurance_type": c.insurance_type,
                        "status": c.status,
                        "employer": {"uscc": c.employer.uscc, "name": c.employer.name} if c.employer else None,
                        "start_date": c.start_date.isoformat() if c.start_date else None,
                        "paid_months": c.paid_months,
                    }
                    for c in conflicts
                ],
                target_region=body.region,
            )
        refused = [r for r in result.regions if r.outcome == "rejected"]
        if refused:
            # A bureau answered and said no (e.g. the name does not match its records):
            # retrying the same request cannot help, so this is a final outcome.
            raise ProblemError(
                "upstream_rejected",
                "a bureau refused the participation check: "
                + "; ".join(f"{r.region}: {(r.error or {}).get('upstream_message', '')}" for r in refused),
                regions=[{"region": r.region, **(r.error or {})} for r in refused],
            )
        if not result.complete:
            missing = [{"region": r.region, "outcome": r.outcome} for r in result.regions if r.outcome != "ok"]
            raise ProblemError(
                "participation_check_incomplete",
                "some regions could not be searched for active participation; retry with the same Idempotency-Key",
                regions=missing,
                headers={"Retry-After": "5"},
            )

    @staticmethod
    def _rejection(row: Any, error: dict[str, Any]) -> ProblemError:
        """The bureau's refusal of this enrolment, the same whenever it is reported."""
        return ProblemError(
            "upstream_rejected",
            f"the {row.region} bureau refused the enrolment: {error.get('upstream_message')}",
            upstream={"code": error.get("upstream_code"), "message": error.get("upstream_message")},
            field=error.get("field"),
            enrolment_id=row.id,
        )

    async def _find_by_token(self, client: Client, token: str) -> Any:
        async with self.engine.connect() as conn:
            return (
                await conn.execute(
                    enrolments.select().where(enrolments.c.client_id == client.id, enrolments.c.idempotency_token == token)
                )
            ).first()

    async def _create(
        self, client: Client, body: EnrolmentIn, person: Person, employer: Employer, bureau: BureauAdapter, token: str | None
    ) -> Any:
        gateway_id = new_id("enr")
        now = _now()
        values = dict(
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
            hire_date=body.hire_date.isoformat(),
            insurance_types=" ".join(body.insurance_types),
            contribution_base=str(money(body.contribution_base)),  # validated already
            status="submitting",
            reference=upstream_reference(gateway_id),
            created_at=now,
            updated_at=now,
        )
        async with self.engine.begin() as conn:
            await conn.execute(enrolments.insert().values(**values))
            return (await conn.execute(enrolments.select().where(enrolments.c.id == gateway_id))).first()

    async def _update(self, gateway_id: str, **values: Any) -> Any:
        """Change the enrolment; reaching a final status is announced (webhook) in the
        same transaction."""
        async with self.engine.begin() as conn:
            before = (await conn.execute(select(enrolments.c.status).where(enrolments.c.id == gateway_id))).scalar_one()
            await conn.execute(
                enrolments.update().where(enrolments.c.id == gateway_id).values(updated_at=_now(), **values)
            )
            row = (await conn.execute(enrolments.select().where(enrolments.c.id == gateway_id))).first()
            announce = row.status in ("accepted", "rejected") and row.status != before
            if announce:
                await self.events.publish(
                    conn, client_id=row.client_id, environment=row.environment, type=f"enrolment.{row.status}",
                    data={"enrolment": msgspec.to_builtins(self._out(row))},
                )
        if announce:
            self.events.notify()
        return row

    async def _submit(
        self,
        row: Any,
        person: Person,
        employer: Employer,
        body: EnrolmentIn,
        bureau: BureauAdapter,
        context: CallContext,
        *,
        resumed: bool,
    ) -> EnrolmentOut:
        submission = EnrolmentSubmission(
            reference=row.reference,
            region=row.region,
            person=person,
            employer=employer,
            hire_date=body.hire_date,
            insurance_types=tuple(body.insurance_types),
            contribution_base=Decimal(row.contribution_base),
        )
        try:
            receipt: EnrolmentReceipt | None = None
            # Resuming (a retry, or after a crash mid-call): the earlier attempt may have
            # landed, so ask the bureau before sending anything again.
            if resumed and Capability.ENROLMENT_LOOKUP in bureau.capabilities:
                receipt = await bureau.find_enrolment(row.reference, context=context)
            if receipt is None:
                receipt = await bureau.submit_enrolment(submission, context=context)
        except BusinessRejection as exc:
            field = f"employee.{exc.field}" if exc.field in ("id_number", "name") else exc.field
            error = {"code": "upstream_rejected", "upstream_code": exc.upstream_code,
                     "upstream_message": exc.upstream_message, "field": field}
            await self._update(row.id, status="rejected", error=json.dumps(error))
            raise self._rejection(row, error) from None
        except UpstreamAuthenticationError as exc:
            # Nothing landed, and retrying will not help until an operator fixes the credentials.
            raise ProblemError(
                "upstream_error",
                f"the {row.region} bureau refused the gateway's credentials ({exc.upstream_code})",
                upstream={"code": exc.upstream_code, "message": exc.upstream_message},
                enrolment_id=row.id,
            ) from None
        except (AmbiguousOutcome, UpstreamProtocolError):
            # No usable answer to a submission: it may have landed. Ask before resending.
            await self._update(row.id, status="outcome_unknown")
            raise ProblemError(
                "outcome_unknown",
                "the bureau did not confirm the enrolment; retry with the same Idempotency-Key and the gateway "
                "will ask the bureau before submitting again",
                enrolment_id=row.id,
                headers={"Retry-After": "5"},
            ) from None
        except UpstreamTimeout as exc:
            raise ProblemError("upstream_timeout", exc.message, enrolment_id=row.id) from None
        except UpstreamError as exc:
            raise ProblemError(
                "upstream_unavailable", f"the {row.region} bureau is unavailable: {exc.message}",
                enrolment_id=row.id, headers={"Retry-After": "5"},
            ) from None
        pending = receipt.status != "accepted"
        updated = await self._update(
            row.id, status="submitting" if pending else "accepted",
            bureau_reference=receipt.bureau_reference, error=None,
            # The bureau decides later: the poller follows it (see ``advance``).
            next_poll_at=_now() + dt.timedelta(seconds=self.poll_seconds) if pending else None,
        )
        return self._out(updated)

    # -- following a bureau that decides later ------------------------------------

    async def advance(self, row: Any) -> Advance:
        """The poller's step for an enrolment the bureau had not decided when it was
        submitted: ask by reference; record acceptance or refusal (with a webhook)."""
        if row.status != "submitting":
            return Advance.done()
        upstreams = self.upstreams_for(row.environment) if self.upstreams_for else None
        bureau = upstreams.bureau_for(row.region, Capability.ENROLMENT_LOOKUP) if upstreams else None
        if bureau is None:
            return Advance.back_off()
        context = CallContext(request_id=f"poll-{row.id}", client_id=row.client_id, gateway_id=row.id)
        try:
            receipt = await bureau.find_enrolment(row.reference, context=context)
        except BusinessRejection as exc:
            field = f"employee.{exc.field}" if exc.field in ("id_number", "name") else exc.field
            error = {"code": "upstream_rejected", "upstream_code": exc.upstream_code,
                     "upstream_message": exc.upstream_message, "field": field}
            await self._update(row.id, status="rejected", error=json.dumps(error))
            return Advance.done()
        except UpstreamError as exc:
            log.warning("enrolment %s: asking the %s bureau failed: %s", row.id, row.region, exc.message)
            return Advance.back_off()
        if receipt is None:
            # Never landed: the client's retry (same Idempotency-Key) submits it again.
            return Advance.done()
        if receipt.status == "accepted":
            await self._update(row.id, status="accepted", bureau_reference=receipt.bureau_reference)
            return Advance.done()
        return Advance.again_in(self.poll_seconds)
