"""Idempotency-Key: persisted records and the middleware that applies them."""

from .middleware import IDEMPOTENCY_TOKEN, IdempotencyMiddleware, parse_idempotency_key
from .store import Claim, IdempotencyStore, StoredResponse, fingerprint

__all__ = [
    "IDEMPOTENCY_TOKEN",
    "Claim",
    "IdempotencyMiddleware",
    "IdempotencyStore",
    "StoredResponse",
    "fingerprint",
    "parse_idempotency_key",
]
