"""Webhooks end to end: endpoints over the API, events published in the app's own
transactions, delivered by the app's dispatcher to a real receiver on loopback."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.encryption import FieldCipher, Keyring
from gateway.store import create_engine, upgrade
from gateway.store.tables import webhook_deliveries
from gateway.webhooks import Dispatcher, RetrySchedule, WebhookService, verify
from tests.conftest import create_client
from tests.receivers import Receiver, wait_for

ENDPOINTS = "/v1/webhook-endpoints"
FAST = dict(webhook_retry_schedule=(0.2, 0.4, 0.8), webhook_max_attempts=40, webhook_retry_jitter=0.1,
            webhook_poll_seconds=0.2, webhook_timeout_seconds=5.0)
pytestmark = pytest.mark.gateway_settings(**FAST)


async def publish(api: Any, type: str, data: dict[str, Any], *, client_id: str | None = None,
                  environment: str = "sandbox") -> str:
    """Publish as a domain service would: in a transaction of the app's own engine,
    on the app's own loop (the test client's portal), then notify."""
    gateway = api.gateway
    owner = client_id or api.issued["client_id"]

    async def in_app() -> str:
        async with gateway.engine.begin() as conn:
            event_id = await gateway.webhooks.publish(
                conn, client_id=owner, environment=environment, type=type, data=data
            )
        gateway.webhooks.notify()
        return event_id

    return await asyncio.to_thread(api.http.blocking_portal.call, in_app)


async def create_endpoint(api: Any, url: str, events: list[str] | None = None, key: str | None = None) -> dict[str, Any]:
    r = await api.http.post(ENDPOINTS, json={"url": url, "events": events or ["*"]}, headers=api.headers(key))
    assert r.status_code == 201, r.text
    return r.json()


async def deliveries(api: Any, endpoint_id: str, key: str | None = None, **params: Any) -> dict[str, Any]:
    r = await api.http.get(f"{ENDPOINTS}/{endpoint_id}/deliveries", params=params, headers=api.headers(key))
    assert r.status_code == 200, r.text
    return r.json()


async def test_endpoint_lifecycle_and_the_secret_is_shown_once(api, receiver):
    created = await create_endpoint(api, receiver.url, ["transfer.*", "enrolment.accepted"])
    assert created["id"].startswith("we_") and created["secret"].startswith("whsec_")
    assert created["events"] == ["transfer.*", "enrolment.accepted"] and created["environment"] == "sandbox"

    listed = (await api.http.get(ENDPOINTS, headers=api.headers())).json()
    assert [e["id"] for e in listed] == [created["id"]] and "secret" not in listed[0]
    one = await api.http.get(f"{ENDPOINTS}/{created['id']}", headers=api.headers())
    assert one.status_code == 200 and "secret" not in one.json()
    rows = await api.rows(sa.text("SELECT secret_enc FROM webhook_endpoints"))
    assert created["secret"] not in rows[0][0]

    gone = await api.http.delete(f"{ENDPOINTS}/{created['id']}", headers=api.headers())
    assert gone.status_code == 204
    assert (await api.http.get(f"{ENDPOINTS}/{created['id']}", headers=api.headers())).status_code == 404
    assert (await api.http.delete(f"{ENDPOINTS}/{created['id']}", headers=api.headers())).status_code == 404
    assert (await api.http.get(ENDPOINTS, headers=api.headers())).json() == []


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"url": "ftp://example.com/x", "events": ["*"]}, 422, "invalid_webhook_url"),
        ({"url": "https://user:pw@example.com/x", "events": ["*"]}, 422, "invalid_webhook_url"),
        ({"url": "https://example.com/" + "a" * 1990, "events": ["*"]}, 400, "invalid_field"),
        ({"url": "https://example.com/x", "events": []}, 422, "no_event_types"),
        ({"url": "https://example.com/x", "events": ["transfer.completed", "transfer.finished"]}, 422, "unknown_event_type"),
        ({"url": "https://example.com/x"}, 400, "missing_field"),
        ({"url": "https://example.com/x", "events": ["*"], "secret": "mine"}, 400, "unknown_field"),
    ],
)
async def test_bad_endpoints_are_refused_with_stable_codes(api, body, status, code):
    r = await api.http.post(ENDPOINTS, json=body, headers=api.headers())
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code
    if code == "unknown_event_type":
        assert r.json()["event_type"] == "transfer.finished" and "transfer.finished" in r.json()["detail"]


async def test_a_key_without_the_scope_is_refused(api):
    reader = await api.new_client("social_security:read")
    r = await api.http.get(ENDPOINTS, headers=api.headers(reader["api_key"]))
    assert r.status_code == 403 and r.json()["required_scope"] == "webhooks:manage"


async def test_delivery_is_signed_with_the_secret_returned_at_creation(api, receiver):
    endpoint = await create_endpoint(api, receiver.url, ["transfer.*"])
    data = {"transfer_id": "trf_1", "status": "completed", "employee": {"id_number_masked": "4401**********0213"}}
    event_id = await publish(api, "transfer.completed", data)
    await publish(api, "enrolment.accepted", {"enrolment_id": "enr_1"})  # not subscribed

    [request] = await wait_for(receiver.delivered, what="the delivery")
    headers, body = request["headers"], request["body"]
    assert verify(endpoint["secret"], body, headers["Hgw-Signature"])
    payload = json.loads(body)
    assert payload["id"] == event_id and payload["type"] == "transfer.completed"
    assert payload["environment"] == "sandbox" and payload["data"] == data and payload["created"].endswith("Z")
    assert headers["Content-Type"] == "application/json"
    assert headers["Hgw-Event-Id"] == event_id and headers["Hgw-Event-Type"] == "transfer.completed"
    assert headers["User-Agent"].startswith("hr-gateway-webhooks/")

    page = await wait_for(
        lambda: _delivered_page(api, endpoint["id"]), what="the delivery recorded as delivered"
    )
    [delivery] = page["data"]
    assert headers["Hgw-Delivery-Id"] == delivery["id"]
    assert delivery["event_id"] == event_id and delivery["attempts"] == 1 and delivery["last_status_code"] == 204
    await asyncio.sleep(0.5)
    assert len(receiver.requests) == 1  # the unsubscribed event went nowhere


async def _delivered_page(api: Any, endpoint_id: str) -> dict[str, Any] | None:
    page = await deliveries(api, endpoint_id)
    return page if page["data"] and all(d["status"] == "delivered" for d in page["data"]) else None


async def test_a_receiver_answering_500_twice_gets_the_event_on_the_third_attempt(api, receiver):
    endpoint = await create_endpoint(api, receiver.url)
    receiver.fail_next = 2
    await publish(api, "declaration.accepted", {"declaration_id": "dcl_1"})

    page = await wait_for(lambda: _delivered_page(api, endpoint["id"]), what="delivery after two failures")
    [delivery] = page["data"]
    assert delivery["attempts"] == 3 and delivery["next_attempt_at"] is None and delivery["delivered_at"]
    assert [r["answered"] for r in receiver.requests] == [500, 500, 204]
    assert len({r["headers"]["Hgw-Signature"] for r in receiver.requests}) >= 1
    assert len({r["headers"]["Hgw-Event-Id"] for r in receiver.requests}) == 1

    detail = (await api.http.get(f"/v1/webhook-deliveries/{delivery['id']}", headers=api.headers())).json()
    assert [(a["status_code"], a["error"]) for a in detail["attempt_log"]] == [(500, "HTTP 500"), (500, "HTTP 500"), (204, None)]
    assert all(a["latency_ms"] >= 0 and a["at"] for a in detail["attempt_log"])


async def test_an_event_published_while_the_receiver_is_down_arrives_when_it_is_back(api, receiver):
    endpoint = await create_endpoint(api, receiver.url)
    receiver.stop()
    event_id = await publish(api, "transfer.submitted", {"transfer_id": "trf_2"})

    async def failed_once() -> bool:
        [d] = (await deliveries(api, endpoint["id"]))["data"]
        return d["attempts"] >= 1 and d["status"] == "pending"

    await wait_for(failed_once, what="a failed attempt while the receiver is down")
    [pending] = (await deliveries(api, endpoint["id"]))["data"]
    assert pending["last_status_code"] is None and pending["last_error"] and pending["next_attempt_at"]

    receiver.start()
    [request] = await wait_for(receiver.delivered, what="the delivery after the receiver came back")
    assert json.loads(request["body"])["id"] == event_id
    await wait_for(lambda: _delivered_page(api, endpoint["id"]), what="the delivery recorded")


async def test_a_deleted_endpoint_gets_nothing(api, receiver):
    other = Receiver().start()
    try:
        doomed = await create_endpoint(api, other.url)
        await create_endpoint(api, receiver.url)  # kept: still gets later events
        # A delivery already pending when the endpoint is deleted is not attempted any more.
        other.stop()
        await publish(api, "termination.accepted", {"termination_id": "trm_1"})
        await wait_for(receiver.delivered, what="the kept endpoint's delivery")
        assert (await api.http.delete(f"{ENDPOINTS}/{doomed['id']}", headers=api.headers())).status_code == 204
        other.start()
        await publish(api, "termination.rejected", {"termination_id": "trm_2"})
        await wait_for(lambda: len(receiver.delivered()) == 2, what="the second delivery")
        await asyncio.sleep(1.5)  # several retry periods of the fast schedule
        assert other.requests == []
        rows = await api.rows(
            sa.select(webhook_deliveries.c.status, webhook_deliveries.c.last_error)
            .where(webhook_deliveries.c.endpoint_id == doomed["id"])
        )
        assert rows == [("failed", "endpoint deleted")]
    finally:
        other.stop()


async def test_another_clients_endpoints_and_deliveries_are_invisible(api, receiver):
    mine = await create_endpoint(api, receiver.url)
    other = await api.new_client("webhooks:manage")
    theirs_receiver = Receiver().start()
    try:
        theirs = await create_endpoint(api, theirs_receiver.url, key=other["api_key"])
        await publish(api, "enrolment.accepted", {"enrolment_id": "enr_9"})
        await wait_for(lambda: _delivered_page(api, mine["id"]), what="my delivery")
        delivery_id = (await deliveries(api, mine["id"]))["data"][0]["id"]

        key = other["api_key"]
        assert [e["id"] for e in (await api.http.get(ENDPOINTS, headers=api.headers(key))).json()] == [theirs["id"]]
        for path in (f"{ENDPOINTS}/{mine['id']}", f"{ENDPOINTS}/{mine['id']}/deliveries", f"/v1/webhook-deliveries/{delivery_id}"):
            r = await api.http.get(path, headers=api.headers(key))
            assert r.status_code == 404 and r.json()["code"] == "not_found", path
        assert (await api.http.delete(f"{ENDPOINTS}/{mine['id']}", headers=api.headers(key))).status_code == 404
        assert theirs_receiver.requests == []  # my event is not theirs
    finally:
        theirs_receiver.stop()


async def test_deliveries_are_paged_newest_first(api, receiver):
    endpoint = await create_endpoint(api, receiver.url, ["enrolment.accepted"])
    ids = [await publish(api, "enrolment.accepted", {"n": n}) for n in range(5)]
    first = await deliveries(api, endpoint["id"], limit=2)
    assert [d["event_id"] for d in first["data"]] == ids[::-1][:2] and first["has_more"] is True
    rest = await deliveries(api, endpoint["id"], limit=10, before=first["data"][-1]["id"])
    assert [d["event_id"] for d in rest["data"]] == ids[::-1][2:] and rest["has_more"] is False
    assert all(d["event_type"] == "enrolment.accepted" for d in first["data"] + rest["data"])


async def test_publishing_a_plaintext_id_number_is_refused(api, receiver):
    await create_endpoint(api, receiver.url)
    with pytest.raises(ValueError, match="plaintext"):
        await publish(api, "enrolment.accepted", {"id_number": "440104199003120213"})


# -- two dispatchers (two replicas) over one database ---------------------------------------


@pytest.fixture
async def store(database_url: str, tmp_path: Any) -> Any:
    """An engine of the test's own loop (no app), with a client owning an endpoint."""
    from gateway.config import sandbox_settings

    settings = sandbox_settings(tmp_path / "data", database_url=database_url)
    issued = await create_client(settings, "webhooks:manage")
    engine = create_engine(database_url)
    await upgrade(engine)
    cipher = FieldCipher(Keyring.load(settings.keyring_file))
    try:
        yield engine, cipher, issued
    finally:
        await engine.dispose()


async def _setup_endpoint(engine: Any, cipher: Any, issued: dict[str, Any], url: str) -> WebhookService:
    from gateway.auth import ClientStore
    from gateway.webhooks import EndpointIn

    service = WebhookService(engine, cipher)
    client = await ClientStore(engine, cipher).authenticate(issued["api_key"])
    await service.create_endpoint(client, EndpointIn(url=url, events=["*"]))
    return service


async def test_two_claims_racing_for_one_delivery_get_it_once(store, receiver):
    engine, cipher, issued = store
    service = await _setup_endpoint(engine, cipher, issued, receiver.url)
    async with engine.begin() as conn:
        await service.publish(conn, client_id=issued["client_id"], environment="sandbox", type="transfer.completed", data={})
    a, b = Dispatcher(engine, cipher), Dispatcher(engine, cipher)
    claims = await asyncio.gather(a.claim(10), b.claim(10), a.claim(10), b.claim(10))
    assert sum(len(c) for c in claims) == 1


async def test_two_dispatchers_deliver_every_event_exactly_once(store, receiver):
    engine, cipher, issued = store
    service = await _setup_endpoint(engine, cipher, issued, receiver.url)
    schedule = RetrySchedule((0.2,), max_attempts=20, jitter=0.1)
    dispatchers = [Dispatcher(engine, cipher, schedule=schedule, poll_seconds=0.05, concurrency=4) for _ in range(2)]
    runs = [asyncio.create_task(d.run()) for d in dispatchers]
    try:
        event_ids = []
        for n in range(20):
            async with engine.begin() as conn:
                event_ids.append(await service.publish(
                    conn, client_id=issued["client_id"], environment="sandbox", type="declaration.submitted", data={"n": n}
                ))
            for d in dispatchers:
                d.notify()
        await wait_for(lambda: len(receiver.delivered()) >= 20, what="20 deliveries")
        await asyncio.sleep(0.5)
        received = [r["headers"]["Hgw-Event-Id"] for r in receiver.requests]
        assert sorted(received) == sorted(event_ids)  # each once, none twice
    finally:
        for d in dispatchers:
            d.stop()
        await asyncio.gather(*runs)
    async with engine.connect() as conn:
        statuses = (await conn.execute(sa.select(webhook_deliveries.c.status, webhook_deliveries.c.attempts))).all()
    assert statuses == [("delivered", 1)] * 20


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", ENDPOINTS + "/we_%00"),
        ("DELETE", ENDPOINTS + "/nonsense"),
        ("GET", ENDPOINTS + "/we_0123456789abcdef0123456789/deliveries"),
        ("GET", "/v1/webhook-deliveries/whd_%00x"),
    ],
)
async def test_odd_ids_are_not_found(api, method, path):
    r = await api.http.request(method, path, headers=api.headers())
    assert r.status_code == 404 and r.json()["code"] == "not_found"


async def test_odd_text_is_refused_not_stored(api, receiver):
    r = await api.http.post(ENDPOINTS, json={"url": receiver.url, "events": ["*"], "description": "a\x00b"}, headers=api.headers())
    assert r.status_code == 400 and r.json()["code"] == "invalid_field"
    endpoint = await create_endpoint(api, receiver.url)
    r = await api.http.get(f"{ENDPOINTS}/{endpoint['id']}/deliveries", params={"before": "x\x00"}, headers=api.headers())
    assert r.status_code == 400 and r.json()["code"] == "invalid_field"
