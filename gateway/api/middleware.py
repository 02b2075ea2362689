"""The outermost request middleware: request ids, body buffering with a size
limit, and an access log that never carries bodies (so never PII)."""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import TYPE_CHECKING

from ..encryption import mask_id_numbers_in
from ..errors import ProblemError
from .asgi import BODY, REQUEST_ID, body_receiver, gateway_of, header, send_problem

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestContextMiddleware"]

access_log = logging.getLogger("hr_gateway.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = header(scope, "x-request-id")
        acceptable = incoming and _REQUEST_ID.fullmatch(incoming) and mask_id_numbers_in(incoming) == incoming
        # An id that looks like a resident ID number is replaced: it would be logged,
        # audited and sent upstream.
        request_id = incoming if acceptable else "req_" + secrets.token_hex(12)
        scope[REQUEST_ID] = request_id  # type: ignore[literal-required]
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            limit = gateway_of(scope).settings.max_body_bytes
            body = await self._read_body(scope, receive, limit)
            if body is None:
                await send_problem(scope, send_with_id, ProblemError(
                    "payload_too_large", f"request bodies are limited to {limit} bytes", limit_bytes=limit))
                return
            scope[BODY] = body  # type: ignore[literal-required]
            await self.app(scope, body_receiver(scope), send_with_id)
        finally:
            access_log.info(
                "%s %s %s %.1fms request_id=%s",
                scope["method"], scope["path"], status, (time.perf_counter() - started) * 1000, request_id,
            )

    @staticmethod
    async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
        declared = header(scope, "content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)
