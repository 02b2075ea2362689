"""The status history of payments, ERP documents, contribution runs and
reimbursements: one ``timeline_events`` row per status a resource reached."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ..api.schemas import TimelineEntry
from ..store import timeline_events
from ..workers import utcnow

__all__ = ["load_timeline", "record_status"]


async def record_status(
    conn: AsyncConnection, kind: str, resource_id: str, status: str, detail: dict[str, Any] | None = None
) -> None:
    await conn.execute(
        timeline_events.insert().values(
            resource_kind=kind,
            resource_id=resource_id,
            status=status,
            at=utcnow(),
            detail=json.dumps(detail, ensure_ascii=False) if detail else None,
        )
    )


async def load_timeline(conn: AsyncConnection, kind: str, resource_id: str) -> list[TimelineEntry]:
    rows = (
        await conn.execute(
            timeline_events.select()
            .where(timeline_events.c.resource_kind == kind, timeline_events.c.resource_id == resource_id)
            .order_by(timeline_events.c.id)
        )
    ).all()
    return [TimelineEntry(r.status, r.at, json.loads(r.detail) if r.detail else None) for r in rows]
