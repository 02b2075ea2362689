"""Terminations: contributions stop from a leave date (a one-line leave declaration
at the bureau); rejections come back in canonical form; bad input is refused."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import sqlalchemy as sa

from gateway.store import terminations
from tests.conftest import LI_MING, WANG_FANG

TERMINATIONS = "/v1/social-security/terminations"
DECLARATIONS = "/v1/social-security/declarations"
SEARCH = "/v1/social-security/participation-searches"
GUANGZHOU_EMPLOYER = {"uscc": "91440101MA59BX4C3Y", "name": "广州示例科技有限公司"}
CHANGSHA_EMPLOYER = {"uscc": "91430100MA4L16JQ9D", "name": "长沙示例制造有限公司"}


def key() -> str:
    return str(uuid.uuid4())


def termination(person=WANG_FANG, region="440100", employer=GUANGZHOU_EMPLOYER, **changes):
    return {"employee": dict(person), "employer": employer, "region": region, "leave_date": "2026-10-31", **changes}


async def test_wang_fangs_contributions_stop_from_her_leave_date(api):
    r = await api.http.post(
        TERMINATIONS, json=termination(reason="resigned"), headers=api.headers(**{"Idempotency-Key": key()})
    )
    assert r.status_code == 202, r.text
    out = r.json()
    assert out["status"] == "accepted"
    assert out["insurance_types"] == ["pension", "medical", "unemployment", "work_injury", "maternity"]
    assert out["employee"] == {"id_number_masked": "4401**********0213"}
    assert out["bureau_reference"]
    found = (await api.http.post(SEARCH, json={**WANG_FANG, "regions": ["440100"]}, headers=api.headers())).json()
    assert {(rec["insurance_type"], rec["status"], rec["end_date"]) for rec in found["records"]} == {
        ("pension", "terminated", "2026-10-31"),
        ("medical", "terminated", "2026-10-31"),
    }
    assert found["active_regions"] == []
    read = await api.http.get(f"{TERMINATIONS}/{out['id']}", headers=api.headers())
    assert read.json() == out


async def test_a_person_not_insured_with_the_employer_is_refused_in_canonical_form(api):
    idem = key()
    r = await api.http.post(TERMINATIONS, json=termination(LI_MING), headers=api.headers(**{"Idempotency-Key": idem}))
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "upstream_rejected"
    assert problem["upstream"]["code"] and problem["upstream"]["message"]
    stored = (await api.http.get(f"{TERMINATIONS}/{problem['termination_id']}", headers=api.headers())).json()
    assert stored["status"] == "rejected"
    again = await api.http.post(TERMINATIONS, json=termination(LI_MING), headers=api.headers(**{"Idempotency-Key": idem}))
    assert again.status_code == 422 and again.headers.get("Idempotent-Replayed") == "true"


@pytest.mark.upstream_options(poll_timeout=0)
async def test_an_asynchronous_bureau_confirms_the_termination_later(api):
    # Li Ming joins a Changsha employer through a declaration (decided later, too).
    declaration = {
        "employer": CHANGSHA_EMPLOYER, "region": "430100", "period": "2025-03",
        "lines": [{**LI_MING, "change": "new", "salary": "8000.00", "hire_date": "2025-03-03"}],
    }
    r = await api.http.post(DECLARATIONS, json=declaration, headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 202, r.text
    declaration_id = r.json()["id"]
    deadline = time.monotonic() + 20
    while (await api.http.get(f"{DECLARATIONS}/{declaration_id}", headers=api.headers())).json()["status"] != "accepted":
        assert time.monotonic() < deadline, "the declaration was never accepted"
        await asyncio.sleep(0.1)
    r = await api.http.post(
        TERMINATIONS, json=termination(LI_MING, "430100", CHANGSHA_EMPLOYER, insurance_types=["pension", "medical"]),
        headers=api.headers(**{"Idempotency-Key": key()}),
    )
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    deadline = time.monotonic() + 20
    while (body := (await api.http.get(f"{TERMINATIONS}/{r.json()['id']}", headers=api.headers())).json())["status"] == "pending":
        assert time.monotonic() < deadline, "the termination was never decided"
        await asyncio.sleep(0.1)
    assert body["status"] == "accepted", body


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"leave_date": "2099-01-01"}, "invalid_date"),
        ({"region": "999999"}, "unknown_region"),
        ({"employee": {"id_number": "440104199003120214", "name": "王芳"}}, "invalid_id_number"),
        ({"insurance_types": ["pension", "pension"]}, "invalid_field"),
        ({"reason": "Not A Code"}, "invalid_field"),
    ],
)
async def test_bad_terminations_are_refused_before_any_bureau_is_called(api, changes, code):
    r = await api.http.post(TERMINATIONS, json=termination(**changes), headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code in (400, 422), r.text
    assert r.json()["code"] == code
    assert len(api.bureaus["440100"].requests) == 0
    assert await api.rows(sa.select(terminations.c.id)) == []
