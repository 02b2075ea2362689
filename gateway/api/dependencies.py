"""What a handler needs about the current call, resolved once per request.

One provider that depends only on the request: Litestar then resolves it inline,
with no task group per request (this is on every request's hot path).
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide

from adapters import CallContext

from ..auth import Client
from ..registry import UpstreamSet
from ..runtime import Gateway
from .asgi import CLIENT, REQUEST_ID

__all__ = ["ApiCall", "dependencies"]


@dataclass(frozen=True, slots=True)
class ApiCall:
    """The gateway, the authenticated client, its environment's upstreams and the
    context handed to adapters (request id, client id)."""

    gateway: Gateway
    client: Client
    upstreams: UpstreamSet
    context: CallContext


def provide_call(request: Request) -> ApiCall:
    gateway: Gateway = request.app.state.gateway
    client: Client = request.scope[CLIENT]  # type: ignore[literal-required]
    upstreams = gateway.upstreams.get(client.environment)
    assert upstreams is not None, "authentication refuses keys of environments this gateway does not serve"
    context = CallContext(request_id=request.scope.get(REQUEST_ID, ""), client_id=client.id)  # type: ignore[call-overload]
    return ApiCall(gateway, client, upstreams, context)


def provide_gateway(state: State) -> Gateway:
    return state.gateway  # type: ignore[no-any-return]


dependencies = {
    "call": Provide(provide_call, sync_to_thread=False),
    "gateway": Provide(provide_gateway, sync_to_thread=False),
}
