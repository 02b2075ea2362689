"""A circuit breaker per upstream instance.

Consecutive transient failures open the circuit; while open, calls fail at once with
``CircuitOpen`` instead of piling onto a sick upstream. After the reset timeout one
probe is let through (half-open): success closes the circuit, failure re-opens it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..errors import CircuitOpen
from .policy import CircuitPolicy

__all__ = ["CircuitBreaker", "CircuitState"]

CircuitState = Literal["closed", "open", "half_open"]


@dataclass(slots=True)
class _Snapshot:
    state: CircuitState
    consecutive_failures: int
    opened_at: float | None


class CircuitBreaker:
    def __init__(
        self, name: str, policy: CircuitPolicy, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.policy = policy
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.policy.reset_timeout:
            return "half_open"
        return "open"

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def before_call(self) -> bool:
        """Raise ``CircuitOpen`` unless a call may go through now.

        Returns ``True`` when the call let through is the half-open probe (its caller
        must end it with ``record_success``, ``record_failure`` or ``release_probe``).
        """
        state = self.state
        if state == "closed":
            return False
        if state == "half_open" and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        assert self._opened_at is not None
        wait = max(0.0, self.policy.reset_timeout - (self._clock() - self._opened_at))
        raise CircuitOpen(
            f"circuit for upstream {self.name!r} is open", upstream=self.name, retry_after=wait or 1.0
        )

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probe_in_flight = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._probe_in_flight or self._failures >= self.policy.failure_threshold:
            self._opened_at = self._clock()
        self._probe_in_flight = False

    def release_probe(self) -> None:
        """A probe ended without telling us anything about the upstream's health."""
        self._probe_in_flight = False
