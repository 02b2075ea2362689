"""Gateway settings: from a TOML file (live mode) or sandbox defaults.

Secrets never need to live in the file: any upstream credential can be given, or
overridden, by the environment variable ``HGW_UPSTREAM_<NAME>__<KEY>`` (name and key
upper-cased, ``-`` as ``_``, a double underscore between them so that upstreams named
``gz`` and ``gz-bureau`` cannot take each other's secrets), and the database URL by
``HGW_DATABASE_URL``.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["ConfigError", "Settings", "UpstreamSettings", "load_settings", "sandbox_settings"]

class ConfigError(ValueError):
    """The configuration file is wrong; the message says where."""


@dataclass(frozen=True)
class UpstreamSettings:
    """One adapter instance: which adapter, where, with which credentials."""

    name: str
    adapter: str
    base_url: str
    regions: tuple[str, ...] = ()
    credentials: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    database_url: str
    data_dir: Path
    keyring_file: Path
    upstreams: tuple[UpstreamSettings, ...] = ()
    sandbox: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    search_deadline: float = 8.0
    idempotency_retention_hours: float = 24.0
    idempotency_lease_seconds: float = 60.0
    max_body_bytes: int = 1_048_576
    api_key_cache_seconds: float = 2.0
    audit_flush_seconds: float = 0.2
    #: How often slow work (declarations, transfers, terminations) is checked with the
    #: bureaus, and how often the poller looks for due work other replicas created.
    upstream_poll_seconds: float = 5.0
    worker_interval_seconds: float = 1.0
    log_level: str = "INFO"
    mode: Literal["sandbox", "live"] = "live"
    #: Seconds before each retry of a failed webhook delivery; the last repeats.
    webhook_retry_schedule: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0, 3600.0, 21600.0)
    webhook_max_attempts: int = 12
    webhook_retry_jitter: float = 0.2
    webhook_timeout_seconds: float = 10.0
    webhook_concurrency: int = 8
    webhook_poll_seconds: float = 1.0
    #: How long after a contribution run's payment deadline each escalation level
    #: (``contribution_run.overdue`` with ``level`` 1, 2, 3) is raised if the run is unfinished.
    escalation_delays_seconds: tuple[float, ...] = (0.0, 86400.0, 172800.0)
    #: Let live endpoints point at loopback/private/link-local addresses (on-premises receivers).
    webhook_allow_private_urls: bool = False


def _env_name(*parts: str) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9]", "_", p).upper() for p in parts)


def _upstream(raw: dict[str, Any], where: str) -> UpstreamSettings:
    try:
        name = str(raw["name"])
        adapter = str(raw["adapter"])
        base_url = str(raw["base_url"])
    except KeyError as exc:
        raise ConfigError(f"{where}: missing key {exc.args[0]!r}") from None
    regions = tuple(str(r) for r in raw.get("regions", ()))
    for region in regions:
        if not re.fullmatch(r"\d{6}", region):
            raise ConfigError(f"{where}: region {region!r} is not a 6-digit division code")
    credentials = {str(k): str(v) for k, v in dict(raw.get("credentials", {})).items()}
    prefix = _env_name("HGW_UPSTREAM", name) + "__"
    for key, value in os.environ.items():
        if key.startswith(prefix):
            credentials[key[len(prefix):].lower()] = value
    return UpstreamSettings(name, adapter, base_url, regions, credentials, dict(raw.get("options", {})))


def load_settings(path: str | Path) -> Settings:
    """Read a live-mode configuration file (see hr-gateway.example.toml)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    gateway = raw.get("gateway", {})
    data_dir = Path(gateway.get("data_dir", ".hr-gateway"))
    database_url = os.environ.get("HGW_DATABASE_URL") or raw.get("database", {}).get("url")
    if not database_url:
        raise ConfigError(f"{path}: [database] url is required (or HGW_DATABASE_URL)")
    upstreams = tuple(_upstream(u, f"{path}: upstreams[{i}]") for i, u in enumerate(raw.get("upstreams", [])))
    names = [u.name for u in upstreams]
    if len(names) != len(set(names)):
        raise ConfigError(f"{path}: upstream names must be unique")
    security = raw.get("security", {})
    webhooks = raw.get("webhooks", {})
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        keyring_file=Path(os.environ.get("HGW_KEYRING_FILE") or security.get("keyring_file", data_dir / "keyring.json")),
        upstreams=upstreams,
        sandbox=bool(raw.get("sandbox", {}).get("enabled", False)),
        host=str(gateway.get("host", "127.0.0.1")),
        port=int(gateway.get("port", 8080)),
        search_deadline=float(gateway.get("search_deadline_seconds", 8.0)),
        idempotency_retention_hours=float(gateway.get("idempotency_retention_hours", 24.0)),
        max_body_bytes=int(gateway.get("max_body_bytes", 1_048_576)),
        idempotency_lease_seconds=float(gateway.get("idempotency_lease_seconds", 60.0)),
        audit_flush_seconds=float(gateway.get("audit_flush_seconds", 0.2)),
        upstream_poll_seconds=float(gateway.get("upstream_poll_seconds", 5.0)),
        worker_interval_seconds=float(gateway.get("worker_interval_seconds", 1.0)),
        api_key_cache_seconds=float(security.get("api_key_cache_seconds", 2.0)),
        log_level=str(gateway.get("log_level", "INFO")),
        mode="live",
        webhook_retry_schedule=tuple(
            float(d) for d in webhooks.get("retry_schedule_seconds", (5, 30, 120, 600, 3600, 21600))
        ),
        webhook_max_attempts=int(webhooks.get("max_attempts", 12)),
        webhook_retry_jitter=float(webhooks.get("retry_jitter", 0.2)),
        webhook_timeout_seconds=float(webhooks.get("timeout_seconds", 10.0)),
        webhook_concurrency=int(webhooks.get("concurrency", 8)),
        webhook_poll_seconds=float(webhooks.get("poll_seconds", 1.0)),
        webhook_allow_private_urls=bool(webhooks.get("allow_private_urls", False)),
        escalation_delays_seconds=tuple(
            float(h) * 3600 for h in raw.get("contribution_runs", {}).get("escalation_hours", (0, 24, 48))
        ),
    )


def sandbox_settings(data_dir: str | Path = ".hr-gateway", **overrides: Any) -> Settings:
    """Embedded SQLite under ``data_dir``, mock bureaus started by the gateway."""
    data_dir = Path(data_dir)
    values: dict[str, Any] = dict(
        # Never HGW_DATABASE_URL: that names a live database, which sandbox data must not enter.
        database_url=f"sqlite+aiosqlite:///{(data_dir / 'gateway.db').as_posix()}",
        data_dir=data_dir,
        keyring_file=data_dir / "keyring.json",
        sandbox=True,
        mode="sandbox",
        # The sandbox bureaus run on an accelerated clock: follow them closely.
        upstream_poll_seconds=1.0,
    )
    values.update(overrides)
    return Settings(**values)
