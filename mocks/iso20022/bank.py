"""``Iso20022Bank``: Sandbox Bank A's host-to-host API, as a mock.

Written from docs/dialects/iso20022.md alone. Keeps all state in memory and can be
started on port 0 inside a test.

Steering from tests (in process):

- ``payments()`` / ``payment(end_to_end_id)``: the recorded payments (unmasked).
- ``balance(account)``, ``set_balance(account, amount)``: a client account's booked
  balance, and setting it (a correcting base, so history stays as it was).
- ``close_account(number)``, ``block_account(number)``, ``hold_account(number)``,
  ``reopen_account(number)``: the state of a client or creditor account.
- ``entries(account)``: a client account's booked entries.
- ``settle()``: take every payment through its remaining steps now.
- ``settle_seconds``: the length of one processing step (settable).

The same over the control plane: ``POST /__mock__/settle`` and
``POST /__mock__/accounts`` with ``{"account": "...", "state": "closed"}`` or
``{"account": "...", "balance": "100.00"}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from urllib.parse import unquote

from mocks.faults import Fault, FaultKind
from mocks.iso20022 import messages
from mocks.iso20022.ledger import (
    BLOCKED,
    CLOSED,
    HOLD,
    OPEN,
    REASONS,
    Duplicate,
    Entry,
    Ledger,
    Payment,
    UnknownAccount,
)
from mocks.iso20022.messages import BankError
from mocks.iso20022.signing import Verifier
from mocks.server import MockServer, Request, RequestKeys, Response

DEFAULT_API_KEY = "hgw-sandbox"
SANDBOX_SECRET = "sandbox-bank-a-secret"

PING = "/h2h/v1/ping"
PAYMENTS = "/h2h/v1/payments"
STATEMENTS = "/h2h/v1/statements"
_PAYMENT_PREFIX = PAYMENTS + "/"

# Operation names, so that faults can target a kind of call whatever its path.
UPLOAD = "pain.001"
STATUS = "pain.002"
STATEMENT = "camt.053"


class Iso20022Bank(MockServer):
    """Sandbox Bank A with its one corporate client (``api_key`` / ``api_secret``).

    ``clock`` drives the signature window, business days and the processing steps:
    a payment moves ``RCVD → ACSP`` (or ``RJCT``) after ``settle_seconds`` and
    ``ACSP → ACSC`` after another ``settle_seconds``.
    """

    dialect = "iso20022"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = SANDBOX_SECRET,
        settle_seconds: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not settle_seconds >= 0:
            raise ValueError("settle_seconds must not be negative")
        self.api_key = api_key
        self.api_secret = api_secret
        self.settle_seconds = settle_seconds
        self._clock = clock
        self._verifier = Verifier(api_key, api_secret, clock)
        self._ledger = Ledger(clock=clock, step=lambda: self.settle_seconds)
        messages.pain001_schema()  # loaded once per process, now rather than during the first upload
        super().__init__(host=host, port=port)
        self._control_routes[("POST", "/__mock__/settle")] = self._control_settle
        self._control_routes[("POST", "/__mock__/accounts")] = self._control_account

    def describe(self) -> str:
        line = f"iso20022 mock bank (Sandbox Bank A): {self.base_url} api_key={self.api_key}"
        if self.api_secret == SANDBOX_SECRET:  # public test data; a chosen secret is never printed
            line += f" api_secret={self.api_secret}"
        return line

    # -- steering -------------------------------------------------------------------------

    def payments(self) -> list[Payment]:
        return self._ledger.payments()

    def payment(self, end_to_end_id: str) -> Payment | None:
        return self._ledger.payment(end_to_end_id)

    def balance(self, account: str) -> Decimal:
        return self._ledger.balance(account)

    def set_balance(self, account: str, amount: Decimal | str) -> None:
        self._ledger.set_balance(account, Decimal(amount))

    def entries(self, account: str) -> list[Entry]:
        return self._ledger.entries(account)

    def close_account(self, number: str) -> None:
        self._ledger.set_state(number, CLOSED)

    def block_account(self, number: str) -> None:
        self._ledger.set_state(number, BLOCKED)

    def hold_account(self, number: str) -> None:
        self._ledger.set_state(number, HOLD)

    def reopen_account(self, number: str) -> None:
        self._ledger.set_state(number, OPEN)

    def settle(self) -> None:
        self._ledger.settle()

    # -- MockServer hooks -------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        try:
            route = self._route(request)
            if route is None:
                return messages.error(messages.NOT_FOUND, detail="unknown path")
            method, handler, signed = route
            if request.method != method:
                return messages.error(messages.METHOD, detail=f"use {method}")
            if signed:
                self._verifier.verify(request)
            return handler(request)
        except BankError as failure:
            return failure.response()

    def _route(self, request: Request) -> tuple[str, Callable[[Request], Response], bool] | None:
        """``(method, handler, signed)`` for the request's path."""
        path = request.path
        if path == PING:
            return "GET", self._ping, False
        if path == PAYMENTS:
            return "POST", self._upload, True
        if path == STATEMENTS:
            return "POST", self._statement, True
        if path.startswith(_PAYMENT_PREFIX) and "/" not in path[len(_PAYMENT_PREFIX) :]:
            return "GET", self._status, True
        return None

    def inspect(self, request: Request) -> RequestKeys:
        """The EndToEndId as the business reference; the creditor account of an upload (or
        the account of a statement request) as the id that faults may match."""
        path = request.path
        if path == PAYMENTS:
            end_to_end_id, creditor_account = messages.peek_upload(request.body)
            return RequestKeys(person_id=creditor_account, biz_no=end_to_end_id, operation=UPLOAD)
        if path == STATEMENTS:
            try:
                account = json.loads(request.body).get("account")
            except (ValueError, AttributeError, RecursionError):
                account = None
            return RequestKeys(person_id=account if isinstance(account, str) else None, operation=STATEMENT)
        if path.startswith(_PAYMENT_PREFIX):
            return RequestKeys(biz_no=unquote(path[len(_PAYMENT_PREFIX) :]), operation=STATUS)
        return RequestKeys()

    def fault_response(self, fault: Fault) -> Response:
        if fault.kind is FaultKind.RATE_LIMIT:
            return messages.error(messages.RATE_LIMITED, headers={"Retry-After": str(fault.retry_after)})
        code = messages.UNAVAILABLE if fault.status == HTTPStatus.SERVICE_UNAVAILABLE else messages.INTERNAL
        return messages.error(code, status=fault.status)

    def state(self) -> object:
        return {"dialect": self.dialect, "bank": self._ledger.bic, **self._ledger.snapshot()}

    def reset_state(self) -> None:
        self._ledger.reset()
        self._verifier.clear()

    # -- endpoints --------------------------------------------------------------------------

    def _ping(self, request: Request) -> Response:
        return Response.json(HTTPStatus.OK, {"status": "UP", "bank": self._ledger.bic}, code="OK")

    def _upload(self, request: Request) -> Response:
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/xml":
            raise BankError(messages.MEDIA_TYPE)
        transfer = messages.parse_pain001(request.body)
        now = self._clock()
        report_id = self._ledger.next_report_id("STS")
        try:
            payment = self._ledger.receive(transfer)
        except Duplicate as duplicate:
            return messages.duplicate_report(
                report_id, now, self._ledger.bic, duplicate.msg_id, duplicate.code, REASONS[duplicate.code]
            )
        return messages.status_report(report_id, now, self._ledger.bic, payment.status_of())

    def _status(self, request: Request) -> Response:
        end_to_end_id = unquote(request.path[len(_PAYMENT_PREFIX) :])
        payment = self._ledger.payment(end_to_end_id)
        if payment is None:
            raise BankError(messages.NOT_FOUND)
        return messages.status_report(
            self._ledger.next_report_id("STS"), self._clock(), self._ledger.bic, payment.status_of()
        )

    def _statement(self, request: Request) -> Response:
        query = messages.parse_statement_request(request.body)
        try:
            account, opening, closing, lines = self._ledger.statement(query)
        except UnknownAccount:
            raise BankError(messages.UNKNOWN_ACCOUNT) from None
        return messages.statement(
            self._ledger.next_report_id("STM"), self._clock(), self._ledger.bic,
            request=query, owner=account.name, opening=opening, closing=closing, lines=lines,
        )

    # -- control plane ------------------------------------------------------------------------

    def _control_settle(self, request: Request) -> Response:
        self.settle()
        return Response(status=HTTPStatus.NO_CONTENT)

    def _control_account(self, request: Request) -> Response:
        try:
            obj = json.loads(request.body)
            number = obj["account"]
            if not isinstance(number, str):
                raise TypeError("account must be a string")
            if "state" in obj:
                self._ledger.set_state(number, obj["state"])
            if "balance" in obj:
                self.set_balance(number, Decimal(str(obj["balance"])))
        except KeyError:
            return Response.json(HTTPStatus.BAD_REQUEST, {"error": "give a known account"})
        except (ValueError, TypeError, InvalidOperation) as exc:
            return Response.json(HTTPStatus.BAD_REQUEST, {"error": f"bad account change: {exc}"})
        return Response(status=HTTPStatus.NO_CONTENT)
