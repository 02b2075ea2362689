"""Dependency providers shared by the controllers."""

from __future__ import annotations

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide

from adapters import CallContext

from ..auth import Client
from ..registry import UpstreamSet
from ..runtime import Gateway
from .asgi import CLIENT, REQUEST_ID

__all__ = ["dependencies"]


def provide_gateway(state: State) -> Gateway:
    return state.gateway  # type: ignore[no-any-return]


def provide_client(request: Request) -> Client:
    return request.scope[CLIENT]  # type: ignore[literal-required,no-any-return]


def provide_upstreams(gateway: Gateway, client: Client) -> UpstreamSet:
    upstream_set = gateway.upstreams.get(client.environment)
    assert upstream_set is not None, "authentication refuses keys of environments this gateway does not serve"
    return upstream_set


def provide_context(request: Request, client: Client) -> CallContext:
    return CallContext(request_id=request.scope.get(REQUEST_ID, ""), client_id=client.id)  # type: ignore[call-overload]


dependencies = {
    "gateway": Provide(provide_gateway, sync_to_thread=False),
    "client": Provide(provide_client, sync_to_thread=False),
    "upstreams": Provide(provide_upstreams, sync_to_thread=False),
    "context": Provide(provide_context, sync_to_thread=False),
}
