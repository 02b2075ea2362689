"""``XmlGbkBureau``: a mock social-insurance bureau speaking xml-gbk.

Written from docs/dialects/xml-gbk.md alone. One instance serves one region,
keeps all state in memory and can be started on port 0 inside a test.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from xml.etree.ElementTree import Element

from mocks.corrections import correct_contributions
from mocks.faults import Fault, FaultKind
from mocks.resident_id import has_valid_check_digit
from mocks.server import MockServer, Request, RequestKeys, Response
from mocks.xml_gbk import wire
from mocks.xml_gbk.sessions import Sessions
from mocks.xml_gbk.store import Enrolment, Payment, Store
from mocks.xml_gbk.wire import BureauError

GATEWAY_PATH = "/si/gateway"
DEFAULT_USER_ID = "hgw-sandbox"
DEFAULT_TOKEN_TTL = 600.0
# The bureau keeps China Standard Time (no DST), which dates acceptances.
_CHINA = timezone(timedelta(hours=8))
_REGION = re.compile(r"[0-9]{6}")
# Corrections name statuses and insurance types in the gateway's words (or the wire's codes).
_PAY_STATUS_CODES = {"paid": wire.PAID, "late": wire.PAID_LATE, "unpaid": wire.UNPAID}
_TYPE_CODES = {"pension": "110", "unemployment": "210", "medical": "310", "work_injury": "410", "maternity": "510"}
_PERIOD = re.compile(r"([0-9]{4})-?(0[1-9]|1[0-2])")


def sandbox_password(region: str) -> str:
    """The well-known test password of a sandbox region; never a real credential."""
    return f"sandbox-password-{region}"


@dataclass(frozen=True)
class _Incoming:
    """One request read as far as it goes: the document, or why it is refused."""

    request: Request
    root: Element | None
    error: BureauError | None

    def head(self, tag: str) -> str | None:
        return wire.peek(self.root, "Head", tag)

    def echo(self) -> dict[str, str]:
        """The TransCode and SerialNo to repeat in the response head."""
        return {
            "trans_code": wire.echoable(self.head("TransCode")),
            "serial_no": wire.echo_serial_no(self.head("SerialNo")),
        }


class XmlGbkBureau(MockServer):
    """An xml-gbk bureau for one region, seeded from ``seeds/<region>.json``.

    Every call is ``POST /si/gateway``; the transaction is the document's
    ``TransCode``. ``clock`` drives token expiry and acceptance dates so tests can
    move time; ``token_ttl`` is the session lifetime in seconds (answered as
    ``ExpiresIn``) and ``expire_tokens()`` expires every token issued so far.
    ``seed=False`` starts with no insured persons. ``transfer_step_seconds`` is the
    accelerated clock of transfers out: one stage per step on ``clock`` (review after
    one step, funds transferred after two), settable while the bureau runs.

    ``user_id`` / ``password`` are the credentials ``LOGIN`` accepts; ``app_id`` /
    ``app_secret`` are aliases so the shared CLI and sandbox can pass credentials
    the same way to every dialect.

    Faults: a fault's route may be ``*``, the path ``/si/gateway`` (every
    transaction), or a TransCode such as ``E001`` (only that transaction; the
    request log records it as ``operation``; D001..P002 alike). ``rate_limit`` answers ``S503`` with
    HTTP 503 and ``Retry-After`` (this dialect's busy signal), ``error`` answers
    ``S999`` with the fault's HTTP status; neither applies anything. ``drop_after``
    applies the transaction (an ``E001`` enrols, a ``D001`` declares, a ``T001`` applies)
    and then closes without answering.
    """

    dialect = "xml-gbk"

    def __init__(
        self,
        region: str,
        *,
        user_id: str = DEFAULT_USER_ID,
        password: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        seed: bool = True,
        token_ttl: float = DEFAULT_TOKEN_TTL,
        app_id: str | None = None,
        app_secret: str | None = None,
        transfer_step_seconds: float = 2.0,
    ) -> None:
        if not _REGION.fullmatch(region):
            raise ValueError(f"region must be a six-digit code, got {region!r}")
        if app_id is not None:
            if user_id not in (DEFAULT_USER_ID, app_id):
                raise ValueError("give user_id or its alias app_id, not both")
            user_id = app_id
        if app_secret is not None:
            if password not in (None, app_secret):
                raise ValueError("give password or its alias app_secret, not both")
            password = app_secret
        if not user_id or password == "":
            raise ValueError("user_id and password must not be empty")
        if not token_ttl > 0:
            raise ValueError(f"token_ttl must be positive, got {token_ttl!r}")
        self.region = region
        self.user_id = user_id
        self.password = password if password is not None else sandbox_password(region)
        self._clock = clock
        self._sessions = Sessions(clock, token_ttl)
        self.transfer_step_seconds = transfer_step_seconds
        self._store = Store(region, seed=seed, clock=clock, transfer_step=lambda: self.transfer_step_seconds)
        self._local = threading.local()
        self._transactions: dict[str, Callable[[Element], Element]] = {
            wire.LOGIN: self._login,
            wire.Q001: self._q001,
            wire.Q002: self._q002,
            wire.E001: self._e001,
            wire.E002: self._e002,
            wire.D001: self._d001,
            wire.D002: self._d002,
            wire.T001: self._t001,
            wire.T002: self._t002,
            wire.T003: self._t003,
            wire.T004: self._t004,
            wire.P001: self._p001,
            wire.P002: self._p002,
        }
        super().__init__(host=host, port=port)
        self._control_routes[("POST", "/__mock__/contributions")] = lambda request: correct_contributions(
            request, self.set_contribution_status
        )

    @property
    def app_id(self) -> str:
        """Alias of ``user_id``."""
        return self.user_id

    @property
    def app_secret(self) -> str:
        """Alias of ``password``."""
        return self.password

    @property
    def token_ttl(self) -> float:
        return self._sessions.ttl

    def expire_tokens(self) -> None:
        """Expire every session token issued so far (later logins work as usual)."""
        self._sessions.expire_all()

    def enrolments(self) -> list[Enrolment]:
        """The accepted enrolments, in acceptance order (unmasked: for in-process tests)."""
        return self._store.enrolments()

    def contribution_payments(self) -> list[Payment]:
        """Every confirmed payment notice, in order (unmasked: for in-process tests)."""
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
        by default the one on file or today. Returns the corrected months as their
        ``Q002`` elements would read; ``LookupError`` if the bureau holds no such person
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
            id_number, match.group(1) + match.group(2), _PAY_STATUS_CODES[status], code, _iso_date(paid_on)
        )
        return [
            {
                "Period": m.period,
                "InsType": m.ins_type,
                "PayStatus": m.pay_status,
                "EmployerAmount": wire.money(m.employer_amount),
                "PersonalAmount": wire.money(m.personal_amount),
                "PaidDate": m.paid_date,
            }
            for m in months
        ]

    def describe(self) -> str:
        line = f"xml-gbk mock bureau, region {self.region}: {self.base_url}{GATEWAY_PATH} user_id={self.user_id}"
        # The sandbox password is public test data; a caller-chosen password is never printed.
        if self.password == sandbox_password(self.region):
            line += f" password={self.password}"
        return line

    # MockServer hooks

    def dispatch(self, request: Request) -> Response | None:
        try:
            return super().dispatch(request)
        finally:
            self._local.incoming = None

    def handle(self, request: Request) -> Response:
        if request.path != GATEWAY_PATH:
            return wire.respond(wire.MALFORMED, detail="unknown path", status=HTTPStatus.NOT_FOUND)
        if request.method != "POST":
            return wire.respond(wire.MALFORMED, detail="use POST", status=HTTPStatus.METHOD_NOT_ALLOWED)
        incoming = self._incoming(request)
        try:
            wire.check_content_type(request.headers)
            if incoming.root is None:
                raise incoming.error or BureauError(wire.MALFORMED)
            envelope = wire.read_envelope(incoming.root)
            if envelope.trans_code != wire.LOGIN and not self._sessions.is_valid(envelope.session_token):
                raise BureauError(wire.SESSION_INVALID)
            body = self._transactions[envelope.trans_code](envelope.body)
        except BureauError as error:
            return wire.respond(error.code, detail=error.detail, **incoming.echo())
        return wire.respond(wire.OK, trans_code=envelope.trans_code, serial_no=envelope.serial_no, body=body)

    def inspect(self, request: Request) -> RequestKeys:
        if request.path != GATEWAY_PATH or not request.body:
            return RequestKeys()
        incoming = self._incoming(request)
        return RequestKeys(
            person_id=wire.peek(incoming.root, "Body", "IdNo"),
            biz_no=wire.peek(incoming.root, "Body", "BizNo"),
            operation=wire.echoable(incoming.head("TransCode")) or None,
        )

    def fault_response(self, fault: Fault) -> Response:
        incoming: _Incoming | None = getattr(self._local, "incoming", None)
        echo = incoming.echo() if incoming is not None else {}
        if fault.kind is FaultKind.RATE_LIMIT:
            return wire.respond(wire.BUSY, headers={"Retry-After": str(fault.retry_after)}, **echo)
        return wire.respond(wire.BUREAU_FAILURE, status=fault.status, **echo)

    def state(self) -> object:
        return {
            "dialect": self.dialect,
            "region": self.region,
            "sessions": len(self._sessions),
            "transfer_step_seconds": self.transfer_step_seconds,
            **self._store.masked_state(),
        }

    def reset_state(self) -> None:
        self._store.reset()
        self._sessions.clear()

    # Reading requests

    def _incoming(self, request: Request) -> _Incoming:
        """The request's document, parsed once per request (inspect, handle and faults share it)."""
        cached: _Incoming | None = getattr(self._local, "incoming", None)
        if cached is not None and cached.request is request:
            return cached
        try:
            incoming = _Incoming(request, wire.read_document(request.body), None)
        except BureauError as error:
            incoming = _Incoming(request, None, error)
        self._local.incoming = incoming
        return incoming

    # Transactions

    def _login(self, body: Element) -> Element:
        login = wire.parse_login(body)
        user_ok = hmac.compare_digest(login.user_id.encode(), self.user_id.encode())
        password_ok = hmac.compare_digest(login.password.encode(), self.password.encode())
        if not (user_ok and password_ok):
            raise BureauError(wire.LOGIN_REFUSED)
        answer = Element("Body")
        wire.add_leaf(answer, "SessionToken", self._sessions.issue())
        wire.add_leaf(answer, "ExpiresIn", str(int(self._sessions.ttl)))
        return answer

    def _q001(self, body: Element) -> Element:
        query = wire.parse_person_query(body)
        if not has_valid_check_digit(query.id_number):
            raise BureauError(wire.BAD_CHECK_DIGIT)
        answer = Element("Body")
        records = Element("Records")
        for record in self._store.records(query.id_number, query.name):
            record.to_xml(records)
        answer.append(records)
        return answer

    def _q002(self, body: Element) -> Element:
        query = wire.parse_months_query(body)
        if not has_valid_check_digit(query.id_number):
            raise BureauError(wire.BAD_CHECK_DIGIT)
        answer = Element("Body")
        months = Element("Months")
        for month in self._store.months(query.id_number, query.name, query.from_period, query.to_period):
            month.to_xml(months)
        answer.append(months)
        return answer

    def _e001(self, body: Element) -> Element:
        request = wire.parse_enrolment(body)
        accept_date = datetime.fromtimestamp(self._clock(), _CHINA).strftime("%Y-%m-%d")
        return self._store.enrol(request, accept_date).acceptance()

    def _e002(self, body: Element) -> Element:
        enrolment = self._store.enrolment(wire.parse_enrolment_query(body))
        if enrolment is None:
            raise BureauError(wire.NO_SUCH_BUSINESS)
        return enrolment.acceptance()

    def _d001(self, body: Element) -> Element:
        return self._store.declare(wire.parse_declaration(body)).answer()

    def _d002(self, body: Element) -> Element:
        declaration = self._store.declaration(wire.parse_biz_no_query(body))
        if declaration is None:
            raise BureauError(wire.NO_SUCH_BUSINESS)
        return declaration.answer()

    def _t001(self, body: Element) -> Element:
        return self._store.transfer_out(wire.parse_transfer_out(body, self.region)).answer()

    def _t002(self, body: Element) -> Element:
        transfer = self._store.transfer_out_state(wire.parse_transfer_query(body))
        if transfer is None:
            raise BureauError(wire.NO_SUCH_BUSINESS)
        return transfer.answer()

    def _t003(self, body: Element) -> Element:
        return self._store.transfer_in(wire.parse_transfer_in(body, self.region)).answer()

    def _t004(self, body: Element) -> Element:
        transfer = self._store.transfer_in_state(wire.parse_biz_no_query(body))
        if transfer is None:
            raise BureauError(wire.NO_SUCH_BUSINESS)
        return transfer.answer()

    def _p001(self, body: Element) -> Element:
        return self._store.notify_payment(wire.parse_payment_notice(body)).answer()

    def _p002(self, body: Element) -> Element:
        payment = self._store.payment(wire.parse_biz_no_query(body))
        if payment is None:
            raise BureauError(wire.NO_SUCH_BUSINESS)
        return payment.answer()

    # Control plane



def _iso_date(value: dt.date | str | None) -> str | None:
    """A date given as a date, ``YYYY-MM-DD`` or ``yyyyMMdd`` in the wire's ``yyyy-MM-dd``."""
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    if not isinstance(value, str):
        raise ValueError("paid_on must be a date")
    for pattern in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return dt.datetime.strptime(value, pattern).date().isoformat()
        except ValueError:
            continue
    raise ValueError("paid_on must be YYYY-MM-DD")
