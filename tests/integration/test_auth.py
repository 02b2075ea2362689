"""API keys, scopes and environments."""

from __future__ import annotations

import pytest

from gateway.cli import _with_store
from tests.conftest import WANG_FANG

SEARCH = "/v1/social-security/participation-searches"


async def test_public_endpoints_need_no_key(api):
    for path in ("/healthz", "/readyz", "/.well-known/jwks.json", "/schema/openapi.json"):
        r = await api.http.get(path)
        assert r.status_code == 200, (path, r.text)


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "missing_api_key"),
        ("Basic dXNlcjpwYXNz", "invalid_api_key"),
        ("Bearer ", "invalid_api_key"),
        ("Bearer not-a-gateway-key", "invalid_api_key"),
        ("Bearer hgw_test_" + "A" * 43, "invalid_api_key"),
        ("Bearer hgw_live_" + "x" * 500, "invalid_api_key"),
    ],
)
async def test_bad_credentials(api, authorization, code):
    headers = {"Authorization": authorization} if authorization is not None else {}
    r = await api.http.post(SEARCH, json=WANG_FANG, headers=headers)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["code"] == code
    assert sum(b.count() for b in api.bureaus.values()) == 0


async def test_revoked_key_is_refused(api):
    issued = await api.new_client("social_security:read")
    ok = await api.http.post(SEARCH, json=WANG_FANG, headers=api.headers(issued["api_key"]))
    assert ok.status_code == 200
    assert await _with_store(api.settings, lambda store: store.revoke(issued["client_id"]))
    r = await api.http.post(SEARCH, json=WANG_FANG, headers=api.headers(issued["api_key"]))
    assert r.status_code == 401 and r.json()["code"] == "revoked_api_key"


async def test_missing_scope_is_forbidden_and_leaves_nothing(api):
    reader = await api.new_client("social_security:read")
    r = await api.http.post(
        "/v1/social-security/enrolments", json={}, headers=api.headers(reader["api_key"], **{"Idempotency-Key": "k-1"})
    )
    assert r.status_code == 403
    assert r.json()["code"] == "insufficient_scope"
    assert r.json()["required_scope"] == "social_security:submit"
    audit = await api.http.get("/v1/audit-events", headers=api.headers(reader["api_key"]))
    assert audit.status_code == 403


async def test_live_key_cannot_reach_a_sandbox_only_gateway(api):
    live = await api.new_client("social_security:read", sandbox=False)
    assert live["api_key"].startswith("hgw_live_")
    r = await api.http.post(SEARCH, json=WANG_FANG, headers=api.headers(live["api_key"]))
    assert r.status_code == 403 and r.json()["code"] == "environment_unavailable"
    assert sum(b.count() for b in api.bureaus.values()) == 0


async def test_keys_are_stored_hashed(api):
    import sqlalchemy as sa

    from gateway.store import clients

    rows = await api.rows(sa.select(clients))
    assert rows
    for row in rows:
        assert api.key not in " ".join(str(v) for v in row)
        assert len(row.key_hash) == 64
