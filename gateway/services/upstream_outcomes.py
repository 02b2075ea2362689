"""What an upstream failure means for a submission, decided in one place.

Request handlers and background jobs both submit to bureaus; both must tell a
final refusal (record it, stop) from "nothing usable came back" (ask before
resending) from "try later". ``classify`` turns an adapter exception into that
decision, so no service re-derives it.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from adapters import (
    AmbiguousOutcome,
    BusinessRejection,
    UpstreamAuthenticationError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)

__all__ = ["Failure", "FailureKind", "ask_then_send", "classify"]

T = TypeVar("T")


class FailureKind(enum.Enum):
    REJECTED = "rejected"  # the upstream said no: final
    UNKNOWN = "unknown"  # the request may have landed: ask before resending
    UNAVAILABLE = "unavailable"  # nothing landed, or certainly nothing new: try later
    MISCONFIGURED = "misconfigured"  # credentials refused: an operator must act


@dataclass(frozen=True, slots=True)
class Failure:
    kind: FailureKind
    message: str
    upstream_code: str | None = None
    upstream_message: str | None = None
    field: str | None = None
    timeout: bool = False

    def as_error(self) -> dict[str, str | None]:
        """The JSON kept on the resource and shown to the client."""
        return {
            "code": "upstream_rejected" if self.kind is FailureKind.REJECTED else "upstream_unavailable",
            "upstream_code": self.upstream_code,
            "upstream_message": self.upstream_message,
            "field": self.field,
        }


def classify(exc: UpstreamError) -> Failure:
    if isinstance(exc, BusinessRejection):
        return Failure(FailureKind.REJECTED, exc.message, exc.upstream_code, exc.upstream_message, exc.field)
    if isinstance(exc, UpstreamAuthenticationError):
        return Failure(FailureKind.MISCONFIGURED, exc.message, exc.upstream_code, exc.upstream_message)
    if isinstance(exc, (AmbiguousOutcome, UpstreamProtocolError)):
        return Failure(FailureKind.UNKNOWN, exc.message)
    return Failure(FailureKind.UNAVAILABLE, exc.message, timeout=isinstance(exc, UpstreamTimeout))


async def ask_then_send(
    ask: Callable[[], Awaitable[T | None]], send: Callable[[], Awaitable[T]], *, ask_first: bool
) -> T:
    """Send a submission; when an earlier attempt may have landed (``ask_first``),
    ask the upstream by reference first and send only if it never arrived."""
    if ask_first:
        found = await ask()
        if found is not None:
            return found
    return await send()
