"""The six documented sandbox persons, through participation searches across all
five sandbox bureaus (three dialects), as docs/sandbox.md describes them."""

from __future__ import annotations

import uuid

import pytest

SEARCH = "/v1/social-security/participation-searches"

PERSONS = {
    "wang_fang": {"id_number": "440104199003120213", "name": "王芳"},
    "li_ming": {"id_number": "430102199511080356", "name": "李明"},
    "zhang_san": {"id_number": "420102198805200177", "name": "张三"},
    "zhao_lei": {"id_number": "440303199201010554", "name": "赵磊"},
    "chen_jing": {"id_number": "330102198707150426", "name": "陈静"},
    "liu_yang": {"id_number": "430104199306150282", "name": "刘洋"},
}
ALL_REGIONS = {"330100", "420100", "430100", "440100", "440300"}


async def search(api, person):
    r = await api.http.post(SEARCH, json=PERSONS[person], headers=api.headers())
    assert r.status_code == 200, r.text
    return r.json()


def outcomes(body):
    return {o["region"]: o["outcome"] for o in body["regions"]}


async def test_every_region_is_asked(api):
    body = await search(api, "li_ming")
    assert outcomes(body) == {region: "ok" for region in ALL_REGIONS}
    assert body["records"] == [] and body["complete"] is True


async def test_wang_fang_has_36_months_in_guangzhou(api):
    body = await search(api, "wang_fang")
    assert body["active_regions"] == ["440100"]
    assert body["paid_months"] == {"medical": 36, "pension": 36}
    assert body["anomalies"] == []


async def test_zhang_san_is_active_in_wuhan(api):
    body = await search(api, "zhang_san")
    assert body["active_regions"] == ["420100"]


async def test_zhao_lei_is_flagged_active_twice(api):
    body = await search(api, "zhao_lei")
    assert body["active_regions"] == ["330100", "440300"]
    assert body["anomalies"] == [
        {
            "kind": "multiple_active",
            "insurance_type": "pension",
            "regions": ["330100", "440300"],
            "detail": "pension is active in 2 regions at once",
        }
    ]
    assert body["paid_months"]["pension"] == 65 + 54


@pytest.mark.gateway_settings(search_deadline=1.5)
async def test_chen_jings_bureau_times_out_without_failing_the_search(api):
    body = await search(api, "chen_jing")
    assert outcomes(body)["330100"] == "timeout"
    assert all(outcome == "ok" for region, outcome in outcomes(body).items() if region != "330100")
    assert body["complete"] is False


async def test_liu_yang_was_terminated_in_changsha(api):
    body = await search(api, "liu_yang")
    assert body["active_regions"] == []
    [record] = body["records"]
    assert (record["region"], record["insurance_type"], record["status"]) == ("430100", "pension", "terminated")
    assert record["end_date"] == "2023-06-30" and record["paid_months"] == 60


async def test_wang_fang_enrolling_in_changsha_needs_a_transfer(api):
    r = await api.http.post(
        "/v1/social-security/enrolments",
        json={
            "employee": PERSONS["wang_fang"],
            "employer": {"uscc": "91430100MA4L16JQ9D", "name": "长沙示例制造有限公司"},
            "region": "430100",
            "hire_date": "2026-11-02",
            "insurance_types": ["pension", "medical"],
            "contribution_base": "8000.00",
        },
        headers=api.headers(**{"Idempotency-Key": str(uuid.uuid4())}),
    )
    assert r.status_code == 409 and r.json()["code"] == "transfer_required"
    assert {c["region"] for c in r.json()["conflicts"]} == {"440100"}


async def test_li_ming_is_enrolled_in_changsha_asynchronously(api):
    r = await api.http.post(
        "/v1/social-security/enrolments",
        json={
            "employee": PERSONS["li_ming"],
            "employer": {"uscc": "91430100MA4L16JQ9D", "name": "长沙示例制造有限公司"},
            "region": "430100",
            "hire_date": "2026-11-02",
            "insurance_types": ["pension", "medical"],
            "contribution_base": "8000.00",
        },
        headers=api.headers(**{"Idempotency-Key": str(uuid.uuid4())}),
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "accepted" and r.json()["bureau_reference"].startswith("430100-R-")
    body = await search(api, "li_ming")
    assert body["active_regions"] == ["430100"]
