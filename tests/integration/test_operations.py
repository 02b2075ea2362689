"""Health, readiness, OpenAPI, the adapter list, the audit log, generic bad input."""

from __future__ import annotations

import pytest

from mocks import Fault
from tests.conftest import WANG_FANG

SEARCH = "/v1/social-security/participation-searches"


async def test_health_and_readiness(api):
    assert (await api.http.get("/healthz")).json() == {"status": "ok"}
    ready = (await api.http.get("/readyz")).json()
    from gateway.store import head_revision

    assert ready["status"] == "ready" and ready["migration"] == head_revision()


async def test_openapi_documents_the_contract(api):
    doc = (await api.http.get("/schema/openapi.json")).json()
    enrol = doc["paths"]["/v1/social-security/enrolments"]["post"]
    params = {p["name"]: p for p in enrol["parameters"]}
    assert params["Idempotency-Key"]["in"] == "header" and params["Idempotency-Key"]["required"] is True
    assert "24 hours" in params["Idempotency-Key"]["description"]
    assert "/v1/social-security/participation-searches" in doc["paths"]
    assert doc["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    ui = await api.http.get("/schema")
    assert ui.status_code == 200 and "html" in ui.headers["content-type"]


async def test_adapters_are_listed_with_live_health(api):
    r = await api.http.get("/v1/adapters", headers=api.headers())
    assert r.status_code == 200
    adapters = {a["name"]: a for a in r.json()}
    assert set(adapters) == {f"bureau-{r}" for r in ("330100", "420100", "430100", "440100", "440300")} | {
        "sandbox-bank-a", "sandbox-bank-b", "sandbox-erp-sap", "sandbox-erp-kingdee"}
    assert (adapters["sandbox-bank-a"]["kind"], adapters["sandbox-bank-a"]["dialect"]) == ("bank", "iso20022")
    assert adapters["sandbox-bank-a"]["regions"] == []
    assert {"payment_initiation", "payment_status", "statements"} <= set(adapters["sandbox-bank-a"]["capabilities"])
    assert (adapters["sandbox-erp-kingdee"]["kind"], adapters["sandbox-erp-kingdee"]["dialect"]) == ("erp", "kingdee")
    assert adapters["bureau-430100"]["dialect"] == "sm4-async"
    assert adapters["bureau-420100"]["dialect"] == "xml-gbk"
    assert "contribution_history" in adapters["bureau-420100"]["capabilities"]
    gz = adapters["bureau-440100"]
    assert gz["kind"] == "social_security" and gz["dialect"] == "json-hmac" and gz["regions"] == ["440100"]
    assert gz["environment"] == "sandbox" and gz["version"]
    assert set(gz["capabilities"]) >= {"participation_search", "enrolment"}
    assert gz["health"]["circuit"] == "closed" and gz["health"]["last_error"] is None


@pytest.mark.upstream_options(policy={"circuit": {"failure_threshold": 2, "reset_timeout": 60}, "retry": {"max_attempts": 1}})
async def test_circuit_opens_and_shows_in_health(api):
    api.bureaus["440300"].faults.add(Fault(route="*", kind="error", status=503))
    for _ in range(2):
        await api.http.post(SEARCH, json={**WANG_FANG, "regions": ["440300"]}, headers=api.headers())
    calls_before = api.bureaus["440300"].count()
    r = await api.http.post(SEARCH, json={**WANG_FANG, "regions": ["440300"]}, headers=api.headers())
    assert r.json()["regions"][0]["outcome"] == "unavailable"
    assert api.bureaus["440300"].count() == calls_before  # the open circuit spared the bureau
    health = {a["name"]: a["health"] for a in (await api.http.get("/v1/adapters", headers=api.headers())).json()}
    assert health["bureau-440300"]["circuit"] == "open"
    assert health["bureau-440300"]["last_error"]


async def test_audit_log_records_every_upstream_call(api):
    reader = await api.new_client("social_security:read")
    r = await api.http.post(SEARCH, json=WANG_FANG, headers=api.headers(reader["api_key"], **{"X-Request-ID": "trace-123"}))
    assert r.headers["x-request-id"] == "trace-123"
    events = (await api.http.get("/v1/audit-events", params={"client_id": reader["client_id"]}, headers=api.headers())).json()
    assert {(e["operation"], e["region"]) for e in events} == {
        ("session.login", "420100"),  # the xml-gbk bureau's session is opened on first use
        *{("participation.search", r) for r in ("330100", "420100", "430100", "440100", "440300")},
    }
    for event in events:
        assert event["upstream_status"] == 200 and event["outcome"] == "ok" and event["attempts"] == 1
        assert event["request_id"] == "trace-123" and event["environment"] == "sandbox"
        assert event["latency_ms"] > 0
    # the bureau saw the same request id
    seen = [rec.request_id for rec in api.bureaus["440100"].requests if rec.path == "/api/v1/insured/query"]
    assert seen == ["trace-123"]
    limited = await api.http.get("/v1/audit-events", params={"limit": 1}, headers=api.headers())
    assert len(limited.json()) == 1
    bad = await api.http.get("/v1/audit-events", params={"limit": 0}, headers=api.headers())
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_field"


async def test_oversized_body_is_refused(api):
    r = await api.http.post(SEARCH, content=b"{" + b" " * 2_000_000 + b"}", headers=api.headers(**{"Content-Type": "application/json"}))
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    assert r.json()["limit_bytes"] == api.settings.max_body_bytes


async def test_unknown_route_and_method(api):
    r = await api.http.get("/v1/nothing-here", headers=api.headers())
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = await api.http.delete(SEARCH, headers=api.headers())
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"


async def test_non_json_body_is_unsupported(api):
    r = await api.http.post(SEARCH, content=b"id_number=1", headers=api.headers(**{"Content-Type": "application/x-www-form-urlencoded"}))
    assert r.status_code == 415 and r.json()["code"] == "unsupported_media_type"


async def test_problem_documents_follow_rfc9457(api):
    r = await api.http.post(SEARCH, json={"id_number": "440104199003120214", "name": "x"}, headers=api.headers())
    problem = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert problem["type"].endswith("/invalid_id_number")
    assert problem["status"] == 422 and problem["title"] and problem["instance"] == SEARCH
    assert problem["field"] == "id_number"


async def test_sandbox_and_live_never_see_each_other(database_url, bureaus, tmp_path):
    from litestar.testing import AsyncTestClient

    from gateway.app import create_app
    from gateway.config import UpstreamSettings, sandbox_settings
    from tests.conftest import create_client, credentials_of, upstreams_for

    live = tuple(
        UpstreamSettings(f"live-{region}", server.dialect, server.base_url, (region,), credentials_of(server))
        for region, server in bureaus.items()
    )
    settings = sandbox_settings(tmp_path / "data", database_url=database_url, upstreams=live, api_key_cache_seconds=0,
                                audit_flush_seconds=0.05)
    sandbox_admin = (await create_client(settings, "admin"))["api_key"]
    live_admin = (await create_client(settings, "admin", sandbox=False))["api_key"]
    app = create_app(settings, sandbox_upstreams=upstreams_for(bureaus))
    async with AsyncTestClient(app=app, timeout=30) as http:
        def auth(key):
            return {"Authorization": f"Bearer {key}"}

        r = await http.post(SEARCH, json=WANG_FANG, headers=auth(live_admin))
        assert r.status_code == 200 and {o["upstream"] for o in r.json()["regions"]} == {
            f"live-{r}" for r in ("330100", "420100", "430100", "440100", "440300")
        }

        sandbox_view = (await http.get("/v1/adapters", headers=auth(sandbox_admin))).json()
        live_view = (await http.get("/v1/adapters", headers=auth(live_admin))).json()
        assert {a["environment"] for a in sandbox_view} == {"sandbox"}
        assert {a["environment"] for a in live_view} == {"live"}

        assert (await http.get("/v1/audit-events", headers=auth(sandbox_admin))).json() == []
        live_events = (await http.get("/v1/audit-events", headers=auth(live_admin))).json()
        assert {e["operation"] for e in live_events} == {"session.login", "participation.search"}
        assert len(live_events) == 6 and {e["environment"] for e in live_events} == {"live"}


async def test_a_request_id_shaped_like_an_id_number_is_replaced(api):
    r = await api.http.post(SEARCH, json=WANG_FANG, headers=api.headers(**{"X-Request-ID": "440104199003120213"}))
    assert r.status_code == 200
    assert r.headers["x-request-id"].startswith("req_")
    assert all(rec.request_id == r.headers["x-request-id"] for rec in api.bureaus["440100"].requests)
