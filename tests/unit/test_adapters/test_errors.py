"""The adapter error taxonomy."""

from __future__ import annotations

import httpx
import pytest

from adapters import errors
from adapters.errors import (
    AdapterError,
    AmbiguousOutcome,
    BusinessRejection,
    CircuitOpen,
    ConfigurationError,
    TransientError,
    UpstreamAuthenticationError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamTimeout,
)


@pytest.mark.parametrize(
    "cls", [UpstreamConnectError, UpstreamTimeout, UpstreamServerError, UpstreamRateLimited]
)
def test_transient_errors(cls: type[UpstreamError]) -> None:
    assert issubclass(cls, TransientError)
    assert issubclass(cls, UpstreamError)


@pytest.mark.parametrize(
    "cls",
    [AmbiguousOutcome, CircuitOpen, UpstreamAuthenticationError, UpstreamNotFound, BusinessRejection, UpstreamProtocolError],
)
def test_non_transient_errors(cls: type[UpstreamError]) -> None:
    # Only TransientError is ever retried; these must not be mistaken for it.
    assert issubclass(cls, UpstreamError)
    assert not issubclass(cls, TransientError)


def test_configuration_error_is_not_an_upstream_error() -> None:
    assert issubclass(ConfigurationError, AdapterError)
    assert not issubclass(ConfigurationError, UpstreamError)


def test_everything_exported_is_an_adapter_error() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), AdapterError)


def test_upstream_error_carries_request_response_and_status() -> None:
    request = httpx.Request("POST", "https://bureau.test/x")
    response = httpx.Response(502, request=request)
    error = UpstreamServerError("bad", upstream="gz", request=request, response=response)
    assert (error.message, error.upstream, error.request, error.response) == ("bad", "gz", request, response)
    assert error.status_code == 502
    assert str(error) == "bad"
    assert UpstreamError("no response").status_code is None


def test_business_rejection_carries_code_message_and_field() -> None:
    error = BusinessRejection("no", upstream_code="2003", upstream_message="校验位错误", field="id_number", upstream="gz")
    assert (error.upstream_code, error.upstream_message, error.field, error.upstream) == (
        "2003",
        "校验位错误",
        "id_number",
        "gz",
    )
    assert BusinessRejection("no", upstream_code="2999", upstream_message="?").field is None


def test_retry_after_on_rate_limit_and_circuit_open() -> None:
    assert UpstreamRateLimited("slow down", retry_after=3.0, upstream="gz").retry_after == 3.0
    assert UpstreamRateLimited("slow down").retry_after is None
    assert CircuitOpen("open", retry_after=12.5).retry_after == 12.5
