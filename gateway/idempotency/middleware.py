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

import re
from typing import TYPE_CHECKING

from ..api.asgi import BODY, CLIENT, REFUSED, gateway_of, header, route_opt, send_problem, send_response
from ..errors import ProblemError
from .store import StoredResponse, fingerprint

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["IDEMPOTENCY_TOKEN", "IdempotencyMiddleware", "parse_idempotency_key"]

IDEMPOTENCY_TOKEN = "hgw.idempotency_token"
_KEY = re.compile(r'[\x21\x23-\x5b\x5d-\x7e]{1,255}')  # visible ASCII without '"' and '\'
_REPLAYED_HEADERS = frozenset({"content-type", "location"})


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

        try:
            await self.app(scope, receive, capture)
        except BaseException:
            await store.release(client.id, key)
            raise
        if scope.get(REFUSED) and status < 500:
            await store.discard(client.id, key)
        elif status >= 500:
            await store.release(client.id, key)
        else:
            await store.complete(client.id, key, StoredResponse(status, headers, b"".join(chunks)))


