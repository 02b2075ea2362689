"""Idempotency-Key handling for every route marked ``opt={"idempotent": True}``.

Rules (IETF httpapi Idempotency-Key draft, Stripe practice):

- the header is required (400 ``idempotency_key_missing``); 1-255 visible ASCII
  characters, optionally quoted as a structured-field string;
- same key, different request -> 422 ``idempotency_key_reused``;
- same key while the first is running -> 409 ``idempotency_key_in_use`` + Retry-After;
- same key after completion -> the stored status and body with
  ``Idempotent-Replayed: true`` (errors that resulted from work are replayed too);
- a refusal before any work (bad input) is not stored; a 5xx leaves the key open
  so a retry resumes the work instead of repeating it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING

from ..api.asgi import BODY, CLIENT, REFUSED, gateway_of, header, route_opt, send_problem, send_response
from ..errors import ProblemError
from .store import IdempotencyStore, StoredResponse, fingerprint

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["IDEMPOTENCY_TOKEN", "IdempotencyMiddleware", "parse_idempotency_key"]

IDEMPOTENCY_TOKEN = "hgw.idempotency_token"
_KEY = re.compile(r'[\x21\x23-\x5b\x5d-\x7e]{1,255}')  # visible ASCII without '"' and '\'
_REPLAYED_HEADERS = frozenset({"content-type", "location"})
log = logging.getLogger("hr_gateway.idempotency")


def parse_idempotency_key(raw: str) -> str:
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not _KEY.fullmatch(value):
        raise ProblemError(
            "invalid_idempotency_key",
            "an Idempotency-Key is 1 to 255 visible ASCII characters (a UUID is a good choice)",
        )
    return value


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not route_opt(scope).get("idempotent"):
            await self.app(scope, receive, send)
            return
        raw = header(scope, "idempotency-key")
        try:
            if raw is None:
                raise ProblemError("idempotency_key_missing", "send an Idempotency-Key header with this request")
            key = parse_idempotency_key(raw)
        except ProblemError as error:
            await send_problem(scope, send, error)
            return

        store = gateway_of(scope).idempotency
        client = scope[CLIENT]  # type: ignore[literal-required]
        fp = fingerprint(scope["method"], scope["path"], scope.get(BODY, b""))  # type: ignore[arg-type]
        claim = await store.claim(client.id, key, fp, scope["method"], scope["path"])
        if claim.outcome == "mismatch":
            await send_problem(scope, send, ProblemError(
                "idempotency_key_reused", "this Idempotency-Key was used with a different request body or path"))
            return
        if claim.outcome == "in_flight":
            await send_problem(scope, send, ProblemError(
                "idempotency_key_in_use", "the first request with this key has not finished",
                headers={"Retry-After": str(claim.retry_after)}))
            return
        if claim.outcome == "replay":
            assert claim.response is not None
            stored = claim.response
            content_type = dict(stored.headers).get("content-type", "application/json")
            extra = [(k.encode(), v.encode()) for k, v in stored.headers if k != "content-type"]
            extra.append((b"idempotent-replayed", b"true"))
            await send_response(send, stored.status, stored.body, content_type, extra)
            return

        holder = claim.holder
        assert claim.token is not None and holder is not None
        scope[IDEMPOTENCY_TOKEN] = claim.token  # type: ignore[literal-required]
        status = 500
        headers: list[tuple[str, str]] = []
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers.extend(
                    (k.decode("latin-1").lower(), v.decode("latin-1"))
                    for k, v in message.get("headers", ())
                    if k.decode("latin-1").lower() in _REPLAYED_HEADERS
                )
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        # Keep the lease alive while the work runs, however long the upstream takes:
        # the lease only exists to let a retry take over after a crash.
        # It is stopped, never cancelled: a write cancelled half-way can hold SQLite's lock.
        done = asyncio.Event()
        heartbeat = asyncio.create_task(self._renew_lease(store, client.id, key, holder, done))
        try:
            await self.app(scope, receive, capture)
        except BaseException:
            done.set()
            await heartbeat
            await store.release(client.id, key, holder)
            raise
        done.set()
        await heartbeat
        if scope.get(REFUSED) and status < 500:
            await store.discard(client.id, key, holder)
        elif status >= 500:
            await store.release(client.id, key, holder)
        else:
            await store.complete(client.id, key, holder, StoredResponse(status, headers, b"".join(chunks)))

    @staticmethod
    async def _renew_lease(store: IdempotencyStore, client_id: str, key: str, holder: str, done: asyncio.Event) -> None:
        interval = max(0.5, store.lease.total_seconds() / 3)
        while True:
            try:
                await asyncio.wait_for(done.wait(), interval)
                return
            except TimeoutError:
                pass
            try:
                if not await store.renew(client_id, key, holder):
                    return
            except Exception:  # the database is briefly away: try again next beat
                log.warning("could not renew an idempotency lease; retrying")


