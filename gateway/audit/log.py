"""The audit log of upstream calls.

Adapters report every logical call (all attempts) to an observer; the gateway turns
it into a row: client, operation, upstream, region, gateway id, upstream status and
code, attempts, latency. No PII ever reaches it: the observer sees no payloads.
Rows are written in small batches by a background task so that auditing adds no
database round trip to the request path; shutdown flushes what is pending.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.http import CallObserver, UpstreamCall

from ..store import audit_events

__all__ = ["AuditLog"]

log = logging.getLogger("hr_gateway.audit")


class AuditLog:
    def __init__(
        self, engine: AsyncEngine, *, flush_seconds: float = 0.2, batch_size: int = 500, max_pending: int = 100_000
    ) -> None:
        self.engine = engine
        self.flush_seconds = flush_seconds
        self.batch_size = batch_size
        self.max_pending = max_pending
        #: Events dropped because the database stayed away while ``max_pending`` piled up.
        self.dropped = 0
        self._pending: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()

    def observer(self, environment: str, upstream: str, regions: tuple[str, ...] = ()) -> CallObserver:
        def observe(call: UpstreamCall) -> None:
            if len(self._pending) >= self.max_pending:
                # Bounded memory while the database is away; the loss is counted and logged.
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.error("audit buffer full: %d upstream-call events dropped so far", self.dropped)
                return
            self._pending.append(
                {
                    "at": dt.datetime.now(dt.timezone.utc),
                    "client_id": call.context.client_id,
                    "environment": environment,
                    "operation": call.operation,
                    "upstream": upstream,
                    "region": call.context.extra.get("region") or (regions[0] if len(regions) == 1 else None),
                    "gateway_id": call.context.gateway_id,
                    "request_id": call.context.request_id or None,
                    "upstream_status": call.status_code,
                    "upstream_code": call.upstream_code,
                    "outcome": call.outcome,
                    "attempts": call.attempts,
                    "latency_ms": round(call.latency_ms, 3),
                }
            )

        return observe

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit-flush")

    async def stop(self) -> None:
        # Never cancel a flush half-way: a cancelled SQLite write can hold the
        # database lock. Ask the loop to end and wait for it.
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), self.flush_seconds)
            except TimeoutError:
                pass
            try:
                await self.flush()
            except Exception:  # the database may be briefly away; keep the rows for the next try
                log.exception("audit flush failed; %d events pending", len(self._pending))

    async def flush(self) -> None:
        async with self._lock:
            while self._pending:
                batch = self._pending[: self.batch_size]
                async with self.engine.begin() as conn:
                    await conn.execute(audit_events.insert(), batch)
                del self._pending[: len(batch)]

    async def query(
        self,
        *,
        environment: str,
        client_id: str | None = None,
        gateway_id: str | None = None,
        operation: str | None = None,
        upstream: str | None = None,
        since: dt.datetime | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        await self.flush()
        query = (
            sa.select(audit_events)
            .where(audit_events.c.environment == environment)
            .order_by(audit_events.c.id.desc())
            .limit(limit)
        )
        for column, value in (
            (audit_events.c.client_id, client_id),
            (audit_events.c.gateway_id, gateway_id),
            (audit_events.c.operation, operation),
            (audit_events.c.upstream, upstream),
        ):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(audit_events.c.at >= since)
        if before_id is not None:
            query = query.where(audit_events.c.id < before_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [dict(r) for r in rows]
