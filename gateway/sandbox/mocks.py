"""Start the mock upstreams that sandbox keys are routed to.

The mocks are independent programs (``mocks/``); the gateway only starts them on
loopback and configures its adapters to talk to them, exactly as it would to real
upstreams.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from mocks import MOCK_DIALECTS

from ..config import UpstreamSettings

__all__ = ["CREDENTIAL_NAMES", "SANDBOX_BUREAUS", "SandboxMocks"]

#: region -> (dialect, upstream name); each region gets its own mock bureau.
SANDBOX_BUREAUS: dict[str, tuple[str, str]] = {
    "420100": ("xml-gbk", "sandbox-bureau-420100"),
    "440100": ("json-hmac", "sandbox-bureau-440100"),
    "440300": ("json-hmac", "sandbox-bureau-440300"),
}

#: dialect -> the names of its (identity, secret) credentials, the same for the mock's
#: constructor and the adapter's configuration.
CREDENTIAL_NAMES: dict[str, tuple[str, str]] = {
    "json-hmac": ("app_id", "app_secret"),
    "xml-gbk": ("user_id", "password"),
}


@dataclass
class SandboxMocks:
    host: str = "127.0.0.1"
    servers: dict[str, Any] = field(default_factory=dict)
    upstreams: list[UpstreamSettings] = field(default_factory=list)

    def start(self) -> SandboxMocks:
        for region, (dialect, name) in SANDBOX_BUREAUS.items():
            identity, secret = CREDENTIAL_NAMES[dialect]
            credentials = {identity: "hgw-sandbox", secret: secrets.token_urlsafe(24)}
            server = MOCK_DIALECTS[dialect](region, host=self.host, port=0, **credentials)
            server.start()
            self.servers[region] = server
            self.upstreams.append(
                UpstreamSettings(
                    name=name, adapter=dialect, base_url=server.base_url, regions=(region,), credentials=credentials
                )
            )
        return self

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()
        self.upstreams.clear()
