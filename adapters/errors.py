"""The adapter error taxonomy.

Every adapter translates its upstream's failures into these classes, so the gateway
can decide what to do (retry, ask the upstream, report the upstream's own refusal)
without ever seeing a wire format::

    AdapterError
    ├── ConfigurationError            an adapter instance was configured wrongly
    └── UpstreamError                 something about one call to one upstream
        ├── TransientError            safe to try again (the policy decides when)
        │   ├── UpstreamConnectError      never reached the upstream
        │   ├── UpstreamTimeout           no answer to a read-only call
        │   ├── UpstreamServerError       5xx that the upstream says was not applied
        │   └── UpstreamRateLimited       429, carries ``retry_after``
        ├── AmbiguousOutcome          a state-changing call was sent and got no answer:
        │                             ask the upstream before sending it again
        ├── CircuitOpen               the breaker for this upstream is open
        ├── UpstreamAuthenticationError  credentials or signature refused
        ├── UpstreamNotFound          the thing asked about does not exist upstream
        ├── BusinessRejection         the upstream understood and said no
        │                             (carries its own ``upstream_code`` and message)
        └── UpstreamProtocolError     the upstream answered something unreadable

Errors carry the ``httpx.Request``/``httpx.Response`` that caused them, where there
was one, and the name of the upstream instance.
"""

from __future__ import annotations

import httpx

__all__ = [
    "AdapterError",
    "AmbiguousOutcome",
    "BusinessRejection",
    "CircuitOpen",
    "ConfigurationError",
    "TransientError",
    "UpstreamAuthenticationError",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamNotFound",
    "UpstreamProtocolError",
    "UpstreamRateLimited",
    "UpstreamServerError",
    "UpstreamTimeout",
]


class AdapterError(Exception):
    """Base class of everything an adapter raises on purpose."""


class ConfigurationError(AdapterError):
    """An adapter instance cannot work with the configuration it was given."""


class UpstreamError(AdapterError):
    """A call to one upstream did not produce a usable answer."""

    def __init__(
        self,
        message: str,
        *,
        upstream: str = "",
        request: httpx.Request | None = None,
        response: httpx.Response | None = None,
        upstream_code: str | None = None,
        upstream_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.upstream = upstream
        self.request = request
        self.response = response
        self.upstream_code = upstream_code
        self.upstream_message = upstream_message

    @property
    def status_code(self) -> int | None:
        return self.response.status_code if self.response is not None else None


class TransientError(UpstreamError):
    """A failure that may go away; trying again later is safe."""


class UpstreamConnectError(TransientError):
    """The request never reached the upstream (DNS, refused, TLS, pool)."""


class UpstreamTimeout(TransientError):
    """A read-only call got no answer in time."""


class UpstreamServerError(TransientError):
    """The upstream answered 5xx in a way that says nothing was applied.

    ``retry_after`` is the upstream's ``Retry-After`` in seconds, if it sent one (a
    busy 503 often does); the retry loop honours it like a 429's.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class UpstreamRateLimited(TransientError):
    """The upstream asked us to slow down."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class AmbiguousOutcome(UpstreamError):
    """A state-changing request was sent but its outcome is unknown.

    Sending it again blindly could apply it twice; the adapter must first ask the
    upstream whether it landed (by the deterministic reference it sent).
    """


class CircuitOpen(UpstreamError):
    """Calls to this upstream are suspended after repeated transient failures."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class UpstreamAuthenticationError(UpstreamError):
    """The upstream refused our credentials or signature."""


class UpstreamNotFound(UpstreamError):
    """The upstream has no such thing."""


class BusinessRejection(UpstreamError):
    """The upstream understood the request and refused it for a business reason."""

    upstream_code: str
    upstream_message: str

    def __init__(
        self,
        message: str,
        *,
        upstream_code: str,
        upstream_message: str,
        field: str | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(
            message, upstream_code=upstream_code, upstream_message=upstream_message, **kwargs  # type: ignore[arg-type]
        )
        self.field = field


class UpstreamProtocolError(UpstreamError):
    """The upstream's answer did not follow its own protocol."""
