"""Upstream call policies as plain data.

Each adapter declares one ``UpstreamPolicy`` as a class attribute; the toolkit turns
it into timeouts, a connection pool, a tenacity retry loop and a circuit breaker.
Nothing about a particular upstream is special-cased in code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

__all__ = ["CircuitPolicy", "ConnectionLimits", "RetryPolicy", "Timeouts", "UpstreamPolicy"]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds for each phase of one HTTP exchange."""

    connect: float = 3.0
    read: float = 10.0
    write: float = 10.0
    pool: float = 5.0


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int = 50
    max_keepalive_connections: int = 20
    keepalive_expiry: float = 30.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how often to try a call again.

    Only ``TransientError`` is ever retried. The wait grows exponentially from
    ``initial_backoff`` with random jitter, capped at ``max_backoff``; a
    ``Retry-After`` from the upstream replaces the computed wait when longer, and a
    wait longer than ``max_retry_after`` (or past the deadline) ends the retries.
    ``deadline`` bounds the whole call, all attempts and waits included.
    """

    max_attempts: int = 4
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2
    deadline: float = 30.0
    respect_retry_after: bool = True
    max_retry_after: float = 30.0
    # HTTP statuses that mean "not applied" even for a state-changing call; any
    # other 5xx after a state-changing call is an ambiguous outcome.
    not_applied_statuses: frozenset[int] = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class CircuitPolicy:
    """Open after ``failure_threshold`` consecutive transient failures; after
    ``reset_timeout`` seconds let one probe call through (half-open)."""

    failure_threshold: int = 5
    reset_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class UpstreamPolicy:
    timeouts: Timeouts = field(default_factory=Timeouts)
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    circuit: CircuitPolicy = field(default_factory=CircuitPolicy)

    def evolve(self, **changes: object) -> UpstreamPolicy:
        """A copy with some parts replaced (used by configuration overrides and tests)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def with_overrides(self, overrides: Mapping[str, Mapping[str, Any]]) -> UpstreamPolicy:
        """Apply an operator's ``{"retry": {"max_attempts": 2}, "circuit": {...}}``.

        Unknown sections or fields raise ``ValueError`` naming them, so a typo in a
        configuration file is caught at start-up instead of silently ignored.
        """
        parts: dict[str, Any] = {}
        for section, values in overrides.items():
            current = getattr(self, section, None)
            if section not in _SECTIONS or current is None:
                raise ValueError(f"unknown policy section {section!r} (known: {', '.join(_SECTIONS)})")
            known = {f.name for f in fields(current)}
            unknown = sorted(set(values) - known)
            if unknown:
                raise ValueError(f"unknown {section} policy field(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
            cleaned = {k: frozenset(v) if isinstance(getattr(current, k), frozenset) else v for k, v in values.items()}
            parts[section] = replace(current, **cleaned)
        return replace(self, **parts)


_SECTIONS = ("timeouts", "limits", "retry", "circuit")
