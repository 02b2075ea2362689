"""Gateway ids: a prefix, then time-ordered hex, so ids sort by creation."""

from __future__ import annotations

import secrets
import time

__all__ = ["new_id", "upstream_reference"]


def new_id(prefix: str) -> str:
    return f"{prefix}_{int(time.time() * 1000):012x}{secrets.token_hex(7)}"


def upstream_reference(gateway_id: str) -> str:
    """The deterministic reference sent upstream for a gateway resource.

    Derived from the id alone, so a resumed submission sends the same reference and
    the upstream (or our question to it) recognises a repeat.
    """
    return "HGW-" + gateway_id.partition("_")[2].upper()
