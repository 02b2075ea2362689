"""The kingdee mock ERP against docs/dialects/kingdee.md, over real HTTP.

Request bodies are written here by hand from the protocol document, so the tests
check the mock against the description rather than against its own helpers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest

from mocks.faults import Fault, parse_fault
from mocks.kingdee import KingdeeErp

PREFIX = "/k3cloud/Kingdee.BOS.WebApi.ServicesStub."
LOGIN = PREFIX + "AuthService.ValidateUser.common.kdsvc"
ACCT_ID = "HGW-UNIT"
USERNAME = "kd-api"
PASSWORD = "kd-unit-password"
CHINA = timezone(timedelta(hours=8))
# 2026-11-21 09:30:00 China time.
NOW = datetime(2026, 11, 21, 9, 30, tzinfo=CHINA).timestamp()
DECISION = 5.0
TTL = 600.0


def path(service: str) -> str:
    return f"{PREFIX}DynamicFormService.{service}.common.kdsvc"


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def erp(clock: Clock) -> Iterator[KingdeeErp]:
    with KingdeeErp(
        acct_id=ACCT_ID, username=USERNAME, password=PASSWORD, clock=clock, session_ttl=TTL, decision_seconds=DECISION
    ) as server:
        yield server


def decimal_json(response: httpx.Response) -> Any:
    return json.loads(response.content, parse_float=Decimal)


class Client:
    """A hand-written WebAPI caller: the session cookie is set explicitly on each call."""

    def __init__(self, erp: KingdeeErp) -> None:
        self.http = httpx.Client(base_url=erp.base_url, timeout=5.0)
        self.session: str | None = None

    def login(self, **overrides: Any) -> httpx.Response:
        body = {"acctID": ACCT_ID, "username": USERNAME, "password": PASSWORD, "lcid": 2052, **overrides}
        response = self.http.post(LOGIN, json=body)
        self.http.cookies.clear()  # the jar must not carry the session behind the tests' back
        if response.json().get("LoginResultType") == 1:
            self.session = response.json()["KDSVCSessionId"]
        return response

    def post(self, service: str, body: Any, *, session: str | None = None, raw: bytes | None = None) -> httpx.Response:
        cookie = session if session is not None else self.session
        headers = {"Content-Type": "application/json"}
        if cookie:
            headers["Cookie"] = f"kdservice-sessionid={cookie}"
        content = raw if raw is not None else json.dumps(body, default=str).encode()
        response = self.http.post(path(service), content=content, headers=headers)
        self.http.cookies.clear()
        return response

    def status(self, service: str, body: Any) -> dict[str, Any]:
        response = self.post(service, body)
        assert response.status_code == 200, response.text
        return decimal_json(response)["Result"]["ResponseStatus"]

    def query(self, form: str, keys: str, filter_string: str = "", **extra: Any) -> Any:
        body = {"data": {"FormId": form, "FieldKeys": keys, "FilterString": filter_string, **extra}}
        response = self.post("ExecuteBillQuery", body)
        assert response.status_code == 200, response.text
        return decimal_json(response)


@pytest.fixture
def client(erp: KingdeeErp) -> Iterator[Client]:
    c = Client(erp)
    assert c.login().json()["LoginResultType"] == 1
    yield c
    c.http.close()


def expense_model(reference: str = "HGW-AP-0001", **overrides: Any) -> dict[str, Any]:
    model: dict[str, Any] = {
        "FID": 0,
        "FExternalNo": reference,
        "FExpenseItem": {"FNumber": "FY001"},
        "FCostCenter": {"FNumber": "CS-HR"},
        "FPeriod": "2026-11",
        "FAmount": 86500.00,
        "FCurrency": {"FNumber": "PRE001"},
        "FDescription": "2026-11 社保缴费",
    }
    model.update(overrides)
    return model


def voucher_model(reference: str = "HGW-VC-0001", amount: float = 86500.00, **overrides: Any) -> dict[str, Any]:
    model: dict[str, Any] = {
        "FID": 0,
        "FExternalNo": reference,
        "FAccountBookID": {"FNumber": "001"},
        "FVOUCHERGROUPID": {"FNumber": "PRE001"},
        "FDate": "2026-11-30",
        "FExplanation": "2026-11 社保缴费",
        "FEntity": [
            {"FEXPLANATION": "社保费用", "FACCOUNTID": {"FNumber": "6602.01"}, "FCOSTCENTER": {"FNumber": "CS-HR"},
             "FDEBIT": amount, "FCREDIT": 0},
            {"FEXPLANATION": "银行付款", "FACCOUNTID": {"FNumber": "1002.01"}, "FDEBIT": 0, "FCREDIT": amount},
        ],
    }
    model.update(overrides)
    return model


def save(client: Client, form: str, model: dict[str, Any]) -> dict[str, Any]:
    response = client.post("Save", {"formid": form, "data": {"Model": model}})
    assert response.status_code == 200
    return response.json()["Result"]


def status_of(client: Client, form: str, reference: str) -> str:
    [[status]] = client.query(form, "FDocumentStatus", f"FExternalNo = '{reference}'")
    return status


def field_names(status: dict[str, Any]) -> list[str | None]:
    return [error["FieldName"] for error in status["Errors"]]


# -- session ------------------------------------------------------------------------------


def test_login_issues_a_session_as_body_field_and_cookie(erp: KingdeeErp) -> None:
    c = Client(erp)
    response = c.http.post(LOGIN, json={"acctID": ACCT_ID, "username": USERNAME, "password": PASSWORD, "lcid": 2052})
    body = response.json()
    assert response.status_code == 200 and body["LoginResultType"] == 1 and body["Message"] is None
    assert body["Context"]["DBid"] == ACCT_ID and body["Context"]["UserName"] == USERNAME
    assert response.cookies["kdservice-sessionid"] == body["KDSVCSessionId"]
    assert "HttpOnly" in response.headers["set-cookie"]


@pytest.mark.parametrize(
    "overrides",
    [{"password": "wrong"}, {"acctID": "OTHER"}, {"username": "someone"}, {"lcid": "2052"}, {"lcid": None}],
)
def test_login_refusals_issue_no_session(erp: KingdeeErp, overrides: dict[str, Any]) -> None:
    response = Client(erp).login(**overrides)
    body = response.json()
    assert response.status_code == 200 and body["LoginResultType"] == 0
    assert body["KDSVCSessionId"] is None and body["Message"]
    assert "set-cookie" not in response.headers


def test_login_body_that_is_not_json_is_refused(erp: KingdeeErp) -> None:
    response = httpx.post(erp.base_url + LOGIN, content=b"acctID=x")
    assert response.json()["LoginResultType"] == 0


def test_calls_without_a_valid_session_are_session_lost(client: Client) -> None:
    body = {"formid": "ER_ExpenseRequest", "data": {"Model": expense_model()}}
    for cookie in ("", "not-a-session"):
        status = decimal_json(client.post("Save", body, session=cookie))["Result"]["ResponseStatus"]
        assert status["IsSuccess"] is False and status["MsgCode"] == 1 and status["ErrorCode"] == 500
        assert status["Errors"][0]["Message"] == "会话信息已丢失，请重新登录"
    assert client.query("ER_ExpenseRequest", "FID") == []  # nothing was saved


def test_a_session_expires_after_the_ttl_and_a_new_login_does_not_end_older_ones(client: Client, clock: Clock) -> None:
    first = client.session
    clock.advance(TTL / 2)
    client.login()
    second = client.session
    assert first != second
    assert client.query("ER_ExpenseRequest", "FID") == []  # second session
    client.session = first
    assert client.query("ER_ExpenseRequest", "FID") == []  # the first one still works
    clock.advance(TTL / 2)
    [[lost]] = client.query("ER_ExpenseRequest", "FID")  # first expired: nested failure
    assert lost["Result"]["ResponseStatus"]["MsgCode"] == 1
    client.session = second
    assert client.query("ER_ExpenseRequest", "FID") == []


def test_expire_sessions_from_python_and_control_plane(client: Client, erp: KingdeeErp) -> None:
    erp.expire_sessions()
    assert client.status("Submit", {"formid": "GL_VOUCHER", "data": {"Numbers": ["X"]}})["MsgCode"] == 1
    client.login()
    assert httpx.post(erp.base_url + "/__mock__/expire-sessions").status_code == 204
    assert client.status("Submit", {"formid": "GL_VOUCHER", "data": {"Numbers": ["X"]}})["MsgCode"] == 1
    client.login()
    assert client.status("Submit", {"formid": "GL_VOUCHER", "data": {"Numbers": ["X"]}})["MsgCode"] == 10


# -- Save -------------------------------------------------------------------------------


def test_save_creates_an_expense_request_in_status_a(client: Client) -> None:
    result = save(client, "ER_ExpenseRequest", expense_model())
    status = result["ResponseStatus"]
    assert status["IsSuccess"] is True and status["MsgCode"] == 0 and status["ErrorCode"] == 0
    assert result["Id"] == 100001 and result["Number"] == "FYSQ000001"
    assert status["SuccessEntitys"] == [{"Id": 100001, "Number": "FYSQ000001", "DIndex": 0}]
    rows = client.query(
        "ER_ExpenseRequest",
        "FID,FBillNo,FExternalNo,FDocumentStatus,FExpenseItem.FNumber,FCostCenter.FNumber,FPeriod,FAmount,"
        "FCreateDate,FSubmitDate,FApproveDate,FRejectCode",
        "FExternalNo = 'HGW-AP-0001'",
    )
    assert rows == [
        [100001, "FYSQ000001", "HGW-AP-0001", "A", "FY001", "CS-HR", "2026-11", Decimal("86500.0"),
         "2026-11-21T00:00:00", None, None, None]
    ]


def test_a_second_save_with_the_same_external_number_makes_a_second_bill(client: Client, erp: KingdeeErp) -> None:
    save(client, "ER_ExpenseRequest", expense_model())
    second = save(client, "ER_ExpenseRequest", expense_model())
    assert second["Number"] == "FYSQ000002"
    assert [row[0] for row in client.query("ER_ExpenseRequest", "FBillNo", "FExternalNo = 'HGW-AP-0001'")] == [
        "FYSQ000001", "FYSQ000002"
    ]
    assert len(erp.bills("ER_ExpenseRequest")) == 2


def test_expense_request_validation_lists_every_offending_field(client: Client) -> None:
    model = expense_model(
        FExternalNo="",
        FExpenseItem={"FNumber": "FY404"},
        FCostCenter={"FNumber": "SZ-HR"},
        FAmount=0,
        FCurrency={"FNumber": "PRE007"},
        FAttachments=[{"FKind": "x", "FSha256": "ABC"}],
    )
    status = save(client, "ER_ExpenseRequest", model)["ResponseStatus"]
    assert status["IsSuccess"] is False and status["MsgCode"] == 11
    assert field_names(status) == [
        "FExternalNo", "FExpenseItem", "FCostCenter", "FAmount", "FCurrency", "FAttachments"
    ]
    assert client.query("ER_ExpenseRequest", "FID") == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"FPeriod": "2027-01"}, "FPeriod"),  # no budget
        ({"FPeriod": "2026-13"}, "FPeriod"),
        ({"FAmount": 10.005}, "FAmount"),
        ({"FAmount": "100.00"}, "FAmount"),
        ({"FAmount": -5}, "FAmount"),
        ({"FDescription": "x" * 256}, "FDescription"),
    ],
)
def test_expense_request_single_field_refusals(client: Client, overrides: dict[str, Any], field: str) -> None:
    raw = json.dumps({"formid": "ER_ExpenseRequest", "data": {"Model": expense_model(**overrides)}})
    status = decimal_json(client.post("Save", None, raw=raw.encode()))["Result"]["ResponseStatus"]
    assert status["MsgCode"] == 11 and field_names(status) == [field]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"formid": "ER_ExpenseRequest", "data": {"Model": {**expense_model(), "FID": 100001}}}, "FID"),
        ({"formid": "XX_Unknown", "data": {"Model": expense_model()}}, "formid"),
        ({"formid": "ER_ExpenseRequest", "data": {}}, "Model"),
        ({"data": {"Model": expense_model()}}, "formid"),
    ],
)
def test_malformed_saves_are_msgcode_8(client: Client, body: dict[str, Any], field: str) -> None:
    status = client.status("Save", body)
    assert status["MsgCode"] == 8 and field_names(status) == [field]


def test_a_body_that_is_not_json_is_msgcode_8(client: Client) -> None:
    status = decimal_json(client.post("Save", None, raw=b"{not json"))["Result"]["ResponseStatus"]
    assert status["MsgCode"] == 8


def test_voucher_numbers_count_per_period(client: Client) -> None:
    assert save(client, "GL_VOUCHER", voucher_model("V1"))["Number"] == "PZ-202611-0001"
    assert save(client, "GL_VOUCHER", voucher_model("V2"))["Number"] == "PZ-202611-0002"
    assert save(client, "GL_VOUCHER", voucher_model("V3", FDate="2026-12-01"))["Number"] == "PZ-202612-0001"


def _entity(account: str, debit: float = 0, credit: float = 0, **extra: Any) -> dict[str, Any]:
    return {"FACCOUNTID": {"FNumber": account}, "FDEBIT": debit, "FCREDIT": credit, **extra}


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"FEntity": [_entity("6602.01", 100), _entity("1002.01", credit=99.99)]}, ["FEntity"]),
        ({"FEntity": [_entity("6602.01", 100), _entity("9999.99", credit=100)]}, ["FEntity[2].FACCOUNTID"]),
        ({"FEntity": [_entity("6602.01", 100, 100), _entity("1002.01", credit=100)]}, ["FEntity[1].FDEBIT"]),
        ({"FEntity": [_entity("6602.01"), _entity("1002.01")]}, ["FEntity[1].FDEBIT", "FEntity[2].FDEBIT"]),
        ({"FEntity": [_entity("6602.01", -1), _entity("1002.01", credit=-1)]}, ["FEntity[1].FDEBIT", "FEntity[2].FCREDIT"]),
        ({"FEntity": [_entity("6602.01", 100, FCOSTCENTER={"FNumber": "SZ-HR"}), _entity("1002.01", credit=100)]},
         ["FEntity[1].FCOSTCENTER"]),
        ({"FEntity": [_entity("6602.01", 100)]}, ["FEntity"]),
        ({"FDate": "2027-01-01"}, ["FDate"]),
        ({"FDate": "30/11/2026"}, ["FDate"]),
        ({"FAccountBookID": {"FNumber": "002"}}, ["FAccountBookID"]),
        ({"FVOUCHERGROUPID": {"FNumber": "PRE009"}}, ["FVOUCHERGROUPID"]),
    ],
)
def test_voucher_refusals_name_the_field(client: Client, overrides: dict[str, Any], fields: list[str]) -> None:
    status = save(client, "GL_VOUCHER", voucher_model(**overrides))["ResponseStatus"]
    assert status["IsSuccess"] is False and status["MsgCode"] == 11
    assert field_names(status) == fields
    assert client.query("GL_VOUCHER", "FID") == []


def test_amounts_are_json_numbers_read_exactly(client: Client) -> None:
    raw = json.dumps({"formid": "GL_VOUCHER", "data": {"Model": voucher_model(amount=0.1)}})
    raw = raw.replace("0.1,", "123456789.07,").replace("0.1}", "123456789.07}")
    assert decimal_json(client.post("Save", None, raw=raw.encode()))["Result"]["ResponseStatus"]["IsSuccess"]
    response = client.post(
        "ExecuteBillQuery", {"data": {"FormId": "GL_VOUCHER", "FieldKeys": "FDebitTotal,FCreditTotal"}}
    )
    assert b"123456789.07" in response.content
    assert decimal_json(response) == [[Decimal("123456789.07"), Decimal("123456789.07")]]


# -- Submit, Audit, View -------------------------------------------------------------------


def test_submit_then_resubmit_is_not_operable(client: Client) -> None:
    save(client, "ER_ExpenseRequest", expense_model())
    status = client.status("Submit", {"formid": "ER_ExpenseRequest", "data": {"Numbers": ["FYSQ000001"]}})
    assert status["IsSuccess"] is True and status["SuccessEntitys"] == [{"Id": 100001, "Number": "FYSQ000001", "DIndex": 0}]
    assert client.query("ER_ExpenseRequest", "FDocumentStatus,FSubmitDate") == [["B", "2026-11-21T00:00:00"]]
    again = client.status("Submit", {"formid": "ER_ExpenseRequest", "data": {"Numbers": ["FYSQ000001"]}})
    assert again["IsSuccess"] is False and again["MsgCode"] == 12 and again["SuccessEntitys"] == []


def test_submit_by_ids_and_partial_failures_report_each_bill(client: Client) -> None:
    save(client, "GL_VOUCHER", voucher_model("V1"))
    save(client, "GL_VOUCHER", voucher_model("V2"))
    status = client.status("Submit", {"formid": "GL_VOUCHER", "data": {"Ids": "100001,999999,100002"}})
    assert status["IsSuccess"] is False and status["MsgCode"] == 10
    assert [e["DIndex"] for e in status["Errors"]] == [1]
    assert [(e["Id"], e["DIndex"]) for e in status["SuccessEntitys"]] == [(100001, 0), (100002, 2)]
    assert client.query("GL_VOUCHER", "FDocumentStatus") == [["B"], ["B"]]


@pytest.mark.parametrize(
    "data", [{}, {"Numbers": "PZ"}, {"Numbers": ["A"], "Ids": "1"}, {"Ids": "1,x"}]
)
def test_submit_needs_numbers_or_ids(client: Client, data: dict[str, Any]) -> None:
    assert client.status("Submit", {"formid": "GL_VOUCHER", "data": data})["MsgCode"] == 8


def test_voucher_audit_posts_it(client: Client, clock: Clock) -> None:
    save(client, "GL_VOUCHER", voucher_model())
    audit_early = client.status("Audit", {"formid": "GL_VOUCHER", "data": {"Numbers": ["PZ-202611-0001"]}})
    assert audit_early["MsgCode"] == 12  # still A
    client.status("Submit", {"formid": "GL_VOUCHER", "data": {"Numbers": ["PZ-202611-0001"]}})
    clock.advance(DECISION * 10)  # nobody decides vouchers by themselves
    assert status_of(client, "GL_VOUCHER", "HGW-VC-0001") == "B"
    clock.advance(86400)
    client.login()  # the day-old session has expired
    status = client.status("Audit", {"formid": "GL_VOUCHER", "data": {"Numbers": ["PZ-202611-0001"]}})
    assert status["IsSuccess"] is True
    assert client.query("GL_VOUCHER", "FVOUCHERID,FBillNo,FDocumentStatus,FPosted,FDate,FApproveDate,FDebitTotal") == [
        [100001, "PZ-202611-0001", "C", True, "2026-11-30T00:00:00", "2026-11-22T00:00:00", Decimal("86500.0")]
    ]
    again = client.status("Audit", {"formid": "GL_VOUCHER", "data": {"Numbers": ["PZ-202611-0001"]}})
    assert again["MsgCode"] == 12


def test_the_integration_user_cannot_audit_expense_requests(client: Client) -> None:
    save(client, "ER_ExpenseRequest", expense_model())
    client.status("Submit", {"formid": "ER_ExpenseRequest", "data": {"Numbers": ["FYSQ000001"]}})
    status = client.status("Audit", {"formid": "ER_ExpenseRequest", "data": {"Numbers": ["FYSQ000001"]}})
    assert status["MsgCode"] == 2
    assert status_of(client, "ER_ExpenseRequest", "HGW-AP-0001") == "B"


def test_view_by_number_and_id(client: Client) -> None:
    save(client, "GL_VOUCHER", voucher_model())
    for data in ({"Number": "PZ-202611-0001"}, {"Id": 100001}):
        response = client.post("View", {"formid": "GL_VOUCHER", "data": data})
        result = decimal_json(response)["Result"]
        assert result["ResponseStatus"] is None
        bill = result["Result"]
        assert (bill["Id"], bill["Number"], bill["DocumentStatus"], bill["ApproveDate"]) == (
            100001, "PZ-202611-0001", "A", None
        )
        assert bill["FExternalNo"] == "HGW-VC-0001" and bill["FEntity"][0]["FDEBIT"] == Decimal("86500.0")
    missing = client.status("View", {"formid": "GL_VOUCHER", "data": {"Number": "PZ-000000-0000"}})
    assert missing["MsgCode"] == 10
    assert client.status("View", {"formid": "GL_VOUCHER", "data": {}})["MsgCode"] == 8


# -- the approver ---------------------------------------------------------------------------


def submit_request(client: Client, reference: str, amount: float, centre: str = "CS-HR") -> None:
    result = save(client, "ER_ExpenseRequest", expense_model(reference, FAmount=amount, FCostCenter={"FNumber": centre}))
    assert result["ResponseStatus"]["IsSuccess"], result
    client.status("Submit", {"formid": "ER_ExpenseRequest", "data": {"Numbers": [result["Number"]]}})


def budget_row(client: Client, centre: str = "CS-HR", period: str = "2026-11") -> list[Any]:
    [row] = client.query(
        "BM_BudgetBalance",
        "FCostCenter.FNumber,FPeriod,FBudgetAmount,FOccupiedAmount,FAvailableAmount,FCurrency.FNumber",
        f"FCostCenter.FNumber = '{centre}' AND FPeriod = '{period}'",
    )
    return row


def test_the_approver_audits_what_fits_the_budget_after_the_decision_time(client: Client, clock: Clock, erp: KingdeeErp) -> None:
    submit_request(client, "AP-1", 200000.00)
    clock.advance(DECISION - 0.1)
    assert status_of(client, "ER_ExpenseRequest", "AP-1") == "B"
    clock.advance(0.1)
    [[status, approved, code]] = client.query(
        "ER_ExpenseRequest", "FDocumentStatus,FApproveDate,FRejectCode", "FExternalNo = 'AP-1'"
    )
    assert (status, approved, code) == ("C", "2026-11-21T00:00:00", None)
    assert budget_row(client) == ["CS-HR", "2026-11", Decimal("300000.0"), Decimal("200000.0"), Decimal("100000.0"), "PRE001"]
    assert erp.budget("CS-HR", "2026-11") == (Decimal("300000.00"), Decimal("200000.00"))


def test_the_approver_rejects_what_exceeds_the_available_budget(client: Client, clock: Clock) -> None:
    submit_request(client, "AP-1", 200000.00)
    submit_request(client, "AP-2", 100000.01)
    clock.advance(DECISION)
    rows = client.query("ER_ExpenseRequest", "FExternalNo,FDocumentStatus,FRejectCode,FRejectReason")
    assert rows[0][:3] == ["AP-1", "C", None]
    assert rows[1][:3] == ["AP-2", "D", "BUDGET_EXCEEDED"]
    assert "100000.00" in rows[1][3] and "100000.01" in rows[1][3]
    assert budget_row(client)[3] == Decimal("200000.0")  # the rejected one occupies nothing


def test_budgets_are_per_cost_centre_and_period(client: Client, clock: Clock) -> None:
    assert budget_row(client, "GZ-HR", "2024-01")[2:5] == [Decimal("200000.0"), Decimal("0.0"), Decimal("200000.0")]
    assert budget_row(client, "CS-HR", "2026-12")[2] == Decimal("300000.0")
    assert client.query("BM_BudgetBalance", "FPeriod", "FCostCenter.FNumber = 'CS-HR' AND FPeriod = '2023-12'") == []
    assert len(client.query("BM_BudgetBalance", "FPeriod", "FCostCenter.FNumber = 'GZ-HR'")) == 36


def test_manual_decisions_when_auto_decide_is_off(client: Client, clock: Clock, erp: KingdeeErp) -> None:
    erp.set_auto_decide(False)
    submit_request(client, "AP-1", 1000.00)
    submit_request(client, "AP-2", 2000.00)
    clock.advance(DECISION * 3)
    assert status_of(client, "ER_ExpenseRequest", "AP-1") == "B"
    bill = erp.decide("AP-1", False, "附件不全")
    assert bill.status == "D"
    assert client.query("ER_ExpenseRequest", "FRejectCode,FRejectReason", "FExternalNo = 'AP-1'") == [
        ["REJECTED", "附件不全"]
    ]
    erp.decide("AP-2", True)
    assert status_of(client, "ER_ExpenseRequest", "AP-2") == "C"
    assert budget_row(client)[3] == Decimal("2000.0")
    with pytest.raises(KeyError):
        erp.decide("AP-2", True)  # no longer submitted
    # A rejected request may be submitted again; the reason is cleared.
    client.status("Submit", {"formid": "ER_ExpenseRequest", "data": {"Numbers": ["FYSQ000001"]}})
    assert client.query("ER_ExpenseRequest", "FDocumentStatus,FRejectCode", "FExternalNo = 'AP-1'") == [["B", None]]


def test_decide_also_rejects_a_submitted_voucher(client: Client, erp: KingdeeErp) -> None:
    save(client, "GL_VOUCHER", voucher_model())
    client.status("Submit", {"formid": "GL_VOUCHER", "data": {"Numbers": ["PZ-202611-0001"]}})
    erp.decide("HGW-VC-0001", False, "科目错误")
    assert client.query("GL_VOUCHER", "FDocumentStatus,FPosted,FRejectReason") == [["D", False, "科目错误"]]


def test_set_budget_changes_what_the_approver_allows(client: Client, clock: Clock, erp: KingdeeErp) -> None:
    erp.set_budget("GZ-HR", "2026-11", "5000.00", committed="4000.00")
    submit_request(client, "AP-1", 1000.01, centre="GZ-HR")
    clock.advance(DECISION)
    assert status_of(client, "ER_ExpenseRequest", "AP-1") == "D"
    erp.set_budget("GZ-HR", "2027-01", "100.00")  # a new period becomes budgeted
    assert budget_row(client, "GZ-HR", "2027-01")[2:4] == [Decimal("100.0"), Decimal("0.0")]
    with pytest.raises(KeyError):
        erp.set_budget("SZ-HR", "2026-11", "1")


def test_control_plane_steering(client: Client, clock: Clock, erp: KingdeeErp) -> None:
    base = erp.base_url + "/__mock__"
    assert httpx.post(base + "/auto-decide", json={"enabled": False}).status_code == 204
    assert httpx.post(base + "/auto-decide", json={"enabled": "no"}).status_code == 400
    assert httpx.post(
        base + "/budgets", json={"cost_center": "CS-HR", "period": "2026-11", "budget": "50.00", "committed": "0"}
    ).status_code == 204
    assert httpx.post(base + "/budgets", json={"cost_center": "CS-HR"}).status_code == 400
    submit_request(client, "AP-1", 10.00)
    clock.advance(DECISION)
    assert status_of(client, "ER_ExpenseRequest", "AP-1") == "B"
    decided = httpx.post(base + "/decisions", json={"reference": "AP-1", "approve": True})
    assert decided.status_code == 200 and decided.json()["status"] == "C"
    assert httpx.post(base + "/decisions", json={"reference": "AP-9", "approve": True}).status_code == 404
    assert budget_row(client)[2:4] == [Decimal("50.0"), Decimal("10.0")]


# -- ExecuteBillQuery ----------------------------------------------------------------------


def test_filter_quotes_order_and_paging(client: Client) -> None:
    for reference in ("O'Brien-1", "B-2", "C-3"):
        save(client, "ER_ExpenseRequest", expense_model(reference))
    assert client.query("ER_ExpenseRequest", "FBillNo", "FExternalNo = 'O''Brien-1'") == [["FYSQ000001"]]
    assert client.query("ER_ExpenseRequest", "FID", "FID = 100002 and FDocumentStatus = 'A'") == [[100002]]
    assert client.query("ER_ExpenseRequest", "FID", "", OrderString="FID DESC") == [[100003], [100002], [100001]]
    assert client.query("ER_ExpenseRequest", "FID", "", StartRow=1, Limit=1) == [[100002]]
    assert client.query("ER_ExpenseRequest", "FID", "FAmount = 86500") == [[100001], [100002], [100003]]


@pytest.mark.parametrize(
    ("data", "code", "field"),
    [
        ({"FieldKeys": "FID,FNoSuchField"}, 9, "FNoSuchField"),
        ({"FieldKeys": "FID", "FilterString": "FNope = 'x'"}, 9, "FNope"),
        ({"FieldKeys": "FID", "OrderString": "FNope"}, 9, "FNope"),
        ({"FieldKeys": "FID", "FilterString": "FID = 1 OR FID = 2"}, 8, "FilterString"),
        ({"FieldKeys": "FID", "FilterString": "FID > 1"}, 8, "FilterString"),
        ({"FieldKeys": "FID", "OrderString": "FID SIDEWAYS"}, 8, "OrderString"),
        ({"FieldKeys": ""}, 8, "FieldKeys"),
        ({"FieldKeys": "FID", "Limit": -1}, 8, "Limit"),
        ({"FieldKeys": "FID", "FormId": "XX_Nope"}, 8, "FormId"),
    ],
)
def test_query_failures_are_nested_envelopes(client: Client, data: dict[str, Any], code: int, field: str) -> None:
    body = {"data": {"FormId": "ER_ExpenseRequest", **data}}
    response = client.post("ExecuteBillQuery", body)
    assert response.status_code == 200
    [[failure]] = response.json()
    status = failure["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is False and status["MsgCode"] == code
    assert field_names(status) == [field]


def test_text_compares_exactly(client: Client) -> None:
    save(client, "ER_ExpenseRequest", expense_model("hgw-ap-1"))
    assert client.query("ER_ExpenseRequest", "FID", "FExternalNo = 'HGW-AP-1'") == []


# -- transport, faults and the request log ------------------------------------------------------


def test_unknown_paths_and_methods(client: Client, erp: KingdeeErp) -> None:
    response = httpx.post(erp.base_url + "/k3cloud/Nope.common.kdsvc", json={})
    assert response.status_code == 404 and response.json()["Result"]["ResponseStatus"]["MsgCode"] == 8
    assert httpx.get(erp.base_url + path("Save")).status_code == 405


def test_request_id_is_echoed(client: Client, erp: KingdeeErp) -> None:
    response = client.http.post(
        path("ExecuteBillQuery"),
        json={"data": {"FormId": "GL_VOUCHER", "FieldKeys": "FID"}},
        headers={"Cookie": f"kdservice-sessionid={client.session}", "X-Request-ID": "req-7"},
    )
    assert response.headers["X-Request-ID"] == "req-7"
    assert erp.requests.snapshot()[-1].request_id == "req-7"


def reconnect(client: Client, erp: KingdeeErp) -> None:
    """A fresh connection pool after the mock dropped one."""
    client.http.close()
    client.http = httpx.Client(base_url=erp.base_url, timeout=5.0)


def test_drop_after_on_submit_applies_it_and_only_submit_is_hit(client: Client, erp: KingdeeErp) -> None:
    erp.faults.add(parse_fault("Submit:drop_after:times=1"))
    save(client, "GL_VOUCHER", voucher_model())  # Save is not affected
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("Submit", {"formid": "GL_VOUCHER", "data": {"Numbers": ["PZ-202611-0001"]}})
    reconnect(client, erp)
    assert status_of(client, "GL_VOUCHER", "HGW-VC-0001") == "B"
    records = [(r.operation, r.code, r.biz_no) for r in erp.requests]
    assert ("Save", "0", "HGW-VC-0001") in records and ("Submit", "DROP", "PZ-202611-0001") in records
    assert records[0] == ("ValidateUser", "0", None)
    assert erp.count(operation="Submit") == 1 and erp.count(operation="Save") == 1


def test_drop_after_on_save_and_audit(client: Client, erp: KingdeeErp) -> None:
    erp.faults.add(Fault(route="Save", kind="drop_after", times=1))
    with pytest.raises(httpx.RemoteProtocolError):
        save(client, "GL_VOUCHER", voucher_model())
    reconnect(client, erp)
    assert status_of(client, "GL_VOUCHER", "HGW-VC-0001") == "A"
    client.status("Submit", {"formid": "GL_VOUCHER", "data": {"Numbers": ["PZ-202611-0001"]}})
    erp.faults.add(Fault(route="Audit", kind="drop_after", times=1))
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("Audit", {"formid": "GL_VOUCHER", "data": {"Numbers": ["PZ-202611-0001"]}})
    reconnect(client, erp)
    assert status_of(client, "GL_VOUCHER", "HGW-VC-0001") == "C"


def test_rate_limit_and_error_faults_apply_nothing(client: Client, erp: KingdeeErp) -> None:
    erp.faults.add(parse_fault("Save:rate_limit:retry_after=7,times=1"))
    response = client.post("Save", {"formid": "GL_VOUCHER", "data": {"Model": voucher_model()}})
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    assert response.json()["Result"]["ResponseStatus"]["MsgCode"] == 14
    erp.faults.add(Fault(route=path("Save"), kind="error", status=500, times=1))
    response = client.post("Save", {"formid": "GL_VOUCHER", "data": {"Model": voucher_model()}})
    assert response.status_code == 500 and response.json()["Result"]["ResponseStatus"]["MsgCode"] == 4
    assert client.query("GL_VOUCHER", "FID") == []
    assert [r.code for r in erp.requests if r.operation == "Save"] == ["14", "4"]


# -- state, reset, construction ------------------------------------------------------------------


def test_state_is_json_ready_and_reset_restores_the_seed(client: Client, clock: Clock, erp: KingdeeErp) -> None:
    erp.set_auto_decide(False)
    erp.set_budget("CS-HR", "2026-11", "10.00")
    submit_request(client, "AP-1", 5.00)
    state = json.loads(json.dumps(erp.state()))
    assert state["dialect"] == "kingdee" and state["auto_decide"] is False and state["sessions"] == 1
    assert state["bills"][0]["external_no"] == "AP-1" and state["bills"][0]["status"] == "B"
    assert state["budgets"] == [{"cost_center": "CS-HR", "period": "2026-11", "budget": "10.00", "committed": "0.00"}]
    assert httpx.get(erp.base_url + "/__mock__/state").json()["bills"][0]["amount"] == "5.00"
    erp.reset()
    assert erp.bills() == [] and erp.budget("CS-HR", "2026-11") == (Decimal("300000.00"), Decimal("0.00"))
    assert erp.state()["auto_decide"] is True and len(erp.requests) == 0
    assert client.status("Submit", {"formid": "GL_VOUCHER", "data": {"Numbers": ["X"]}})["MsgCode"] == 1


def test_constructor_aliases_and_describe() -> None:
    erp = KingdeeErp(app_id="alias-user", app_secret="alias-secret")
    try:
        assert (erp.username, erp.password, erp.app_id, erp.app_secret) == (
            "alias-user", "alias-secret", "alias-user", "alias-secret"
        )
        assert "alias-secret" not in erp.describe()
    finally:
        erp.stop()
    sandbox = KingdeeErp()
    try:
        assert sandbox.host == "127.0.0.1"
        assert "password=sandbox-password-kingdee" in sandbox.describe() and "acct_id=HGW-SANDBOX" in sandbox.describe()
    finally:
        sandbox.stop()
    for bad in ({"username": "a", "app_id": "b"}, {"password": ""}, {"session_ttl": 0}, {"decision_seconds": -1}):
        with pytest.raises(ValueError):
            KingdeeErp(**bad)
