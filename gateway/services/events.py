"""How services announce changes (to webhooks) without knowing how they are delivered.

A service writes its change and the event in one transaction (``publish`` takes the
caller's connection), then calls ``notify()`` after the commit so an in-process
dispatcher delivers at once instead of at its next poll.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["EventPublisher", "NoEvents"]


class EventPublisher(Protocol):
    async def publish(
        self, conn: AsyncConnection, *, client_id: str, environment: str, type: str, data: dict[str, Any]
    ) -> str: ...

    def notify(self) -> None: ...


class NoEvents:
    """A publisher that drops every event (for tools that run without webhooks)."""

    async def publish(
        self, conn: AsyncConnection, *, client_id: str, environment: str, type: str, data: dict[str, Any]
    ) -> str:
        return ""

    def notify(self) -> None:
        return None
