"""Participation searches through the gateway against the real mock bureaus."""

from __future__ import annotations

import pytest

from mocks import Fault
from tests.conftest import LI_MING, WANG_FANG, ZHAO_LEI

SEARCH = "/v1/social-security/participation-searches"


async def test_wang_fang_has_active_pension_in_guangzhou(api):
    r = await api.http.post(SEARCH, json=WANG_FANG, headers=api.headers())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["complete"] is True
    assert body["active_regions"] == ["440100"]
    assert body["person"] == {"id_number_masked": "4401**********0213"}
    pension = next(rec for rec in body["records"] if rec["insurance_type"] == "pension")
    assert pension == {
        "region": "440100",
        "insurance_type": "pension",
        "status": "active",
        "employer": {"uscc": "91440101MA59BX4C3Y", "name": "广州示例科技有限公司"},
        "start_date": "2023-08-01",
        "end_date": None,
        "paid_months": 36,
        "contribution_base": "8000.00",
        "last_paid_period": "2026-07",
    }
    assert body["paid_months"] == {"medical": 36, "pension": 36}
    assert {(o["region"], o["outcome"]) for o in body["regions"]} == {
        (r, "ok") for r in ("330100", "420100", "430100", "440100", "440300")
    }
    assert "440104199003120213" not in r.text


async def test_li_ming_has_no_records(api):
    r = await api.http.post(SEARCH, json=LI_MING, headers=api.headers())
    assert r.status_code == 200
    assert r.json()["records"] == [] and r.json()["active_regions"] == []


async def test_zhao_lei_is_active_in_shenzhen(api):
    r = await api.http.post(SEARCH, json={**ZHAO_LEI, "regions": ["440300"]}, headers=api.headers())
    body = r.json()
    assert body["active_regions"] == ["440300"]
    assert body["records"][0]["contribution_base"] == "12000.00"


async def test_regions_filter_limits_the_fan_out(api):
    r = await api.http.post(SEARCH, json={**WANG_FANG, "regions": ["440300"]}, headers=api.headers())
    assert r.status_code == 200
    assert [o["region"] for o in r.json()["regions"]] == ["440300"]
    assert r.json()["records"] == []
    assert api.bureaus["440100"].count("/api/v1/insured/query") == 0


async def test_a_failing_region_does_not_fail_the_search(api):
    api.bureaus["440300"].faults.add(Fault(route="*", kind="error", status=500))
    r = await api.http.post(SEARCH, json=WANG_FANG, headers=api.headers())
    assert r.status_code == 200
    outcomes = {o["region"]: o for o in r.json()["regions"]}
    assert outcomes["440100"]["outcome"] == "ok"
    assert outcomes["440300"]["outcome"] == "unavailable"
    assert outcomes["440300"]["error"]["code"] == "upstream_unavailable"
    assert r.json()["complete"] is False
    assert r.json()["active_regions"] == ["440100"]
    # the query was retried by the adapter's policy before giving up
    assert api.bureaus["440300"].count("/api/v1/insured/query") > 1


@pytest.mark.gateway_settings(search_deadline=0.5)
async def test_a_slow_region_is_reported_as_timeout(api):
    api.bureaus["440300"].faults.add(Fault(route="*", kind="latency", latency_ms=2500))
    r = await api.http.post(SEARCH, json=WANG_FANG, headers=api.headers())
    assert r.status_code == 200
    outcomes = {o["region"]: o["outcome"] for o in r.json()["regions"]}
    assert outcomes == {"330100": "ok", "420100": "ok", "430100": "ok", "440100": "ok", "440300": "timeout"}


async def test_rate_limited_region_is_retried_after_retry_after(api):
    api.bureaus["440100"].faults.add(Fault(route="*", kind="rate_limit", retry_after=1, times=1))
    r = await api.http.post(SEARCH, json=WANG_FANG, headers=api.headers())
    assert r.status_code == 200
    assert r.json()["active_regions"] == ["440100"]
    codes = [rec.code for rec in api.bureaus["440100"].requests if rec.path == "/api/v1/insured/query"]
    assert codes[0] == "4290" and codes[-1] == "0000"


async def test_name_mismatch_is_a_rejected_region(api):
    r = await api.http.post(SEARCH, json={**WANG_FANG, "name": "Somebody Else"}, headers=api.headers())
    outcome = next(o for o in r.json()["regions"] if o["region"] == "440100")
    assert outcome["outcome"] == "rejected"
    assert outcome["error"]["upstream_code"] == "2005"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"id_number": "440104199003120214", "name": "Wang Fang"}, 422, "invalid_id_number"),
        ({"id_number": "440104199003120213", "name": "Wang Fang", "regions": ["999999"]}, 422, "unknown_region"),
        ({"id_number": "440104199003120213", "name": "Wang Fang", "regions": ["44"]}, 400, "invalid_field"),
        ({"id_number": "440104199003120213"}, 400, "missing_field"),
        ({"id_number": 440104199003120213, "name": "Wang Fang"}, 400, "invalid_field"),
        ({"id_number": "440104199003120213", "name": "Wang Fang", "extra": 1}, 400, "unknown_field"),
        ({"id_number": "440104199003120213", "name": ""}, 400, "invalid_field"),
        ({"id_number": "440104199003120213", "name": "   "}, 400, "invalid_field"),
    ],
)
async def test_bad_input_is_refused_before_any_upstream_call(api, body, status, code):
    r = await api.http.post(SEARCH, json=body, headers=api.headers())
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code
    assert sum(b.count() for b in api.bureaus.values()) == 0


async def test_malformed_json(api):
    r = await api.http.post(SEARCH, content=b'{"id_number": ', headers=api.headers(**{"Content-Type": "application/json"}))
    assert r.status_code == 400
    assert r.json()["code"] == "malformed_json"
