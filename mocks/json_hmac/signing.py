"""Request signing of the json-hmac protocol, from the bureau's side.

The checks run in a fixed order so each refusal has one meaning: missing or
malformed headers and wrong signatures are ``1001``, an unknown app id ``1004``,
a correctly signed but stale request ``1002`` and a correctly signed replay
``1003``. A nonce is only remembered once the signature is proven, so forged
requests cannot burn a caller's nonces.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import re
import threading
from collections.abc import Callable

from mocks.json_hmac.wire import BAD_SIGNATURE, NONCE_REPLAYED, STALE_TIMESTAMP, UNKNOWN_APP, BureauError
from mocks.server import Request

WINDOW_SECONDS = 300
_NONCE = re.compile(r"[0-9a-zA-Z]{16,64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def string_to_sign(method: str, target: str, timestamp: str, nonce: str, body: bytes) -> str:
    """METHOD, path with raw query, timestamp, nonce and body SHA-256, joined by newlines."""
    return "\n".join((method.upper(), target, timestamp, nonce, hashlib.sha256(body).hexdigest()))


def signature(secret: str, method: str, target: str, timestamp: str, nonce: str, body: bytes) -> str:
    """Lower-case hex HMAC-SHA256 of the string to sign, keyed with the secret's UTF-8 bytes."""
    message = string_to_sign(method, target, timestamp, nonce, body).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


class NonceCache:
    """Nonces seen recently, with memory bounded by the traffic of one window.

    A nonce is kept until both its arrival and its (possibly future) timestamp are
    a full window old: only then would a replay be refused as stale anyway.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def add(self, nonce: str, timestamp: int, now: float) -> bool:
        """Remember ``nonce``; False when it was already seen within the window."""
        with self._lock:
            while self._heap and self._heap[0][0] <= now:
                _, expired = heapq.heappop(self._heap)
                del self._expiry[expired]
            if nonce in self._expiry:
                return False
            expiry = max(now, timestamp) + WINDOW_SECONDS
            self._expiry[nonce] = expiry
            heapq.heappush(self._heap, (expiry, nonce))
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)

    def clear(self) -> None:
        with self._lock:
            self._expiry.clear()
            self._heap.clear()


class Verifier:
    """Checks the four signing headers of a request against one issued app."""

    def __init__(self, app_id: str, app_secret: str, clock: Callable[[], float]) -> None:
        self._app_id = app_id
        self._secret = app_secret
        self._clock = clock
        self.nonces = NonceCache()

    def verify(self, request: Request) -> None:
        """Return when the request is authentic and fresh, else raise ``BureauError``."""
        headers = request.headers
        app_id = headers.get("X-App-Id")
        timestamp = headers.get("X-Timestamp")
        nonce = headers.get("X-Nonce")
        given = headers.get("X-Signature")
        if app_id is None or timestamp is None or nonce is None or given is None:
            raise BureauError(BAD_SIGNATURE, "missing signing header")
        if app_id != self._app_id:
            raise BureauError(UNKNOWN_APP)
        if not _TIMESTAMP.fullmatch(timestamp) or not _NONCE.fullmatch(nonce):
            raise BureauError(BAD_SIGNATURE, "malformed X-Timestamp or X-Nonce")
        expected = signature(self._secret, request.method, request.target, timestamp, nonce, request.body)
        # Headers arrive decoded as latin-1, so every character encodes back to one byte.
        if not hmac.compare_digest(expected.encode("ascii"), given.encode("latin-1")):
            raise BureauError(BAD_SIGNATURE)
        now = self._clock()
        if abs(now - int(timestamp)) > WINDOW_SECONDS:
            raise BureauError(STALE_TIMESTAMP)
        if not self.nonces.add(nonce, int(timestamp), now):
            raise BureauError(NONCE_REPLAYED)
