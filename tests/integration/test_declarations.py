"""Monthly declarations: line-by-line validation and calculation, per-line bureau
decisions, all-or-nothing, asynchronous acceptance, idempotency, bad input."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.store import declaration_lines, declarations
from tests.conftest import LI_MING, WANG_FANG

DECLARATIONS = "/v1/social-security/declarations"
GUANGZHOU_EMPLOYER = {"uscc": "91440101MA59BX4C3Y", "name": "广州示例科技有限公司"}
CHANGSHA_EMPLOYER = {"uscc": "91430100MA4L16JQ9D", "name": "长沙示例制造有限公司"}
ZHANG_SAN = {"id_number": "420102198805200177", "name": "张三"}
BAD_CHECK_DIGIT = {"id_number": "440104199003120214", "name": "王芳"}


def key() -> str:
    return str(uuid.uuid4())


def declaration(lines: list[dict[str, Any]], *, region="440100", period="2024-08", employer=GUANGZHOU_EMPLOYER, **extra):
    return {"employer": employer, "region": region, "period": period, "lines": lines, **extra}


async def wait_until_decided(api, declaration_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        body = (await api.http.get(f"{DECLARATIONS}/{declaration_id}", headers=api.headers())).json()
        if body["status"] not in ("submitting", "pending") or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.1)


async def test_each_line_is_validated_computed_and_decided_by_the_bureau(api):
    body = declaration([
        {**LI_MING, "change": "new", "salary": "2000.00", "hire_date": "2024-08-20"},
        {**WANG_FANG, "change": "change", "salary": "9000.00"},
        {**ZHANG_SAN, "change": "continue", "salary": "9000.00"},
        {**BAD_CHECK_DIGIT, "change": "continue", "salary": "9000.00"},
    ])
    r = await api.http.post(DECLARATIONS, json=body, headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 202, r.text
    out = r.json()
    assert out["status"] == "partially_accepted"
    lines = {line["line"]: line for line in out["lines"]}
    assert [lines[n]["status"] for n in (1, 2, 3, 4)] == ["accepted", "accepted", "rejected", "invalid"]

    # Li Ming: salary below Guangzhou's 2024 floor, hired after the 15th: half a month on the floor.
    li = lines[1]
    assert li["contribution_base"] == "4588.00" and li["base_clamped"] == "floor"
    assert [w["code"] for w in li["warnings"]] == ["base_clamped"]
    assert li["contributions"]["pension"] == {"employer": "367.04", "employee": "183.52"}
    assert li["totals"] == {"employer": "516.15", "employee": "233.99"}
    # Wang Fang: a whole month on 9,000.
    assert lines[2]["totals"] == {"employer": "2025.00", "employee": "918.00"}
    # Zhang San is not insured with this employer in Guangzhou: the bureau says so.
    assert lines[3]["upstream"]["code"] and lines[3]["upstream"]["message"]
    # The bad check digit never left the gateway.
    assert [e["code"] for e in lines[4]["errors"]] == ["invalid_id_number"]
    assert lines[4]["errors"][0]["field"] == "lines[3].id_number"

    assert out["totals"]["by_status"] == {"accepted": 2, "invalid": 1, "rejected": 1}
    assert out["totals"]["accepted"] == {"employer": "2541.15", "employee": "1151.99"}
    assert out["bureau_reference"]
    assert "440104199003120213" not in r.text and "王芳" not in r.text

    again = await api.http.get(f"{DECLARATIONS}/{out['id']}", headers=api.headers())
    assert again.json() == out

    # PII is stored encrypted only.
    stored = await api.rows(sa.select(declaration_lines))
    assert all("4301" not in str(v) for row in stored for v in row if isinstance(v, str) and len(v) == 18)


async def test_all_or_nothing_sends_nothing_when_a_line_is_bad(api):
    body = declaration(
        [
            {**LI_MING, "change": "new", "salary": "8000.00", "hire_date": "2024-08-01"},
            {**WANG_FANG, "change": "leave", "hire_date": "2024-08-10", "leave_date": "2024-08-01"},
        ],
        all_or_nothing=True,
    )
    r = await api.http.post(DECLARATIONS, json=body, headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "declaration_invalid"
    assert problem["lines"] == [
        {"line": 2, "errors": [{"code": "leave_before_hire", "detail": problem["lines"][0]["errors"][0]["detail"],
                                "field": "lines[1].leave_date"}]}
    ]
    assert len(api.bureaus["440100"].requests) == 0
    assert await api.rows(sa.select(declarations.c.id)) == []


async def test_every_line_rule_is_reported_line_by_line(api):
    body = declaration([
        {**LI_MING, "change": "new", "salary": "8000.00"},  # no hire date
        {**WANG_FANG, "change": "continue"},  # no salary
        {**ZHANG_SAN, "change": "change", "salary": "-5.00"},
        {**ZHANG_SAN, "change": "continue", "salary": "9000.00"},  # Zhang San twice
        {"id_number": "430104199306150282", "name": "刘洋", "change": "new", "salary": "9000.00", "hire_date": "2024-09-02"},
        {"id_number": "430104199306150282", "name": "刘洋", "change": "leave"},
    ])
    r = await api.http.post(DECLARATIONS, json=body, headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 422, r.text
    codes = {line["line"]: sorted(e["code"] for e in line["errors"]) for line in r.json()["lines"]}
    assert codes == {
        1: ["missing_field"],
        2: ["missing_field"],
        3: ["duplicate_person", "invalid_amount"],
        4: ["duplicate_person"],
        5: ["duplicate_person", "hire_after_period"],
        6: ["duplicate_person", "missing_field"],
    }


async def test_valid_lines_go_ahead_without_all_or_nothing(api):
    body = declaration([
        {**LI_MING, "change": "new", "salary": "8000.00", "hire_date": "2024-08-01"},
        {**WANG_FANG, "change": "continue"},
    ])
    r = await api.http.post(DECLARATIONS, json=body, headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 202, r.text
    assert [line["status"] for line in r.json()["lines"]] == ["accepted", "invalid"]
    assert r.json()["status"] == "accepted"


@pytest.mark.upstream_options(poll_timeout=0)
async def test_an_asynchronous_bureau_decides_later_and_the_gateway_follows(api):
    body = declaration(
        [{**LI_MING, "change": "new", "salary": "20000.00", "hire_date": "2024-06-03"}],
        region="430100", period="2024-06", employer=CHANGSHA_EMPLOYER,
    )
    r = await api.http.post(DECLARATIONS, json=body, headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    assert r.json()["lines"][0]["status"] == "pending"
    # Changsha 2024: ceiling 18,021; 20,000 is clamped to it.
    assert r.json()["lines"][0]["contribution_base"] == "18021.00"
    done = await wait_until_decided(api, r.json()["id"])
    assert done["status"] == "accepted", done
    assert done["lines"][0]["status"] == "accepted"
    assert done["totals"]["accepted"] == done["totals"]["declared"]


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"period": "2024-13"}, "invalid_period"),
        ({"period": "2022-01"}, "period_not_covered"),
        ({"region": "999999"}, "unknown_region"),
        ({"employer": {"uscc": "91440101MA59BX4C3X", "name": "x"}}, "invalid_uscc"),
        ({"lines": []}, "invalid_field"),
    ],
)
async def test_bad_declarations_are_refused_whole(api, changes, code):
    body = {**declaration([{**LI_MING, "change": "new", "salary": "8000.00", "hire_date": "2024-08-01"}]), **changes}
    r = await api.http.post(DECLARATIONS, json=body, headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code in (400, 422), r.text
    assert r.json()["code"] == code
    assert len(api.bureaus["440100"].requests) == 0


async def test_a_retried_declaration_is_replayed_not_declared_again(api):
    body = declaration([{**LI_MING, "change": "new", "salary": "8000.00", "hire_date": "2024-08-01"}])
    idem = key()
    first = await api.http.post(DECLARATIONS, json=body, headers=api.headers(**{"Idempotency-Key": idem}))
    again = await api.http.post(DECLARATIONS, json=body, headers=api.headers(**{"Idempotency-Key": idem}))
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == first.json()["id"]
    assert len(await api.rows(sa.select(declarations.c.id))) == 1
