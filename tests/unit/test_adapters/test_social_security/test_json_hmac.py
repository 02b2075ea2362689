"""The json-hmac bureau adapter against docs/dialects/json-hmac.md, with respx."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from adapters import (
    AdapterHealth,
    AmbiguousOutcome,
    BusinessRejection,
    CallContext,
    Capability,
    CarriedInsurance,
    CircuitOpen,
    ContributionMonth,
    ContributionPaymentNotice,
    ContributionPaymentReceipt,
    ContributionPayments,
    DeclarationLine,
    DeclarationLineResult,
    DeclarationReceipt,
    DeclarationSubmission,
    Employer,
    EnrolmentReceipt,
    EnrolmentSubmission,
    ParticipationRecord,
    Person,
    TransferInReceipt,
    TransferInSubmission,
    TransferOutProgress,
    TransferOutSubmission,
    UpstreamAuthenticationError,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamTimeout,
)
from adapters.http import CircuitBreaker, UpstreamCall
from adapters.social_security.json_hmac import (
    JsonHmacAuth,
    JsonHmacBureauAdapter,
    fen_to_yuan,
    format_period,
    parse_date,
    yuan_to_fen,
)

from .._support import (
    APP_ID,
    ENROLMENT_QUERY,
    LI_MING_ID,
    QUERY,
    REGION,
    SECRET,
    SUBMIT,
    UNIT_NAME,
    USCC,
    WANG_FANG_ID,
    FakeClock,
    SleepRecorder,
    acceptance,
    expected_signature,
    fast_policy,
    json_body,
    ok,
    page,
    raw_record,
    refusal,
)
from ..conftest import bureau_config

MakeAdapter = Callable[..., JsonHmacBureauAdapter]

WANG_FANG = Person(id_number=WANG_FANG_ID, name="王芳")
BIZ_NO = "HGW-0123456789ABCDEF"
NONCE = re.compile(r"^[0-9a-zA-Z]{16,64}$")


def submission(**overrides: Any) -> EnrolmentSubmission:
    values: dict[str, Any] = {
        "reference": BIZ_NO,
        "region": REGION,
        "person": Person(id_number=LI_MING_ID, name="李明"),
        "employer": Employer(uscc=USCC, name=UNIT_NAME),
        "hire_date": dt.date(2024, 11, 1),
        "insurance_types": ("pension", "medical"),
        "contribution_base": Decimal("8000.00"),
    }
    values.update(overrides)
    return EnrolmentSubmission(**values)


def assert_signed(request: httpx.Request, *, target: str) -> None:
    """The request carries the four signing headers and a signature recomputed from the doc."""
    for header in ("X-App-Id", "X-Timestamp", "X-Nonce", "X-Signature"):
        assert header in request.headers, header
    assert request.headers["X-App-Id"] == APP_ID
    timestamp = request.headers["X-Timestamp"]
    assert timestamp.isdigit()
    assert abs(int(timestamp) - time.time()) <= 5
    nonce = request.headers["X-Nonce"]
    assert NONCE.match(nonce)
    signature = request.headers["X-Signature"]
    assert re.fullmatch(r"[0-9a-f]{64}", signature)  # lower-case hex
    assert signature == expected_signature("POST", target, timestamp, nonce, request.content)


# -- value formats ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fen", "yuan"),
    [
        (360400, Decimal("3604.00")),
        (1, Decimal("0.01")),
        (10, Decimal("0.10")),
        (0, Decimal("0.00")),
        (800000, Decimal("8000.00")),
        (123456789012345, Decimal("1234567890123.45")),
        (99999999999999999, Decimal("999999999999999.99")),
    ],
)
def test_fen_and_yuan_convert_exactly_both_ways(fen: int, yuan: Decimal) -> None:
    converted = fen_to_yuan(fen)
    assert converted == yuan
    assert str(converted) == str(yuan)  # two places, no float noise
    back = yuan_to_fen(yuan)
    assert back == fen
    assert isinstance(back, int)


@pytest.mark.parametrize(("yuan", "fen"), [(Decimal("3604"), 360400), (Decimal("3604.5"), 360450), (Decimal("0.1"), 10)])
def test_yuan_with_fewer_places_becomes_whole_fen(yuan: Decimal, fen: int) -> None:
    assert yuan_to_fen(yuan) == fen


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("20230801", dt.date(2023, 8, 1)), ("20240229", dt.date(2024, 2, 29)), ("", None), (None, None)],
)
def test_parse_date(raw: str | None, expected: dt.date | None) -> None:
    assert parse_date(raw) == expected


@pytest.mark.parametrize("raw", ["2023-08-01", "20230231", "2023081", "abcdefgh"])
def test_parse_date_refuses_other_formats(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_date(raw)


@pytest.mark.parametrize(("raw", "expected"), [("202607", "2026-07"), ("199912", "1999-12"), ("", None), (None, None)])
def test_format_period(raw: str | None, expected: str | None) -> None:
    assert format_period(raw) == expected


@pytest.mark.parametrize("raw", ["2026-07", "20267", "2026071", "2026ab"])
def test_format_period_refuses_other_formats(raw: str) -> None:
    with pytest.raises(ValueError):
        format_period(raw)


# -- signing ---------------------------------------------------------------------------------


def test_auth_signs_method_path_query_timestamp_nonce_and_body_hash() -> None:
    auth = JsonHmacAuth(APP_ID, SECRET, clock=lambda: 1_730_419_200.9)
    body = '{"bizNo":"HGW-0123456789ABCDEF","name":"李明"}'.encode()
    request = httpx.Request("POST", "https://bureau.test/api/v1/enrolment/query?trace=1&x=a%20b", content=body)
    signed = next(auth.auth_flow(request))
    headers = signed.headers
    assert headers["X-App-Id"] == APP_ID
    assert headers["X-Timestamp"] == "1730419200"  # whole seconds
    assert NONCE.match(headers["X-Nonce"])
    assert headers["X-Signature"] == expected_signature(
        "POST", "/api/v1/enrolment/query?trace=1&x=a%20b", "1730419200", headers["X-Nonce"], body
    )


def test_auth_hashes_an_empty_body_as_the_empty_string() -> None:
    auth = JsonHmacAuth(APP_ID, SECRET, clock=lambda: 1_700_000_000)
    signed = next(auth.auth_flow(httpx.Request("GET", "https://bureau.test/api/v1/ping")))
    to_sign = "\n".join(
        ["GET", "/api/v1/ping", "1700000000", signed.headers["X-Nonce"], hashlib.sha256(b"").hexdigest()]
    )
    assert signed.headers["X-Signature"] == hmac.new(SECRET.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def test_auth_signature_depends_on_the_secret_and_body() -> None:
    auth = JsonHmacAuth(APP_ID, SECRET, clock=lambda: 1_700_000_000)
    signed = next(auth.auth_flow(httpx.Request("POST", "https://bureau.test/x", content=b"{}")))
    headers = signed.headers
    assert headers["X-Signature"] != expected_signature(
        "POST", "/x", headers["X-Timestamp"], headers["X-Nonce"], b"{}", secret="another-secret"
    )
    assert headers["X-Signature"] != expected_signature("POST", "/x", headers["X-Timestamp"], headers["X-Nonce"], b"{ }")


def test_auth_uses_a_fresh_nonce_every_time() -> None:
    auth = JsonHmacAuth(APP_ID, SECRET)
    nonces = {
        next(auth.auth_flow(httpx.Request("POST", "https://bureau.test/x", content=b"{}"))).headers["X-Nonce"]
        for _ in range(50)
    }
    assert len(nonces) == 50


async def test_search_request_is_signed_per_the_protocol(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(transport=None)  # the real httpx transport, patched by respx
    route = bureau.post(QUERY).mock(return_value=page([]))
    await adapter.search_participation(WANG_FANG, context=CallContext())
    request = route.calls.last.request
    assert_signed(request, target=QUERY)
    assert request.headers["Content-Type"] == "application/json"


async def test_submit_request_is_signed_per_the_protocol(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    route = bureau.post(SUBMIT).mock(return_value=acceptance(BIZ_NO))
    await adapter.submit_enrolment(submission(), context=CallContext())
    assert_signed(route.calls.last.request, target=SUBMIT)


async def test_every_attempt_is_signed_afresh_with_a_new_nonce(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    route = bureau.post(QUERY).mock(side_effect=[httpx.Response(503), httpx.ReadTimeout("slow"), page([])])
    await adapter.search_participation(WANG_FANG, context=CallContext())
    assert route.call_count == 3
    requests = [call.request for call in route.calls]
    for request in requests:
        assert_signed(request, target=QUERY)
    assert len({r.headers["X-Nonce"] for r in requests}) == 3
    assert len({r.headers["X-Signature"] for r in requests}) == 3
    assert len({r.content for r in requests}) == 1  # same body each time


async def test_a_resubmission_is_signed_with_a_new_nonce(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    submit = bureau.post(SUBMIT).mock(side_effect=[httpx.ReadTimeout("lost"), acceptance(BIZ_NO)])
    lookup = bureau.post(ENROLMENT_QUERY).mock(return_value=refusal("2404", "无此登记"))
    await adapter.submit_enrolment(submission(), context=CallContext())
    requests = [call.request for call in submit.calls] + [call.request for call in lookup.calls]
    assert len(requests) == 3
    for call in submit.calls:
        assert_signed(call.request, target=SUBMIT)
    assert_signed(lookup.calls.last.request, target=ENROLMENT_QUERY)
    assert len({r.headers["X-Nonce"] for r in requests}) == 3


# -- participation search ----------------------------------------------------------------------


async def test_search_sends_the_person_and_paging(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    route = bureau.post(QUERY).mock(return_value=page([]))
    assert await adapter.search_participation(WANG_FANG, context=CallContext()) == []
    assert route.call_count == 1
    assert json_body(route.calls.last.request) == {
        "idCardNo": WANG_FANG_ID,
        "name": "王芳",
        "pageNo": 1,
        "pageSize": 50,
    }


async def test_search_maps_a_record_to_the_canonical_model(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    bureau.post(QUERY).mock(return_value=page([raw_record(baseAmount=360400)]))
    [record] = await adapter.search_participation(WANG_FANG, context=CallContext())
    assert record == ParticipationRecord(
        region=REGION,
        insurance_type="pension",
        status="active",
        employer=Employer(uscc=USCC, name=UNIT_NAME),
        start_date=dt.date(2023, 8, 1),
        end_date=None,
        paid_months=36,
        contribution_base=Decimal("3604.00"),
        last_paid_period="2026-07",
    )
    assert str(record.contribution_base) == "3604.00"


@pytest.mark.parametrize(
    ("code", "insurance_type"),
    [("110", "pension"), ("210", "unemployment"), ("310", "medical"), ("410", "work_injury"), ("510", "maternity")],
)
async def test_insurance_type_codes(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter, code: str, insurance_type: str) -> None:
    bureau.post(QUERY).mock(return_value=page([raw_record(insuranceType=code)]))
    [record] = await adapter.search_participation(WANG_FANG, context=CallContext())
    assert record.insurance_type == insurance_type


@pytest.mark.parametrize(("code", "status"), [("1", "active"), ("2", "suspended"), ("3", "terminated")])
async def test_status_codes(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter, code: str, status: str) -> None:
    bureau.post(QUERY).mock(return_value=page([raw_record(status=code)]))
    [record] = await adapter.search_participation(WANG_FANG, context=CallContext())
    assert record.status == status


async def test_unknown_insurance_types_are_skipped(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    bureau.post(QUERY).mock(
        return_value=page(
            [raw_record(insuranceType="110"), raw_record(insuranceType="999"), raw_record(insuranceType="310")]
        )
    )
    records = await adapter.search_participation(WANG_FANG, context=CallContext())
    assert [r.insurance_type for r in records] == ["pension", "medical"]


async def test_skipped_records_still_count_towards_the_total(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(config=bureau_config(options={"page_size": 2}))
    route = bureau.post(QUERY).mock(
        side_effect=[
            page([raw_record(insuranceType="999"), raw_record(insuranceType="110")], total=3),
            page([raw_record(insuranceType="310")], total=3, page_no=2),
        ]
    )
    records = await adapter.search_participation(WANG_FANG, context=CallContext())
    assert [r.insurance_type for r in records] == ["pension", "medical"]
    assert route.call_count == 2


async def test_terminated_record_with_dates_and_without_employer_or_base(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    raw = raw_record(status="3", unitCode="", unitName="", endDate="20240131", lastPaidPeriod="", paidMonths=0)
    del raw["baseAmount"]
    bureau.post(QUERY).mock(return_value=page([raw]))
    [record] = await adapter.search_participation(WANG_FANG, context=CallContext())
    assert record.status == "terminated"
    assert record.employer is None
    assert record.end_date == dt.date(2024, 1, 31)
    assert record.contribution_base is None
    assert record.last_paid_period is None
    assert record.paid_months == 0


async def test_records_carry_the_configured_region(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(config=bureau_config(regions=("440300",)))
    bureau.post(QUERY).mock(return_value=page([raw_record()]))
    [record] = await adapter.search_participation(WANG_FANG, context=CallContext())
    assert record.region == "440300"


async def test_search_follows_pages_until_total(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(config=bureau_config(options={"page_size": 1}))
    pages = {
        1: page([raw_record(insuranceType="110")], total=3, page_no=1, page_size=1),
        2: page([raw_record(insuranceType="210")], total=3, page_no=2, page_size=1),
        3: page([raw_record(insuranceType="310")], total=3, page_no=3, page_size=1),
    }
    route = bureau.post(QUERY).mock(side_effect=lambda request: pages[json_body(request)["pageNo"]])
    records = await adapter.search_participation(WANG_FANG, context=CallContext())
    assert [r.insurance_type for r in records] == ["pension", "unemployment", "medical"]
    assert route.call_count == 3
    assert [json_body(c.request)["pageNo"] for c in route.calls] == [1, 2, 3]
    assert {json_body(c.request)["pageSize"] for c in route.calls} == {1}


async def test_search_stops_on_an_empty_page(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(config=bureau_config(options={"page_size": 1}))
    route = bureau.post(QUERY).mock(side_effect=[page([raw_record()], total=5), page([], total=5)])
    records = await adapter.search_participation(WANG_FANG, context=CallContext())
    assert len(records) == 1
    assert route.call_count == 2


async def test_search_with_no_records_is_an_empty_list(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    route = bureau.post(QUERY).mock(return_value=ok({"total": 0, "pageNo": 1, "pageSize": 50, "records": []}))
    assert await adapter.search_participation(WANG_FANG, context=CallContext()) == []
    assert route.call_count == 1


@pytest.mark.parametrize(
    "data",
    [
        None,  # "0000" without data
        [],
        {"total": 1, "records": [raw_record(status="9")]},  # unknown status code
        {"total": 1, "records": [raw_record(startDate="2023-08-01")]},  # not yyyyMMdd
        {"total": 1, "records": [raw_record(lastPaidPeriod="2026-07")]},  # not yyyyMM
        {"total": 1, "records": [raw_record(baseAmount="lots")]},
        {"total": 1, "records": [{"status": "1"}]},  # no insuranceType
        {"total": "many", "records": []},
    ],
)
async def test_malformed_participation_data_is_a_protocol_error(
    bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter, data: Any
) -> None:
    route = bureau.post(QUERY).mock(return_value=ok(data))
    with pytest.raises(UpstreamProtocolError) as info:
        await adapter.search_participation(WANG_FANG, context=CallContext())
    assert route.call_count == 1
    assert info.value.upstream == "gz-bureau"
    assert info.value.response is not None and info.value.request is not None


# -- error envelopes ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["1001", "1002", "1003", "1004"])
async def test_signature_refusals_are_authentication_errors(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter, code: str) -> None:
    route = bureau.post(QUERY).mock(return_value=refusal(code, "签名错误", status=401))
    with pytest.raises(UpstreamAuthenticationError) as info:
        await adapter.search_participation(WANG_FANG, context=CallContext())
    error = info.value
    assert error.upstream_code == code
    assert error.upstream_message == "签名错误"
    assert error.upstream == "gz-bureau"
    assert error.status_code == 401
    assert error.request is not None and error.request.url.path == QUERY
    assert route.call_count == 1  # never retried


@pytest.mark.parametrize(
    ("code", "field"), [("2001", "insurance_types"), ("2003", "id_number"), ("2005", "name"), ("2999", None)]
)
async def test_business_refusals_on_search(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter, code: str, field: str | None) -> None:
    route = bureau.post(QUERY).mock(return_value=refusal(code, "业务拒绝"))
    with pytest.raises(BusinessRejection) as info:
        await adapter.search_participation(WANG_FANG, context=CallContext())
    error = info.value
    assert (error.upstream_code, error.upstream_message, error.field) == (code, "业务拒绝", field)
    assert error.upstream == "gz-bureau"
    assert error.status_code == 200
    assert error.response is not None and error.request is not None
    assert route.call_count == 1  # a business "no" is never retried


@pytest.mark.parametrize(("code", "field"), [("2001", "insurance_types"), ("2003", "id_number")])
async def test_business_refusals_on_submit_are_not_retried_or_looked_up(
    bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter, code: str, field: str
) -> None:
    submit = bureau.post(SUBMIT).mock(return_value=refusal(code, "已参保"))
    lookup = bureau.post(ENROLMENT_QUERY).mock(return_value=acceptance(BIZ_NO))
    with pytest.raises(BusinessRejection) as info:
        await adapter.submit_enrolment(submission(), context=CallContext())
    assert (info.value.upstream_code, info.value.upstream_message, info.value.field) == (code, "已参保", field)
    assert submit.call_count == 1
    assert lookup.call_count == 0


async def test_malformed_request_refusal_is_a_rejection_not_an_ambiguity(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    # 1100 says the bureau refused what we sent: nothing was applied, nothing is ambiguous.
    route = bureau.post(QUERY).mock(return_value=refusal("1100", "请求格式错误", status=400))
    with pytest.raises(BusinessRejection) as info:
        await adapter.search_participation(WANG_FANG, context=CallContext())
    assert info.value.upstream_code == "1100"
    assert info.value.upstream_message == "请求格式错误"
    assert info.value.status_code == 400
    assert info.value.upstream == "gz-bureau"
    assert route.call_count == 1


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>gateway</html>"),
        httpx.Response(200, content=b""),
        httpx.Response(200, json=["0000"]),
        httpx.Response(200, json={"msg": "no code"}),
        httpx.Response(200, json="0000"),
        httpx.Response(404, text="Not Found"),
    ],
)
async def test_an_answer_without_an_envelope_is_a_protocol_error(
    bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter, response: httpx.Response
) -> None:
    route = bureau.post(QUERY).mock(return_value=response)
    with pytest.raises(UpstreamProtocolError) as info:
        await adapter.search_participation(WANG_FANG, context=CallContext())
    assert route.call_count == 1
    assert info.value.response is not None
    assert info.value.status_code == response.status_code
    assert info.value.request is not None
    assert info.value.upstream == "gz-bureau"


async def test_unreadable_receipt_is_a_protocol_error(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    bureau.post(ENROLMENT_QUERY).mock(return_value=ok({"bizNo": BIZ_NO}))  # no acceptNo
    with pytest.raises(UpstreamProtocolError):
        await adapter.find_enrolment(BIZ_NO, context=CallContext())


# -- 429 and retries ----------------------------------------------------------------------------


async def test_rate_limit_waits_at_least_retry_after(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    sleeps = SleepRecorder()
    adapter = make_adapter(sleep=sleeps, policy=fast_policy(max_retry_after=10.0))
    route = bureau.post(QUERY).mock(
        side_effect=[refusal("4290", "请求过于频繁", status=429, headers={"Retry-After": "3"}), page([raw_record()])]
    )
    records = await adapter.search_participation(WANG_FANG, context=CallContext())
    assert len(records) == 1
    assert route.call_count == 2
    assert len(sleeps.waits) == 1
    assert sleeps.waits[0] >= 3.0


async def test_rate_limit_beyond_max_retry_after_gives_up(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    sleeps = SleepRecorder()
    adapter = make_adapter(sleep=sleeps, policy=fast_policy(max_retry_after=5.0, max_attempts=4))
    route = bureau.post(QUERY).mock(return_value=refusal("4290", "请求过于频繁", status=429, headers={"Retry-After": "60"}))
    with pytest.raises(UpstreamRateLimited) as info:
        await adapter.search_participation(WANG_FANG, context=CallContext())
    assert info.value.retry_after == 60.0
    assert info.value.status_code == 429
    assert info.value.upstream == "gz-bureau"
    assert route.call_count == 1
    assert sleeps.waits == []


async def test_declared_policy_gives_up_on_long_rate_limits(bureau: respx.MockRouter) -> None:
    # The adapter's own policy: a search must answer within seconds.
    adapter = JsonHmacBureauAdapter(bureau_config())
    sleeps = SleepRecorder()
    adapter.client._sleep = sleeps
    try:
        route = bureau.post(QUERY).mock(return_value=refusal("4290", "限流", status=429, headers={"Retry-After": "11"}))
        with pytest.raises(UpstreamRateLimited):
            await adapter.search_participation(WANG_FANG, context=CallContext())
        assert route.call_count == 1
        assert sleeps.waits == []
    finally:
        await adapter.aclose()


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, json={"code": "5000", "msg": "系统繁忙"}),
        httpx.Response(503, json={"code": "5000", "msg": "系统繁忙"}),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
    ],
)
async def test_search_retries_transient_failures(bureau: respx.MockRouter, make_adapter: MakeAdapter, failure: Any) -> None:
    adapter = make_adapter(policy=fast_policy(max_attempts=3))
    route = bureau.post(QUERY).mock(side_effect=[failure, failure, page([raw_record()])])
    records = await adapter.search_participation(WANG_FANG, context=CallContext())
    assert len(records) == 1
    assert route.call_count == 3


@pytest.mark.parametrize(
    ("failure", "error_type"),
    [
        (httpx.Response(500, json={"code": "5000", "msg": "系统繁忙"}), UpstreamServerError),
        (httpx.ConnectError("refused"), UpstreamConnectError),
        (httpx.ReadTimeout("slow"), UpstreamTimeout),
    ],
)
async def test_search_gives_up_after_max_attempts(
    bureau: respx.MockRouter, make_adapter: MakeAdapter, failure: Any, error_type: type[Exception]
) -> None:
    adapter = make_adapter(policy=fast_policy(max_attempts=4))
    route = bureau.post(QUERY).mock(side_effect=[failure] * 10)
    with pytest.raises(error_type):
        await adapter.search_participation(WANG_FANG, context=CallContext())
    assert route.call_count == 4


async def test_context_deadline_bounds_retries(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    sleeps = SleepRecorder()
    adapter = make_adapter(
        sleep=sleeps, policy=fast_policy(max_attempts=6, initial_backoff=1.0, max_backoff=1.0, deadline=30.0)
    )
    route = bureau.post(QUERY).respond(503)
    with pytest.raises(UpstreamServerError):
        await adapter.search_participation(WANG_FANG, context=CallContext(deadline=time.monotonic() + 0.5))
    assert route.call_count == 1
    assert sleeps.waits == []


async def test_policy_deadline_bounds_retries_in_real_time(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(
        policy=fast_policy(max_attempts=1000, initial_backoff=0.02, max_backoff=0.02, multiplier=1.0, deadline=0.2)
    )
    route = bureau.post(QUERY).mock(side_effect=httpx.ConnectError("refused"))
    started = time.monotonic()
    with pytest.raises(UpstreamConnectError):
        await adapter.search_participation(WANG_FANG, context=CallContext())
    assert time.monotonic() - started < 1.0
    assert 2 <= route.call_count < 1000


# -- enrolment -----------------------------------------------------------------------------------


async def test_submit_sends_the_protocol_body_and_returns_the_receipt(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    route = bureau.post(SUBMIT).mock(return_value=acceptance(BIZ_NO, "440100E000042", accepted_at="20241101"))
    receipt = await adapter.submit_enrolment(
        submission(insurance_types=("pension", "unemployment", "medical", "work_injury", "maternity"), contribution_base=Decimal("3604")),
        context=CallContext(),
    )
    assert receipt == EnrolmentReceipt(
        reference=BIZ_NO, bureau_reference="440100E000042", status="accepted", accepted_on=dt.date(2024, 11, 1)
    )
    assert json_body(route.calls.last.request) == {
        "bizNo": BIZ_NO,
        "idCardNo": LI_MING_ID,
        "name": "李明",
        "unitCode": USCC,
        "unitName": UNIT_NAME,
        "startDate": "20241101",
        "insuranceTypes": ["110", "210", "310", "410", "510"],
        "baseAmount": 360400,
    }


async def test_submit_receipt_not_yet_accepted_is_pending(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    bureau.post(SUBMIT).mock(return_value=acceptance(BIZ_NO, status="PROCESSING", accepted_at=""))
    receipt = await adapter.submit_enrolment(submission(), context=CallContext())
    assert receipt.status == "pending"
    assert receipt.accepted_on is None


@pytest.mark.parametrize(
    "lost", [httpx.ReadTimeout("no answer"), httpx.RemoteProtocolError("server disconnected"), httpx.Response(500)]
)
async def test_ambiguous_submit_that_landed_is_not_sent_again(
    bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter, lost: Any
) -> None:
    submit = bureau.post(SUBMIT).mock(side_effect=[lost, acceptance(BIZ_NO, "440100E000999")])
    lookup = bureau.post(ENROLMENT_QUERY).mock(return_value=acceptance(BIZ_NO, "440100E000001"))
    receipt = await adapter.submit_enrolment(submission(), context=CallContext())
    assert receipt.bureau_reference == "440100E000001"  # the bureau's answer to the lookup
    assert submit.call_count == 1
    assert lookup.call_count == 1
    assert json_body(lookup.calls.last.request) == {"bizNo": BIZ_NO}


@pytest.mark.parametrize(
    "lost", [httpx.ReadTimeout("no answer"), httpx.ReadError("reset"), httpx.Response(500), httpx.Response(502)]
)
async def test_ambiguous_submit_that_did_not_land_is_sent_again(
    bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter, lost: Any
) -> None:
    submit = bureau.post(SUBMIT).mock(side_effect=[lost, acceptance(BIZ_NO)])
    lookup = bureau.post(ENROLMENT_QUERY).mock(return_value=refusal("2404", "无此登记"))
    receipt = await adapter.submit_enrolment(submission(), context=CallContext())
    assert receipt.reference == BIZ_NO
    assert submit.call_count == 2
    assert lookup.call_count == 1
    assert submit.calls[0].request.content == submit.calls[1].request.content  # same bizNo, same body


async def test_the_lookup_happens_between_the_two_submits(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    order: list[str] = []

    def on_submit(request: httpx.Request) -> httpx.Response:
        order.append("submit")
        if len(order) == 1:
            raise httpx.ReadTimeout("lost", request=request)
        return acceptance(BIZ_NO)

    def on_lookup(request: httpx.Request) -> httpx.Response:
        order.append("lookup")
        return refusal("2404", "无此登记")

    bureau.post(SUBMIT).mock(side_effect=on_submit)
    bureau.post(ENROLMENT_QUERY).mock(side_effect=on_lookup)
    await adapter.submit_enrolment(submission(), context=CallContext())
    assert order == ["submit", "lookup", "submit"]


async def test_submit_503_means_not_applied_and_is_retried_without_lookup(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    submit = bureau.post(SUBMIT).mock(
        side_effect=[httpx.Response(503, json={"code": "5000", "msg": "维护中"}), acceptance(BIZ_NO)]
    )
    lookup = bureau.post(ENROLMENT_QUERY).mock(return_value=refusal("2404", "无此登记"))
    receipt = await adapter.submit_enrolment(submission(), context=CallContext())
    assert receipt.reference == BIZ_NO
    assert submit.call_count == 2
    assert lookup.call_count == 0


async def test_submit_connect_error_is_retried_without_lookup(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    submit = bureau.post(SUBMIT).mock(side_effect=[httpx.ConnectError("refused"), acceptance(BIZ_NO)])
    lookup = bureau.post(ENROLMENT_QUERY).mock(return_value=refusal("2404", "无此登记"))
    await adapter.submit_enrolment(submission(), context=CallContext())
    assert submit.call_count == 2
    assert lookup.call_count == 0


async def test_submit_429_is_retried_without_lookup(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    sleeps = SleepRecorder()
    adapter = make_adapter(sleep=sleeps)
    submit = bureau.post(SUBMIT).mock(
        side_effect=[refusal("4290", "限流", status=429, headers={"Retry-After": "2"}), acceptance(BIZ_NO)]
    )
    lookup = bureau.post(ENROLMENT_QUERY).mock(return_value=refusal("2404", "无此登记"))
    await adapter.submit_enrolment(submission(), context=CallContext())
    assert submit.call_count == 2
    assert lookup.call_count == 0
    assert sleeps.waits[0] >= 2.0


async def test_submit_lost_every_round_but_never_landed_is_a_plain_failure(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    submit = bureau.post(SUBMIT).mock(side_effect=httpx.ReadTimeout("lost"))
    lookup = bureau.post(ENROLMENT_QUERY).mock(return_value=refusal("2404", "无此登记"))
    # the bureau confirmed each time that nothing landed: not ambiguous, just failed
    with pytest.raises(UpstreamServerError, match="did not land"):
        await adapter.submit_enrolment(submission(), context=CallContext())
    assert submit.call_count == JsonHmacBureauAdapter.max_submit_rounds
    assert lookup.call_count == JsonHmacBureauAdapter.max_submit_rounds


async def test_submit_is_ambiguous_when_the_bureau_cannot_be_asked(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    submit = bureau.post(SUBMIT).mock(side_effect=httpx.ReadTimeout("lost"))
    lookup = bureau.post(ENROLMENT_QUERY).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(AmbiguousOutcome) as info:
        await adapter.submit_enrolment(submission(), context=CallContext())
    assert BIZ_NO in str(info.value)
    assert info.value.upstream == "gz-bureau"
    assert isinstance(info.value.__cause__, UpstreamConnectError)
    assert submit.call_count == 1  # never re-sent blind
    assert lookup.call_count == 3  # the lookup itself is a retried query


async def test_find_enrolment_returns_the_receipt(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    route = bureau.post(ENROLMENT_QUERY).mock(return_value=acceptance(BIZ_NO, "440100E000007", accepted_at="20241102"))
    receipt = await adapter.find_enrolment(BIZ_NO, context=CallContext())
    assert receipt == EnrolmentReceipt(
        reference=BIZ_NO, bureau_reference="440100E000007", status="accepted", accepted_on=dt.date(2024, 11, 2)
    )
    assert json_body(route.calls.last.request) == {"bizNo": BIZ_NO}
    assert_signed(route.calls.last.request, target=ENROLMENT_QUERY)


async def test_find_enrolment_returns_none_when_unknown(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    route = bureau.post(ENROLMENT_QUERY).mock(return_value=refusal("2404", "无此登记"))
    assert await adapter.find_enrolment(BIZ_NO, context=CallContext()) is None
    assert route.call_count == 1


async def test_find_enrolment_does_not_hide_other_errors(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    bureau.post(ENROLMENT_QUERY).mock(return_value=refusal("1001", "签名错误", status=401))
    with pytest.raises(UpstreamAuthenticationError):
        await adapter.find_enrolment(BIZ_NO, context=CallContext())


# -- circuit breaker and health -------------------------------------------------------------------


def fake_clocked(adapter: JsonHmacBureauAdapter, clock: FakeClock) -> JsonHmacBureauAdapter:
    adapter.client.breaker = CircuitBreaker(adapter.name, adapter.client.policy.circuit, clock=clock)
    return adapter


async def test_circuit_opens_fails_fast_and_recovers(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    clock = FakeClock()
    adapter = fake_clocked(make_adapter(policy=fast_policy(max_attempts=1, failure_threshold=3, reset_timeout=20.0)), clock)
    route = bureau.post(QUERY).mock(side_effect=httpx.ConnectError("refused"))

    for failures in (1, 2):
        with pytest.raises(UpstreamConnectError):
            await adapter.search_participation(WANG_FANG, context=CallContext())
        health = adapter.health()
        assert (health.circuit, health.consecutive_failures) == ("closed", failures)
    with pytest.raises(UpstreamConnectError):
        await adapter.search_participation(WANG_FANG, context=CallContext())
    health = adapter.health()
    assert health.circuit == "open"
    assert health.consecutive_failures == 3
    assert health.last_error is not None and "gz-bureau" in health.last_error
    assert health.last_error_at is not None
    assert route.call_count == 3

    # Open: fail at once, without touching the network.
    with pytest.raises(CircuitOpen) as info:
        await adapter.search_participation(WANG_FANG, context=CallContext())
    assert info.value.upstream == "gz-bureau"
    assert info.value.retry_after == pytest.approx(20.0)
    submit = bureau.post(SUBMIT).mock(return_value=acceptance(BIZ_NO))
    with pytest.raises(CircuitOpen):
        await adapter.submit_enrolment(submission(), context=CallContext())
    assert route.call_count == 3
    assert submit.call_count == 0

    # Half-open after the reset timeout: one probe goes through and closes it.
    clock.advance(20)
    assert adapter.health().circuit == "half_open"
    route.mock(side_effect=None, return_value=page([raw_record()]))
    assert len(await adapter.search_participation(WANG_FANG, context=CallContext())) == 1
    assert route.call_count == 4
    health = adapter.health()
    assert (health.circuit, health.consecutive_failures) == ("closed", 0)
    assert health.last_error is not None  # the last error is still reported after recovery


async def test_failed_probe_reopens_the_circuit(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    clock = FakeClock()
    adapter = fake_clocked(make_adapter(policy=fast_policy(max_attempts=1, failure_threshold=2, reset_timeout=20.0)), clock)
    route = bureau.post(QUERY).respond(503, json={"code": "5000", "msg": "系统繁忙"})
    for _ in range(2):
        with pytest.raises(UpstreamServerError):
            await adapter.search_participation(WANG_FANG, context=CallContext())
    assert adapter.health().circuit == "open"
    clock.advance(20)
    with pytest.raises(UpstreamServerError):  # the probe
        await adapter.search_participation(WANG_FANG, context=CallContext())
    assert route.call_count == 3
    assert adapter.health().circuit == "open"
    with pytest.raises(CircuitOpen):
        await adapter.search_participation(WANG_FANG, context=CallContext())
    assert route.call_count == 3


async def test_circuit_with_a_tiny_real_reset_timeout(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(policy=fast_policy(max_attempts=1, failure_threshold=1, reset_timeout=0.05))
    route = bureau.post(ENROLMENT_QUERY).mock(side_effect=[httpx.ConnectError("refused"), acceptance(BIZ_NO)])
    with pytest.raises(UpstreamConnectError):
        await adapter.find_enrolment(BIZ_NO, context=CallContext())
    with pytest.raises(CircuitOpen):
        await adapter.find_enrolment(BIZ_NO, context=CallContext())
    await asyncio.sleep(0.06)
    assert adapter.health().circuit == "half_open"
    assert await adapter.find_enrolment(BIZ_NO, context=CallContext()) is not None
    assert adapter.health().circuit == "closed"
    assert route.call_count == 2


async def test_business_refusals_do_not_open_the_circuit(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(policy=fast_policy(max_attempts=1, failure_threshold=2))
    route = bureau.post(QUERY).mock(return_value=refusal("2005", "姓名不符"))
    for _ in range(5):
        with pytest.raises(BusinessRejection):
            await adapter.search_participation(WANG_FANG, context=CallContext())
    assert route.call_count == 5
    assert adapter.health() == AdapterHealth(circuit="closed", consecutive_failures=0, last_error=None, last_error_at=None)


# -- request id and observer -----------------------------------------------------------------------


async def test_request_id_is_propagated_on_every_call(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    query = bureau.post(QUERY).mock(side_effect=[httpx.Response(503), page([])])
    submit = bureau.post(SUBMIT).mock(side_effect=[httpx.ReadTimeout("lost"), acceptance(BIZ_NO)])
    lookup = bureau.post(ENROLMENT_QUERY).mock(return_value=refusal("2404", "无此登记"))
    context = CallContext(request_id="req-0a1b2c")
    await adapter.search_participation(WANG_FANG, context=context)
    await adapter.submit_enrolment(submission(), context=context)
    requests = [c.request for route in (query, submit, lookup) for c in route.calls]
    assert len(requests) == 5
    assert {r.headers.get("X-Request-ID") for r in requests} == {"req-0a1b2c"}


async def test_observer_sees_each_logical_call(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    seen: list[UpstreamCall] = []
    adapter = make_adapter(observer=seen.append, config=bureau_config(options={"page_size": 1}))
    bureau.post(QUERY).mock(
        side_effect=[
            httpx.Response(503),
            httpx.ConnectError("refused"),
            page([raw_record()], total=2, page_size=1),
            page([raw_record(insuranceType="310")], total=2, page_no=2, page_size=1),
        ]
    )
    context = CallContext(request_id="req-1", client_id="client-9")
    await adapter.search_participation(WANG_FANG, context=context)
    assert [(c.operation, c.attempts, c.status_code, c.outcome) for c in seen] == [
        ("participation.search", 3, 200, "ok"),
        ("participation.search", 1, 200, "ok"),
    ]
    assert all(c.upstream == "gz-bureau" and c.context is context for c in seen)


async def test_observer_sees_refusals_with_their_code(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    seen: list[UpstreamCall] = []
    adapter = make_adapter(observer=seen.append)
    bureau.post(QUERY).mock(return_value=refusal("2005", "姓名不符"))
    with pytest.raises(BusinessRejection):
        await adapter.search_participation(WANG_FANG, context=CallContext())
    assert [(c.operation, c.attempts, c.status_code, c.outcome, c.upstream_code) for c in seen] == [
        ("participation.search", 1, 200, "BusinessRejection", "2005")
    ]


async def test_observer_sees_an_ambiguous_submit_and_its_lookup(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    seen: list[UpstreamCall] = []
    adapter = make_adapter(observer=seen.append)
    bureau.post(SUBMIT).mock(side_effect=httpx.ReadTimeout("lost"))
    bureau.post(ENROLMENT_QUERY).mock(return_value=acceptance(BIZ_NO))
    await adapter.submit_enrolment(submission(), context=CallContext())
    assert [(c.operation, c.attempts, c.status_code, c.outcome, c.upstream_code) for c in seen] == [
        ("enrolment.submit", 1, None, "AmbiguousOutcome", None),
        ("enrolment.lookup", 1, 200, "ok", None),
    ]


async def test_observer_sees_a_not_found_lookup(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    seen: list[UpstreamCall] = []
    adapter = make_adapter(observer=seen.append)
    bureau.post(ENROLMENT_QUERY).mock(return_value=refusal("2404", "无此登记"))
    assert await adapter.find_enrolment(BIZ_NO, context=CallContext()) is None
    assert [(c.operation, c.outcome, c.upstream_code) for c in seen] == [("enrolment.lookup", "UpstreamNotFound", "2404")]


async def test_observer_sees_exhausted_retries(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    seen: list[UpstreamCall] = []
    adapter = make_adapter(observer=seen.append, policy=fast_policy(max_attempts=3))
    bureau.post(QUERY).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(UpstreamTimeout):
        await adapter.search_participation(WANG_FANG, context=CallContext())
    assert [(c.attempts, c.status_code, c.outcome) for c in seen] == [(3, None, "UpstreamTimeout")]


# -- declarations, transfers, contribution history ----------------------------------------------

DECLARE = "/api/v1/declaration/submit"
DECLARATION_QUERY = "/api/v1/declaration/query"
TRANSFER_OUT = "/api/v1/transfer/out/submit"
TRANSFER_OUT_QUERY = "/api/v1/transfer/out/query"
TRANSFER_IN = "/api/v1/transfer/in/submit"
TRANSFER_IN_QUERY = "/api/v1/transfer/in/query"
CONTRIBUTIONS = "/api/v1/contribution/query"
DECL_NO = "HGW-DECL-0123456789AB"
TOUT_NO = "HGW-TOUT-0123456789AB"
TIN_NO = "HGW-TIN-0123456789AB"
LI_MING = Person(id_number=LI_MING_ID, name="李明")


def declaration_submission(*lines: DeclarationLine) -> DeclarationSubmission:
    return DeclarationSubmission(
        reference=DECL_NO,
        region=REGION,
        employer=Employer(uscc=USCC, name=UNIT_NAME),
        period="2026-08",
        lines=lines
        or (
            DeclarationLine(
                line=1, person=LI_MING, change="new", insurance_types=("pension", "medical"),
                contribution_base=Decimal("8000.00"), hire_date=dt.date(2026, 8, 5),
            ),
            DeclarationLine(
                line=2, person=WANG_FANG, change="leave", insurance_types=("pension",),
                contribution_base=None, leave_date=dt.date(2026, 8, 31),
            ),
        ),
    )


def declared(status: str = "PARTIAL", details: list[dict[str, Any]] | None = None, **overrides: Any) -> httpx.Response:
    data = {
        "bizNo": DECL_NO,
        "declareNo": "440100D000001",
        "period": "202608",
        "status": status,
        "declaredAt": "20260815",
        "details": details
        if details is not None
        else [
            {"lineNo": 1, "status": "ACCEPTED", "code": "0000", "msg": "成功"},
            {"lineNo": 2, "status": "REJECTED", "code": "2002", "msg": "该单位无此人有效参保记录"},
        ],
        **overrides,
    }
    return ok(data)


def transfer_out_submission() -> TransferOutSubmission:
    return TransferOutSubmission(
        reference=TOUT_NO, region=REGION, to_region="430100", person=WANG_FANG, insurance_types=("pension", "medical")
    )


def transfer_state(stage: str = "SUBMITTED", **overrides: Any) -> httpx.Response:
    data = {
        "bizNo": TOUT_NO,
        "transferNo": "440100T000001",
        "targetRegion": "430100",
        "stage": stage,
        "acceptedAt": "20260815",
        "updatedAt": "20260815",
        "reasonCode": "",
        "reasonMsg": "",
        "carried": [],
        **overrides,
    }
    return ok(data)


def transfer_in_submission(**overrides: Any) -> TransferInSubmission:
    values: dict[str, Any] = {
        "reference": TIN_NO,
        "region": REGION,
        "from_region": "430100",
        "source_reference": "430100T000007",
        "person": WANG_FANG,
        "carried": (
            CarriedInsurance(insurance_type="pension", paid_months=36, start_date=dt.date(2023, 8, 1), fund_amount=Decimal("23040.00")),
            CarriedInsurance(insurance_type="medical", paid_months=12, start_date=None, fund_amount=Decimal("0.5")),
        ),
    }
    values.update(overrides)
    return TransferInSubmission(**values)


def transferred_in(status: str = "ACCEPTED", reason_code: str = "", reason_msg: str = "") -> httpx.Response:
    return ok(
        {
            "bizNo": TIN_NO,
            "transferInNo": "440100I000001",
            "status": status,
            "acceptedAt": "20260818",
            "reasonCode": reason_code,
            "reasonMsg": reason_msg,
        }
    )


async def test_adapter_declares_the_new_capabilities(adapter: JsonHmacBureauAdapter) -> None:
    for capability in (
        Capability.CONTRIBUTION_HISTORY, Capability.DECLARATION, Capability.TRANSFER_OUT, Capability.TRANSFER_IN,
        Capability.CONTRIBUTION_PAYMENT,
    ):
        assert capability in adapter.capabilities
    assert isinstance(adapter, ContributionPayments)


async def test_declaration_body_and_line_results(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    route = bureau.post(DECLARE).mock(return_value=declared())
    receipt = await adapter.submit_declaration(declaration_submission(), context=CallContext())
    assert receipt == DeclarationReceipt(
        reference=DECL_NO,
        bureau_reference="440100D000001",
        status="partially_accepted",
        lines=(
            DeclarationLineResult(line=1, status="accepted"),
            DeclarationLineResult(
                line=2, status="rejected", upstream_code="2002", upstream_message="该单位无此人有效参保记录"
            ),
        ),
        decided_on=dt.date(2026, 8, 15),
    )
    assert_signed(route.calls.last.request, target=DECLARE)
    assert json_body(route.calls.last.request) == {
        "bizNo": DECL_NO,
        "unitCode": USCC,
        "unitName": UNIT_NAME,
        "period": "202608",
        "details": [
            {
                "lineNo": 1, "idCardNo": LI_MING_ID, "name": "李明", "changeType": "01",
                "insuranceTypes": ["110", "310"], "baseAmount": 800000, "hireDate": "20260805",
            },
            {
                "lineNo": 2, "idCardNo": WANG_FANG_ID, "name": "王芳", "changeType": "02",
                "insuranceTypes": ["110"], "leaveDate": "20260831",
            },
        ],
    }


async def test_declaration_change_codes_and_optional_dates(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    route = bureau.post(DECLARE).mock(return_value=declared("ACCEPTED", details=[]))
    lines = tuple(
        DeclarationLine(line=n, person=LI_MING, change=change, insurance_types=("maternity",),  # type: ignore[arg-type]
                        contribution_base=None if change == "leave" else Decimal("3604.5"))
        for n, change in enumerate(("new", "leave", "change", "continue"), start=1)
    )
    receipt = await adapter.submit_declaration(declaration_submission(*lines), context=CallContext())
    assert receipt.status == "accepted"
    details = json_body(route.calls.last.request)["details"]
    assert [(d["changeType"], d.get("baseAmount"), "hireDate" in d, "leaveDate" in d) for d in details] == [
        ("01", 360450, False, False), ("02", None, False, False), ("03", 360450, False, False), ("04", 360450, False, False)
    ]
    assert details[0]["insuranceTypes"] == ["510"]


@pytest.mark.parametrize(("wire", "status"), [("ACCEPTED", "accepted"), ("REJECTED", "rejected"), ("PROCESSING", "pending")])
async def test_declaration_overall_status(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter, wire: str, status: str) -> None:
    bureau.post(DECLARE).mock(return_value=declared(wire))
    receipt = await adapter.submit_declaration(declaration_submission(), context=CallContext())
    assert receipt.status == status
    assert (receipt.decided_on is None) == (status == "pending")


async def test_malformed_declaration_is_a_business_rejection(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    submit = bureau.post(DECLARE).mock(return_value=refusal("1100", "请求格式错误: lineNo must be unique", status=400))
    lookup = bureau.post(DECLARATION_QUERY).mock(return_value=refusal("2404"))
    with pytest.raises(BusinessRejection) as caught:
        await adapter.submit_declaration(declaration_submission(), context=CallContext())
    assert caught.value.upstream_code == "1100"
    assert (submit.call_count, lookup.call_count) == (1, 0)


async def test_ambiguous_declaration_that_landed_is_not_sent_again(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    submit = bureau.post(DECLARE).mock(side_effect=[httpx.ReadTimeout("lost"), declared()])
    lookup = bureau.post(DECLARATION_QUERY).mock(return_value=declared("ACCEPTED", declareNo="440100D000007"))
    receipt = await adapter.submit_declaration(declaration_submission(), context=CallContext())
    assert (receipt.bureau_reference, receipt.status) == ("440100D000007", "accepted")
    assert (submit.call_count, lookup.call_count) == (1, 1)
    assert json_body(lookup.calls.last.request) == {"bizNo": DECL_NO}


async def test_ambiguous_declaration_that_did_not_land_is_resent_with_the_same_reference(
    bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter
) -> None:
    submit = bureau.post(DECLARE).mock(side_effect=[httpx.Response(502), declared()])
    bureau.post(DECLARATION_QUERY).mock(return_value=refusal("2404", "受理记录不存在"))
    receipt = await adapter.submit_declaration(declaration_submission(), context=CallContext())
    assert receipt.status == "partially_accepted"
    assert submit.call_count == 2
    assert submit.calls[0].request.content == submit.calls[1].request.content


async def test_find_declaration(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    bureau.post(DECLARATION_QUERY).mock(side_effect=[declared(), refusal("2404", "受理记录不存在")])
    found = await adapter.find_declaration(DECL_NO, context=CallContext())
    assert found is not None and found.status == "partially_accepted" and len(found.lines) == 2
    assert await adapter.find_declaration(DECL_NO, context=CallContext()) is None


@pytest.mark.parametrize(
    "data",
    [
        {"bizNo": DECL_NO, "status": "ACCEPTED", "details": [{"lineNo": 1, "status": "MAYBE"}]},
        {"bizNo": DECL_NO, "status": "ACCEPTED", "details": [{"lineNo": "one", "status": "ACCEPTED"}]},
        {"status": "ACCEPTED"},
        ["not", "an", "object"],
    ],
)
async def test_unreadable_declaration_answer_is_a_protocol_error(
    bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter, data: Any
) -> None:
    bureau.post(DECLARATION_QUERY).mock(return_value=ok(data))
    with pytest.raises(UpstreamProtocolError):
        await adapter.find_declaration(DECL_NO, context=CallContext())


async def test_transfer_out_submission_and_stages(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    route = bureau.post(TRANSFER_OUT).mock(return_value=transfer_state())
    progress = await adapter.submit_transfer_out(transfer_out_submission(), context=CallContext())
    assert progress == TransferOutProgress(
        reference=TOUT_NO, bureau_reference="440100T000001", stage="submitted", updated_on=dt.date(2026, 8, 15)
    )
    assert_signed(route.calls.last.request, target=TRANSFER_OUT)
    assert json_body(route.calls.last.request) == {
        "bizNo": TOUT_NO,
        "idCardNo": WANG_FANG_ID,
        "name": "王芳",
        "targetRegion": "430100",
        "insuranceTypes": ["110", "310"],
    }
    carried = [
        {"insuranceType": "110", "paidMonths": 36, "startDate": "20230801", "fundAmount": 2304000},
        {"insuranceType": "310", "paidMonths": 36, "startDate": "20230801", "fundAmount": 576000},
        {"insuranceType": "999", "paidMonths": 3, "startDate": "", "fundAmount": 1},
    ]
    query = bureau.post(TRANSFER_OUT_QUERY).mock(
        side_effect=[
            transfer_state("SOURCE_REVIEWED", updatedAt="20260816"),
            transfer_state("FUNDS_TRANSFERRED", updatedAt="20260817", carried=carried),
        ]
    )
    reviewed = await adapter.transfer_out_status(TOUT_NO, context=CallContext())
    assert reviewed is not None and (reviewed.stage, reviewed.carried, reviewed.updated_on) == (
        "source_reviewed", (), dt.date(2026, 8, 16)
    )
    done = await adapter.transfer_out_status(TOUT_NO, context=CallContext())
    assert done is not None and done.stage == "funds_transferred"
    assert done.carried == (
        CarriedInsurance(insurance_type="pension", paid_months=36, start_date=dt.date(2023, 8, 1), fund_amount=Decimal("23040.00")),
        CarriedInsurance(insurance_type="medical", paid_months=36, start_date=dt.date(2023, 8, 1), fund_amount=Decimal("5760.00")),
    )
    assert json_body(query.calls.last.request) == {"bizNo": TOUT_NO}


async def test_rejected_transfer_out_carries_the_reason(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    bureau.post(TRANSFER_OUT_QUERY).mock(
        return_value=transfer_state("REJECTED", reasonCode="3001", reasonMsg="转出地无该险种有效参保记录")
    )
    progress = await adapter.transfer_out_status(TOUT_NO, context=CallContext())
    assert progress is not None
    assert (progress.stage, progress.reason_code, progress.reason_message) == (
        "rejected", "3001", "转出地无该险种有效参保记录"
    )


async def test_transfer_out_name_mismatch_is_refused_at_once(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    bureau.post(TRANSFER_OUT).mock(return_value=refusal("2005", "姓名与公民身份号码不符"))
    lookup = bureau.post(TRANSFER_OUT_QUERY).mock(return_value=refusal("2404"))
    with pytest.raises(BusinessRejection) as caught:
        await adapter.submit_transfer_out(transfer_out_submission(), context=CallContext())
    assert (caught.value.upstream_code, caught.value.field) == ("2005", "name")
    assert lookup.call_count == 0


async def test_ambiguous_transfer_out_asks_before_resending(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    order: list[str] = []

    def on_submit(request: httpx.Request) -> httpx.Response:
        order.append("submit")
        if len(order) == 1:
            raise httpx.ReadTimeout("lost", request=request)
        return transfer_state()

    def on_lookup(request: httpx.Request) -> httpx.Response:
        order.append("lookup")
        return refusal("2404", "受理记录不存在")

    bureau.post(TRANSFER_OUT).mock(side_effect=on_submit)
    bureau.post(TRANSFER_OUT_QUERY).mock(side_effect=on_lookup)
    progress = await adapter.submit_transfer_out(transfer_out_submission(), context=CallContext())
    assert progress.stage == "submitted"
    assert order == ["submit", "lookup", "submit"]


async def test_ambiguous_transfer_out_that_landed_returns_its_progress(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    submit = bureau.post(TRANSFER_OUT).mock(side_effect=httpx.RemoteProtocolError("gone"))
    bureau.post(TRANSFER_OUT_QUERY).mock(return_value=transfer_state("SOURCE_REVIEWED"))
    progress = await adapter.submit_transfer_out(transfer_out_submission(), context=CallContext())
    assert (progress.stage, submit.call_count) == ("source_reviewed", 1)


async def test_transfer_out_status_of_an_unknown_reference_is_none(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    bureau.post(TRANSFER_OUT_QUERY).mock(return_value=refusal("2404", "受理记录不存在"))
    assert await adapter.transfer_out_status(TOUT_NO, context=CallContext()) is None


async def test_unknown_transfer_stage_is_a_protocol_error(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    bureau.post(TRANSFER_OUT_QUERY).mock(return_value=transfer_state("LOST_IN_THE_MAIL"))
    with pytest.raises(UpstreamProtocolError):
        await adapter.transfer_out_status(TOUT_NO, context=CallContext())


async def test_transfer_in_body_and_receipt(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    route = bureau.post(TRANSFER_IN).mock(return_value=transferred_in())
    receipt = await adapter.submit_transfer_in(transfer_in_submission(), context=CallContext())
    assert receipt == TransferInReceipt(reference=TIN_NO, bureau_reference="440100I000001", status="accepted")
    assert_signed(route.calls.last.request, target=TRANSFER_IN)
    assert json_body(route.calls.last.request) == {
        "bizNo": TIN_NO,
        "idCardNo": WANG_FANG_ID,
        "name": "王芳",
        "sourceRegion": "430100",
        "sourceTransferNo": "430100T000007",
        "carried": [
            {"insuranceType": "110", "paidMonths": 36, "startDate": "20230801", "fundAmount": 2304000},
            {"insuranceType": "310", "paidMonths": 12, "startDate": "", "fundAmount": 50},
        ],
    }


async def test_transfer_in_rejected_with_reason(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    bureau.post(TRANSFER_IN).mock(return_value=transferred_in("REJECTED", "2005", "姓名与公民身份号码不符"))
    receipt = await adapter.submit_transfer_in(transfer_in_submission(), context=CallContext())
    assert (receipt.status, receipt.reason_code, receipt.reason_message) == ("rejected", "2005", "姓名与公民身份号码不符")


async def test_ambiguous_transfer_in_and_lookup(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    submit = bureau.post(TRANSFER_IN).mock(side_effect=httpx.ReadTimeout("lost"))
    lookup = bureau.post(TRANSFER_IN_QUERY).mock(side_effect=[transferred_in(), refusal("2404", "受理记录不存在")])
    receipt = await adapter.submit_transfer_in(transfer_in_submission(), context=CallContext())
    assert (receipt.status, submit.call_count, lookup.call_count) == ("accepted", 1, 1)
    assert json_body(lookup.calls.last.request) == {"bizNo": TIN_NO}
    assert await adapter.find_transfer_in(TIN_NO, context=CallContext()) is None


async def test_participation_maps_transferred_out_records(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    bureau.post(QUERY).mock(return_value=page([raw_record(status="4", endDate="20260817")]))
    [record] = await adapter.search_participation(WANG_FANG, context=CallContext())
    assert (record.status, record.end_date, record.paid_months) == ("transferred", dt.date(2026, 8, 17), 36)


def raw_month(period: str, kind: str = "110", pay_status: str = "1", **overrides: Any) -> dict[str, Any]:
    month = {
        "period": period, "insuranceType": kind, "payStatus": pay_status,
        "unitAmount": 128000, "personalAmount": 64000, "paidDate": f"{period}15",
    }
    month.update(overrides)
    return month


def months_page(months: list[dict[str, Any]], total: int | None = None, page_no: int = 1) -> httpx.Response:
    return ok({"total": len(months) if total is None else total, "pageNo": page_no, "pageSize": 50, "months": months})


async def test_contribution_history_maps_months(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    route = bureau.post(CONTRIBUTIONS).mock(
        return_value=months_page(
            [
                raw_month("202401"),
                raw_month("202402", "310", "2", unitAmount=64000, personalAmount=16000, paidDate="20240520"),
                raw_month("202403", "410", "3", personalAmount=0, paidDate=""),
                raw_month("202403", "999"),
            ]
        )
    )
    months = await adapter.contribution_history(WANG_FANG, "2024-01", "2024-03", context=CallContext())
    assert months == [
        ContributionMonth(region=REGION, period="2024-01", insurance_type="pension", status="paid",
                          employer_amount=Decimal("1280.00"), personal_amount=Decimal("640.00"), paid_on=dt.date(2024, 1, 15)),
        ContributionMonth(region=REGION, period="2024-02", insurance_type="medical", status="late",
                          employer_amount=Decimal("640.00"), personal_amount=Decimal("160.00"), paid_on=dt.date(2024, 5, 20)),
        ContributionMonth(region=REGION, period="2024-03", insurance_type="work_injury", status="unpaid",
                          employer_amount=Decimal("1280.00"), personal_amount=Decimal("0.00"), paid_on=None),
    ]
    assert_signed(route.calls.last.request, target=CONTRIBUTIONS)
    assert json_body(route.calls.last.request) == {
        "idCardNo": WANG_FANG_ID, "name": "王芳", "startPeriod": "202401", "endPeriod": "202403",
        "pageNo": 1, "pageSize": 50,
    }


async def test_contribution_history_without_a_name_omits_it(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    route = bureau.post(CONTRIBUTIONS).mock(return_value=months_page([]))
    nameless = Person(id_number=WANG_FANG_ID, name="")
    assert await adapter.contribution_history(nameless, "2024-01", "2024-12", context=CallContext()) == []
    assert "name" not in json_body(route.calls.last.request)


async def test_contribution_history_pages_until_total(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(config=bureau_config(options={"page_size": 2}))
    route = bureau.post(CONTRIBUTIONS).mock(
        side_effect=[
            months_page([raw_month("202401"), raw_month("202402")], total=3),
            months_page([raw_month("202403")], total=3, page_no=2),
        ]
    )
    months = await adapter.contribution_history(WANG_FANG, "2024-01", "2024-03", context=CallContext())
    assert [m.period for m in months] == ["2024-01", "2024-02", "2024-03"]
    assert [json_body(call.request)["pageNo"] for call in route.calls] == [1, 2]


async def test_contribution_history_refusals_and_bad_answers(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    bureau.post(CONTRIBUTIONS).mock(
        side_effect=[refusal("2005", "姓名与公民身份号码不符"), months_page([raw_month("202401", pay_status="7")])]
    )
    with pytest.raises(BusinessRejection) as caught:
        await adapter.contribution_history(WANG_FANG, "2024-01", "2024-01", context=CallContext())
    assert caught.value.field == "name"
    with pytest.raises(UpstreamProtocolError):
        await adapter.contribution_history(WANG_FANG, "2024-01", "2024-01", context=CallContext())
    with pytest.raises(ValueError):
        await adapter.contribution_history(WANG_FANG, "2024-02", "2024-01", context=CallContext())


async def test_observer_names_the_new_operations(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    seen: list[UpstreamCall] = []
    adapter = make_adapter(observer=seen.append)
    bureau.post(DECLARE).mock(return_value=declared())
    bureau.post(DECLARATION_QUERY).mock(return_value=declared())
    bureau.post(TRANSFER_OUT).mock(return_value=transfer_state())
    bureau.post(TRANSFER_OUT_QUERY).mock(return_value=transfer_state())
    bureau.post(TRANSFER_IN).mock(return_value=transferred_in())
    bureau.post(TRANSFER_IN_QUERY).mock(return_value=transferred_in())
    bureau.post(CONTRIBUTIONS).mock(return_value=months_page([]))
    context = CallContext()
    await adapter.submit_declaration(declaration_submission(), context=context)
    await adapter.find_declaration(DECL_NO, context=context)
    await adapter.submit_transfer_out(transfer_out_submission(), context=context)
    await adapter.transfer_out_status(TOUT_NO, context=context)
    await adapter.submit_transfer_in(transfer_in_submission(), context=context)
    await adapter.find_transfer_in(TIN_NO, context=context)
    await adapter.contribution_history(WANG_FANG, "2024-01", "2024-01", context=context)
    assert [c.operation for c in seen] == [
        "declaration.submit", "declaration.lookup", "transfer_out.submit", "transfer_out.status",
        "transfer_in.submit", "transfer_in.lookup", "contribution.history",
    ]


# -- payment notices ------------------------------------------------------------------------------

PAY_NOTIFY = "/api/v1/contribution/payment/notify"
PAY_QUERY = "/api/v1/contribution/payment/query"
PAY_NO = "HGW-PAY-0123456789AB"


def payment_notice(**overrides: Any) -> ContributionPaymentNotice:
    values: dict[str, Any] = {
        "reference": PAY_NO,
        "region": REGION,
        "employer": Employer(uscc=USCC, name=UNIT_NAME),
        "period": "2026-08",
        "declaration_reference": DECL_NO,
        "amount": Decimal("2560.5"),
        "paid_on": dt.date(2026, 8, 20),
        "payment_reference": "E2E-20260820-000001",
    }
    values.update(overrides)
    return ContributionPaymentNotice(**values)


def payment_answer(status: str = "CONFIRMED", reason_code: str = "", reason_msg: str = "") -> httpx.Response:
    return ok(
        {
            "bizNo": PAY_NO,
            "confirmNo": "440100P000001",
            "declareBizNo": DECL_NO,
            "period": "202608",
            "status": status,
            "confirmedAmount": 256050 if status == "CONFIRMED" else 0,
            "confirmedAt": "20260821",
            "reasonCode": reason_code,
            "reasonMsg": reason_msg,
        }
    )


async def test_payment_notice_body_and_confirmation(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    route = bureau.post(PAY_NOTIFY).mock(return_value=payment_answer())
    receipt = await adapter.notify_contribution_payment(payment_notice(), context=CallContext())
    assert receipt == ContributionPaymentReceipt(
        reference=PAY_NO,
        bureau_reference="440100P000001",
        status="confirmed",
        confirmed_amount=Decimal("2560.50"),
        confirmed_on=dt.date(2026, 8, 21),
    )
    assert_signed(route.calls.last.request, target=PAY_NOTIFY)
    assert json_body(route.calls.last.request) == {
        "bizNo": PAY_NO,
        "unitCode": USCC,
        "unitName": UNIT_NAME,
        "period": "202608",
        "declareBizNo": DECL_NO,
        "payAmount": 256050,
        "paidDate": "20260820",
        "bankSerialNo": "E2E-20260820-000001",
    }


@pytest.mark.parametrize("code", ["2501", "2502", "2503", "2504", "2505"])
async def test_a_refused_payment_notice_is_a_rejected_receipt(
    bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter, code: str
) -> None:
    bureau.post(PAY_NOTIFY).mock(return_value=payment_answer("REJECTED", code, "不予确认"))
    receipt = await adapter.notify_contribution_payment(payment_notice(), context=CallContext())
    assert receipt == ContributionPaymentReceipt(
        reference=PAY_NO, bureau_reference="440100P000001", status="rejected", reason_code=code, reason_message="不予确认"
    )


async def test_a_malformed_payment_notice_is_a_business_rejection(
    bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter
) -> None:
    notify = bureau.post(PAY_NOTIFY).mock(return_value=refusal("1100", "请求格式错误: paidDate"))
    lookup = bureau.post(PAY_QUERY).mock(return_value=refusal("2404", "受理记录不存在"))
    with pytest.raises(BusinessRejection) as caught:
        await adapter.notify_contribution_payment(payment_notice(), context=CallContext())
    assert caught.value.upstream_code == "1100"
    assert (notify.call_count, lookup.call_count) == (1, 0)


async def test_ambiguous_payment_notice_and_lookup(bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter) -> None:
    notify = bureau.post(PAY_NOTIFY).mock(side_effect=[httpx.ReadTimeout("lost"), payment_answer()])
    lookup = bureau.post(PAY_QUERY).mock(
        side_effect=[refusal("2404", "受理记录不存在"), payment_answer(), refusal("2404", "受理记录不存在")]
    )
    receipt = await adapter.notify_contribution_payment(payment_notice(), context=CallContext())
    # lost, confirmed absent, sent again: exactly one more send
    assert (receipt.status, notify.call_count, lookup.call_count) == ("confirmed", 2, 1)
    assert json_body(lookup.calls.last.request) == {"bizNo": PAY_NO}
    assert_signed(lookup.calls.last.request, target=PAY_QUERY)
    found = await adapter.find_contribution_payment(PAY_NO, context=CallContext())
    assert found is not None and found.confirmed_amount == Decimal("2560.50")
    assert await adapter.find_contribution_payment(PAY_NO, context=CallContext()) is None


async def test_an_unreadable_payment_answer_is_a_protocol_error(
    bureau: respx.MockRouter, adapter: JsonHmacBureauAdapter
) -> None:
    bureau.post(PAY_QUERY).mock(return_value=ok({"bizNo": PAY_NO}))
    with pytest.raises(UpstreamProtocolError):
        await adapter.find_contribution_payment(PAY_NO, context=CallContext())
