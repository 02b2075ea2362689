"""The ``hr-gateway`` command line."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from .config import ConfigError, Settings, load_settings, sandbox_settings
from .encryption import KeyringError
from .extensions import add_extension_commands

__all__ = ["main"]

T = TypeVar("T")
console = Console(stderr=False, highlight=False, soft_wrap=True)


def _settings(config: str | None, data_dir: str) -> Settings:
    try:
        return load_settings(config) if config else sandbox_settings(data_dir)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _run(factory: Callable[[], Awaitable[T]]) -> T:
    """Run async work; configuration and keyring problems become one-line errors."""
    try:
        return asyncio.run(factory())  # type: ignore[arg-type]
    except (ConfigError, KeyringError) as exc:
        raise click.ClickException(str(exc)) from None


async def _preflight(settings: Settings) -> None:
    """Catch configuration mistakes before the server starts, as one clear line."""
    from .encryption import Keyring
    from .registry import build_upstream_set

    if settings.mode == "live":
        Keyring.load(settings.keyring_file)
    if settings.upstreams:
        await build_upstream_set("live", settings.upstreams).aclose()


config_option = click.option(
    "--config", "config", envvar="HGW_CONFIG", type=click.Path(dir_okay=False), default=None,
    help="Live-mode configuration file (TOML). Without it, the sandbox data directory is used.",
)
data_dir_option = click.option(
    "--data-dir", default=".hr-gateway", show_default=True, type=click.Path(file_okay=False),
    help="Where sandbox mode keeps its SQLite database and keyring.",
)


@click.group()
@click.version_option(package_name="hr-gateway")
def main() -> None:
    """hr-gateway: one REST API in front of social-insurance bureaus, banks and ERPs."""


# -- serve ---------------------------------------------------------------------------


@main.command()
@click.option("--sandbox", is_flag=True, help="Embedded SQLite, mock upstreams on loopback, a ready sandbox key.")
@config_option
@data_dir_option
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port to bind (default 8080).")
def serve(sandbox: bool, config: str | None, data_dir: str, host: str | None, port: int | None) -> None:
    """Run the gateway until SIGINT/SIGTERM (in-flight requests are finished first)."""
    import uvicorn

    from .app import create_app
    from .logging import configure_logging

    if sandbox == bool(config):
        raise click.UsageError("say --sandbox, or --config FILE for live mode (not both)")
    settings = sandbox_settings(data_dir) if sandbox else _settings(config, data_dir)
    host = host or settings.host
    port = port or settings.port
    _run(lambda: _preflight(settings))
    configure_logging(settings.log_level)

    async def announce(gateway: Any) -> None:
        # Everything built at start-up lives as long as the process: keep it out of
        # the garbage collector's full passes, which otherwise pause the loop for tens of ms.
        gc.collect()
        gc.freeze()
        base = f"http://{host}:{port}"
        console.print(f"[bold]hr-gateway[/] {'sandbox' if settings.sandbox and not config else 'live'} mode on {base}")
        console.print(f"  database   {settings.database_url}")
        for upstream_set in gateway.upstreams.all():
            for adapter in upstream_set.adapters.values():
                regions = f" regions {','.join(adapter.config.regions)}" if adapter.config.regions else ""
                console.print(f"  upstream   {adapter.name} ({adapter.kind} {adapter.dialect}, {upstream_set.environment})"
                              f"{regions} -> {adapter.client.base_url}")
        if sandbox:
            from .sandbox import ensure_sandbox_client

            issued = await ensure_sandbox_client(gateway.clients, settings.data_dir)
            data = issued.data
            console.print(f"  sandbox client {data['client_id']} ({'created now' if issued.created else 'from ' + str(issued.path)})")
            console.print(f"  [bold]API key[/]    {data['api_key']}")
            console.print(f"  [bold]JWE key[/]    {json.dumps(data['jwe_key'])}")
        console.print(f"  OpenAPI UI {base}/schema   (document: {base}/schema/openapi.json)")
        if sandbox:
            console.print("  Sandbox test persons (Wang Fang, Li Ming, …) are listed in docs/sandbox.md; "
                          f"search one with POST {base}/v1/social-security/participation-searches")

    app = create_app(settings, on_started=announce)
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_config=None, timeout_graceful_shutdown=30, lifespan="on")
    )
    server.run()
    if not server.started:
        sys.exit(1)


# -- clients -------------------------------------------------------------------------


async def _with_store(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    from .auth import ClientStore
    from .encryption import FieldCipher, Keyring
    from .store import create_engine, upgrade

    keyring = Keyring.load_or_create(settings.keyring_file) if settings.mode == "sandbox" else Keyring.load(settings.keyring_file)
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        return await work(ClientStore(engine, FieldCipher(keyring), cache_seconds=0))
    finally:
        await engine.dispose()


@main.group()
def clients() -> None:
    """Create, list and revoke API clients."""


@clients.command("create")
@click.option("--name", required=True, help="Who the client is (e.g. the HR system's name).")
@click.option("--scopes", required=True, help="Comma-separated scopes, e.g. social_security:read,social_security:submit")
@click.option("--sandbox", is_flag=True, help="A sandbox key (hgw_test_…), routed only to mock upstreams.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
@data_dir_option
def clients_create(name: str, scopes: str, sandbox: bool, as_json: bool, config: str | None, data_dir: str) -> None:
    """Create a client; its API key and JWE key are shown once."""
    settings = _settings(config, data_dir)
    try:
        issued = _run(lambda: _with_store(settings, lambda store: store.create(name, scopes, sandbox=sandbox)))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    data = issued.as_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for key in ("client_id", "environment", "api_key", "kid"):
        console.print(f"{key:12} {data[key]}")
    console.print(f"{'scopes':12} {','.join(data['scopes'])}")
    console.print(f"{'jwe_key':12} {json.dumps(data['jwe_key'])}")
    console.print("[yellow]The API key and JWE key are not stored in the clear: keep them now.[/]")


@clients.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
@data_dir_option
def clients_list(as_json: bool, config: str | None, data_dir: str) -> None:
    """List clients (never their keys)."""
    settings = _settings(config, data_dir)
    rows = _run(lambda: _with_store(settings, lambda store: store.list()))
    data = [
        {"client_id": c.id, "name": c.name, "environment": c.environment, "scopes": sorted(c.scopes),
         "key_prefix": c.key_prefix, "kid": c.jwe_kid, "created_at": c.created_at.isoformat(),
         "revoked_at": c.revoked_at.isoformat() if c.revoked_at else None}
        for c in rows
    ]
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    table = Table("client_id", "name", "env", "key", "scopes", "created", "revoked")
    for c in data:
        table.add_row(c["client_id"], c["name"], c["environment"], c["key_prefix"] + "…", ",".join(c["scopes"]),
                      c["created_at"][:19], (c["revoked_at"] or "")[:19])
    console.print(table)


@clients.command("revoke")
@click.argument("client_id")
@config_option
@data_dir_option
def clients_revoke(client_id: str, config: str | None, data_dir: str) -> None:
    """Revoke a client's key (takes effect within the key cache time, 2 s by default)."""
    settings = _settings(config, data_dir)
    if not _run(lambda: _with_store(settings, lambda store: store.revoke(client_id))):
        raise click.ClickException(f"no active client {client_id}")
    console.print(f"revoked {client_id}")


# -- keys and database ---------------------------------------------------------------


@main.group()
def keys() -> None:
    """Manage the keyring that encrypts PII at rest."""


@keys.command("init")
@config_option
@data_dir_option
def keys_init(config: str | None, data_dir: str) -> None:
    """Create the keyring (once per deployment; give every replica the same file)."""
    from .encryption import Keyring

    settings = _settings(config, data_dir)
    if settings.keyring_file.exists():
        raise click.ClickException(f"a keyring already exists at {settings.keyring_file}; use `keys rotate`")
    Keyring.generate().save(settings.keyring_file)
    console.print(f"created keyring {settings.keyring_file} (mode 0600): back it up; without it, encrypted data is lost")


@keys.command("rotate")
@config_option
@data_dir_option
@click.option("--settle-seconds", default=None, type=float,
              help="How long running gateways get to switch to the new key before re-encryption (default 11).")
def keys_rotate(config: str | None, data_dir: str, settle_seconds: float | None) -> None:
    """Add a data key, make it active, and re-encrypt every encrypted column with it."""
    from .encryption.rotation import rotate_keys

    settings = _settings(config, data_dir)
    kwargs = {} if settle_seconds is None else {"settle_seconds": settle_seconds}
    report = _run(lambda: rotate_keys(settings, **kwargs))
    console.print(f"active data key is now {report.new_kid}")
    for column, count in report.reencrypted.items():
        console.print(f"  re-encrypted {count:6d} values in {column}")


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@config_option
@data_dir_option
def db_upgrade(config: str | None, data_dir: str) -> None:
    """Apply all pending migrations."""
    from .store import create_engine, current_revision, upgrade

    settings = _settings(config, data_dir)

    async def work() -> str | None:
        engine = create_engine(settings.database_url)
        try:
            await upgrade(engine)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    console.print(f"database at migration {_run(work)}")


# -- mocks ---------------------------------------------------------------------------


@main.group()
def mocks() -> None:
    """Run mock upstreams on their own."""


@mocks.command("serve")
@click.option("--dialect", required=True, help="Upstream dialect, e.g. json-hmac.")
@click.option("--region", default=None, help="Region a mock bureau serves, e.g. 440100 (banks and ERPs: none).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=0, type=int, help="0 picks a free port.")
@click.option("--app-id", default=None, help="Credential the mock accepts (default hgw-sandbox).")
@click.option("--app-secret", default=None, envvar="HGW_MOCK_APP_SECRET", help="Secret the mock accepts.")
@click.option("--fault", "faults", multiple=True,
              help="Inject a fault, ROUTE:KIND[:k=v,...], e.g. '*:error:status=503,times=3'. Repeatable.")
def mocks_serve(dialect: str, region: str | None, host: str, port: int, app_id: str | None, app_secret: str | None,
                faults: tuple[str, ...]) -> None:
    """Serve one mock upstream in the foreground."""
    from mocks import MOCK_DIALECTS, MOCK_UPSTREAMS, serve_forever

    known = sorted({*MOCK_DIALECTS, *MOCK_UPSTREAMS})
    if dialect not in known:
        raise click.BadParameter(f"known dialects: {', '.join(known)}", param_hint="--dialect")
    try:
        serve_forever(dialect, region, host, port, list(faults), app_id, app_secret)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


# -- extensions ----------------------------------------------------------------------

# Commands of installed extensions (entry points hr_gateway.extensions), e.g. ``sandbox``.
add_extension_commands(main)


if __name__ == "__main__":
    main()
