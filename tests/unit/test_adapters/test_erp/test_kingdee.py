"""The kingdee ERP adapter against docs/dialects/kingdee.md, with respx.

Every request goes to a scripted ``FakeErp`` (the respx side effect) written here from
the protocol document: it keeps bills by ``FExternalNo``, moves them through
A → B → C, answers ``ExecuteBillQuery`` rows, and can be told to lose an answer after
applying a call, to answer a given response once, or to lose every session.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
import respx

from adapters import (
    AdapterConfig,
    AmbiguousOutcome,
    ApprovalReceipt,
    ApprovalSubmission,
    Attachment,
    BudgetPosition,
    BusinessRejection,
    CallContext,
    Capability,
    ConfigurationError,
    ErpAdapter,
    UpstreamAuthenticationError,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamServerError,
    VoucherLine,
    VoucherReceipt,
    VoucherSubmission,
)
from adapters.erp.kingdee import KingdeeErpAdapter

from .._support import SleepRecorder, fast_policy

BASE_URL = "https://erp.test"
PREFIX = "/k3cloud/Kingdee.BOS.WebApi.ServicesStub."
LOGIN = PREFIX + "AuthService.ValidateUser.common.kdsvc"
ACCT_ID, USERNAME, PASSWORD = "HGW-UNIT", "kd-unit", "unit-password"
CTX = CallContext(request_id="req-1")
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
_SERVICE = re.compile(re.escape(PREFIX) + r"DynamicFormService\.(\w+)\.common\.kdsvc")
_EXTERNAL_NO = re.compile(r"FExternalNo = '((?:[^']|'')*)'")
_BUDGET_FILTER = re.compile(r"FCostCenter\.FNumber = '([^']*)' AND FPeriod = '([^']*)'")
_encoder = msgspec.json.Encoder(decimal_format="number")

MakeAdapter = Callable[..., KingdeeErpAdapter]


def reply(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=_encoder.encode(payload), headers={"Content-Type": "application/json", **(headers or {})})


def response_status(msg_code: int = 0, errors: list[tuple[str | None, str]] = (), entities: list[dict[str, Any]] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    return {
        "ErrorCode": 0 if msg_code == 0 else 500,
        "IsSuccess": msg_code == 0,
        "MsgCode": msg_code,
        "Errors": [{"FieldName": f, "Message": m, "DIndex": 0} for f, m in errors],
        "SuccessEntitys": list(entities),
        "SuccessMessages": [],
    }


def failure(msg_code: int, *errors: tuple[str | None, str], status: int = 200, nested: bool = False, headers: dict[str, str] | None = None) -> httpx.Response:
    payload: Any = {"Result": {"ResponseStatus": response_status(msg_code, list(errors) or [(None, "失败")])}}
    return reply([[payload]] if nested else payload, status, headers)


class FakeErp:
    """The ERP as the protocol describes it, small enough to script."""

    def __init__(self) -> None:
        self.bills: list[dict[str, Any]] = []
        self.calls: list[tuple[str, Any, httpx.Request]] = []
        self.sessions: set[str] = set()
        self.logins = 0
        self.budgets = {("CS-HR", "2026-11"): (Decimal("300000.00"), Decimal("12345.67"))}
        self.next: dict[str, list[Any]] = defaultdict(list)

    # -- scripting ----------------------------------------------------------------------

    def once(self, service: str, *behaviours: Any) -> None:
        """Each call of ``service`` takes the next behaviour: ``"drop_after"`` (apply, then
        lose the answer), ``"drop"`` (lose it unapplied), an ``httpx.Response`` (answer it
        unapplied) or a function of the body answering in the ERP's place."""
        self.next[service].extend(behaviours)

    def lose_sessions(self) -> None:
        self.sessions.clear()

    def count(self, service: str) -> int:
        return sum(1 for name, _, _ in self.calls if name == service)

    def bill(self, reference: str, form: str | None = None) -> dict[str, Any]:
        [found] = [b for b in self.bills if b["ref"] == reference and (form is None or b["form"] == form)]
        return found

    def add_bill(self, form: str, reference: str, status: str, **extra: Any) -> dict[str, Any]:
        bill = {
            "form": form, "id": 100001 + len(self.bills), "number": f"N{len(self.bills) + 1:04d}", "ref": reference,
            "status": status, "approve": None, "code": None, "reason": None, "cc": "CS-HR", "period": "2026-11",
            **extra,
        }
        self.bills.append(bill)
        return bill

    # -- serving ------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content, parse_float=Decimal)
        if request.url.path == LOGIN:
            self.calls.append(("ValidateUser", body, request))
            scripted = self.next["ValidateUser"].pop(0) if self.next["ValidateUser"] else None
            return scripted if scripted is not None else self._login(body)
        match = _SERVICE.fullmatch(request.url.path)
        assert match is not None, request.url.path
        service = match.group(1)
        self.calls.append((service, body, request))
        cookie = request.headers.get("Cookie", "")
        if cookie.removeprefix("kdservice-sessionid=") not in self.sessions:
            return failure(1, (None, "会话信息已丢失，请重新登录"), nested=service == "ExecuteBillQuery")
        behaviour = self.next[service].pop(0) if self.next[service] else None
        if isinstance(behaviour, httpx.Response):
            return behaviour
        if callable(behaviour):
            return behaviour(body)
        if behaviour == "drop":
            raise httpx.ReadTimeout("lost before applying", request=request)
        response = getattr(self, "_" + service.lower())(body)
        if behaviour == "drop_after":
            raise httpx.ReadTimeout("lost after applying", request=request)
        return response

    def _login(self, body: dict[str, Any]) -> httpx.Response:
        if (body["acctID"], body["username"], body["password"]) != (ACCT_ID, USERNAME, PASSWORD):
            return reply({"LoginResultType": 0, "Message": "用户名或密码错误", "KDSVCSessionId": None, "Context": None})
        self.logins += 1
        session = f"S{self.logins}"
        self.sessions.add(session)
        return reply(
            {"LoginResultType": 1, "Message": None, "KDSVCSessionId": session, "Context": {}},
            headers={"Set-Cookie": f"kdservice-sessionid={session}; Path=/"},
        )

    def _save(self, body: dict[str, Any]) -> httpx.Response:
        model = body["data"]["Model"]
        bill = self.add_bill(
            body["formid"], model["FExternalNo"], "A", model=model,
            cc=(model.get("FCostCenter") or {}).get("FNumber"), period=model.get("FPeriod"),
        )
        entity = {"Id": bill["id"], "Number": bill["number"], "DIndex": 0}
        return reply({"Result": {"ResponseStatus": response_status(entities=[entity]), "Id": bill["id"], "Number": bill["number"]}})

    def _transition(self, body: dict[str, Any], before: str, after: str) -> httpx.Response:
        [number] = body["data"]["Numbers"]
        found = [b for b in self.bills if b["number"] == number and b["form"] == body["formid"]]
        if not found:
            return failure(10, (None, "单据不存在"))
        bill = found[0]
        if bill["status"] not in before:
            return failure(12, (None, f"状态为 {bill['status']}"))
        bill["status"] = after
        if after == "C":
            bill["approve"] = "2026-11-30T00:00:00"
        return reply({"Result": {"ResponseStatus": response_status(entities=[{"Id": bill["id"], "Number": number, "DIndex": 0}])}})

    def _submit(self, body: dict[str, Any]) -> httpx.Response:
        return self._transition(body, "AD", "B")

    def _audit(self, body: dict[str, Any]) -> httpx.Response:
        return self._transition(body, "B", "C")

    def _executebillquery(self, body: dict[str, Any]) -> httpx.Response:
        data = body["data"]
        keys = data["FieldKeys"].split(",")
        if data["FormId"] == "BM_BudgetBalance":
            centre, period = _BUDGET_FILTER.fullmatch(data["FilterString"]).groups()  # type: ignore[union-attr]
            found = self.budgets.get((centre, period))
            if found is None:
                return reply([])
            values = {"FCostCenter.FNumber": centre, "FPeriod": period, "FBudgetAmount": found[0],
                      "FOccupiedAmount": found[1], "FCurrency.FNumber": "PRE001"}
            return reply([[values[key] for key in keys]])
        reference = _EXTERNAL_NO.fullmatch(data["FilterString"]).group(1).replace("''", "'")  # type: ignore[union-attr]
        rows = []
        for bill in self.bills:
            if bill["ref"] != reference or bill["form"] != data["FormId"]:
                continue
            values = {"FID": bill["id"], "FBillNo": bill["number"], "FDocumentStatus": bill["status"],
                      "FApproveDate": bill["approve"], "FRejectCode": bill["code"], "FRejectReason": bill["reason"],
                      "FCostCenter.FNumber": bill["cc"], "FPeriod": bill["period"]}
            rows.append([values[key] for key in keys])
        return reply(rows)


@pytest.fixture
def fake() -> FakeErp:
    return FakeErp()


@pytest.fixture
def router(fake: FakeErp) -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_called=False, assert_all_mocked=True) as mocked:
        mocked.post(path__startswith="/k3cloud/").mock(side_effect=fake)
        yield mocked


def config(**overrides: Any) -> AdapterConfig:
    settings: dict[str, Any] = {
        "name": "kd-erp",
        "base_url": BASE_URL,
        "credentials": {"acct_id": ACCT_ID, "username": USERNAME, "password": PASSWORD},
        "environment": "sandbox",
    }
    settings.update(overrides)
    return AdapterConfig(**settings)


@pytest.fixture
async def make_adapter(router: respx.MockRouter) -> AsyncIterator[MakeAdapter]:
    made: list[KingdeeErpAdapter] = []

    def make(*, sleep: SleepRecorder | None = None, **kwargs: Any) -> KingdeeErpAdapter:
        kwargs.setdefault("policy", fast_policy())
        adapter = KingdeeErpAdapter(kwargs.pop("config", None) or config(), transport=httpx.MockTransport(router.async_handler), **kwargs)
        adapter.client._sleep = sleep or SleepRecorder()
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def adapter(make_adapter: MakeAdapter) -> KingdeeErpAdapter:
    return make_adapter()


def approval(reference: str = "HGW-AP-0001", **overrides: Any) -> ApprovalSubmission:
    values: dict[str, Any] = {
        "reference": reference,
        "kind": "social_security_contribution",
        "amount": Decimal("86500"),
        "cost_center": "CS-HR",
        "period": "2026-11",
        "description": "2026-11 社保缴费",
        "attachments": (Attachment(kind="declaration", sha256=SHA, name="decl.pdf"),),
    }
    values.update(overrides)
    return ApprovalSubmission(**values)


def voucher(reference: str = "HGW-VC-0001", **overrides: Any) -> VoucherSubmission:
    values: dict[str, Any] = {
        "reference": reference,
        "date": dt.date(2026, 11, 30),
        "lines": (
            VoucherLine(account="6602.01", debit=Decimal("86500"), credit=Decimal("0"), cost_center="CS-HR",
                        description="社保费用"),
            VoucherLine(account="1002.01", debit=Decimal("0"), credit=Decimal("86500")),
        ),
        "description": "2026-11 社保缴费",
    }
    values.update(overrides)
    return VoucherSubmission(**values)


def services(fake: FakeErp) -> list[str]:
    return [name for name, _, _ in fake.calls]


WRITES = ("Save", "Submit", "Audit")


def writes(fake: FakeErp) -> list[str]:
    return [name for name in services(fake) if name in WRITES]


# -- declaration --------------------------------------------------------------------------------


def test_declares_an_erp_with_its_capabilities(adapter: KingdeeErpAdapter) -> None:
    assert isinstance(adapter, ErpAdapter)
    assert (adapter.kind, adapter.dialect) == ("erp", "kingdee")
    assert adapter.capabilities == {Capability.APPROVAL, Capability.VOUCHER, Capability.BUDGET_QUERY}
    assert adapter.required_credentials == ("acct_id", "username", "password")
    assert adapter.policy.retry.not_applied_statuses == frozenset({429, 503})


@pytest.mark.parametrize("missing", ["acct_id", "username", "password"])
def test_missing_credentials_are_a_configuration_error(missing: str) -> None:
    credentials = {"acct_id": ACCT_ID, "username": USERNAME, "password": PASSWORD}
    del credentials[missing]
    with pytest.raises(ConfigurationError, match=missing):
        KingdeeErpAdapter(config(credentials=credentials))


@pytest.mark.parametrize("options", [{"lcid": "English"}, {"expense_items": {"reimbursement": 7}}, {"expense_items": []}])
def test_bad_options_are_a_configuration_error(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        KingdeeErpAdapter(config(options=options))


# -- session ------------------------------------------------------------------------------------


async def test_logs_in_once_and_sends_the_session_cookie(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    await adapter.budget("CS-HR", "2026-11", context=CTX)
    await adapter.budget("CS-HR", "2026-11", context=CTX)
    assert services(fake) == ["ValidateUser", "ExecuteBillQuery", "ExecuteBillQuery"]
    login_body = fake.calls[0][1]
    assert login_body == {"acctID": ACCT_ID, "username": USERNAME, "password": PASSWORD, "lcid": 2052}
    for _, _, request in fake.calls[1:]:
        assert request.headers["Cookie"] == "kdservice-sessionid=S1"
        assert request.headers["X-Request-ID"] == "req-1"
        assert request.headers["Content-Type"] == "application/json"


async def test_lcid_comes_from_the_options(make_adapter: MakeAdapter, fake: FakeErp) -> None:
    await make_adapter(config=config(options={"lcid": 1033})).budget("CS-HR", "2026-11", context=CTX)
    assert fake.calls[0][1]["lcid"] == 1033


async def test_a_lost_session_is_renewed_once_and_the_call_repeated(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    await adapter.budget("CS-HR", "2026-11", context=CTX)
    fake.lose_sessions()
    receipt = await adapter.submit_approval(approval(), context=CTX)
    assert receipt.status == "pending"
    assert fake.logins == 2
    assert services(fake)[:4] == ["ValidateUser", "ExecuteBillQuery", "ExecuteBillQuery", "ValidateUser"]
    assert fake.count("Save") == 1  # the lost call was the lookup; Save went out once, in the new session
    assert fake.calls[-1][2].headers["Cookie"] == "kdservice-sessionid=S2"


async def test_a_save_refused_for_a_lost_session_is_repeated_in_a_new_one(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    fake.once("Save", failure(1, (None, "会话信息已丢失，请重新登录")))
    receipt = await adapter.post_voucher(voucher(), context=CTX)
    assert receipt.status == "posted"
    assert fake.count("Save") == 2 and len(fake.bills) == 1 and fake.logins == 2


async def test_a_session_lost_twice_is_an_authentication_error(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    fake.once("ExecuteBillQuery", failure(1, (None, "lost"), nested=True), failure(1, (None, "lost"), nested=True))
    with pytest.raises(UpstreamAuthenticationError) as caught:
        await adapter.budget("CS-HR", "2026-11", context=CTX)
    assert caught.value.upstream_code == "1"
    assert fake.logins == 2


async def test_refused_credentials(make_adapter: MakeAdapter, fake: FakeErp) -> None:
    adapter = make_adapter(config=config(credentials={"acct_id": ACCT_ID, "username": USERNAME, "password": "wrong"}))
    with pytest.raises(UpstreamAuthenticationError) as caught:
        await adapter.find_voucher("HGW-VC-0001", context=CTX)
    assert caught.value.upstream_message == "用户名或密码错误"
    assert services(fake) == ["ValidateUser"]


async def test_a_login_answer_without_a_session_is_a_protocol_error(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    fake.once("ValidateUser", reply({"LoginResultType": 1, "Message": None, "KDSVCSessionId": None}))
    with pytest.raises(UpstreamProtocolError):
        await adapter.budget("CS-HR", "2026-11", context=CTX)


async def test_the_user_without_rights_is_an_authentication_error(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    fake.once("Audit", failure(2, (None, "没有审核权限")))
    with pytest.raises(UpstreamAuthenticationError) as caught:
        await adapter.post_voucher(voucher(), context=CTX)
    assert caught.value.upstream_code == "2"


# -- budgets --------------------------------------------------------------------------------------


async def test_budget_reads_the_budget_balance_exactly(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    fake.budgets[("GZ-HR", "2026-12")] = (Decimal("123456789.07"), Decimal("0.1"))
    position = await adapter.budget("GZ-HR", "2026-12", context=CTX)
    assert position == BudgetPosition(
        cost_center="GZ-HR", period="2026-12", budget=Decimal("123456789.07"), committed=Decimal("0.10"), currency="CNY"
    )
    query = fake.calls[-1][1]["data"]
    assert query["FormId"] == "BM_BudgetBalance"
    assert query["FilterString"] == "FCostCenter.FNumber = 'GZ-HR' AND FPeriod = '2026-12'"
    assert query["FieldKeys"].split(",")[:4] == ["FCostCenter.FNumber", "FPeriod", "FBudgetAmount", "FOccupiedAmount"]


async def test_no_budget_row_is_not_found(adapter: KingdeeErpAdapter) -> None:
    with pytest.raises(UpstreamNotFound):
        await adapter.budget("CS-HR", "2031-01", context=CTX)


async def test_a_failed_query_is_refused_with_the_erp_words(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    fake.once("ExecuteBillQuery", failure(9, ("FBudgetAmount", "字段 FBudgetAmount 不存在"), nested=True))
    with pytest.raises(BusinessRejection) as caught:
        await adapter.budget("CS-HR", "2026-11", context=CTX)
    assert (caught.value.upstream_code, caught.value.upstream_message) == ("9", "字段 FBudgetAmount 不存在")


@pytest.mark.parametrize(
    "answer",
    [
        reply({"rows": []}),
        reply([["CS-HR", "2026-11"]]),  # fewer values than field keys
        reply([["CS-HR", "2026-11", "300000.00", 0, "PRE001"]]),  # an amount as text
        httpx.Response(200, content=b"<html>"),
    ],
)
async def test_unreadable_query_answers_are_protocol_errors(
    adapter: KingdeeErpAdapter, fake: FakeErp, answer: httpx.Response
) -> None:
    fake.once("ExecuteBillQuery", answer)
    with pytest.raises(UpstreamProtocolError):
        await adapter.budget("CS-HR", "2026-11", context=CTX)


async def test_an_erp_failure_on_a_query_is_retried_then_unavailable(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    fake.once("ExecuteBillQuery", *[failure(4, (None, "内部错误"), nested=True)] * 3)
    with pytest.raises(UpstreamServerError):
        await adapter.budget("CS-HR", "2026-11", context=CTX)
    assert fake.count("ExecuteBillQuery") == 3


async def test_call_limit_is_retried_after_the_wait(make_adapter: MakeAdapter, fake: FakeErp) -> None:
    sleeps = SleepRecorder()
    adapter = make_adapter(sleep=sleeps, policy=fast_policy(max_retry_after=10.0))
    fake.once("ExecuteBillQuery", failure(14, (None, "调用次数超过限制"), status=429, headers={"Retry-After": "3"}))
    position = await adapter.budget("CS-HR", "2026-11", context=CTX)
    assert position.committed == Decimal("12345.67")
    assert sleeps.waits == [3.0]


# -- approvals ------------------------------------------------------------------------------------


async def test_submit_approval_saves_and_submits_an_expense_request(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    receipt = await adapter.submit_approval(approval(), context=CTX)
    assert receipt == ApprovalReceipt(
        reference="HGW-AP-0001",
        document_number="N0001",
        status="pending",
        budget=BudgetPosition(cost_center="CS-HR", period="2026-11", budget=Decimal("300000.00"), committed=Decimal("12345.67")),
    )
    assert writes(fake) == ["Save", "Submit"]  # the approvers audit, not the adapter
    save_body = next(body for name, body, _ in fake.calls if name == "Save")
    assert save_body["formid"] == "ER_ExpenseRequest"
    assert save_body["data"]["Model"] == {
        "FID": 0,
        "FExternalNo": "HGW-AP-0001",
        "FExpenseItem": {"FNumber": "FY001"},
        "FCostCenter": {"FNumber": "CS-HR"},
        "FPeriod": "2026-11",
        "FAmount": Decimal("86500.00"),
        "FCurrency": {"FNumber": "PRE001"},
        "FDescription": "2026-11 社保缴费",
        "FAttachments": [{"FKind": "declaration", "FSha256": SHA, "FName": "decl.pdf"}],
    }
    raw = next(request for name, _, request in fake.calls if name == "Save").content
    assert b'"FAmount":86500.00' in raw  # a JSON number with two places, not a string
    submit_body = next(body for name, body, _ in fake.calls if name == "Submit")
    assert submit_body == {"formid": "ER_ExpenseRequest", "data": {"Numbers": ["N0001"]}}
    lookup = next(body for name, body, _ in fake.calls if name == "ExecuteBillQuery")["data"]
    assert lookup["FormId"] == "ER_ExpenseRequest" and lookup["FilterString"] == "FExternalNo = 'HGW-AP-0001'"


@pytest.mark.parametrize(
    ("kind", "options", "item"),
    [
        ("reimbursement", {}, "FY002"),
        ("other", {}, "FY999"),
        ("FY123", {}, "FY123"),  # an operator's own expense item passes through
        ("reimbursement", {"expense_items": {"reimbursement": "FY777"}}, "FY777"),
    ],
)
async def test_approval_kinds_map_to_expense_items(
    make_adapter: MakeAdapter, fake: FakeErp, kind: str, options: dict[str, Any], item: str
) -> None:
    await make_adapter(config=config(options=options)).submit_approval(approval(kind=kind), context=CTX)
    assert fake.bill("HGW-AP-0001")["model"]["FExpenseItem"] == {"FNumber": item}


async def test_a_reference_with_a_quote_is_escaped_in_the_filter(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    await adapter.submit_approval(approval("O'Brien-1"), context=CTX)
    assert fake.calls[1][1]["data"]["FilterString"] == "FExternalNo = 'O''Brien-1'"
    assert fake.bill("O'Brien-1")["status"] == "B"


async def test_find_approval_reports_each_status(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    assert await adapter.find_approval("HGW-AP-0001", context=CTX) is None
    bill = fake.add_bill("ER_ExpenseRequest", "HGW-AP-0001", "A")
    assert (await adapter.find_approval("HGW-AP-0001", context=CTX)).status == "pending"  # type: ignore[union-attr]
    bill["status"] = "B"
    assert (await adapter.find_approval("HGW-AP-0001", context=CTX)).status == "pending"  # type: ignore[union-attr]
    bill.update(status="C", approve="2026-11-23T00:00:00")
    approved = await adapter.find_approval("HGW-AP-0001", context=CTX)
    assert approved is not None and approved.status == "approved" and approved.decided_on == dt.date(2026, 11, 23)
    assert approved.document_number == "N0001" and approved.budget is not None
    assert approved.reason_code is None
    bill.update(status="D", approve="2026-11-24T00:00:00", code="BUDGET_EXCEEDED", reason="预算余额不足")
    rejected = await adapter.find_approval("HGW-AP-0001", context=CTX)
    assert rejected == ApprovalReceipt(
        reference="HGW-AP-0001", document_number="N0001", status="rejected", budget=approved.budget,
        decided_on=dt.date(2026, 11, 24), reason_code="BUDGET_EXCEEDED", reason_message="预算余额不足",
    )
    assert fake.count("Save") == 0


async def test_an_approval_without_a_budget_row_carries_none(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    fake.add_bill("ER_ExpenseRequest", "HGW-AP-0001", "B", cc="GZ-HR", period="2030-01")
    receipt = await adapter.find_approval("HGW-AP-0001", context=CTX)
    assert receipt is not None and receipt.budget is None


@pytest.mark.parametrize(
    ("field_name", "field"),
    [
        ("FCostCenter", "cost_center"),
        ("FPeriod", "period"),
        ("FAmount", "amount"),
        ("FExpenseItem", "kind"),
        ("FExternalNo", "reference"),
        ("FAttachments", "attachments"),
        ("FCurrency", None),
    ],
)
async def test_save_refusals_name_the_canonical_field(
    adapter: KingdeeErpAdapter, fake: FakeErp, field_name: str, field: str | None
) -> None:
    fake.once("Save", failure(11, (field_name, "无效"), (None, "另一个问题")))
    with pytest.raises(BusinessRejection) as caught:
        await adapter.submit_approval(approval(), context=CTX)
    assert caught.value.field == field
    assert caught.value.upstream_code == "11"
    assert caught.value.upstream_message == "无效; 另一个问题"
    assert fake.count("Submit") == 0 and fake.bills == []


async def test_an_approval_found_submitted_is_not_saved_again(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    fake.add_bill("ER_ExpenseRequest", "HGW-AP-0001", "B")
    receipt = await adapter.submit_approval(approval(), context=CTX)
    assert receipt.status == "pending" and receipt.document_number == "N0001"
    assert writes(fake) == []


async def test_an_approval_found_saved_is_submitted(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    fake.add_bill("ER_ExpenseRequest", "HGW-AP-0001", "A")
    await adapter.submit_approval(approval(), context=CTX)
    assert writes(fake) == ["Submit"] and fake.bill("HGW-AP-0001")["status"] == "B"


async def test_an_approval_found_rejected_is_answered_as_is(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    fake.add_bill("ER_ExpenseRequest", "HGW-AP-0001", "D", code="REJECTED", reason="附件不全", approve="2026-11-22T00:00:00")
    receipt = await adapter.submit_approval(approval(), context=CTX)
    assert (receipt.status, receipt.reason_message) == ("rejected", "附件不全")
    assert writes(fake) == []


# -- exactly once ------------------------------------------------------------------------------------


async def test_a_save_lost_after_applying_is_found_and_continued(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    fake.once("Save", "drop_after")
    receipt = await adapter.submit_approval(approval(), context=CTX)
    assert receipt.status == "pending"
    assert writes(fake) == ["Save", "Submit"] and len(fake.bills) == 1
    assert fake.bill("HGW-AP-0001")["status"] == "B"


async def test_a_save_lost_before_applying_is_sent_again(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    fake.once("Save", "drop")
    await adapter.submit_approval(approval(), context=CTX)
    assert writes(fake) == ["Save", "Save", "Submit"] and len(fake.bills) == 1


async def test_an_erp_failure_after_a_save_is_asked_about(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    fake.once("Save", failure(4, (None, "服务器内部错误"), status=500))
    await adapter.post_voucher(voucher(), context=CTX)
    # HTTP 500 after a write is ambiguous: the adapter asked, found nothing, saved again.
    assert writes(fake) == ["Save", "Save", "Submit", "Audit"] and len(fake.bills) == 1


async def test_msgcode_4_with_http_200_after_a_write_is_ambiguous(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    fake.once("Submit", failure(4, (None, "服务器内部错误")))
    await adapter.post_voucher(voucher(), context=CTX)
    assert writes(fake) == ["Save", "Submit", "Submit", "Audit"]


async def test_a_503_on_a_write_applied_nothing_and_is_retried(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    fake.once("Save", failure(4, (None, "忙"), status=503))
    await adapter.post_voucher(voucher(), context=CTX)
    assert writes(fake) == ["Save", "Save", "Submit", "Audit"] and len(fake.bills) == 1
    lookups_before_save = services(fake)[: services(fake).index("Save")].count("ExecuteBillQuery")
    assert services(fake).count("ExecuteBillQuery") == lookups_before_save + 1  # no lookup between the two Saves


@pytest.mark.parametrize("step", ["Submit", "Audit"])
async def test_a_voucher_step_lost_after_applying_is_not_repeated(
    adapter: KingdeeErpAdapter, fake: FakeErp, step: str
) -> None:
    fake.once(step, "drop_after")
    receipt = await adapter.post_voucher(voucher(), context=CTX)
    assert receipt == VoucherReceipt(
        reference="HGW-VC-0001", document_number="N0001", status="posted", posted_on=dt.date(2026, 11, 30)
    )
    assert writes(fake) == ["Save", "Submit", "Audit"]


async def test_a_step_someone_else_already_did_is_carried_on(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    bill = fake.add_bill("GL_VOUCHER", "HGW-VC-0001", "A")

    def submitted_by_someone_first(body: dict[str, Any]) -> httpx.Response:
        bill["status"] = "B"
        return failure(12, (None, "单据状态为 B，不能提交"))

    fake.once("Submit", submitted_by_someone_first)
    receipt = await adapter.post_voucher(voucher(), context=CTX)
    assert receipt.status == "posted"
    assert writes(fake) == ["Submit", "Audit"]


async def test_not_operable_without_any_move_is_a_refusal(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    fake.add_bill("GL_VOUCHER", "HGW-VC-0001", "A")
    fake.once("Submit", failure(12, (None, "单据已锁定")))
    with pytest.raises(BusinessRejection) as caught:
        await adapter.post_voucher(voucher(), context=CTX)
    assert caught.value.upstream_code == "12"


async def test_when_the_erp_cannot_be_asked_the_outcome_stays_ambiguous(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    fake.once("Save", "drop_after")
    fake.once("ExecuteBillQuery", reply([]))  # the first lookup (before saving) finds nothing
    fake.once("ExecuteBillQuery", *[failure(4, (None, "内部错误"), nested=True)] * 3)
    with pytest.raises(AmbiguousOutcome):
        await adapter.post_voucher(voucher(), context=CTX)
    assert fake.count("Save") == 1


async def test_a_save_lost_every_round_without_landing_is_unavailable(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    fake.once("Save", "drop", "drop", "drop")
    with pytest.raises(UpstreamServerError):
        await adapter.post_voucher(voucher(), context=CTX)
    assert fake.count("Save") == 3 and fake.bills == []


# -- vouchers -------------------------------------------------------------------------------------


async def test_post_voucher_saves_submits_and_audits(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    receipt = await adapter.post_voucher(voucher(), context=CTX)
    assert receipt == VoucherReceipt(
        reference="HGW-VC-0001", document_number="N0001", status="posted", posted_on=dt.date(2026, 11, 30)
    )
    assert writes(fake) == ["Save", "Submit", "Audit"]
    model = fake.bill("HGW-VC-0001")["model"]
    assert model == {
        "FID": 0,
        "FExternalNo": "HGW-VC-0001",
        "FAccountBookID": {"FNumber": "001"},
        "FVOUCHERGROUPID": {"FNumber": "PRE001"},
        "FDate": "2026-11-30",
        "FEntity": [
            {"FACCOUNTID": {"FNumber": "6602.01"}, "FDEBIT": Decimal("86500.00"), "FCREDIT": Decimal("0.00"),
             "FEXPLANATION": "社保费用", "FCOSTCENTER": {"FNumber": "CS-HR"}},
            {"FACCOUNTID": {"FNumber": "1002.01"}, "FDEBIT": Decimal("0.00"), "FCREDIT": Decimal("86500.00")},
        ],
        "FExplanation": "2026-11 社保缴费",
    }


async def test_account_book_and_voucher_group_come_from_the_options(make_adapter: MakeAdapter, fake: FakeErp) -> None:
    adapter = make_adapter(config=config(options={"account_book": "002", "voucher_group": "PRE002"}))
    await adapter.post_voucher(voucher(attachments=(Attachment(kind="bank_receipt", sha256=SHA),)), context=CTX)
    model = fake.bill("HGW-VC-0001")["model"]
    assert model["FAccountBookID"] == {"FNumber": "002"} and model["FVOUCHERGROUPID"] == {"FNumber": "PRE002"}
    assert model["FAttachments"] == [{"FKind": "bank_receipt", "FSha256": SHA, "FName": None}]


@pytest.mark.parametrize(
    ("field_name", "field"),
    [
        ("FEntity", "lines"),
        ("FEntity[1].FACCOUNTID", "lines[0].account"),
        ("FEntity[2].FCOSTCENTER", "lines[1].cost_center"),
        ("FEntity[2].FCREDIT", "lines[1].credit"),
        ("FEntity[1].FUNKNOWN", "lines[0]"),
        ("FDate", "date"),
        ("FExplanation", "description"),
        ("FAccountBookID", None),
    ],
)
async def test_voucher_refusals_name_the_canonical_field(
    adapter: KingdeeErpAdapter, fake: FakeErp, field_name: str, field: str | None
) -> None:
    fake.once("Save", failure(11, (field_name, "无效")))
    with pytest.raises(BusinessRejection) as caught:
        await adapter.post_voucher(voucher(), context=CTX)
    assert caught.value.field == field and caught.value.upstream_code == "11"
    assert writes(fake) == ["Save"]


async def test_find_voucher_reports_each_status(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    assert await adapter.find_voucher("HGW-VC-0001", context=CTX) is None
    bill = fake.add_bill("GL_VOUCHER", "HGW-VC-0001", "A")
    for status in ("A", "B"):
        bill["status"] = status
        assert await adapter.find_voucher("HGW-VC-0001", context=CTX) == VoucherReceipt(
            reference="HGW-VC-0001", document_number="N0001", status="pending"
        )
    bill.update(status="C", approve="2026-12-01T00:00:00")
    assert (await adapter.find_voucher("HGW-VC-0001", context=CTX)).posted_on == dt.date(2026, 12, 1)  # type: ignore[union-attr]
    bill.update(status="D", code="REJECTED", reason="科目错误")
    assert await adapter.find_voucher("HGW-VC-0001", context=CTX) == VoucherReceipt(
        reference="HGW-VC-0001", document_number="N0001", status="rejected",
        reason_code="REJECTED", reason_message="科目错误",
    )
    lookup = fake.calls[-1][1]["data"]
    assert lookup["FormId"] == "GL_VOUCHER" and lookup["FilterString"] == "FExternalNo = 'HGW-VC-0001'"


@pytest.mark.parametrize(("status", "expected"), [("B", ["Audit"]), ("C", []), ("D", [])])
async def test_a_voucher_found_part_way_is_continued_from_its_status(
    adapter: KingdeeErpAdapter, fake: FakeErp, status: str, expected: list[str]
) -> None:
    fake.add_bill("GL_VOUCHER", "HGW-VC-0001", status, approve="2026-11-30T00:00:00" if status == "C" else None)
    receipt = await adapter.post_voucher(voucher(), context=CTX)
    assert writes(fake) == expected
    assert receipt.status == {"B": "posted", "C": "posted", "D": "rejected"}[status]


async def test_the_first_saved_of_several_bills_is_the_one_continued(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    fake.add_bill("GL_VOUCHER", "HGW-VC-0001", "C", approve="2026-11-30T00:00:00")
    fake.add_bill("GL_VOUCHER", "HGW-VC-0001", "A")
    receipt = await adapter.post_voucher(voucher(), context=CTX)
    assert receipt.document_number == "N0001" and writes(fake) == []
    assert fake.calls[-1][1]["data"]["OrderString"] == "FID ASC"


@pytest.mark.parametrize(
    "row",
    [
        ["x", "N1", "C", None, None, None],  # FID not an integer
        [100001, "N1", "Z", None, None, None],  # unknown status
        [100001, "N1", "C", "30/11/2026", None, None],  # unreadable date
    ],
)
async def test_unreadable_bill_rows_are_protocol_errors(adapter: KingdeeErpAdapter, fake: FakeErp, row: list[Any]) -> None:
    fake.once("ExecuteBillQuery", reply([row]))
    with pytest.raises(UpstreamProtocolError):
        await adapter.find_voucher("HGW-VC-0001", context=CTX)


async def test_a_success_envelope_without_a_number_is_a_protocol_error(adapter: KingdeeErpAdapter, fake: FakeErp) -> None:
    fake.once("Save", reply({"Result": {"ResponseStatus": response_status(), "Id": 100001}}))
    with pytest.raises(UpstreamProtocolError):
        await adapter.post_voucher(voucher(), context=CTX)
