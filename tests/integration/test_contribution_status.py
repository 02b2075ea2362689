"""Contribution status checks through the gateway against the real mock bureaus."""

from __future__ import annotations

import pytest

from mocks import Fault

CHECK = "/v1/social-security/contribution-status-checks"

ZHANG_SAN = {"id_number": "420102198805200177", "name": "张三"}
LI_MING = {"id_number": "430102199511080356", "name": "李明"}
CHEN_JING = {"id_number": "330102198707150426", "name": "陈静"}


async def check(api, body):
    r = await api.http.post(CHECK, json=body, headers=api.headers())
    assert r.status_code == 200, r.text
    return r.json()


def statuses(body):
    return {
        (month["period"], c["insurance_type"]): c["status"] for month in body["months"] for c in month["contributions"]
    }


def outcomes(body):
    return {o["region"]: o["outcome"] for o in body["regions"]}


def asked_regions(api):
    """The regions whose bureaus declare contribution history (json-hmac may or may not yet)."""
    from adapters import Capability

    return set(api.gateway.upstreams.sandbox.regions(Capability.CONTRIBUTION_HISTORY))


def request_counts(api):
    return {region: len(server.requests) for region, server in api.bureaus.items()}


async def test_zhang_san_is_not_eligible_with_august_and_september_late(api):
    body = await check(api, ZHANG_SAN)
    assert body["person"] == {"id_number_masked": "4201**********0177"}
    assert body["window"] == {"from": "2024-08", "to": "2024-10"}
    assert body["complete"] is True
    assert body["eligible_for_reimbursement"] is False
    assert statuses(body) == {
        ("2024-08", "pension"): "late", ("2024-08", "medical"): "late",
        ("2024-09", "pension"): "late", ("2024-09", "medical"): "late",
        ("2024-10", "pension"): "paid", ("2024-10", "medical"): "paid",
    }
    assert [(r["code"], r["period"], r["insurance_type"], r["region"]) for r in body["reasons"]] == [
        ("late", "2024-08", "pension", "420100"),
        ("late", "2024-08", "medical", "420100"),
        ("late", "2024-09", "pension", "420100"),
        ("late", "2024-09", "medical", "420100"),
    ]
    october_pension = body["months"][2]["contributions"][0]
    assert october_pension == {
        "insurance_type": "pension", "status": "paid", "region": "420100",
        "employer_amount": "1440.00", "personal_amount": "720.00", "paid_on": "2024-11-15",
    }
    assert body["months"][0]["contributions"][0]["paid_on"] == "2024-10-28"
    assert set(outcomes(body)) == asked_regions(api) and set(outcomes(body).values()) == {"ok"}
    assert "420102198805200177" not in str(body)


async def test_the_name_is_optional(api):
    body = await check(api, {"id_number": ZHANG_SAN["id_number"]})
    assert body["window"] == {"from": "2024-08", "to": "2024-10"}
    assert statuses(body)[("2024-08", "pension")] == "late"


async def test_an_explicit_until_and_months(api):
    body = await check(api, {**ZHANG_SAN, "until": "2024-07", "months": 6})
    assert body["window"] == {"from": "2024-02", "to": "2024-07"}
    assert [m["period"] for m in body["months"]] == ["2024-02", "2024-03", "2024-04", "2024-05", "2024-06", "2024-07"]
    assert set(statuses(body).values()) == {"paid"} and len(statuses(body)) == 12
    assert body["eligible_for_reimbursement"] is True and body["reasons"] == []


async def test_an_until_after_the_last_month_on_record_finds_nothing(api):
    body = await check(api, {**ZHANG_SAN, "until": "2025-01"})
    assert body["window"] == {"from": "2024-11", "to": "2025-01"}
    assert body["eligible_for_reimbursement"] is False
    assert [r["code"] for r in body["reasons"]] == ["no_contributions"]
    assert all(m["contributions"] == [] for m in body["months"])


async def test_a_window_straddling_the_last_month_on_record(api):
    body = await check(api, {**ZHANG_SAN, "until": "2024-11", "months": 2})
    # pension and medical are on record in 2024-10, so a missing 2024-11 is unpaid
    assert statuses(body) == {
        ("2024-10", "pension"): "paid", ("2024-10", "medical"): "paid",
        ("2024-11", "pension"): "unpaid", ("2024-11", "medical"): "unpaid",
    }
    unpaid = [r for r in body["reasons"] if r["code"] == "unpaid"]
    assert [(r["period"], r["insurance_type"], r["region"]) for r in unpaid] == [
        ("2024-11", "pension", "420100"), ("2024-11", "medical", "420100"),
    ]
    assert body["months"][1]["contributions"][0]["paid_on"] is None


async def test_li_ming_has_no_contributions(api):
    body = await check(api, LI_MING)
    assert body["complete"] is True
    assert body["eligible_for_reimbursement"] is False
    assert body["window"] is None and body["months"] == []
    [reason] = body["reasons"]
    assert reason["code"] == "no_contributions"
    assert reason["period"] is None and reason["region"] is None


@pytest.mark.gateway_settings(search_deadline=1.5)
async def test_chen_jings_bureau_times_out_so_her_status_is_unknown(api):
    body = await check(api, CHEN_JING)
    assert outcomes(body)["330100"] == "timeout"
    assert all(o == "ok" for region, o in outcomes(body).items() if region != "330100")
    assert body["complete"] is False
    assert body["eligible_for_reimbursement"] is False
    unknown = [r for r in body["reasons"] if r["code"] == "status_unknown"]
    assert [r["region"] for r in unknown] == ["330100"]
    assert "330100" in unknown[0]["message"]
    timeout = next(o for o in body["regions"] if o["region"] == "330100")
    assert timeout["error"]["code"] == "upstream_timeout"


async def test_a_failing_bureau_is_an_unavailable_region_not_an_error(api):
    api.bureaus["420100"].faults.add(Fault(route="*", kind="error", status=500))
    body = await check(api, ZHANG_SAN)
    failed = next(o for o in body["regions"] if o["region"] == "420100")
    assert failed["outcome"] == "unavailable" and failed["error"]["code"] == "upstream_unavailable"
    assert body["complete"] is False and body["eligible_for_reimbursement"] is False
    assert [(r["code"], r["region"]) for r in body["reasons"]] == [("status_unknown", "420100")]
    assert body["window"] is None


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"id_number": "440104199003120214"}, 422, "invalid_id_number", "id_number"),
        ({"id_number": "4201021988052001"}, 400, "invalid_field", "id_number"),
        ({**ZHANG_SAN, "months": 0}, 400, "invalid_field", "months"),
        ({**ZHANG_SAN, "months": 13}, 400, "invalid_field", "months"),
        ({**ZHANG_SAN, "until": "2024-13"}, 422, "invalid_period", "until"),
        ({**ZHANG_SAN, "until": "2024-8"}, 422, "invalid_period", "until"),
        ({**ZHANG_SAN, "until": "2999-01"}, 422, "invalid_period", "until"),
        ({**ZHANG_SAN, "regions": ["420100"]}, 400, "unknown_field", None),
    ],
)
async def test_invalid_requests_are_refused_before_any_upstream_call(api, body, status, code, field):
    before = request_counts(api)
    r = await api.http.post(CHECK, json=body, headers=api.headers())
    assert r.status_code == status, r.text
    assert r.json()["code"] == code
    if field is not None:
        assert r.json()["field"] == field
    assert request_counts(api) == before


async def test_a_key_without_social_security_read_is_refused(api):
    issued = await api.new_client("payments:read")
    r = await api.http.post(CHECK, json=ZHANG_SAN, headers=api.headers(issued["api_key"]))
    assert r.status_code == 403 and r.json()["required_scope"] == "social_security:read"


async def test_no_idempotency_key_is_needed(api):
    first = await check(api, ZHANG_SAN)
    second = await check(api, ZHANG_SAN)
    assert first["reasons"] == second["reasons"]
