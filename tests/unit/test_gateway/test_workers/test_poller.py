"""Claiming due work across replicas, and the poller that advances it (SQLite and
PostgreSQL: the claim must hold where replicas really run at once)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.store import create_engine
from gateway.store.tables import work_lease_columns
from gateway.workers import Advance, Job, Poller, claim_due, release, utcnow

metadata = sa.MetaData()
work = sa.Table("work_items", metadata, sa.Column("id", sa.String(20), primary_key=True), *work_lease_columns())
LEASE = dt.timedelta(seconds=30)


@pytest.fixture
async def engine(database_url: str) -> Any:
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        yield engine
    finally:
        await engine.dispose()


async def add(engine: Any, count: int, *, due_in: float = -1.0) -> list[str]:
    ids = [f"w{i:03d}" for i in range(count)]
    async with engine.begin() as conn:
        await conn.execute(
            work.insert(),
            [{"id": i, "next_poll_at": utcnow() + dt.timedelta(seconds=due_in), "poll_attempts": 0} for i in ids],
        )
    return ids


async def test_racing_claimers_never_get_the_same_row(engine):
    ids = await add(engine, 40)
    claims = await asyncio.gather(
        *(claim_due(engine, work, holder=f"h{n}", lease=LEASE, limit=40) for n in range(4))
    )
    claimed = Counter(row.id for rows in claims for row in rows)
    assert set(claimed) == set(ids)
    assert max(claimed.values()) == 1
    # Claimed rows are leased: nobody gets them again until the lease runs out.
    assert await claim_due(engine, work, holder="late", lease=LEASE, limit=40) == []


async def test_rows_not_yet_due_are_left_alone(engine):
    await add(engine, 3, due_in=60)
    assert await claim_due(engine, work, holder="h", lease=LEASE, limit=10) == []


async def test_only_the_holder_may_release_and_an_expired_lease_can_be_taken_over(engine):
    (row_id,) = await add(engine, 1)
    (row,) = await claim_due(engine, work, holder="first", lease=dt.timedelta(seconds=-1), limit=1)
    assert row.lease_holder == "first"
    # The lease ran out (a crashed worker): another worker takes the row over ...
    (taken,) = await claim_due(engine, work, holder="second", lease=LEASE, limit=1)
    assert taken.id == row_id and taken.lease_holder == "second"
    # ... and the first one can no longer release (or overwrite) it.
    assert await release(engine, work, row_id, holder="first", next_poll_at=None) is False
    assert await release(engine, work, row_id, holder="second", next_poll_at=None) is True


async def test_two_pollers_advance_each_due_row_once(engine):
    ids = await add(engine, 30)
    advanced: Counter[str] = Counter()

    async def advance(row: Any) -> Advance:
        advanced[row.id] += 1
        await asyncio.sleep(0.01)  # keep the lease held while the other poller looks
        return Advance.done()

    pollers = [Poller(engine, [Job("item", work, advance)], interval=0.05, concurrency=4) for _ in range(2)]
    for poller in pollers:
        poller.start()
    try:
        for _ in range(200):
            if len(advanced) == len(ids):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
    finally:
        for poller in pollers:
            await poller.stop()
    assert set(advanced) == set(ids)
    assert max(advanced.values()) == 1
    async with engine.connect() as conn:
        left = (await conn.execute(sa.select(work.c.id).where(work.c.next_poll_at.is_not(None)))).all()
    assert left == []


async def test_a_failing_step_backs_off_and_counts_its_failures(engine):
    (row_id,) = await add(engine, 1)

    async def advance(row: Any) -> Advance:
        raise RuntimeError("bug")

    poller = Poller(engine, [Job("item", work, advance, backoff=10.0)], interval=60)
    await poller.run_once()
    async with engine.connect() as conn:
        row = (await conn.execute(work.select().where(work.c.id == row_id))).one()
    assert row.poll_attempts == 1
    assert row.lease_holder is None
    assert 5 < (row.next_poll_at - utcnow()).total_seconds() <= 10


async def test_a_transient_failure_is_retried_later_without_an_error(engine):
    (row_id,) = await add(engine, 1)
    poller = Poller(engine, [Job("item", work, lambda row: _back_off(), backoff=4.0)], interval=60)
    await poller.run_once()
    await poller.run_once()  # not due yet: untouched
    async with engine.connect() as conn:
        row = (await conn.execute(work.select().where(work.c.id == row_id))).one()
    assert row.poll_attempts == 1
    assert 2 < (row.next_poll_at - utcnow()).total_seconds() <= 4


async def _back_off() -> Advance:
    return Advance.back_off()
