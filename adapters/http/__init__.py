"""The upstream HTTP toolkit: policies as data, retries, a circuit breaker, a client."""

from .circuit import CircuitBreaker, CircuitState
from .client import CallObserver, UpstreamCall, UpstreamClient
from .policy import (
    CircuitPolicy,
    ConnectionLimits,
    RetryPolicy,
    Timeouts,
    UpstreamPolicy,
)
from .retry import build_retrying, retry_after_seconds

__all__ = [
    "CallObserver",
    "CircuitBreaker",
    "CircuitPolicy",
    "CircuitState",
    "ConnectionLimits",
    "RetryPolicy",
    "Timeouts",
    "UpstreamCall",
    "UpstreamClient",
    "UpstreamPolicy",
    "build_retrying",
    "retry_after_seconds",
]
