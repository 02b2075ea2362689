"""The upstream HTTP client every adapter uses.

One ``UpstreamClient`` per configured upstream instance: its own httpx connection pool
and timeouts, its own circuit breaker, and a tenacity retry loop driven by the
adapter's ``UpstreamPolicy``. It knows nothing of wire formats: the adapter builds
each request and interprets each response; the client decides what is safe to repeat.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import httpx

from ..context import CallContext
from ..errors import (
    AmbiguousOutcome,
    CircuitOpen,
    TransientError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamTimeout,
)
from .circuit import CircuitBreaker
from .policy import UpstreamPolicy
from .retry import build_retrying, retry_after_seconds

__all__ = ["CallObserver", "UpstreamCall", "UpstreamClient"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """What happened in one logical call (all attempts), for the audit log."""

    upstream: str
    operation: str
    context: CallContext
    status_code: int | None
    attempts: int
    latency_ms: float
    outcome: str  # "ok" or the error class name
    upstream_code: str | None = None


class CallObserver(Protocol):
    def __call__(self, call: UpstreamCall) -> None: ...


class UpstreamClient:
    """Send requests to one upstream with its policy applied."""

    def __init__(
        self,
        name: str,
        base_url: str,
        policy: UpstreamPolicy,
        *,
        auth: httpx.Auth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        observer: CallObserver | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.policy = policy
        self.breaker = CircuitBreaker(name, policy.circuit)
        self.observer = observer
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self._sleep = sleep
        t = policy.timeouts
        lim = policy.limits
        self._http = httpx.AsyncClient(
            base_url=base_url,
            auth=auth,
            transport=transport,
            headers=headers,
            timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool),
            limits=httpx.Limits(
                max_connections=lim.max_connections,
                max_keepalive_connections=lim.max_keepalive_connections,
                keepalive_expiry=lim.keepalive_expiry,
            ),
        )

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        interpret: Callable[[httpx.Response], T],
        *,
        operation: str,
        context: CallContext,
        idempotent: bool,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> T:
        """Send ``method path`` and return ``interpret(response)``.

        ``idempotent`` says whether repeating the request is harmless (queries) or
        not (submissions). A non-idempotent request that was sent but got no usable
        answer raises ``AmbiguousOutcome`` instead of being retried.
        ``interpret`` may raise ``TransientError`` to have an envelope-level
        "try again" retried like a transport one.
        """
        started = time.monotonic()
        deadline = self.policy.retry.deadline
        remaining = context.remaining()
        if remaining is not None:
            deadline = min(deadline, remaining)
        retrying = build_retrying(
            self.policy.retry, deadline=deadline, **({"sleep": self._sleep} if self._sleep else {})
        )
        attempts = 0
        status_code: int | None = None
        outcome = "ok"
        upstream_code: str | None = None
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    response = await self._attempt(
                        method, path, content, headers, context, idempotent, started, deadline
                    )
                    status_code = response.status_code
                    return self._interpret(response, interpret)
        except UpstreamError as exc:
            outcome = type(exc).__name__
            upstream_code = getattr(exc, "upstream_code", None)
            if exc.response is not None:
                status_code = exc.response.status_code
            raise
        except BaseException as exc:  # cancelled, or a bug: never audit it as "ok"
            outcome = type(exc).__name__
            raise
        finally:
            if self.observer is not None:
                self.observer(
                    UpstreamCall(
                        upstream=self.name,
                        operation=operation,
                        context=context,
                        status_code=status_code,
                        attempts=attempts,
                        latency_ms=(time.monotonic() - started) * 1000,
                        outcome=outcome,
                        upstream_code=upstream_code,
                    )
                )
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    def _interpret(self, response: httpx.Response, interpret: Callable[[httpx.Response], T]) -> T:
        healthy = True
        try:
            return interpret(response)
        except UpstreamError as exc:
            exc.upstream = exc.upstream or self.name
            exc.response = exc.response or response
            exc.request = exc.request or response.request
            if isinstance(exc, TransientError):
                healthy = False
                self._failed(exc)
            raise
        except Exception as exc:  # any parser failure means the answer was unusable
            raise UpstreamProtocolError(
                f"unreadable answer from {self.name!r}: {exc}",
                upstream=self.name,
                request=response.request,
                response=response,
            ) from exc
        finally:
            # It answered (even "no" or nonsense): the upstream is up. Recorded only
            # here, so that envelope-level transient failures add up like transport ones.
            if healthy:
                self.breaker.record_success()

    async def _attempt(
        self,
        method: str,
        path: str,
        content: bytes | None,
        headers: dict[str, str] | None,
        context: CallContext,
        idempotent: bool,
        started: float,
        deadline: float,
    ) -> httpx.Response:
        all_headers = dict(headers or {})
        if context.request_id:
            all_headers["X-Request-ID"] = context.request_id
        left = max(0.05, deadline - (time.monotonic() - started))
        t = self.policy.timeouts
        timeout = httpx.Timeout(
            connect=min(t.connect, left), read=min(t.read, left), write=min(t.write, left), pool=min(t.pool, left)
        )
        request = self._http.build_request(method, path, content=content, headers=all_headers, timeout=timeout)
        probe = self.breaker.before_call()
        try:
            response = await self._http.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise self._failed(UpstreamConnectError(f"cannot reach {self.name!r}: {exc!r}", upstream=self.name, request=request)) from exc
        except (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            what = "timed out" if isinstance(exc, httpx.TimeoutException) else "dropped the connection"
            if idempotent:
                error: UpstreamError = UpstreamTimeout(f"{self.name!r} {what}", upstream=self.name, request=request)
            else:
                error = AmbiguousOutcome(
                    f"{self.name!r} {what} after the request was sent", upstream=self.name, request=request
                )
            raise self._failed(error) from exc
        except httpx.HTTPError as exc:
            raise self._failed(UpstreamConnectError(f"{self.name!r}: {exc!r}", upstream=self.name, request=request)) from exc
        except BaseException:
            # Cancelled (or broken on our side) before an answer: that says nothing about
            # the upstream's health, but a probe must not stay "in flight" for ever.
            if probe:
                self.breaker.release_probe()
            raise

        status = response.status_code
        if status == 429:
            raise self._failed(
                UpstreamRateLimited(
                    f"{self.name!r} is rate limiting",
                    retry_after=retry_after_seconds(response.headers.get("Retry-After")),
                    upstream=self.name,
                    request=request,
                    response=response,
                )
            )
        if status >= 500:
            if idempotent or status in self.policy.retry.not_applied_statuses:
                raise self._failed(
                    UpstreamServerError(
                        f"{self.name!r} answered {status}",
                        retry_after=retry_after_seconds(response.headers.get("Retry-After")),
                        upstream=self.name,
                        request=request,
                        response=response,
                    )
                )
            raise self._failed(
                AmbiguousOutcome(
                    f"{self.name!r} answered {status} to a state-changing request",
                    upstream=self.name,
                    request=request,
                    response=response,
                )
            )
        return response

    def _failed(self, error: UpstreamError) -> UpstreamError:
        if not isinstance(error, CircuitOpen):
            self.breaker.record_failure()
        self.last_error = error.message
        self.last_error_at = time.time()
        return error
