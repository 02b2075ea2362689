"""``OpenBankingBank``: a mock of sandbox bank B speaking the openbanking protocol.

Written from docs/dialects/openbanking.md alone. All state is in memory; it can be
started on port 0 inside a test.

Steering and inspection from Python (tests, the sandbox):

- ``payments()``: every payment, oldest first; ``payment_by_reference(e2e)``: the
  first payment carrying that EndToEndIdentification, or None.
- ``close_account(n)``, ``block_account(n)``, ``reopen_account(n)``: change a client or
  creditor account's status (an unknown number becomes a known creditor account).
- ``set_balance(n, amount)``, ``balance(n)``, ``available_balance(n)``: booked balance
  (without an entry) and what is free after reservations.
- ``add_creditor(n, name, status)``: a creditor account the bank knows.
- ``expire_tokens()``: every access token issued so far is expired.
- ``cut_off_passed``: while True, payments for today are rejected ``TM01``.
- ``settle_seconds``: the step of the payment clock (check, then settlement).

The same over the unsigned control plane: ``POST /__mock__/accounts/status``
``{"account", "status": "open|closed|blocked"}``, ``POST /__mock__/accounts/balance``
``{"account", "amount"}``, ``POST /__mock__/tokens/expire``, ``POST /__mock__/cut-off``
``{"passed": bool}``, and ``GET /__mock__/payments`` (masked).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import urllib.parse
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mocks.faults import Fault, FaultKind
from mocks.openbanking import wire
from mocks.openbanking.ledger import Ledger, Payment
from mocks.openbanking.security import SCOPES, SignatureVerifier, TokenError, TokenIssuer, public_key_of
from mocks.openbanking.wire import BankError
from mocks.server import MockServer, Request, RequestKeys, Response

DEFAULT_CLIENT_ID = "hgw-sandbox"
DEFAULT_CLIENT_SECRET = "sandbox-secret-openbanking"
TOKEN_PATH = "/oauth2/token"
PAYMENTS_PATH = "/open-banking/v3.1/pisp/domestic-payments"
ACCOUNTS_PATH = "/open-banking/v3.1/aisp/accounts"
PAGE_SIZE = 50


def _sandbox_private_key() -> ec.EllipticCurvePrivateKey:
    # A fixed, publicly known key so a mock started without credentials can still be
    # called; never a real credential.
    scalar = int.from_bytes(hashlib.sha256(b"hr-gateway openbanking sandbox key").digest(), "big")
    return ec.derive_private_key(scalar % (2**255), ec.SECP256R1())


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


#: The well-known sandbox signing key (PEM, PKCS#8) of a bank built without ``signing_key``.
SANDBOX_SIGNING_KEY = _pem(_sandbox_private_key())


def sandbox_credentials() -> dict[str, str]:
    """A fresh credential set for one sandbox bank: the same dict configures the adapter
    and constructs the mock (which keeps only the public half of ``signing_key``)."""
    return {
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": secrets.token_urlsafe(24),
        "signing_key": _pem(ec.generate_private_key(ec.SECP256R1())),
    }


class OpenBankingBank(MockServer):
    dialect = "openbanking"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        signing_key: str = SANDBOX_SIGNING_KEY,
        settle_seconds: float = 2.0,
        token_ttl: float = 300.0,
        clock: Callable[[], float] = time.time,
        seed: bool = True,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self._signing_key_is_sandbox = signing_key == SANDBOX_SIGNING_KEY
        self.settle_seconds = settle_seconds
        self.cut_off_passed = False
        self._clock = clock
        self._tokens = TokenIssuer(client_id, client_secret, token_ttl, clock)
        self._signatures = SignatureVerifier(client_id, public_key_of(signing_key), clock)
        self._ledger = Ledger(
            clock=clock, step=lambda: self.settle_seconds, cut_off_passed=lambda: self.cut_off_passed, seed=seed
        )
        super().__init__(host=host, port=port)
        self._control_routes.update(
            {
                ("POST", "/__mock__/accounts/status"): self._control_account_status,
                ("POST", "/__mock__/accounts/balance"): self._control_balance,
                ("POST", "/__mock__/tokens/expire"): self._control_expire_tokens,
                ("POST", "/__mock__/cut-off"): self._control_cut_off,
                ("GET", "/__mock__/payments"): self._control_payments,
            }
        )

    def describe(self) -> str:
        line = f"openbanking mock bank: {self.base_url} client_id={self.client_id}"
        # The sandbox defaults are public test data; chosen credentials are never printed.
        if self.client_secret == DEFAULT_CLIENT_SECRET and self._signing_key_is_sandbox:
            line += f" client_secret={self.client_secret} signing_key=SANDBOX_SIGNING_KEY"
        return line

    # -- steering ------------------------------------------------------------------

    def payments(self) -> list[Payment]:
        """Every payment, oldest first (unmasked: for in-process tests)."""
        return self._ledger.payments()

    def payment_by_reference(self, reference: str) -> Payment | None:
        found = [p for p in self._ledger.payments() if p.reference == reference]
        return found[0] if found else None

    def close_account(self, account: str) -> None:
        self._ledger.set_status(account, "closed")

    def block_account(self, account: str) -> None:
        self._ledger.set_status(account, "blocked")

    def reopen_account(self, account: str) -> None:
        self._ledger.set_status(account, "open")

    def set_balance(self, account: str, amount: Decimal | str) -> None:
        self._ledger.set_balance(account, Decimal(amount))

    def balance(self, account: str) -> Decimal:
        return self._ledger.booked_balance(account)

    def available_balance(self, account: str) -> Decimal:
        return self._ledger.available_balance(account)

    def add_creditor(self, account: str, name: str | None, status: str = "open") -> None:
        self._ledger.add_creditor(account, name, status)

    def expire_tokens(self) -> None:
        self._tokens.expire_all()

    # -- MockServer hooks ----------------------------------------------------------

    def handle(self, request: Request) -> Response:
        try:
            return self._route(request)
        except BankError as error:
            return error.response()

    def inspect(self, request: Request) -> RequestKeys:
        path = request.path
        if path == TOKEN_PATH:
            return RequestKeys(operation="token")
        if path == PAYMENTS_PATH and request.method == "POST":
            creditor = None
            try:
                initiation = json.loads(request.body)["Data"]["Initiation"]
                creditor = initiation["CreditorAccount"]["Identification"]
            except (ValueError, KeyError, TypeError, RecursionError):
                pass
            return RequestKeys(
                person_id=creditor if isinstance(creditor, str) else None,
                biz_no=request.headers.get("x-idempotency-key"),
                operation="payments.initiate",
            )
        if path == PAYMENTS_PATH:
            query = urllib.parse.parse_qs(request.target.partition("?")[2])
            return RequestKeys(biz_no=(query.get("EndToEndIdentification") or [None])[0], operation="payments.find")
        if path.startswith(PAYMENTS_PATH + "/"):
            return RequestKeys(biz_no=path.rsplit("/", 1)[1], operation="payments.get")
        if path == ACCOUNTS_PATH:
            return RequestKeys(operation="accounts.list")
        if path.startswith(ACCOUNTS_PATH + "/"):
            return RequestKeys(operation="accounts.transactions")
        return RequestKeys()

    def fault_response(self, fault: Fault) -> Response:
        if fault.kind is FaultKind.RATE_LIMIT:
            return wire.error_response(wire.RATE_LIMITED, headers={"Retry-After": str(fault.retry_after)})
        if fault.status == HTTPStatus.SERVICE_UNAVAILABLE:
            return wire.error_response(wire.UNAVAILABLE)
        if fault.status >= 500:
            return wire.error_response(wire.SERVER_ERROR, status=fault.status)
        code = {401: wire.TOKEN_INVALID, 404: wire.NOT_FOUND, 429: wire.RATE_LIMITED}.get(fault.status, wire.FIELD_INVALID)
        return wire.error_response(code, status=fault.status)

    def state(self) -> object:
        return {"dialect": self.dialect, "client_id": self.client_id, **self._ledger.snapshot()}

    def reset_state(self) -> None:
        self._ledger.reset()
        self._tokens.clear()
        self.cut_off_passed = False

    # -- routing -------------------------------------------------------------------

    def _route(self, request: Request) -> Response:
        path, method = request.path, request.method
        if path == TOKEN_PATH:
            self._allow(method, "POST")
            return self._token(request)
        if path == PAYMENTS_PATH:
            self._allow(method, "POST", "GET")
            self._authorise(request, "payments")
            return self._initiate(request) if method == "POST" else self._find(request)
        if path.startswith(PAYMENTS_PATH + "/") and path.count("/") == PAYMENTS_PATH.count("/") + 1:
            self._allow(method, "GET")
            self._authorise(request, "payments")
            return self._get_payment(path.rsplit("/", 1)[1])
        if path == ACCOUNTS_PATH:
            self._allow(method, "GET")
            self._authorise(request, "accounts")
            return self._list_accounts()
        parts = path[len(ACCOUNTS_PATH) + 1 :].split("/") if path.startswith(ACCOUNTS_PATH + "/") else []
        if len(parts) == 2 and parts[1] == "transactions" and parts[0]:
            self._allow(method, "GET")
            self._authorise(request, "accounts")
            return self._transactions(request, parts[0])
        raise BankError(wire.NOT_FOUND, "No such path")

    @staticmethod
    def _allow(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise BankError(wire.METHOD_NOT_ALLOWED, headers={"Allow": ", ".join(allowed)})

    def _authorise(self, request: Request, scope: str) -> None:
        scopes = self._tokens.scopes_of(request.headers.get("Authorization"))
        if scopes is None:
            raise BankError(wire.TOKEN_INVALID, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if scope not in scopes:
            raise BankError(wire.INSUFFICIENT_SCOPE, f"this API needs the {scope} scope")

    # -- token ---------------------------------------------------------------------

    def _token(self, request: Request) -> Response:
        try:
            self._tokens.authenticate(request.headers.get("Authorization"))
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if content_type != "application/x-www-form-urlencoded":
                raise TokenError("invalid_request", "the body must be application/x-www-form-urlencoded", 400)
            try:
                form = urllib.parse.parse_qs(request.body.decode("ascii"), strict_parsing=bool(request.body))
            except (UnicodeDecodeError, ValueError):
                raise TokenError("invalid_request", "unreadable form body", 400) from None
            if form.get("grant_type") != ["client_credentials"]:
                raise TokenError("unsupported_grant_type", "only client_credentials is supported", 400)
            requested = form.get("scope", [" ".join(sorted(SCOPES))])
            scopes = frozenset(requested[0].split()) if len(requested) == 1 else frozenset()
            if not scopes or not scopes <= SCOPES:
                raise TokenError("invalid_scope", "scope must be payments and/or accounts", 400)
        except TokenError as error:
            return Response.json(
                error.status, {"error": error.error, "error_description": error.description}, code=error.error,
                headers={"Cache-Control": "no-store"},
            )
        token, ttl = self._tokens.issue(scopes)
        return Response.json(
            HTTPStatus.OK,
            {"access_token": token, "token_type": "Bearer", "expires_in": int(ttl), "scope": " ".join(sorted(scopes))},
            code="token",
            headers={"Cache-Control": "no-store"},
        )

    # -- payments ------------------------------------------------------------------

    def _initiate(self, request: Request) -> Response:
        self._signatures.verify(request.headers.get("x-jws-signature"), request.body)
        key = request.headers.get("x-idempotency-key")
        if key is None:
            raise BankError(wire.HEADER_MISSING, "x-idempotency-key is required", path="x-idempotency-key")
        if not wire.IDEMPOTENCY_KEY.fullmatch(key):
            raise BankError(
                wire.HEADER_INVALID, "x-idempotency-key must be 1 to 64 characters [A-Za-z0-9._:-]",
                path="x-idempotency-key",
            )
        obj = wire.body_object(request.body)
        fingerprint = wire.fingerprint(obj)
        payment, replayed = self._ledger.initiate(
            key, fingerprint, lambda: wire.parse_initiation(obj), self._render_created
        )
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if replayed:
            headers["x-idempotent-replayed"] = "true"
        return Response(
            status=HTTPStatus.CREATED, body=payment.answer, code="replayed" if replayed else "created", headers=headers
        )

    @staticmethod
    def _render_created(payment: Payment) -> bytes:
        return _json_bytes({"Data": payment.resource(), "Links": {"Self": f"{PAYMENTS_PATH}/{payment.payment_id}"}})

    def _find(self, request: Request) -> Response:
        query = urllib.parse.parse_qs(request.target.partition("?")[2])
        values = query.get("EndToEndIdentification")
        if not values or not values[0]:
            raise BankError(wire.FIELD_MISSING, "EndToEndIdentification is required", path="EndToEndIdentification")
        reference = values[0]
        found = self._ledger.find(reference)
        self_link = f"{PAYMENTS_PATH}?{urllib.parse.urlencode({'EndToEndIdentification': reference})}"
        return Response.json(
            HTTPStatus.OK,
            {"Data": {"DomesticPayment": [p.resource() for p in found]}, "Links": {"Self": self_link}},
            code="ok",
        )

    def _get_payment(self, payment_id: str) -> Response:
        payment = self._ledger.payment(payment_id)
        if payment is None:
            raise BankError(wire.NOT_FOUND, "No such payment")
        return Response.json(
            HTTPStatus.OK,
            {"Data": payment.resource(), "Links": {"Self": f"{PAYMENTS_PATH}/{payment.payment_id}"}},
            code="ok",
        )

    # -- accounts ------------------------------------------------------------------

    def _list_accounts(self) -> Response:
        accounts = [
            {
                "AccountId": a.account_id,
                "Currency": "CNY",
                "Account": {"SchemeName": "CN.BankAccount", "Identification": a.number, "Name": a.name},
            }
            for a in self._ledger.accounts()
        ]
        return Response.json(HTTPStatus.OK, {"Data": {"Account": accounts}}, code="ok")

    def _transactions(self, request: Request, account_id: str) -> Response:
        account = self._ledger.account_by_id(account_id)
        if account is None:
            raise BankError(wire.NOT_FOUND, "No such account")
        query = urllib.parse.parse_qs(request.target.partition("?")[2])
        from_date = wire.parse_date_param((query.get("fromBookingDate") or [None])[0], "fromBookingDate")
        to_date = wire.parse_date_param((query.get("toBookingDate") or [None])[0], "toBookingDate")
        if from_date > to_date:
            raise BankError(wire.FIELD_INVALID, "fromBookingDate is after toBookingDate", path="fromBookingDate")
        page_text = (query.get("page") or ["1"])[0]
        if not page_text.isdigit() or int(page_text) < 1:
            raise BankError(wire.FIELD_INVALID, "page starts at 1", path="page")
        page = int(page_text)
        statement = self._ledger.statement(account, from_date, to_date)
        total_pages = max(1, -(-len(statement.transactions) // PAGE_SIZE))
        base = f"{ACCOUNTS_PATH}/{account_id}/transactions?fromBookingDate={from_date}&toBookingDate={to_date}"
        links = {"Self": f"{base}&page={page}"}
        if page < total_pages:
            links["Next"] = f"{base}&page={page + 1}"
        return Response.json(
            HTTPStatus.OK,
            {
                "Data": {
                    "AccountId": account_id,
                    "Currency": "CNY",
                    "Balance": {
                        "OpeningBooked": {"Amount": wire.amount_text(statement.opening), "Currency": "CNY"},
                        "ClosingBooked": {"Amount": wire.amount_text(statement.closing), "Currency": "CNY"},
                    },
                    "Transaction": statement.transactions[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
                },
                "Links": links,
                "Meta": {"TotalPages": total_pages},
            },
            code="ok",
        )

    # -- control plane -------------------------------------------------------------

    @staticmethod
    def _control_body(request: Request) -> dict[str, Any]:
        obj = json.loads(request.body or b"{}")
        if not isinstance(obj, dict):
            raise ValueError("a JSON object is required")
        return obj

    def _control_account_status(self, request: Request) -> Response:
        try:
            obj = self._control_body(request)
            account, status = obj["account"], obj["status"]
            if not isinstance(account, str) or status not in ("open", "closed", "blocked"):
                raise ValueError("account (string) and status open|closed|blocked are required")
        except (ValueError, KeyError) as exc:
            return Response.json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        self._ledger.set_status(account, status)
        return Response(status=HTTPStatus.NO_CONTENT)

    def _control_balance(self, request: Request) -> Response:
        try:
            obj = self._control_body(request)
            self.set_balance(obj["account"], Decimal(str(obj["amount"])))
        except (ValueError, KeyError, InvalidOperation) as exc:
            return Response.json(HTTPStatus.BAD_REQUEST, {"error": f"account and amount are required: {exc}"})
        return Response(status=HTTPStatus.NO_CONTENT)

    def _control_expire_tokens(self, request: Request) -> Response:
        self.expire_tokens()
        return Response(status=HTTPStatus.NO_CONTENT)

    def _control_cut_off(self, request: Request) -> Response:
        try:
            passed = self._control_body(request)["passed"]
            if not isinstance(passed, bool):
                raise ValueError("passed must be true or false")
        except (ValueError, KeyError) as exc:
            return Response.json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        self.cut_off_passed = passed
        return Response(status=HTTPStatus.NO_CONTENT)

    def _control_payments(self, request: Request) -> Response:
        return Response.json(HTTPStatus.OK, [p.masked() for p in self._ledger.payments()])


def _json_bytes(payload: object) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
