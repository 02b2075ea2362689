"""Shared fixtures: databases (SQLite always, PostgreSQL when reachable), mock
bureaus on loopback, and a running gateway app with a sandbox client."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.config import UpstreamSettings, sandbox_settings
from gateway.sandbox.mocks import (
    SANDBOX_BANKS,
    SANDBOX_COLLECTION_ACCOUNTS,
    SANDBOX_CREDENTIALS,
    SANDBOX_ERPS,
    SANDBOX_OPTIONS,
    finance_options,
)
from mocks import MOCK_UPSTREAMS, JsonHmacBureau, Sm4AsyncBureau, XmlGbkBureau

POSTGRES_URL = os.environ.get("HGW_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("HGW_REQUIRE_POSTGRES") == "1"

WANG_FANG = {"id_number": "440104199003120213", "name": "Wang Fang"}
LI_MING = {"id_number": "430102199511080356", "name": "Li Ming"}
ZHAO_LEI = {"id_number": "440303199201010554", "name": "Zhao Lei"}


def _postgres_reachable() -> bool:
    parsed = urlparse(POSTGRES_URL.replace("+asyncpg", ""))
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5432), timeout=1):
            return True
    except OSError:
        return False


async def _pg(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """The same tests run against embedded SQLite and against PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
        return
    if not _postgres_reachable():
        message = f"PostgreSQL not reachable at {POSTGRES_URL} (set HGW_TEST_POSTGRES_URL)"
        if REQUIRE_POSTGRES:
            pytest.fail(message + " but HGW_REQUIRE_POSTGRES=1")
        pytest.skip(message)
    schema = "hgw_test_" + secrets.token_hex(6)
    asyncio.run(_pg(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{POSTGRES_URL}?search_path={schema}"
    finally:
        asyncio.run(_pg(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture
def bureaus() -> Iterator[dict[str, Any]]:
    """The sandbox's mock bureaus: json-hmac 440100 and 440300, xml-gbk 420100,
    sm4-async 430100 and 330100 (the last one slow on Chen Jing)."""
    # Transfers advance one stage per ``step`` on the mocks' accelerated clock.
    step = 0.3
    servers: dict[str, Any] = {
        region: JsonHmacBureau(region, transfer_step_seconds=step, **SANDBOX_CREDENTIALS["json-hmac"]()).start()
        for region in ("440100", "440300")
    }
    servers["420100"] = XmlGbkBureau("420100", transfer_step_seconds=step, **SANDBOX_CREDENTIALS["xml-gbk"]()).start()
    for region in ("430100", "330100"):
        servers[region] = Sm4AsyncBureau(
            region, processing_delay=0.2, transfer_step_seconds=step, **SANDBOX_CREDENTIALS["sm4-async"]()
        ).start()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@dataclass
class FinanceMock:
    """A mock bank or ERP and the credentials it was started with (the adapter's too)."""

    name: str
    server: Any
    credentials: dict[str, str]


@pytest.fixture
def finance() -> Iterator[dict[str, FinanceMock]]:
    """The sandbox's banks (iso20022 ``sandbox-bank-a``, openbanking ``sandbox-bank-b``)
    and ERPs (odata ``sandbox-erp-sap``, kingdee ``sandbox-erp-kingdee``), settling
    payments and deciding approvals on a 0.2 s clock."""
    mocks: dict[str, FinanceMock] = {}
    try:
        for name, dialect in {**SANDBOX_BANKS, **SANDBOX_ERPS}.items():
            credentials = SANDBOX_CREDENTIALS[dialect]()
            timing = "settle_seconds" if name in SANDBOX_BANKS else "decision_seconds"
            server = MOCK_UPSTREAMS[dialect](**{timing: 0.2}, **credentials).start()
            mocks[name] = FinanceMock(name, server, credentials)
        yield mocks
    finally:
        for mock in mocks.values():
            mock.server.stop()


_CREDENTIAL_FIELDS = {
    "json-hmac": ("app_id", "app_secret"),
    "xml-gbk": ("user_id", "password"),
    "sm4-async": ("appid", "sm4_key", "mac_key"),
}


def credentials_of(server: Any) -> dict[str, str]:
    return {name: getattr(server, name) for name in _CREDENTIAL_FIELDS[server.dialect]}


def upstreams_for(
    bureaus: dict[str, Any], finance: dict[str, FinanceMock] | None = None, **options: Any
) -> list[UpstreamSettings]:
    result = [
        UpstreamSettings(
            name=f"bureau-{region}",
            adapter=server.dialect,
            base_url=server.base_url,
            regions=(region,),
            credentials=credentials_of(server),
            options={
                **SANDBOX_OPTIONS.get(server.dialect, {}),
                "collection_account": SANDBOX_COLLECTION_ACCOUNTS[region],
                **options,
            },
        )
        for region, server in bureaus.items()
    ]
    for mock in (finance or {}).values():
        result.append(
            UpstreamSettings(
                name=mock.name,
                adapter=mock.server.dialect,
                base_url=mock.server.base_url,
                credentials=mock.credentials,
                options={**finance_options(mock.name), **options},
            )
        )
    return result


async def create_client(settings: Any, scopes: str, *, sandbox: bool = True, name: str = "tests") -> dict[str, Any]:
    """Create a client the way the CLI does: with its own engine on the test's loop
    (the app's engine belongs to the app's loop)."""
    from gateway.cli import _with_store

    issued = await _with_store(settings, lambda store: store.create(name, scopes, sandbox=sandbox))
    return issued.as_dict()


async def query_db(settings: Any, statement: Any) -> list[Any]:
    """Read the gateway's database directly (to check what was or was not written)."""
    from gateway.store import create_engine

    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(statement)).all())
    finally:
        await engine.dispose()


@dataclass
class Api:
    """A running gateway with one sandbox client holding every scope."""

    http: AsyncTestClient[Any]
    app: Any
    key: str
    issued: dict[str, Any]
    bureaus: dict[str, Any]
    settings: Any
    finance: dict[str, FinanceMock]

    @property
    def gateway(self) -> Any:
        return self.app.state.gateway

    def headers(self, key: str | None = None, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}", **extra}

    async def new_client(self, scopes: str, *, sandbox: bool = True) -> dict[str, Any]:
        return await create_client(self.settings, scopes, sandbox=sandbox)

    async def rows(self, statement: Any) -> list[Any]:
        return await query_db(self.settings, statement)


@pytest.fixture
def served(database_url: str, bureaus: dict[str, Any], tmp_path: Any) -> Iterator[tuple[str, str]]:
    """The app under a real uvicorn server on loopback, in a thread of its own, so
    requests really run at the same time (the in-process test client serialises
    them). Yields (base url, admin sandbox key)."""
    import threading

    import uvicorn

    settings = sandbox_settings(tmp_path / "data", database_url=database_url, api_key_cache_seconds=0)
    issued = asyncio.run(create_client(settings, "admin"))
    app = create_app(settings, sandbox_upstreams=upstreams_for(bureaus))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, name="gateway-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the gateway did not start"
    try:
        yield f"http://127.0.0.1:{port}", issued["api_key"]
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture
async def api(
    request: pytest.FixtureRequest, database_url: str, bureaus: dict[str, Any], finance: dict[str, FinanceMock],
    tmp_path: Any,
) -> AsyncIterator[Api]:
    """A gateway over the mock bureaus; ``@pytest.mark.gateway_settings(...)`` overrides settings."""
    values: dict[str, Any] = dict(
        database_url=database_url, search_deadline=3.0, api_key_cache_seconds=0, audit_flush_seconds=0.05,
        upstream_poll_seconds=0.2, worker_interval_seconds=0.2,
    )
    marker = request.node.get_closest_marker("gateway_settings")
    if marker is not None:
        values.update(marker.kwargs)
    settings = sandbox_settings(tmp_path / "data", **values)
    options_marker = request.node.get_closest_marker("upstream_options")
    options = options_marker.kwargs if options_marker is not None else {}
    issued = await create_client(settings, "admin")
    app = create_app(settings, sandbox_upstreams=upstreams_for(bureaus, finance, **options))
    async with AsyncTestClient(app=app, timeout=30) as http:
        yield Api(http, app, issued["api_key"], issued, bureaus, settings, finance)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sandbox_server(tmp_path):
    """A real `hr-gateway serve --sandbox` process: (process, base url, api key, banner).

    Its output goes to a file, not a pipe, so a chatty server can never block on a
    full pipe; ``process.log_path`` is where to read it.
    """
    port = free_port()
    exe = Path(sys.executable).with_name("hr-gateway")
    log_path = tmp_path / "server.log"
    log_file = open(log_path, "w")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [str(exe), "serve", "--sandbox", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        stdout=log_file, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )
    proc.log_path = log_path  # type: ignore[attr-defined]
    text = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        text = log_path.read_text()
        if "OpenAPI UI" in text:
            break
        time.sleep(0.1)
    try:
        key = re.search(r"API key\s+(hgw_test_\S+)", text)
        assert key, text
        yield proc, f"http://127.0.0.1:{port}", key.group(1), text
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        log_file.close()


@pytest.fixture
def receiver() -> Iterator[Any]:
    """A webhook receiver on loopback (``tests.receivers.Receiver``)."""
    from tests.receivers import Receiver

    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()
