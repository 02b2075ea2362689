"""Persisted Idempotency-Key records.

A record is claimed with one atomic ``INSERT … ON CONFLICT DO NOTHING RETURNING``, so
two requests racing with the same key (in one process or across replicas, on SQLite
or PostgreSQL) cannot both win. The winner holds a lease; if it dies, the lease runs
out and a retry takes the record over (``UPDATE … WHERE lease expired RETURNING``)
and resumes the work, which is linked to the key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import secrets
from dataclasses import dataclass
from typing import Literal

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from ..encryption import FieldCipher
from ..store import idempotency_records as records

__all__ = ["Claim", "IdempotencyStore", "StoredResponse", "fingerprint"]

_BODY_COLUMN = "idempotency_records.response_body"
_IN_FLIGHT_RETRY_AFTER = 2


def fingerprint(method: str, path: str, body: bytes) -> str:
    """Same request -> same fingerprint, however its JSON was spaced or ordered."""
    try:
        canonical = msgspec.json.encode(msgspec.json.decode(body), order="sorted") if body else b""
    except (msgspec.DecodeError, RecursionError):  # not JSON we can canonicalise: the bytes decide
        canonical = body
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: Literal["acquired", "replay", "in_flight", "mismatch"]
    response: StoredResponse | None = None
    retry_after: int = 1
    #: For an acquired claim: what the work done under this use of the key links to
    #: (the same after a takeover, so the work is resumed, not redone) ...
    token: str | None = None
    #: ... and this holder's proof of ownership of the lease (new at every takeover).
    holder: str | None = None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class IdempotencyStore:
    def __init__(
        self,
        engine: AsyncEngine,
        cipher: FieldCipher,
        *,
        retention: dt.timedelta = dt.timedelta(hours=24),
        lease: dt.timedelta = dt.timedelta(seconds=60),
    ) -> None:
        self.engine = engine
        self.cipher = cipher
        self.retention = retention
        self.lease = lease
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def _key(self, client_id: str, key: str) -> sa.ColumnElement[bool]:
        return sa.and_(records.c.client_id == client_id, records.c.key == key)

    def _held(self, client_id: str, key: str, holder: str) -> sa.ColumnElement[bool]:
        """Only the current holder may finish, renew or release a claim: a holder whose
        lease was taken over must not overwrite the new holder's state."""
        return sa.and_(self._key(client_id, key), records.c.holder == holder, records.c.state == "in_flight")

    async def renew(self, client_id: str, key: str, holder: str) -> bool:
        """Extend the lease while the work is still running; False if it was taken over."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                records.update().where(self._held(client_id, key, holder)).values(locked_until=_now() + self.lease)
            )
        return result.rowcount == 1

    async def claim(self, client_id: str, key: str, fp: str, method: str, path: str) -> Claim:
        for _ in range(3):
            now = _now()
            token = secrets.token_hex(16)
            holder = secrets.token_hex(16)
            async with self.engine.begin() as conn:
                inserted = (
                    await conn.execute(
                        self._insert(records)
                        .values(
                            client_id=client_id, key=key, token=token, holder=holder, fingerprint=fp,
                            method=method, path=path,
                            state="in_flight", locked_until=now + self.lease,
                            created_at=now, expires_at=now + self.retention,
                        )
                        .on_conflict_do_nothing()
                        .returning(records.c.key)
                    )
                ).first()
            if inserted is not None:
                return Claim("acquired", token=token, holder=holder)
            async with self.engine.begin() as conn:
                row = (await conn.execute(records.select().where(self._key(client_id, key)))).first()
                if row is None:
                    continue  # deleted between our insert and select: try again
                if row.expires_at <= now:
                    await conn.execute(records.delete().where(self._key(client_id, key), records.c.expires_at <= now))
                    continue
                if row.fingerprint != fp:
                    return Claim("mismatch")
                if row.state == "completed":
                    body = self.cipher.decrypt_bytes(row.response_body_enc, _BODY_COLUMN) if row.response_body_enc else b""
                    headers = [tuple(h) for h in json.loads(row.response_headers or "[]")]
                    return Claim("replay", StoredResponse(row.response_status, headers, body))  # type: ignore[arg-type]
                if row.locked_until > now:
                    # The lease is a crash guard, not the expected duration: ask for a
                    # prompt retry, capped by when the lease would let a retry take over.
                    wait = math.ceil((row.locked_until - now).total_seconds())
                    return Claim("in_flight", retry_after=max(1, min(wait, _IN_FLIGHT_RETRY_AFTER)))
                taken = (
                    await conn.execute(
                        records.update()
                        .where(self._key(client_id, key), records.c.state == "in_flight", records.c.locked_until <= now)
                        .values(locked_until=now + self.lease, holder=holder)
                        .returning(records.c.token)
                    )
                ).first()
                if taken is not None:
                    return Claim("acquired", token=taken.token, holder=holder)
                return Claim("in_flight", retry_after=1)
        return Claim("in_flight", retry_after=1)

    async def complete(self, client_id: str, key: str, holder: str, response: StoredResponse) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                records.update()
                .where(self._held(client_id, key, holder))
                .values(
                    state="completed",
                    locked_until=None,
                    response_status=response.status,
                    response_headers=json.dumps(response.headers),
                    response_body_enc=self.cipher.encrypt(response.body, _BODY_COLUMN),
                )
            )

    async def release(self, client_id: str, key: str, holder: str) -> None:
        """The work may be resumed by the next request with this key."""
        async with self.engine.begin() as conn:
            await conn.execute(records.update().where(self._held(client_id, key, holder)).values(locked_until=_now()))

    async def discard(self, client_id: str, key: str, holder: str) -> None:
        """The request was refused before any work: forget the key entirely."""
        async with self.engine.begin() as conn:
            await conn.execute(records.delete().where(self._held(client_id, key, holder)))

    async def purge_expired(self) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(records.delete().where(records.c.expires_at <= _now()))
        return result.rowcount or 0
