"""Bearer API-key authentication and scope checks.

Routes declare ``opt={"scope": "<scope>"}`` (or ``opt={"public": True}``). The
check happens here, before the body is decrypted or any Idempotency-Key is claimed,
so an unauthorised request leaves nothing behind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..api.asgi import CLIENT, gateway_of, header, route_opt, send_problem
from ..errors import ProblemError
from .clients import key_environment

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Receive, Scope, Send

__all__ = ["AuthenticationMiddleware"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="hr-gateway"'}


class AuthenticationMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        opt = route_opt(scope)
        if scope["type"] != "http" or opt.get("public"):
            await self.app(scope, receive, send)
            return
        try:
            scope[CLIENT] = await self._authenticate(scope, opt.get("scope"))  # type: ignore[literal-required]
        except ProblemError as error:
            await send_problem(scope, send, error)
            return
        scope["user"] = scope[CLIENT]  # type: ignore[literal-required]
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope, required: str | None) -> object:
        raw = header(scope, "authorization")
        if not raw:
            raise ProblemError("missing_api_key", "send Authorization: Bearer <api key>", headers=_CHALLENGE)
        scheme, _, api_key = raw.partition(" ")
        api_key = api_key.strip()
        if scheme.lower() != "bearer" or not api_key or key_environment(api_key) is None or len(api_key) > 200:
            raise ProblemError("invalid_api_key", headers=_CHALLENGE)
        gateway = gateway_of(scope)
        client = await gateway.clients.authenticate(api_key)
        if client is None:
            raise ProblemError("invalid_api_key", headers=_CHALLENGE)
        if client.revoked_at is not None:
            raise ProblemError("revoked_api_key", headers=_CHALLENGE)
        if required and required not in client.scopes and "admin" not in client.scopes:
            raise ProblemError("insufficient_scope", f"this operation needs the scope {required}", required_scope=required)
        if not gateway.upstreams.serves(client.environment):
            raise ProblemError(
                "environment_unavailable",
                f"this gateway has no {client.environment} upstreams; "
                + ("sandbox keys reach only mock upstreams" if client.sandbox else "live keys reach only configured upstreams"),
            )
        return client
