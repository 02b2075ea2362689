"""Webhook endpoints of the calling client, and the deliveries made to them.

Creating an endpoint has no upstream effect, so it needs no Idempotency-Key. Every
operation sees only the key's own client and environment: another client's
endpoint or delivery is 404.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.params import QueryParameter

from ..webhooks import DeliveryDetail, DeliveryPage, EndpointCreated, EndpointIn, EndpointOut, WebhookService
from .dependencies import ApiCall

__all__ = ["WebhooksController"]

_SCOPE = {"scope": "webhooks:manage"}


def _webhooks(call: ApiCall) -> WebhookService:
    return call.gateway.webhooks


class WebhooksController(Controller):
    tags = ["webhooks"]
    opt = _SCOPE

    @post("/v1/webhook-endpoints", status_code=201, summary="Register a webhook endpoint")
    async def create_endpoint(self, data: EndpointIn, call: ApiCall) -> EndpointCreated:
        """Events of the subscribed types are POSTed to `url`, signed with the returned `secret` (shown only in
        this response). 422 `invalid_webhook_url`, `webhook_url_not_allowed`, `unknown_event_type` or
        `no_event_types` when the URL or the subscription is not acceptable."""
        return await _webhooks(call).create_endpoint(call.client, data)

    @get("/v1/webhook-endpoints", summary="The client's webhook endpoints")
    async def list_endpoints(self, call: ApiCall) -> list[EndpointOut]:
        return await _webhooks(call).list_endpoints(call.client)

    @get("/v1/webhook-endpoints/{endpoint_id:str}", summary="A webhook endpoint")
    async def get_endpoint(self, endpoint_id: str, call: ApiCall) -> EndpointOut:
        return await _webhooks(call).get_endpoint(call.client, endpoint_id)

    @delete("/v1/webhook-endpoints/{endpoint_id:str}", status_code=204, summary="Delete a webhook endpoint")
    async def delete_endpoint(self, endpoint_id: str, call: ApiCall) -> None:
        """Nothing more is sent to it: deliveries still pending end as `failed`."""
        await _webhooks(call).delete_endpoint(call.client, endpoint_id)

    @get("/v1/webhook-endpoints/{endpoint_id:str}/deliveries", summary="Deliveries to an endpoint, newest first")
    async def list_deliveries(
        self,
        endpoint_id: str,
        call: ApiCall,
        limit: Annotated[int, QueryParameter(ge=1, le=100, description="Page size")] = 20,
        before: Annotated[
            str | None, QueryParameter(max_length=60, description="The id of the last delivery of the previous page")
        ] = None,
    ) -> DeliveryPage:
        return await _webhooks(call).list_deliveries(call.client, endpoint_id, limit=limit, before=before)

    @get("/v1/webhook-deliveries/{delivery_id:str}", summary="A webhook delivery with every attempt")
    async def get_delivery(self, delivery_id: str, call: ApiCall) -> DeliveryDetail:
        return await _webhooks(call).get_delivery(call.client, delivery_id)
