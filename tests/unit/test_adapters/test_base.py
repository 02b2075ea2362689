"""HttpAdapter plumbing and protocol conformance."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import ClassVar

import httpx
import pytest
import respx

from adapters import (
    ENTRY_POINT_GROUP,
    Adapter,
    AdapterConfig,
    AdapterHealth,
    BankAdapter,
    ErpAdapter,
    CallContext,
    BureauAdapter,
    Capability,
    ConfigurationError,
    ContributionHistory,
    Declarations,
    HttpAdapter,
    TransfersIn,
    TransfersOut,
)
from adapters.http import UpstreamPolicy
from adapters.protocols import AdapterKind
from adapters.social_security import JsonHmacBureauAdapter
from adapters.social_security.json_hmac import JsonHmacAuth

from ._support import APP_ID, BASE_URL, SECRET, fast_policy
from .conftest import bureau_config


class PlainAdapter(HttpAdapter):
    kind: ClassVar[AdapterKind] = "erp"
    dialect: ClassVar[str] = "plain"
    required_credentials: ClassVar[tuple[str, ...]] = ("token",)


def test_missing_credentials_are_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="token"):
        PlainAdapter(AdapterConfig(name="erp-1", base_url=BASE_URL))


def test_empty_credential_counts_as_missing() -> None:
    with pytest.raises(ConfigurationError, match="token"):
        PlainAdapter(AdapterConfig(name="erp-1", base_url=BASE_URL, credentials={"token": ""}))


@pytest.mark.parametrize(
    ("credentials", "missing"),
    [
        ({}, ("app_id", "app_secret")),
        ({"app_id": APP_ID}, ("app_secret",)),
        ({"app_secret": SECRET}, ("app_id",)),
        ({"app_id": "", "app_secret": SECRET}, ("app_id",)),
    ],
)
def test_json_hmac_requires_app_id_and_secret(credentials: dict[str, str], missing: tuple[str, ...]) -> None:
    with pytest.raises(ConfigurationError) as info:
        JsonHmacBureauAdapter(bureau_config(credentials=credentials))
    message = str(info.value)
    assert "gz-bureau" in message
    for key in missing:
        assert key in message
    for key in {"app_id", "app_secret"} - set(missing):
        assert key not in message


async def test_http_adapter_uses_the_declared_policy_unless_overridden() -> None:
    plain = PlainAdapter(AdapterConfig(name="erp-1", base_url=BASE_URL, credentials={"token": "t"}))
    custom = fast_policy()
    overridden = PlainAdapter(AdapterConfig(name="erp-2", base_url=BASE_URL, credentials={"token": "t"}), policy=custom)
    try:
        assert plain.client.policy == PlainAdapter.policy
        assert overridden.client.policy is custom
        assert plain.name == "erp-1"
        assert plain.client.name == "erp-1"
        assert plain.client.base_url.rstrip("/") == BASE_URL
        assert plain.build_auth(plain.config) is None
    finally:
        await plain.aclose()
        await overridden.aclose()


async def test_http_adapter_passes_a_custom_transport() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    plain = PlainAdapter(
        AdapterConfig(name="erp-1", base_url=BASE_URL, credentials={"token": "t"}),
        transport=httpx.MockTransport(handler),
    )
    try:
        status = await plain.client.call(
            "GET", "/x", lambda r: r.status_code, operation="x", context=CallContext(), idempotent=True
        )
        assert status == 204
        assert [str(r.url) for r in seen] == [f"{BASE_URL}/x"]
    finally:
        await plain.aclose()


async def test_health_of_a_fresh_adapter() -> None:
    adapter = JsonHmacBureauAdapter.from_config(bureau_config())
    try:
        assert adapter.health() == AdapterHealth(
            circuit="closed", consecutive_failures=0, last_error=None, last_error_at=None
        )
    finally:
        await adapter.aclose()


async def test_json_hmac_adapter_declares_itself() -> None:
    adapter = JsonHmacBureauAdapter.from_config(bureau_config(options={"page_size": "7"}))
    try:
        assert isinstance(adapter, Adapter)
        assert isinstance(adapter, BureauAdapter)
        assert adapter.kind == "social_security"
        assert adapter.dialect == "json-hmac"
        assert adapter.capabilities == {
            Capability.PARTICIPATION_SEARCH,
            Capability.ENROLMENT,
            Capability.ENROLMENT_LOOKUP,
            Capability.CONTRIBUTION_HISTORY,
            Capability.DECLARATION,
            Capability.TRANSFER_OUT,
            Capability.TRANSFER_IN,
            Capability.CONTRIBUTION_PAYMENT,
        }
        assert all(isinstance(adapter, p) for p in (ContributionHistory, Declarations, TransfersOut, TransfersIn))
        assert adapter.page_size == 7
        assert isinstance(adapter.client._http.auth, JsonHmacAuth)
        # The declared policy is used when none is given.
        assert adapter.client.policy == JsonHmacBureauAdapter.policy
        assert isinstance(JsonHmacBureauAdapter.policy, UpstreamPolicy)
    finally:
        await adapter.aclose()


async def test_default_page_size_is_the_protocol_maximum() -> None:
    adapter = JsonHmacBureauAdapter(bureau_config())
    try:
        assert adapter.page_size == 50
    finally:
        await adapter.aclose()


async def test_bureau_protocol_is_not_satisfied_by_a_plain_adapter() -> None:
    plain = PlainAdapter(AdapterConfig(name="erp-1", base_url=BASE_URL, credentials={"token": "t"}))
    try:
        assert not isinstance(plain, BureauAdapter)
        # The bank and ERP protocols have operations: the common surface alone is neither.
        assert not isinstance(plain, BankAdapter)
        assert not isinstance(plain, ErpAdapter)
    finally:
        await plain.aclose()


def test_json_hmac_is_registered_as_an_entry_point() -> None:
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert "json-hmac" in found
    assert found["json-hmac"].load() is JsonHmacBureauAdapter


async def test_aclose_closes_the_connection_pool() -> None:
    adapter = JsonHmacBureauAdapter(bureau_config(), policy=fast_policy())
    await adapter.aclose()
    assert adapter.client._http.is_closed
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        router.post("/api/v1/enrolment/query").respond(200)
        with pytest.raises(RuntimeError):
            await adapter.client._http.post("/api/v1/enrolment/query")
