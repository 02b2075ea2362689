"""The background loop that delivers webhook events.

Every replica runs one. A delivery is claimed with a single conditional UPDATE
(SQLite has no SELECT … FOR UPDATE): the row is taken only if it is still pending
and nobody's lease on it is current, so two replicas never send one delivery at
the same time. The lease outlives the HTTP timeout; if a replica dies mid-delivery,
the lease expires and another one tries again (delivery is at least once; receivers
deduplicate on ``Hgw-Event-Id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from .. import __version__
from ..encryption import FieldCipher
from ..store.tables import webhook_attempts, webhook_deliveries, webhook_endpoints, webhook_events
from .retry import RetrySchedule
from .service import SECRET_COLUMN
from .signing import SIGNATURE_HEADER, sign
from .urls import forbidden_address

__all__ = ["Claim", "Dispatcher"]

log = logging.getLogger("hr_gateway.webhooks")

USER_AGENT = f"hr-gateway-webhooks/{__version__}"
_MAX_ERROR = 300


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery this dispatcher holds the lease on."""

    id: str
    event_id: str
    endpoint_id: str
    attempts: int


class Dispatcher:
    def __init__(
        self,
        engine: AsyncEngine,
        cipher: FieldCipher,
        *,
        schedule: RetrySchedule = RetrySchedule(),
        concurrency: int = 8,
        poll_seconds: float = 1.0,
        timeout: float = 10.0,
        allow_private_urls: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.engine = engine
        self.cipher = cipher
        self.schedule = schedule
        self.concurrency = max(1, concurrency)
        self.poll_seconds = poll_seconds
        self.timeout = timeout
        self.allow_private_urls = allow_private_urls
        # Long enough for the slowest attempt and its bookkeeping.
        self.lease = dt.timedelta(seconds=timeout + 60)
        self.holder = "dsp_" + secrets.token_hex(8)
        self._transport = transport
        self._wake = asyncio.Event()
        self._stopped = False
        self._client: httpx.AsyncClient | None = None

    def notify(self) -> None:
        """New work was committed: look now instead of at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Claim nothing more; deliveries under way finish (their results are recorded)."""
        self._stopped = True
        self._wake.set()

    # -- the loop ----------------------------------------------------------------

    async def run(self, stopping: asyncio.Event | None = None) -> None:
        """Deliver until ``stop()`` (or until ``stopping`` is set)."""
        watcher = asyncio.create_task(self._stop_when(stopping)) if stopping is not None else None
        in_flight: set[asyncio.Task[None]] = set()
        self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False, transport=self._transport)
        try:
            while not self._stopped:
                self._wake.clear()
                free = self.concurrency - len(in_flight)
                claimed: Sequence[Claim] = []
                if free > 0:
                    try:
                        claimed = await self.claim(free)
                    except Exception:
                        log.exception("claiming webhook deliveries failed")
                for claim in claimed:
                    task = asyncio.create_task(self._deliver_logged(claim), name=f"webhook-{claim.id}")
                    in_flight.add(task)
                    task.add_done_callback(self._finished(in_flight))
                if claimed and len(claimed) == free:
                    continue  # there may be more due; a finished delivery wakes us when all slots are busy
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
        finally:
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
            await self._client.aclose()
            self._client = None
            if watcher is not None:
                watcher.cancel()

    def _finished(self, in_flight: set[asyncio.Task[None]]):  # type: ignore[no-untyped-def]
        def done(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            self._wake.set()  # a slot is free

        return done

    async def _stop_when(self, stopping: asyncio.Event) -> None:
        await stopping.wait()
        self.stop()

    # -- claiming ------------------------------------------------------------------

    async def claim(self, limit: int, *, now: dt.datetime | None = None) -> list[Claim]:
        """Take the lease on up to ``limit`` due deliveries."""
        now = now or _now()
        d = webhook_deliveries.c
        claimable = sa.and_(
            d.status == "pending", d.next_attempt_at <= now, sa.or_(d.locked_until.is_(None), d.locked_until < now)
        )
        async with self.engine.connect() as conn:
            due = (await conn.execute(
                sa.select(d.id).where(claimable).order_by(d.next_attempt_at, d.id).limit(limit)
            )).scalars().all()
        claims: list[Claim] = []
        for delivery_id in due:
            async with self.engine.begin() as conn:
                # The whole claim is this one statement: whoever updates the row first owns it.
                row = (await conn.execute(
                    webhook_deliveries.update()
                    .where(d.id == delivery_id, claimable)
                    .values(locked_until=now + self.lease, lease_holder=self.holder)
                    .returning(d.id, d.event_id, d.endpoint_id, d.attempts)
                )).first()
            if row is not None:
                claims.append(Claim(row.id, row.event_id, row.endpoint_id, row.attempts))
        return claims

    # -- delivering ----------------------------------------------------------------

    async def _deliver_logged(self, claim: Claim) -> None:
        try:
            await self.deliver(claim)
        except Exception:
            # The lease expires and the delivery is tried again later.
            log.exception("webhook delivery %s failed unexpectedly", claim.id)

    async def deliver(self, claim: Claim) -> None:
        """Send one claimed delivery and record the attempt."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(
                sa.select(
                    webhook_events.c.type, webhook_events.c.payload, webhook_endpoints.c.url,
                    webhook_endpoints.c.secret_enc, webhook_endpoints.c.environment, webhook_endpoints.c.deleted_at,
                )
                .join(webhook_endpoints, webhook_endpoints.c.id == claim.endpoint_id)
                .where(webhook_events.c.id == claim.event_id)
            )).one()
        if row.deleted_at is not None:
            await self._finish(claim, status="failed", error="endpoint deleted")
            return
        body = row.payload.encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.cipher.decrypt(row.secret_enc, SECRET_COLUMN), body),
            "Hgw-Event-Id": claim.event_id,
            "Hgw-Event-Type": row.type,
            "Hgw-Delivery-Id": claim.id,
            "User-Agent": USER_AGENT,
        }
        status_code: int | None = None
        error: str | None = None
        started = time.perf_counter()
        try:
            if row.environment == "live" and not self.allow_private_urls:
                await self._refuse_private_destination(row.url)
            assert self._client is not None, "deliver() runs inside run()"
            async with self._client.stream("POST", row.url, content=body, headers=headers) as response:
                status_code = response.status_code  # the body is never read: receivers answer what they like
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except httpx.TimeoutException:
            error = f"no answer within {self.timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]
        except _Refused as exc:
            error = str(exc)
        latency_ms = (time.perf_counter() - started) * 1000
        if error is None:
            await self._finish(claim, status="delivered", status_code=status_code, latency_ms=latency_ms)
            return
        attempts = claim.attempts + 1
        delay = self.schedule.delay_after(attempts)
        log.info(
            "webhook delivery %s to %s failed (attempt %d): %s; %s", claim.id, row.url, attempts, error,
            "giving up" if delay is None else f"next attempt in {delay:.1f} s",
        )
        await self._finish(
            claim, status="failed" if delay is None else "pending", status_code=status_code, error=error,
            latency_ms=latency_ms, retry_in=delay,
        )

    async def _refuse_private_destination(self, url: str) -> None:
        parts = urlsplit(url)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, parts.port or 443)
        except OSError as exc:
            raise _Refused(f"the host name did not resolve: {exc.strerror or exc}") from None
        if any(forbidden_address(str(info[4][0])) for info in infos):
            raise _Refused("the host resolves to a loopback, private or link-local address")

    async def _finish(
        self,
        claim: Claim,
        *,
        status: str,
        status_code: int | None = None,
        error: str | None = None,
        latency_ms: float | None = None,
        retry_in: float | None = None,
    ) -> None:
        now = _now()
        d = webhook_deliveries.c
        async with self.engine.begin() as conn:
            if latency_ms is not None:
                await conn.execute(webhook_attempts.insert().values(
                    delivery_id=claim.id, at=now, status_code=status_code, error=error, latency_ms=latency_ms
                ))
            await conn.execute(
                webhook_deliveries.update()
                # Only while our lease holds and nobody ended it (a deleted endpoint).
                .where(d.id == claim.id, d.lease_holder == self.holder, d.status == "pending")
                .values(
                    status=status,
                    attempts=claim.attempts + (1 if latency_ms is not None else 0),
                    next_attempt_at=now + dt.timedelta(seconds=retry_in) if retry_in is not None else None,
                    locked_until=None,
                    lease_holder=None,
                    last_status_code=status_code,
                    last_error=error,
                    delivered_at=now if status == "delivered" else None,
                )
            )


class _Refused(Exception):
    """The destination is not allowed; recorded as a failed attempt."""
