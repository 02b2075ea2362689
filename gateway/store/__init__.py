"""Persistence: tables, engine creation and Alembic migrations."""

from .engine import create_engine
from .migrate import current_revision, head_revision, upgrade
from .tables import audit_events, clients, enrolments, idempotency_records, metadata

__all__ = [
    "audit_events",
    "clients",
    "create_engine",
    "current_revision",
    "enrolments",
    "head_revision",
    "idempotency_records",
    "metadata",
    "upgrade",
]
