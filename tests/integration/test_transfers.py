"""Transfers of the insurance relationship, over loopback against the mock bureaus of
all three dialects: stages, timeline, carried months, rejection, restarts, bad input."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.config import sandbox_settings
from gateway.store import transfer_events, transfers
from tests.conftest import LI_MING, create_client, query_db, upstreams_for

TRANSFERS = "/v1/social-security/transfers"
SEARCH = "/v1/social-security/participation-searches"
ZHANG_SAN = {"id_number": "420102198805200177", "name": "张三"}
ZHAO_LEI = {"id_number": "440303199201010554", "name": "Zhao Lei"}
WANG_FANG_CN = {"id_number": "440104199003120213", "name": "王芳"}


def key() -> str:
    return str(uuid.uuid4())


def transfer(person: dict[str, str], from_region: str, to_region: str, types=("pension", "medical")) -> dict[str, Any]:
    return {**person, "from_region": from_region, "to_region": to_region, "insurance_types": list(types)}


async def wait_for_status(http: AsyncTestClient, headers: dict[str, str], transfer_id: str, *final: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        r = await http.get(f"{TRANSFERS}/{transfer_id}", headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in final or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    ("person", "from_region", "to_region", "months"),
    [
        pytest.param(ZHANG_SAN, "420100", "440100", 68, id="xml-gbk source, json-hmac target"),
        pytest.param(ZHAO_LEI, "330100", "420100", None, id="sm4-async source, xml-gbk target"),
        pytest.param(WANG_FANG_CN, "440100", "430100", 36, id="json-hmac source, sm4-async target"),
    ],
)
async def test_a_transfer_moves_through_every_stage_and_the_months_move_with_it(api, person, from_region, to_region, months):
    types = ("pension",) if person is ZHAO_LEI else ("pension", "medical")
    r = await api.http.post(
        TRANSFERS, json=transfer(person, from_region, to_region, types), headers=api.headers(**{"Idempotency-Key": key()})
    )
    assert r.status_code == 202, r.text
    created = r.json()
    assert created["status"] == "submitted"
    assert created["timeline"][0]["stage"] == "submitted"
    assert person["id_number"] not in r.text

    done = await wait_for_status(api.http, api.headers(), created["id"], "completed", "rejected")
    assert done["status"] == "completed", done
    stages = [e["stage"] for e in done["timeline"]]
    assert stages == ["submitted", "source_reviewed", "funds_transferred", "completed"]
    times = [e["at"] for e in done["timeline"]]
    assert times == sorted(times)
    carried = {c["insurance_type"]: c for c in done["carried"]}
    assert set(carried) == set(types)
    if months is not None:
        assert all(c["paid_months"] == months for c in carried.values())
    assert all(float(c["fund_amount"]) > 0 for c in carried.values())
    assert done["bureau_reference"] and done["target_bureau_reference"]

    # The source now shows the records as transferred; the target holds the months.
    r = await api.http.post(SEARCH, json={**person, "regions": [from_region, to_region]}, headers=api.headers())
    found = r.json()
    by_region = {(rec["region"], rec["insurance_type"]): rec for rec in found["records"]}
    for t in types:
        assert by_region[(from_region, t)]["status"] == "transferred"
        assert by_region[(to_region, t)]["paid_months"] == carried[t]["paid_months"]
        assert found["paid_months"][t] == carried[t]["paid_months"]  # counted once, not twice


async def test_zhao_leis_double_pension_is_resolved_by_a_transfer(api):
    r = await api.http.post(SEARCH, json=ZHAO_LEI, headers=api.headers())
    assert [a["insurance_type"] for a in r.json()["anomalies"]] == ["pension"]
    r = await api.http.post(
        TRANSFERS, json=transfer(ZHAO_LEI, "330100", "440300", ["pension"]), headers=api.headers(**{"Idempotency-Key": key()})
    )
    assert r.status_code == 202, r.text
    done = await wait_for_status(api.http, api.headers(), r.json()["id"], "completed", "rejected")
    assert done["status"] == "completed", done
    r = await api.http.post(SEARCH, json=ZHAO_LEI, headers=api.headers())
    assert r.json()["anomalies"] == []
    assert r.json()["active_regions"] == ["440300"]


async def test_a_transfer_the_source_cannot_make_is_rejected_with_the_bureaus_reason(api):
    r = await api.http.post(
        TRANSFERS, json=transfer(LI_MING, "440100", "430100"), headers=api.headers(**{"Idempotency-Key": key()})
    )
    assert r.status_code == 202, r.text
    done = await wait_for_status(api.http, api.headers(), r.json()["id"], "completed", "rejected")
    assert done["status"] == "rejected"
    assert [e["stage"] for e in done["timeline"]] == ["submitted", "rejected"]
    assert done["reason"]["stage"] == "source_review"
    assert done["reason"]["upstream_code"]
    assert done["reason"]["upstream_message"]
    assert done["carried"] == []


async def test_the_same_key_replays_and_a_second_open_transfer_is_refused(api):
    idem = key()
    body = transfer(WANG_FANG_CN, "440100", "430100")
    first = await api.http.post(TRANSFERS, json=body, headers=api.headers(**{"Idempotency-Key": idem}))
    again = await api.http.post(TRANSFERS, json=body, headers=api.headers(**{"Idempotency-Key": idem}))
    assert first.status_code == again.status_code == 202
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == first.json()["id"]
    other = await api.http.post(TRANSFERS, json=body, headers=api.headers(**{"Idempotency-Key": key()}))
    assert other.status_code == 409, other.text
    assert other.json()["code"] == "transfer_in_progress"
    assert other.json()["transfer_id"] == first.json()["id"]
    rows = await api.rows(sa.select(transfers.c.id))
    assert len(rows) == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (transfer(WANG_FANG_CN, "440100", "440100"), "same_region"),
        (transfer(WANG_FANG_CN, "440100", "999999"), "unknown_region"),
        (transfer(WANG_FANG_CN, "999999", "430100"), "unknown_region"),
        (transfer({"id_number": "440104199003120214", "name": "王芳"}, "440100", "430100"), "invalid_id_number"),
        (transfer(WANG_FANG_CN, "440100", "430100", ["pension", "pension"]), "invalid_field"),
        ({**transfer(WANG_FANG_CN, "440100", "430100"), "insurance_types": []}, "invalid_field"),
        ({**transfer(WANG_FANG_CN, "440100", "430100"), "extra": 1}, "unknown_field"),
    ],
)
async def test_bad_transfers_are_refused_before_any_bureau_is_called(api, body, code):
    r = await api.http.post(TRANSFERS, json=body, headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code in (400, 422), r.text
    assert r.json()["code"] == code
    assert r.headers["content-type"].startswith("application/problem+json")
    assert all(len(server.requests) == 0 for server in api.bureaus.values())
    assert await api.rows(sa.select(transfers.c.id)) == []


async def test_the_application_form_comes_as_json_or_as_a_printable_pdf(api):
    r = await api.http.post(
        TRANSFERS, json=transfer(WANG_FANG_CN, "440100", "430100"), headers=api.headers(**{"Idempotency-Key": key()})
    )
    url = r.json()["application"]
    as_json = await api.http.get(url, headers=api.headers())
    assert as_json.status_code == 200, as_json.text
    form = as_json.json()
    assert form["applicant"]["name"] == "王芳"
    assert form["applicant"]["id_number"] == "440104199003120213"
    assert form["from_region"] == "440100" and form["to_region"] == "430100"
    pension = next(i for i in form["insurance"] if i["insurance_type"] == "pension")
    assert pension["source"]["paid_months"] == 36

    pdf = await api.http.get(url, headers=api.headers(Accept="application/pdf"))
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert b"STSong-Light" in pdf.content

    refused = await api.http.get(url, headers=api.headers(Accept="text/html"))
    assert refused.status_code == 406
    assert refused.json()["code"] == "not_acceptable"

    other = await api.new_client("social_security:read")
    hidden = await api.http.get(url, headers=api.headers(other["api_key"]))
    assert hidden.status_code == 404


async def test_a_transfer_survives_a_restart_of_the_gateway(database_url, bureaus, tmp_path):
    settings = sandbox_settings(
        tmp_path / "data", database_url=database_url, api_key_cache_seconds=0,
        upstream_poll_seconds=0.2, worker_interval_seconds=0.2,
    )
    issued = await create_client(settings, "admin")
    headers = {"Authorization": f"Bearer {issued['api_key']}"}
    async with AsyncTestClient(app=create_app(settings, sandbox_upstreams=upstreams_for(bureaus)), timeout=30) as http:
        r = await http.post(
            TRANSFERS, json=transfer(WANG_FANG_CN, "440100", "430100"), headers={**headers, "Idempotency-Key": key()}
        )
        assert r.status_code == 202, r.text
        transfer_id = r.json()["id"]
    # That gateway stopped before the bureaus moved on; another one on the same
    # database carries on from the stored state.
    stored = await query_db(settings, sa.select(transfers.c.status).where(transfers.c.id == transfer_id))
    assert stored[0].status == "submitted"
    await asyncio.sleep(1.0)
    async with AsyncTestClient(app=create_app(settings, sandbox_upstreams=upstreams_for(bureaus)), timeout=30) as http:
        done = await wait_for_status(http, headers, transfer_id, "completed", "rejected")
    assert done["status"] == "completed", done
    rows = await query_db(settings, sa.select(transfer_events.c.stage).where(transfer_events.c.transfer_id == transfer_id))
    assert sorted(r.stage for r in rows) == sorted(["submitted", "source_reviewed", "funds_transferred", "completed"])
