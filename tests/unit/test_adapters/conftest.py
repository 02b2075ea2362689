"""Fixtures for the adapter SDK unit tests: a respx-mocked bureau and adapter factories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import respx

from adapters import AdapterConfig
from adapters.social_security.json_hmac import JsonHmacBureauAdapter

from ._support import APP_ID, BASE_URL, REGION, SECRET, SleepRecorder, fast_policy


@pytest.fixture
def bureau() -> Iterator[respx.MockRouter]:
    """Every httpx request goes to this router; an unrouted request fails the test."""
    with respx.mock(base_url=BASE_URL, assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


def bureau_config(**overrides: Any) -> AdapterConfig:
    settings: dict[str, Any] = {
        "name": "gz-bureau",
        "base_url": BASE_URL,
        "regions": (REGION,),
        "credentials": {"app_id": APP_ID, "app_secret": SECRET},
        "options": {},
        "environment": "sandbox",
    }
    settings.update(overrides)
    return AdapterConfig(**settings)


@pytest.fixture
def transport(bureau: respx.MockRouter) -> Callable[[], httpx.MockTransport]:
    """A transport served by the ``bureau`` router (same routes, same call records).

    Going through it rather than respx's patching of httpx's real transport spares
    each client the ~25 ms of building an SSL context, which keeps the suite fast; a
    few tests pass ``transport=None`` to cover the patched real transport as well."""
    return lambda: httpx.MockTransport(bureau.async_handler)


@pytest.fixture
async def make_adapter(
    transport: Callable[[], httpx.MockTransport],
) -> AsyncIterator[Callable[..., JsonHmacBureauAdapter]]:
    """Build json-hmac adapters with a fast policy; closes them afterwards."""
    made: list[JsonHmacBureauAdapter] = []

    def make(
        *, config: AdapterConfig | None = None, sleep: SleepRecorder | None = None, **kwargs: Any
    ) -> JsonHmacBureauAdapter:
        kwargs.setdefault("policy", fast_policy())
        kwargs.setdefault("transport", transport())
        adapter = JsonHmacBureauAdapter(config or bureau_config(), **kwargs)
        if sleep is not None:
            # HttpAdapter has no sleep parameter; the client's is the seam for tests.
            adapter.client._sleep = sleep
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def adapter(make_adapter: Callable[..., JsonHmacBureauAdapter]) -> JsonHmacBureauAdapter:
    return make_adapter()
