"""Webhook signatures: ``Hgw-Signature: t=<unix seconds>,v1=<hex>``.

``v1`` is HMAC-SHA256, keyed with the endpoint's whole secret (``whsec_…`` as UTF-8),
over ``"<t>." + body``. Signing the timestamp with the body lets a receiver refuse
replays of an old delivery (``tolerance``). Several ``v1`` values may appear (for a
future secret rotation); one matching is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "SIGNATURE_HEADER",
    "SignatureError",
    "compute_signature",
    "new_secret",
    "sign",
    "verify",
]

SIGNATURE_HEADER = "Hgw-Signature"
DEFAULT_TOLERANCE_SECONDS = 300
_SECRET_PREFIX = "whsec_"


class SignatureError(ValueError):
    """The signature header is missing, malformed, stale or does not match."""


def new_secret() -> str:
    return _SECRET_PREFIX + secrets.token_urlsafe(32)


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The ``Hgw-Signature`` header value for ``body``."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={compute_signature(secret, t, body)}"


def verify(
    secret: str, body: bytes, header: str | None, *, tolerance: float = DEFAULT_TOLERANCE_SECONDS, now: float | None = None
) -> int:
    """Check a received delivery; returns its timestamp or raises ``SignatureError``.

    ``body`` must be the raw bytes received, before any JSON parsing.
    """
    if not header:
        raise SignatureError(f"no {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("the timestamp is not an integer") from None
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("the header needs t=<timestamp> and v1=<signature>")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError("the timestamp is outside the tolerance (a replay, or a wrong clock)")
    expected = compute_signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError("no signature matches")
    return timestamp
