"""The monthly contribution run for Changsha: declaration -> approval -> payment ->
bureau confirmation -> voucher, each step persisted with timestamps; a run stopped
after its approval and resumed by another gateway repeats nothing; refusals stop the
run with the reason; a stalled run escalates past its deadline."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.config import sandbox_settings
from gateway.store import contribution_runs, declarations, erp_approvals, payments
from tests.conftest import LI_MING, create_client, upstreams_for
from tests.receivers import wait_for

RUNS = "/v1/social-security/contribution-runs"
FAST_WEBHOOKS = dict(webhook_retry_schedule=(0.2, 0.5), webhook_poll_seconds=0.2)
pytestmark = pytest.mark.gateway_settings(**FAST_WEBHOOKS)
CHANGSHA_EMPLOYER = {"uscc": "91430100MA4L16JQ9D", "name": "长沙示例制造有限公司"}
STEPS = ["declaration", "approval", "payment", "confirmation", "voucher"]


def key() -> str:
    return str(uuid.uuid4())


def run(erp="sandbox-erp-sap", bank="sandbox-bank-a", debtor="43050188000012345678", deadline=None, **changes):
    deadline = deadline or (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=10))
    body = {
        "employer": CHANGSHA_EMPLOYER, "region": "430100", "period": "2024-09",
        "lines": [{**LI_MING, "change": "new", "salary": "8000.00", "hire_date": "2024-09-02"}],
        "erp": erp, "bank": bank, "debtor_account": debtor, "payment_deadline": deadline.isoformat(),
    }
    body.update(changes)
    return body


async def run_state(http, headers, run_id):
    return (await http.get(f"{RUNS}/{run_id}", headers=headers)).json()


async def finished(http, headers, run_id, timeout=60.0):
    async def check():
        out = await run_state(http, headers, run_id)
        return out if out["status"] in ("completed", "failed") else None

    return await wait_for(check, timeout=timeout, what="the run to finish")


async def test_a_changsha_run_completes_all_five_steps(api, receiver):
    hook = await api.http.post("/v1/webhook-endpoints", json={"url": receiver.url, "events": ["contribution_run.*"]},
                               headers=api.headers())
    assert hook.status_code == 201
    r = await api.http.post(RUNS, json=run(), headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 202, r.text
    created = r.json()
    assert created["status"] == "running"
    assert created["cost_center"] == "CC-HR-CS"
    assert created["deadline"]["overdue"] is False and created["deadline"]["seconds_remaining"] > 0
    out = await finished(api.http, api.headers(), created["id"])
    assert out["status"] == "completed", out
    assert [s["step"] for s in out["steps"]] == STEPS
    assert all(s["status"] == "completed" and s["started_at"] and s["completed_at"] for s in out["steps"])
    starts = [s["started_at"] for s in out["steps"]]
    assert starts == sorted(starts)
    assert out["amount"] and float(out["amount"]) > 0
    kinds = {s["step"]: (s["resource"] or {}).get("kind") for s in out["steps"]}
    assert kinds == {"declaration": "declaration", "approval": "erp_approval", "payment": "payment",
                     "confirmation": "bureau_confirmation", "voucher": "erp_voucher"}
    assert out["steps"][4]["detail"]["document_number"]

    # The resources are the client's own: the payment paid what the declaration made due.
    payment_id = out["steps"][2]["resource"]["id"]
    paid = (await api.http.get(f"/v1/payments/{payment_id}", headers=api.headers())).json()
    assert paid["status"] == "settled" and paid["amount"] == out["amount"]
    assert paid["purpose"] == "social_security_contribution"
    assert paid["origin"] == {"kind": "contribution_run", "id": out["id"]}

    # The bureau confirmed the funds: Li Ming's September is paid in Changsha.
    check = await api.http.post("/v1/social-security/contribution-status-checks",
                                json={**LI_MING, "months": 1, "until": "2024-09"}, headers=api.headers())
    months = [c for m in check.json()["months"] if m["period"] == "2024-09" for c in m["contributions"]]
    assert months and {(c["status"], c["region"]) for c in months} == {("paid", "430100")}, check.text

    def events():
        got = [json.loads(d["body"]) for d in receiver.delivered()]
        return got if any(e["type"] == "contribution_run.completed" for e in got) else None

    got = await wait_for(events, what="the run's webhooks")
    assert [e["data"]["step"] for e in got if e["type"] == "contribution_run.step_completed"] == STEPS
    assert got[-1]["type"] == "contribution_run.completed"


async def test_a_run_stopped_after_approval_resumes_elsewhere_without_a_second_approval_or_payment(
    database_url, bureaus, finance, tmp_path
):
    settings = sandbox_settings(
        tmp_path / "data", database_url=database_url, api_key_cache_seconds=0, upstream_poll_seconds=0.2,
        worker_interval_seconds=0.2, search_deadline=3.0, **FAST_WEBHOOKS,
    )
    issued = await create_client(settings, "admin")
    headers = {"Authorization": f"Bearer {issued['api_key']}"}
    erp = finance["sandbox-erp-kingdee"].server
    erp.set_auto_decide(False)
    body = run(erp="sandbox-erp-kingdee", bank="sandbox-bank-b", debtor="31310001000000000101")

    first = create_app(settings, sandbox_upstreams=upstreams_for(bureaus, finance))
    async with AsyncTestClient(app=first, timeout=30) as http:
        r = await http.post(RUNS, json=body, headers={**headers, "Idempotency-Key": key()})
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]

        async def waiting_for_finance():
            out = await run_state(http, headers, run_id)
            step = out["steps"][1]
            return out if step["status"] == "in_progress" and step["resource"] else None

        before = await wait_for(waiting_for_finance, what="the approval request")
    # This gateway is gone. Finance approves in the ERP meanwhile.
    approval_id = before["steps"][1]["resource"]["id"]
    reference = (await _rows(settings, sa.select(erp_approvals.c.reference).where(erp_approvals.c.id == approval_id)))[0][0]
    erp.decide(reference, approve=True)
    assert await _rows(settings, sa.select(payments.c.id)) == []

    second = create_app(settings, sandbox_upstreams=upstreams_for(bureaus, finance))
    async with AsyncTestClient(app=second, timeout=30) as http:
        out = await finished(http, headers, run_id)
    assert out["status"] == "completed", out
    assert out["steps"][1]["resource"]["id"] == approval_id
    assert out["steps"][0]["started_at"] == before["steps"][0]["started_at"]
    # One declaration at the bureau, one approval in the ERP, one payment at the bank.
    assert len(await _rows(settings, sa.select(declarations.c.id))) == 1
    assert len(await _rows(settings, sa.select(erp_approvals.c.id))) == 1
    payment_rows = await _rows(settings, sa.select(payments.c.reference))
    assert len(payment_rows) == 1
    assert len([b for b in erp.bills() if b.external_no == reference]) == 1
    bank = finance["sandbox-bank-b"].server
    assert len([p for p in bank.payments() if p.initiation.end_to_end_id == payment_rows[0][0]]) == 1


async def _rows(settings, statement):
    from tests.conftest import query_db

    return await query_db(settings, statement)


async def test_a_rejected_approval_stops_the_run_with_the_reason_and_pays_nothing(api):
    erp = api.finance["sandbox-erp-sap"].server
    erp.set_auto_decide(False)
    r = await api.http.post(RUNS, json=run(), headers=api.headers(**{"Idempotency-Key": key()}))
    run_id = r.json()["id"]

    async def approval_requested():
        out = await run_state(api.http, api.headers(), run_id)
        return out["steps"][1]["resource"] if out["steps"][1]["resource"] else None

    resource = await wait_for(approval_requested, what="the approval request")
    reference = (await api.rows(sa.select(erp_approvals.c.reference).where(erp_approvals.c.id == resource["id"])))[0][0]
    erp.decide(reference, approve=False, reason="Q3 social insurance budget frozen")
    out = await finished(api.http, api.headers(), run_id)
    assert out["status"] == "failed"
    assert out["failure"]["step"] == "approval"
    assert out["failure"]["code"] == "approval_rejected"
    assert "frozen" in out["failure"]["message"]
    assert [s["status"] for s in out["steps"]] == ["completed", "failed", "pending", "pending", "pending"]
    assert await api.rows(sa.select(payments.c.id)) == []


@pytest.mark.gateway_settings(escalation_delays_seconds=(0.0, 0.6, 1.2), **FAST_WEBHOOKS)
async def test_a_stalled_run_past_its_deadline_escalates_three_levels(api, receiver):
    await api.http.post("/v1/webhook-endpoints", json={"url": receiver.url, "events": ["contribution_run.overdue"]},
                        headers=api.headers())
    api.finance["sandbox-erp-sap"].server.set_auto_decide(False)
    deadline = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=0.1)
    r = await api.http.post(RUNS, json=run(deadline=deadline), headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 202, r.text

    def levels():
        got = [json.loads(d["body"]) for d in receiver.delivered()]
        return got if len(got) >= 3 else None

    got = await wait_for(levels, what="three escalations")
    # Published in order; deliveries run concurrently, so they may arrive in any order.
    assert sorted(e["data"]["level"] for e in got) == [1, 2, 3]
    assert all(e["data"]["step"] in ("declaration", "approval") for e in got)
    assert max(got, key=lambda e: e["data"]["level"])["data"]["step"] == "approval"  # stalled waiting for finance
    out = await run_state(api.http, api.headers(), r.json()["id"])
    assert out["escalation_level"] == 3
    assert out["deadline"]["overdue"] is True and out["deadline"]["seconds_remaining"] < 0
    await asyncio.sleep(0.5)
    assert len(receiver.delivered()) == 3  # each level is raised once


async def test_bad_runs_create_nothing(api):
    cases = [
        (run(lines=[{**LI_MING, "change": "new", "hire_date": "2024-09-02"}]), 422, "declaration_invalid"),
        (run(erp="no-such-erp"), 422, "unknown_erp"),
        (run(bank="no-such-bank"), 422, "unknown_bank"),
        (run(debtor_account="11112222333344445555"), 422, "unknown_debtor_account"),
        (run(employer={"uscc": "91420100MA4K2QXL25", "name": "武汉示例软件有限公司"}), 422, "cost_center_required"),
        (run(region="110100"), 422, "unknown_region"),
    ]
    for body, status, code in cases:
        r = await api.http.post(RUNS, json=body, headers=api.headers(**{"Idempotency-Key": key()}))
        assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert await api.rows(sa.select(contribution_runs.c.id)) == []
    assert await api.rows(sa.select(declarations.c.id)) == []


async def test_a_second_run_for_the_same_month_waits_for_the_first(api):
    api.finance["sandbox-erp-sap"].server.set_auto_decide(False)
    first = await api.http.post(RUNS, json=run(), headers=api.headers(**{"Idempotency-Key": key()}))
    assert first.status_code == 202
    second = await api.http.post(RUNS, json=run(), headers=api.headers(**{"Idempotency-Key": key()}))
    assert second.status_code == 409
    assert second.json()["code"] == "contribution_run_in_progress"
    assert second.json()["run_id"] == first.json()["id"]
