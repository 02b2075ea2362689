"""``JsonHmacBureau``: a mock social-insurance bureau speaking json-hmac.

Written from docs/dialects/json-hmac.md alone. One instance serves one region,
keeps all state in memory and can be started on port 0 inside a test.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from mocks.corrections import correct_contributions
from mocks.faults import Fault, FaultKind
from mocks.json_hmac import wire
from mocks.json_hmac.signing import Verifier
from mocks.json_hmac.store import Enrolment, PaymentConfirmation, Store, china_date
from mocks.json_hmac.wire import BureauError
from mocks.resident_id import has_valid_check_digit
from mocks.server import MockServer, Request, RequestKeys, Response

DEFAULT_APP_ID = "hgw-sandbox"
_REGION = re.compile(r"[0-9]{6}")
# Corrections name statuses and insurance types in the gateway's words (or the wire's codes).
_PAY_STATUS_CODES = {"paid": "1", "late": "2", "unpaid": "3"}
_TYPE_CODES = {"pension": "110", "unemployment": "210", "medical": "310", "work_injury": "410", "maternity": "510"}
_PERIOD = re.compile(r"([0-9]{4})-?(0[1-9]|1[0-2])")


def sandbox_secret(region: str) -> str:
    """The well-known test secret of a sandbox region; never a real credential."""
    return f"sandbox-secret-{region}"


@dataclass(frozen=True)
class _Route:
    method: str
    signed: bool
    handler: Callable[[Request], Response]


class JsonHmacBureau(MockServer):
    """A json-hmac bureau for one region, seeded from ``seeds/<region>.json``.

    ``clock`` drives the signature timestamp window, nonce expiry, acceptance
    dates and transfers, so tests can move time. A transfer out advances one stage
    (review, then funds) every ``transfer_step_seconds`` of that clock; tests may set
    the attribute. ``seed=False`` starts with no insured persons.
    """

    dialect = "json-hmac"

    def __init__(
        self,
        region: str,
        *,
        app_id: str = DEFAULT_APP_ID,
        app_secret: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        seed: bool = True,
        transfer_step_seconds: float = 2.0,
    ) -> None:
        if not _REGION.fullmatch(region):
            raise ValueError(f"region must be a six-digit code, got {region!r}")
        self.region = region
        self.app_id = app_id
        self.app_secret = app_secret if app_secret is not None else sandbox_secret(region)
        self._clock = clock
        self.transfer_step_seconds = transfer_step_seconds
        self._verifier = Verifier(self.app_id, self.app_secret, clock)
        self._store = Store(region, seed=seed, clock=clock, transfer_step=lambda: self.transfer_step_seconds)
        self._routes = {
            "/api/v1/ping": _Route("GET", signed=False, handler=self._ping),
            "/api/v1/insured/query": _Route("POST", signed=True, handler=self._insured_query),
            "/api/v1/enrolment/submit": _Route("POST", signed=True, handler=self._enrolment_submit),
            "/api/v1/enrolment/query": _Route("POST", signed=True, handler=self._enrolment_query),
            "/api/v1/declaration/submit": _Route("POST", signed=True, handler=self._declaration_submit),
            "/api/v1/declaration/query": _Route("POST", signed=True, handler=self._declaration_query),
            "/api/v1/transfer/out/submit": _Route("POST", signed=True, handler=self._transfer_out_submit),
            "/api/v1/transfer/out/query": _Route("POST", signed=True, handler=self._transfer_out_query),
            "/api/v1/transfer/in/submit": _Route("POST", signed=True, handler=self._transfer_in_submit),
            "/api/v1/transfer/in/query": _Route("POST", signed=True, handler=self._transfer_in_query),
            "/api/v1/contribution/query": _Route("POST", signed=True, handler=self._contribution_query),
            "/api/v1/contribution/payment/notify": _Route("POST", signed=True, handler=self._payment_notify),
            "/api/v1/contribution/payment/query": _Route("POST", signed=True, handler=self._payment_query),
        }
        super().__init__(host=host, port=port)
        self._control_routes[("POST", "/__mock__/contributions")] = lambda request: correct_contributions(
            request, self.set_contribution_status
        )

    def enrolments(self) -> list[Enrolment]:
        """The accepted enrolments, in acceptance order (unmasked: for in-process tests)."""
        return self._store.enrolments()

    def contribution_payments(self) -> list[PaymentConfirmation]:
        """Every payment notice as decided, in order of arrival (for in-process tests)."""
        return self._store.payments()

    def set_contribution_status(
        self,
        id_number: str,
        period: str,
        status: str,
        insurance_type: str | None = None,
        *,
        paid_on: dt.date | str | None = None,
    ) -> list[dict[str, Any]]:
        """Correct a person's month as a bureau clerk would (e.g. a late payment made good).

        ``period`` is ``YYYY-MM`` or ``yyyyMM``; ``status`` ``paid``, ``late`` or ``unpaid``;
        ``insurance_type`` a type (``pension`` or ``110``…), or None for every type the
        person holds that month; ``paid_on`` the date received (a date, ``YYYY-MM-DD`` or
        ``yyyyMMdd``), by default the one on file or today. Returns the corrected months
        in the wire's form; ``LookupError`` if the bureau holds no such person or month,
        ``ValueError`` for a value it cannot read."""
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

    def describe(self) -> str:
        line = f"json-hmac mock bureau, region {self.region}: {self.base_url} app_id={self.app_id}"
        # The sandbox secret is public test data; a caller-chosen secret is never printed.
        if self.app_secret == sandbox_secret(self.region):
            line += f" app_secret={self.app_secret}"
        return line

    # MockServer hooks

    def handle(self, request: Request) -> Response:
        route = self._routes.get(request.path)
        if route is None:
            return wire.failure(wire.MALFORMED, detail="unknown path", status=HTTPStatus.NOT_FOUND)
        if request.method != route.method:
            return wire.failure(
                wire.MALFORMED, detail=f"use {route.method}", status=HTTPStatus.METHOD_NOT_ALLOWED
            )
        try:
            if route.signed:
                self._verifier.verify(request)
            return route.handler(request)
        except BureauError as error:
            return error.response()

    def inspect(self, request: Request) -> RequestKeys:
        if not request.body:
            return RequestKeys()
        try:
            obj = json.loads(request.body)
        except (ValueError, RecursionError):
            return RequestKeys()
        if not isinstance(obj, dict):
            return RequestKeys()
        person_id, biz_no = obj.get("idCardNo"), obj.get("bizNo")
        details = obj.get("details")
        if person_id is None and isinstance(details, list) and details and isinstance(details[0], dict):
            # A declaration names many persons; faults match on its first line's.
            person_id = details[0].get("idCardNo")
        return RequestKeys(
            person_id=person_id if isinstance(person_id, str) else None,
            biz_no=biz_no if isinstance(biz_no, str) else None,
        )

    def fault_response(self, fault: Fault) -> Response:
        if fault.kind is FaultKind.RATE_LIMIT:
            return wire.failure(wire.RATE_LIMITED, headers={"Retry-After": str(fault.retry_after)})
        return wire.failure(wire.BUREAU_FAILURE, status=fault.status)

    def state(self) -> object:
        return {
            "dialect": self.dialect,
            "region": self.region,
            "enrolments": [enrolment.masked() for enrolment in self._store.enrolments()],
            **self._store.snapshot(),
        }

    def reset_state(self) -> None:
        self._store.reset()
        self._verifier.nonces.clear()

    # Endpoints

    def _ping(self, request: Request) -> Response:
        return wire.success({"region": self.region}, msg="pong")

    def _insured_query(self, request: Request) -> Response:
        query = wire.parse_insured_query(request.body)
        if not has_valid_check_digit(query.id_number):
            raise BureauError(wire.BAD_CHECK_DIGIT)
        records = self._store.records(query.id_number, query.name)
        first = (query.page_no - 1) * query.page_size
        page = records[first : first + query.page_size]
        return wire.success(
            {
                "total": len(records),
                "pageNo": query.page_no,
                "pageSize": query.page_size,
                "records": [record.to_wire() for record in page],
            }
        )

    def _enrolment_submit(self, request: Request) -> Response:
        submit = wire.parse_enrolment_submit(request.body)
        if not has_valid_check_digit(submit.id_number):
            raise BureauError(wire.BAD_CHECK_DIGIT)
        return wire.success(self._store.enrol(submit, china_date(self._clock())).acceptance())

    def _enrolment_query(self, request: Request) -> Response:
        enrolment = self._store.enrolment(wire.parse_enrolment_query(request.body))
        if enrolment is None:
            raise BureauError(wire.NO_SUCH_ENROLMENT)
        return wire.success(enrolment.acceptance())

    def _declaration_submit(self, request: Request) -> Response:
        return wire.success(self._store.declare(wire.parse_declaration_submit(request.body)))

    def _declaration_query(self, request: Request) -> Response:
        answer = self._store.declaration(wire.parse_biz_no_query(request.body))
        if answer is None:
            raise BureauError(wire.NO_SUCH_ENROLMENT)
        return wire.success(answer)

    def _transfer_out_submit(self, request: Request) -> Response:
        submit = wire.parse_transfer_out_submit(request.body, self.region)
        if not has_valid_check_digit(submit.id_number):
            raise BureauError(wire.BAD_CHECK_DIGIT)
        return wire.success(self._store.transfer_out(submit))

    def _transfer_out_query(self, request: Request) -> Response:
        answer = self._store.transfer_out_status(*wire.parse_transfer_out_query(request.body))
        if answer is None:
            raise BureauError(wire.NO_SUCH_ENROLMENT)
        return wire.success(answer)

    def _transfer_in_submit(self, request: Request) -> Response:
        submit = wire.parse_transfer_in_submit(request.body, self.region)
        if not has_valid_check_digit(submit.id_number):
            raise BureauError(wire.BAD_CHECK_DIGIT)
        return wire.success(self._store.transfer_in(submit))

    def _transfer_in_query(self, request: Request) -> Response:
        answer = self._store.transfer_in_status(wire.parse_biz_no_query(request.body))
        if answer is None:
            raise BureauError(wire.NO_SUCH_ENROLMENT)
        return wire.success(answer)

    def _payment_notify(self, request: Request) -> Response:
        notice = wire.parse_payment_notify(request.body)
        return wire.success(self._store.notify_payment(notice, china_date(self._clock())))

    def _payment_query(self, request: Request) -> Response:
        answer = self._store.payment(wire.parse_biz_no_query(request.body))
        if answer is None:
            raise BureauError(wire.NO_SUCH_ENROLMENT)
        return wire.success(answer)

    # Control plane

    def _contribution_query(self, request: Request) -> Response:
        query = wire.parse_contribution_query(request.body)
        if not has_valid_check_digit(query.id_number):
            raise BureauError(wire.BAD_CHECK_DIGIT)
        months = self._store.months(query)
        first = (query.page_no - 1) * query.page_size
        return wire.success(
            {
                "total": len(months),
                "pageNo": query.page_no,
                "pageSize": query.page_size,
                "months": [month.to_wire() for month in months[first : first + query.page_size]],
            }
        )


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
