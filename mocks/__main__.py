"""``python -m mocks --dialect json-hmac --region 440100 --port 8701 [--fault SPEC]...``
(banks and ERPs: ``python -m mocks --dialect iso20022 --port 8801``)"""

from __future__ import annotations

import argparse

from mocks.cli import serve_forever
from mocks.dialects import MOCK_DIALECTS, MOCK_UPSTREAMS
from mocks.faults import parse_fault


def _fault_spec(text: str) -> str:
    """Validate a fault spec at parse time so mistakes are reported as usage errors."""
    try:
        parse_fault(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mocks", description="Run a mock upstream server.")
    parser.add_argument("--dialect", required=True, choices=sorted({*MOCK_DIALECTS, *MOCK_UPSTREAMS}))
    parser.add_argument("--region", default=None, help="a bureau's region code, e.g. 440100 (banks and ERPs have none)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--fault",
        dest="faults",
        action="append",
        default=[],
        type=_fault_spec,
        metavar="SPEC",
        help="ROUTE:KIND[:k=v,...], e.g. '*:error:status=503,times=3'; repeatable",
    )
    parser.add_argument("--app-id", default=None)
    parser.add_argument("--app-secret", default=None)
    args = parser.parse_args(argv)
    try:
        serve_forever(args.dialect, args.region, args.host, args.port, args.faults, args.app_id, args.app_secret)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))


if __name__ == "__main__":
    main()
