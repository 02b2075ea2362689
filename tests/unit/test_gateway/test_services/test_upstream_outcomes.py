"""Submissions that may already have landed are asked about before being sent."""

from __future__ import annotations

from gateway.services.upstream_outcomes import ask_then_send


async def test_a_first_attempt_is_sent_without_asking() -> None:
    calls: list[str] = []

    async def ask() -> str | None:
        calls.append("ask")
        return None

    async def send() -> str:
        calls.append("send")
        return "sent"

    assert await ask_then_send(ask, send, ask_first=False) == "sent"
    assert calls == ["send"]


async def test_a_resumed_attempt_that_landed_is_not_sent_again() -> None:
    calls: list[str] = []

    async def ask() -> str | None:
        calls.append("ask")
        return "found"

    async def send() -> str:
        calls.append("send")
        return "sent"

    assert await ask_then_send(ask, send, ask_first=True) == "found"
    assert calls == ["ask"]


async def test_a_resumed_attempt_that_never_landed_is_sent() -> None:
    async def ask() -> str | None:
        return None

    async def send() -> str:
        return "sent"

    assert await ask_then_send(ask, send, ask_first=True) == "sent"
