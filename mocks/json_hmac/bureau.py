"""``JsonHmacBureau``: a mock social-insurance bureau speaking json-hmac.

Written from docs/dialects/json-hmac.md alone. One instance serves one region,
keeps all state in memory and can be started on port 0 inside a test.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

from mocks.faults import Fault, FaultKind
from mocks.json_hmac import wire
from mocks.json_hmac.signing import Verifier
from mocks.json_hmac.store import Enrolment, Store, china_date
from mocks.json_hmac.wire import BureauError
from mocks.resident_id import has_valid_check_digit
from mocks.server import MockServer, Request, RequestKeys, Response

DEFAULT_APP_ID = "hgw-sandbox"
_REGION = re.compile(r"[0-9]{6}")


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
        }
        super().__init__(host=host, port=port)

    def enrolments(self) -> list[Enrolment]:
        """The accepted enrolments, in acceptance order (unmasked: for in-process tests)."""
        return self._store.enrolments()

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
