"""Sessions issued by ``ValidateUser``: valid for a fixed time after issue, never
ended by a later login."""

from __future__ import annotations

import math
import secrets
import threading
from collections.abc import Callable


class Sessions:
    """Issued session ids and their expiry instants, on the ERP's (injectable) clock."""

    def __init__(self, clock: Callable[[], float], ttl: Callable[[], float]) -> None:
        self._clock = clock
        self._ttl = ttl
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}

    def issue(self) -> str:
        """A fresh session id; expired ones are forgotten so memory stays bounded."""
        now = self._clock()
        session_id = secrets.token_hex(16)
        with self._lock:
            self._expiry = {s: at for s, at in self._expiry.items() if at > now}
            self._expiry[session_id] = now + self._ttl()
        return session_id

    def is_valid(self, session_id: str | None) -> bool:
        if not session_id:
            return False
        with self._lock:
            expiry = self._expiry.get(session_id)
        return expiry is not None and self._clock() < expiry

    def expire_all(self) -> None:
        """Every session issued so far counts as expired from now on."""
        with self._lock:
            self._expiry = dict.fromkeys(self._expiry, -math.inf)

    def clear(self) -> None:
        with self._lock:
            self._expiry.clear()

    def __len__(self) -> int:
        now = self._clock()
        with self._lock:
            return sum(1 for at in self._expiry.values() if at > now)
