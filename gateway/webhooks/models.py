"""What the webhook API shows: endpoints, deliveries and their attempts."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

__all__ = [
    "DeliveryDetail",
    "DeliveryOut",
    "DeliveryPage",
    "DeliveryStatus",
    "EndpointCreated",
    "EndpointIn",
    "EndpointOut",
    "AttemptOut",
]

DeliveryStatus = Literal["pending", "delivered", "failed"]


class EndpointIn(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[
        str,
        msgspec.Meta(
            max_length=2000,
            description=(
                "Absolute https URL the events are POSTed to (http and loopback are accepted in the sandbox); "
                "no credentials in it"
            ),
        ),
    ]
    events: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=60)]],
        msgspec.Meta(
            max_length=50,
            description="At least one event type (`transfer.completed`), resource pattern (`transfer.*`) or `*`",
        ),
    ]
    description: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class EndpointOut(msgspec.Struct):
    id: str
    url: str
    events: list[str]
    description: str | None
    environment: Literal["sandbox", "live"]
    created_at: dt.datetime


class EndpointCreated(msgspec.Struct):
    id: str
    url: str
    events: list[str]
    description: str | None
    environment: Literal["sandbox", "live"]
    created_at: dt.datetime
    secret: Annotated[
        str, msgspec.Meta(description="The signing secret (whsec_…). Shown only now: store it with the receiver")
    ]


class DeliveryOut(msgspec.Struct):
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: dt.datetime | None
    created_at: dt.datetime


class DeliveryPage(msgspec.Struct):
    data: list[DeliveryOut]
    has_more: Annotated[bool, msgspec.Meta(description="Ask for the next page with ?before=<id of the last one>")]


class AttemptOut(msgspec.Struct):
    at: dt.datetime
    status_code: Annotated[int | None, msgspec.Meta(description="The receiver's HTTP status; null if none came")]
    error: str | None
    latency_ms: float


class DeliveryDetail(msgspec.Struct):
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: dt.datetime | None
    created_at: dt.datetime
    attempt_log: list[AttemptOut]
