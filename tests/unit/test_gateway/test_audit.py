from adapters import CallContext
from adapters.http import UpstreamCall
from gateway.audit import AuditLog


def test_the_buffer_is_bounded_and_counts_what_it_drops():
    log = AuditLog(engine=None, max_pending=2)  # type: ignore[arg-type]
    observe = log.observer("sandbox", "gz", ("440100",))
    call = UpstreamCall("gz", "participation.search", CallContext(), 200, 1, 1.0, "ok")
    for _ in range(5):
        observe(call)
    assert len(log._pending) == 2 and log.dropped == 3
