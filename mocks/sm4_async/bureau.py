"""``Sm4AsyncBureau``: a mock social-insurance bureau speaking sm4-async.

Written from docs/dialects/sm4-async.md alone. One instance serves one region,
keeps all state in memory and can be started on port 0 inside a test.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from mocks.corrections import correct_contributions
from mocks.faults import Fault, FaultKind
from mocks.resident_id import has_valid_check_digit
from mocks.server import MockServer, Request, RequestKeys, Response
from mocks.sm4_async import crypto, wire
from mocks.sm4_async.store import Store, Task, Transfer
from mocks.sm4_async.wire import BureauError, Codec

DEFAULT_APPID = "hgw-sandbox"
_REGION = re.compile(r"[0-9]{6}")
# Corrections name statuses and insurance types in the gateway's words (or the wire's codes).
_PAY_STATUS_CODES = {"paid": "1", "late": "2", "unpaid": "3"}
_TYPE_CODES = {"pension": "110", "unemployment": "210", "medical": "310", "work_injury": "410", "maternity": "510"}
_PERIOD = re.compile(r"([0-9]{4})-?(0[1-9]|1[0-2])")


def sandbox_sm4_key(region: str) -> str:
    """The well-known SM4 test key of a sandbox region (32 hex characters); never a real key."""
    return hashlib.sha256(f"hgw-sandbox-sm4-{region}".encode()).hexdigest()[:32]


def sandbox_mac_key(region: str) -> str:
    """The well-known MAC test secret of a sandbox region; never a real credential."""
    return f"sandbox-mac-{region}"


class _Halted(Exception):
    """The server stopped while a request was being held; answer nothing."""


@dataclass(frozen=True)
class _Incoming:
    """One request's payload, decrypted if possible but not yet authenticated."""

    request: Request
    payload: dict[str, Any] | None


class Sm4AsyncBureau(MockServer):
    """An sm4-async bureau for one region, seeded from ``seeds/<region>.json``.

    Services: ``POST /api/person/query``, ``/api/contribution/query``,
    ``/api/enrolment/submit``, ``/api/declaration/submit``,
    ``/api/transfer-in/submit``, ``/api/contribution-payment/submit``,
    ``/api/task/result``, ``/api/transfer-out/submit`` and ``/api/transfer-out/query``. Requests are checked in the
    document's order (form fields ``40005``, ``appid`` ``40004``, signature
    ``40001``, timestamp ``40002``, decryption ``40003``, JSON fields ``40005``);
    every answer is signed and a success's ``data`` is sealed with a fresh IV.

    Submissions are asynchronous: a task is ``PROCESSING`` until
    ``processing_delay`` seconds of ``clock`` after its submission, then decided in
    submission order (``SUCCESS`` creating the records, or ``FAILED`` with ``61001``
    or ``61005``; a declaration line by line). ``settle()`` decides every pending
    task at once. A transfer out moves one stage per ``transfer_step_seconds`` of
    ``clock`` (review, then fund transfer), also lazily. ``clock`` also drives the
    timestamp window and acceptance dates.

    Persons seeded with ``"slow": true`` make ``person/query`` and
    ``contribution/query`` about them wait ``slow_seconds`` (real time) before
    answering; ``stop()`` cuts the wait short and the request is dropped.

    ``appid`` / ``sm4_key`` / ``mac_key`` are the issued credentials (the names the
    adapter is configured with); ``app_id`` / ``app_secret`` are aliases of
    ``appid`` / ``mac_key`` for the shared CLI and sandbox. Fault routes are ``*``
    or a service path such as ``/api/enrolment/submit``; ``rate_limit`` answers
    ``42900`` with 429 and ``Retry-After``, ``error`` answers ``50000`` with the
    fault's status, and ``drop_after`` on a submit registers the task and then
    closes the connection.
    """

    dialect = "sm4-async"

    def __init__(
        self,
        region: str,
        *,
        appid: str = DEFAULT_APPID,
        sm4_key: str | None = None,
        mac_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        seed: bool = True,
        processing_delay: float = 0.5,
        slow_seconds: float = 30.0,
        transfer_step_seconds: float = 2.0,
        app_id: str | None = None,
        app_secret: str | None = None,
    ) -> None:
        if not _REGION.fullmatch(region):
            raise ValueError(f"region must be a six-digit code, got {region!r}")
        if app_id is not None:
            if appid not in (DEFAULT_APPID, app_id):
                raise ValueError("give appid or its alias app_id, not both")
            appid = app_id
        if app_secret is not None:
            if mac_key not in (None, app_secret):
                raise ValueError("give mac_key or its alias app_secret, not both")
            mac_key = app_secret
        if not appid or mac_key == "":
            raise ValueError("appid and mac_key must not be empty")
        if not processing_delay >= 0 or not slow_seconds >= 0 or not transfer_step_seconds >= 0:
            raise ValueError("processing_delay, slow_seconds and transfer_step_seconds must not be negative")
        self.region = region
        self.appid = appid
        self.sm4_key = sm4_key if sm4_key is not None else sandbox_sm4_key(region)
        self.mac_key = mac_key if mac_key is not None else sandbox_mac_key(region)
        self.processing_delay = processing_delay
        self.slow_seconds = slow_seconds
        self._codec = Codec(crypto.parse_sm4_key(self.sm4_key), self.mac_key)
        self._clock = clock
        self._store = Store(
            region, seed=seed, clock=clock, processing_delay=processing_delay, transfer_step=transfer_step_seconds
        )
        self._halt = threading.Event()
        self._local = threading.local()
        self._services: dict[str, Callable[[dict[str, Any]], object]] = {
            "/api/person/query": self._person_query,
            "/api/contribution/query": self._contribution_query,
            "/api/enrolment/submit": self._enrolment_submit,
            "/api/declaration/submit": self._declaration_submit,
            "/api/transfer-in/submit": self._transfer_in_submit,
            "/api/task/result": self._task_result,
            "/api/transfer-out/submit": self._transfer_out_submit,
            "/api/transfer-out/query": self._transfer_out_query,
            "/api/contribution-payment/submit": self._payment_submit,
        }
        super().__init__(host=host, port=port)
        self._control_routes[("POST", "/__mock__/contributions")] = lambda request: correct_contributions(
            request, self.set_contribution_status
        )

    @property
    def app_id(self) -> str:
        """Alias of ``appid``."""
        return self.appid

    @property
    def app_secret(self) -> str:
        """Alias of ``mac_key``."""
        return self.mac_key

    @property
    def transfer_step_seconds(self) -> float:
        """Seconds of ``clock`` per transfer-out stage (the accelerated clock); settable."""
        return self._store.transfer_step

    @transfer_step_seconds.setter
    def transfer_step_seconds(self, seconds: float) -> None:
        if not seconds >= 0:
            raise ValueError("transfer_step_seconds must not be negative")
        self._store.transfer_step = seconds

    # Test helpers

    def tasks(self) -> list[Task]:
        """Every task in submission order, due ones decided (unmasked: for in-process tests)."""
        return self._store.tasks()

    def transfers(self) -> list[Transfer]:
        """Every transfer out in submission order, due stages played (unmasked)."""
        return self._store.transfers()

    def contribution_payments(self) -> list[Task]:
        """Every payment notice task in submission order, due ones decided (for in-process tests)."""
        return self._store.payments()

    def set_contribution_status(
        self,
        id_number: str,
        period: str,
        status: str,
        insurance_type: str | None = None,
        *,
        paid_on: dt.date | str | None = None,
    ) -> list[dict[str, str]]:
        """Correct a person's month as a bureau clerk would (e.g. a late payment made good).

        ``period`` is ``YYYY-MM`` or ``yyyyMM``; ``status`` ``paid``, ``late`` or ``unpaid``;
        ``insurance_type`` a type (``pension`` or ``110``…), or None for every type the
        person holds that month; ``paid_on`` the date received (a date or ``YYYY-MM-DD``),
        by default the one on file or today. Returns the corrected months as
        ``contribution/query`` would; ``LookupError`` if the bureau holds no such person
        or month, ``ValueError`` for a value it cannot read."""
        if status not in _PAY_STATUS_CODES:
            raise ValueError(f"status must be one of {sorted(_PAY_STATUS_CODES)}")
        match = _PERIOD.fullmatch(period) if isinstance(period, str) else None
        if match is None:
            raise ValueError("period must be YYYY-MM")
        code = None
        if insurance_type is not None:
            code = _TYPE_CODES.get(insurance_type, insurance_type)
            if code not in _TYPE_CODES.values():
                raise ValueError(f"insurance_type must be one of {sorted(_TYPE_CODES)}")
        months = self._store.set_contribution_status(
            id_number, match.group(1) + match.group(2), _PAY_STATUS_CODES[status], code, _wire_date(paid_on)
        )
        return [month.to_wire() for month in months]

    def settle(self) -> list[Task]:
        """Decide every pending task now, whatever the clock says; returns all tasks."""
        return self._store.settle()

    def describe(self) -> str:
        line = f"sm4-async mock bureau, region {self.region}: {self.base_url} appid={self.appid}"
        # Sandbox keys are public test data; caller-chosen keys are never printed.
        if self.sm4_key == sandbox_sm4_key(self.region):
            line += f" sm4_key={self.sm4_key}"
        if self.mac_key == sandbox_mac_key(self.region):
            line += f" mac_key={self.mac_key}"
        return line

    def stop(self) -> None:
        self._halt.set()
        super().stop()

    # MockServer hooks

    def dispatch(self, request: Request) -> Response | None:
        try:
            return super().dispatch(request)
        except _Halted:
            return None
        finally:
            self._local.incoming = None

    def handle(self, request: Request) -> Response:
        service = self._services.get(request.path)
        if service is None:
            return self._codec.respond(wire.MALFORMED, detail="unknown service", status=HTTPStatus.NOT_FOUND)
        if request.method != "POST":
            return self._codec.respond(wire.MALFORMED, detail="use POST", status=HTTPStatus.METHOD_NOT_ALLOWED)
        try:
            payload = self._authenticate(request)
            return self._codec.respond(wire.OK, service(payload))
        except BureauError as error:
            return self._codec.failure(error)

    def inspect(self, request: Request) -> RequestKeys:
        payload = self._incoming(request).payload or {}
        person_id, biz_no = payload.get("idNo"), payload.get("bizNo")
        return RequestKeys(
            person_id=person_id if isinstance(person_id, str) else None,
            biz_no=biz_no if isinstance(biz_no, str) else None,
        )

    def fault_response(self, fault: Fault) -> Response:
        if fault.kind is FaultKind.RATE_LIMIT:
            return self._codec.respond(wire.RATE_LIMITED, headers={"Retry-After": str(fault.retry_after)})
        return self._codec.respond(wire.BUREAU_FAILURE, status=fault.status)

    def state(self) -> object:
        return {
            "dialect": self.dialect,
            "region": self.region,
            "tasks": [task.masked() for task in self._store.tasks()],
            "transfers_out": [transfer.masked() for transfer in self._store.transfers()],
        }

    def reset_state(self) -> None:
        self._store.reset()

    # Reading requests

    def _incoming(self, request: Request) -> _Incoming:
        """The payload if the form's ``data`` decrypts; read once per request (inspect and
        handle share it), trusted only after ``_authenticate``'s checks."""
        cached: _Incoming | None = getattr(self._local, "incoming", None)
        if cached is not None and cached.request is request:
            return cached
        form = wire.peek_form(request.body) if request.body else {}
        try:
            payload: dict[str, Any] | None = self._codec.open(form["data"]) if form.get("data") else None
        except BureauError:
            payload = None
        incoming = _Incoming(request, payload)
        self._local.incoming = incoming
        return incoming

    def _authenticate(self, request: Request) -> dict[str, Any]:
        """The request's JSON object once every check of the document has passed."""
        form = wire.read_form(request.body, request.headers)
        if not hmac.compare_digest(form["appid"].encode("utf-8"), self.appid.encode("utf-8")):
            raise BureauError(wire.UNKNOWN_APP)
        signed = {key: form[key] for key in ("appid", "data", "nonce", "timestamp")}
        if not crypto.same_signature(crypto.sign(self.mac_key, signed), form["sign"]):
            raise BureauError(wire.BAD_SIGNATURE)
        if abs(self._clock() * 1000 - int(form["timestamp"])) > wire.WINDOW_MS:
            raise BureauError(wire.STALE_TIMESTAMP)
        incoming = self._incoming(request)
        if incoming.payload is not None:
            return incoming.payload
        return self._codec.open(form["data"])  # raises the precise 40003

    def _hold_if_slow(self, id_number: str) -> None:
        """Keep a slow person's query waiting; give up (answer nothing) if the server stops."""
        if self._store.is_slow(id_number) and self._halt.wait(self.slow_seconds):
            raise _Halted

    # Services

    def _person_query(self, payload: dict[str, Any]) -> object:
        query = wire.parse_person_query(payload)
        if not has_valid_check_digit(query.id_number):
            raise BureauError(wire.BAD_CHECK_DIGIT)
        self._hold_if_slow(query.id_number)
        return {"records": [record.to_wire() for record in self._store.records(query.id_number, query.name)]}

    def _contribution_query(self, payload: dict[str, Any]) -> object:
        query = wire.parse_contribution_query(payload)
        if not has_valid_check_digit(query.id_number):
            raise BureauError(wire.BAD_CHECK_DIGIT)
        self._hold_if_slow(query.id_number)
        months = self._store.months(query.id_number, query.name, query.start_month, query.end_month)
        return {"months": [month.to_wire() for month in months]}

    def _enrolment_submit(self, payload: dict[str, Any]) -> object:
        submit = wire.parse_enrolment_submit(payload)
        if not has_valid_check_digit(submit.id_number):
            raise BureauError(wire.BAD_CHECK_DIGIT)
        return self._store.submit(submit).acknowledgement()

    def _task_result(self, payload: dict[str, Any]) -> object:
        task = self._store.task(wire.parse_task_query(payload))
        if task is None:
            raise BureauError(wire.NO_SUCH_TASK)
        return task.result()

    def _declaration_submit(self, payload: dict[str, Any]) -> object:
        return self._store.submit_declaration(wire.parse_declaration_submit(payload)).acknowledgement()

    def _transfer_in_submit(self, payload: dict[str, Any]) -> object:
        submit = wire.parse_transfer_in_submit(payload)
        if not has_valid_check_digit(submit.id_number):
            raise BureauError(wire.BAD_CHECK_DIGIT)
        return self._store.submit_transfer_in(submit).acknowledgement()

    def _transfer_out_submit(self, payload: dict[str, Any]) -> object:
        submit = wire.parse_transfer_out_submit(payload)
        if not has_valid_check_digit(submit.id_number):
            raise BureauError(wire.BAD_CHECK_DIGIT)
        return self._store.submit_transfer_out(submit).to_wire()

    def _transfer_out_query(self, payload: dict[str, Any]) -> object:
        transfer = self._store.transfer(wire.parse_transfer_query(payload))
        if transfer is None:
            raise BureauError(wire.NO_SUCH_TASK)
        return transfer.to_wire()

    def _payment_submit(self, payload: dict[str, Any]) -> object:
        return self._store.submit_payment(wire.parse_payment_submit(payload)).acknowledgement()

    # Control plane



def _wire_date(value: dt.date | str | None) -> str | None:
    """A date given as a date, ``YYYY-MM-DD`` or ``yyyyMMdd`` in the wire's ``yyyyMMdd``."""
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value.strftime("%Y%m%d")
    if not isinstance(value, str):
        raise ValueError("paid_on must be a date")
    for pattern in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return dt.datetime.strptime(value, pattern).strftime("%Y%m%d")
        except ValueError:
            continue
    raise ValueError("paid_on must be YYYY-MM-DD")
