"""Session tokens issued by ``LOGIN``: valid until their expiry, never revoked by a
later login."""

from __future__ import annotations

import math
import secrets
import threading
from collections.abc import Callable


class Sessions:
    """Issued tokens and their expiry instants, on the bureau's (injectable) clock."""

    def __init__(self, clock: Callable[[], float], ttl: float) -> None:
        self._clock = clock
        self.ttl = ttl
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}

    def issue(self) -> str:
        """A fresh token; expired ones are forgotten so memory stays bounded by the TTL."""
        now = self._clock()
        token = secrets.token_hex(16)
        with self._lock:
            self._expiry = {t: at for t, at in self._expiry.items() if at > now}
            self._expiry[token] = now + self.ttl
        return token

    def is_valid(self, token: str) -> bool:
        if not token:
            return False
        with self._lock:
            expiry = self._expiry.get(token)
        return expiry is not None and self._clock() < expiry

    def expire_all(self) -> None:
        """Every token issued so far counts as expired from now on."""
        with self._lock:
            self._expiry = dict.fromkeys(self._expiry, -math.inf)

    def clear(self) -> None:
        with self._lock:
            self._expiry.clear()

    def __len__(self) -> int:
        now = self._clock()
        with self._lock:
            return sum(1 for at in self._expiry.values() if at > now)
