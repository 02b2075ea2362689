"""Reimbursements: Zhang San's claim is blocked by his late months with the reasons,
paid once the bureau's record is corrected and the claim is checked again, and
followed to ``paid`` with a webhook at each step; bad claims are refused."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa

from gateway.store import payments, reimbursements
from tests.receivers import wait_for

pytestmark = pytest.mark.gateway_settings(webhook_retry_schedule=(0.2, 0.5), webhook_poll_seconds=0.2)

ZHANG_SAN = {"id_number": "420102198805200177", "name": "Zhang San"}
LI_MING = {"id_number": "430102199511080356", "name": "Li Ming"}
REIMBURSEMENTS = "/v1/reimbursements"


def key() -> str:
    return str(uuid.uuid4())


def claim(employee=ZHANG_SAN, **changes):
    body = {
        "employee": employee,
        "amount": "8650.40",
        "payout_account": {"name": "张三", "account": "6214830000000000031", "bank_code": "308584000013"},
        "documents": [{"kind": "hospital_invoice", "sha256": "c0" * 32}, {"kind": "discharge_summary", "sha256": "d1" * 32}],
        "until": "2024-09",
    }
    body.update(changes)
    return body


async def test_zhang_sans_claim_is_blocked_then_paid_once_his_months_are_corrected(api, receiver):
    await api.http.post("/v1/webhook-endpoints", json={"url": receiver.url, "events": ["reimbursement.*"]},
                        headers=api.headers())
    r = await api.http.post(REIMBURSEMENTS, json=claim(), headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 202, r.text
    blocked = r.json()
    assert blocked["status"] == "blocked"
    assert {(b["period"], b["status"]) for b in blocked["blocked"]} >= {("2024-08", "late"), ("2024-09", "late")}
    assert all(b["reason"] for b in blocked["blocked"])
    assert blocked["check"]["window"] == {"first": "2024-07", "last": "2024-09"}
    assert blocked["payment_id"] is None
    assert blocked["employee"] == {"id_number_masked": "4201**********0177"}
    assert await api.rows(sa.select(payments.c.id)) == []

    # Still late: checking again changes nothing.
    again = await api.http.post(f"{REIMBURSEMENTS}/{blocked['id']}/recheck",
                                headers=api.headers(**{"Idempotency-Key": key()}))
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "blocked"

    # The bureau records the arrears as paid; HR checks the claim again.
    wuhan = api.bureaus["420100"]
    for period in ("2024-08", "2024-09"):
        wuhan.set_contribution_status(ZHANG_SAN["id_number"], period, "paid")
    r = await api.http.post(f"{REIMBURSEMENTS}/{blocked['id']}/recheck", headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 200, r.text
    assert r.json()["status"] in ("paying", "paid")
    assert r.json()["payment_id"]

    async def paid():
        out = (await api.http.get(f"{REIMBURSEMENTS}/{blocked['id']}", headers=api.headers())).json()
        return out if out["status"] == "paid" else None

    out = await wait_for(paid, what="the payout to settle")
    assert [e["stage"] for e in out["timeline"]] == ["checking", "blocked", "checking", "paying", "paid"]
    payment = (await api.http.get(f"/v1/payments/{out['payment_id']}", headers=api.headers())).json()
    assert payment["status"] == "settled"
    assert payment["amount"] == "8650.40" and payment["purpose"] == "reimbursement"
    assert payment["origin"] == {"kind": "reimbursement", "id": out["id"]}
    assert payment["bank"] == "sandbox-bank-a"
    bank = api.finance["sandbox-bank-a"].server
    assert len([p for p in bank.payments() if p.transfer.end_to_end_id == payment["upstream_reference"]]) == 1

    # Paid claims are not checked again.
    late = await api.http.post(f"{REIMBURSEMENTS}/{blocked['id']}/recheck", headers=api.headers(**{"Idempotency-Key": key()}))
    assert late.status_code == 409
    assert late.json()["code"] == "reimbursement_not_blocked"

    def events():
        got = [json.loads(d["body"])["type"] for d in receiver.delivered()]
        return got if "reimbursement.paid" in got else None

    assert await wait_for(events, what="webhooks") == ["reimbursement.blocked", "reimbursement.paying", "reimbursement.paid"]
    assert all(ZHANG_SAN["id_number"] not in d["body"].decode() for d in receiver.delivered())


async def test_a_claim_with_no_contributions_on_record_is_blocked(api):
    r = await api.http.post(REIMBURSEMENTS, json=claim(LI_MING), headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "blocked"
    assert r.json()["blocked"]


BAD = [
    ({"employee": {"id_number": "440104199003120214", "name": "Wang Fang"}}, "invalid_id_number"),
    ({"amount": "12.345"}, "invalid_amount"),
    ({"amount": "-1.00"}, "invalid_amount"),
    ({"payout_account": {"name": "张三", "account": "6214830000000000035", "bank_code": "308584000013"}},
     "invalid_account_number"),
    ({"payout_account": {"name": "张三", "account": "6214830000000000031", "bank_code": "30858400001X"}},
     "invalid_bank_code"),
    ({"bank": "no-such-bank"}, "unknown_bank"),
    ({"bank": "sandbox-bank-b"}, "unknown_debtor_account"),
    ({"documents": []}, "invalid_field"),
]


@pytest.mark.parametrize("changes, code", BAD)
async def test_bad_claims_are_refused_and_nothing_is_kept(api, changes, code):
    r = await api.http.post(REIMBURSEMENTS, json=claim(**changes), headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code in (400, 422), r.text
    assert r.json()["code"] == code
    assert await api.rows(sa.select(reimbursements.c.id)) == []
