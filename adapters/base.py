"""A base class that wires an adapter's declared policy into an ``UpstreamClient``."""

from __future__ import annotations

from typing import ClassVar, Self

import httpx

from .errors import ConfigurationError
from .http import CallObserver, UpstreamClient, UpstreamPolicy
from .protocols import AdapterConfig, AdapterHealth, AdapterKind, Capability

__all__ = ["HttpAdapter"]


class HttpAdapter:
    """Shared plumbing for adapters that talk HTTP to one upstream.

    Subclasses declare ``kind``, ``dialect``, ``version``, ``capabilities``,
    ``policy`` and ``required_credentials`` as class attributes, implement
    ``build_auth`` if requests are signed, and add their domain's operations.
    An operator may adjust the declared policy per instance with the option
    ``policy = {retry = {max_attempts = 2}, circuit = {failure_threshold = 10}}``.
    """

    kind: ClassVar[AdapterKind]
    dialect: ClassVar[str]
    version: ClassVar[str] = "1.0"
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    policy: ClassVar[UpstreamPolicy] = UpstreamPolicy()
    required_credentials: ClassVar[tuple[str, ...]] = ()
    #: One deployment of this upstream serves one region, and its answers do not say
    #: which: an instance must then be configured with exactly one region.
    one_region: ClassVar[bool] = False

    def __init__(
        self,
        config: AdapterConfig,
        *,
        observer: CallObserver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: UpstreamPolicy | None = None,
    ) -> None:
        if self.one_region and len(config.regions) != 1:
            raise ConfigurationError(
                f"adapter {config.name!r} ({self.dialect}) serves exactly one region, got {list(config.regions)}"
            )
        missing = [key for key in self.required_credentials if not config.credentials.get(key)]
        if missing:
            raise ConfigurationError(f"adapter {config.name!r} ({self.dialect}) is missing credentials: {', '.join(missing)}")
        self.config = config
        if policy is None:
            try:
                policy = self.policy.with_overrides(config.options.get("policy", {}))
            except (ValueError, TypeError) as exc:
                raise ConfigurationError(f"adapter {config.name!r}: {exc}") from None
        self.client = UpstreamClient(
            config.name,
            config.base_url,
            policy,
            auth=self.build_auth(config),
            transport=transport,
            observer=observer,
        )

    @classmethod
    def from_config(cls, config: AdapterConfig, *, observer: CallObserver | None = None) -> Self:
        return cls(config, observer=observer)

    def build_auth(self, config: AdapterConfig) -> httpx.Auth | None:
        """The request-signing scheme of this upstream (none by default)."""
        return None

    @property
    def name(self) -> str:
        return self.config.name

    def health(self) -> AdapterHealth:
        breaker = self.client.breaker
        return AdapterHealth(
            circuit=breaker.state,
            consecutive_failures=breaker.consecutive_failures,
            last_error=self.client.last_error,
            last_error_at=self.client.last_error_at,
        )

    async def aclose(self) -> None:
        await self.client.aclose()
