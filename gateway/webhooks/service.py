"""Webhook endpoints per client and environment, and publishing events.

``publish`` is an outbox write: the event and one pending delivery per subscribed
endpoint go into the caller's own transaction, so an event exists exactly when the
change it announces was committed. The dispatcher delivers it afterwards; the
caller calls ``notify()`` after its commit so that happens at once rather than at
the next poll.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from stdnum.cn import ric

from ..auth import Client
from ..encryption import FieldCipher
from ..errors import ProblemError
from ..ids import new_id
from ..store.tables import webhook_attempts, webhook_deliveries, webhook_endpoints, webhook_events
from .events import EVENT_TYPES, UnknownEventType, check_patterns, matches
from .models import AttemptOut, DeliveryDetail, DeliveryOut, DeliveryPage, EndpointCreated, EndpointIn, EndpointOut
from .signing import new_secret
from .urls import check_url

__all__ = ["MAX_ENDPOINTS", "SECRET_COLUMN", "WebhookService"]

#: Associated data binding an endpoint's secret ciphertext to its column.
SECRET_COLUMN = "webhook_endpoints.secret"
#: Endpoints one client may have per environment (each event is sent to every one).
MAX_ENDPOINTS = 20
_ENDPOINT_DELETED = "endpoint deleted"
# What ``new_id`` makes; anything else is not looked up (a NUL byte would make PostgreSQL fail).
_ID = re.compile(r"[a-z]{2,4}_[0-9a-f]{26}")
# An unmasked resident ID number: 17 digits and a check character, standing alone.
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class WebhookService:
    def __init__(
        self, engine: AsyncEngine, cipher: FieldCipher, *, allow_private_urls: bool = False,
        notify: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.cipher = cipher
        self.allow_private_urls = allow_private_urls
        self._notify = notify

    # -- publishing -------------------------------------------------------------

    async def publish(
        self, conn: AsyncConnection, *, client_id: str, environment: str, type: str, data: dict[str, Any]
    ) -> str:
        """Record event ``type`` for the client's endpoints in ``environment``, in the
        caller's transaction ``conn``; returns the event id (``evt_…``).

        ``data`` must hold no plaintext PII (pass masked ID numbers, no names).
        """
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown webhook event type {type!r}")
        now = _now()
        event_id = new_id("evt")
        body = json.dumps(
            {"id": event_id, "type": type, "created": now.isoformat().replace("+00:00", "Z"),
             "environment": environment, "data": data},
            ensure_ascii=False, separators=(",", ":"),
        )
        if any(ric.is_valid(m.group(0)) for m in _ID_NUMBER.finditer(body)):
            # Receivers are outside the gateway's protection; refuse rather than leak.
            raise ValueError("webhook event data contains a plaintext resident ID number; pass it masked")
        await conn.execute(webhook_events.insert().values(
            id=event_id, client_id=client_id, environment=environment, type=type, payload=body, created_at=now
        ))
        rows = (await conn.execute(
            sa.select(webhook_endpoints.c.id, webhook_endpoints.c.events).where(
                webhook_endpoints.c.client_id == client_id,
                webhook_endpoints.c.environment == environment,
                webhook_endpoints.c.deleted_at.is_(None),
            )
        )).all()
        deliveries = [
            dict(id=new_id("whd"), event_id=event_id, endpoint_id=row.id, status="pending", attempts=0,
                 next_attempt_at=now, created_at=now)
            for row in rows if matches(row.events.split(), type)
        ]
        if deliveries:
            await conn.execute(webhook_deliveries.insert(), deliveries)
        return event_id

    def notify(self) -> None:
        """Wake this process's dispatcher (call after the publishing transaction
        committed, on the app's event loop). Other replicas find the work by polling."""
        if self._notify is not None:
            self._notify()

    # -- endpoints --------------------------------------------------------------

    async def create_endpoint(self, client: Client, data: EndpointIn) -> EndpointCreated:
        url = check_url(data.url, environment=client.environment, allow_private=self.allow_private_urls)
        if not data.events:
            raise ProblemError("no_event_types", "events: subscribe to at least one event type, or '*'", field="events")
        try:
            events = check_patterns(data.events)
        except UnknownEventType as exc:
            raise ProblemError(
                "unknown_event_type", f"events: {exc.pattern!r} is not an event type or pattern",
                field="events", event_type=exc.pattern, known=sorted(EVENT_TYPES),
            ) from None
        description = data.description.strip() if data.description and data.description.strip() else None
        if description is not None and any(ord(c) < 0x20 or ord(c) == 0x7F for c in description):
            raise ProblemError("invalid_field", "description: no control characters", field="description")
        secret = new_secret()
        endpoint_id = new_id("we")
        now = _now()
        async with self.engine.begin() as conn:
            count = (await conn.execute(
                sa.select(sa.func.count()).select_from(webhook_endpoints).where(*self._owned(client))
            )).scalar_one()
            if count >= MAX_ENDPOINTS:
                raise ProblemError(
                    "too_many_webhook_endpoints", f"at most {MAX_ENDPOINTS} endpoints per client and environment"
                )
            await conn.execute(webhook_endpoints.insert().values(
                id=endpoint_id, client_id=client.id, environment=client.environment, url=url,
                events=" ".join(events), description=description,
                secret_enc=self.cipher.encrypt(secret, SECRET_COLUMN), created_at=now,
            ))
        return EndpointCreated(endpoint_id, url, events, description, client.environment, now, secret)  # type: ignore[arg-type]

    async def list_endpoints(self, client: Client) -> list[EndpointOut]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(
                sa.select(webhook_endpoints).where(*self._owned(client)).order_by(webhook_endpoints.c.id)
            )).all()
        return [_endpoint_out(r) for r in rows]

    async def get_endpoint(self, client: Client, endpoint_id: str) -> EndpointOut:
        if not _ID.fullmatch(endpoint_id):
            raise ProblemError("not_found", "no such webhook endpoint")
        async with self.engine.connect() as conn:
            row = (await conn.execute(
                sa.select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id, *self._owned(client))
            )).first()
        if row is None:
            raise ProblemError("not_found", "no such webhook endpoint")
        return _endpoint_out(row)

    async def delete_endpoint(self, client: Client, endpoint_id: str) -> None:
        """Deleted endpoints get nothing more: their pending deliveries end as failed."""
        if not _ID.fullmatch(endpoint_id):
            raise ProblemError("not_found", "no such webhook endpoint")
        now = _now()
        async with self.engine.begin() as conn:
            deleted = await conn.execute(
                webhook_endpoints.update()
                .where(webhook_endpoints.c.id == endpoint_id, *self._owned(client))
                .values(deleted_at=now)
            )
            if deleted.rowcount != 1:
                raise ProblemError("not_found", "no such webhook endpoint")
            await conn.execute(
                webhook_deliveries.update()
                .where(webhook_deliveries.c.endpoint_id == endpoint_id, webhook_deliveries.c.status == "pending")
                .values(status="failed", next_attempt_at=None, last_error=_ENDPOINT_DELETED)
            )

    # -- deliveries -------------------------------------------------------------

    async def list_deliveries(
        self, client: Client, endpoint_id: str, *, limit: int, before: str | None
    ) -> DeliveryPage:
        await self.get_endpoint(client, endpoint_id)
        if before is not None and not _ID.fullmatch(before):
            raise ProblemError("invalid_field", "before: the id of a delivery (whd_…)", field="before")
        query = (
            sa.select(webhook_deliveries, webhook_events.c.type)
            .join(webhook_events, webhook_events.c.id == webhook_deliveries.c.event_id)
            .where(webhook_deliveries.c.endpoint_id == endpoint_id)
            .order_by(webhook_deliveries.c.id.desc())
            .limit(limit + 1)
        )
        if before:
            query = query.where(webhook_deliveries.c.id < before)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return DeliveryPage([_delivery_out(r) for r in rows[:limit]], has_more=len(rows) > limit)

    async def get_delivery(self, client: Client, delivery_id: str) -> DeliveryDetail:
        if not _ID.fullmatch(delivery_id):
            raise ProblemError("not_found", "no such webhook delivery")
        async with self.engine.connect() as conn:
            row = (await conn.execute(
                sa.select(webhook_deliveries, webhook_events.c.type)
                .join(webhook_events, webhook_events.c.id == webhook_deliveries.c.event_id)
                .join(webhook_endpoints, webhook_endpoints.c.id == webhook_deliveries.c.endpoint_id)
                .where(
                    webhook_deliveries.c.id == delivery_id,
                    webhook_endpoints.c.client_id == client.id,
                    webhook_endpoints.c.environment == client.environment,
                )
            )).first()
            if row is None:
                raise ProblemError("not_found", "no such webhook delivery")
            attempts = (await conn.execute(
                sa.select(webhook_attempts)
                .where(webhook_attempts.c.delivery_id == delivery_id)
                .order_by(webhook_attempts.c.id)
            )).all()
        out = _delivery_out(row)
        return DeliveryDetail(
            **{f: getattr(out, f) for f in out.__struct_fields__},
            attempt_log=[AttemptOut(a.at, a.status_code, a.error, round(a.latency_ms, 1)) for a in attempts],
        )

    @staticmethod
    def _owned(client: Client) -> tuple[sa.ColumnElement[bool], ...]:
        return (
            webhook_endpoints.c.client_id == client.id,
            webhook_endpoints.c.environment == client.environment,
            webhook_endpoints.c.deleted_at.is_(None),
        )


def _endpoint_out(row: Any) -> EndpointOut:
    return EndpointOut(row.id, row.url, row.events.split(), row.description, row.environment, row.created_at)


def _delivery_out(row: Any) -> DeliveryOut:
    return DeliveryOut(
        id=row.id, endpoint_id=row.endpoint_id, event_id=row.event_id, event_type=row.type, status=row.status,
        attempts=row.attempts, next_attempt_at=row.next_attempt_at, last_status_code=row.last_status_code,
        last_error=row.last_error, delivered_at=row.delivered_at, created_at=row.created_at,
    )
