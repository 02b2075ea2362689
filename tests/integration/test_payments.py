"""Payments through both sandbox banks: statuses to settlement with a webhook for
each, the bank's refusals in canonical form, exactly one payment per request
whatever is lost on the way, every kind of bad input refused, and statements that
reconcile against the gateway's payments."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
import sqlalchemy as sa

from gateway.store import payments
from mocks.faults import Fault, FaultKind
from tests.receivers import wait_for

pytestmark = pytest.mark.gateway_settings(webhook_retry_schedule=(0.2, 0.5), webhook_poll_seconds=0.2)

PAYMENTS = "/v1/payments"
#: Per bank: the Changsha company's account there, an open creditor and a closed one.
BANKS = {
    "sandbox-bank-a": {
        "debtor": "43050188000012345678",
        "creditor": {"name": "李明", "account": "6217990000000000022", "bank_code": "999551000012"},
        "closed": {"name": "赵磊", "account": "6217990000000000048", "bank_code": "999551000012"},
        "initiation": "/h2h/v1/payments",
    },
    "sandbox-bank-b": {
        "debtor": "31310001000000000101",
        "creditor": {"name": "王芳", "account": "6222020200112233446", "bank_code": "102100099996"},
        "closed": {"name": "张三", "account": "6222000000000000012", "bank_code": "102100099996"},
        "initiation": "/open-banking/v3.1/pisp/domestic-payments",
    },
}


def key() -> str:
    return str(uuid.uuid4())


def payment(bank_name: str, **changes):
    known = BANKS.get(bank_name, BANKS["sandbox-bank-a"])
    body = {
        "bank": bank_name,
        "debtor_account": known["debtor"],
        "creditor": dict(known["creditor"]),
        "amount": "1234.56",
        "currency": "CNY",
        "purpose": "reimbursement",
        "reference": "Claim 2024-118",
    }
    body.update(changes)
    return body


async def settled(api, payment_id):
    async def check():
        out = (await api.http.get(f"{PAYMENTS}/{payment_id}", headers=api.headers())).json()
        return out if out["status"] in ("settled", "rejected") else None

    return await wait_for(check, what="a final payment status")


def bank_payments(api, bank, reference):
    server = api.finance[bank].server
    if bank == "sandbox-bank-a":
        return [p for p in server.payments() if p.transfer.end_to_end_id == reference]
    return [p for p in server.payments() if p.initiation.end_to_end_id == reference]


@pytest.mark.parametrize("bank", sorted(BANKS))
async def test_a_payment_goes_to_settled_with_a_webhook_for_each_status(api, receiver, bank):
    hook = await api.http.post("/v1/webhook-endpoints", json={"url": receiver.url, "events": ["payment.*"]},
                               headers=api.headers())
    assert hook.status_code == 201, hook.text
    r = await api.http.post(PAYMENTS, json=payment(bank), headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 202, r.text
    created = r.json()
    assert created["status"] in ("submitted", "accepted")
    assert created["upstream_reference"].startswith("HGW-") and len(created["upstream_reference"]) <= 35
    # PII never comes back in full.
    assert created["creditor"]["account_masked"].endswith(BANKS[bank]["creditor"]["account"][-4:])
    assert BANKS[bank]["creditor"]["account"] not in r.text
    out = await settled(api, created["id"])
    assert out["status"] == "settled", out
    assert out["settled_on"]
    assert [e["stage"] for e in out["timeline"]] == ["pending", "submitted", "accepted", "settled"]
    assert len(bank_payments(api, bank, created["upstream_reference"])) == 1

    def events():
        got = [json.loads(d["body"]) for d in receiver.delivered()]
        return got if len(got) >= 3 else None

    got = await wait_for(events, what="a webhook per status")
    assert [e["type"] for e in got] == ["payment.submitted", "payment.accepted", "payment.settled"]
    assert all(e["data"]["payment"]["id"] == created["id"] for e in got)
    assert all(BANKS[bank]["creditor"]["account"] not in d["body"].decode() for d in receiver.delivered())


@pytest.mark.parametrize("bank", sorted(BANKS))
async def test_a_closed_creditor_account_is_rejected_with_the_banks_reason(api, bank):
    r = await api.http.post(PAYMENTS, json=payment(bank, creditor=BANKS[bank]["closed"]),
                            headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 202, r.text
    out = await settled(api, r.json()["id"])
    assert out["status"] == "rejected"
    assert out["rejection"]["reason"] == "account_closed"
    assert out["rejection"]["upstream_code"]
    assert out["rejection"]["upstream_message"]


@pytest.mark.parametrize("bank", sorted(BANKS))
async def test_an_answer_lost_after_the_bank_took_the_payment_never_makes_a_second_one(api, bank):
    server = api.finance[bank].server
    # The bank applies the initiation and the connection drops before the answer.
    server.faults.add(Fault(route=BANKS[bank]["initiation"], kind=FaultKind.DROP_AFTER, times=1))
    idem = key()
    r = await api.http.post(PAYMENTS, json=payment(bank), headers=api.headers(**{"Idempotency-Key": idem}))
    assert r.status_code == 202, r.text
    out = r.json()
    assert len(bank_payments(api, bank, out["upstream_reference"])) == 1
    # The client retries with the same key: the stored answer, still one payment.
    again = await api.http.post(PAYMENTS, json=payment(bank), headers=api.headers(**{"Idempotency-Key": idem}))
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == out["id"]
    final = await settled(api, out["id"])
    assert final["status"] == "settled"
    assert len(bank_payments(api, bank, out["upstream_reference"])) == 1
    initiations = [rec for rec in server.requests if rec.method == "POST" and rec.path == BANKS[bank]["initiation"]]
    assert len(initiations) == 1


async def test_payments_survive_a_bank_that_is_down_and_are_sent_once_it_is_back(api):
    bank = "sandbox-bank-b"
    server = api.finance[bank].server
    server.faults.add(Fault(route=BANKS[bank]["initiation"], kind=FaultKind.ERROR, status=503, times=20))
    r = await api.http.post(PAYMENTS, json=payment(bank), headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    server.faults.clear()
    out = await settled(api, r.json()["id"])
    assert out["status"] == "settled"
    assert len(bank_payments(api, bank, out["upstream_reference"])) == 1


BAD = [
    ({"currency": "USD"}, "unsupported_currency"),
    ({"amount": "10.001"}, "invalid_amount"),
    ({"amount": "-5.00"}, "invalid_amount"),
    ({"amount": "0"}, "invalid_amount"),
    ({"creditor": {"name": "李明", "account": "62179900000000000x", "bank_code": "999551000012"}},
     "invalid_account_number"),
    ({"creditor": {"name": "李明", "account": "6217990000000000023", "bank_code": "999551000012"}},
     "invalid_account_number"),
    ({"creditor": {"name": "李明", "account": "DE89370400440532013001", "bank_code": "999551000012"}},
     "invalid_account_number"),
    ({"creditor": {"name": "李明", "account": "6217990000000000022", "bank_code": "99955100001"}},
     "invalid_bank_code"),
    ({"bank": "no-such-bank"}, "unknown_bank"),
    ({"bank": "bureau-430100"}, "unknown_bank"),
    ({"debtor_account": "11112222333344445555"}, "unknown_debtor_account"),
    ({"purpose": "salary"}, "invalid_field"),
]


@pytest.mark.parametrize("changes, code", BAD)
async def test_bad_payments_are_refused_before_any_bank_is_called(api, changes, code):
    server = api.finance["sandbox-bank-a"].server
    before = len(server.requests)
    r = await api.http.post(PAYMENTS, json=payment("sandbox-bank-a", **changes),
                            headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code in (400, 422), r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code
    assert len(server.requests) == before
    assert await api.rows(sa.select(payments.c.id)) == []


async def test_a_key_replayed_with_another_body_is_refused_and_pays_nothing_more(api):
    idem = key()
    first = await api.http.post(PAYMENTS, json=payment("sandbox-bank-a"), headers=api.headers(**{"Idempotency-Key": idem}))
    assert first.status_code == 202
    other = await api.http.post(PAYMENTS, json=payment("sandbox-bank-a", amount="99.00"),
                                headers=api.headers(**{"Idempotency-Key": idem}))
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert len(await api.rows(sa.select(payments.c.id))) == 1
    missing = await api.http.post(PAYMENTS, json=payment("sandbox-bank-a"), headers=api.headers())
    assert missing.status_code == 400
    assert missing.json()["code"] == "idempotency_key_missing"


async def test_accounts_are_listed_by_opaque_id_and_statements_reconcile_with_payments(api):
    accounts = (await api.http.get("/v1/accounts", headers=api.headers())).json()
    by_number_tail = {(a["bank"], a["account_masked"][-4:]): a for a in accounts}
    account = by_number_tail[("sandbox-bank-a", "5678")]
    assert account["statements"] is True
    assert "43050188000012345678" not in json.dumps(accounts)
    r = await api.http.post(PAYMENTS, json=payment("sandbox-bank-a"), headers=api.headers(**{"Idempotency-Key": key()}))
    paid = await settled(api, r.json()["id"])
    assert paid["status"] == "settled"
    today = dt.date.today()
    statement = await api.http.get(
        f"/v1/accounts/{account['id']}/statements",
        params={"from": (today - dt.timedelta(days=400 - 40)).isoformat(), "to": today.isoformat()},
        headers=api.headers(),
    )
    assert statement.status_code == 200, statement.text
    body = statement.json()
    assert body["entries"], body
    ours = [e for e in body["entries"] if e["payment_id"] == paid["id"]]
    assert len(ours) == 1
    assert ours[0]["direction"] == "debit"
    assert ours[0]["amount"] == "1234.56"
    assert body["reconciled"] >= 1 and body["unreconciled"] == len(body["entries"]) - body["reconciled"]
    reversed_range = await api.http.get(f"/v1/accounts/{account['id']}/statements",
                                        params={"from": today.isoformat(), "to": "2024-01-01"}, headers=api.headers())
    assert reversed_range.status_code == 422
    assert reversed_range.json()["code"] == "invalid_date_range"
    unknown = await api.http.get("/v1/accounts/acc_nope/statements",
                                 params={"from": "2024-01-01", "to": "2024-01-31"}, headers=api.headers())
    assert unknown.status_code == 404
