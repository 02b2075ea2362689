"""Health, readiness, the JWKS, the adapter list and the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from litestar import Controller, Response, get
from litestar.params import FromQuery, QueryParameter
from sqlalchemy import text

from adapters import Adapter

from ..encryption import public_jwks
from ..errors import ProblemError
from ..runtime import Gateway
from ..store import current_revision, head_revision
from .dependencies import ApiCall
from .schemas import AdapterHealthOut, AdapterOut, AuditEventOut

__all__ = ["AdaptersController", "AuditController", "HealthController"]


class HealthController(Controller):
    tags = ["operations"]
    opt = {"public": True}

    @get("/healthz", summary="Liveness")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz", summary="Readiness: database reachable and migrations applied")
    async def readyz(self, gateway: Gateway) -> dict[str, Any]:
        try:
            async with gateway.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            current = await current_revision(gateway.engine)
        except Exception as exc:
            raise ProblemError("not_ready", f"database unreachable: {type(exc).__name__}") from None
        head = head_revision()
        if current != head:
            raise ProblemError("not_ready", f"database at migration {current}, code expects {head}")
        return {"status": "ready", "database": gateway.engine.dialect.name, "migration": current}

    @get("/.well-known/jwks.json", summary="The gateway's public encryption keys (JWKS)")
    async def jwks(self, gateway: Gateway) -> Response[dict[str, Any]]:
        return Response(public_jwks(gateway.keyring.jwe_private_jwk), media_type="application/jwk-set+json")


class AdaptersController(Controller):
    path = "/v1/adapters"
    tags = ["operations"]

    @get(summary="Configured adapter instances with live health")
    async def list_adapters(self, call: ApiCall) -> list[AdapterOut]:
        """The upstreams of the key's own environment (sandbox keys never see live ones)."""
        upstream_set = call.upstreams
        return [_adapter_out(adapter, upstream_set.environment) for adapter in upstream_set.adapters.values()]


def _adapter_out(adapter: Adapter, environment: str) -> AdapterOut:
    health = adapter.health()
    return AdapterOut(
        name=adapter.name,
        kind=adapter.kind,
        dialect=adapter.dialect,
        environment=environment,  # type: ignore[arg-type]
        regions=list(adapter.config.regions),
        capabilities=sorted(str(c) for c in adapter.capabilities),
        version=adapter.version,
        health=AdapterHealthOut(
            circuit=health.circuit,
            consecutive_failures=health.consecutive_failures,
            last_error=health.last_error,
            last_error_at=dt.datetime.fromtimestamp(health.last_error_at, dt.timezone.utc) if health.last_error_at else None,
        ),
    )


class AuditController(Controller):
    path = "/v1/audit-events"
    tags = ["operations"]
    opt = {"scope": "admin"}

    @get(summary="Upstream calls of the key's environment, newest first (admin)")
    async def list_events(
        self,
        call: ApiCall,
        client_id: FromQuery[str | None] = None,
        gateway_id: FromQuery[str | None] = None,
        operation: FromQuery[str | None] = None,
        upstream: FromQuery[str | None] = None,
        since: FromQuery[dt.datetime | None] = None,
        before_id: FromQuery[int | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> list[AuditEventOut]:
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=dt.timezone.utc)
        rows = await call.gateway.audit.query(
            environment=call.client.environment,
            client_id=client_id, gateway_id=gateway_id, operation=operation, upstream=upstream,
            since=since, before_id=before_id, limit=limit,
        )
        return [AuditEventOut(**row) for row in rows]
