"""CallContext: deadlines and copies."""

from __future__ import annotations

import time

from adapters import CallContext


def test_no_deadline_means_no_remaining_time_limit() -> None:
    assert CallContext().remaining() is None


def test_remaining_counts_down_from_the_deadline() -> None:
    context = CallContext(deadline=time.monotonic() + 10)
    remaining = context.remaining()
    assert remaining is not None
    assert 9.0 < remaining <= 10.0


def test_remaining_is_never_negative() -> None:
    assert CallContext(deadline=time.monotonic() - 5).remaining() == 0.0


def test_with_gateway_id_copies_everything_else() -> None:
    extra = {"k": "v"}
    context = CallContext(request_id="req-1", client_id="client-1", deadline=123.0, extra=extra)
    copy = context.with_gateway_id("gw-9")
    assert copy.gateway_id == "gw-9"
    assert (copy.request_id, copy.client_id, copy.deadline, copy.extra) == ("req-1", "client-1", 123.0, {"k": "v"})
    assert context.gateway_id is None
    assert copy.extra is not extra  # the copy does not share the mutable dict
