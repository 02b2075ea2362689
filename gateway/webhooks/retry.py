"""When a failed delivery is tried again: a schedule of delays with jitter.

The default schedule grows roughly exponentially (5 s, 30 s, 2 min, 10 min, 1 h,
6 h) and then repeats its last step until ``max_attempts`` attempts were made.
Jitter only lengthens a delay (never earlier than documented) and spreads the
retries of many deliveries that failed together, e.g. while a receiver was down.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DEFAULT_SCHEDULE", "RetrySchedule"]

DEFAULT_SCHEDULE: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0, 3600.0, 21600.0)


@dataclass(frozen=True)
class RetrySchedule:
    delays: tuple[float, ...] = DEFAULT_SCHEDULE
    max_attempts: int = 12
    #: Each delay is lengthened by up to this fraction of itself, at random.
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not self.delays or any(d < 0 for d in self.delays):
            raise ValueError("the retry schedule needs at least one delay, none negative")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    @classmethod
    def of(cls, delays: Sequence[float], max_attempts: int, jitter: float) -> RetrySchedule:
        return cls(tuple(float(d) for d in delays), int(max_attempts), float(jitter))

    def delay_after(self, attempts: int, rng: random.Random | None = None) -> float | None:
        """Seconds to wait after ``attempts`` failed attempts; None when that was the last."""
        if attempts >= self.max_attempts:
            return None
        base = self.delays[min(attempts, len(self.delays)) - 1] if attempts >= 1 else 0.0
        return base * (1 + (rng or random).uniform(0, self.jitter))
