"""Webhook ids: a prefix, then time-ordered hex, so ids sort by creation (the
delivery list pages on that order)."""

from __future__ import annotations

import secrets
import time

__all__ = ["new_id"]


def new_id(prefix: str) -> str:
    return f"{prefix}_{int(time.time() * 1000):012x}{secrets.token_hex(7)}"
