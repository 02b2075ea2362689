"""Small helpers shared by the gateway's ASGI middleware."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import PROBLEM_CONTENT_TYPE, ProblemError, problem_body

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

    from ..runtime import Gateway

__all__ = [
    "BODY",
    "CLIENT",
    "REFUSED",
    "REQUEST_ID",
    "body_receiver",
    "gateway_of",
    "header",
    "route_opt",
    "send_problem",
    "send_response",
    "set_header",
]

# Keys this gateway keeps in the ASGI scope.
BODY = "hgw.body"
CLIENT = "hgw.client"
REQUEST_ID = "hgw.request_id"
REFUSED = "hgw.refused"


def gateway_of(scope: Scope) -> Gateway:
    return scope["litestar_app"].state.gateway  # type: ignore[no-any-return]


def route_opt(scope: Scope) -> dict[str, Any]:
    handler = scope.get("route_handler")
    return handler.opt if handler is not None else {}


def header(scope: Scope, name: str) -> str | None:
    wanted = name.lower().encode("latin-1")
    for key, value in scope.get("headers", ()):
        if key.lower() == wanted:
            return value.decode("latin-1")
    return None


def set_header(scope: Scope, name: str, value: str | None) -> None:
    """Replace (or with ``None`` remove) a request header in the scope."""
    wanted = name.lower().encode("latin-1")
    headers = [(k, v) for k, v in scope.get("headers", ()) if k.lower() != wanted]
    if value is not None:
        headers.append((wanted, value.encode("latin-1")))
    scope["headers"] = headers


def body_receiver(scope: Scope) -> Receive:
    """A ``receive`` that hands the application the (possibly rewritten) body once."""
    sent = False

    async def receive() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": scope.get(BODY, b""), "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def send_response(
    send: Send, status: int, body: bytes, content_type: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    all_headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    all_headers.extend(headers or [])
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_problem(scope: Scope, send: Send, error: ProblemError) -> None:
    scope[REFUSED] = error.refusal  # type: ignore[literal-required]
    extra = [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send_response(send, error.status, problem_body(error, scope.get("path")), PROBLEM_CONTENT_TYPE, extra)
