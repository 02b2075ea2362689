"""The calculator against figures worked out by hand (Changsha 2024: base range
3,604-18,021 CNY; pension 16% / 8%, medical 8% / 2%, unemployment 0.7% / 0.3%,
work injury 0.4% employer only, maternity 0 (merged into medical))."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec
import pytest

from gateway.errors import ProblemError
from gateway.policy import calculate, check_input, shipped_regions
from gateway.policy.calculator import month_share, round_amount
from gateway.policy.model import Proration, Rounding

D = Decimal


def changsha_2024():
    version = shipped_regions()["430100"].versions[1]
    assert (version.effective_from, version.base_floor, version.base_ceiling) == (dt.date(2024, 1, 1), D("3604.00"), D("18021.00"))
    return version


def run(policy=None, period="2024-08", **given):
    return calculate(policy or changsha_2024(), check_input(period, **{"salary": None, "base": None, "hire_date": None, **given}))


def amounts(result):
    """{type: (employer, employee)} as strings, the way the API shows them."""
    return {t: (str(c.employer), str(c.employee)) for t, c in msgspec.structs.asdict(result.contributions).items()}


def totals(result):
    return str(result.totals.employer), str(result.totals.employee), str(result.totals.total)


def test_salary_inside_the_range_is_the_base():
    result = run(salary=D("10000"))
    assert (str(result.salary), str(result.base), result.clamped, result.month_share) == ("10000.00", "10000.00", None, 1)
    assert amounts(result) == {
        "pension": ("1600.00", "800.00"),
        "medical": ("800.00", "200.00"),
        "unemployment": ("70.00", "30.00"),
        "work_injury": ("40.00", "0.00"),
        "maternity": ("0.00", "0.00"),
    }
    assert totals(result) == ("2510.00", "1030.00", "3540.00")
    assert (result.policy.region, result.policy.version, result.policy.sample_data) == ("430100", 2, True)


def test_low_salary_is_raised_to_the_floor():
    result = run(salary=D("3000.00"))
    assert (str(result.salary), str(result.base), result.clamped) == ("3000.00", "3604.00", "floor")
    assert amounts(result) == {
        "pension": ("576.64", "288.32"),
        "medical": ("288.32", "72.08"),
        "unemployment": ("25.23", "10.81"),  # 25.228, 10.812
        "work_injury": ("14.42", "0.00"),  # 14.416
        "maternity": ("0.00", "0.00"),
    }
    assert totals(result) == ("904.61", "371.21", "1275.82")


def test_high_salary_is_capped_at_the_ceiling():
    result = run(salary=D("25000"))
    assert (str(result.base), result.clamped) == ("18021.00", "ceiling")
    assert amounts(result) == {
        "pension": ("2883.36", "1441.68"),
        "medical": ("1441.68", "360.42"),
        "unemployment": ("126.15", "54.06"),  # 126.147, 54.063
        "work_injury": ("72.08", "0.00"),  # 72.084
        "maternity": ("0.00", "0.00"),
    }
    assert totals(result) == ("4523.27", "1856.16", "6379.43")


def test_the_floor_and_ceiling_themselves_are_not_clamped():
    assert run(salary=D("3604.00")).clamped is None
    assert run(salary=D("18021.00")).clamped is None


def test_hired_after_the_cutoff_pays_half_a_month_rounded_once():
    result = run(salary=D("3000"), hire_date=dt.date(2024, 8, 20))
    assert result.month_share == D("0.5") and result.hire_date == dt.date(2024, 8, 20)
    assert amounts(result) == {
        "pension": ("288.32", "144.16"),
        "medical": ("144.16", "36.04"),
        "unemployment": ("12.61", "5.41"),  # 12.614, 5.406 (half of the rounded 10.81 would be 5.405)
        "work_injury": ("7.21", "0.00"),  # 7.208
        "maternity": ("0.00", "0.00"),
    }
    assert totals(result) == ("452.30", "185.61", "637.91")


@pytest.mark.parametrize(
    ("hire_date", "share"),
    [
        (dt.date(2024, 8, 1), "1"),
        (dt.date(2024, 8, 15), "1"),  # on the cutoff day: on or before
        (dt.date(2024, 8, 16), "0.5"),
        (dt.date(2024, 8, 31), "0.5"),
        (dt.date(2024, 7, 31), "1"),  # hired before the period: a whole month
        (dt.date(2019, 3, 4), "1"),
    ],
)
def test_share_of_the_month(hire_date, share):
    result = run(salary=D("10000"), hire_date=hire_date)
    assert result.month_share == D(share)
    assert str(result.contributions.pension.employer) == str((D("1600") * D(share)).quantize(D("0.01")))


def test_the_proration_rule_is_data():
    other = msgspec.structs.replace(changsha_2024(), proration=Proration(cutoff_day=10, on_or_before=D("0.75"), after=D("0")))
    assert run(other, salary=D("10000"), hire_date=dt.date(2024, 8, 10)).contributions.pension.employer == D("1200.00")
    late = run(other, salary=D("10000"), hire_date=dt.date(2024, 8, 11))
    assert late.month_share == 0 and totals(late) == ("0.00", "0.00", "0.00")


def test_a_base_is_used_as_it_is():
    result = run(base=D("5000"))
    assert (result.salary, str(result.base), result.clamped) == (None, "5000.00", None)
    assert result.contributions.pension.employer == D("800.00")


@pytest.mark.parametrize("base", ["3603.99", "18021.01"])
def test_a_base_outside_the_range_is_refused(base):
    with pytest.raises(ProblemError) as info:
        run(base=D(base))
    assert info.value.code == "base_out_of_range"
    assert info.value.extensions["base_floor"] == "3604.00" and info.value.extensions["base_ceiling"] == "18021.00"


@pytest.mark.parametrize(
    ("mode", "places", "value", "expected"),
    [
        ("half_up", 2, "10.815", "10.82"),
        ("half_up", 2, "10.8149", "10.81"),
        ("up", 2, "10.811", "10.82"),
        ("up", 2, "10.81", "10.81"),
        ("down", 2, "10.819", "10.81"),
        ("half_up", 0, "10.5", "11.00"),
        ("down", 0, "10.99", "10.00"),
        ("up", 1, "10.01", "10.10"),
        ("half_up", 2, "0", "0.00"),
    ],
)
def test_rounding_modes(mode, places, value, expected):
    assert str(round_amount(D(value), Rounding(places=places, mode=mode))) == expected


@pytest.mark.parametrize(("mode", "unemployment_employee"), [("half_up", "10.81"), ("up", "10.82"), ("down", "10.81")])
def test_rounding_applies_per_amount(mode, unemployment_employee):
    policy = msgspec.structs.replace(changsha_2024(), rounding=Rounding(places=2, mode=mode))
    result = run(policy, salary=D("3000"))  # base 3604: unemployment 25.228 / 10.812, work injury 14.416
    assert str(result.contributions.unemployment.employee) == unemployment_employee
    assert str(result.contributions.work_injury.employer) == {"half_up": "14.42", "up": "14.42", "down": "14.41"}[mode]


def test_whole_yuan_rounding_still_shows_two_places():
    policy = msgspec.structs.replace(changsha_2024(), rounding=Rounding(places=0, mode="half_up"))
    result = run(policy, salary=D("3000"))
    assert str(result.contributions.unemployment.employer) == "25.00" and str(result.totals.employer) == "904.00"


def test_month_share_ignores_hire_dates_before_the_month():
    rule = Proration(cutoff_day=15, on_or_before=D("1"), after=D("0.5"))
    assert month_share(rule, dt.date(2024, 2, 1), None) == 1
    assert month_share(rule, dt.date(2024, 2, 1), dt.date(2024, 1, 31)) == 1
    assert month_share(rule, dt.date(2024, 2, 1), dt.date(2024, 2, 29)) == D("0.5")


@pytest.mark.parametrize(
    ("period", "given", "code", "field"),
    [
        ("2024-08", {}, "salary_or_base_required", "salary"),
        ("2024-08", {"salary": D("1"), "base": D("5000")}, "salary_or_base_required", "base"),
        ("2024-08", {"salary": D("0")}, "invalid_amount", "salary"),
        ("2024-08", {"salary": D("-10000")}, "invalid_amount", "salary"),
        ("2024-08", {"salary": D("10000.001")}, "invalid_amount", "salary"),
        ("2024-08", {"base": D("NaN")}, "invalid_amount", "base"),
        ("2024-8", {"salary": D("1")}, "invalid_period", "period"),
        ("2024-13", {"salary": D("1")}, "invalid_period", "period"),
        ("2024-00", {"salary": D("1")}, "invalid_period", "period"),
        ("1999-12", {"salary": D("1")}, "invalid_period", "period"),
        ("2024-08-01", {"salary": D("1")}, "invalid_period", "period"),
        ("２０２４-０８", {"salary": D("1")}, "invalid_period", "period"),
        ("2024-08", {"salary": D("1"), "hire_date": dt.date(2024, 9, 1)}, "hire_after_period", "hire_date"),
    ],
)
def test_bad_input_is_refused_before_any_lookup(period, given, code, field):
    with pytest.raises(ProblemError) as info:
        check_input(period, **{"salary": None, "base": None, "hire_date": None, **given})
    assert info.value.code == code and info.value.extensions["field"] == field


def test_hire_on_the_last_day_of_february_is_inside_the_period():
    given = check_input("2024-02", salary=D("10000"), base=None, hire_date=dt.date(2024, 2, 29))
    assert (given.first_day, given.hire_date) == (dt.date(2024, 2, 1), dt.date(2024, 2, 29))
