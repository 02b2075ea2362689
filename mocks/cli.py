"""Run one mock server in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import threading
from types import FrameType

from mocks.dialects import MOCK_DIALECTS, MOCK_UPSTREAMS
from mocks.faults import parse_fault


def serve_forever(
    dialect: str,
    region: str | None,
    host: str,
    port: int,
    faults: list[str],
    app_id: str | None,
    app_secret: str | None,
) -> None:
    """Start the ``dialect`` mock for ``region``, print its address, block until signalled.

    ``app_id`` / ``app_secret`` left as None keep the mock's sandbox defaults. Fault
    specs use the :func:`mocks.faults.parse_fault` form and are validated before the
    port is bound. Must run in the main thread (it installs signal handlers).
    """
    parsed = [parse_fault(spec) for spec in faults]
    credentials = {key: value for key, value in (("app_id", app_id), ("app_secret", app_secret)) if value is not None}
    if dialect in MOCK_UPSTREAMS:
        # Banks and ERPs serve no region and keep their documented sandbox credentials.
        server = MOCK_UPSTREAMS[dialect](host=host, port=port)
    elif dialect in MOCK_DIALECTS:
        if not region:
            raise ValueError(f"the {dialect} mock is a bureau: give --region")
        server = MOCK_DIALECTS[dialect](region, host=host, port=port, **credentials)
    else:
        known = ", ".join(sorted({*MOCK_DIALECTS, *MOCK_UPSTREAMS}))
        raise ValueError(f"unknown mock dialect {dialect!r} (known: {known})")
    for fault in parsed:
        server.faults.add(fault)

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        print(server.describe(), flush=True)
        stop.wait()
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
