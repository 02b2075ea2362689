"""Request signing of the iso20022 bank, from the bank's side.

Checks run in a fixed order so each refusal has one meaning: missing or malformed
headers and wrong signatures are ``AUTH_SIGNATURE``, an unknown key
``AUTH_UNKNOWN_KEY``, a correctly signed but stale request ``AUTH_EXPIRED`` and a
correctly signed replay ``AUTH_REPLAY``. A nonce is remembered only once the
signature is proven, so forged requests cannot burn a client's nonces.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import heapq
import hmac
import re
import threading
from collections.abc import Callable

from mocks.iso20022.messages import AUTH_EXPIRED, AUTH_REPLAY, AUTH_SIGNATURE, AUTH_UNKNOWN_KEY, BankError
from mocks.server import Request

WINDOW_SECONDS = 300
_NONCE = re.compile(r"[0-9A-Za-z]{16,64}")
_REQUEST_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def string_to_sign(method: str, target: str, request_time: str, nonce: str, body: bytes) -> str:
    return "\n".join((method.upper(), target, request_time, nonce, hashlib.sha256(body).hexdigest()))


def signature(secret: str, method: str, target: str, request_time: str, nonce: str, body: bytes) -> bytes:
    """The raw HMAC-SHA256 (the header carries it in base64)."""
    message = string_to_sign(method, target, request_time, nonce, body).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


class Verifier:
    """Checks the signing headers of a request against the one client of this bank."""

    def __init__(self, api_key: str, api_secret: str, clock: Callable[[], float]) -> None:
        self._api_key = api_key
        self._secret = api_secret
        self._clock = clock
        self._lock = threading.Lock()
        self._nonces: dict[str, float] = {}
        self._expiries: list[tuple[float, str]] = []

    def clear(self) -> None:
        with self._lock:
            self._nonces.clear()
            self._expiries.clear()

    def verify(self, request: Request) -> None:
        """Return when the request is authentic and fresh, else raise ``BankError``."""
        headers = request.headers
        api_key = headers.get("X-Api-Key")
        request_time = headers.get("X-Request-Time")
        nonce = headers.get("X-Nonce")
        given = headers.get("X-Signature")
        if api_key is None or request_time is None or nonce is None or given is None:
            raise BankError(AUTH_SIGNATURE, "missing signing header")
        if api_key != self._api_key:
            raise BankError(AUTH_UNKNOWN_KEY)
        if not _REQUEST_TIME.fullmatch(request_time) or not _NONCE.fullmatch(nonce):
            raise BankError(AUTH_SIGNATURE, "malformed X-Request-Time or X-Nonce")
        try:
            sent_at = dt.datetime.strptime(request_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
            given_bytes = base64.b64decode(given.encode("latin-1"), validate=True)
        except (ValueError, binascii.Error):
            raise BankError(AUTH_SIGNATURE, "malformed X-Request-Time or X-Signature") from None
        expected = signature(self._secret, request.method, request.target, request_time, nonce, request.body)
        if not hmac.compare_digest(expected, given_bytes):
            raise BankError(AUTH_SIGNATURE)
        now = self._clock()
        if abs(now - sent_at) > WINDOW_SECONDS:
            raise BankError(AUTH_EXPIRED)
        with self._lock:
            while self._expiries and self._expiries[0][0] <= now:
                del self._nonces[heapq.heappop(self._expiries)[1]]
            if nonce in self._nonces:
                raise BankError(AUTH_REPLAY)
            # Kept until a replay would be refused as stale anyway.
            expiry = max(now, sent_at) + WINDOW_SECONDS
            self._nonces[nonce] = expiry
            heapq.heappush(self._expiries, (expiry, nonce))
