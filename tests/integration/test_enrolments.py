"""Enrolments: transfer check, exactly-once submission, idempotency, bad input."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
import sqlalchemy as sa

from gateway.store import enrolments, idempotency_records
from mocks import Fault
from tests.conftest import LI_MING, WANG_FANG

ENROL = "/v1/social-security/enrolments"
SUBMIT = "/api/v1/enrolment/submit"
LOOKUP = "/api/v1/enrolment/query"


def enrolment(person=LI_MING, region="440100", **changes):
    body = {
        "employee": dict(person),
        "employer": {"uscc": "91440101MA59BX4C3Y", "name": "广州示例科技有限公司"},
        "region": region,
        "hire_date": "2026-11-02",
        "insurance_types": ["pension", "medical"],
        "contribution_base": "8000.00",
    }
    body.update(changes)
    return body


def key() -> str:
    return str(uuid.uuid4())


async def test_wang_fang_needs_a_transfer_to_enrol_in_shenzhen(api):
    r = await api.http.post(ENROL, json=enrolment(WANG_FANG, region="440300"), headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["code"] == "transfer_required"
    assert problem["target_region"] == "440300"
    assert {(c["region"], c["insurance_type"], c["status"]) for c in problem["conflicts"]} == {
        ("440100", "pension", "active"),
        ("440100", "medical", "active"),
    }
    assert api.bureaus["440300"].count(SUBMIT) == 0
    assert "440104199003120213" not in r.text


async def test_li_ming_is_enrolled_once_and_can_be_read_back(api):
    idem = key()
    r = await api.http.post(ENROL, json=enrolment(), headers=api.headers(**{"Idempotency-Key": idem}))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "accepted"
    assert re.fullmatch(r"440100E\d{6}", body["bureau_reference"])
    assert body["reference"] == "HGW-" + body["id"].removeprefix("enr_").upper()
    assert body["employee"] == {"id_number_masked": "4301**********0356"}
    assert body["contribution_base"] == "8000.00"

    again = await api.http.get(f"{ENROL}/{body['id']}", headers=api.headers())
    assert again.status_code == 200 and again.json() == body

    search = await api.http.post("/v1/social-security/participation-searches", json=LI_MING, headers=api.headers())
    assert search.json()["active_regions"] == ["440100"]

    replay = await api.http.post(ENROL, json=enrolment(), headers=api.headers(**{"Idempotency-Key": idem}))
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == body
    assert api.bureaus["440100"].count(SUBMIT) == 1
    assert len(api.bureaus["440100"].enrolments()) == 1


async def test_another_clients_enrolment_is_not_found(api):
    r = await api.http.post(ENROL, json=enrolment(), headers=api.headers(**{"Idempotency-Key": key()}))
    other = await api.new_client("social_security:read")
    r2 = await api.http.get(f"{ENROL}/{r.json()['id']}", headers=api.headers(other["api_key"]))
    assert r2.status_code == 404 and r2.json()["code"] == "not_found"


async def test_same_key_with_another_body_is_refused(api):
    idem = key()
    first = await api.http.post(ENROL, json=enrolment(), headers=api.headers(**{"Idempotency-Key": idem}))
    assert first.status_code == 201
    r = await api.http.post(
        ENROL, json=enrolment(contribution_base="9000.00"), headers=api.headers(**{"Idempotency-Key": idem})
    )
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused"
    assert api.bureaus["440100"].count(SUBMIT) == 1


async def test_key_is_scoped_per_client(api):
    idem = key()
    other = await api.new_client("social_security:read,social_security:submit")
    a = await api.http.post(ENROL, json=enrolment(), headers=api.headers(**{"Idempotency-Key": idem}))
    liu_yang = {"id_number": "430104199306150282", "name": "Liu Yang"}
    b = await api.http.post(
        ENROL, json=enrolment(liu_yang), headers=api.headers(other["api_key"], **{"Idempotency-Key": idem})
    )
    assert a.status_code == 201 and b.status_code == 201, b.text
    assert "idempotent-replayed" not in b.headers
    assert a.json()["id"] != b.json()["id"]
    assert api.bureaus["440100"].count(SUBMIT) == 2


async def test_json_key_order_and_spacing_do_not_change_the_fingerprint(api):
    idem = key()
    import json

    body = enrolment()
    first = await api.http.post(ENROL, content=json.dumps(body), headers=api.headers(**{"Idempotency-Key": idem, "Content-Type": "application/json"}))
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2)
    second = await api.http.post(ENROL, content=reordered, headers=api.headers(**{"Idempotency-Key": f'"{idem}"', "Content-Type": "application/json"}))
    assert first.status_code == 201
    assert second.status_code == 201 and second.headers["idempotent-replayed"] == "true"


async def test_concurrent_requests_with_one_key_make_one_upstream_call(served, bureaus):
    """Six requests with one key at the same moment against a real server, on SQLite
    and on PostgreSQL (the fixture is parametrised): one does the work, the others are
    told it is in flight (or, if they arrive after it finished, get the replay)."""
    import httpx

    base, api_key = served
    bureaus["440100"].faults.add(Fault(route=SUBMIT, kind="latency", latency_ms=800))
    idem = key()
    headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": idem}
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        responses = await asyncio.gather(*[http.post(ENROL, json=enrolment(), headers=headers) for _ in range(6)])
    fresh = [r for r in responses if r.status_code == 201 and "idempotent-replayed" not in r.headers]
    in_flight = [r for r in responses if r.status_code == 409]
    assert len(fresh) == 1, [(r.status_code, r.text[:80]) for r in responses]
    assert in_flight, "requests arriving during the first one's work are told it is in flight"
    for r in in_flight:
        assert r.json()["code"] == "idempotency_key_in_use"
        assert 1 <= int(r.headers["retry-after"]) <= 2
    assert bureaus["440100"].count(SUBMIT) == 1
    assert len(bureaus["440100"].enrolments()) == 1


async def test_bureau_rejection_is_reported_and_replayed(api):
    # Wang Fang is already active in 440100: the bureau itself refuses (2001).
    idem = key()
    r = await api.http.post(ENROL, json=enrolment(WANG_FANG), headers=api.headers(**{"Idempotency-Key": idem}))
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "upstream_rejected"
    assert problem["upstream"]["code"] == "2001"
    got = await api.http.get(f"{ENROL}/{problem['enrolment_id']}", headers=api.headers())
    assert got.json()["status"] == "rejected"
    assert got.json()["error"]["upstream_code"] == "2001"
    replay = await api.http.post(ENROL, json=enrolment(WANG_FANG), headers=api.headers(**{"Idempotency-Key": idem}))
    assert replay.status_code == 422 and replay.headers["idempotent-replayed"] == "true"
    assert api.bureaus["440100"].count(SUBMIT) == 1


async def test_dropped_answer_is_checked_before_resending(api):
    api.bureaus["440100"].faults.add(Fault(route=SUBMIT, kind="drop_after", times=1))
    r = await api.http.post(ENROL, json=enrolment(), headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 201, r.text
    assert api.bureaus["440100"].count(SUBMIT) == 1
    assert api.bureaus["440100"].count(LOOKUP) == 1
    assert len(api.bureaus["440100"].enrolments()) == 1


async def test_unavailable_bureau_then_retry_resumes_the_same_enrolment(api):
    api.bureaus["440100"].faults.add(Fault(route=SUBMIT, kind="error", status=503))
    idem = key()
    r = await api.http.post(ENROL, json=enrolment(), headers=api.headers(**{"Idempotency-Key": idem}))
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "upstream_unavailable"
    first_id = r.json()["enrolment_id"]
    assert len(api.bureaus["440100"].enrolments()) == 0

    api.bureaus["440100"].faults.clear()
    again = await api.http.post(ENROL, json=enrolment(), headers=api.headers(**{"Idempotency-Key": idem}))
    assert again.status_code == 201, again.text
    assert again.json()["id"] == first_id
    assert "idempotent-replayed" not in again.headers
    assert len(api.bureaus["440100"].enrolments()) == 1
    assert api.bureaus["440100"].count(LOOKUP) == 1  # resumed work asks the bureau before resending


@pytest.mark.upstream_options(policy={"circuit": {"failure_threshold": 50}})
async def test_unknown_outcome_is_resolved_by_asking_the_bureau(api):
    # The answer is lost and the bureau cannot be asked either: outcome unknown.
    api.bureaus["440100"].faults.add(Fault(route=SUBMIT, kind="drop_after", times=1))
    api.bureaus["440100"].faults.add(Fault(route=LOOKUP, kind="error", status=500))
    idem = key()
    r = await api.http.post(ENROL, json=enrolment(), headers=api.headers(**{"Idempotency-Key": idem}))
    assert r.status_code == 503 and r.json()["code"] == "outcome_unknown"
    assert len(api.bureaus["440100"].enrolments()) == 1
    api.bureaus["440100"].faults.clear()
    again = await api.http.post(ENROL, json=enrolment(), headers=api.headers(**{"Idempotency-Key": idem}))
    assert again.status_code == 201
    assert again.json()["id"] == r.json()["enrolment_id"]
    assert api.bureaus["440100"].count(SUBMIT) == 1  # found by asking, never sent twice
    assert len(api.bureaus["440100"].enrolments()) == 1


async def test_idempotency_key_is_required(api):
    r = await api.http.post(ENROL, json=enrolment(), headers=api.headers())
    assert r.status_code == 400 and r.json()["code"] == "idempotency_key_missing"


@pytest.mark.parametrize("bad", ["has space", "x" * 256, '"unterminated', "", "ключ".encode()])
async def test_malformed_idempotency_keys(api, bad):
    r = await api.http.post(ENROL, json=enrolment(), headers=api.headers(**{"Idempotency-Key": bad}))
    assert r.status_code == 400 and r.json()["code"] == "invalid_idempotency_key", r.text


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"employee": {"id_number": "440104199003120214", "name": "Wang Fang"}}, 422, "invalid_id_number"),
        ({"employer": {"uscc": "91430100MA4L16JQ9X", "name": "x"}}, 422, "invalid_uscc"),
        ({"region": "110100"}, 422, "unknown_region"),
        ({"region": "abc"}, 400, "invalid_field"),
        ({"contribution_base": "-1.00"}, 422, "invalid_amount"),
        ({"contribution_base": "8000.001"}, 422, "invalid_amount"),
        ({"contribution_base": "lots"}, 400, "invalid_field"),
        ({"insurance_types": []}, 400, "invalid_field"),
        ({"insurance_types": ["pension", "pension"]}, 400, "invalid_field"),
        ({"insurance_types": ["dental"]}, 400, "invalid_field"),
        ({"hire_date": "1970-01-01"}, 422, "invalid_date"),
        ({"hire_date": "2026-13-01"}, 400, "invalid_field"),
        ({"surprise": True}, 400, "unknown_field"),
        ({"employee": {"id_number": "430102199511080356", "name": "Li Ming", "age": 3}}, 400, "unknown_field"),
        ({"employee": {"id_number": "430102199511080356", "name": "   "}}, 400, "invalid_field"),
        ({"employer": {"uscc": "91440101MA59BX4C3Y", "name": " \t "}}, 400, "invalid_field"),
        ({"employee": {"id_number": "430102199511080356", "name": ["Li", "Ming"]}}, 400, "invalid_field"),
    ],
)
async def test_bad_enrolments_leave_nothing_behind(api, changes, status, code):
    body = enrolment(**changes)
    r = await api.http.post(ENROL, json=body, headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == status, r.text
    assert r.json()["code"] == code
    assert sum(b.count() for b in api.bureaus.values()) == 0
    assert await api.rows(sa.select(enrolments.c.id)) == []
    assert await api.rows(sa.select(idempotency_records.c.key)) == []


async def test_a_refused_request_frees_its_key(api):
    idem = key()
    bad = await api.http.post(ENROL, json=enrolment(region="110100"), headers=api.headers(**{"Idempotency-Key": idem}))
    assert bad.status_code == 422
    good = await api.http.post(ENROL, json=enrolment(), headers=api.headers(**{"Idempotency-Key": idem}))
    assert good.status_code == 201


@pytest.mark.gateway_settings(idempotency_retention_hours=1 / 3600)
async def test_a_key_reused_after_retention_starts_new_work(api):
    idem = key()
    first = await api.http.post(ENROL, json=enrolment(), headers=api.headers(**{"Idempotency-Key": idem}))
    assert first.status_code == 201
    await asyncio.sleep(1.2)  # the record's retention (1 s here) has passed
    other = enrolment(
        region="440300", employer={"uscc": "91440300MA5FXXKQ11", "name": "深圳示例电子有限公司"},
        employee={"id_number": "430104199306150282", "name": "Liu Yang"},
    )
    second = await api.http.post(ENROL, json=other, headers=api.headers(**{"Idempotency-Key": idem}))
    assert second.status_code == 201, second.text
    assert "idempotent-replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"] and second.json()["region"] == "440300"
    assert len(api.bureaus["440300"].enrolments()) == 1


async def test_deeply_nested_bodies_are_malformed_not_a_crash(api):
    body = b'{"employee": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    r = await api.http.post(ENROL, content=body, headers=api.headers(**{"Idempotency-Key": key(), "Content-Type": "application/json"}))
    assert r.status_code == 400, r.text
    assert r.json()["code"] in ("malformed_json", "invalid_field")
    assert await api.rows(sa.select(idempotency_records.c.key)) == []


async def test_a_name_the_bureau_does_not_recognise_is_a_final_refusal(api):
    # 440100 knows this ID number under another name: its refusal is final, not "try again".
    idem = key()
    r = await api.http.post(
        ENROL, json=enrolment({"id_number": WANG_FANG["id_number"], "name": "Wrong Name"}, region="440300",
                              employer={"uscc": "91440300MA5FXXKQ11", "name": "深圳示例电子有限公司"}),
        headers=api.headers(**{"Idempotency-Key": idem}),
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "upstream_rejected"
    assert r.json()["regions"][0]["region"] == "440100" and r.json()["regions"][0]["upstream_code"] == "2005"
    assert api.bureaus["440300"].count(SUBMIT) == 0


@pytest.mark.upstream_options(poll_timeout=0)
async def test_an_enrolment_the_bureau_decides_later_is_followed_to_acceptance(api):
    body = enrolment(region="430100", employer={"uscc": "91430100MA4L16JQ9D", "name": "长沙示例制造有限公司"})
    r = await api.http.post(ENROL, json=body, headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "submitting"  # the bureau gave a ticket, not yet a decision
    deadline = asyncio.get_running_loop().time() + 20
    while (status := (await api.http.get(f"{ENROL}/{r.json()['id']}", headers=api.headers())).json()["status"]) == "submitting":
        assert asyncio.get_running_loop().time() < deadline, "the gateway never followed the bureau's decision"
        await asyncio.sleep(0.1)
    assert status == "accepted"
