"""The customer's cross-city hire, end to end, as one test (DESIGN.md, "The story").

Ms. Wang paid pension and medical insurance in Guangzhou (440100, json-hmac) for
three years and joins a Changsha (430100, sm4-async) company. Every region is
searched (Wuhan speaks xml-gbk), the enrolment is refused with
``transfer_required``, the transfer goes 440100 -> 430100 through every stage with a
signed webhook for each, and then the enrolment succeeds and her 36 months count in
Changsha.
"""

from __future__ import annotations

import json
import uuid

import pytest

from gateway.webhooks import verify
from tests.receivers import wait_for

WANG_FANG = {"id_number": "440104199003120213", "name": "王芳"}
CHANGSHA_EMPLOYER = {"uscc": "91430100MA4L16JQ9D", "name": "长沙示例制造有限公司"}
STAGES = ["submitted", "source_reviewed", "funds_transferred", "completed"]

pytestmark = pytest.mark.gateway_settings(webhook_retry_schedule=(0.2, 0.5), webhook_poll_seconds=0.2)


def key() -> str:
    return str(uuid.uuid4())


async def test_wang_fang_moves_from_guangzhou_to_changsha(api, receiver):
    http, headers = api.http, api.headers()

    # The HR system subscribes to what it wants to hear about.
    r = await http.post(
        "/v1/webhook-endpoints",
        json={"url": receiver.url, "events": ["transfer.*", "enrolment.*"]},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]

    # Every region is searched; she is active in Guangzhou only.
    r = await http.post("/v1/social-security/participation-searches", json=WANG_FANG, headers=headers)
    found = r.json()
    assert found["complete"] is True
    assert {o["region"] for o in found["regions"]} == {"330100", "420100", "430100", "440100", "440300"}
    assert found["active_regions"] == ["440100"]
    assert found["paid_months"] == {"medical": 36, "pension": 36}

    # Enrolling her in Changsha is refused: Guangzhou still holds her insurance.
    enrolment = {
        "employee": WANG_FANG, "employer": CHANGSHA_EMPLOYER, "region": "430100", "hire_date": "2026-11-02",
        "insurance_types": ["pension", "medical"], "contribution_base": "8000.00",
    }
    r = await http.post("/v1/social-security/enrolments", json=enrolment, headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["code"] == "transfer_required"
    assert {(c["region"], c["insurance_type"]) for c in problem["conflicts"]} == {("440100", "pension"), ("440100", "medical")}

    # The transfer: built, submitted to the source bureau, followed to the end.
    r = await http.post(
        "/v1/social-security/transfers",
        json={**WANG_FANG, "from_region": "440100", "to_region": "430100", "insurance_types": ["pension", "medical"]},
        headers=api.headers(**{"Idempotency-Key": key()}),
    )
    assert r.status_code == 202, r.text
    transfer_id = r.json()["id"]
    form = (await http.get(r.json()["application"], headers=headers)).json()
    assert form["applicant"]["name"] == "王芳" and form["to_region_name"]

    async def completed():
        body = (await http.get(f"/v1/social-security/transfers/{transfer_id}", headers=headers)).json()
        return body if body["status"] in ("completed", "rejected") else None

    transfer = await wait_for(completed, what="the transfer to finish")
    assert transfer["status"] == "completed", transfer
    assert [e["stage"] for e in transfer["timeline"]] == STAGES
    assert {c["insurance_type"]: c["paid_months"] for c in transfer["carried"]} == {"pension": 36, "medical": 36}

    # A signed webhook for each step, in order.
    def transfer_events():
        events = [json.loads(r["body"]) for r in receiver.delivered()]
        events = [e for e in events if e["type"].startswith("transfer.")]
        return events if len(events) >= len(STAGES) else None

    events = await wait_for(transfer_events, what="a webhook for every stage")
    assert [e["type"] for e in events] == [f"transfer.{s}" for s in STAGES]
    assert all(e["data"]["transfer"]["id"] == transfer_id for e in events)
    for delivery in receiver.delivered():
        assert verify(secret, delivery["body"], delivery["headers"]["Hgw-Signature"])
    assert all("440104199003120213" not in r["body"].decode() for r in receiver.delivered())

    # Now the enrolment goes through, and her months count in Changsha.
    r = await http.post("/v1/social-security/enrolments", json=enrolment, headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "accepted"
    r = await http.post("/v1/social-security/participation-searches", json=WANG_FANG, headers=headers)
    found = r.json()
    assert found["active_regions"] == ["430100"]
    changsha = {rec["insurance_type"]: rec for rec in found["records"] if rec["region"] == "430100"}
    assert {t: (rec["status"], rec["paid_months"]) for t, rec in changsha.items()} == {
        "pension": ("active", 36), "medical": ("active", 36),
    }
    assert found["paid_months"] == {"medical": 36, "pension": 36}
    assert found["anomalies"] == []

    enrolled = await wait_for(
        lambda: [e for e in (json.loads(r["body"]) for r in receiver.delivered()) if e["type"] == "enrolment.accepted"],
        what="the enrolment webhook",
    )
    assert enrolled[0]["data"]["enrolment"]["region"] == "430100"
