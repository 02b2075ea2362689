"""Claiming rows for background work, safely across replicas.

A row that needs polling carries ``next_poll_at``, ``locked_until`` and
``lease_holder`` (``gateway.store.tables.work_lease_columns``). A worker claims a due
row with one conditional ``UPDATE … RETURNING``: the condition is re-checked by the
database on the row itself, so when two replicas race for the same row exactly one
update matches. (SQLite has no ``SELECT … FOR UPDATE``; this works on both.) A
worker that dies simply lets its lease run out, and the row becomes due again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, and_, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["claim_due", "release", "utcnow"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _claimable(table: Table, now: dt.datetime) -> Any:
    return and_(
        table.c.next_poll_at.is_not(None),
        table.c.next_poll_at <= now,
        or_(table.c.locked_until.is_(None), table.c.locked_until < now),
    )


async def claim_due(
    engine: AsyncEngine, table: Table, *, holder: str, lease: dt.timedelta, limit: int, ids: Sequence[str] | None = None
) -> list[Row[Any]]:
    """Claim up to ``limit`` due rows (or only those of ``ids``) for ``lease``."""
    now = utcnow()
    query = select(table.c.id).where(_claimable(table, now)).order_by(table.c.next_poll_at).limit(limit)
    if ids is not None:
        query = query.where(table.c.id.in_(list(ids)))
    claimed: list[Row[Any]] = []
    async with engine.begin() as conn:
        candidates = [r.id for r in (await conn.execute(query)).all()]
    for row_id in candidates:
        async with engine.begin() as conn:
            row = (
                await conn.execute(
                    table.update()
                    .where(table.c.id == row_id, _claimable(table, now))
                    .values(locked_until=now + lease, lease_holder=holder)
                    .returning(*table.c)
                )
            ).first()
        if row is not None:
            claimed.append(row)
    return claimed


async def release(engine: AsyncEngine, table: Table, row_id: str, *, holder: str, **values: Any) -> bool:
    """Give the row back (with ``values``, e.g. the next ``next_poll_at``); only the
    current holder may. False if the lease had been lost to another worker."""
    async with engine.begin() as conn:
        result = await conn.execute(
            table.update()
            .where(table.c.id == row_id, table.c.lease_holder == holder)
            .values(locked_until=None, lease_holder=None, **values)
        )
    return bool(result.rowcount)
