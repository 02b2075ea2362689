"""Turn a ``RetryPolicy`` into a tenacity retry loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import Any

import tenacity
from tenacity.wait import wait_base

from ..errors import TransientError
from .policy import RetryPolicy

__all__ = ["build_retrying", "retry_after_seconds"]


class _RetryAfterOrBackoff(wait_base):
    """Exponential backoff with jitter, unless the upstream named a longer wait."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        p = self._policy
        exponential = p.initial_backoff * p.multiplier ** max(0, retry_state.attempt_number - 1)
        wait = min(p.max_backoff, exponential) + random.uniform(0, p.jitter)
        error = retry_state.outcome.exception() if retry_state.outcome else None
        hinted = getattr(error, "retry_after", None)
        if self._policy.respect_retry_after and hinted is not None:
            wait = max(wait, float(hinted))
        return wait


class _StopOnTooLongRetryAfter(tenacity.stop.stop_base):
    """Give up when the upstream asks for a wait beyond what the policy accepts."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._max = policy.max_retry_after

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        # a 429 (UpstreamRateLimited) or a busy 5xx (UpstreamServerError) may name a wait
        return isinstance(error, TransientError) and (getattr(error, "retry_after", None) or 0) > self._max


def build_retrying(
    policy: RetryPolicy,
    *,
    deadline: float,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> tenacity.AsyncRetrying:
    """A tenacity loop that retries only ``TransientError`` within ``deadline`` seconds."""
    return tenacity.AsyncRetrying(
        stop=(
            tenacity.stop_after_attempt(policy.max_attempts)
            | tenacity.stop_before_delay(deadline)
            | _StopOnTooLongRetryAfter(policy)
        ),
        wait=_RetryAfterOrBackoff(policy),
        retry=tenacity.retry_if_exception_type(TransientError),
        sleep=sleep,
        reraise=True,
    )


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a ``Retry-After`` header given in seconds (HTTP-dates are rare upstream)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - dt.datetime.now(dt.timezone.utc)).total_seconds()
    return max(0.0, seconds)
