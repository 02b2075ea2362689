"""A webhook receiver for hr-gateway that verifies signatures (standard library only).

    python examples/webhook_receiver.py --secret whsec_… [--port 8787]

Register it with the gateway (sandbox keys may use http and 127.0.0.1):

    curl -X POST $BASE/v1/webhook-endpoints -H "Authorization: Bearer $KEY" \\
         -H "Content-Type: application/json" \\
         -d '{"url": "http://127.0.0.1:8787/hooks", "events": ["*"]}'

and start this receiver with the `secret` from that response. It answers 204 to a
delivery whose signature verifies (the gateway then stops retrying), 400 otherwise,
and ignores repeats of an event it has already handled (delivery is at least once).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 300


def verify(secret: str, body: bytes, header: str, tolerance: float = TOLERANCE_SECONDS) -> bool:
    """True when ``Hgw-Signature`` (``t=<unix>,v1=<hex>``) signs ``body`` with ``secret``
    and its timestamp is recent (an old one is a replay)."""
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or abs(time.time() - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, s) for s in signatures)


def make_handler(secret: str) -> type[BaseHTTPRequestHandler]:
    seen: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))  # the raw bytes, before parsing
            if not verify(secret, body, self.headers.get("Hgw-Signature", "")):
                self.send_response(400)
                self.end_headers()
                return
            event = json.loads(body)
            if event["id"] not in seen:
                seen.add(event["id"])
                print(f"{event['created']} {event['type']} {event['id']} {json.dumps(event['data'], ensure_ascii=False)}")
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secret", required=True, help="the endpoint's signing secret (whsec_…)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args.secret))
    print(f"listening on http://{args.host}:{args.port}/hooks")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
