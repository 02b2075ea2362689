"""The xml-gbk bureau (Wuhan, 420100) through the gateway, against its real mock."""

from __future__ import annotations

import uuid

SEARCH = "/v1/social-security/participation-searches"
ENROL = "/v1/social-security/enrolments"
ZHANG_SAN = {"id_number": "420102198805200177", "name": "张三"}


def logins(bureau) -> int:
    return bureau.count(operation="LOGIN")


async def test_zhang_san_is_active_in_wuhan_with_chinese_text_intact(api):
    r = await api.http.post(SEARCH, json={**ZHANG_SAN, "regions": ["420100"]}, headers=api.headers())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["active_regions"] == ["420100"]
    pension = next(rec for rec in body["records"] if rec["insurance_type"] == "pension")
    assert pension["employer"] == {"uscc": "91420100MA4K2QXL25", "name": "武汉示例软件有限公司"}
    assert pension["start_date"] == "2019-03-01" and pension["contribution_base"] == "9000.00"
    assert pension["paid_months"] == 68 and pension["last_paid_period"] == "2024-10"


async def test_an_expired_session_is_renewed_once(api):
    wuhan = api.bureaus["420100"]
    await api.http.post(SEARCH, json={**ZHANG_SAN, "regions": ["420100"]}, headers=api.headers())
    assert logins(wuhan) == 1
    await api.http.post(SEARCH, json={**ZHANG_SAN, "regions": ["420100"]}, headers=api.headers())
    assert logins(wuhan) == 1  # the session is reused
    wuhan.expire_tokens()
    r = await api.http.post(SEARCH, json={**ZHANG_SAN, "regions": ["420100"]}, headers=api.headers())
    assert r.json()["regions"][0]["outcome"] == "ok"
    assert logins(wuhan) == 2


async def test_a_chinese_name_is_enrolled_and_found_again(api):
    li_ming = {"id_number": "430102199511080356", "name": "李明"}
    r = await api.http.post(
        ENROL,
        json={
            "employee": li_ming,
            "employer": {"uscc": "91420100MA4K2QXL25", "name": "武汉示例软件有限公司"},
            "region": "420100",
            "hire_date": "2026-11-02",
            "insurance_types": ["pension", "medical"],
            "contribution_base": "8000.00",
        },
        headers=api.headers(**{"Idempotency-Key": str(uuid.uuid4())}),
    )
    assert r.status_code == 201, r.text
    assert r.json()["bureau_reference"].startswith("420100-E-")
    [stored] = api.bureaus["420100"].enrolments()
    assert stored.unit_name == "武汉示例软件有限公司"
    # The bureau now knows him as exactly 李明: that name finds him, another is refused.
    search = await api.http.post(SEARCH, json={**li_ming, "regions": ["420100"]}, headers=api.headers())
    assert search.json()["active_regions"] == ["420100"]
    assert {rec["employer"]["name"] for rec in search.json()["records"]} == {"武汉示例软件有限公司"}
    other = await api.http.post(SEARCH, json={**li_ming, "name": "李鸣", "regions": ["420100"]}, headers=api.headers())
    assert other.json()["regions"][0]["outcome"] == "rejected"
    assert other.json()["regions"][0]["error"]["upstream_code"] == "B005"


async def test_zhang_san_cannot_be_enrolled_in_guangzhou_without_a_transfer(api):
    r = await api.http.post(
        ENROL,
        json={
            "employee": ZHANG_SAN,
            "employer": {"uscc": "91440101MA59BX4C3Y", "name": "广州示例科技有限公司"},
            "region": "440100",
            "hire_date": "2026-11-02",
            "insurance_types": ["pension"],
            "contribution_base": "8000.00",
        },
        headers=api.headers(**{"Idempotency-Key": str(uuid.uuid4())}),
    )
    assert r.status_code == 409 and r.json()["code"] == "transfer_required"
    assert {c["region"] for c in r.json()["conflicts"]} == {"420100"}
