"""The tenacity loop built from a RetryPolicy, and Retry-After parsing."""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime

import pytest

from adapters.errors import (
    AmbiguousOutcome,
    BusinessRejection,
    CircuitOpen,
    UpstreamConnectError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamTimeout,
)
from adapters.http import RetryPolicy, build_retrying, retry_after_seconds

from .._support import SleepRecorder


async def run(policy: RetryPolicy, errors: list[BaseException | None], *, deadline: float = 60.0) -> tuple[int, SleepRecorder, object]:
    """Drive build_retrying over a scripted sequence of outcomes (None = success).

    Returns (attempts made, the sleeps recorded, the result or the raised error)."""
    sleeps = SleepRecorder()
    attempts = 0
    retrying = build_retrying(policy, deadline=deadline, sleep=sleeps)
    try:
        async for attempt in retrying:
            with attempt:
                error = errors[attempts]
                attempts += 1
                if error is not None:
                    raise error
                return attempts, sleeps, "ok"
    except BaseException as exc:  # noqa: BLE001 - handed back to the test
        return attempts, sleeps, exc
    raise AssertionError("unreachable")


def policy(**changes: object) -> RetryPolicy:
    settings: dict[str, object] = {"max_attempts": 4, "initial_backoff": 0.1, "max_backoff": 1.0, "multiplier": 2.0, "jitter": 0.0}
    settings.update(changes)
    return RetryPolicy(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [
        UpstreamConnectError("x"),
        UpstreamTimeout("x"),
        UpstreamServerError("x"),
        UpstreamRateLimited("x", retry_after=None),
    ],
)
async def test_transient_errors_are_retried_until_success(error: UpstreamError) -> None:
    attempts, sleeps, result = await run(policy(), [error, error, None])
    assert result == "ok"
    assert attempts == 3
    assert len(sleeps.waits) == 2


@pytest.mark.parametrize(
    "error",
    [
        AmbiguousOutcome("x"),
        CircuitOpen("x"),
        BusinessRejection("x", upstream_code="2005", upstream_message="m"),
        UpstreamError("x"),
        ValueError("x"),
    ],
)
async def test_anything_else_is_raised_at_once(error: BaseException) -> None:
    attempts, sleeps, result = await run(policy(), [error, None])
    assert result is error
    assert attempts == 1
    assert sleeps.waits == []


async def test_stops_after_max_attempts_and_reraises_the_last_error() -> None:
    errors = [UpstreamServerError(f"failure {i}") for i in range(10)]
    attempts, sleeps, result = await run(policy(max_attempts=3), list(errors))
    assert attempts == 3
    assert result is errors[2]  # reraise=True: the upstream error itself, not a tenacity RetryError
    assert len(sleeps.waits) == 2


async def test_backoff_grows_exponentially_and_is_capped() -> None:
    errors: list[BaseException | None] = [UpstreamServerError("x")] * 6
    _, sleeps, _ = await run(policy(max_attempts=6, initial_backoff=0.1, multiplier=2.0, max_backoff=0.5), errors)
    assert sleeps.waits == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


async def test_jitter_adds_at_most_the_configured_amount() -> None:
    errors: list[BaseException | None] = [UpstreamServerError("x")] * 20
    _, sleeps, _ = await run(policy(max_attempts=20, initial_backoff=0.1, multiplier=1.0, jitter=0.05), errors)
    assert len(sleeps.waits) == 19
    assert all(0.1 <= wait <= 0.15 for wait in sleeps.waits)
    assert len(set(sleeps.waits)) > 1  # random, not a constant


async def test_retry_after_replaces_a_shorter_backoff() -> None:
    attempts, sleeps, result = await run(policy(), [UpstreamRateLimited("x", retry_after=3.0), None])
    assert result == "ok"
    assert attempts == 2
    assert sleeps.waits == [3.0]


async def test_a_shorter_retry_after_does_not_shorten_the_backoff() -> None:
    _, sleeps, _ = await run(policy(initial_backoff=0.5), [UpstreamRateLimited("x", retry_after=0.1), None])
    assert sleeps.waits == [0.5]


async def test_retry_after_can_be_ignored_by_policy() -> None:
    _, sleeps, _ = await run(
        policy(respect_retry_after=False), [UpstreamRateLimited("x", retry_after=3.0), None]
    )
    assert sleeps.waits == [0.1]


async def test_retry_after_beyond_max_retry_after_stops_retrying() -> None:
    error = UpstreamRateLimited("x", retry_after=31.0)
    attempts, sleeps, result = await run(policy(max_retry_after=30.0), [error, None])
    assert result is error
    assert attempts == 1
    assert sleeps.waits == []


async def test_retry_after_equal_to_max_retry_after_is_still_honoured() -> None:
    attempts, sleeps, result = await run(
        policy(max_retry_after=2.0), [UpstreamRateLimited("x", retry_after=2.0), None]
    )
    assert (attempts, result, sleeps.waits) == (2, "ok", [2.0])


async def test_a_server_error_retry_after_is_honoured_and_capped_like_a_rate_limit() -> None:
    attempts, sleeps, result = await run(policy(), [UpstreamServerError("busy", retry_after=3.0), None])
    assert (attempts, result, sleeps.waits) == (2, "ok", [3.0])
    error = UpstreamServerError("busy", retry_after=31.0)
    attempts, sleeps, result = await run(policy(max_retry_after=30.0), [error, None])
    assert (attempts, result, sleeps.waits) == (1, error, [])


async def test_a_wait_that_would_pass_the_deadline_is_not_taken() -> None:
    error = UpstreamServerError("x")
    attempts, sleeps, result = await run(policy(initial_backoff=2.0), [error, None], deadline=1.0)
    assert result is error
    assert attempts == 1
    assert sleeps.waits == []


async def test_a_retry_after_that_would_pass_the_deadline_is_not_taken() -> None:
    error = UpstreamRateLimited("x", retry_after=5.0)
    attempts, sleeps, result = await run(policy(max_retry_after=10.0), [error, None], deadline=2.0)
    assert (attempts, result, sleeps.waits) == (1, error, [])


async def test_waits_within_the_deadline_are_taken() -> None:
    attempts, sleeps, result = await run(policy(initial_backoff=0.4), [UpstreamServerError("x"), None], deadline=1.0)
    assert (attempts, result, sleeps.waits) == (2, "ok", [0.4])


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("3", 3.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("-4", 0.0),
        ("soon", None),
    ],
)
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert retry_after_seconds(header) == expected


def test_retry_after_as_an_http_date() -> None:
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=120)
    seconds = retry_after_seconds(format_datetime(future, usegmt=True))
    assert seconds is not None
    assert 115 <= seconds <= 121


def test_retry_after_date_in_the_past_is_zero() -> None:
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    assert retry_after_seconds(format_datetime(past, usegmt=True)) == 0.0
