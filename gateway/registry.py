"""Find adapters through entry points and route requests to adapter instances.

The gateway never imports a concrete adapter: the built-in ones are registered in
pyproject.toml under ``hr_gateway.adapters`` exactly as a vendor's package would be.
Each environment (``sandbox``: mocks, ``live``: configured upstreams) has its own
``UpstreamSet``; a key of one environment never reaches the other's upstreams.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Literal

from adapters import ENTRY_POINT_GROUP, Adapter, AdapterConfig, BankAdapter, BureauAdapter, Capability, ErpAdapter
from adapters.http import CallObserver

from .config import ConfigError, UpstreamSettings

__all__ = ["UpstreamSet", "Upstreams", "adapter_classes", "build_upstream_set"]

log = logging.getLogger("hr_gateway.registry")
Environment = Literal["sandbox", "live"]


def adapter_classes() -> dict[str, type[Adapter]]:
    """Every adapter class installed in this environment, by dialect name."""
    found: dict[str, type[Adapter]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            found[ep.name] = ep.load()
        except Exception:  # a broken third-party package must not stop the gateway
            log.exception("cannot load adapter entry point %s (%s)", ep.name, ep.value)
    return found


@dataclass
class UpstreamSet:
    environment: Environment
    adapters: dict[str, Adapter] = field(default_factory=dict)
    bureaus: dict[str, BureauAdapter] = field(default_factory=dict)

    def add(self, adapter: Adapter) -> None:
        if adapter.name in self.adapters:
            raise ConfigError(f"two upstreams are named {adapter.name!r}")
        self.adapters[adapter.name] = adapter
        if adapter.kind == "social_security":
            for region in adapter.config.regions:
                if region in self.bureaus:
                    raise ConfigError(f"region {region} has two bureaus: {self.bureaus[region].name!r} and {adapter.name!r}")
                self.bureaus[region] = adapter  # type: ignore[assignment]

    def bureau_for(self, region: str, capability: Capability | None = None) -> BureauAdapter | None:
        bureau = self.bureaus.get(region)
        if bureau is None or (capability is not None and capability not in bureau.capabilities):
            return None
        return bureau

    def bank(self, name: str) -> BankAdapter | None:
        adapter = self.adapters.get(name)
        return adapter if adapter is not None and adapter.kind == "bank" else None  # type: ignore[return-value]

    def erp(self, name: str) -> ErpAdapter | None:
        adapter = self.adapters.get(name)
        return adapter if adapter is not None and adapter.kind == "erp" else None  # type: ignore[return-value]

    def names(self, kind: str) -> list[str]:
        return sorted(name for name, adapter in self.adapters.items() if adapter.kind == kind)

    def regions(self, capability: Capability | None = None) -> list[str]:
        return sorted(r for r in self.bureaus if self.bureau_for(r, capability) is not None)

    async def aclose(self) -> None:
        for adapter in self.adapters.values():
            await adapter.aclose()


def build_upstream_set(
    environment: Environment,
    upstreams: Iterable[UpstreamSettings],
    observer_for: Callable[[Environment, UpstreamSettings], CallObserver] | None = None,
    classes: dict[str, type[Adapter]] | None = None,
) -> UpstreamSet:
    classes = adapter_classes() if classes is None else classes
    result = UpstreamSet(environment)
    for upstream in upstreams:
        cls = classes.get(upstream.adapter)
        if cls is None:
            raise ConfigError(
                f"upstream {upstream.name!r}: no adapter {upstream.adapter!r} is installed "
                f"(installed: {', '.join(sorted(classes)) or 'none'})"
            )
        config = AdapterConfig(
            name=upstream.name,
            base_url=upstream.base_url,
            regions=upstream.regions,
            credentials=upstream.credentials,
            options=upstream.options,
            environment=environment,
        )
        observer = observer_for(environment, upstream) if observer_for else None
        try:
            result.add(cls.from_config(config, observer=observer))
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"upstream {upstream.name!r}: {exc}") from exc
    return result


@dataclass
class Upstreams:
    sandbox: UpstreamSet | None = None
    live: UpstreamSet | None = None

    def serves(self, environment: str) -> bool:
        return self.get(environment) is not None

    def get(self, environment: str) -> UpstreamSet | None:
        return self.sandbox if environment == "sandbox" else self.live if environment == "live" else None

    def all(self) -> list[UpstreamSet]:
        return [s for s in (self.sandbox, self.live) if s is not None]

    async def aclose(self) -> None:
        for upstream_set in self.all():
            await upstream_set.aclose()
