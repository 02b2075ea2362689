"""Sending a state-changing request so that it takes effect at most once.

Every adapter that submits something (an enrolment, a payment…) follows the same
rule: if the request was sent but no usable answer came back (``AmbiguousOutcome``),
ask the upstream whether it landed — by the deterministic reference the request
carried — before sending it again. Never resend blind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from .errors import AmbiguousOutcome, UpstreamError, UpstreamServerError

__all__ = ["send_at_most_once"]

T = TypeVar("T")
U = TypeVar("U")


async def send_at_most_once(
    send: Callable[[], Awaitable[T]],
    landed: Callable[[], Awaitable[U | None]],
    *,
    reference: str,
    upstream: str,
    rounds: int,
) -> T | U:
    """``send()``'s answer, or what ``landed()`` found after an ambiguous send.

    ``landed()`` returns the upstream's record of ``reference`` or ``None`` if it
    never arrived. After ``rounds`` sends that were each lost and each confirmed
    absent, nothing landed: that is an ordinary retryable failure. If the upstream
    cannot even be asked, the outcome stays ambiguous.
    """
    for _ in range(rounds):
        try:
            return await send()
        except AmbiguousOutcome:
            pass
        try:
            found = await landed()
        except UpstreamError as exc:
            raise AmbiguousOutcome(
                f"{reference} may or may not have landed; the upstream cannot be asked now", upstream=upstream
            ) from exc
        if found is not None:
            return found
    raise UpstreamServerError(f"{reference} was lost {rounds} times and did not land", upstream=upstream)
