"""The circuit breaker, driven by a fake clock."""

from __future__ import annotations

import pytest

from adapters.errors import CircuitOpen
from adapters.http import CircuitBreaker, CircuitPolicy

from .._support import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker("gz", CircuitPolicy(failure_threshold=3, reset_timeout=10.0), clock=clock)


def open_it(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.policy.failure_threshold):
        breaker.before_call()
        breaker.record_failure()


def test_starts_closed(breaker: CircuitBreaker) -> None:
    assert breaker.state == "closed"
    assert breaker.consecutive_failures == 0
    assert breaker.before_call() is False  # not a probe


def test_stays_closed_below_the_threshold(breaker: CircuitBreaker) -> None:
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"
    assert breaker.consecutive_failures == 2
    breaker.before_call()


def test_opens_at_the_threshold(breaker: CircuitBreaker) -> None:
    open_it(breaker)
    assert breaker.state == "open"
    assert breaker.consecutive_failures == 3
    with pytest.raises(CircuitOpen) as info:
        breaker.before_call()
    assert info.value.upstream == "gz"
    assert info.value.retry_after == pytest.approx(10.0)


def test_only_consecutive_failures_count(breaker: CircuitBreaker) -> None:
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    assert breaker.consecutive_failures == 0
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"


def test_retry_after_counts_down_while_open(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_it(breaker)
    clock.advance(7.5)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen) as info:
        breaker.before_call()
    assert info.value.retry_after == pytest.approx(2.5)


def test_half_open_after_reset_timeout_lets_exactly_one_probe_through(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_it(breaker)
    clock.advance(9.99)
    assert breaker.state == "open"
    clock.advance(0.01)
    assert breaker.state == "half_open"
    assert breaker.before_call() is True  # the probe
    with pytest.raises(CircuitOpen) as info:  # everyone else waits for the probe
        breaker.before_call()
    assert info.value.retry_after == 1.0


def test_successful_probe_closes_the_circuit(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_it(breaker)
    clock.advance(10)
    assert breaker.before_call() is True
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.consecutive_failures == 0
    for _ in range(5):
        assert breaker.before_call() is False


def test_failed_probe_reopens_for_a_full_reset_timeout(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_it(breaker)
    clock.advance(15)
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state == "open"
    clock.advance(9)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    clock.advance(1)
    assert breaker.state == "half_open"
    assert breaker.before_call() is True


def test_released_probe_lets_another_probe_through(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_it(breaker)
    clock.advance(10)
    assert breaker.before_call() is True
    breaker.release_probe()
    assert breaker.state == "half_open"
    assert breaker.before_call() is True


def test_threshold_of_one_opens_on_the_first_failure(clock: FakeClock) -> None:
    breaker = CircuitBreaker("gz", CircuitPolicy(failure_threshold=1, reset_timeout=1.0), clock=clock)
    breaker.record_failure()
    assert breaker.state == "open"
