"""What payments, ERP approvals and vouchers, contribution runs and reimbursements
share: a row with a status that only moves forward, a timeline of the statuses it
reached, and a webhook for each change, written in the same transaction.

A subclass declares its table, timeline kind, event prefix and final statuses and
says how its row looks to the client (``out``); ``transition`` does the rest. An
``UpstreamDocument`` (a payment, an approval, a voucher) also says how to reach its
upstream (``upstream``), ask it (``ask``), send to it (``send``) and read its answer
(``apply``); ``submit``, ``follow`` and ``advance`` are then the same for all three.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import msgspec
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters import CallContext, UpstreamError

from ..encryption import FieldCipher
from ..errors import ProblemError
from ..registry import UpstreamSet
from ..workers import Advance, utcnow
from .events import EventPublisher
from .timeline import record_status
from .upstream_outcomes import Failure, FailureKind, ask_then_send, classify

__all__ = ["TrackedResource", "UpstreamDocument"]

log = logging.getLogger("hr_gateway.tracked")


class TrackedResource(ABC):
    table: ClassVar[Table]
    kind: ClassVar[str]  # timeline kind and event prefix ("payment" -> "payment.settled")
    final: ClassVar[frozenset[str]]
    #: Statuses announced by webhook when reached (all by default).
    announced: ClassVar[frozenset[str] | None] = None
    not_found: ClassVar[str] = "no such resource for this client"

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

    @abstractmethod
    async def out(self, conn: AsyncConnection, row: Any) -> msgspec.Struct:
        """The row as the client sees it (the API's answer and the webhook's data)."""

    async def get(self, client_id: str, resource_id: str) -> Any:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    self.table.select().where(self.table.c.id == resource_id, self.table.c.client_id == client_id)
                )
            ).first()
            if row is None:
                raise ProblemError("not_found", self.not_found)
            return await self.out(conn, row)

    async def row(self, resource_id: str) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(self.table.select().where(self.table.c.id == resource_id))).first()

    async def find_by_token(self, client_id: str, token: str | None) -> Any:
        if not token:
            return None
        async with self.engine.connect() as conn:
            return (
                await conn.execute(
                    self.table.select().where(self.table.c.client_id == client_id, self.table.c.idempotency_token == token)
                )
            ).first()

    async def transition(
        self, resource_id: str, status: str, values: dict[str, Any] | None = None, *, detail: dict[str, Any] | None = None
    ) -> bool:
        """Move to ``status`` with ``values``; a final row never moves again. Records the
        timeline and announces the new status; with the same status, only ``values``
        (and the next poll) are written. Returns whether the status changed."""
        values = dict(values or {})
        async with self.engine.begin() as conn:
            row = (await conn.execute(self.table.select().where(self.table.c.id == resource_id))).first()
            if row is None or row.status in self.final:
                return False
            changed = row.status != status
            values.setdefault(
                "next_poll_at", None if status in self.final else utcnow() + dt.timedelta(seconds=self.poll_seconds)
            )
            await conn.execute(
                self.table.update()
                .where(self.table.c.id == resource_id)
                .values(status=status, updated_at=utcnow(), **values)
            )
            if changed:
                await record_status(conn, self.kind, resource_id, status, detail)
                if self.announced is None or status in self.announced:
                    updated = (await conn.execute(self.table.select().where(self.table.c.id == resource_id))).first()
                    await self.events.publish(
                        conn, client_id=row.client_id, environment=row.environment, type=f"{self.kind}.{status}",
                        data={self.kind: msgspec.to_builtins(await self.out(conn, updated))},
                    )
        if changed:
            self.events.notify()
        return changed

    async def reschedule(self, resource_id: str, seconds: float) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                self.table.update()
                .where(self.table.c.id == resource_id)
                .values(next_poll_at=utcnow() + dt.timedelta(seconds=seconds))
            )



class UpstreamDocument(TrackedResource):
    """A tracked resource carried by one upstream call and followed until final
    (payments, ERP approvals and vouchers): sent at most once, then asked about."""

    #: The status of a row the upstream has not acknowledged yet (sent, or to be sent).
    unsent: ClassVar[str] = "submitting"

    @abstractmethod
    def upstream(self, row: Any) -> Any:
        """The adapter instance that carries ``row`` (``None`` if no longer configured)."""

    @abstractmethod
    async def ask(self, upstream: Any, row: Any, context: CallContext) -> Any:
        """The upstream's state of ``row`` by its reference, ``None`` if it never landed."""

    @abstractmethod
    async def send(self, upstream: Any, row: Any, context: CallContext) -> Any:
        """Send ``row`` (with its reference) to the upstream."""

    @abstractmethod
    async def apply(self, row: Any, receipt: Any) -> None:
        """Record what the upstream said (``transition``)."""

    def refused(self, failure: Failure) -> dict[str, Any]:
        """The column values of a row the upstream refused outright."""
        return {"reason": json.dumps(
            {"code": failure.upstream_code, "message": failure.upstream_message, "field": failure.field},
            ensure_ascii=False,
        )}

    async def submit(self, row: Any, context: CallContext, *, ask_first: bool) -> bool:
        """Send ``row`` (asking first if an earlier attempt may have landed); False if
        the upstream could not take it now (the row is due again after a poll interval)."""
        upstream = self.upstream(row)
        if upstream is None:
            return False
        try:
            receipt = await ask_then_send(
                lambda: self.ask(upstream, row, context), lambda: self.send(upstream, row, context), ask_first=ask_first
            )
        except UpstreamError as exc:
            failure = classify(exc)
            if failure.kind is FailureKind.REJECTED:
                await self.transition(row.id, "rejected", self.refused(failure))
                return True
            log.warning("%s %s: %s could not take it now: %s", self.kind, row.id, upstream.name, failure.message)
            await self.reschedule(row.id, self.poll_seconds)
            return False
        await self.apply(row, receipt)
        return True

    async def follow(self, row: Any, context: CallContext) -> bool:
        """Ask the upstream where an acknowledged row stands; never send it again."""
        upstream = self.upstream(row)
        if upstream is None:
            return False
        try:
            receipt = await self.ask(upstream, row, context)
        except UpstreamError as exc:
            log.warning("%s %s: asking %s failed: %s", self.kind, row.id, upstream.name, classify(exc).message)
            return False
        if receipt is None:
            log.error("%s %s: %s no longer knows reference %s", self.kind, row.id, upstream.name, row.reference)
            return False
        await self.apply(row, receipt)
        return True

    async def advance(self, row: Any) -> Advance:
        """The poller's step: send what was never acknowledged (asking first), follow the rest."""
        if row.status in self.final:
            return Advance.done()
        context = CallContext(request_id=f"poll-{row.id}", client_id=row.client_id, gateway_id=row.id)
        if row.status == self.unsent:
            ok = await self.submit(row, context, ask_first=True)
        else:
            ok = await self.follow(row, context)
        if not ok:
            return Advance.back_off()
        current = await self.row(row.id)
        return Advance.done() if current.status in self.final else Advance.again_in(self.poll_seconds)
