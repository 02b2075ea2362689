"""Webhooks: signed, retried notifications of slow work to a client's endpoints.

``WebhookService.publish`` writes an event and its deliveries in the caller's
transaction (an outbox); the ``Dispatcher`` running in every replica delivers them.
See docs/webhooks.md.
"""

from .dispatcher import Claim, Dispatcher
from .events import EVENT_TYPES, UnknownEventType, check_patterns, matches
from .models import AttemptOut, DeliveryDetail, DeliveryOut, DeliveryPage, EndpointCreated, EndpointIn, EndpointOut
from .retry import DEFAULT_SCHEDULE, RetrySchedule
from .service import WebhookService
from .signing import SIGNATURE_HEADER, SignatureError, sign, verify
from .urls import check_url

__all__ = [
    "DEFAULT_SCHEDULE",
    "EVENT_TYPES",
    "SIGNATURE_HEADER",
    "AttemptOut",
    "Claim",
    "DeliveryDetail",
    "DeliveryOut",
    "DeliveryPage",
    "Dispatcher",
    "EndpointCreated",
    "EndpointIn",
    "EndpointOut",
    "RetrySchedule",
    "SignatureError",
    "UnknownEventType",
    "WebhookService",
    "check_patterns",
    "check_url",
    "matches",
    "sign",
    "verify",
]
