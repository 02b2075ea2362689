"""Sessions and their CSRF tokens: a token is issued for one session cookie and
lives a fixed time from its issue."""

from __future__ import annotations

import hmac
import math
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

SESSION_COOKIE = "SAP_SESSIONID_HGW"


@dataclass
class _Session:
    token: str | None = None
    expires_at: float = -math.inf


class CsrfTokens:
    """Issued sessions and tokens on the ERP's (injectable) clock."""

    def __init__(self, clock: Callable[[], float], lifetime: float) -> None:
        self._clock = clock
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}

    def fetch(self, session_id: str | None) -> tuple[str, str, bool]:
        """``(session_id, token, new_session)``: the session's valid token, or a new one.

        An unknown session id starts a new session (the caller must be told its cookie)."""
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id) if session_id else None
            new_session = session is None
            if session is None:
                session_id = secrets.token_hex(16)
                session = self._sessions[session_id] = _Session()
            if session.token is None or now >= session.expires_at:
                session.token = secrets.token_urlsafe(24)
                session.expires_at = now + self.lifetime
            assert session_id is not None
            return session_id, session.token, new_session

    def is_valid(self, session_id: str | None, token: str | None) -> bool:
        """Whether ``token`` is the unexpired token of ``session_id``."""
        if not session_id or not token:
            return False
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or session.token is None:
                return False
            expected, expires_at = session.token, session.expires_at
        return hmac.compare_digest(expected.encode(), token.encode("latin-1")) and self._clock() < expires_at

    def expire_all(self) -> None:
        """Every token issued so far counts as expired from now on (sessions stay)."""
        with self._lock:
            for session in self._sessions.values():
                session.expires_at = -math.inf

    def clear(self) -> None:
        with self._lock:
            self._sessions.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)
