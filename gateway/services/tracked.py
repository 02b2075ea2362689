"""What payments, ERP approvals and vouchers, contribution runs and reimbursements
share: a row with a status that only moves forward, a timeline of the statuses it
reached, and a webhook for each change, written in the same transaction.

A subclass declares its table, timeline kind, event prefix and final statuses and
says how its row looks to the client (``out``); ``transition`` does the rest.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, ClassVar

import msgspec
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..encryption import FieldCipher
from ..errors import ProblemError
from ..registry import UpstreamSet
from ..workers import utcnow
from .events import EventPublisher
from .timeline import record_status

__all__ = ["TrackedResource"]


class TrackedResource:
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

    async def out(self, conn: AsyncConnection, row: Any) -> msgspec.Struct:
        raise NotImplementedError

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
