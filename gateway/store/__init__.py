"""Persistence: tables, engine creation and Alembic migrations."""

from .engine import create_engine
from .migrate import current_revision, head_revision, upgrade
from .tables import (
    audit_events,
    clients,
    declaration_lines,
    declarations,
    enrolments,
    idempotency_records,
    metadata,
    policy_versions,
    terminations,
    transfer_events,
    transfers,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
    webhook_events,
)

__all__ = [
    "audit_events",
    "clients",
    "create_engine",
    "current_revision",
    "declaration_lines",
    "declarations",
    "enrolments",
    "head_revision",
    "idempotency_records",
    "metadata",
    "policy_versions",
    "terminations",
    "transfer_events",
    "transfers",
    "upgrade",
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_endpoints",
    "webhook_events",
]
