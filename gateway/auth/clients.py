"""API clients: creation, lookup by key, revocation.

An API key is ``hgw_test_`` (sandbox) or ``hgw_live_`` followed by 43 random
base64url characters (256 bits). Only its SHA-256 is stored: the key has full
entropy, so a fast hash is enough and lookups stay one indexed read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from joserfc.jwk import OctKey
from sqlalchemy.ext.asyncio import AsyncEngine

from ..encryption import FieldCipher
from ..store import clients
from .scopes import parse_scopes

__all__ = ["Client", "ClientStore", "IssuedClient", "key_environment"]

Environment = Literal["sandbox", "live"]
_PREFIX = {"sandbox": "hgw_test_", "live": "hgw_live_"}
_JWE_COLUMN = "clients.jwe_key"


def key_environment(api_key: str) -> Environment | None:
    for environment, prefix in _PREFIX.items():
        if api_key.startswith(prefix):
            return environment  # type: ignore[return-value]
    return None


def _hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Client:
    id: str
    name: str
    environment: Environment
    scopes: frozenset[str]
    jwe_kid: str
    jwe_key: OctKey
    key_prefix: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None

    @property
    def sandbox(self) -> bool:
        return self.environment == "sandbox"


@dataclass(frozen=True, slots=True)
class IssuedClient:
    """A new client with its secrets: shown once, never stored in the clear."""

    client: Client
    api_key: str

    def as_dict(self) -> dict[str, object]:
        return {
            "client_id": self.client.id,
            "name": self.client.name,
            "environment": self.client.environment,
            "scopes": sorted(self.client.scopes),
            "api_key": self.api_key,
            "kid": self.client.jwe_kid,
            "jwe_key": {**self.client.jwe_key.as_dict(private=True), "kid": self.client.jwe_kid, "alg": "dir", "use": "enc"},
        }


class ClientStore:
    def __init__(self, engine: AsyncEngine, cipher: FieldCipher, *, cache_seconds: float = 2.0) -> None:
        self.engine = engine
        self.cipher = cipher
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Client | None]] = {}

    def _client(self, row: sa.Row) -> Client:
        jwk = self.cipher.decrypt(row.jwe_key_enc, _JWE_COLUMN)
        return Client(
            id=row.id,
            name=row.name,
            environment=row.environment,
            scopes=frozenset(row.scopes.split()),
            jwe_kid=row.jwe_kid,
            jwe_key=OctKey.import_key(json.loads(jwk)),
            key_prefix=row.key_prefix,
            created_at=row.created_at,
            revoked_at=row.revoked_at,
        )

    async def create(self, name: str, scopes: str | frozenset[str], *, sandbox: bool) -> IssuedClient:
        name = name.strip()
        if not name or len(name) > 200:
            raise ValueError("a client name is 1 to 200 characters")
        scope_set = parse_scopes(scopes) if isinstance(scopes, str) else parse_scopes(",".join(scopes))
        environment: Environment = "sandbox" if sandbox else "live"
        api_key = _PREFIX[environment] + secrets.token_urlsafe(32)
        client_id = "cli_" + secrets.token_hex(8)
        kid = "ck_" + secrets.token_hex(8)
        jwe_key = OctKey.generate_key(256)
        now = dt.datetime.now(dt.timezone.utc)
        async with self.engine.begin() as conn:
            await conn.execute(
                clients.insert().values(
                    id=client_id,
                    name=name,
                    environment=environment,
                    scopes=" ".join(sorted(scope_set)),
                    key_prefix=api_key[:16],
                    key_hash=_hash(api_key),
                    jwe_kid=kid,
                    jwe_key_enc=self.cipher.encrypt(json.dumps(jwe_key.as_dict(private=True)), _JWE_COLUMN),
                    created_at=now,
                )
            )
        client = Client(client_id, name, environment, scope_set, kid, jwe_key, api_key[:16], now, None)
        return IssuedClient(client, api_key)

    async def list(self) -> list[Client]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(clients.select().order_by(clients.c.created_at))).all()
        return [self._client(r) for r in rows]

    async def get(self, client_id: str) -> Client | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(clients.select().where(clients.c.id == client_id))).first()
        return self._client(row) if row else None

    async def revoke(self, client_id: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                clients.update()
                .where(clients.c.id == client_id, clients.c.revoked_at.is_(None))
                .values(revoked_at=dt.datetime.now(dt.timezone.utc))
            )
        self._cache.clear()
        return result.rowcount == 1

    async def authenticate(self, api_key: str) -> Client | None:
        """The client holding ``api_key`` (revoked ones included), or ``None``.

        Results are cached for ``cache_seconds`` so that a hot key costs no query;
        a revocation made elsewhere takes effect within that time.
        """
        digest = _hash(api_key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        async with self.engine.connect() as conn:
            row = (await conn.execute(clients.select().where(clients.c.key_hash == digest))).first()
        client = self._client(row) if row else None
        if self.cache_seconds > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, client)
        return client
