"""The odata ERP adapter against docs/dialects/odata.md, with respx."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from adapters import (
    AdapterConfig,
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
    VoucherLine,
    VoucherReceipt,
    VoucherSubmission,
)
from adapters.erp.odata import CsrfTokenRequired, ODataErpAdapter, filter_literal

from .._support import SleepRecorder, fast_policy

BASE_URL = "https://erp.test"
ROOT = "/odata/v4/finance"
USER, PASSWORD = "hgw-unit", "unit-password"
TOKEN = "token-1"
COOKIE = "SAP_SESSIONID_HGW=s1"
CTX = CallContext(request_id="req-1")
SHA = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"

MakeAdapter = Callable[..., ODataErpAdapter]


def config(**overrides: Any) -> AdapterConfig:
    settings: dict[str, Any] = {
        "name": "erp",
        "base_url": BASE_URL,
        "credentials": {"username": USER, "password": PASSWORD},
        "environment": "sandbox",
    }
    settings.update(overrides)
    return AdapterConfig(**settings)


@pytest.fixture
def erp() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
async def make_adapter(erp: respx.MockRouter) -> AsyncIterator[MakeAdapter]:
    made: list[ODataErpAdapter] = []

    def make(*, cfg: AdapterConfig | None = None, sleep: SleepRecorder | None = None, **kwargs: Any) -> ODataErpAdapter:
        kwargs.setdefault("policy", fast_policy())
        kwargs.setdefault("transport", httpx.MockTransport(erp.async_handler))
        adapter = ODataErpAdapter(cfg or config(), **kwargs)
        if sleep is not None:
            adapter.client._sleep = sleep
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def adapter(make_adapter: MakeAdapter) -> ODataErpAdapter:
    return make_adapter()


def odata_error(status: int, code: str, message: str = "refused", target: str | None = None, **kwargs: Any) -> httpx.Response:
    error: dict[str, Any] = {"code": code, "message": message, "details": [{"code": code, "message": message}]}
    if target is not None:
        error["target"] = target
    return httpx.Response(status, json={"error": error}, **kwargs)


def collection(*entities: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"@odata.context": "$metadata#X", "value": list(entities)})


def budget_entity(**overrides: Any) -> dict[str, Any]:
    return {
        "CostCenter": "CC-HR-CS", "Period": "2024-05", "Currency": "CNY",
        "Budget": "500000.00", "Committed": "1200.50", "Available": "498799.50", **overrides,
    }


def approval_entity(**overrides: Any) -> dict[str, Any]:
    return {
        "DocumentNumber": "1000000001",
        "Reference": "HGW-A1",
        "ExpenseType": "social_security_contribution",
        "CostCenter": "CC-HR-CS",
        "Period": "2024-05",
        "Amount": "1234.50",
        "Currency": "CNY",
        "Description": "",
        "Status": "Pending",
        "CreatedAt": "2024-05-31T08:00:00Z",
        "DecisionDate": None,
        "RejectionCode": None,
        "RejectionReason": None,
        "Attachments": [],
        "Budget": budget_entity(),
        **overrides,
    }


def journal_entity(**overrides: Any) -> dict[str, Any]:
    return {
        "DocumentNumber": "5100000001", "FiscalYear": "2024", "Reference": "HGW-V1", "PostingDate": "2024-05-31",
        "CreationDate": "2024-06-01", "Currency": "CNY", "Description": "", "Status": "Posted",
        "TotalDebit": "1000.00", "Attachments": [], **overrides,
    }


def approval_submission(**overrides: Any) -> ApprovalSubmission:
    values: dict[str, Any] = {
        "reference": "HGW-A1",
        "kind": "social_security_contribution",
        "amount": Decimal("1234.5"),
        "cost_center": "CC-HR-CS",
        "period": "2024-05",
        "description": "Contributions 2024-05",
        "attachments": (Attachment(kind="declaration", sha256=SHA, name="declaration.pdf"),),
    }
    values.update(overrides)
    return ApprovalSubmission(**values)


def voucher_submission(**overrides: Any) -> VoucherSubmission:
    values: dict[str, Any] = {
        "reference": "HGW-V1",
        "date": dt.date(2024, 5, 31),
        "lines": (
            VoucherLine(account="660201", debit=Decimal("1000"), credit=Decimal("0"), cost_center="CC-HR-CS",
                        description="Employer contributions"),
            VoucherLine(account="100201", debit=Decimal("0"), credit=Decimal("1000.00"), description="Bank A"),
        ),
        "description": "Contributions 2024-05",
    }
    values.update(overrides)
    return VoucherSubmission(**values)


def fetch_route(erp: respx.MockRouter, *responses: httpx.Response) -> respx.Route:
    default = httpx.Response(
        200, json={"value": []}, headers={"X-CSRF-Token": TOKEN, "Set-Cookie": f"{COOKIE}; Path=/; HttpOnly"}
    )
    route = erp.get(f"{ROOT}/")
    if responses:
        route.side_effect = list(responses)
    else:
        route.return_value = default
    return route


def filter_of(request: httpx.Request) -> str:
    return parse_qs(urlsplit(str(request.url)).query)["$filter"][0]


def basic(request: httpx.Request) -> tuple[str, str]:
    scheme, _, encoded = request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(encoded).decode().partition(":")
    return user, password


# -- declaration and configuration -------------------------------------------------------


def test_declares_an_erp_with_its_capabilities(adapter: ODataErpAdapter) -> None:
    assert isinstance(adapter, ErpAdapter)
    assert (adapter.kind, adapter.dialect) == ("erp", "odata")
    assert adapter.capabilities == {Capability.APPROVAL, Capability.VOUCHER, Capability.BUDGET_QUERY}
    assert ODataErpAdapter.required_credentials == ("username", "password")
    assert ODataErpAdapter.policy.retry.not_applied_statuses == frozenset({429, 503})


def test_credentials_are_required() -> None:
    with pytest.raises(ConfigurationError, match="password"):
        ODataErpAdapter(config(credentials={"username": USER}))


def test_filter_literals_double_their_quotes() -> None:
    assert filter_literal("O'Brien") == "'O''Brien'"


# -- budgets ------------------------------------------------------------------------------


async def test_budget_reads_by_filter_with_basic_auth(adapter: ODataErpAdapter, erp: respx.MockRouter) -> None:
    route = erp.get(f"{ROOT}/Budgets").mock(return_value=collection(budget_entity()))
    position = await adapter.budget("CC-HR-CS", "2024-05", context=CTX)
    assert position == BudgetPosition(
        cost_center="CC-HR-CS", period="2024-05", budget=Decimal("500000.00"), committed=Decimal("1200.50")
    )
    assert str(position.committed) == "1200.50"
    request = route.calls.last.request
    assert filter_of(request) == "CostCenter eq 'CC-HR-CS' and Period eq '2024-05'"
    assert "%20eq%20" in str(request.url)  # encoded, not left with spaces
    assert basic(request) == (USER, PASSWORD)
    assert request.headers["X-Request-ID"] == "req-1"
    assert "X-CSRF-Token" not in request.headers  # reads need no token


async def test_a_quote_in_a_cost_centre_is_escaped(adapter: ODataErpAdapter, erp: respx.MockRouter) -> None:
    route = erp.get(f"{ROOT}/Budgets").mock(return_value=collection())
    with pytest.raises(UpstreamNotFound):
        await adapter.budget("O'X", "2024-05", context=CTX)
    assert filter_of(route.calls.last.request) == "CostCenter eq 'O''X' and Period eq '2024-05'"


async def test_no_budget_is_upstream_not_found(adapter: ODataErpAdapter, erp: respx.MockRouter) -> None:
    erp.get(f"{ROOT}/Budgets").mock(return_value=collection())
    with pytest.raises(UpstreamNotFound, match="CC-HR-CS in 2027-01"):
        await adapter.budget("CC-HR-CS", "2027-01", context=CTX)


async def test_a_bad_period_is_refused_before_any_call(adapter: ODataErpAdapter, erp: respx.MockRouter) -> None:
    route = erp.get(f"{ROOT}/Budgets").mock(return_value=collection())
    with pytest.raises(ValueError):
        await adapter.budget("CC-HR-CS", "202405", context=CTX)
    assert not route.called


@pytest.mark.parametrize(
    "answer",
    [
        collection(budget_entity(), budget_entity()),
        collection(budget_entity(Budget=500000.0)),  # a decimal as a JSON number
        collection(budget_entity(Committed="1e3")),
        httpx.Response(200, json={"no": "value"}),
        httpx.Response(200, content=b"<html>"),
    ],
)
async def test_unreadable_budget_answers_are_protocol_errors(
    adapter: ODataErpAdapter, erp: respx.MockRouter, answer: httpx.Response
) -> None:
    erp.get(f"{ROOT}/Budgets").mock(return_value=answer)
    with pytest.raises(UpstreamProtocolError):
        await adapter.budget("CC-HR-CS", "2024-05", context=CTX)


async def test_the_service_path_is_configurable(make_adapter: MakeAdapter, erp: respx.MockRouter) -> None:
    adapter = make_adapter(cfg=config(options={"service_path": "sap/opu/odata4/finance/"}))
    route = erp.get("/sap/opu/odata4/finance/Budgets").mock(return_value=collection(budget_entity()))
    await adapter.budget("CC-HR-CS", "2024-05", context=CTX)
    assert route.called


async def test_429_is_retried_after_retry_after(make_adapter: MakeAdapter, erp: respx.MockRouter) -> None:
    sleeps = SleepRecorder()
    adapter = make_adapter(sleep=sleeps)
    erp.get(f"{ROOT}/Budgets").mock(
        side_effect=[odata_error(429, "TOO_MANY_REQUESTS", headers={"Retry-After": "2"}), collection(budget_entity())]
    )
    assert (await adapter.budget("CC-HR-CS", "2024-05", context=CTX)).cost_center == "CC-HR-CS"
    assert sleeps.waits and sleeps.waits[0] >= 2


async def test_401_is_an_authentication_error(adapter: ODataErpAdapter, erp: respx.MockRouter) -> None:
    erp.get(f"{ROOT}/Budgets").mock(return_value=odata_error(401, "UNAUTHORIZED", "Logon failed"))
    with pytest.raises(UpstreamAuthenticationError) as caught:
        await adapter.budget("CC-HR-CS", "2024-05", context=CTX)
    assert caught.value.upstream_code == "UNAUTHORIZED"


async def test_a_404_is_a_protocol_error_never_not_landed(adapter: ODataErpAdapter, erp: respx.MockRouter) -> None:
    # A wrong service path must not read as "the approval never landed" (that would resend).
    erp.get(f"{ROOT}/ApprovalRequests").mock(return_value=odata_error(404, "NOT_FOUND"))
    with pytest.raises(UpstreamProtocolError):
        await adapter.find_approval("HGW-A1", context=CTX)


# -- approvals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entity", "expected"),
    [
        ({}, ("pending", None, None, None)),
        ({"Status": "Approved", "DecisionDate": "2024-06-02"}, ("approved", dt.date(2024, 6, 2), None, None)),
        (
            {"Status": "Rejected", "DecisionDate": "2024-06-03", "RejectionCode": "BUDGET_EXCEEDED",
             "RejectionReason": "Amount 1234.50 exceeds the available budget"},
            ("rejected", dt.date(2024, 6, 3), "BUDGET_EXCEEDED", "Amount 1234.50 exceeds the available budget"),
        ),
    ],
)
async def test_find_approval_maps_each_status(
    adapter: ODataErpAdapter, erp: respx.MockRouter, entity: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    route = erp.get(f"{ROOT}/ApprovalRequests").mock(return_value=collection(approval_entity(**entity)))
    receipt = await adapter.find_approval("HGW-A1", context=CTX)
    assert receipt is not None
    assert (receipt.status, receipt.decided_on, receipt.reason_code, receipt.reason_message) == expected
    assert receipt.document_number == "1000000001"
    assert receipt.budget == BudgetPosition(
        cost_center="CC-HR-CS", period="2024-05", budget=Decimal("500000.00"), committed=Decimal("1200.50")
    )
    request = route.calls.last.request
    assert filter_of(request) == "Reference eq 'HGW-A1'"
    assert parse_qs(urlsplit(str(request.url)).query)["$expand"] == ["Budget"]


async def test_find_approval_of_a_reference_that_never_landed_is_none(
    adapter: ODataErpAdapter, erp: respx.MockRouter
) -> None:
    erp.get(f"{ROOT}/ApprovalRequests").mock(return_value=collection())
    assert await adapter.find_approval("HGW-NEVER", context=CTX) is None


@pytest.mark.parametrize(
    "entity", [approval_entity(Status="Parked"), approval_entity(DecisionDate="31.05.2024"), {"Status": "Pending"}]
)
async def test_unreadable_approvals_are_protocol_errors(
    adapter: ODataErpAdapter, erp: respx.MockRouter, entity: dict[str, Any]
) -> None:
    erp.get(f"{ROOT}/ApprovalRequests").mock(return_value=collection(entity))
    with pytest.raises(UpstreamProtocolError):
        await adapter.find_approval("HGW-A1", context=CTX)


async def test_submit_fetches_a_token_and_posts_with_it_and_its_cookie(
    adapter: ODataErpAdapter, erp: respx.MockRouter
) -> None:
    fetch = fetch_route(erp)
    create = erp.post(f"{ROOT}/ApprovalRequests").mock(return_value=httpx.Response(201, json=approval_entity()))
    receipt = await adapter.submit_approval(approval_submission(), context=CTX)
    assert receipt == ApprovalReceipt(
        reference="HGW-A1",
        document_number="1000000001",
        status="pending",
        budget=BudgetPosition(
            cost_center="CC-HR-CS", period="2024-05", budget=Decimal("500000.00"), committed=Decimal("1200.50")
        ),
    )
    fetched = fetch.calls.last.request
    assert fetched.headers["X-CSRF-Token"] == "Fetch" and basic(fetched) == (USER, PASSWORD)
    posted = create.calls.last.request
    assert posted.headers["X-CSRF-Token"] == TOKEN
    assert posted.headers["Cookie"] == COOKIE
    assert posted.headers["Content-Type"] == "application/json;IEEE754Compatible=true"
    assert parse_qs(urlsplit(str(posted.url)).query)["$expand"] == ["Budget"]
    assert json.loads(posted.content) == {
        "Reference": "HGW-A1",
        "ExpenseType": "social_security_contribution",
        "CostCenter": "CC-HR-CS",
        "Period": "2024-05",
        "Amount": "1234.50",
        "Currency": "CNY",
        "Description": "Contributions 2024-05",
        "Attachments": [{"FileName": "declaration.pdf", "Kind": "declaration", "Sha256": SHA.lower()}],
    }


async def test_the_token_is_kept_for_later_writes(adapter: ODataErpAdapter, erp: respx.MockRouter) -> None:
    fetch = fetch_route(erp)
    erp.post(f"{ROOT}/ApprovalRequests").mock(return_value=httpx.Response(201, json=approval_entity()))
    erp.post(f"{ROOT}/JournalEntries").mock(return_value=httpx.Response(201, json=journal_entity()))
    await adapter.submit_approval(approval_submission(), context=CTX)
    await adapter.post_voucher(voucher_submission(), context=CTX)
    assert fetch.call_count == 1


async def test_concurrent_writes_share_one_fetch(adapter: ODataErpAdapter, erp: respx.MockRouter) -> None:
    fetch = fetch_route(erp)
    create = erp.post(f"{ROOT}/ApprovalRequests").mock(return_value=httpx.Response(201, json=approval_entity()))
    await asyncio.gather(*(adapter.submit_approval(approval_submission(), context=CTX) for _ in range(5)))
    assert fetch.call_count == 1 and create.call_count == 5


async def test_a_refused_token_is_fetched_again_once_and_the_write_repeated(
    adapter: ODataErpAdapter, erp: respx.MockRouter
) -> None:
    fetch = fetch_route(
        erp,
        httpx.Response(200, json={}, headers={"X-CSRF-Token": "old", "Set-Cookie": "SAP_SESSIONID_HGW=s1; Path=/"}),
        httpx.Response(200, json={}, headers={"X-CSRF-Token": "new", "Set-Cookie": "SAP_SESSIONID_HGW=s2; Path=/"}),
    )
    create = erp.post(f"{ROOT}/ApprovalRequests").mock(
        side_effect=[
            odata_error(403, "CSRF_TOKEN_REQUIRED", headers={"X-CSRF-Token": "Required"}),
            httpx.Response(201, json=approval_entity()),
        ]
    )
    receipt = await adapter.submit_approval(approval_submission(), context=CTX)
    assert receipt.status == "pending"
    assert fetch.call_count == 2
    assert [c.request.headers["X-CSRF-Token"] for c in create.calls] == ["old", "new"]
    assert [c.request.headers["Cookie"] for c in create.calls] == ["SAP_SESSIONID_HGW=s1", "SAP_SESSIONID_HGW=s2"]


async def test_a_session_kept_by_the_erp_keeps_its_cookie(adapter: ODataErpAdapter, erp: respx.MockRouter) -> None:
    # The second fetch sends the session cookie and the ERP sets none: the adapter keeps it.
    fetch = fetch_route(
        erp,
        httpx.Response(200, json={}, headers={"X-CSRF-Token": "old", "Set-Cookie": "SAP_SESSIONID_HGW=s1; Path=/"}),
        httpx.Response(200, json={}, headers={"X-CSRF-Token": "new"}),
    )
    # The adapter sends the cookie itself: a client cookie jar that keeps nothing changes nothing.
    adapter.client._http.cookies.jar.set_policy(DefaultCookiePolicy(blocked_domains=["erp.test"]))
    create = erp.post(f"{ROOT}/ApprovalRequests").mock(
        side_effect=[
            odata_error(403, "CSRF_TOKEN_REQUIRED", headers={"X-CSRF-Token": "Required"}),
            httpx.Response(201, json=approval_entity()),
        ]
    )
    await adapter.submit_approval(approval_submission(), context=CTX)
    assert "Cookie" not in fetch.calls[0].request.headers
    assert fetch.calls[1].request.headers["Cookie"] == "SAP_SESSIONID_HGW=s1"
    assert create.calls.last.request.headers["Cookie"] == "SAP_SESSIONID_HGW=s1"
    assert create.calls.last.request.headers["X-CSRF-Token"] == "new"


async def test_a_fresh_token_refused_too_is_an_authentication_error(
    adapter: ODataErpAdapter, erp: respx.MockRouter
) -> None:
    fetch = fetch_route(erp)
    create = erp.post(f"{ROOT}/ApprovalRequests").mock(
        return_value=odata_error(403, "CSRF_TOKEN_REQUIRED", headers={"X-CSRF-Token": "Required"})
    )
    with pytest.raises(UpstreamAuthenticationError, match="freshly fetched") as caught:
        await adapter.submit_approval(approval_submission(), context=CTX)
    assert not isinstance(caught.value, CsrfTokenRequired)
    assert isinstance(caught.value.__cause__, CsrfTokenRequired)
    assert fetch.call_count == 2 and create.call_count == 2


async def test_a_403_without_the_required_header_is_not_refetched(
    adapter: ODataErpAdapter, erp: respx.MockRouter
) -> None:
    fetch = fetch_route(erp)
    erp.post(f"{ROOT}/ApprovalRequests").mock(return_value=odata_error(403, "FORBIDDEN"))
    with pytest.raises(UpstreamAuthenticationError) as caught:
        await adapter.submit_approval(approval_submission(), context=CTX)
    assert not isinstance(caught.value, CsrfTokenRequired)
    assert fetch.call_count == 1


async def test_a_fetch_without_a_token_is_a_protocol_error(adapter: ODataErpAdapter, erp: respx.MockRouter) -> None:
    fetch_route(erp, httpx.Response(200, json={}))
    create = erp.post(f"{ROOT}/ApprovalRequests")
    with pytest.raises(UpstreamProtocolError, match="without a token"):
        await adapter.submit_approval(approval_submission(), context=CTX)
    assert not create.called


@pytest.mark.parametrize(
    ("target", "field"),
    [("CostCenter", "cost_center"), ("Period", "period"), ("Amount", "amount"), ("Attachments[0]/Sha256", "attachments[0]"), (None, None)],
)
async def test_business_refusals_carry_the_erp_code_and_the_field(
    adapter: ODataErpAdapter, erp: respx.MockRouter, target: str | None, field: str | None
) -> None:
    fetch_route(erp)
    erp.post(f"{ROOT}/ApprovalRequests").mock(
        return_value=odata_error(400, "UNKNOWN_COST_CENTER", "Cost center CC-X does not exist", target)
    )
    lookup = erp.get(f"{ROOT}/ApprovalRequests")
    with pytest.raises(BusinessRejection) as caught:
        await adapter.submit_approval(approval_submission(cost_center="CC-X"), context=CTX)
    assert caught.value.upstream_code == "UNKNOWN_COST_CENTER"
    assert caught.value.upstream_message == "Cost center CC-X does not exist"
    assert caught.value.field == field
    assert not lookup.called  # a refusal is not ambiguous


async def test_a_duplicate_reference_answers_what_landed(adapter: ODataErpAdapter, erp: respx.MockRouter) -> None:
    fetch_route(erp)
    create = erp.post(f"{ROOT}/ApprovalRequests").mock(
        return_value=odata_error(409, "DUPLICATE_REFERENCE", target="Reference")
    )
    erp.get(f"{ROOT}/ApprovalRequests").mock(return_value=collection(approval_entity(Status="Approved", DecisionDate="2024-06-01")))
    receipt = await adapter.submit_approval(approval_submission(), context=CTX)
    assert receipt.status == "approved" and create.call_count == 1


async def test_a_duplicate_that_cannot_be_found_is_a_protocol_error(
    adapter: ODataErpAdapter, erp: respx.MockRouter
) -> None:
    fetch_route(erp)
    erp.post(f"{ROOT}/ApprovalRequests").mock(return_value=odata_error(409, "DUPLICATE_REFERENCE"))
    erp.get(f"{ROOT}/ApprovalRequests").mock(return_value=collection())
    with pytest.raises(UpstreamProtocolError, match="duplicate"):
        await adapter.submit_approval(approval_submission(), context=CTX)


@pytest.mark.parametrize("lost", [httpx.ReadTimeout("lost"), httpx.RemoteProtocolError("closed"), odata_error(500, "INTERNAL_ERROR")])
async def test_an_ambiguous_create_that_landed_is_asked_about_not_resent(
    adapter: ODataErpAdapter, erp: respx.MockRouter, lost: Any
) -> None:
    fetch_route(erp)
    create = erp.post(f"{ROOT}/ApprovalRequests")
    create.side_effect = [lost] if isinstance(lost, Exception) else None
    if not isinstance(lost, Exception):
        create.return_value = lost
    lookup = erp.get(f"{ROOT}/ApprovalRequests").mock(return_value=collection(approval_entity()))
    receipt = await adapter.submit_approval(approval_submission(), context=CTX)
    assert receipt.document_number == "1000000001"
    assert create.call_count == 1 and lookup.call_count == 1


async def test_an_ambiguous_create_that_did_not_land_is_sent_again(
    adapter: ODataErpAdapter, erp: respx.MockRouter
) -> None:
    fetch_route(erp)
    create = erp.post(f"{ROOT}/ApprovalRequests").mock(
        side_effect=[httpx.ReadTimeout("lost"), httpx.Response(201, json=approval_entity())]
    )
    lookup = erp.get(f"{ROOT}/ApprovalRequests").mock(return_value=collection())
    receipt = await adapter.submit_approval(approval_submission(), context=CTX)
    assert receipt.status == "pending"
    assert create.call_count == 2 and lookup.call_count == 1


async def test_503_on_a_create_applied_nothing_and_is_retried(
    make_adapter: MakeAdapter, erp: respx.MockRouter
) -> None:
    sleeps = SleepRecorder()
    adapter = make_adapter(sleep=sleeps)
    fetch_route(erp)
    create = erp.post(f"{ROOT}/ApprovalRequests").mock(
        side_effect=[
            odata_error(503, "SERVICE_UNAVAILABLE", headers={"Retry-After": "1"}),
            httpx.Response(201, json=approval_entity()),
        ]
    )
    lookup = erp.get(f"{ROOT}/ApprovalRequests")
    await adapter.submit_approval(approval_submission(), context=CTX)
    assert create.call_count == 2 and not lookup.called
    assert sleeps.waits[0] >= 1


# -- vouchers ---------------------------------------------------------------------------------


async def test_post_voucher_books_each_line_on_its_side(adapter: ODataErpAdapter, erp: respx.MockRouter) -> None:
    fetch_route(erp)
    create = erp.post(f"{ROOT}/JournalEntries").mock(return_value=httpx.Response(201, json=journal_entity()))
    receipt = await adapter.post_voucher(voucher_submission(), context=CTX)
    assert receipt == VoucherReceipt(
        reference="HGW-V1", document_number="5100000001", status="posted", posted_on=dt.date(2024, 6, 1)
    )
    posted = create.calls.last.request
    assert posted.headers["X-CSRF-Token"] == TOKEN
    assert json.loads(posted.content) == {
        "Reference": "HGW-V1",
        "PostingDate": "2024-05-31",
        "Currency": "CNY",
        "Description": "Contributions 2024-05",
        "Items": [
            {"LineNumber": 1, "GLAccount": "660201", "CostCenter": "CC-HR-CS", "DebitCreditCode": "S",
             "Amount": "1000.00", "ItemText": "Employer contributions"},
            {"LineNumber": 2, "GLAccount": "100201", "CostCenter": None, "DebitCreditCode": "H",
             "Amount": "1000.00", "ItemText": "Bank A"},
        ],
        "Attachments": [],
    }


async def test_long_texts_are_cut_to_the_erp_limits(adapter: ODataErpAdapter, erp: respx.MockRouter) -> None:
    fetch_route(erp)
    create = erp.post(f"{ROOT}/JournalEntries").mock(return_value=httpx.Response(201, json=journal_entity()))
    lines = (
        VoucherLine(account="660201", debit=Decimal("1"), credit=Decimal("0"), cost_center="CC-HR-CS", description="x" * 80),
        VoucherLine(account="100201", debit=Decimal("0"), credit=Decimal("1")),
    )
    await adapter.post_voucher(voucher_submission(lines=lines, description="d" * 300), context=CTX)
    body = json.loads(create.calls.last.request.content)
    assert len(body["Description"]) == 200 and len(body["Items"][0]["ItemText"]) == 50


@pytest.mark.parametrize(
    ("debit", "credit"), [(Decimal("1"), Decimal("1")), (Decimal("0"), Decimal("0")), (Decimal("-1"), Decimal("0"))]
)
async def test_a_line_not_on_exactly_one_side_is_refused_before_sending(
    adapter: ODataErpAdapter, erp: respx.MockRouter, debit: Decimal, credit: Decimal
) -> None:
    fetch = fetch_route(erp)
    lines = (
        VoucherLine(account="660201", debit=Decimal("1"), credit=Decimal("0"), cost_center="CC-HR-CS"),
        VoucherLine(account="100201", debit=debit, credit=credit),
    )
    with pytest.raises(BusinessRejection) as caught:
        await adapter.post_voucher(voucher_submission(lines=lines), context=CTX)
    assert caught.value.field == "lines[1]"
    assert not fetch.called


@pytest.mark.parametrize(
    ("code", "target", "field"),
    [
        ("UNBALANCED", "Items", "lines"),
        ("UNKNOWN_GL_ACCOUNT", "Items[2]/GLAccount", "lines[1].account"),
        ("COST_CENTER_REQUIRED", "Items[1]/CostCenter", "lines[0].cost_center"),
        ("BAD_REQUEST", "Items[1]/Amount", "lines[0]"),
        ("BAD_REQUEST", "PostingDate", "date"),
    ],
)
async def test_refused_vouchers(
    adapter: ODataErpAdapter, erp: respx.MockRouter, code: str, target: str, field: str
) -> None:
    fetch_route(erp)
    erp.post(f"{ROOT}/JournalEntries").mock(return_value=odata_error(400, code, "no", target))
    with pytest.raises(BusinessRejection) as caught:
        await adapter.post_voucher(voucher_submission(), context=CTX)
    assert (caught.value.upstream_code, caught.value.field) == (code, field)


async def test_find_voucher(adapter: ODataErpAdapter, erp: respx.MockRouter) -> None:
    route = erp.get(f"{ROOT}/JournalEntries").mock(side_effect=[collection(journal_entity()), collection()])
    found = await adapter.find_voucher("HGW-V1", context=CTX)
    assert found is not None and found.status == "posted" and found.document_number == "5100000001"
    assert filter_of(route.calls.last.request) == "Reference eq 'HGW-V1'"
    assert await adapter.find_voucher("HGW-V2", context=CTX) is None


async def test_a_voucher_lost_after_sending_is_found_not_reposted(
    adapter: ODataErpAdapter, erp: respx.MockRouter
) -> None:
    fetch_route(erp)
    create = erp.post(f"{ROOT}/JournalEntries").mock(side_effect=[httpx.ReadTimeout("lost")])
    erp.get(f"{ROOT}/JournalEntries").mock(return_value=collection(journal_entity()))
    receipt = await adapter.post_voucher(voucher_submission(), context=CTX)
    assert receipt.document_number == "5100000001" and create.call_count == 1
