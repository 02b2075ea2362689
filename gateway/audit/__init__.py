"""The audit log of every upstream call."""

from .log import AuditLog

__all__ = ["AuditLog"]
