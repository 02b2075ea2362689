"""The idempotency store on a real (SQLite) database: claims, takeovers, ownership."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from gateway.encryption import FieldCipher, Keyring
from gateway.idempotency import IdempotencyStore, StoredResponse
from gateway.store import clients, create_engine, upgrade


@pytest.fixture
async def store(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await upgrade(engine)
    async with engine.begin() as conn:
        await conn.execute(clients.insert().values(
            id="cli_1", name="t", environment="sandbox", scopes="admin", key_prefix="x", key_hash="h" * 64,
            jwe_kid="k", jwe_key_enc="x", created_at=dt.datetime.now(dt.timezone.utc)))
    yield IdempotencyStore(engine, FieldCipher(Keyring.generate()), lease=dt.timedelta(seconds=0.3))
    await engine.dispose()


async def test_one_claim_wins_a_race(store):
    claims = await asyncio.gather(*[store.claim("cli_1", "k", "fp", "POST", "/x") for _ in range(10)])
    assert [c.outcome for c in claims].count("acquired") == 1
    assert {c.outcome for c in claims} == {"acquired", "in_flight"}


async def test_a_taken_over_holder_cannot_overwrite_the_new_one(store):
    first = await store.claim("cli_1", "k", "fp", "POST", "/x")
    await asyncio.sleep(0.35)  # the first holder's lease runs out (it crashed, or stalled)
    second = await store.claim("cli_1", "k", "fp", "POST", "/x")
    assert second.outcome == "acquired"
    assert second.token == first.token  # the same use of the key: its work is resumed
    assert second.holder != first.holder  # but the lease has a new holder
    # The stale first holder wakes up: it can neither renew, release nor complete.
    assert not await store.renew("cli_1", "k", first.holder)
    await store.release("cli_1", "k", first.holder)
    await store.complete("cli_1", "k", first.holder, StoredResponse(500, [], b"stale"))
    assert (await store.claim("cli_1", "k", "fp", "POST", "/x")).outcome == "in_flight"
    await store.complete("cli_1", "k", second.holder, StoredResponse(201, [("content-type", "application/json")], b"{}"))
    replay = await store.claim("cli_1", "k", "fp", "POST", "/x")
    assert replay.outcome == "replay" and replay.response.status == 201


async def test_renewing_keeps_a_slow_holder_in_charge(store):
    first = await store.claim("cli_1", "k", "fp", "POST", "/x")
    for _ in range(3):
        await asyncio.sleep(0.2)
        assert await store.renew("cli_1", "k", first.holder)
    assert (await store.claim("cli_1", "k", "fp", "POST", "/x")).outcome == "in_flight"


async def test_mismatch_and_release(store):
    first = await store.claim("cli_1", "k", "fp", "POST", "/x")
    assert (await store.claim("cli_1", "k", "other", "POST", "/x")).outcome == "mismatch"
    await store.release("cli_1", "k", first.holder)
    again = await store.claim("cli_1", "k", "fp", "POST", "/x")
    assert again.outcome == "acquired" and again.token == first.token


async def test_discard_forgets_the_key(store):
    first = await store.claim("cli_1", "k", "fp", "POST", "/x")
    await store.discard("cli_1", "k", first.holder)
    fresh = await store.claim("cli_1", "k", "another body", "POST", "/x")
    assert fresh.outcome == "acquired" and fresh.token != first.token
