"""Threaded HTTP/1.1 plumbing and the ``MockServer`` base shared by all mocks.

The mocks sit in the path of a latency benchmark, so the server keeps
connections alive, disables Nagle's algorithm on accepted sockets and writes
each response (status line, headers and body) with a single ``write`` call.
Access logging is off: request bodies and paths may carry personal data.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import socketserver
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self

from mocks.faults import Fault, FaultBook, FaultKind

CONTROL_PREFIX = "/__mock__/"
MAX_BODY_BYTES = 1 << 20
DROPPED = "DROP"


@dataclass(frozen=True)
class Request:
    """One HTTP request as the mock logic sees it."""

    method: str
    target: str
    """The raw request target: the path plus ``?`` and the query string, if any."""
    headers: Message
    body: bytes

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]


@dataclass(frozen=True)
class Response:
    """One HTTP response; ``code`` is the dialect's result code, kept for the request log."""

    status: int
    body: bytes = b""
    code: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(
        cls, status: int, payload: object, *, code: str = "", headers: Mapping[str, str] | None = None
    ) -> Response:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        merged = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        return cls(status=status, body=body, code=code, headers=merged)

    def with_header(self, name: str, value: str) -> Response:
        return dataclasses.replace(self, headers={**self.headers, name: value})


@dataclass(frozen=True)
class RequestKeys:
    """What a dialect extracts from a request for fault matching and the request log."""

    person_id: str | None = None
    biz_no: str | None = None
    operation: str | None = None
    """The operation named inside the request (e.g. an xml-gbk TransCode), for dialects
    that send every call to one path; faults whose route is this name match it."""


@dataclass(frozen=True)
class RequestRecord:
    """One received business request, as kept in ``MockServer.requests``."""

    method: str
    path: str
    code: str
    """The result code answered, or ``"DROP"`` when no response was written."""
    http_status: int | None
    """The HTTP status answered, or None when no response was written."""
    biz_no: str | None
    at: float
    request_id: str | None = None
    """The caller's X-Request-ID, if it sent one."""
    operation: str | None = None
    """The operation named inside the request, for dialects that have one."""


class RequestLog:
    """A thread-safe, append-only (until cleared) list of request records."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.snapshot())


class _Handler(BaseHTTPRequestHandler):
    """HTTP plumbing only: turns bytes into a Request and a Response back into bytes."""

    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silenced: request lines and bodies may contain personal data."""

    def _serve(self) -> None:
        body = self._read_body()
        if body is None:
            return
        request = Request(method=self.command, target=self.path, headers=self.headers, body=body)
        response = self.server.mock.dispatch(request)
        if response is None:
            self.close_connection = True
            return
        self._write(response)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def _read_body(self) -> bytes | None:
        """Read the body framed by Content-Length; answer and return None when impossible."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._refuse(HTTPStatus.LENGTH_REQUIRED)
            return None
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0:
            self._refuse(HTTPStatus.BAD_REQUEST)
            return None
        if length > MAX_BODY_BYTES:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return None
        return self.rfile.read(length) if length else b""

    def _refuse(self, status: HTTPStatus) -> None:
        self.close_connection = True
        self._write(Response(status=status, body=status.phrase.encode(), headers={"Content-Type": "text/plain"}))

    def _write(self, response: Response) -> None:
        try:
            reason = HTTPStatus(response.status).phrase
        except ValueError:
            reason = ""
        lines = [
            f"HTTP/1.1 {int(response.status)} {reason}",
            f"Date: {formatdate(usegmt=True)}",
            "Server: hgw-mock",
        ]
        # RFC 9110 forbids Content-Length on 204; every other response is length-framed.
        if response.status != HTTPStatus.NO_CONTENT:
            lines.append(f"Content-Length: {len(response.body)}")
        lines.extend(f"{name}: {value}" for name, value in response.headers.items())
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + response.body)


class _HTTPServer(ThreadingHTTPServer):
    """Loopback-friendly threaded server that tracks its open connections."""

    daemon_threads = True
    # The stdlib default backlog of 5 resets connections under benchmark-style bursts.
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], mock: MockServer) -> None:
        self.mock = mock
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Unblock handler threads idling on kept-alive connections."""
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class MockServer(ABC):
    """A mock upstream: lifecycle, fault injection, request log and control plane.

    The socket is bound at construction, so ``base_url`` is known (port 0 picks a
    free port) before ``start()``. Subclasses implement the wire format: ``handle``
    for business requests, ``inspect`` to find the person and business reference
    in a request, ``fault_response`` for injected errors, and ``state`` /
    ``reset_state`` for their in-memory data. Requests under ``/__mock__/`` are the
    unsigned control plane and never see faults or the request log.
    """

    dialect: ClassVar[str]

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.faults = FaultBook()
        self.requests = RequestLog()
        self._lifecycle = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._httpd = _HTTPServer((host, port), self)
        self._control_routes = {
            ("POST", "/__mock__/faults"): self._add_fault,
            ("DELETE", "/__mock__/faults"): self._clear_faults,
            ("GET", "/__mock__/requests"): self._list_requests,
            ("POST", "/__mock__/reset"): self._reset,
            ("GET", "/__mock__/state"): self._dump_state,
        }

    # Lifecycle

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        """Serve in a daemon thread; calling it again while serving does nothing."""
        with self._lifecycle:
            if self._stopped:
                raise RuntimeError("a stopped mock server cannot be restarted")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._httpd.serve_forever,
                    kwargs={"poll_interval": 0.05},
                    name=f"mock-{self.dialect}-{self.port}",
                    daemon=True,
                )
                self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and any kept-alive connections."""
        with self._lifecycle:
            if self._stopped:
                return
            self._stopped = True
            if self._thread is not None:
                self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.close_connections()
            if self._thread is not None:
                self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # Test helpers

    def count(self, path: str | None = None, code: str | None = None, operation: str | None = None) -> int:
        """How many logged requests hit ``path``, were answered ``code`` and named ``operation``."""
        return sum(
            1
            for record in self.requests
            if (path is None or record.path == path)
            and (code is None or record.code == code)
            and (operation is None or record.operation == operation)
        )

    def reset(self) -> None:
        """Clear faults and the request log, and restore the seeded state."""
        self.faults.clear()
        self.requests.clear()
        self.reset_state()

    def describe(self) -> str:
        """One line telling a human where the mock listens."""
        return f"{self.dialect} mock at {self.base_url}"

    # Dialect hooks

    @abstractmethod
    def handle(self, request: Request) -> Response:
        """Answer a business request in the dialect's wire format."""

    @abstractmethod
    def inspect(self, request: Request) -> RequestKeys:
        """Best-effort extraction of the person id, business reference and operation."""

    @abstractmethod
    def fault_response(self, fault: Fault) -> Response:
        """The dialect's answer for an ``error`` or ``rate_limit`` fault."""

    @abstractmethod
    def state(self) -> object:
        """A JSON-ready dump of the in-memory state, with personal data masked."""

    @abstractmethod
    def reset_state(self) -> None:
        """Restore the state the server started with."""

    # Request flow

    def dispatch(self, request: Request) -> Response | None:
        """Answer one request; None means: close the connection without answering."""
        if request.path.startswith(CONTROL_PREFIX):
            return self._control(request)
        keys = self.inspect(request)
        fired = self.faults.take(request.path, keys.person_id, keys.operation)
        for fault in fired:
            if fault.kind is FaultKind.LATENCY:
                time.sleep(fault.latency_ms / 1000)
        outcome = next((fault for fault in fired if fault.is_outcome), None)
        kind = outcome.kind if outcome is not None else None
        if kind is FaultKind.DROP:
            self._log(request, keys, DROPPED, None)
            return None
        if outcome is not None and kind in (FaultKind.ERROR, FaultKind.RATE_LIMIT):
            response = self.fault_response(outcome)
        else:
            response = self.handle(request)
        if kind is FaultKind.DROP_AFTER:
            self._log(request, keys, DROPPED, None)
            return None
        request_id = request.headers.get("X-Request-ID")
        if request_id:
            response = response.with_header("X-Request-ID", request_id)
        self._log(request, keys, response.code, response.status)
        return response

    def _log(self, request: Request, keys: RequestKeys, code: str, status: int | None) -> None:
        self.requests.append(
            RequestRecord(
                method=request.method,
                path=request.path,
                code=code,
                http_status=None if status is None else int(status),
                biz_no=keys.biz_no,
                at=time.time(),
                request_id=request.headers.get("X-Request-ID"),
                operation=keys.operation,
            )
        )

    # Control plane

    def _control(self, request: Request) -> Response:
        action = self._control_routes.get((request.method, request.path))
        if action is not None:
            return action(request)
        if any(path == request.path for _, path in self._control_routes):
            return Response.json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "method not allowed"})
        return Response.json(HTTPStatus.NOT_FOUND, {"error": "unknown control endpoint"})

    def _add_fault(self, request: Request) -> Response:
        try:
            fault = Fault.from_json(json.loads(request.body))
        except (ValueError, TypeError) as exc:
            return Response.json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        self.faults.add(fault)
        return Response.json(HTTPStatus.CREATED, fault.to_json())

    def _clear_faults(self, request: Request) -> Response:
        self.faults.clear()
        return Response(status=HTTPStatus.NO_CONTENT)

    def _list_requests(self, request: Request) -> Response:
        return Response.json(HTTPStatus.OK, [dataclasses.asdict(record) for record in self.requests])

    def _reset(self, request: Request) -> Response:
        self.reset()
        return Response(status=HTTPStatus.NO_CONTENT)

    def _dump_state(self, request: Request) -> Response:
        return Response.json(HTTPStatus.OK, self.state())
