"""Idempotency-Key: persisted records and the middleware that applies them."""

from .middleware import IDEMPOTENCY_KEY, IdempotencyMiddleware, parse_idempotency_key
from .store import Claim, IdempotencyStore, StoredResponse, fingerprint

__all__ = [
    "IDEMPOTENCY_KEY",
    "Claim",
    "IdempotencyMiddleware",
    "IdempotencyStore",
    "StoredResponse",
    "fingerprint",
    "parse_idempotency_key",
]
