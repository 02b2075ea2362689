"""ERP documents through both sandbox ERPs: approvals with the budget comparison and
a polled decision, balanced vouchers posted with the ERP's number, budgets, the
ERP's refusals in canonical form, and at most one document per request."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
import sqlalchemy as sa

from gateway.store import erp_approvals, erp_vouchers
from mocks.faults import Fault, FaultKind
from tests.receivers import wait_for

pytestmark = pytest.mark.gateway_settings(webhook_retry_schedule=(0.2, 0.5), webhook_poll_seconds=0.2)

#: Per ERP: the Changsha HR cost centre, the social-insurance expense and bank accounts,
#: and the fault route of an approval request's creation.
ERPS = {
    "sandbox-erp-sap": {"cost_center": "CC-HR-CS", "expense": "660201", "bank": "100201",
                        "create": "ApprovalRequests.create"},
    "sandbox-erp-kingdee": {"cost_center": "CS-HR", "expense": "6602.01", "bank": "1002.01", "create": "Save"},
}


def key() -> str:
    return str(uuid.uuid4())


def approval(erp: str, **changes):
    body = {"erp": erp, "kind": "social_security_contribution", "amount": "12000.00",
            "cost_center": ERPS[erp]["cost_center"], "period": "2024-09", "reference": "SI 430100 2024-09",
            "attachments": [{"kind": "declaration", "sha256": "ab" * 32, "name": "declaration.pdf"}]}
    body.update(changes)
    return body


def voucher(erp: str, amount: str = "12000.00", **changes):
    body = {"erp": erp, "date": "2024-09-20", "reference": "SI 430100 2024-09",
            "lines": [{"account": ERPS[erp]["expense"], "debit": amount, "cost_center": ERPS[erp]["cost_center"]},
                      {"account": ERPS[erp]["bank"], "credit": amount}]}
    body.update(changes)
    return body


async def decided(api, approval_id):
    async def check():
        out = (await api.http.get(f"/v1/erp/approvals/{approval_id}", headers=api.headers())).json()
        return out if out["status"] in ("approved", "rejected") else None

    return await wait_for(check, what="a decision")


@pytest.mark.parametrize("erp", sorted(ERPS))
async def test_an_approval_shows_the_budget_and_is_decided_with_a_webhook(api, receiver, erp):
    hook = await api.http.post("/v1/webhook-endpoints", json={"url": receiver.url, "events": ["erp_approval.*"]},
                               headers=api.headers())
    assert hook.status_code == 201
    budget = (await api.http.get(f"/v1/erp/budgets/{ERPS[erp]['cost_center']}",
                                 params={"period": "2024-09", "erp": erp}, headers=api.headers())).json()
    r = await api.http.post("/v1/erp/approvals", json=approval(erp), headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 202, r.text
    out = r.json()
    assert out["status"] == "pending"
    assert out["document_number"]
    comparison = {k: Decimal(v) for k, v in out["budget"].items()}
    assert comparison["budget"] == Decimal(budget["budget"])
    assert comparison["committed"] == Decimal(budget["committed"])
    assert comparison["requested"] == Decimal("12000.00")
    assert comparison["remaining"] == comparison["budget"] - comparison["committed"] - comparison["requested"]
    final = await decided(api, out["id"])
    assert final["status"] == "approved"
    assert [e["stage"] for e in final["timeline"]] == ["submitting", "pending", "approved"]
    after = (await api.http.get(f"/v1/erp/budgets/{ERPS[erp]['cost_center']}",
                                params={"period": "2024-09", "erp": erp}, headers=api.headers())).json()
    assert Decimal(after["committed"]) == Decimal(budget["committed"]) + Decimal("12000.00")

    def events():
        got = [json.loads(d["body"]) for d in receiver.delivered()]
        return got if any(e["type"] == "erp_approval.approved" for e in got) else None

    got = await wait_for(events, what="the decision webhook")
    assert [e["type"] for e in got] == ["erp_approval.pending", "erp_approval.approved"]


@pytest.mark.parametrize("erp", sorted(ERPS))
async def test_an_approval_over_budget_is_rejected_with_the_erps_reason(api, erp):
    r = await api.http.post("/v1/erp/approvals", json=approval(erp, amount="99999999.00"),
                            headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 202, r.text
    assert Decimal(r.json()["budget"]["remaining"]) < 0
    final = await decided(api, r.json()["id"])
    assert final["status"] == "rejected"
    assert final["rejection"]["message"]


@pytest.mark.parametrize("erp", sorted(ERPS))
async def test_an_approval_request_whose_answer_is_lost_exists_once_in_the_erp(api, erp):
    server = api.finance[erp].server
    server.faults.add(Fault(route=ERPS[erp]["create"], kind=FaultKind.DROP_AFTER, times=1))
    r = await api.http.post("/v1/erp/approvals", json=approval(erp), headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 202, r.text
    reference = r.json()["upstream_reference"]
    if erp == "sandbox-erp-sap":
        held = [a for a in server.approvals() if a.reference == reference]
    else:
        held = [b for b in server.bills() if b.external_no == reference]
    assert len(held) == 1


@pytest.mark.parametrize("erp", sorted(ERPS))
async def test_a_balanced_voucher_is_posted_with_the_erps_document_number(api, erp):
    r = await api.http.post("/v1/erp/vouchers", json=voucher(erp), headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["status"] == "posted"
    assert out["document_number"]
    assert out["total"] == "12000.00"
    read = (await api.http.get(f"/v1/erp/vouchers/{out['id']}", headers=api.headers())).json()
    assert read["document_number"] == out["document_number"]


@pytest.mark.parametrize("erp", sorted(ERPS))
async def test_a_voucher_on_an_unknown_account_is_refused_with_the_erps_code(api, erp):
    body = voucher(erp)
    body["lines"][0]["account"] = "999999"
    r = await api.http.post("/v1/erp/vouchers", json=body, headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "upstream_rejected"
    assert problem["upstream"]["code"] and problem["upstream"]["message"]
    stored = (await api.http.get(f"/v1/erp/vouchers/{problem['voucher_id']}", headers=api.headers())).json()
    assert stored["status"] == "rejected"


BAD_VOUCHERS = [
    ({"lines": [{"account": "660201", "debit": "100.00"}, {"account": "100201", "credit": "99.99"}]},
     "voucher_unbalanced"),
    ({"lines": [{"account": "660201", "debit": "100.00", "credit": "100.00"}, {"account": "100201", "credit": "0"}]},
     "invalid_voucher_line"),
    ({"lines": [{"account": "660201", "debit": "100.001"}, {"account": "100201", "credit": "100.001"}]},
     "invalid_amount"),
    ({"lines": [{"account": "660201", "debit": "-100.00"}, {"account": "100201", "credit": "-100.00"}]},
     "invalid_amount"),
    ({"erp": "no-such-erp"}, "unknown_erp"),
    ({"erp": "sandbox-bank-a"}, "unknown_erp"),
]


@pytest.mark.parametrize("changes, code", BAD_VOUCHERS)
async def test_bad_vouchers_are_refused_before_the_erp_is_called(api, changes, code):
    server = api.finance["sandbox-erp-sap"].server
    before = len(server.requests)
    r = await api.http.post("/v1/erp/vouchers", json={**voucher("sandbox-erp-sap"), **changes},
                            headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 422, r.text
    assert r.json()["code"] == code
    assert len(server.requests) == before
    assert await api.rows(sa.select(erp_vouchers.c.id)) == []


async def test_an_unknown_cost_centre_is_refused_and_nothing_is_requested(api):
    r = await api.http.post("/v1/erp/approvals", json=approval("sandbox-erp-sap", cost_center="CC-NOPE"),
                            headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 404, r.text
    assert r.json()["code"] == "not_found"
    assert await api.rows(sa.select(erp_approvals.c.id)) == []
    budget = await api.http.get("/v1/erp/budgets/CC-NOPE", params={"period": "2024-09", "erp": "sandbox-erp-sap"},
                                headers=api.headers())
    assert budget.status_code == 404
    which = await api.http.get("/v1/erp/budgets/CC-HR-CS", params={"period": "2024-09"}, headers=api.headers())
    assert which.status_code == 422 and which.json()["code"] == "unknown_erp"
