"""The odata mock ERP against docs/dialects/odata.md, over real HTTP."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from mocks.faults import parse_fault
from mocks.odata import ODataErp

ROOT = "/odata/v4/finance"
USER = "hgw-sandbox"
PASSWORD = "sandbox-password-odata"
MEDIA = "application/json;IEEE754Compatible=true"
SHA = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"


START = 1_717_142_400.0  # 2024-05-31T08:00:00Z


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Caller:
    """An HTTP client of the ERP that fetches a CSRF token the documented way."""

    def __init__(self, erp: ODataErp) -> None:
        self.http = httpx.Client(base_url=erp.base_url, auth=(USER, PASSWORD), timeout=5)
        self.token = ""

    def fetch(self) -> httpx.Response:
        response = self.http.get(f"{ROOT}/", headers={"X-CSRF-Token": "Fetch"})
        self.token = response.headers["X-CSRF-Token"]
        return response

    def get(self, resource: str, **params: str) -> httpx.Response:
        return self.http.get(f"{ROOT}/{resource}", params=params)

    def post(self, resource: str, payload: Any, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        if not self.token and token is None:
            self.fetch()
        headers = {"Content-Type": MEDIA, "X-CSRF-Token": self.token if token is None else token}
        headers.update(kwargs.pop("headers", {}))
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.http.post(f"{ROOT}/{resource}", content=body, headers=headers, **kwargs)

    def close(self) -> None:
        self.http.close()


def approval(reference: str = "HGW-A1", **overrides: Any) -> dict[str, Any]:
    return {
        "Reference": reference,
        "ExpenseType": "social_security_contribution",
        "CostCenter": "CC-HR-CS",
        "Period": "2024-05",
        "Amount": "1000.00",
        "Currency": "CNY",
        "Description": "Contributions 2024-05",
        "Attachments": [{"FileName": "declaration.pdf", "Kind": "declaration", "Sha256": SHA}],
        **overrides,
    }


def entry(reference: str = "HGW-J1", **overrides: Any) -> dict[str, Any]:
    return {
        "Reference": reference,
        "PostingDate": "2024-05-31",
        "Currency": "CNY",
        "Description": "Contributions 2024-05",
        "Items": [
            {"LineNumber": 1, "GLAccount": "660201", "CostCenter": "CC-HR-CS", "DebitCreditCode": "S",
             "Amount": "1000.00", "ItemText": "Employer"},
            {"LineNumber": 2, "GLAccount": "100201", "CostCenter": None, "DebitCreditCode": "H",
             "Amount": "1000.00", "ItemText": "Bank A"},
        ],
        **overrides,
    }


def error_of(response: httpx.Response) -> dict[str, Any]:
    return response.json()["error"]


def by_reference(erp_caller: Caller, resource: str, reference: str, **params: str) -> list[dict[str, Any]]:
    response = erp_caller.get(resource, **{"$filter": f"Reference eq '{reference}'", **params})
    assert response.status_code == 200, response.text
    return response.json()["value"]


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def server(clock: Clock) -> Iterator[ODataErp]:
    with ODataErp(decision_seconds=2.0, csrf_token_seconds=60.0, clock=clock) as erp:
        yield erp


@pytest.fixture
def erp(server: ODataErp, clock: Clock) -> ODataErp:
    clock.now = START
    server.reset()
    server.decision_seconds = 2.0
    server.csrf_token_seconds = 60.0
    return server


@pytest.fixture
def caller(erp: ODataErp) -> Iterator[Caller]:
    c = Caller(erp)
    yield c
    c.close()


# -- service, authentication, CSRF -----------------------------------------------------


def test_service_document_lists_the_entity_sets_and_fetch_sets_a_session(caller: Caller) -> None:
    response = caller.fetch()
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json;odata.metadata=minimal;IEEE754Compatible=true"
    assert {entry["name"] for entry in response.json()["value"]} == {
        "Budgets", "CostCenters", "GLAccounts", "ApprovalRequests", "JournalEntries",
    }
    assert response.headers["X-CSRF-Token"]
    assert response.headers["Set-Cookie"].startswith("SAP_SESSIONID_HGW=")
    assert "HttpOnly" in response.headers["Set-Cookie"]


def test_fetching_again_in_a_session_returns_the_same_token_without_a_new_cookie(caller: Caller) -> None:
    first = caller.fetch()
    second = caller.fetch()  # the client sends the session cookie back
    assert second.headers["X-CSRF-Token"] == first.headers["X-CSRF-Token"]
    assert "Set-Cookie" not in second.headers


def test_any_get_can_fetch_a_token(caller: Caller) -> None:
    response = caller.http.get(f"{ROOT}/GLAccounts", headers={"X-CSRF-Token": "fetch"})
    assert response.status_code == 200 and response.headers["X-CSRF-Token"]


@pytest.mark.parametrize("auth", [None, (USER, "wrong"), ("someone", PASSWORD)])
def test_wrong_or_missing_basic_credentials_are_401(erp: ODataErp, auth: tuple[str, str] | None) -> None:
    with httpx.Client(base_url=erp.base_url, auth=auth, timeout=5) as http:
        response = http.get(f"{ROOT}/Budgets")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="finance"'
    assert error_of(response)["code"] == "UNAUTHORIZED"


def test_a_write_without_a_token_is_403_required_and_applies_nothing(caller: Caller, erp: ODataErp) -> None:
    caller.fetch()
    response = caller.post("ApprovalRequests", approval(), token="")
    assert response.status_code == 403
    assert response.headers["X-CSRF-Token"] == "Required"
    assert error_of(response)["code"] == "CSRF_TOKEN_REQUIRED"
    assert erp.approvals() == []


def test_a_token_is_bound_to_its_session(caller: Caller, erp: ODataErp) -> None:
    caller.fetch()
    other = Caller(erp)
    try:
        other.fetch()
        # our cookie with the other session's token
        response = caller.post("ApprovalRequests", approval(), token=other.token)
    finally:
        other.close()
    assert response.status_code == 403 and response.headers["X-CSRF-Token"] == "Required"
    # the token without any session cookie
    with httpx.Client(base_url=erp.base_url, auth=(USER, PASSWORD), timeout=5) as bare:
        response = bare.post(
            f"{ROOT}/ApprovalRequests", content=json.dumps(approval()).encode(),
            headers={"Content-Type": MEDIA, "X-CSRF-Token": caller.token},
        )
    assert response.status_code == 403


def test_a_token_expires_after_its_lifetime_and_a_new_one_is_fetched(caller: Caller, erp: ODataErp, clock: Clock) -> None:
    first = caller.fetch().headers["X-CSRF-Token"]
    clock.advance(61)
    assert caller.post("ApprovalRequests", approval()).status_code == 403
    second = caller.fetch().headers["X-CSRF-Token"]
    assert second != first
    assert caller.post("ApprovalRequests", approval()).status_code == 201


def test_expire_csrf_tokens_refuses_every_issued_token(caller: Caller, erp: ODataErp) -> None:
    caller.fetch()
    erp.expire_csrf_tokens()
    assert caller.post("ApprovalRequests", approval()).status_code == 403
    caller.fetch()
    assert caller.post("ApprovalRequests", approval()).status_code == 201


# -- reads and $filter ---------------------------------------------------------------------


def test_seeded_budgets_cover_2024_01_to_2026_12(caller: Caller) -> None:
    budgets = caller.get("Budgets").json()["value"]
    assert len(budgets) == 3 * 36
    by_cost_center: dict[str, set[str]] = {}
    for budget in budgets:
        by_cost_center.setdefault(budget["CostCenter"], set()).add(budget["Period"])
        assert budget["Committed"] == "0.00" and budget["Currency"] == "CNY"
    assert set(by_cost_center) == {"CC-HR-CS", "CC-HR-GZ", "CC-ADM-CS"}
    assert all(min(p) == "2024-01" and max(p) == "2026-12" and len(p) == 36 for p in by_cost_center.values())


def test_budget_by_filter(caller: Caller) -> None:
    response = caller.get("Budgets", **{"$filter": "CostCenter eq 'CC-HR-GZ' and Period eq '2026-12'"})
    assert response.json() == {
        "@odata.context": "$metadata#Budgets",
        "value": [
            {"CostCenter": "CC-HR-GZ", "Period": "2026-12", "Currency": "CNY",
             "Budget": "300000.00", "Committed": "0.00", "Available": "300000.00"}
        ],
    }
    none = caller.get("Budgets", **{"$filter": "CostCenter eq 'CC-HR-GZ' and Period eq '2027-01'"})
    assert none.status_code == 200 and none.json()["value"] == []


def test_cost_centres_and_chart_of_accounts(caller: Caller) -> None:
    centres = caller.get("CostCenters").json()["value"]
    assert {(c["CostCenter"], c["CompanyCode"]) for c in centres} == {
        ("CC-HR-CS", "CS01"), ("CC-HR-GZ", "GZ01"), ("CC-ADM-CS", "CS01"),
    }
    expense = caller.get("GLAccounts", **{"$filter": "AccountType eq 'P'"}).json()["value"]
    assert [a["GLAccount"] for a in expense] == ["660201", "660202", "660203"]
    balance = caller.get("GLAccounts", **{"$filter": "AccountType eq 'B'"}).json()["value"]
    assert [a["GLAccount"] for a in balance] == ["100201", "100202", "221102", "224101"]


def test_a_doubled_quote_is_a_quote_inside_a_literal(caller: Caller) -> None:
    response = caller.get("CostCenters", **{"$filter": "CostCenter eq 'O''Brien'"})
    assert response.status_code == 200 and response.json()["value"] == []


@pytest.mark.parametrize(
    "expression",
    [
        "CostCenter ne 'CC-HR-CS'",
        "CostCenter eq 'CC-HR-CS' or Period eq '2024-05'",
        "Budget eq 5",
        "Nonsense eq 'x'",
        "CostCenter eq",
        "CostCenter eq 'unterminated",
        "CostCenter eq 'CC-HR-CS' Period eq '2024-05'",
    ],
)
def test_filters_outside_the_subset_are_invalid_filter(caller: Caller, expression: str) -> None:
    response = caller.get("Budgets", **{"$filter": expression})
    assert response.status_code == 400
    assert error_of(response)["code"] == "INVALID_FILTER"


def test_other_query_options_are_refused(caller: Caller) -> None:
    response = caller.get("Budgets", **{"$top": "1"})
    assert response.status_code == 400 and error_of(response)["code"] == "UNSUPPORTED_QUERY_OPTION"
    response = caller.get("Budgets", **{"$expand": "Items"})
    assert response.status_code == 400 and error_of(response)["code"] == "BAD_REQUEST"


def test_unknown_path_and_method(caller: Caller) -> None:
    assert error_of(caller.get("Employees"))["code"] == "NOT_FOUND"
    caller.fetch()
    response = caller.post("Budgets", {})
    assert response.status_code == 405 and error_of(response)["code"] == "METHOD_NOT_ALLOWED"
    assert caller.http.get("/elsewhere").status_code == 404


def test_request_id_is_echoed(caller: Caller) -> None:
    response = caller.http.get(f"{ROOT}/Budgets", headers={"X-Request-ID": "req-1"})
    assert response.headers["X-Request-ID"] == "req-1"


# -- approval requests ------------------------------------------------------------------------


def test_create_an_approval_request(caller: Caller, erp: ODataErp) -> None:
    response = caller.post("ApprovalRequests", approval())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["@odata.context"] == "$metadata#ApprovalRequests/$entity"
    assert body["DocumentNumber"] == "1000000001"
    assert body["Status"] == "Pending" and body["DecisionDate"] is None
    assert body["RejectionCode"] is None and body["RejectionReason"] is None
    assert body["Amount"] == "1000.00" and body["CreatedAt"] == "2024-05-31T08:00:00Z"
    assert body["Attachments"] == [{"FileName": "declaration.pdf", "Kind": "declaration", "Sha256": SHA.lower()}]
    assert "Budget" not in body
    assert "DocumentNumber%20eq%20%271000000001%27" in response.headers["Location"]
    [stored] = erp.approvals()
    assert stored.reference == "HGW-A1" and stored.amount == Decimal("1000.00")
    assert stored.attachments[0].sha256 == SHA.lower()
    second = caller.post("ApprovalRequests", approval("HGW-A2", Amount="5.5"))
    assert second.json()["DocumentNumber"] == "1000000002" and second.json()["Amount"] == "5.50"


def test_create_with_expand_answers_the_budget(caller: Caller) -> None:
    response = caller.post("ApprovalRequests?$expand=Budget", approval())
    assert response.json()["Budget"]["Available"] == "500000.00"


def test_a_duplicate_reference_is_409_and_changes_nothing(caller: Caller, erp: ODataErp) -> None:
    assert caller.post("ApprovalRequests", approval()).status_code == 201
    response = caller.post("ApprovalRequests", approval(Amount="99.00", CostCenter="nonsense"))
    assert response.status_code == 409
    assert error_of(response)["code"] == "DUPLICATE_REFERENCE" and error_of(response)["target"] == "Reference"
    assert len(erp.approvals()) == 1 and erp.approvals()[0].amount == Decimal("1000.00")


def test_concurrent_creates_with_one_reference_make_one_request(erp: ODataErp) -> None:
    callers = [Caller(erp) for _ in range(6)]
    for c in callers:
        c.fetch()
    statuses: list[int] = []

    def create(c: Caller) -> None:
        statuses.append(c.post("ApprovalRequests", approval("HGW-RACE")).status_code)

    threads = [threading.Thread(target=create, args=(c,)) for c in callers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    for c in callers:
        c.close()
    assert sorted(statuses) == [201] + [409] * 5
    assert len(erp.approvals()) == 1


@pytest.mark.parametrize(
    ("overrides", "code", "target"),
    [
        ({"Amount": 1000.0}, "BAD_REQUEST", "Amount"),
        ({"Amount": "1000.001"}, "BAD_REQUEST", "Amount"),
        ({"Amount": "0.00"}, "BAD_REQUEST", "Amount"),
        ({"Amount": "-5.00"}, "BAD_REQUEST", "Amount"),
        ({"Amount": "1e3"}, "BAD_REQUEST", "Amount"),
        ({"Currency": "USD"}, "BAD_REQUEST", "Currency"),
        ({"Period": "2024-13"}, "BAD_REQUEST", "Period"),
        ({"ExpenseType": ""}, "BAD_REQUEST", "ExpenseType"),
        ({"Description": "x" * 201}, "BAD_REQUEST", "Description"),
        ({"Reference": "has space"}, "BAD_REQUEST", "Reference"),
        ({"Attachments": [{"Kind": "x", "Sha256": "abc"}]}, "BAD_REQUEST", "Attachments[0]/Sha256"),
        ({"CostCenter": "CC-NOPE"}, "UNKNOWN_COST_CENTER", "CostCenter"),
        ({"Period": "2023-12"}, "NO_BUDGET", "Period"),
        ({"Period": "2027-01"}, "NO_BUDGET", "Period"),
    ],
)
def test_refused_approval_requests(
    caller: Caller, erp: ODataErp, overrides: dict[str, Any], code: str, target: str
) -> None:
    response = caller.post("ApprovalRequests", approval(**overrides))
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert (error["code"], error["target"]) == (code, target)
    assert error["details"][0]["code"] == code
    assert erp.approvals() == []


def test_a_body_that_is_not_json(caller: Caller) -> None:
    response = caller.post("ApprovalRequests", b"not json")
    assert response.status_code == 400 and error_of(response)["code"] == "BAD_REQUEST"
    response = caller.post("ApprovalRequests", b"{}", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415 and error_of(response)["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_requests_are_decided_after_decision_seconds_against_the_budget(
    caller: Caller, erp: ODataErp, clock: Clock
) -> None:
    # CC-ADM-CS has 10000.00 a month: the first 6000 fits, the second no longer does.
    caller.post("ApprovalRequests", approval("HGW-A1", CostCenter="CC-ADM-CS", Amount="6000.00"))
    clock.advance(0.5)
    caller.post("ApprovalRequests", approval("HGW-A2", CostCenter="CC-ADM-CS", Amount="6000.00"))
    clock.advance(1.0)
    assert [r["Status"] for r in caller.get("ApprovalRequests").json()["value"]] == ["Pending", "Pending"]
    clock.advance(0.6)  # now +2.1: the first is due (+2.0), not yet the second (+2.5)
    first, second = caller.get("ApprovalRequests").json()["value"]
    assert (first["Status"], first["DecisionDate"]) == ("Approved", "2024-05-31")
    assert second["Status"] == "Pending"
    clock.advance(1.0)
    [rejected] = by_reference(caller, "ApprovalRequests", "HGW-A2", **{"$expand": "Budget"})
    assert rejected["Status"] == "Rejected" and rejected["RejectionCode"] == "BUDGET_EXCEEDED"
    assert "4000.00" in rejected["RejectionReason"]
    assert rejected["Budget"] == {
        "CostCenter": "CC-ADM-CS", "Period": "2024-05", "Currency": "CNY",
        "Budget": "10000.00", "Committed": "6000.00", "Available": "4000.00",
    }


def test_an_amount_equal_to_what_is_available_is_approved(caller: Caller, erp: ODataErp, clock: Clock) -> None:
    erp.set_budget("CC-HR-CS", "2024-05", "1000.00", committed="0.00")
    caller.post("ApprovalRequests", approval())
    clock.advance(2.0)
    assert erp.approvals()[0].status == "Approved"
    assert erp.budget("CC-HR-CS", "2024-05").committed == Decimal("1000.00")


def test_decision_seconds_is_settable(caller: Caller, erp: ODataErp, clock: Clock) -> None:
    erp.decision_seconds = 10.0
    caller.post("ApprovalRequests", approval())
    clock.advance(5.0)
    assert erp.approvals()[0].status == "Pending"
    clock.advance(5.0)
    assert erp.approvals()[0].status == "Approved"


def test_hand_decisions_when_auto_decide_is_off(caller: Caller, erp: ODataErp, clock: Clock) -> None:
    erp.set_auto_decide(False)
    caller.post("ApprovalRequests", approval("HGW-A1"))
    caller.post("ApprovalRequests", approval("HGW-A2", Amount="2000.00"))
    clock.advance(60)
    assert {a.status for a in erp.approvals()} == {"Pending"}
    approved = erp.decide("HGW-A1", True)
    assert approved.status == "Approved" and approved.decision_date == "2024-05-31"
    rejected = erp.decide("HGW-A2", False, reason="Not this month")
    assert (rejected.rejection_code, rejected.rejection_reason) == ("REJECTED_BY_APPROVER", "Not this month")
    assert erp.budget("CC-HR-CS", "2024-05").committed == Decimal("1000.00")  # only the approval commits
    with pytest.raises(ValueError, match="already Approved"):
        erp.decide("HGW-A1", False)
    with pytest.raises(KeyError):
        erp.decide("HGW-NOPE", True)
    [answer] = by_reference(caller, "ApprovalRequests", "HGW-A2")
    assert answer["RejectionReason"] == "Not this month"


def test_auto_decide_on_again_decides_what_is_overdue(caller: Caller, erp: ODataErp, clock: Clock) -> None:
    erp.set_auto_decide(False)
    caller.post("ApprovalRequests", approval())
    clock.advance(5)
    assert erp.approvals()[0].status == "Pending"
    erp.set_auto_decide(True)
    assert erp.approvals()[0].status == "Approved"


def test_set_budget_changes_what_fits(caller: Caller, erp: ODataErp, clock: Clock) -> None:
    entry = erp.set_budget("CC-HR-CS", "2024-05", Decimal("1500.00"), committed=Decimal("1000.00"))
    assert entry.available == Decimal("500.00")
    caller.post("ApprovalRequests", approval())
    clock.advance(2)
    assert erp.approvals()[0].rejection_code == "BUDGET_EXCEEDED"
    kept = erp.set_budget("CC-HR-CS", "2024-05", "3000")  # committed kept
    assert kept.committed == Decimal("1000.00")
    new_month = erp.set_budget("CC-HR-CS", "2027-01", "100")
    assert new_month.committed == Decimal("0.00")
    with pytest.raises(KeyError):
        erp.set_budget("CC-NOPE", "2024-05", "1")


def test_filters_on_approval_requests(caller: Caller, erp: ODataErp, clock: Clock) -> None:
    caller.post("ApprovalRequests", approval("HGW-A1"))
    caller.post("ApprovalRequests", approval("HGW-A2", CostCenter="CC-HR-GZ"))
    assert [r["Reference"] for r in caller.get("ApprovalRequests", **{"$filter": "CostCenter eq 'CC-HR-GZ'"}).json()["value"]] == ["HGW-A2"]
    assert by_reference(caller, "ApprovalRequests", "HGW-NEVER") == []
    clock.advance(2)
    approved = caller.get("ApprovalRequests", **{"$filter": "Status eq 'Approved' and DocumentNumber eq '1000000001'"})
    assert [r["Reference"] for r in approved.json()["value"]] == ["HGW-A1"]


# -- journal entries ---------------------------------------------------------------------------


def test_post_a_balanced_journal_entry(caller: Caller, erp: ODataErp) -> None:
    response = caller.post("JournalEntries", entry())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["@odata.context"] == "$metadata#JournalEntries/$entity"
    assert body["DocumentNumber"] == "5100000001" and body["FiscalYear"] == "2024"
    assert body["Status"] == "Posted" and body["TotalDebit"] == "1000.00"
    assert body["PostingDate"] == "2024-05-31" and body["CreationDate"] == "2024-05-31"
    assert "Items" not in body
    [stored] = erp.journal_entries()
    assert [(i.gl_account, i.debit_credit_code, i.amount) for i in stored.items] == [
        ("660201", "S", Decimal("1000.00")), ("100201", "H", Decimal("1000.00")),
    ]
    [expanded] = by_reference(caller, "JournalEntries", "HGW-J1", **{"$expand": "Items"})
    assert expanded["Items"][1] == {
        "LineNumber": 2, "GLAccount": "100201", "CostCenter": None, "DebitCreditCode": "H",
        "Amount": "1000.00", "ItemText": "Bank A",
    }
    assert erp.budget("CC-HR-CS", "2024-05").committed == Decimal("0.00")  # postings do not commit


def test_several_debits_against_one_credit(caller: Caller) -> None:
    items = [
        {"LineNumber": 1, "GLAccount": "660201", "CostCenter": "CC-HR-CS", "DebitCreditCode": "S", "Amount": "600.10"},
        {"LineNumber": 2, "GLAccount": "221102", "DebitCreditCode": "S", "Amount": "399.90"},
        {"LineNumber": 3, "GLAccount": "100201", "DebitCreditCode": "H", "Amount": "1000"},
    ]
    response = caller.post("JournalEntries?$expand=Items", entry(Items=items))
    assert response.status_code == 201, response.text
    assert [i["Amount"] for i in response.json()["Items"]] == ["600.10", "399.90", "1000.00"]


def test_an_unbalanced_entry_is_refused_whole(caller: Caller, erp: ODataErp) -> None:
    body = entry()
    body["Items"][0]["Amount"] = "1200.00"
    response = caller.post("JournalEntries", body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "UNBALANCED" and error["target"] == "Items"
    assert error["message"] == "Debits 1200.00 do not equal credits 1000.00"
    assert erp.journal_entries() == []


def test_every_booking_problem_is_listed(caller: Caller, erp: ODataErp) -> None:
    items = [
        {"LineNumber": 1, "GLAccount": "999999", "CostCenter": "CC-HR-CS", "DebitCreditCode": "S", "Amount": "10.00"},
        {"LineNumber": 2, "GLAccount": "660202", "DebitCreditCode": "S", "Amount": "10.00"},
        {"LineNumber": 3, "GLAccount": "100201", "CostCenter": "CC-NOPE", "DebitCreditCode": "H", "Amount": "30.00"},
    ]
    response = caller.post("JournalEntries", entry(Items=items))
    error = error_of(response)
    assert (error["code"], error["target"]) == ("UNKNOWN_GL_ACCOUNT", "Items[1]/GLAccount")
    assert [(d["code"], d.get("target")) for d in error["details"]] == [
        ("UNKNOWN_GL_ACCOUNT", "Items[1]/GLAccount"),
        ("COST_CENTER_REQUIRED", "Items[2]/CostCenter"),
        ("UNKNOWN_COST_CENTER", "Items[3]/CostCenter"),
        ("UNBALANCED", "Items"),
    ]
    assert erp.journal_entries() == []


@pytest.mark.parametrize(
    ("change", "target"),
    [
        ({"Items": []}, "Items"),
        ({"PostingDate": "31.05.2024"}, "PostingDate"),
        ({"PostingDate": "2024-02-30"}, "PostingDate"),
    ],
)
def test_malformed_entries(caller: Caller, change: dict[str, Any], target: str) -> None:
    response = caller.post("JournalEntries", entry(**change))
    assert response.status_code == 400 and error_of(response)["target"] == target


@pytest.mark.parametrize(
    ("item_change", "target"),
    [
        ({"DebitCreditCode": "D"}, "Items[1]/DebitCreditCode"),
        ({"Amount": 1000}, "Items[1]/Amount"),
        ({"LineNumber": 0}, "Items[1]/LineNumber"),
        ({"LineNumber": 2}, "Items"),
        ({"ItemText": "x" * 51}, "Items[1]/ItemText"),
    ],
)
def test_malformed_items(caller: Caller, item_change: dict[str, Any], target: str) -> None:
    body = entry()
    body["Items"][0].update(item_change)
    response = caller.post("JournalEntries", body)
    assert response.status_code == 400
    assert (error_of(response)["code"], error_of(response)["target"]) == ("BAD_REQUEST", target)


def test_a_duplicate_journal_reference_is_409(caller: Caller, erp: ODataErp) -> None:
    caller.post("JournalEntries", entry())
    response = caller.post("JournalEntries", entry())
    assert response.status_code == 409 and error_of(response)["code"] == "DUPLICATE_REFERENCE"
    assert len(erp.journal_entries()) == 1
    # the same reference is free in the other entity set
    assert caller.post("ApprovalRequests", approval("HGW-J1")).status_code == 201


# -- faults, control plane, state ------------------------------------------------------------------


def test_rate_limit_and_unavailable_faults_answer_odata_errors_and_apply_nothing(caller: Caller, erp: ODataErp) -> None:
    caller.fetch()
    erp.faults.add(parse_fault("ApprovalRequests.create:rate_limit:retry_after=3,times=1"))
    response = caller.post("ApprovalRequests", approval())
    assert response.status_code == 429 and response.headers["Retry-After"] == "3"
    assert error_of(response)["code"] == "TOO_MANY_REQUESTS"
    erp.faults.add(parse_fault("*:error:status=503,times=1"))
    response = caller.post("ApprovalRequests", approval())
    assert response.status_code == 503 and error_of(response)["code"] == "SERVICE_UNAVAILABLE"
    assert response.headers["Retry-After"] == "1"
    erp.faults.add(parse_fault("Budgets.read:error:status=500,times=1"))
    response = caller.get("Budgets")
    assert response.status_code == 500 and error_of(response)["code"] == "INTERNAL_ERROR"
    assert erp.approvals() == []
    assert caller.post("ApprovalRequests", approval()).status_code == 201


def test_drop_after_applies_the_create_and_closes_without_answering(caller: Caller, erp: ODataErp) -> None:
    caller.fetch()
    erp.faults.add(parse_fault("JournalEntries.create:drop_after:times=1"))
    with pytest.raises(httpx.RemoteProtocolError):
        caller.post("JournalEntries", entry())
    assert len(erp.journal_entries()) == 1
    assert erp.count(operation="JournalEntries.create", code="DROP") == 1
    assert len(by_reference(caller, "JournalEntries", "HGW-J1")) == 1


def test_the_request_log_names_operations_and_references(caller: Caller, erp: ODataErp) -> None:
    caller.fetch()
    caller.post("ApprovalRequests", approval("HGW-A9"))
    by_reference(caller, "ApprovalRequests", "HGW-A9")
    records = [(r.method, r.operation, r.biz_no, r.code) for r in erp.requests]
    assert records == [
        ("GET", "ServiceDocument.read", None, "OK"),
        ("POST", "ApprovalRequests.create", "HGW-A9", "OK"),
        ("GET", "ApprovalRequests.read", "HGW-A9", "OK"),
    ]


def test_control_plane_steers_the_erp(erp: ODataErp, caller: Caller, clock: Clock) -> None:
    control = caller.http
    assert control.post("/__mock__/auto-decide", json={"enabled": False}).status_code == 200
    caller.post("ApprovalRequests", approval())
    clock.advance(10)
    assert control.get("/__mock__/approvals").json()[0]["Status"] == "Pending"
    decided = control.post("/__mock__/decisions", json={"reference": "HGW-A1", "approve": True})
    assert decided.status_code == 200 and decided.json()["Status"] == "Approved"
    assert control.post("/__mock__/decisions", json={"reference": "HGW-A1", "approve": False}).status_code == 409
    assert control.post("/__mock__/decisions", json={"reference": "HGW-X", "approve": True}).status_code == 404
    budget = control.post("/__mock__/budgets", json={"cost_center": "CC-HR-GZ", "period": "2025-01", "budget": "5.00"})
    assert budget.json()["Available"] == "5.00"
    assert control.post("/__mock__/budgets", json={"cost_center": "CC-HR-GZ"}).status_code == 400
    caller.post("JournalEntries", entry())
    assert control.get("/__mock__/journal-entries").json()[0]["Items"][0]["GLAccount"] == "660201"
    assert control.post("/__mock__/csrf/expire").status_code == 204
    assert caller.post("JournalEntries", entry("HGW-J2")).status_code == 403


def test_state_leaves_out_free_texts_and_reset_restores_the_books(caller: Caller, erp: ODataErp) -> None:
    caller.post("ApprovalRequests", approval(Description="Wang Fang's reimbursement"))
    caller.post("JournalEntries", entry(Description="Wang Fang's reimbursement"))
    state = caller.http.get("/__mock__/state").json()
    assert state["dialect"] == "odata" and state["decision_seconds"] == 2.0
    assert "Wang Fang" not in json.dumps(state)
    assert state["approval_requests"][0]["Reference"] == "HGW-A1"
    assert state["budgets_with_requests"][0]["CostCenter"] == "CC-HR-CS"
    erp.reset()
    assert erp.approvals() == [] and erp.journal_entries() == []
    assert caller.post("ApprovalRequests", approval()).status_code == 403  # sessions are gone too


def test_constructor_checks_and_unseeded_books() -> None:
    with pytest.raises(ValueError):
        ODataErp(password="")
    with pytest.raises(ValueError):
        ODataErp(csrf_token_seconds=0)
    with ODataErp(seed=False, username="u", password="p") as empty:
        with httpx.Client(base_url=empty.base_url, auth=("u", "p"), timeout=5) as http:
            assert http.get(f"{ROOT}/Budgets").json()["value"] == []
        assert "password" not in empty.describe()
    with ODataErp() as sandbox:
        assert f"password={PASSWORD}" in sandbox.describe()


def test_binds_to_loopback_only() -> None:
    with ODataErp() as erp:
        assert erp.host == "127.0.0.1"
        with socket.create_connection((erp.host, erp.port), timeout=2):
            pass


def test_decisions_use_the_real_clock_by_default() -> None:
    with ODataErp(decision_seconds=0.1) as erp:
        c = Caller(erp)
        try:
            c.post("ApprovalRequests", approval())
            time.sleep(0.2)
            assert by_reference(c, "ApprovalRequests", "HGW-A1")[0]["Status"] == "Approved"
        finally:
            c.close()
