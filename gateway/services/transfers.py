"""Transfers of the insurance relationship from one region to another (转移接续).

A transfer is two bureaus' work, tracked by the gateway:

1. the application goes to the *source* bureau (``submit_transfer_out``), which
   reviews it and transfers the funds: ``submitted -> source_reviewed ->
   funds_transferred`` (or ``rejected`` with its reason);
2. the gateway then registers what was carried (months, start date, funds) at the
   *target* bureau (``submit_transfer_in``); once accepted the transfer is ``completed``.

The request only creates the transfer and makes the first submission; the poller
(``gateway.workers``) advances it from then on, so it survives restarts and a
replica that dies mid-poll. Every stage reached is a timeline entry and a webhook,
written in the same transaction as the status change.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import case, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters import (
    INSURANCE_TYPES,
    BureauAdapter,
    CallContext,
    Capability,
    CarriedInsurance,
    ParticipationRecord,
    Person,
    TransferInReceipt,
    TransferInSubmission,
    TransferOutProgress,
    TransferOutSubmission,
    UpstreamError,
)

from ..api.schemas import MaskedPerson, TimelineEntry, TransferIn, TransferOut
from ..auth import Client
from ..encryption import FieldCipher, mask_id_number
from ..errors import ProblemError
from ..ids import new_id, upstream_reference
from ..registry import UpstreamSet
from ..store import transfer_events, transfers
from ..validation import check_id_number, check_region
from ..workers import Advance, utcnow
from .events import EventPublisher
from .participation import search_participation
from .upstream_outcomes import FailureKind, ask_then_send, classify

__all__ = ["FINAL_TRANSFER_STATES", "TransferService"]

log = logging.getLogger("hr_gateway.transfers")

_ID_COLUMN = "transfers.id_number"
_NAME_COLUMN = "transfers.name"
#: The stages a source bureau reports, in order; ``completed`` is the target's.
SOURCE_STAGES = ("submitted", "source_reviewed", "funds_transferred")
FINAL_TRANSFER_STATES = frozenset({"completed", "rejected"})


class TransferService:
    def __init__(
        self,
        engine: AsyncEngine,
        cipher: FieldCipher,
        events: EventPublisher,
        upstreams_for: Callable[[str], UpstreamSet | None],
        *,
        poll_seconds: float,
        search_deadline: float,
        lease: dt.timedelta = dt.timedelta(seconds=60),
    ) -> None:
        self.engine = engine
        self.cipher = cipher
        self.events = events
        self.upstreams_for = upstreams_for
        self.poll_seconds = poll_seconds
        self.search_deadline = search_deadline
        self.lease = lease

    # -- reading ------------------------------------------------------------------

    async def _row(self, client: Client, transfer_id: str) -> Any:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    transfers.select().where(transfers.c.id == transfer_id, transfers.c.client_id == client.id)
                )
            ).first()
        if row is None:
            raise ProblemError("not_found", "no transfer with this id for this client")
        return row

    async def get(self, client: Client, transfer_id: str) -> TransferOut:
        row = await self._row(client, transfer_id)
        async with self.engine.connect() as conn:
            return await self._out(conn, row)

    async def person_of(self, client: Client, transfer_id: str) -> tuple[Any, Person, list[ParticipationRecord]]:
        """The transfer, its applicant (decrypted) and the source records kept for the form."""
        row = await self._row(client, transfer_id)
        person = Person(self.cipher.decrypt(row.id_number_enc, _ID_COLUMN), self.cipher.decrypt(row.name_enc, _NAME_COLUMN))
        records = msgspec.json.decode(row.source_records, type=list[ParticipationRecord]) if row.source_records else []
        return row, person, records

    async def _out(self, conn: AsyncConnection, row: Any) -> TransferOut:
        events = (
            await conn.execute(
                transfer_events.select().where(transfer_events.c.transfer_id == row.id).order_by(transfer_events.c.id)
            )
        ).all()
        return TransferOut(
            id=row.id,
            status=row.status,
            person=MaskedPerson(mask_id_number(self.cipher.decrypt(row.id_number_enc, _ID_COLUMN))),
            from_region=row.from_region,
            to_region=row.to_region,
            insurance_types=row.insurance_types.split(),
            reference=row.reference,
            bureau_reference=row.bureau_reference,
            target_bureau_reference=row.target_bureau_reference,
            carried=_carried(row),
            reason=json.loads(row.reason) if row.reason else None,
            timeline=[
                TimelineEntry(e.stage, e.at, json.loads(e.detail) if e.detail else None) for e in events
            ],
            application=f"/v1/social-security/transfers/{row.id}/application",
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    # -- creating -----------------------------------------------------------------

    async def create(
        self, client: Client, body: TransferIn, upstreams: UpstreamSet, context: CallContext, idempotency_token: str | None
    ) -> TransferOut:
        person = Person(check_id_number(body.id_number, "id_number"), body.name.strip())
        if body.from_region == body.to_region:
            raise ProblemError(
                "same_region", "from_region and to_region are the same region; nothing to transfer", field="to_region"
            )
        check_region(body.from_region, upstreams.regions(Capability.TRANSFER_OUT), "from_region")
        check_region(body.to_region, upstreams.regions(Capability.TRANSFER_IN), "to_region")
        if len(set(body.insurance_types)) != len(body.insurance_types):
            raise ProblemError("invalid_field", "insurance_types: a type is listed twice", field="insurance_types")
        source = upstreams.bureau_for(body.from_region, Capability.TRANSFER_OUT)
        target = upstreams.bureau_for(body.to_region, Capability.TRANSFER_IN)
        assert source is not None and target is not None

        row = await self._find_by_token(client, idempotency_token) if idempotency_token else None
        resumed = row is not None
        holder = "req_" + (context.request_id or new_id("req"))
        if row is None:
            await self._refuse_if_open(client, person, body.from_region)
            records = await self._source_records(upstreams, person, body, context)
            # Created already claimed by this request, so the poller leaves it alone
            # until the first submission is done (or the lease runs out in a crash).
            row = await self._create(client, body, person, source, target, records, idempotency_token, holder)
        if row.status == "submitting":
            if not resumed or await self._claim(row.id, holder):
                try:
                    await self._submit_out(row, person, source, context.with_gateway_id(row.id), ask_first=resumed)
                finally:
                    await self._release(row.id, holder)
        async with self.engine.connect() as conn:
            row = (await conn.execute(transfers.select().where(transfers.c.id == row.id))).first()
            out = await self._out(conn, row)
        if out.status == "rejected" and out.reason and out.reason.get("stage") == "submitted":
            # Refused on receipt (e.g. the name does not match): a final, synchronous answer.
            raise ProblemError(
                "upstream_rejected",
                f"the {row.from_region} bureau refused the transfer application: {out.reason.get('upstream_message')}",
                upstream={"code": out.reason.get("upstream_code"), "message": out.reason.get("upstream_message")},
                transfer_id=row.id,
            )
        return out

    async def _refuse_if_open(self, client: Client, person: Person, from_region: str) -> None:
        bidx = self.cipher.blind_index(person.id_number)
        async with self.engine.connect() as conn:
            open_one = (
                await conn.execute(
                    select(transfers.c.id).where(
                        transfers.c.client_id == client.id,
                        transfers.c.person_bidx == bidx,
                        transfers.c.from_region == from_region,
                        transfers.c.status.not_in(list(FINAL_TRANSFER_STATES)),
                    )
                )
            ).first()
        if open_one is not None:
            raise ProblemError(
                "transfer_in_progress",
                f"a transfer of this person out of {from_region} is already in progress",
                transfer_id=open_one.id,
            )

    async def _source_records(
        self, upstreams: UpstreamSet, person: Person, body: TransferIn, context: CallContext
    ) -> list[ParticipationRecord]:
        """What the source holds, for the printed application; the bureau's own review
        decides whether the transfer can go ahead, so a failed lookup does not stop it."""
        if body.from_region not in upstreams.regions(Capability.PARTICIPATION_SEARCH):
            return []
        result = await search_participation(
            upstreams, person, [body.from_region], context, deadline=self.search_deadline
        )
        wanted = set(body.insurance_types)
        return [r for r in result.records if r.insurance_type in wanted]

    async def _find_by_token(self, client: Client, token: str) -> Any:
        async with self.engine.connect() as conn:
            return (
                await conn.execute(
                    transfers.select().where(transfers.c.client_id == client.id, transfers.c.idempotency_token == token)
                )
            ).first()

    async def _create(
        self,
        client: Client,
        body: TransferIn,
        person: Person,
        source: BureauAdapter,
        target: BureauAdapter,
        records: list[ParticipationRecord],
        token: str | None,
        holder: str,
    ) -> Any:
        gateway_id = new_id("trf")
        now = utcnow()
        reference = upstream_reference(gateway_id)
        async with self.engine.begin() as conn:
            await conn.execute(
                transfers.insert().values(
                    id=gateway_id,
                    client_id=client.id,
                    environment=client.environment,
                    idempotency_token=token,
                    from_region=body.from_region,
                    to_region=body.to_region,
                    source_upstream=source.name,
                    target_upstream=target.name,
                    person_bidx=self.cipher.blind_index(person.id_number),
                    id_number_enc=self.cipher.encrypt(person.id_number, _ID_COLUMN),
                    name_enc=self.cipher.encrypt(person.name, _NAME_COLUMN),
                    insurance_types=" ".join(t for t in INSURANCE_TYPES if t in body.insurance_types),
                    status="submitting",
                    reference=reference,
                    target_reference=reference + "-IN",
                    source_records=msgspec.json.encode(records).decode() if records else None,
                    # Due at once, but leased to this request: if it dies before
                    # submitting, the poller takes over when the lease runs out.
                    next_poll_at=now,
                    locked_until=now + self.lease,
                    lease_holder=holder,
                    poll_attempts=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            return (await conn.execute(transfers.select().where(transfers.c.id == gateway_id))).first()

    async def _claim(self, transfer_id: str, holder: str) -> bool:
        now = utcnow()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                transfers.update()
                .where(
                    transfers.c.id == transfer_id,
                    (transfers.c.locked_until.is_(None)) | (transfers.c.locked_until < now),
                )
                .values(locked_until=now + self.lease, lease_holder=holder)
            )
        return bool(result.rowcount)

    async def _release(self, transfer_id: str, holder: str) -> None:
        """Hand the transfer to the poller: due after one poll interval, or never if final."""
        next_poll_at = utcnow() + dt.timedelta(seconds=self.poll_seconds)
        async with self.engine.begin() as conn:
            await conn.execute(
                transfers.update()
                .where(transfers.c.id == transfer_id, transfers.c.lease_holder == holder)
                .values(
                    locked_until=None,
                    lease_holder=None,
                    next_poll_at=case((transfers.c.status.in_(list(FINAL_TRANSFER_STATES)), None), else_=next_poll_at),
                )
            )

    # -- advancing ----------------------------------------------------------------

    async def advance(self, row: Any) -> Advance:
        """The poller's step for one claimed transfer."""
        if row.status in FINAL_TRANSFER_STATES:
            return Advance.done()
        upstreams = self.upstreams_for(row.environment)
        if upstreams is None:
            log.warning("transfer %s: this gateway no longer serves the %s environment", row.id, row.environment)
            return Advance.back_off()
        person = Person(self.cipher.decrypt(row.id_number_enc, _ID_COLUMN), self.cipher.decrypt(row.name_enc, _NAME_COLUMN))
        context = CallContext(request_id=f"poll-{row.id}", client_id=row.client_id, gateway_id=row.id)
        if row.status in ("submitting", "submitted", "source_reviewed"):
            source = upstreams.bureau_for(row.from_region, Capability.TRANSFER_OUT)
            if source is None:
                return Advance.back_off()
            if row.status == "submitting":
                ok = await self._submit_out(row, person, source, context, ask_first=True)
            else:
                ok = await self._poll_out(row, source, context)
            if not ok:
                return Advance.back_off()
            async with self.engine.connect() as conn:
                row = (await conn.execute(transfers.select().where(transfers.c.id == row.id))).first()
        if row.status == "funds_transferred":
            target = upstreams.bureau_for(row.to_region, Capability.TRANSFER_IN)
            if target is None:
                return Advance.back_off()
            if not await self._transfer_in(row, person, target, context):
                return Advance.back_off()
            async with self.engine.connect() as conn:
                row = (await conn.execute(transfers.select().where(transfers.c.id == row.id))).first()
        return Advance.done() if row.status in FINAL_TRANSFER_STATES else Advance.again_in(self.poll_seconds)

    async def _submit_out(
        self, row: Any, person: Person, source: BureauAdapter, context: CallContext, *, ask_first: bool
    ) -> bool:
        """Submit to the source bureau (asking first whether an earlier attempt landed).
        False: no answer worth recording now; the poller tries again."""
        submission = TransferOutSubmission(
            reference=row.reference,
            region=row.from_region,
            to_region=row.to_region,
            person=person,
            insurance_types=tuple(row.insurance_types.split()),
        )
        try:
            progress: TransferOutProgress = await ask_then_send(
                lambda: source.transfer_out_status(row.reference, context=context),  # type: ignore[attr-defined]
                lambda: source.submit_transfer_out(submission, context=context),  # type: ignore[attr-defined]
                ask_first=ask_first,
            )
        except UpstreamError as exc:
            failure = classify(exc)
            if failure.kind is FailureKind.REJECTED:
                await self._record(
                    row.id, status="rejected", stages=[], rejection={
                        "stage": "submitted", "upstream_code": failure.upstream_code,
                        "upstream_message": failure.upstream_message,
                    },
                )
                return True
            log.warning("transfer %s: the %s bureau could not take the application now: %s", row.id, row.from_region, failure.message)
            return False
        await self._apply_progress(row, progress)
        return True

    async def _poll_out(self, row: Any, source: BureauAdapter, context: CallContext) -> bool:
        try:
            progress = await source.transfer_out_status(row.reference, context=context)  # type: ignore[attr-defined]
        except UpstreamError as exc:
            log.warning("transfer %s: polling the %s bureau failed: %s", row.id, row.from_region, classify(exc).message)
            return False
        if progress is None:
            # The bureau forgot an application it acknowledged: never resubmit blind.
            log.error("transfer %s: the %s bureau no longer knows reference %s", row.id, row.from_region, row.reference)
            return False
        await self._apply_progress(row, progress)
        return True

    async def _apply_progress(self, row: Any, progress: TransferOutProgress) -> None:
        if progress.stage == "rejected":
            await self._record(
                row.id, status="rejected", stages=["submitted"], bureau_reference=progress.bureau_reference,
                rejection={"stage": "source_review", "upstream_code": progress.reason_code,
                           "upstream_message": progress.reason_message},
            )
            return
        reached = list(SOURCE_STAGES[: SOURCE_STAGES.index(progress.stage) + 1])
        values: dict[str, Any] = {"bureau_reference": progress.bureau_reference}
        if progress.stage == "funds_transferred":
            values["carried"] = msgspec.json.encode(list(progress.carried)).decode()
        await self._record(row.id, status=progress.stage, stages=reached, **values)

    async def _transfer_in(self, row: Any, person: Person, target: BureauAdapter, context: CallContext) -> bool:
        submission = TransferInSubmission(
            reference=row.target_reference,
            region=row.to_region,
            from_region=row.from_region,
            source_reference=row.bureau_reference or row.reference,
            person=person,
            carried=tuple(_carried(row)),
        )
        try:
            # Always ask first: the poller may be resuming after a crash mid-send.
            receipt: TransferInReceipt = await ask_then_send(
                lambda: target.find_transfer_in(row.target_reference, context=context),  # type: ignore[attr-defined]
                lambda: target.submit_transfer_in(submission, context=context),  # type: ignore[attr-defined]
                ask_first=True,
            )
        except UpstreamError as exc:
            failure = classify(exc)
            if failure.kind is FailureKind.REJECTED:
                await self._record(
                    row.id, status="rejected", stages=[], rejection={
                        "stage": "transfer_in", "upstream_code": failure.upstream_code,
                        "upstream_message": failure.upstream_message,
                    },
                )
                return True
            log.warning("transfer %s: the %s bureau could not take the transfer in now: %s", row.id, row.to_region, failure.message)
            return False
        if receipt.status == "accepted":
            await self._record(row.id, status="completed", stages=["completed"], target_bureau_reference=receipt.bureau_reference)
        elif receipt.status == "rejected":
            await self._record(
                row.id, status="rejected", stages=[], target_bureau_reference=receipt.bureau_reference,
                rejection={"stage": "transfer_in", "upstream_code": receipt.reason_code,
                           "upstream_message": receipt.reason_message},
            )
        else:
            await self._record(row.id, status=row.status, stages=[], target_bureau_reference=receipt.bureau_reference)
        return True

    async def _record(
        self, transfer_id: str, *, status: str, stages: list[str], rejection: dict[str, Any] | None = None, **values: Any
    ) -> None:
        """Move to ``status``; add a timeline entry (and a webhook) for every stage in
        ``stages`` not reached before, then ``rejected`` if it was. One transaction."""
        now = utcnow()
        async with self.engine.begin() as conn:
            row = (await conn.execute(transfers.select().where(transfers.c.id == transfer_id))).first()
            if row is None or row.status in FINAL_TRANSFER_STATES:
                return
            seen = {
                e.stage
                for e in (
                    await conn.execute(select(transfer_events.c.stage).where(transfer_events.c.transfer_id == transfer_id))
                ).all()
            }
            new_stages = [s for s in stages if s not in seen]
            if rejection is not None:
                new_stages.append("rejected")
                values["reason"] = json.dumps(rejection, ensure_ascii=False)
            await conn.execute(
                transfers.update().where(transfers.c.id == transfer_id).values(status=status, updated_at=now, **values)
            )
            for stage in new_stages:
                detail = rejection if stage == "rejected" else _stage_detail(stage, values)
                await conn.execute(
                    transfer_events.insert().values(
                        transfer_id=transfer_id, stage=stage, at=now,
                        detail=json.dumps(detail, ensure_ascii=False) if detail else None,
                    )
                )
            if new_stages:
                updated = (await conn.execute(transfers.select().where(transfers.c.id == transfer_id))).first()
                out = msgspec.to_builtins(await self._out(conn, updated))
                for stage in new_stages:
                    await self.events.publish(
                        conn, client_id=row.client_id, environment=row.environment,
                        type=f"transfer.{stage}", data={"transfer": out},
                    )
        if new_stages:
            self.events.notify()
            log.info("transfer %s: %s", transfer_id, " -> ".join(new_stages))


def _carried(row: Any) -> list[CarriedInsurance]:
    return msgspec.json.decode(row.carried, type=list[CarriedInsurance]) if row.carried else []


def _stage_detail(stage: str, values: dict[str, Any]) -> dict[str, Any] | None:
    if stage == "funds_transferred" and values.get("carried"):
        carried = msgspec.json.decode(values["carried"], type=list[CarriedInsurance])
        return {
            "carried": [
                {"insurance_type": c.insurance_type, "paid_months": c.paid_months, "fund_amount": str(c.fund_amount)}
                for c in carried
            ],
            "fund_total": str(sum((c.fund_amount for c in carried), Decimal("0.00"))),
        }
    if stage == "completed" and values.get("target_bureau_reference"):
        return {"target_bureau_reference": values["target_bureau_reference"]}
    return None
