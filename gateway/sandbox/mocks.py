"""Start the mock upstreams that sandbox keys are routed to.

The mocks are independent programs (``mocks/``); the gateway only starts them on
loopback and configures its adapters to talk to them, exactly as it would to real
upstreams: five bureaus (one per sandbox region), two banks and two ERPs, each with
fresh credentials and the options a live operator would configure (the accounts
the gateway pays from, the bureaus' collection accounts, the ERP's cost centres
and voucher accounts for contribution runs).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mocks import MOCK_DIALECTS, MOCK_UPSTREAMS
from mocks.openbanking import sandbox_credentials as openbanking_credentials

from ..config import UpstreamSettings

__all__ = [
    "SANDBOX_BANKS",
    "SANDBOX_BUREAUS",
    "SANDBOX_COLLECTION_ACCOUNTS",
    "SANDBOX_CREDENTIALS",
    "SANDBOX_ERPS",
    "SANDBOX_OPTIONS",
    "SandboxMocks",
    "finance_options",
]

#: region -> (dialect, upstream name); each region gets its own mock bureau.
SANDBOX_BUREAUS: dict[str, tuple[str, str]] = {
    "330100": ("sm4-async", "sandbox-bureau-330100"),
    "420100": ("xml-gbk", "sandbox-bureau-420100"),
    "430100": ("sm4-async", "sandbox-bureau-430100"),
    "440100": ("json-hmac", "sandbox-bureau-440100"),
    "440300": ("json-hmac", "sandbox-bureau-440300"),
}

#: upstream name -> dialect, for the upstreams that serve no region.
SANDBOX_BANKS: dict[str, str] = {"sandbox-bank-a": "iso20022", "sandbox-bank-b": "openbanking"}
SANDBOX_ERPS: dict[str, str] = {"sandbox-erp-sap": "odata", "sandbox-erp-kingdee": "kingdee"}

#: dialect -> fresh sandbox credentials, named the same for the mock's constructor
#: and the adapter's configuration.
SANDBOX_CREDENTIALS: dict[str, Callable[[], dict[str, str]]] = {
    "json-hmac": lambda: {"app_id": "hgw-sandbox", "app_secret": secrets.token_urlsafe(24)},
    "xml-gbk": lambda: {"user_id": "hgw-sandbox", "password": secrets.token_urlsafe(24)},
    "sm4-async": lambda: {"appid": "hgw-sandbox", "sm4_key": secrets.token_hex(16), "mac_key": secrets.token_urlsafe(24)},
    "iso20022": lambda: {"api_key": "hgw-sandbox", "api_secret": secrets.token_urlsafe(24)},
    "openbanking": openbanking_credentials,
    "odata": lambda: {"username": "hgw-sandbox", "password": secrets.token_urlsafe(24)},
    "kingdee": lambda: {"acct_id": "HGW-SANDBOX", "username": "hgw-api", "password": secrets.token_urlsafe(24)},
}

_CHANGSHA, _GUANGZHOU, _WUHAN = "91430100MA4L16JQ9D", "91440101MA59BX4C3Y", "91420100MA4K2QXL25"

#: Where each sandbox bureau collects contributions (the payee of a contribution run).
SANDBOX_COLLECTION_ACCOUNTS: dict[str, dict[str, str]] = {
    "430100": {"name": "长沙市社会保险服务中心", "account": "43001000000000000017", "bank_code": "999551000012"},
    "330100": {"name": "杭州市社会保险管理服务中心", "account": "33001000000000000012", "bank_code": "999551000012"},
    "420100": {"name": "武汉市社会保险管理中心", "account": "42001000000000000016", "bank_code": "999521000015"},
    "440100": {"name": "广州市社会保险基金管理中心", "account": "44001000000000000013", "bank_code": "999581000019"},
    "440300": {"name": "深圳市社会保险基金管理局", "account": "44031000000000000018", "bank_code": "999581000019"},
}

#: dialect -> adapter options for the sandbox (the mocks answer fast; poll them fast).
SANDBOX_OPTIONS: dict[str, dict[str, Any]] = {
    "sm4-async": {"poll_interval": 0.1, "poll_timeout": 5.0},
}


def finance_options(name: str) -> dict[str, Any]:
    """What an operator configures on a bank or ERP instance, for the sandbox's ones."""
    if name == "sandbox-bank-a":
        return {
            "accounts": [
                {"account": "43050188000012345678", "name": "长沙示例制造有限公司", "bank_code": "999551000012"},
                {"account": "44050158000087654321", "name": "广州示例科技有限公司", "bank_code": "999581000019"},
                {"account": "42050116000011223344", "name": "武汉示例软件有限公司", "bank_code": "999521000015"},
            ],
            # Claims are paid from the Changsha company's account unless a request names another.
            "reimbursement_account": "43050188000012345678",
        }
    if name == "sandbox-bank-b":
        return {
            "accounts": [
                {"account": "31310001000000000101", "name": "长沙示例制造有限公司", "bank_code": "313551000017"},
                {"account": "31310001000000000202", "name": "广州示例科技有限公司", "bank_code": "313581000013"},
                {"account": "31310001000000000303", "name": "武汉示例软件有限公司", "bank_code": "313521000011"},
                {"account": "31310001000000000909", "name": "长沙示例制造有限公司", "bank_code": "313551000017"},
            ],
        }
    if name == "sandbox-erp-sap":
        return {"contribution_run": {
            "cost_centers": {_CHANGSHA: "CC-HR-CS", _GUANGZHOU: "CC-HR-GZ"},
            "expense_account": "660201", "bank_account": "100201",
        }}
    if name == "sandbox-erp-kingdee":
        return {"contribution_run": {
            "cost_centers": {_CHANGSHA: "CS-HR", _GUANGZHOU: "GZ-HR"},
            "expense_account": "6602.01", "bank_account": "1002.01",
        }}
    return {}


@dataclass
class SandboxMocks:
    host: str = "127.0.0.1"
    #: Seconds per step of the mocks' accelerated clocks (settlement, approvals).
    step_seconds: float = 2.0
    servers: dict[str, Any] = field(default_factory=dict)
    upstreams: list[UpstreamSettings] = field(default_factory=list)

    def start(self) -> SandboxMocks:
        for region, (dialect, name) in SANDBOX_BUREAUS.items():
            credentials = SANDBOX_CREDENTIALS[dialect]()
            server = MOCK_DIALECTS[dialect](region, host=self.host, port=0, **credentials)
            self._add(region, name, dialect, server, credentials, regions=(region,),
                      options={**SANDBOX_OPTIONS.get(dialect, {}), "collection_account": SANDBOX_COLLECTION_ACCOUNTS[region]})
        for name, dialect in {**SANDBOX_BANKS, **SANDBOX_ERPS}.items():
            credentials = SANDBOX_CREDENTIALS[dialect]()
            timing = "settle_seconds" if name in SANDBOX_BANKS else "decision_seconds"
            server = MOCK_UPSTREAMS[dialect](host=self.host, port=0, **{timing: self.step_seconds}, **credentials)
            self._add(name, name, dialect, server, credentials, options=finance_options(name))
        return self

    def _add(
        self, key: str, name: str, dialect: str, server: Any, credentials: dict[str, str], *,
        regions: tuple[str, ...] = (), options: dict[str, Any],
    ) -> None:
        server.start()
        self.servers[key] = server
        self.upstreams.append(
            UpstreamSettings(
                name=name, adapter=dialect, base_url=server.base_url, regions=regions,
                credentials=credentials, options=options,
            )
        )

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()
        self.upstreams.clear()
