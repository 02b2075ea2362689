"""UpstreamClient: what it retries, what it refuses to repeat, breaker and observer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import respx

from adapters import CallContext
from adapters.errors import (
    AmbiguousOutcome,
    BusinessRejection,
    CircuitOpen,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamTimeout,
)
from adapters.http import CircuitBreaker, UpstreamCall, UpstreamClient, UpstreamPolicy

from .._support import BASE_URL, FakeClock, SleepRecorder, fast_policy

PATH = "/api/thing"


def status_of(response: httpx.Response) -> int:
    return response.status_code


@pytest.fixture
async def make_client(transport: Callable[[], httpx.MockTransport]) -> AsyncIterator[Callable[..., UpstreamClient]]:
    made: list[UpstreamClient] = []

    def make(policy: UpstreamPolicy | None = None, **kwargs: Any) -> UpstreamClient:
        kwargs.setdefault("transport", transport())
        client = UpstreamClient("up", BASE_URL, policy or fast_policy(), **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


async def call(client: UpstreamClient, *, idempotent: bool = True, context: CallContext | None = None, interpret: Callable[[httpx.Response], Any] = status_of, method: str = "POST") -> Any:
    return await client.call(
        method, PATH, interpret, operation="thing.do", context=context or CallContext(), idempotent=idempotent, content=b"{}"
    )


# -- the happy path -------------------------------------------------------------------


async def test_returns_what_interpret_makes_of_the_response(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).respond(200, json={"a": 1})
    client = make_client()
    assert await call(client, interpret=lambda r: r.json()["a"]) == 1
    assert route.call_count == 1
    assert route.calls.last.request.content == b"{}"


async def test_through_the_real_transport(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    # respx patches httpx's own transport here: the same mapping of failures applies.
    route = bureau.post(PATH).mock(side_effect=[httpx.ReadTimeout("slow"), httpx.Response(503), httpx.Response(200)])
    client = make_client(transport=None)
    assert await call(client, context=CallContext(request_id="req-real")) == 200
    assert route.call_count == 3
    assert route.calls.last.request.headers["X-Request-ID"] == "req-real"
    route.mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(AmbiguousOutcome):
        await call(client, idempotent=False)
    assert route.call_count == 4


async def test_request_id_travels_upstream(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).respond(200)
    client = make_client()
    await call(client, context=CallContext(request_id="req-7f3a"))
    assert route.calls.last.request.headers["X-Request-ID"] == "req-7f3a"


async def test_no_request_id_header_without_one(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).respond(200)
    await call(make_client())
    assert "X-Request-ID" not in route.calls.last.request.headers


async def test_default_and_per_call_headers(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).respond(200)
    client = make_client(headers={"User-Agent": "hgw-test"})
    await client.call(
        "POST", PATH, status_of, operation="x", context=CallContext(), idempotent=True,
        content=b"{}", headers={"Content-Type": "application/json"},
    )
    sent = route.calls.last.request
    assert sent.headers["User-Agent"] == "hgw-test"
    assert sent.headers["Content-Type"] == "application/json"


async def test_client_error_statuses_reach_interpret_without_retry(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).respond(401)
    assert await call(make_client()) == 401
    assert route.call_count == 1


async def test_per_attempt_timeout_is_bounded_by_the_context_deadline(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).respond(200)
    client = make_client(fast_policy())  # read timeout 2 s
    await call(client, context=CallContext(deadline=time.monotonic() + 0.5))
    timeout = route.calls.last.request.extensions["timeout"]
    assert 0 < timeout["read"] <= 0.5
    assert 0 < timeout["connect"] <= 0.5
    await call(client)
    assert route.calls.last.request.extensions["timeout"]["read"] == 2.0


# -- transient failures of a query ----------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "error_type"),
    [
        (httpx.Response(500), UpstreamServerError),
        (httpx.Response(502), UpstreamServerError),
        (httpx.Response(503), UpstreamServerError),
        (httpx.ConnectError("refused"), UpstreamConnectError),
        (httpx.ConnectTimeout("slow connect"), UpstreamConnectError),
        (httpx.PoolTimeout("pool"), UpstreamConnectError),
        (httpx.ReadTimeout("slow read"), UpstreamTimeout),
        (httpx.RemoteProtocolError("dropped"), UpstreamTimeout),
        (httpx.ReadError("reset"), UpstreamTimeout),
    ],
)
async def test_query_failures_are_retried_until_success(
    bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient], failure: Any, error_type: type[UpstreamError]
) -> None:
    route = bureau.post(PATH).mock(side_effect=[failure, failure, httpx.Response(200)])
    sleeps = SleepRecorder()
    client = make_client(fast_policy(max_attempts=3), sleep=sleeps)
    assert await call(client) == 200
    assert route.call_count == 3
    assert len(sleeps.waits) == 2


@pytest.mark.parametrize(
    ("failure", "error_type"),
    [
        (httpx.Response(500), UpstreamServerError),
        (httpx.ConnectError("refused"), UpstreamConnectError),
        (httpx.ReadTimeout("slow read"), UpstreamTimeout),
    ],
)
async def test_query_failures_stop_after_max_attempts(
    bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient], failure: Any, error_type: type[UpstreamError]
) -> None:
    route = bureau.post(PATH).mock(side_effect=lambda request: _raise_or_return(failure))
    client = make_client(fast_policy(max_attempts=4))
    with pytest.raises(error_type) as info:
        await call(client)
    assert route.call_count == 4
    error = info.value
    assert error.upstream == "up"
    assert error.request is not None
    assert str(error.request.url) == f"{BASE_URL}{PATH}"
    if isinstance(failure, httpx.Response):
        assert error.response is not None
        assert error.status_code == failure.status_code
    assert client.last_error == error.message
    assert client.last_error_at is not None and abs(client.last_error_at - time.time()) < 60


def _raise_or_return(failure: Any) -> httpx.Response:
    if isinstance(failure, Exception):
        raise failure
    return httpx.Response(failure.status_code)


async def test_backoff_waits_are_passed_to_the_injected_sleep(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    bureau.post(PATH).respond(503)
    sleeps = SleepRecorder()
    client = make_client(fast_policy(max_attempts=4, initial_backoff=0.5, multiplier=2.0, max_backoff=1.5), sleep=sleeps)
    with pytest.raises(UpstreamServerError):
        await call(client)
    assert sleeps.waits == pytest.approx([0.5, 1.0, 1.5])


# -- 429 ----------------------------------------------------------------------------------


async def test_429_waits_at_least_retry_after(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(200)]
    )
    sleeps = SleepRecorder()
    client = make_client(fast_policy(max_retry_after=10.0), sleep=sleeps)
    assert await call(client) == 200
    assert route.call_count == 2
    assert len(sleeps.waits) == 1
    assert sleeps.waits[0] >= 2.0


async def test_429_without_retry_after_uses_the_backoff(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    bureau.post(PATH).mock(side_effect=[httpx.Response(429), httpx.Response(200)])
    sleeps = SleepRecorder()
    client = make_client(fast_policy(initial_backoff=0.25, max_backoff=1.0), sleep=sleeps)
    assert await call(client) == 200
    assert sleeps.waits == [0.25]


async def test_429_with_retry_after_beyond_the_maximum_gives_up(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).respond(429, headers={"Retry-After": "120"})
    sleeps = SleepRecorder()
    client = make_client(fast_policy(max_retry_after=30.0, max_attempts=5), sleep=sleeps)
    with pytest.raises(UpstreamRateLimited) as info:
        await call(client)
    assert info.value.retry_after == 120.0
    assert info.value.status_code == 429
    assert route.call_count == 1
    assert sleeps.waits == []


async def test_503_waits_at_least_retry_after(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).mock(side_effect=[httpx.Response(503, headers={"Retry-After": "3"}), httpx.Response(200)])
    sleeps = SleepRecorder()
    client = make_client(fast_policy(max_retry_after=10.0), sleep=sleeps)
    assert await call(client, idempotent=False) == 200  # 503 is "not applied" by default
    assert route.call_count == 2
    assert len(sleeps.waits) == 1
    assert sleeps.waits[0] >= 3.0


async def test_5xx_with_retry_after_beyond_the_maximum_gives_up(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).respond(503, headers={"Retry-After": "120"})
    sleeps = SleepRecorder()
    client = make_client(fast_policy(max_retry_after=30.0, max_attempts=5), sleep=sleeps)
    with pytest.raises(UpstreamServerError) as info:
        await call(client)
    assert info.value.retry_after == 120.0
    assert route.call_count == 1
    assert sleeps.waits == []


async def test_5xx_without_retry_after_has_none(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    bureau.post(PATH).respond(502)
    with pytest.raises(UpstreamServerError) as info:
        await call(make_client(fast_policy(max_attempts=1)))
    assert info.value.retry_after is None


async def test_429_on_a_state_changing_call_is_retried(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).mock(side_effect=[httpx.Response(429, headers={"Retry-After": "1"}), httpx.Response(200)])
    sleeps = SleepRecorder()
    assert await call(make_client(sleep=sleeps), idempotent=False) == 200
    assert route.call_count == 2
    assert sleeps.waits[0] >= 1.0


# -- state-changing calls -------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("no answer"),
        httpx.WriteTimeout("half sent"),
        httpx.RemoteProtocolError("server disconnected"),
        httpx.ReadError("connection reset"),
        httpx.WriteError("broken pipe"),
        httpx.Response(500),
        httpx.Response(502),
        httpx.Response(504),
    ],
)
async def test_state_changing_call_without_an_answer_is_ambiguous_and_not_repeated(
    bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient], failure: Any
) -> None:
    route = bureau.post(PATH).mock(side_effect=[failure, httpx.Response(200)])
    with pytest.raises(AmbiguousOutcome) as info:
        await call(make_client(fast_policy(max_attempts=5)), idempotent=False)
    assert route.call_count == 1
    assert info.value.request is not None
    assert info.value.upstream == "up"


@pytest.mark.parametrize("failure", [httpx.Response(503), httpx.ConnectError("refused"), httpx.ConnectTimeout("x")])
async def test_state_changing_call_that_was_not_applied_is_retried(
    bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient], failure: Any
) -> None:
    route = bureau.post(PATH).mock(side_effect=[failure, failure, httpx.Response(200)])
    assert await call(make_client(fast_policy(max_attempts=3)), idempotent=False) == 200
    assert route.call_count == 3


async def test_not_applied_statuses_come_from_the_policy(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).mock(side_effect=[httpx.Response(500), httpx.Response(200)])
    policy = fast_policy(not_applied_statuses=frozenset({429, 500, 503}))
    assert await call(make_client(policy), idempotent=False) == 200
    assert route.call_count == 2


# -- interpret --------------------------------------------------------------------------


@pytest.mark.parametrize("problem", [ValueError("bad"), KeyError("code"), TypeError("nope")])
async def test_unreadable_answer_is_a_protocol_error_and_not_retried(
    bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient], problem: Exception
) -> None:
    route = bureau.post(PATH).respond(200, text="<html>")

    def interpret(response: httpx.Response) -> None:
        raise problem

    with pytest.raises(UpstreamProtocolError) as info:
        await call(make_client(), interpret=interpret)
    assert route.call_count == 1
    assert info.value.__cause__ is problem
    assert info.value.response is not None and info.value.response.text == "<html>"
    assert info.value.request is not None
    assert info.value.upstream == "up"


async def test_errors_from_interpret_get_request_response_and_upstream(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).respond(200, json={"code": "2005"})

    def interpret(response: httpx.Response) -> None:
        raise BusinessRejection("no", upstream_code="2005", upstream_message="姓名不符")

    with pytest.raises(BusinessRejection) as info:
        await call(make_client(), interpret=interpret)
    assert route.call_count == 1
    assert info.value.upstream == "up"
    assert info.value.response is not None
    assert info.value.response.json() == {"code": "2005"}
    assert info.value.request is not None
    assert info.value.request.url == route.calls.last.request.url


async def test_transient_error_from_interpret_is_retried(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).mock(side_effect=[httpx.Response(200, text="busy"), httpx.Response(200, text="done")])

    def interpret(response: httpx.Response) -> str:
        if response.text == "busy":
            raise UpstreamServerError("envelope says try again")
        return response.text

    client = make_client()
    assert await call(client, interpret=interpret) == "done"
    assert route.call_count == 2
    assert client.last_error == "envelope says try again"


async def test_transient_error_from_interpret_counts_against_the_circuit(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    bureau.post(PATH).respond(200)

    def interpret(response: httpx.Response) -> None:
        raise UpstreamServerError("envelope says try again")

    client = make_client(fast_policy(max_attempts=2, failure_threshold=10))
    with pytest.raises(UpstreamServerError):
        await call(client, interpret=interpret)
    assert client.breaker.consecutive_failures == 2


async def test_envelope_level_transient_failures_open_the_circuit(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).respond(200, text="busy")

    def interpret(response: httpx.Response) -> None:
        raise UpstreamServerError("envelope says try again")

    client = make_client(fast_policy(max_attempts=1, failure_threshold=3))
    for _ in range(3):
        with pytest.raises(UpstreamServerError):
            await call(client, interpret=interpret)
    assert client.breaker.state == "open"
    with pytest.raises(CircuitOpen):
        await call(client, interpret=interpret)
    assert route.call_count == 3


async def test_a_business_refusal_counts_as_the_upstream_being_healthy(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    bureau.post(PATH).mock(side_effect=[httpx.ConnectError("x"), httpx.Response(200)])

    def interpret(response: httpx.Response) -> None:
        raise BusinessRejection("no", upstream_code="2005", upstream_message="m")

    client = make_client(fast_policy(max_attempts=1, failure_threshold=5))
    with pytest.raises(UpstreamConnectError):
        await call(client, interpret=interpret)
    assert client.breaker.consecutive_failures == 1
    with pytest.raises(BusinessRejection):
        await call(client, interpret=interpret)
    assert client.breaker.consecutive_failures == 0


# -- deadlines -------------------------------------------------------------------------------


async def test_context_deadline_stops_retries(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).respond(503)
    sleeps = SleepRecorder()
    client = make_client(
        fast_policy(max_attempts=10, initial_backoff=1.0, max_backoff=1.0, multiplier=1.0, deadline=60.0), sleep=sleeps
    )
    with pytest.raises(UpstreamServerError):
        await call(client, context=CallContext(deadline=time.monotonic() + 0.5))
    assert route.call_count == 1  # the next wait (1 s) would pass the deadline
    assert sleeps.waits == []
    # Without the context deadline the same policy retries.
    with pytest.raises(UpstreamServerError):
        await call(client)
    assert route.call_count == 1 + 10


async def test_policy_deadline_stops_retries(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).mock(side_effect=httpx.ConnectError("refused"))
    sleeps = SleepRecorder()
    client = make_client(
        fast_policy(max_attempts=10, initial_backoff=1.0, max_backoff=1.0, multiplier=1.0, deadline=0.5), sleep=sleeps
    )
    with pytest.raises(UpstreamConnectError):
        await call(client)
    assert route.call_count == 1  # the first wait (1 s) would already pass the 0.5 s deadline
    assert sleeps.waits == []


async def test_deadline_bounds_real_elapsed_time(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).respond(500)
    client = make_client(fast_policy(max_attempts=1000, initial_backoff=0.02, multiplier=1.0, deadline=0.2))
    started = time.monotonic()
    with pytest.raises(UpstreamServerError):
        await call(client)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0
    assert 2 <= route.call_count < 1000


async def test_an_expired_context_deadline_still_makes_one_attempt(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).respond(503)
    with pytest.raises(UpstreamServerError):
        await call(make_client(fast_policy(max_attempts=5)), context=CallContext(deadline=time.monotonic() - 1))
    assert route.call_count == 1


# -- circuit breaker ----------------------------------------------------------------------------


def with_clock(client: UpstreamClient, clock: FakeClock) -> UpstreamClient:
    client.breaker = CircuitBreaker(client.name, client.policy.circuit, clock=clock)
    return client


async def test_circuit_opens_after_threshold_and_then_spares_the_upstream(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).mock(side_effect=httpx.ConnectError("refused"))
    clock = FakeClock()
    client = with_clock(make_client(fast_policy(max_attempts=1, failure_threshold=3, reset_timeout=30.0)), clock)
    for expected_failures in (1, 2):
        with pytest.raises(UpstreamConnectError):
            await call(client)
        assert client.breaker.state == "closed"
        assert client.breaker.consecutive_failures == expected_failures
    with pytest.raises(UpstreamConnectError):
        await call(client)
    assert client.breaker.state == "open"
    assert route.call_count == 3

    for _ in range(5):
        with pytest.raises(CircuitOpen) as info:
            await call(client)
        assert info.value.upstream == "up"
        assert 0 < (info.value.retry_after or 0) <= 30.0
    assert route.call_count == 3  # the network was never touched while open


async def test_circuit_opening_mid_call_ends_the_retries(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).respond(503)
    client = make_client(fast_policy(max_attempts=10, failure_threshold=2))
    with pytest.raises(CircuitOpen):
        await call(client)
    assert route.call_count == 2


async def test_half_open_probe_success_closes_the_circuit(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).mock(side_effect=[httpx.ConnectError("refused"), httpx.Response(200), httpx.Response(200)])
    clock = FakeClock()
    client = with_clock(make_client(fast_policy(max_attempts=1, failure_threshold=1, reset_timeout=30.0)), clock)
    with pytest.raises(UpstreamConnectError):
        await call(client)
    with pytest.raises(CircuitOpen):
        await call(client)
    clock.advance(30)
    assert client.breaker.state == "half_open"
    assert await call(client) == 200  # the probe
    assert client.breaker.state == "closed"
    assert await call(client) == 200
    assert route.call_count == 3


async def test_half_open_probe_failure_reopens(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    route = bureau.post(PATH).respond(503)
    clock = FakeClock()
    client = with_clock(make_client(fast_policy(max_attempts=3, failure_threshold=1, reset_timeout=30.0)), clock)
    with pytest.raises(CircuitOpen):
        await call(client)
    assert route.call_count == 1
    clock.advance(31)
    with pytest.raises(CircuitOpen):  # probe fails with 503, the retry meets the re-opened circuit
        await call(client)
    assert route.call_count == 2
    assert client.breaker.state == "open"


async def test_only_one_probe_while_half_open(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200)

    route = bureau.post(PATH).mock(side_effect=slow)
    clock = FakeClock()
    client = with_clock(make_client(fast_policy(max_attempts=1, failure_threshold=1)), clock)
    client.breaker.record_failure()
    clock.advance(30)
    probe = asyncio.create_task(call(client))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpen):
        await call(client)
    release.set()
    assert await probe == 200
    assert route.call_count == 1
    assert client.breaker.state == "closed"


async def test_a_cancelled_probe_does_not_jam_the_circuit(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    hang = asyncio.Event()
    sent = asyncio.Event()

    async def never(request: httpx.Request) -> httpx.Response:
        sent.set()
        await hang.wait()
        return httpx.Response(200)

    route = bureau.post(PATH).mock(side_effect=never)
    clock = FakeClock()
    client = with_clock(make_client(fast_policy(max_attempts=1, failure_threshold=1)), clock)
    client.breaker.record_failure()
    clock.advance(30)
    probe = asyncio.create_task(call(client))
    await asyncio.wait_for(sent.wait(), 1)
    assert client.breaker.state == "half_open"
    with pytest.raises(CircuitOpen):  # the probe is in flight
        await call(client)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    # The cancelled probe told us nothing; the next call may probe again.
    route.mock(side_effect=None, return_value=httpx.Response(200))
    assert await call(client) == 200
    assert client.breaker.state == "closed"


async def test_success_resets_the_failure_count(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    bureau.post(PATH).mock(
        side_effect=[httpx.ConnectError("x"), httpx.ConnectError("x"), httpx.Response(200), httpx.ConnectError("x"), httpx.ConnectError("x")]
    )
    client = make_client(fast_policy(max_attempts=1, failure_threshold=3))
    for _ in range(2):
        with pytest.raises(UpstreamConnectError):
            await call(client)
    assert await call(client) == 200
    assert client.breaker.consecutive_failures == 0
    for _ in range(2):
        with pytest.raises(UpstreamConnectError):
            await call(client)
    assert client.breaker.state == "closed"


async def test_a_4xx_answer_counts_as_the_upstream_being_healthy(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    bureau.post(PATH).mock(side_effect=[httpx.ConnectError("x"), httpx.Response(400)])
    client = make_client(fast_policy(max_attempts=1, failure_threshold=2))
    with pytest.raises(UpstreamConnectError):
        await call(client)
    assert await call(client) == 400
    assert client.breaker.consecutive_failures == 0


# -- observer ------------------------------------------------------------------------------


async def test_observer_gets_one_record_per_logical_call(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    bureau.post(PATH).mock(side_effect=[httpx.Response(503), httpx.ConnectError("x"), httpx.Response(201)])
    seen: list[UpstreamCall] = []
    client = make_client(fast_policy(max_attempts=3), observer=seen.append)
    context = CallContext(request_id="req-1", client_id="client-1", gateway_id="gw-1")
    await call(client, context=context)
    assert len(seen) == 1
    record = seen[0]
    assert record.upstream == "up"
    assert record.operation == "thing.do"
    assert record.context is context
    assert record.attempts == 3
    assert record.status_code == 201
    assert record.outcome == "ok"
    assert record.upstream_code is None
    assert record.latency_ms >= 0


async def test_observer_records_failures_with_their_class_name(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    bureau.post(PATH).respond(502)
    seen: list[UpstreamCall] = []
    client = make_client(fast_policy(max_attempts=2), observer=seen.append)
    with pytest.raises(UpstreamServerError):
        await call(client)
    assert [(c.outcome, c.status_code, c.attempts) for c in seen] == [("UpstreamServerError", 502, 2)]


async def test_observer_records_connect_failures_without_status(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    bureau.post(PATH).mock(side_effect=httpx.ConnectError("refused"))
    seen: list[UpstreamCall] = []
    client = make_client(fast_policy(max_attempts=3), observer=seen.append)
    with pytest.raises(UpstreamConnectError):
        await call(client)
    assert [(c.outcome, c.status_code, c.attempts) for c in seen] == [("UpstreamConnectError", None, 3)]


async def test_observer_records_the_upstream_code(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    bureau.post(PATH).respond(200)
    seen: list[UpstreamCall] = []

    def interpret(response: httpx.Response) -> None:
        raise BusinessRejection("no", upstream_code="2003", upstream_message="校验位")

    with pytest.raises(BusinessRejection):
        await call(make_client(observer=seen.append), interpret=interpret)
    assert [(c.outcome, c.status_code, c.attempts, c.upstream_code) for c in seen] == [("BusinessRejection", 200, 1, "2003")]


async def test_observer_never_records_a_cancelled_call_as_ok(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    hang = asyncio.Event()

    async def never(request: httpx.Request) -> httpx.Response:
        await hang.wait()
        return httpx.Response(200)

    bureau.post(PATH).mock(side_effect=never)
    seen: list[UpstreamCall] = []
    task = asyncio.create_task(call(make_client(observer=seen.append)))
    for _ in range(5):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(seen) == 1
    assert seen[0].outcome == "CancelledError"


# -- health bookkeeping ---------------------------------------------------------------------


async def test_last_error_is_kept_after_recovery(bureau: respx.MockRouter, make_client: Callable[..., UpstreamClient]) -> None:
    bureau.post(PATH).mock(side_effect=[httpx.Response(503), httpx.Response(200)])
    client = make_client()
    assert client.last_error is None
    await call(client)
    assert client.last_error is not None and "503" in client.last_error
    assert client.breaker.consecutive_failures == 0
