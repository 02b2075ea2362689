"""The policy catalogue through the API, on SQLite and PostgreSQL: regions, the
version in force, calculations, admin-added versions (in force at once, on every
replica), idempotency, and every bad input refused with its own code."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import uuid
from decimal import Decimal

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.errors import ProblemError
from gateway.policy import PolicyCatalogue, PolicyTerms
from gateway.store import create_engine, idempotency_records
from gateway.store.tables import policy_versions
from tests.conftest import upstreams_for

REGIONS = "/v1/social-security/regions"
CALC = "/v1/social-security/contribution-calculations"
CHANGSHA_POLICY = f"{REGIONS}/430100/policy"
CHANGSHA_POLICIES = f"{REGIONS}/430100/policies"

VERSION_2027 = {
    "effective_from": "2027-01-01",
    "base_floor": "3800.00",
    "base_ceiling": "19000.00",
    "rates": {
        "pension": {"employer": "0.15", "employee": "0.08"},
        "medical": {"employer": "0.08", "employee": "0.02"},
        "unemployment": {"employer": "0.007", "employee": "0.003"},
        "work_injury": {"employer": "0.004", "employee": "0"},
        "maternity": {"employer": "0", "employee": "0"},
    },
    "rounding": {"places": 2, "mode": "half_up"},
    "proration": {"cutoff_day": 15, "on_or_before": "1", "after": "0.5"},
    "source": "Hunan notice 2027-01 (test): employer pension cut to 15%",
}


def key() -> str:
    return str(uuid.uuid4())


def version(**changes):
    body = copy.deepcopy(VERSION_2027)
    body.update(changes)
    return body


async def add(api, body, *, idem=None, region="430100", api_key=None):
    return await api.http.post(
        f"{REGIONS}/{region}/policies", json=body, headers=api.headers(api_key, **{"Idempotency-Key": idem or key()})
    )


async def calc(api, http=None, **body):
    return await (http or api.http).post(CALC, json=body, headers=api.headers())


async def test_regions_list_policies_and_bureaus(api):
    r = await api.http.get(REGIONS, headers=api.headers())
    assert r.status_code == 200, r.text
    regions = {region["code"]: region for region in r.json()}
    assert list(regions) == sorted({"330100", "420100", "430100", "440100", "440300"} | set(api.bureaus))
    assert regions["430100"] == {
        "code": "430100",
        "name": {"zh": "长沙市", "en": "Changsha"},
        "bureau": "430100" in api.bureaus,
        "policies": {"versions": 3, "effective_from": "2023-01-01", "in_force_until": None, "sample_data": True},
    }
    assert {code for code, region in regions.items() if region["bureau"]} == set(api.bureaus)  # the fixture's mocks
    assert regions["440300"]["name"] == {"zh": "深圳市", "en": "Shenzhen"}


async def test_policy_in_force_on_a_date(api):
    r = await api.http.get(CHANGSHA_POLICY, params={"on": "2024-06-15"}, headers=api.headers())
    assert r.status_code == 200, r.text
    policy = r.json()
    assert (policy["region"], policy["version"], policy["origin"]) == ("430100", 2, "shipped")
    assert (policy["effective_from"], policy["effective_to"], policy["in_force_until"]) == ("2024-01-01", "2024-12-31", "2024-12-31")
    assert (policy["base_floor"], policy["base_ceiling"]) == ("3604.00", "18021.00")
    assert policy["rates"]["pension"] == {"employer": "0.16", "employee": "0.08"}
    assert policy["sample_data"] is True and "3,604-18,021" in policy["source"]
    assert policy["created_by"] is None and policy["created_at"] is None

    today = await api.http.get(CHANGSHA_POLICY, headers=api.headers())
    assert today.status_code == 200 and today.json()["version"] == 3  # the last version is open-ended


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        (CHANGSHA_POLICY, {"on": "2022-12-31"}, 404, "no_policy"),
        (f"{REGIONS}/110100/policy", {}, 404, "no_policy"),
        (f"{REGIONS}/4301/policy", {}, 400, "invalid_field"),
        (f"{REGIONS}/abcdef/policy", {}, 400, "invalid_field"),
        (CHANGSHA_POLICY, {"on": "2024-13-01"}, 400, "invalid_field"),
        (CHANGSHA_POLICY, {"on": "1990-01-01"}, 422, "invalid_date"),
    ],
)
async def test_policy_lookups_that_find_nothing(api, path, params, status, code):
    r = await api.http.get(path, params=params, headers=api.headers())
    assert r.status_code == status, r.text
    assert r.json()["code"] == code


async def test_changsha_2024_calculation(api):
    r = await calc(api, region="430100", period="2024-08", salary="25000")
    assert r.status_code == 200, r.text
    result = r.json()
    assert (result["salary"], result["base"], result["clamped"], result["month_share"]) == ("25000.00", "18021.00", "ceiling", "1")
    assert result["contributions"]["pension"] == {
        "employer_rate": "0.16", "employee_rate": "0.08", "employer": "2883.36", "employee": "1441.68"
    }
    assert result["contributions"]["unemployment"]["employer"] == "126.15"
    assert result["totals"] == {"employer": "4523.27", "employee": "1856.16", "total": "6379.43"}
    assert result["policy"]["version"] == 2 and result["policy"]["sample_data"] is True

    half = (await calc(api, region="430100", period="2024-08", salary="3000", hire_date="2024-08-20")).json()
    assert (half["base"], half["clamped"], half["month_share"]) == ("3604.00", "floor", "0.5")
    assert half["totals"] == {"employer": "452.30", "employee": "185.61", "total": "637.91"}

    with_base = (await calc(api, region="430100", period="2024-08", base="10000.00")).json()
    assert (with_base["salary"], with_base["base"], with_base["totals"]["total"]) == (None, "10000.00", "3540.00")


async def test_an_added_version_is_in_force_at_once_on_every_replica(api):
    # A second replica on the same database, running before the version is added.
    other = create_app(api.settings, sandbox_upstreams=upstreams_for(api.bureaus))
    async with AsyncTestClient(app=other, timeout=30) as replica:
        before = await calc(api, replica, region="430100", period="2027-03", salary="10000")
        assert before.json()["contributions"]["pension"]["employer"] == "1600.00"

        r = await add(api, VERSION_2027)
        assert r.status_code == 201, r.text
        added = r.json()
        assert (added["region"], added["version"], added["origin"]) == ("430100", 4, "added")
        assert (added["effective_from"], added["effective_to"], added["in_force_until"]) == ("2027-01-01", None, None)
        assert added["created_by"] == api.issued["client_id"] and added["created_at"]
        assert added["sample_data"] is False and added["rates"]["pension"]["employer"] == "0.15"

        for http in (api.http, replica):
            after = (await calc(api, http, region="430100", period="2027-03", salary="10000")).json()
            assert after["policy"]["version"] == 4
            assert after["contributions"]["pension"]["employer"] == "1500.00"
            assert (after["base"], after["totals"]["employer"]) == ("10000.00", "2410.00")
            floor = (await calc(api, http, region="430100", period="2027-01", salary="3000")).json()
            assert (floor["base"], floor["clamped"]) == ("3800.00", "floor")
            # The month before still uses the shipped version, which now ends the day before.
            earlier = (await calc(api, http, region="430100", period="2026-12", salary="10000")).json()
            assert earlier["policy"]["version"] == 3 and earlier["policy"]["in_force_until"] == "2026-12-31"
            assert earlier["contributions"]["pension"]["employer"] == "1600.00"

        seen = (await replica.get(CHANGSHA_POLICY, params={"on": "2027-01-01"}, headers=api.headers())).json()
        assert seen == added
        listed = {x["code"]: x for x in (await replica.get(REGIONS, headers=api.headers())).json()}
        assert listed["430100"]["policies"]["versions"] == 4


async def test_history_is_never_rewritten(api):
    assert (await add(api, VERSION_2027)).status_code == 201
    for start in ("2026-07-01", "2024-07-01", "2025-01-01"):
        r = await add(api, version(effective_from=start))
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "policy_overlap" and r.json()["field"] == "effective_from"
        assert r.json()["latest_version"]["version"] == 4
    # Correcting the scheduled version before it takes effect is allowed: the new one wins.
    fixed = await add(api, version(rates={**VERSION_2027["rates"], "pension": {"employer": "0.155", "employee": "0.08"}}))
    assert fixed.status_code == 201 and fixed.json()["version"] == 5
    r = await calc(api, region="430100", period="2027-01", salary="10000")
    assert r.json()["contributions"]["pension"]["employer"] == "1550.00"
    assert len(await api.rows(sa.select(policy_versions.c.id))) == 2


async def test_shipped_version_in_force_cannot_be_replaced(api):
    r = await add(api, version(effective_from="2025-01-01"))
    assert r.status_code == 422 and r.json()["code"] == "policy_overlap"
    assert "already in force" in r.json()["detail"]


async def test_a_retroactive_version_after_the_latest_start_is_allowed(api):
    r = await add(api, version(effective_from="2026-07-01", source="notice published late, effective July 2026"))
    assert r.status_code == 201, r.text
    june = (await calc(api, region="430100", period="2026-06", salary="10000")).json()
    july = (await calc(api, region="430100", period="2026-07", salary="10000")).json()
    assert (june["policy"]["version"], july["policy"]["version"]) == (3, 4)


async def test_only_admins_add_versions(api):
    reader = await api.new_client("social_security:read,social_security:submit")
    r = await add(api, VERSION_2027, api_key=reader["api_key"])
    assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"
    assert r.json()["required_scope"] == "admin"
    ok = await api.http.post(CALC, json={"region": "430100", "period": "2024-08", "salary": "1"}, headers=api.headers(reader["api_key"]))
    assert ok.status_code == 200
    nobody = await api.new_client("payments:read")
    for r in (
        await api.http.get(REGIONS, headers=api.headers(nobody["api_key"])),
        await api.http.get(CHANGSHA_POLICY, headers=api.headers(nobody["api_key"])),
        await api.http.post(CALC, json={"region": "430100", "period": "2024-08", "salary": "1"}, headers=api.headers(nobody["api_key"])),
    ):
        assert r.status_code == 403 and r.json()["required_scope"] == "social_security:read"
    assert await api.rows(sa.select(policy_versions.c.id)) == []


async def test_adding_is_idempotent(api):
    idem = key()
    first = await add(api, VERSION_2027, idem=idem)
    assert first.status_code == 201
    replay = await add(api, VERSION_2027, idem=idem)
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    other = await add(api, version(base_floor="3900.00"), idem=idem)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    missing = await api.http.post(CHANGSHA_POLICIES, json=VERSION_2027, headers=api.headers())
    assert missing.status_code == 400 and missing.json()["code"] == "idempotency_key_missing"
    assert len(await api.rows(sa.select(policy_versions.c.id))) == 1


async def test_an_added_version_is_audited_with_who_added_it(api):
    added = await add(api, VERSION_2027)
    assert added.status_code == 201, added.text
    events = (await api.http.get("/v1/audit-events", params={"operation": "policy.add"}, headers=api.headers())).json()
    rows = [e for e in (events["events"] if isinstance(events, dict) else events) if e["operation"] == "policy.add"]
    assert len(rows) == 1
    assert rows[0]["client_id"] == api.issued["client_id"]
    assert rows[0]["region"] == "430100"
    assert rows[0]["upstream_code"] == f"v{added.json()['version']}"
    assert rows[0]["outcome"].startswith(f"added version {added.json()['version']}")


async def test_calculations_need_no_idempotency_key_and_store_nothing(api):
    r = await calc(api, region="430100", period="2024-08", salary="10000")
    assert r.status_code == 200 and "idempotent-replayed" not in r.headers
    assert await api.rows(sa.select(idempotency_records.c.key)) == []


@pytest.mark.parametrize(
    ("changes", "status", "code", "field"),
    [
        ({"region": "110100"}, 422, "unknown_policy_region", "region"),
        ({"region": "abc"}, 400, "invalid_field", "region"),
        ({"period": "2024-8"}, 422, "invalid_period", "period"),
        ({"period": "2024-13"}, 422, "invalid_period", "period"),
        ({"period": "August 2024"}, 422, "invalid_period", "period"),
        ({"period": "2022-12"}, 422, "period_not_covered", "period"),
        ({"salary": "0"}, 422, "invalid_amount", "salary"),
        ({"salary": "-10000"}, 422, "invalid_amount", "salary"),
        ({"salary": "10000.001"}, 422, "invalid_amount", "salary"),
        ({"salary": "lots"}, 400, "invalid_field", "salary"),
        ({"salary": None}, 422, "salary_or_base_required", "salary"),
        ({"base": "5000.00"}, 422, "salary_or_base_required", "base"),
        ({"salary": None, "base": "3000.00"}, 422, "base_out_of_range", "base"),
        ({"salary": None, "base": "5000.005"}, 422, "invalid_amount", "base"),
        ({"hire_date": "2024-09-01"}, 422, "hire_after_period", "hire_date"),
        ({"hire_date": "2024-02-30"}, 400, "invalid_field", "hire_date"),
        ({"bonus": "1"}, 400, "unknown_field", "bonus"),
        ({"period": None}, 400, "invalid_field", "period"),
    ],
)
async def test_bad_calculations(api, changes, status, code, field):
    body = {"region": "430100", "period": "2024-08", "salary": "10000", **changes}
    body = {k: v for k, v in body.items() if v is not None or k == "period"}
    r = await api.http.post(CALC, json=body, headers=api.headers())
    assert r.status_code == status, r.text
    problem = r.json()
    assert problem["code"] == code and problem.get("field") == field, problem
    if code == "unknown_policy_region":
        assert problem["known_regions"] == ["330100", "420100", "430100", "440100", "440300"]
    if code == "period_not_covered":
        assert problem["covered"][0] == {"version": 1, "effective_from": "2023-01-01", "in_force_until": "2023-12-31"}


async def test_missing_period_is_a_missing_field(api):
    r = await api.http.post(CALC, json={"region": "430100", "salary": "1"}, headers=api.headers())
    assert r.status_code == 400 and r.json()["code"] == "missing_field" and r.json()["field"] == "period"


def _rates(**changes):
    return {**VERSION_2027["rates"], **changes}


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "field"),
    [
        (CHANGSHA_POLICIES, version(base_floor="20000.00"), 422, "invalid_policy", "base_floor"),
        (CHANGSHA_POLICIES, version(effective_from="1999-12-31"), 422, "invalid_policy", "effective_from"),
        (CHANGSHA_POLICIES, version(effective_to="2026-12-31"), 422, "invalid_policy", "effective_to"),
        (CHANGSHA_POLICIES, version(rates=_rates(pension={"employer": "16", "employee": "0.08"})), 422, "invalid_policy", "rates.pension.employer"),
        (CHANGSHA_POLICIES, version(rates=_rates(medical={"employer": "0.08", "employee": "0.02001"})), 422, "invalid_policy", "rates.medical.employee"),
        (CHANGSHA_POLICIES, version(rates={k: v for k, v in VERSION_2027["rates"].items() if k != "maternity"}), 400, "missing_field", "rates.maternity"),
        (CHANGSHA_POLICIES, version(rounding={"places": 2, "mode": "bankers"}), 400, "invalid_field", "rounding.mode"),
        (CHANGSHA_POLICIES, version(surprise=True), 400, "unknown_field", "surprise"),
        (CHANGSHA_POLICIES, version(source=""), 400, "invalid_field", "source"),
        (f"{REGIONS}/110100/policies", VERSION_2027, 422, "unknown_policy_region", "region"),
        (f"{REGIONS}/43010/policies", VERSION_2027, 400, "invalid_field", "code"),
    ],
)
async def test_bad_versions_leave_nothing_behind(api, path, body, status, code, field):
    r = await api.http.post(path, json=body, headers=api.headers(**{"Idempotency-Key": key()}))
    assert r.status_code == status, r.text
    assert r.json()["code"] == code and r.json().get("field") == field, r.json()
    assert await api.rows(sa.select(policy_versions.c.id)) == []
    assert await api.rows(sa.select(idempotency_records.c.key)) == []


async def _catalogue_on_own_engine(api, environment="sandbox"):
    engine = create_engine(api.settings.database_url)
    return engine, PolicyCatalogue(engine, environment)


async def test_concurrent_adds_get_distinct_version_numbers(api):
    """Two replicas adding at the same moment: both numbered, never the same number."""
    import msgspec

    engine, catalogue = await _catalogue_on_own_engine(api)
    try:
        terms = [msgspec.convert(version(effective_from=d), PolicyTerms) for d in ("2027-01-01", "2027-07-01")]
        results = await asyncio.gather(
            *[catalogue.add("430100", t, client_id=api.issued["client_id"]) for t in terms], return_exceptions=True
        )
    finally:
        await engine.dispose()
    added = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(e, ProblemError) and e.code == "policy_overlap" for e in refused), refused
    assert added and sorted(v.version for v in added) == list(range(4, 4 + len(added)))
    rows = await api.rows(sa.select(policy_versions.c.version))
    assert sorted(r.version for r in rows) == sorted(v.version for v in added)


async def test_a_retry_with_the_same_token_finds_the_version_it_added(api):
    import msgspec

    engine, catalogue = await _catalogue_on_own_engine(api)
    try:
        terms = msgspec.convert(VERSION_2027, PolicyTerms)
        first = await catalogue.add("430100", terms, client_id=api.issued["client_id"], idempotency_token="tok-1")
        again = await catalogue.add("430100", terms, client_id=api.issued["client_id"], idempotency_token="tok-1")
        assert first == again and first.version == 4
        # Versions added with a sandbox key never reach live calculations.
        live = PolicyCatalogue(engine, "live")
        assert [v.version for v in await live.versions("430100")] == [1, 2, 3]
        assert (await live.policy_for("430100", dt.date(2027, 3, 1))).rates.pension.employer == Decimal("0.16")
    finally:
        await engine.dispose()
