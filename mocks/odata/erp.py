"""``ODataErp``: a mock SAP-style ERP finance service speaking OData v4 JSON.

Written from docs/dialects/odata.md alone. All state is in memory; the server can be
started on port 0 inside a test.

Steering and inspection, for tests (also under the control plane, see below):

- ``set_budget(cost_center, period, budget, committed=None)``: set a month's budget
  (``committed`` kept when omitted, 0 for a new month);
- ``decide(reference, approve, reason=None)``: decide a pending request by hand;
- ``set_auto_decide(False)``: leave requests pending (``True`` restores the standing
  rule: a request is decided ``decision_seconds`` after its creation, approved when
  its amount fits the available budget, else rejected ``BUDGET_EXCEEDED``);
- ``approvals()`` / ``journal_entries()`` / ``budget(cost_center, period)``: snapshots;
- ``expire_csrf_tokens()``: every token issued so far is refused from now on.

Control plane (unauthenticated, under ``/__mock__/``): ``POST budgets``
``{"cost_center", "period", "budget", "committed"?}``, ``POST decisions``
``{"reference", "approve", "reason"?}``, ``POST auto-decide`` ``{"enabled"}``,
``GET approvals``, ``GET journal-entries``, ``POST csrf/expire``.

Faults: a route may be ``*``, a path (``/odata/v4/finance/ApprovalRequests`` matches
reads and creates alike) or an operation: ``ApprovalRequests.create``,
``ApprovalRequests.read``, ``JournalEntries.create``, ``JournalEntries.read``,
``Budgets.read``, ``CostCenters.read``, ``GLAccounts.read``, ``ServiceDocument.read``.
``rate_limit`` answers ``429 TOO_MANY_REQUESTS``; ``error`` answers
``503 SERVICE_UNAVAILABLE`` (with ``Retry-After``) or, for another status,
``INTERNAL_ERROR``; neither applies anything. ``drop_after`` on a create applies it and
closes the connection without answering.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from typing import Any

from mocks.faults import Fault, FaultKind
from mocks.odata import wire
from mocks.odata.csrf import SESSION_COOKIE, CsrfTokens
from mocks.odata.ledger import ApprovalRequest, Budget, JournalEntry, Ledger
from mocks.odata.wire import ODataError, Query
from mocks.server import MockServer, Request, RequestKeys, Response

DEFAULT_USERNAME = "hgw-sandbox"
SANDBOX_PASSWORD = "sandbox-password-odata"  # public test data, never a real credential
DEFAULT_CSRF_TOKEN_SECONDS = 1800.0


@dataclass(frozen=True)
class _EntitySet:
    name: str
    methods: frozenset[str]
    filterable: frozenset[str]
    expandable: frozenset[str] = frozenset()


_ENTITY_SETS = {
    entity_set.name: entity_set
    for entity_set in (
        _EntitySet("Budgets", frozenset({"GET"}), frozenset({"CostCenter", "Period"})),
        _EntitySet("CostCenters", frozenset({"GET"}), frozenset({"CostCenter", "CompanyCode"})),
        _EntitySet("GLAccounts", frozenset({"GET"}), frozenset({"GLAccount", "AccountType"})),
        _EntitySet(
            "ApprovalRequests",
            frozenset({"GET", "POST"}),
            frozenset({"Reference", "DocumentNumber", "CostCenter", "Period", "Status"}),
            frozenset({"Budget"}),
        ),
        _EntitySet(
            "JournalEntries",
            frozenset({"GET", "POST"}),
            frozenset({"Reference", "DocumentNumber", "FiscalYear"}),
            frozenset({"Items"}),
        ),
    )
}
_SERVICE_DOCUMENT = "ServiceDocument"


class ODataErp(MockServer):
    """The sandbox ERP (seeded cost centres, budgets 2024-01..2026-12, a chart of
    accounts; see docs/dialects/odata.md). ``seed=False`` starts with empty books.

    ``username`` / ``password`` are the Basic credentials it accepts;
    ``decision_seconds`` is the accelerated clock of approvals and
    ``csrf_token_seconds`` the lifetime of a CSRF token, both on ``clock`` and
    settable as attributes while the ERP runs.
    """

    dialect = "odata"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = DEFAULT_USERNAME,
        password: str = SANDBOX_PASSWORD,
        decision_seconds: float = 2.0,
        csrf_token_seconds: float = DEFAULT_CSRF_TOKEN_SECONDS,
        clock: Callable[[], float] = time.time,
        seed: bool = True,
    ) -> None:
        if not username or not password or ":" in username:
            raise ValueError("username and password must not be empty, and the username has no ':'")
        if decision_seconds < 0:
            raise ValueError(f"decision_seconds must not be negative, got {decision_seconds!r}")
        if not csrf_token_seconds > 0:
            raise ValueError(f"csrf_token_seconds must be positive, got {csrf_token_seconds!r}")
        self.username = username
        self.password = password
        self.decision_seconds = decision_seconds
        self._clock = clock
        self._csrf = CsrfTokens(clock, csrf_token_seconds)
        self._ledger = Ledger(clock=clock, decision_seconds=lambda: self.decision_seconds, seed=seed)
        super().__init__(host=host, port=port)
        self._control_routes.update(
            {
                ("POST", "/__mock__/budgets"): self._control_set_budget,
                ("POST", "/__mock__/decisions"): self._control_decide,
                ("POST", "/__mock__/auto-decide"): self._control_auto_decide,
                ("GET", "/__mock__/approvals"): self._control_approvals,
                ("GET", "/__mock__/journal-entries"): self._control_journal_entries,
                ("POST", "/__mock__/csrf/expire"): self._control_expire_csrf,
            }
        )

    @property
    def service_url(self) -> str:
        """The service root's absolute URL."""
        return self.base_url + wire.SERVICE_ROOT

    @property
    def csrf_token_seconds(self) -> float:
        return self._csrf.lifetime

    @csrf_token_seconds.setter
    def csrf_token_seconds(self, seconds: float) -> None:
        self._csrf.lifetime = seconds

    def describe(self) -> str:
        line = f"odata mock ERP: {self.service_url} username={self.username}"
        # The sandbox password is public test data; a caller-chosen password is never printed.
        if self.password == SANDBOX_PASSWORD:
            line += f" password={self.password}"
        return line

    # Steering and inspection

    def set_budget(
        self, cost_center: str, period: str, budget: Decimal | int | str, committed: Decimal | int | str | None = None
    ) -> Budget:
        return self._ledger.set_budget(
            cost_center, period, Decimal(budget), None if committed is None else Decimal(committed)
        )

    def decide(self, reference: str, approve: bool, reason: str | None = None) -> ApprovalRequest:
        return self._ledger.decide(reference, approve=approve, reason=reason)

    def set_auto_decide(self, enabled: bool) -> None:
        self._ledger.set_auto_decide(enabled)

    def approvals(self) -> list[ApprovalRequest]:
        """Every approval request, in creation order, with decisions due by now applied."""
        return self._ledger.approvals()

    def journal_entries(self) -> list[JournalEntry]:
        """Every posted journal entry, in posting order."""
        return self._ledger.journal()

    def budget(self, cost_center: str, period: str) -> Budget | None:
        return self._ledger.budget(cost_center, period)

    def expire_csrf_tokens(self) -> None:
        self._csrf.expire_all()

    # MockServer hooks

    def handle(self, request: Request) -> Response:
        try:
            name = self._resource(request.path)
            entity_set = _ENTITY_SETS.get(name)
            allowed = entity_set.methods if entity_set is not None else frozenset({"GET"})
            if request.method not in allowed:
                raise ODataError(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    wire.METHOD_NOT_ALLOWED,
                    f"{request.method} is not offered on {name}",
                    headers={"Allow": ", ".join(sorted(allowed))},
                )
            self._authenticate(request)
            if request.method == "POST":
                assert entity_set is not None
                return self._create(request, entity_set)
            return self._read(request, entity_set)
        except ODataError as error:
            return error.response()

    def inspect(self, request: Request) -> RequestKeys:
        try:
            name = self._resource(request.path)
        except ODataError:
            return RequestKeys()
        operation = f"{name}.create" if request.method == "POST" else f"{name}.read"
        reference: Any = None
        if request.method == "POST" and request.body:
            try:
                obj = json.loads(request.body)
            except (ValueError, RecursionError):
                obj = None
            reference = obj.get("Reference") if isinstance(obj, dict) else None
        elif name in _ENTITY_SETS:
            try:
                query = wire.parse_query(
                    request.target, filterable=_ENTITY_SETS[name].filterable, expandable=_ENTITY_SETS[name].expandable
                )
                reference = query.filters.get("Reference")
            except ODataError:
                pass
        return RequestKeys(biz_no=reference if isinstance(reference, str) else None, operation=operation)

    def fault_response(self, fault: Fault) -> Response:
        retry_after = {"Retry-After": str(fault.retry_after)}
        if fault.kind is FaultKind.RATE_LIMIT or fault.status == HTTPStatus.TOO_MANY_REQUESTS:
            error = ODataError(
                HTTPStatus.TOO_MANY_REQUESTS, wire.TOO_MANY_REQUESTS, "Too many requests", headers=retry_after
            )
        elif fault.status == HTTPStatus.SERVICE_UNAVAILABLE:
            error = ODataError(
                HTTPStatus.SERVICE_UNAVAILABLE, wire.SERVICE_UNAVAILABLE, "Service unavailable", headers=retry_after
            )
        else:
            error = ODataError(fault.status, wire.INTERNAL_ERROR, "Internal error")
        return error.response()

    def state(self) -> object:
        return {
            "dialect": self.dialect,
            "service_root": wire.SERVICE_ROOT,
            "decision_seconds": self.decision_seconds,
            "csrf_token_seconds": self.csrf_token_seconds,
            "sessions": len(self._csrf),
            **self._ledger.snapshot(),
        }

    def reset_state(self) -> None:
        self._ledger.reset()
        self._csrf.clear()

    # Request handling

    @staticmethod
    def _resource(path: str) -> str:
        """The entity set (or service document) a path addresses; ``NOT_FOUND`` otherwise."""
        if path in (wire.SERVICE_ROOT, wire.SERVICE_ROOT + "/"):
            return _SERVICE_DOCUMENT
        prefix = wire.SERVICE_ROOT + "/"
        if path.startswith(prefix) and path[len(prefix) :] in _ENTITY_SETS:
            return path[len(prefix) :]
        raise ODataError(HTTPStatus.NOT_FOUND, wire.NOT_FOUND, "No such resource")

    def _authenticate(self, request: Request) -> None:
        scheme, _, encoded = (request.headers.get("Authorization") or "").partition(" ")
        user = password = ""
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = password = ""
        user_ok = hmac.compare_digest(user.encode(), self.username.encode())
        password_ok = hmac.compare_digest(password.encode(), self.password.encode())
        if not (user_ok and password_ok):
            raise ODataError(
                HTTPStatus.UNAUTHORIZED,
                wire.UNAUTHORIZED,
                "Logon failed",
                headers={"WWW-Authenticate": 'Basic realm="finance"'},
            )

    @staticmethod
    def _session_id(request: Request) -> str | None:
        cookie = SimpleCookie()
        try:
            cookie.load(request.headers.get("Cookie") or "")
        except CookieError:
            return None
        morsel = cookie.get(SESSION_COOKIE)
        return morsel.value if morsel is not None else None

    def _read(self, request: Request, entity_set: _EntitySet | None) -> Response:
        if entity_set is None:
            payload: dict[str, Any] = {
                "@odata.context": "$metadata",
                "value": [{"name": name, "kind": "EntitySet", "url": name} for name in _ENTITY_SETS],
            }
        else:
            query = wire.parse_query(request.target, filterable=entity_set.filterable, expandable=entity_set.expandable)
            payload = wire.collection(entity_set.name, self._entities(entity_set.name, query))
        headers: dict[str, str] = {}
        if (request.headers.get("X-CSRF-Token") or "").strip().lower() == "fetch":
            session_id, token, new_session = self._csrf.fetch(self._session_id(request))
            headers["X-CSRF-Token"] = token
            if new_session:
                headers["Set-Cookie"] = f"{SESSION_COOKIE}={session_id}; Path=/; HttpOnly"
        return wire.answer(HTTPStatus.OK, payload, headers=headers)

    def _entities(self, name: str, query: Query) -> list[dict[str, Any]]:
        if name == "Budgets":
            return self._ledger.budgets(query.filters)
        if name == "CostCenters":
            return self._ledger.cost_centers(query.filters)
        if name == "GLAccounts":
            return self._ledger.gl_accounts(query.filters)
        if name == "ApprovalRequests":
            return self._ledger.approval_requests(query.filters, expand_budget="Budget" in query.expand)
        return self._ledger.journal_entries(query.filters, expand_items="Items" in query.expand)

    def _create(self, request: Request, entity_set: _EntitySet) -> Response:
        if not self._csrf.is_valid(self._session_id(request), request.headers.get("X-CSRF-Token")):
            raise ODataError(
                HTTPStatus.FORBIDDEN,
                wire.CSRF_TOKEN_REQUIRED,
                "CSRF token validation failed",
                headers={"X-CSRF-Token": "Required"},
            )
        query = wire.parse_query(request.target, filterable=frozenset(), expandable=entity_set.expandable)
        if query.filters:
            raise wire.bad_request("$filter does not apply to a create", "$filter")
        obj = wire.read_body(request.body, request.headers.get("Content-Type"))
        if entity_set.name == "ApprovalRequests":
            entity = self._ledger.create_approval(obj, expand_budget="Budget" in query.expand)
        else:
            entity = self._ledger.create_journal_entry(obj, expand_items="Items" in query.expand)
        location = f"{self.service_url}/{entity_set.name}?$filter=DocumentNumber%20eq%20%27{entity['DocumentNumber']}%27"
        return wire.answer(HTTPStatus.CREATED, wire.single(entity_set.name, entity), headers={"Location": location})

    # Control plane

    def _control_body(self, request: Request) -> dict[str, Any]:
        try:
            obj = json.loads(request.body or b"{}")
        except ValueError:
            raise ValueError("the body is not JSON") from None
        if not isinstance(obj, dict):
            raise ValueError("the body must be a JSON object")
        return obj

    def _control_set_budget(self, request: Request) -> Response:
        try:
            obj = self._control_body(request)
            entry = self.set_budget(obj["cost_center"], obj["period"], obj["budget"], obj.get("committed"))
        except (KeyError, ValueError, TypeError, InvalidOperation, ODataError) as exc:
            return Response.json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        return Response.json(HTTPStatus.OK, entry.to_json())

    def _control_decide(self, request: Request) -> Response:
        try:
            obj = self._control_body(request)
            if not isinstance(obj.get("approve"), bool):
                raise ValueError("approve must be true or false")
            decided = self.decide(obj["reference"], obj["approve"], obj.get("reason"))
        except KeyError as exc:
            return Response.json(HTTPStatus.NOT_FOUND, {"error": str(exc)})
        except (ValueError, TypeError) as exc:
            return Response.json(HTTPStatus.CONFLICT, {"error": str(exc)})
        return Response.json(HTTPStatus.OK, decided.to_json())

    def _control_auto_decide(self, request: Request) -> Response:
        try:
            enabled = self._control_body(request).get("enabled")
            if not isinstance(enabled, bool):
                raise ValueError("enabled must be true or false")
        except ValueError as exc:
            return Response.json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        self.set_auto_decide(enabled)
        return Response.json(HTTPStatus.OK, {"enabled": enabled})

    def _control_approvals(self, request: Request) -> Response:
        return Response.json(HTTPStatus.OK, [approval.to_json() for approval in self.approvals()])

    def _control_journal_entries(self, request: Request) -> Response:
        return Response.json(
            HTTPStatus.OK, [entry.to_json(expand_items=True) for entry in self.journal_entries()]
        )

    def _control_expire_csrf(self, request: Request) -> Response:
        self.expire_csrf_tokens()
        return Response(status=HTTPStatus.NO_CONTENT)
