"""The background poller: keeps slow work (declarations awaiting the bureau,
transfers moving through their stages, terminations) moving.

Each kind of work is a ``Job``: a table with lease columns and a coroutine that
advances one claimed row and says when it is next due. The poller claims due rows
(``leases.claim_due``), advances them with bounded concurrency, and releases them
with their next due time. State lives only in the database, so a restarted gateway,
or another replica, carries on where this one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from .leases import claim_due, release, utcnow

__all__ = ["Advance", "Job", "Poller"]

log = logging.getLogger("hr_gateway.workers")


@dataclass(frozen=True, slots=True)
class Advance:
    """What a job did with a row: when to look again (``None``: never, it is final),
    or ``retry``: the upstream could not be reached, back off (the job's schedule)."""

    next_poll_in: float | None = None
    retry: bool = False

    @classmethod
    def done(cls) -> Advance:
        return cls(None)

    @classmethod
    def again_in(cls, seconds: float) -> Advance:
        return cls(seconds)

    @classmethod
    def back_off(cls) -> Advance:
        return cls(None, retry=True)


@dataclass(frozen=True)
class Job:
    name: str
    table: Table
    advance: Callable[[Any], Awaitable[Advance]]
    #: After a failure (an unreachable upstream, or an unexpected error) the row is
    #: retried after this many seconds, doubled per consecutive failure up to ``max_backoff``.
    backoff: float = 2.0
    max_backoff: float = 300.0


@dataclass
class Poller:
    engine: AsyncEngine
    jobs: list[Job]
    interval: float = 1.0
    lease: dt.timedelta = dt.timedelta(seconds=60)
    concurrency: int = 8
    holder: str = field(default_factory=lambda: "wrk_" + secrets.token_hex(8))

    _wake: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _stopping: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = field(init=False, default=None)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="poller")

    def notify(self) -> None:
        """Something became due now (e.g. a request just created work): look at once."""
        self._wake.set()

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                busy = await self.run_once()
            except Exception:
                log.exception("the poller's round failed; trying again")
                busy = False
            if busy:
                continue  # more may be due right away
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()

    async def run_once(self) -> bool:
        """One round over every job; True if a full batch was claimed."""
        busy = False
        for job in self.jobs:
            if self._stopping.is_set():
                break
            rows = await claim_due(self.engine, job.table, holder=self.holder, lease=self.lease, limit=self.concurrency)
            busy = busy or len(rows) == self.concurrency
            await asyncio.gather(*(self._advance(job, row) for row in rows))
        return busy

    async def _advance(self, job: Job, row: Any) -> None:
        failures = (row.poll_attempts or 0) + 1
        delay = min(job.max_backoff, job.backoff * 2 ** (failures - 1))
        values: dict[str, Any]
        try:
            outcome = await job.advance(row)
        except Exception:
            log.exception("%s %s could not be advanced (failure %d); next try in %.0f s", job.name, row.id, failures, delay)
            outcome = Advance.back_off()
        if outcome.retry:
            values = {"next_poll_at": utcnow() + dt.timedelta(seconds=delay), "poll_attempts": failures}
        else:
            next_at = None if outcome.next_poll_in is None else utcnow() + dt.timedelta(seconds=outcome.next_poll_in)
            values = {"next_poll_at": next_at, "poll_attempts": 0}
        if not await release(self.engine, job.table, row.id, holder=self.holder, **values):
            log.warning("%s %s: the lease ran out while it was being advanced", job.name, row.id)
