"""``KingdeeErp``: a mock ERP speaking the kingdee WebAPI.

Written from docs/dialects/kingdee.md alone. Keeps all state in memory and can be
started on port 0 inside a test.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from decimal import Decimal
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from typing import Any

from mocks.faults import Fault, FaultKind
from mocks.kingdee import wire
from mocks.kingdee.sessions import Sessions
from mocks.kingdee.store import Bill, Store
from mocks.kingdee.wire import ErpError, FieldError
from mocks.server import MockServer, Request, RequestKeys, Response

DEFAULT_ACCT_ID = "HGW-SANDBOX"
DEFAULT_USERNAME = "hgw-api"
#: The well-known password of the sandbox ERP; never a real credential.
SANDBOX_PASSWORD = "sandbox-password-kingdee"
DEFAULT_SESSION_TTL = 1200.0
_MAX_LIMIT = 2000


class KingdeeErp(MockServer):
    """A kingdee ERP with the sandbox base data, budgets 2024-01..2026-12 and an approver.

    Credentials: ``acct_id``, ``username`` and ``password`` are what ``ValidateUser``
    accepts (``app_id`` / ``app_secret`` are aliases of ``username`` / ``password`` so
    a caller may pass credentials the same way to every mock). ``session_ttl`` is the
    session lifetime in seconds; ``expire_sessions()`` expires every session issued so
    far. ``clock`` drives sessions, dates and decisions so tests can move time.

    The approver decides each submitted expense request ``decision_seconds`` after its
    ``Submit`` (an attribute, settable while running): audited when the amount fits
    budget − occupied, else rejected with ``BUDGET_EXCEEDED``. Steering for tests:
    ``set_auto_decide(False)`` leaves submitted requests waiting for
    ``decide(reference, approve, reason)`` (which also decides submitted vouchers);
    ``set_budget(cost_center, period, budget, committed=None)``; ``budget(cost_center,
    period)``; ``bills(formid)`` lists the saved bills. ``reset()`` restores the seeded
    budgets, no bills, no sessions and the automatic approver. The same steering is on
    the control plane: ``POST /__mock__/budgets`` ``{"cost_center", "period", "budget",
    "committed"?}``, ``POST /__mock__/decisions`` ``{"reference", "approve", "reason"?}``,
    ``POST /__mock__/auto-decide`` ``{"enabled"}`` and ``POST /__mock__/expire-sessions``.

    Faults: a fault's route may be ``*``, a service path, or a service name —
    ``ValidateUser``, ``Save``, ``Submit``, ``Audit``, ``View`` or ``ExecuteBillQuery`` —
    which the request log records as ``operation``. ``rate_limit`` answers HTTP 429 with
    ``Retry-After`` and ``MsgCode`` 14, ``error`` the fault's HTTP status with ``MsgCode``
    4; neither applies anything. ``drop_after`` applies the call (a ``Save`` saves, a
    ``Submit`` submits, an ``Audit`` audits) and then closes without answering.
    """

    dialect = "kingdee"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        acct_id: str = DEFAULT_ACCT_ID,
        username: str = DEFAULT_USERNAME,
        password: str | None = None,
        app_id: str | None = None,
        app_secret: str | None = None,
        clock: Callable[[], float] = time.time,
        session_ttl: float = DEFAULT_SESSION_TTL,
        decision_seconds: float = 2.0,
    ) -> None:
        if app_id is not None:
            if username not in (DEFAULT_USERNAME, app_id):
                raise ValueError("give username or its alias app_id, not both")
            username = app_id
        if app_secret is not None:
            if password not in (None, app_secret):
                raise ValueError("give password or its alias app_secret, not both")
            password = app_secret
        if not acct_id or not username or password == "":
            raise ValueError("acct_id, username and password must not be empty")
        if not session_ttl > 0:
            raise ValueError(f"session_ttl must be positive, got {session_ttl!r}")
        if decision_seconds < 0:
            raise ValueError(f"decision_seconds must not be negative, got {decision_seconds!r}")
        self.acct_id = acct_id
        self.username = username
        self.password = password if password is not None else SANDBOX_PASSWORD
        self.session_ttl = session_ttl
        self.decision_seconds = decision_seconds
        self._clock = clock
        self._sessions = Sessions(clock, lambda: self.session_ttl)
        self._store = Store(clock=clock, decision_seconds=lambda: self.decision_seconds)
        self._services: dict[str, Callable[[Any], Response]] = {
            "Save": self._save,
            "Submit": lambda body: self._transition(body, "Submit"),
            "Audit": lambda body: self._transition(body, "Audit"),
            "View": self._view,
            "ExecuteBillQuery": self._query,
        }
        super().__init__(host=host, port=port)
        self._control_routes.update(
            {
                ("POST", "/__mock__/budgets"): self._control_budget,
                ("POST", "/__mock__/decisions"): self._control_decide,
                ("POST", "/__mock__/auto-decide"): self._control_auto_decide,
                ("POST", "/__mock__/expire-sessions"): self._control_expire_sessions,
            }
        )

    @property
    def app_id(self) -> str:
        """Alias of ``username``."""
        return self.username

    @property
    def app_secret(self) -> str:
        """Alias of ``password``."""
        return self.password

    # -- steering -------------------------------------------------------------------------

    def set_budget(self, cost_center: str, period: str, budget: Decimal | str, committed: Decimal | str | None = None) -> None:
        """Set a cost centre's budget for a period (committed kept unless given)."""
        self._store.set_budget(cost_center, period, Decimal(budget), None if committed is None else Decimal(committed))

    def budget(self, cost_center: str, period: str) -> tuple[Decimal, Decimal] | None:
        """``(budget, committed)`` of a cost centre and period, or None without a budget."""
        found = self._store.budget(cost_center, period)
        return None if found is None else (found.budget, found.committed)

    def decide(self, reference: str, approve: bool, reason: str = "", code: str | None = None) -> Bill:
        """Audit (``approve``) or reject the submitted bill whose ``FExternalNo`` is ``reference``."""
        return self._store.decide(reference, approve, reason, code)

    def set_auto_decide(self, enabled: bool) -> None:
        """Whether the approver decides submitted expense requests by itself."""
        self._store.advance()  # what was already due is decided under the old rule
        self._store.auto_decide = enabled

    def bills(self, formid: str | None = None) -> list[Bill]:
        """Copies of the saved bills of ``formid`` (all forms if None), in save order."""
        return self._store.bills(formid)

    def expire_sessions(self) -> None:
        """Expire every session issued so far (later logins work as usual)."""
        self._sessions.expire_all()

    def describe(self) -> str:
        line = f"kingdee mock ERP: {self.base_url}/k3cloud/ acct_id={self.acct_id} username={self.username}"
        # The sandbox password is public test data; a caller-chosen password is never printed.
        if self.password == SANDBOX_PASSWORD:
            line += f" password={self.password}"
        return line

    # -- MockServer hooks -----------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        service = "ValidateUser" if request.path == wire.LOGIN_PATH else wire.SERVICE_PATHS.get(request.path)
        nested = service == "ExecuteBillQuery"
        if service is None:
            return wire.failure(wire.MALFORMED, [FieldError(None, "服务不存在")], status=HTTPStatus.NOT_FOUND)
        if request.method != "POST":
            return wire.failure(wire.MALFORMED, [FieldError(None, "请使用 POST")], status=HTTPStatus.METHOD_NOT_ALLOWED, nested=nested)
        if service == "ValidateUser":
            return self._login(request)
        try:
            if not self._sessions.is_valid(_session_id(request)):
                raise ErpError.of(wire.SESSION_LOST, wire.SESSION_LOST_MESSAGE)
            return self._services[service](wire.loads(request.body))
        except ErpError as error:
            return wire.error_response(error, nested=nested)

    def inspect(self, request: Request) -> RequestKeys:
        service = "ValidateUser" if request.path == wire.LOGIN_PATH else wire.SERVICE_PATHS.get(request.path)
        return RequestKeys(biz_no=_reference_of(service, request.body), operation=service)

    def fault_response(self, fault: Fault) -> Response:
        if fault.kind is FaultKind.RATE_LIMIT:
            return wire.failure(
                wire.CALL_LIMIT,
                [FieldError(None, "调用次数超过限制，请稍后再试")],
                status=HTTPStatus.TOO_MANY_REQUESTS,
                headers={"Retry-After": str(fault.retry_after)},
            )
        return wire.failure(wire.ERP_FAILURE, [FieldError(None, "服务器内部错误")], status=fault.status)

    def state(self) -> object:
        return {
            "dialect": self.dialect,
            "sessions": len(self._sessions),
            "decision_seconds": self.decision_seconds,
            **self._store.snapshot(),
        }

    def reset_state(self) -> None:
        self._store.reset()
        self._sessions.clear()

    # -- services -------------------------------------------------------------------------

    def _login(self, request: Request) -> Response:
        try:
            body = wire.loads(request.body)
        except ErpError:
            body = None
        if not (
            isinstance(body, dict)
            and all(isinstance(body.get(key), str) for key in ("acctID", "username", "password"))
            and isinstance(body.get("lcid"), int)
            and not isinstance(body.get("lcid"), bool)
        ):
            return _login_refused("登录参数无效：需要 acctID、username、password 和 lcid")
        checks = [
            hmac.compare_digest(body["acctID"].encode(), self.acct_id.encode()),
            hmac.compare_digest(body["username"].encode(), self.username.encode()),
            hmac.compare_digest(body["password"].encode(), self.password.encode()),
        ]
        if not all(checks):
            return _login_refused("数据中心、用户名或密码错误")
        session_id = self._sessions.issue()
        payload = {
            "LoginResultType": 1,
            "Message": None,
            "KDSVCSessionId": session_id,
            "Context": {"UserName": self.username, "DBid": self.acct_id, "LogId": session_id[:8]},
        }
        return wire.json_response(
            payload, headers={"Set-Cookie": f"{wire.SESSION_COOKIE}={session_id}; Path=/; HttpOnly"}
        )

    def _save(self, body: Any) -> Response:
        form, data = _form_and_data(body)
        bill = self._store.save(form, data.get("Model"))
        return wire.success([bill.entity()], saved={"Id": bill.id, "Number": bill.number})

    def _transition(self, body: Any, operation: str) -> Response:
        form, data = _form_and_data(body)
        keys = _bill_keys(data)
        done, failed = self._store.transition(form, keys, operation)
        entities = [{"Id": bill.id, "Number": bill.number, "DIndex": index} for index, bill in done]
        if failed:
            return wire.failure(failed[0][0], [error for _, error in failed], entities=entities)
        return wire.success(entities)

    def _view(self, body: Any) -> Response:
        form, data = _form_and_data(body)
        number, bill_id = data.get("Number"), data.get("Id")
        if isinstance(number, str) and number:
            key: str | int = number
        elif isinstance(bill_id, int) and not isinstance(bill_id, bool):
            key = bill_id
        else:
            raise ErpError.of(wire.MALFORMED, "需要 Number 或 Id", "Number")
        bill = self._store.view(form, key)
        return wire.json_response({"Result": {"ResponseStatus": None, "Result": bill.view()}})

    def _query(self, body: Any) -> Response:
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise ErpError.of(wire.MALFORMED, "缺少 data", "data")
        form = data.get("FormId")
        if not isinstance(form, str) or not form:
            raise ErpError.of(wire.MALFORMED, "缺少 FormId", "FormId")
        keys = wire.parse_field_keys(data.get("FieldKeys"))
        filter_text, order_text = data.get("FilterString") or "", data.get("OrderString") or ""
        if not isinstance(filter_text, str) or not isinstance(order_text, str):
            raise ErpError.of(wire.MALFORMED, "FilterString 和 OrderString 必须是文本", "FilterString")
        start, limit = data.get("StartRow", 0), data.get("Limit", 0)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (start, limit)):
            raise ErpError.of(wire.MALFORMED, "StartRow 和 Limit 必须是非负整数", "Limit")
        rows = self._store.query(
            form, keys, wire.parse_filter(filter_text), wire.parse_order(order_text), start, min(limit or _MAX_LIMIT, _MAX_LIMIT)
        )
        return wire.json_response(rows)

    # -- control plane --------------------------------------------------------------------

    def _control_body(self, request: Request) -> dict[str, Any]:
        body = json.loads(request.body or b"{}")
        if not isinstance(body, dict):
            raise ValueError("a JSON object is required")
        return body

    def _control_budget(self, request: Request) -> Response:
        try:
            body = self._control_body(request)
            self.set_budget(body["cost_center"], body["period"], str(body["budget"]), None if body.get("committed") is None else str(body["committed"]))
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
            return Response.json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        return Response(status=HTTPStatus.NO_CONTENT)

    def _control_decide(self, request: Request) -> Response:
        try:
            body = self._control_body(request)
            bill = self.decide(body["reference"], bool(body["approve"]), body.get("reason") or "")
        except KeyError as exc:
            return Response.json(HTTPStatus.NOT_FOUND, {"error": str(exc)})
        except (ValueError, TypeError) as exc:
            return Response.json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        return Response.json(HTTPStatus.OK, bill.summary())

    def _control_auto_decide(self, request: Request) -> Response:
        try:
            enabled = self._control_body(request)["enabled"]
            if not isinstance(enabled, bool):
                raise TypeError("enabled must be true or false")
        except (ValueError, KeyError, TypeError) as exc:
            return Response.json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        self.set_auto_decide(enabled)
        return Response(status=HTTPStatus.NO_CONTENT)

    def _control_expire_sessions(self, request: Request) -> Response:
        self.expire_sessions()
        return Response(status=HTTPStatus.NO_CONTENT)


# -- request reading ------------------------------------------------------------------------


def _login_refused(message: str) -> Response:
    return wire.json_response(
        {"LoginResultType": 0, "Message": message, "KDSVCSessionId": None, "Context": None}, code="LOGIN_REFUSED"
    )


def _session_id(request: Request) -> str | None:
    header = request.headers.get("Cookie")
    if not header:
        return None
    cookie = SimpleCookie()
    try:
        cookie.load(header)
    except CookieError:
        return None
    morsel = cookie.get(wire.SESSION_COOKIE)
    return morsel.value if morsel is not None else None


def _form_and_data(body: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(body, dict):
        raise ErpError.of(wire.MALFORMED, "请求内容必须是 JSON 对象")
    form, data = body.get("formid"), body.get("data")
    if not isinstance(form, str) or not form:
        raise ErpError.of(wire.MALFORMED, "缺少 formid", "formid")
    if not isinstance(data, dict):
        raise ErpError.of(wire.MALFORMED, "缺少 data", "data")
    return form, data


def _bill_keys(data: dict[str, Any]) -> list[str | int]:
    numbers, ids = data.get("Numbers"), data.get("Ids")
    if numbers and ids:
        raise ErpError.of(wire.MALFORMED, "Numbers 和 Ids 只能给一个", "Numbers")
    if numbers:
        if not isinstance(numbers, list) or not all(isinstance(n, str) and n for n in numbers):
            raise ErpError.of(wire.MALFORMED, "Numbers 必须是单据编号的列表", "Numbers")
        return list(numbers)
    if isinstance(ids, str) and ids.strip():
        try:
            return [int(part) for part in ids.split(",")]
        except ValueError:
            raise ErpError.of(wire.MALFORMED, "Ids 必须是逗号分隔的内码", "Ids") from None
    raise ErpError.of(wire.MALFORMED, "需要 Numbers 或 Ids", "Numbers")


def _reference_of(service: str | None, body: bytes) -> str | None:
    """The business reference of a request for the log: a Save's FExternalNo, else the
    first bill number it names."""
    if service in (None, "ValidateUser", "ExecuteBillQuery") or not body:
        return None
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return None
    data = obj.get("data") if isinstance(obj, dict) else None
    if not isinstance(data, dict):
        return None
    if service == "Save":
        model = data.get("Model")
        value = model.get("FExternalNo") if isinstance(model, dict) else None
    elif service == "View":
        value = data.get("Number")
    else:
        numbers = data.get("Numbers")
        value = numbers[0] if isinstance(numbers, list) and numbers else data.get("Ids")
    return value if isinstance(value, str) else None
