"""Packages that add CLI commands and API routes to the gateway.

The gateway never imports an extension: an installed package declares one under the
entry-point group ``hr_gateway.extensions`` (the sandbox's migration runs are one,
``sandbox.extension:EXTENSION``), exactly as adapters are found through
``hr_gateway.adapters``. An extension brings:

* ``commands``: click commands (or groups) mounted on ``hr-gateway``;
* ``route_handlers``: Litestar controllers served behind the gateway's middleware
  (authentication, scopes, problem documents) like the built-in ones;
* ``lifespan``: async context managers entered once the gateway has started and left
  before it stops (background work of the extension ends while the gateway is up);
* ``problem_types``: the stable problem codes it answers with, added to the catalogue.

A route that takes a large upload (e.g. a data file) declares ``opt={"streamed_upload":
True}`` and reads the body with ``upload_stream(request)``: it arrives chunk by chunk
from the connection, never buffered in memory by the gateway (the request-body
middleware, which buffers bodies for JWE and idempotency, sees an empty body for
such a route, so uploads are neither encrypted nor fingerprinted).

A broken extension is logged and skipped: it must not stop the gateway.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from .errors import CATALOGUE, ProblemType

if TYPE_CHECKING:
    import click
    from litestar import Litestar, Request
    from litestar.config.app import AppConfig
    from litestar.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "EXTENSION_GROUP",
    "Extension",
    "StreamedUploadMiddleware",
    "add_extension_commands",
    "apply_extensions",
    "load_extensions",
    "upload_stream",
]

log = logging.getLogger("hr_gateway.extensions")

EXTENSION_GROUP = "hr_gateway.extensions"
_UPLOAD_RECEIVE = "hgw.upload_receive"


@dataclass(frozen=True)
class Extension:
    name: str
    #: Called when the CLI is built: the click commands to mount (imports stay lazy).
    commands: Callable[[], Sequence[click.Command]] | None = None
    #: Called when the app is built: its controllers / route handlers.
    route_handlers: Callable[[], Sequence[Any]] | None = None
    #: Each is called with the app; entered after the gateway started, left before it stops.
    lifespan: Sequence[Callable[[Litestar], AbstractAsyncContextManager[None]]] = ()
    problem_types: Mapping[str, ProblemType] = field(default_factory=dict)


@cache
def load_extensions() -> tuple[Extension, ...]:
    """Every extension installed in this environment, problem codes registered."""
    found: list[Extension] = []
    for ep in entry_points(group=EXTENSION_GROUP):
        try:
            extension = ep.load()
            if not isinstance(extension, Extension):
                raise TypeError(f"{ep.value} is a {type(extension).__name__}, not an Extension")
            for code, problem_type in extension.problem_types.items():
                if CATALOGUE.get(code, problem_type) != problem_type:
                    raise ValueError(f"problem code {code!r} is already defined differently")
        except Exception:  # a broken third-party package must not stop the gateway
            log.exception("cannot load extension entry point %s (%s)", ep.name, ep.value)
            continue
        CATALOGUE.update(extension.problem_types)
        found.append(extension)
    return tuple(found)


def add_extension_commands(group: click.Group) -> None:
    """Mount every extension's commands on the ``hr-gateway`` group."""
    for extension in load_extensions():
        if extension.commands is None:
            continue
        try:
            commands = extension.commands()
        except Exception:
            log.exception("extension %s: cannot build its commands", extension.name)
            continue
        for command in commands:
            if command.name in group.commands:
                log.error("extension %s: command %r is already taken", extension.name, command.name)
                continue
            group.add_command(command)


def apply_extensions(app_config: AppConfig) -> AppConfig:
    """Litestar ``on_app_init`` hook: add every extension's routes and lifespan."""
    for extension in load_extensions():
        try:
            handlers = list(extension.route_handlers()) if extension.route_handlers else []
        except Exception:
            log.exception("extension %s: cannot build its routes", extension.name)
            continue
        app_config.route_handlers.extend(handlers)
        if StreamedUploadMiddleware not in app_config.middleware:
            # Outermost: it must see the connection's own body stream.
            app_config.middleware.insert(0, StreamedUploadMiddleware)
        # Appended after the gateway's own lifespan: entered once it has started, left before it stops.
        app_config.lifespan.extend(extension.lifespan)
    return app_config


class StreamedUploadMiddleware:
    """For ``streamed_upload`` routes, keep the connection's body stream for the
    handler (``upload_stream``) and show the inner middleware an empty body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = scope.get("route_handler") if scope["type"] == "http" else None
        if handler is None or not handler.opt.get("streamed_upload"):
            await self.app(scope, receive, send)
            return
        scope[_UPLOAD_RECEIVE] = receive  # type: ignore[literal-required]
        # The declared length is the upload's, not the (empty) body the inner middleware reads.
        scope["headers"] = [(k, v) for k, v in scope.get("headers", ()) if k.lower() != b"content-length"]
        handed = False

        async def empty_body() -> Any:
            nonlocal handed
            if not handed:
                handed = True
                return {"type": "http.request", "body": b"", "more_body": False}
            # Later calls (e.g. waiting for a disconnect) go to the connection.
            return await receive()

        await self.app(scope, empty_body, send)


async def upload_stream(request: Request) -> AsyncIterator[bytes]:
    """The request body of a ``streamed_upload`` route, chunk by chunk as it arrives."""
    receive = request.scope.get(_UPLOAD_RECEIVE)  # type: ignore[call-overload]
    if receive is None:  # not a streamed_upload route: the (buffered) body
        async for chunk in request.stream():
            yield chunk
        return
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return
