"""The scopes an API key can hold."""

from __future__ import annotations

__all__ = ["SCOPES", "parse_scopes"]

SCOPES: tuple[str, ...] = (
    "social_security:read",
    "social_security:submit",
    "payments:read",
    "payments:create",
    "erp:read",
    "erp:write",
    "sandbox:migrate",
    "webhooks:manage",
    "admin",
)


def parse_scopes(text: str) -> frozenset[str]:
    """``"a,b"`` -> ``{"a", "b"}``; raises ValueError naming any unknown scope."""
    scopes = frozenset(s.strip() for s in text.replace(" ", ",").split(",") if s.strip())
    unknown = sorted(scopes - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    if not scopes:
        raise ValueError("at least one scope is required")
    return scopes
