"""The Litestar application."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from . import __version__
from .api.contribution_status import ContributionStatusController
from .api.dependencies import dependencies
from .api.erp import ErpController
from .api.exceptions import exception_handlers
from .api.middleware import RequestContextMiddleware
from .api.payments import AccountsController, PaymentsController
from .api.policy import PolicyController
from .api.slow_work import DeclarationsController, TerminationsController, TransfersController
from .api.social_security import SocialSecurityController
from .api.system import AdaptersController, AuditController, HealthController
from .api.webhooks import WebhooksController
from .api.workflows import ContributionRunsController, ReimbursementsController
from .auth.middleware import AuthenticationMiddleware
from .config import Settings, UpstreamSettings
from .encryption.middleware import JweMiddleware
from .extensions import apply_extensions
from .idempotency import IdempotencyMiddleware
from .runtime import Gateway

__all__ = ["create_app"]

API_DESCRIPTION = """\
One REST API in front of social-insurance bureaus, banks and ERPs.

**Auth:** `Authorization: Bearer <api key>`; each operation names the scope it needs.
**Idempotency:** POSTs with an upstream effect require `Idempotency-Key`; records are kept 24 hours by default.
**Encryption:** bodies may be JWE compact (`application/jose`, `A256GCM`); see docs/api.md.
**Errors:** RFC 9457 `application/problem+json` with a stable `code`.
"""


def create_app(
    settings: Settings,
    *,
    sandbox_upstreams: Sequence[UpstreamSettings] | None = None,
    on_started: Callable[[Gateway], Awaitable[None]] | None = None,
) -> Litestar:
    """Build the app; ``sandbox_upstreams`` replaces the bundled mocks (tests, benchmarks)
    and ``on_started`` runs once the gateway is up (the CLI prints its banner there)."""
    gateway = Gateway(settings, sandbox_upstreams=sandbox_upstreams)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await gateway.start()
        app.state.gateway = gateway
        if on_started is not None:
            await on_started(gateway)
        try:
            yield
        finally:
            await gateway.stop()

    return Litestar(
        route_handlers=[
            HealthController, SocialSecurityController, DeclarationsController, TransfersController,
            TerminationsController, ContributionStatusController, PolicyController,
            AdaptersController, AuditController, WebhooksController, PaymentsController, AccountsController,
            ErpController, ContributionRunsController, ReimbursementsController,
        ],
        lifespan=[lifespan],
        # Installed extensions (entry points hr_gateway.extensions) add their routes and lifespan.
        on_app_init=[apply_extensions],
        dependencies=dependencies,
        # Order matters: request id and body first, then who is calling, then the
        # plaintext body, then the Idempotency-Key (over the plaintext).
        middleware=[RequestContextMiddleware, AuthenticationMiddleware, JweMiddleware, IdempotencyMiddleware],
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
        openapi_config=OpenAPIConfig(
            title="hr-gateway",
            version=__version__,
            description=API_DESCRIPTION,
            components=Components(
                security_schemes={"apiKey": SecurityScheme(type="http", scheme="bearer", description="hgw_test_… or hgw_live_…")}
            ),
            security=[{"apiKey": []}],
            openapi_router=Router(path="/schema", route_handlers=[], opt={"public": True}, include_in_schema=False),
            render_plugins=[SwaggerRenderPlugin(path="/"), RedocRenderPlugin(path="/redoc")],
        ),
        request_max_body_size=settings.max_body_bytes,
        debug=False,
        # Logging is configured once by the CLI (with the ID-number mask); Litestar must not replace it.
        logging_config=None,
    )
