"""Shipped data and the precedence of versions (pure: no database)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec
import pytest

from gateway.policy import PolicyDataError, in_force, region_name, resolve, shipped_regions
from gateway.policy.shipped import _load

FIVE = {"440100": "Guangzhou", "440300": "Shenzhen", "420100": "Wuhan", "430100": "Changsha", "330100": "Hangzhou"}


def test_the_five_sandbox_regions_are_shipped_with_names():
    regions = shipped_regions()
    assert set(regions) == set(FIVE)
    assert {code: r.name.en for code, r in regions.items()} == FIVE
    assert regions["430100"].name.zh == "长沙市"


@pytest.mark.parametrize("code", sorted(FIVE))
def test_each_region_is_covered_from_2023_without_gaps(code):
    versions = resolve(shipped_regions()[code].versions)
    assert [v.version for v in versions] == [1, 2, 3]
    assert versions[0].effective_from == dt.date(2023, 1, 1)
    day = dt.date(2023, 1, 1)
    while day <= dt.date(2025, 12, 31):
        policy = in_force(versions, day)
        assert policy is not None and policy.effective_from.year == day.year, day
        day += dt.timedelta(days=1)
    assert in_force(versions, dt.date(2022, 12, 31)) is None
    assert versions[-1].effective_to is None  # the last stays in force until superseded
    for v in versions:
        assert v.sample_data and v.source and v.origin == "shipped"
        assert v.rates.work_injury.employee == 0 and v.rates.maternity.employee == 0


def test_changsha_2024_carries_the_given_base_range():
    v = shipped_regions()["430100"].versions[1]
    assert (v.effective_from, v.effective_to) == (dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    assert (v.base_floor, v.base_ceiling) == (Decimal("3604.00"), Decimal("18021.00"))
    assert "3,604-18,021" in v.source and "not checked" in v.source


def _version(number, start, end=None, **extra):
    base = shipped_regions()["430100"].versions[0]
    return msgspec.structs.replace(base, version=number, effective_from=start, effective_to=end, **extra)


def test_a_later_start_ends_the_earlier_version_the_day_before():
    versions = resolve([
        _version(1, dt.date(2024, 1, 1), dt.date(2024, 12, 31)),
        _version(2, dt.date(2025, 1, 1)),
        _version(3, dt.date(2025, 7, 1), origin="added"),
    ])
    assert [v.in_force_until for v in versions] == [dt.date(2024, 12, 31), dt.date(2025, 6, 30), None]
    assert in_force(versions, dt.date(2025, 6, 30)).version == 2
    assert in_force(versions, dt.date(2025, 7, 1)).version == 3
    assert in_force(versions, dt.date(2099, 1, 1)).version == 3


def test_an_earlier_version_never_comes_back_after_a_later_one_ends():
    versions = resolve([_version(1, dt.date(2024, 1, 1)), _version(2, dt.date(2025, 1, 1), dt.date(2025, 3, 31))])
    assert versions[0].in_force_until == dt.date(2024, 12, 31)
    assert in_force(versions, dt.date(2025, 4, 1)) is None


def test_same_start_the_higher_version_wins():
    versions = resolve([_version(2, dt.date(2027, 1, 1)), _version(1, dt.date(2027, 1, 1))])
    assert in_force(versions, dt.date(2027, 1, 1)).version == 2
    assert versions[0].version == 1 and versions[0].in_force_until == dt.date(2026, 12, 31)


def test_gaps_are_not_covered():
    versions = resolve([_version(1, dt.date(2024, 1, 1), dt.date(2024, 6, 30)), _version(2, dt.date(2024, 8, 1))])
    assert in_force(versions, dt.date(2024, 7, 15)) is None
    assert in_force(versions, dt.date(2023, 12, 31)) is None
    assert in_force([], dt.date(2024, 1, 1)) is None


def test_region_names_for_regions_without_shipped_data():
    assert region_name("420100").en == "Wuhan"
    assert region_name("110100").zh == "北京市" and region_name("110100").en is None
    assert region_name("310100").zh == "上海市"
    assert region_name("000000") is None


def test_broken_data_files_fail_loudly():
    raw = msgspec.json.encode(
        {"region": "430100", "name": {"zh": "长沙市"}, "versions": [msgspec.to_builtins(shipped_regions()["430100"].versions[0])]}
    )
    with pytest.raises(PolicyDataError, match="unknown field"):
        _load("430100.json", raw)  # a catalogue version carries fields a data file must not
    good = msgspec.json.decode(raw)
    for key in ("region", "origin", "in_force_until", "created_by", "created_at"):
        good["versions"][0].pop(key, None)
    assert _load("430100.json", msgspec.json.encode(good)).versions[0].version == 1
    with pytest.raises(PolicyDataError, match="must be named"):
        _load("430300.json", msgspec.json.encode(good))
    good["versions"][0]["version"] = 2
    with pytest.raises(PolicyDataError, match="numbered"):
        _load("430100.json", msgspec.json.encode(good))
    good["versions"][0].update(version=1, base_floor="99999.00")
    with pytest.raises(PolicyDataError, match="base_floor"):
        _load("430100.json", msgspec.json.encode(good))
    good["versions"][0]["base_floor"] = "3000.00"
    good["versions"].append(dict(good["versions"][0], version=2))
    with pytest.raises(PolicyDataError, match="must start after"):
        _load("430100.json", msgspec.json.encode(good))
