"""The sandbox's migration runs as a gateway extension (entry point
``hr_gateway.extensions``: ``sandbox-migrations = "sandbox.extension:EXTENSION"``).

``hr-gateway sandbox migrate|sign-off`` and ``/v1/sandbox/migrations`` come from
here; the gateway itself never imports ``sandbox``. Importing this module is cheap:
the commands and routes are imported when the gateway asks for them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from gateway.errors import ProblemType
from gateway.extensions import Extension

if TYPE_CHECKING:
    import click
    from litestar import Litestar

__all__ = ["EXTENSION", "PROBLEM_TYPES"]

#: The stable problem codes of /v1/sandbox/migrations (RFC 9457 ``code``).
PROBLEM_TYPES: dict[str, ProblemType] = {
    "sandbox_key_required": ProblemType(403, "Migration runs are rehearsed in the sandbox: use a sandbox key"),
    "invalid_upload": ProblemType(400, "The request is not a multipart/form-data upload the gateway can read"),
    "missing_upload_part": ProblemType(400, "A required part of the multipart upload is missing"),
    "empty_upload": ProblemType(422, "An uploaded file is empty"),
    "invalid_mapping": ProblemType(422, "The mapping file is not valid"),
    "invalid_source": ProblemType(422, "The data file cannot be read"),
    "run_not_finished": ProblemType(409, "The migration run has not finished"),
    "already_signed_off": ProblemType(409, "The migration run is already signed off"),
}


def _commands() -> Sequence[click.Command]:
    from .cli import sandbox

    return [sandbox]


def _route_handlers() -> Sequence[Any]:
    from .api import MigrationsController

    return [MigrationsController]


@asynccontextmanager
async def _runs(app: Litestar) -> AsyncIterator[None]:
    """Runs started through the API work in the gateway's process; they stop cleanly
    (after their current batch, status ``interrupted``) before the gateway does."""
    from .api import background_runs

    async with background_runs(app):
        yield


EXTENSION = Extension(
    name="sandbox-migrations",
    commands=_commands,
    route_handlers=_route_handlers,
    lifespan=(_runs,),
    problem_types=PROBLEM_TYPES,
)
