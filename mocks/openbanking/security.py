"""Access tokens and detached request signatures, from the bank's side.

Tokens are issued by the client-credentials grant and expire on the bank's
(injectable) clock. Signatures are detached compact JWS (ES256) over the exact body
bytes, verified with the public key the client registered; the mock keeps only the
public part of whatever key it is given.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from joserfc.registry import HeaderParameter

from mocks.openbanking.wire import (
    SIGNATURE_EXPIRED,
    SIGNATURE_INVALID,
    SIGNATURE_MALFORMED,
    SIGNATURE_MISSING,
    BankError,
)

SIGNATURE_WINDOW_SECONDS = 300
SCOPES = frozenset({"payments", "accounts"})
# ``iat`` is not a registered JWS header parameter; the protocol adds it.
_REGISTRY = jws.JWSRegistry(
    header_registry={"iat": HeaderParameter("Issued at (Unix seconds)", "int", required=True)}, algorithms=["ES256"]
)


def public_key_of(signing_key: str) -> ECKey:
    """The EC P-256 public key in ``signing_key`` (a PEM of the private or the public key)."""
    key = ECKey.import_key(signing_key)
    if key.curve_name != "P-256":
        raise ValueError(f"signing_key must be an EC P-256 key, got {key.curve_name}")
    return ECKey.import_key(key.as_pem(private=False))


class TokenError(Exception):
    """A token request refused in the RFC 6749 §5.2 format."""

    def __init__(self, error: str, description: str, status: int) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True)
class _Token:
    scopes: frozenset[str]
    expires_at: float


class TokenIssuer:
    """Checks client credentials and keeps the tokens it issued until they expire."""

    def __init__(self, client_id: str, client_secret: str, ttl: float, clock: Callable[[], float]) -> None:
        self.client_id = client_id
        self._secret = client_secret
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}

    def authenticate(self, authorization: str | None) -> None:
        """Check ``Authorization: Basic …`` against the issued client id and secret."""
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic" or not encoded:
            raise TokenError("invalid_client", "client authentication (HTTP Basic) is required", 401)
        try:
            client_id, sep, secret = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise TokenError("invalid_client", "malformed Basic credentials", 401) from None
        if not sep or not (
            hmac.compare_digest(client_id.encode(), self.client_id.encode())
            and hmac.compare_digest(secret.encode(), self._secret.encode())
        ):
            raise TokenError("invalid_client", "unknown client or wrong secret", 401)

    def issue(self, scopes: frozenset[str]) -> tuple[str, float]:
        """A new token for ``scopes`` and its lifetime in seconds."""
        now = self._clock()
        token = secrets.token_hex(24)
        with self._lock:
            self._tokens = {t: v for t, v in self._tokens.items() if v.expires_at > now}
            self._tokens[token] = _Token(scopes, now + self.ttl)
        return token, self.ttl

    def scopes_of(self, authorization: str | None) -> frozenset[str] | None:
        """The scopes of a valid bearer token, or None when it is missing, unknown or expired."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        with self._lock:
            entry = self._tokens.get(token.strip())
        if entry is None or self._clock() >= entry.expires_at:
            return None
        return entry.scopes

    def expire_all(self) -> None:
        with self._lock:
            self._tokens = {t: _Token(v.scopes, -math.inf) for t, v in self._tokens.items()}

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


class SignatureVerifier:
    """Verifies ``x-jws-signature`` against the client's registered public key."""

    def __init__(self, client_id: str, public_key: ECKey, clock: Callable[[], float]) -> None:
        self._client_id = client_id
        self._key = public_key
        self._clock = clock

    def verify(self, header: str | None, body: bytes) -> None:
        if not header:
            raise BankError(SIGNATURE_MISSING)
        parts = header.strip().split(".")
        if len(parts) != 3 or parts[1] != "" or not parts[0] or not parts[2]:
            raise BankError(SIGNATURE_MALFORMED, "x-jws-signature must be <protected header>..<signature>")
        try:
            padded = parts[0] + "=" * (-len(parts[0]) % 4)
            protected = json.loads(base64.urlsafe_b64decode(padded))
        except (binascii.Error, ValueError, RecursionError):
            raise BankError(SIGNATURE_MALFORMED, "the protected header is not base64url JSON") from None
        if not isinstance(protected, dict):
            raise BankError(SIGNATURE_MALFORMED, "the protected header is not a JSON object")
        if protected.get("alg") != "ES256":
            raise BankError(SIGNATURE_MALFORMED, "alg must be ES256")
        if protected.get("kid") != self._client_id:
            raise BankError(SIGNATURE_MALFORMED, "kid must be the client id")
        iat = protected.get("iat")
        if not isinstance(iat, int) or isinstance(iat, bool):
            raise BankError(SIGNATURE_MALFORMED, "iat must be Unix seconds")
        try:
            jws.deserialize_compact(header.strip(), self._key, payload=body, registry=_REGISTRY)
        except (JoseError, ValueError):
            raise BankError(SIGNATURE_INVALID) from None
        if abs(self._clock() - iat) > SIGNATURE_WINDOW_SECONDS:
            raise BankError(SIGNATURE_EXPIRED)
