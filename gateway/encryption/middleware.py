"""Decrypt ``application/jose`` request bodies; encrypt responses on request.

Runs after authentication (the client's key is needed) and before idempotency (the
fingerprint is taken over the plaintext, so a retry re-encrypted with a fresh IV is
still the same request).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from joserfc.jwk import RSAKey

from ..api.asgi import BODY, CLIENT, gateway_of, header, send_problem, set_header
from ..errors import ProblemError
from .jwe import JOSE_CONTENT_TYPE, JweError, decrypt_body, encrypt_body

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["JweMiddleware"]


JSON_CONTENT_TYPE = "application/json"


def _media_type(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower()


def _is_json(value: str | None) -> bool:
    media_type = _media_type(value)
    return media_type == JSON_CONTENT_TYPE or (media_type.startswith("application/") and media_type.endswith("+json"))


class JweMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get(CLIENT) if scope["type"] == "http" else None
        if client is None:
            await self.app(scope, receive, send)
            return
        if _media_type(header(scope, "content-type")) == JOSE_CONTENT_TYPE:
            try:
                gateway_key: RSAKey = gateway_of(scope).jwe_gateway_key
                plaintext = decrypt_body(
                    scope.get(BODY, b""), client_kid=client.jwe_kid, client_key=client.jwe_key, gateway_key=gateway_key
                )
            except JweError as exc:
                await send_problem(scope, send, ProblemError("invalid_jwe", str(exc)))
                return
            scope[BODY] = plaintext  # type: ignore[literal-required]
            set_header(scope, "content-type", "application/json")
            set_header(scope, "content-length", str(len(plaintext)))
        elif scope.get(BODY) and not _is_json(header(scope, "content-type")):
            await send_problem(scope, send, ProblemError(
                "unsupported_media_type", f"send {JSON_CONTENT_TYPE} or {JOSE_CONTENT_TYPE}"))
            return
        if JOSE_CONTENT_TYPE not in (header(scope, "accept") or "").lower():
            await self.app(scope, receive, send)
            return

        start: Message | None = None
        chunks: list[bytes] = []

        async def encrypting_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            assert start is not None
            headers = list(start.get("headers", ()))
            content_type = next((v.decode() for k, v in headers if k.lower() == b"content-type"), "application/json")
            sealed = encrypt_body(b"".join(chunks), client_kid=client.jwe_kid, client_key=client.jwe_key,
                                  content_type=content_type.split(";")[0])
            headers = [(k, v) for k, v in headers if k.lower() not in (b"content-type", b"content-length")]
            headers += [(b"content-type", JOSE_CONTENT_TYPE.encode()), (b"content-length", str(len(sealed)).encode())]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": sealed, "more_body": False})

        await self.app(scope, receive, encrypting_send)
