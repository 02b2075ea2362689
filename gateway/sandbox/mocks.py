"""Start the mock upstreams that sandbox keys are routed to.

The mocks are independent programs (``mocks/``); the gateway only starts them on
loopback and configures its adapters to talk to them, exactly as it would to real
upstreams.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mocks import MOCK_DIALECTS

from ..config import UpstreamSettings

__all__ = ["SANDBOX_BUREAUS", "SANDBOX_CREDENTIALS", "SANDBOX_OPTIONS", "SandboxMocks"]

#: region -> (dialect, upstream name); each region gets its own mock bureau.
SANDBOX_BUREAUS: dict[str, tuple[str, str]] = {
    "330100": ("sm4-async", "sandbox-bureau-330100"),
    "420100": ("xml-gbk", "sandbox-bureau-420100"),
    "430100": ("sm4-async", "sandbox-bureau-430100"),
    "440100": ("json-hmac", "sandbox-bureau-440100"),
    "440300": ("json-hmac", "sandbox-bureau-440300"),
}

#: dialect -> fresh sandbox credentials, named the same for the mock's constructor
#: and the adapter's configuration.
SANDBOX_CREDENTIALS: dict[str, Callable[[], dict[str, str]]] = {
    "json-hmac": lambda: {"app_id": "hgw-sandbox", "app_secret": secrets.token_urlsafe(24)},
    "xml-gbk": lambda: {"user_id": "hgw-sandbox", "password": secrets.token_urlsafe(24)},
    "sm4-async": lambda: {"appid": "hgw-sandbox", "sm4_key": secrets.token_hex(16), "mac_key": secrets.token_urlsafe(24)},
}

#: dialect -> adapter options for the sandbox (the mocks answer fast; poll them fast).
SANDBOX_OPTIONS: dict[str, dict[str, Any]] = {
    "sm4-async": {"poll_interval": 0.1, "poll_timeout": 5.0},
}


@dataclass
class SandboxMocks:
    host: str = "127.0.0.1"
    servers: dict[str, Any] = field(default_factory=dict)
    upstreams: list[UpstreamSettings] = field(default_factory=list)

    def start(self) -> SandboxMocks:
        for region, (dialect, name) in SANDBOX_BUREAUS.items():
            credentials = SANDBOX_CREDENTIALS[dialect]()
            server = MOCK_DIALECTS[dialect](region, host=self.host, port=0, **credentials)
            server.start()
            self.servers[region] = server
            self.upstreams.append(
                UpstreamSettings(
                    name=name, adapter=dialect, base_url=server.base_url, regions=(region,),
                    credentials=credentials, options=dict(SANDBOX_OPTIONS.get(dialect, {})),
                )
            )
        return self

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()
        self.upstreams.clear()
