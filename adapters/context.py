"""Per-call context handed from the gateway to an adapter."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["CallContext"]


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who is calling and by when the answer is needed.

    ``request_id`` travels upstream as ``X-Request-ID``; ``client_id`` and
    ``gateway_id`` only reach the call observer (the audit log).
    ``deadline`` is a ``time.monotonic()`` instant or ``None`` for no limit.
    """

    request_id: str = ""
    client_id: str | None = None
    gateway_id: str | None = None
    deadline: float | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or ``None``."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def with_gateway_id(self, gateway_id: str) -> CallContext:
        return CallContext(self.request_id, self.client_id, gateway_id, self.deadline, dict(self.extra))
