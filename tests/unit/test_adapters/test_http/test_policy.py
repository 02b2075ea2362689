"""Policies are plain, frozen data."""

from __future__ import annotations

import dataclasses

import pytest

from adapters.http import CircuitPolicy, RetryPolicy, Timeouts, UpstreamPolicy


def test_defaults() -> None:
    policy = UpstreamPolicy()
    assert policy.retry.max_attempts == 4
    assert policy.retry.not_applied_statuses == frozenset({429, 503})
    assert 500 not in policy.retry.not_applied_statuses
    assert policy.circuit == CircuitPolicy(failure_threshold=5, reset_timeout=30.0)
    assert policy.timeouts == Timeouts()


def test_policies_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RetryPolicy().max_attempts = 9  # type: ignore[misc]


def test_evolve_replaces_parts_and_keeps_the_rest() -> None:
    base = UpstreamPolicy()
    retry = RetryPolicy(max_attempts=1)
    evolved = base.evolve(retry=retry)
    assert evolved.retry is retry
    assert evolved.circuit == base.circuit
    assert evolved.timeouts == base.timeouts
    assert base.retry.max_attempts == 4  # the original is untouched
