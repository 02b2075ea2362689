"""Monthly contributions for one employee under one policy version.

Pure arithmetic on ``Decimal``: no database, no clock. The rules, in order:

1. the policy is the version in force on the first day of the period (the caller
   looks it up);
2. base = salary clamped to [floor, ceiling] (reported in ``clamped``), or a base
   given directly, which must already lie within them;
3. the month's share: 1, unless the hire date falls inside the period, then the
   policy's proration rule picks ``on_or_before`` or ``after`` by the hire day;
4. each amount (insurance type x side) = base x rate x share, rounded once with the
   policy's rounding rule; totals are sums of the rounded amounts.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal
from typing import Literal

import msgspec

from ..errors import ProblemError
from ..validation import check_amount
from .model import EARLIEST, LATEST, PolicyVersion, Proration, Rates, Rounding

__all__ = [
    "Calculation",
    "CalculationInput",
    "Contribution",
    "Contributions",
    "PolicyRef",
    "Totals",
    "calculate",
    "check_input",
    "month_share",
    "period_start",
    "round_amount",
]

_PERIOD = re.compile(r"([0-9]{4})-([0-9]{2})")
_CENT = Decimal("0.01")
_MODES = {"half_up": ROUND_HALF_UP, "up": ROUND_UP, "down": ROUND_DOWN}


class PolicyRef(msgspec.Struct):
    """Which version was applied, and how trustworthy its figures are."""

    region: str
    version: int
    origin: Literal["shipped", "added"]
    effective_from: dt.date
    effective_to: dt.date | None
    in_force_until: dt.date | None
    base_floor: Decimal
    base_ceiling: Decimal
    sample_data: bool
    source: str


class Contribution(msgspec.Struct):
    employer_rate: Decimal
    employee_rate: Decimal
    employer: Decimal
    employee: Decimal


class Contributions(msgspec.Struct):
    pension: Contribution
    medical: Contribution
    unemployment: Contribution
    work_injury: Contribution
    maternity: Contribution


class Totals(msgspec.Struct):
    employer: Decimal
    employee: Decimal
    total: Decimal


class Calculation(msgspec.Struct):
    region: str
    period: str
    policy: PolicyRef
    salary: Decimal | None
    base: Decimal
    clamped: Literal["floor", "ceiling"] | None
    hire_date: dt.date | None
    month_share: Decimal
    contributions: Contributions
    totals: Totals


@dataclass(frozen=True, slots=True)
class CalculationInput:
    """A request's checks that need no policy, done before any lookup."""

    period: str
    first_day: dt.date
    salary: Decimal | None
    base: Decimal | None
    hire_date: dt.date | None


def check_input(
    period: str, *, salary: Decimal | None, base: Decimal | None, hire_date: dt.date | None
) -> CalculationInput:
    if (salary is None) == (base is None):
        raise ProblemError(
            "salary_or_base_required",
            "send exactly one of salary (clamped to the region's base range) and base (used as it is)",
            field="salary" if salary is None else "base",
        )
    if salary is not None:
        salary = check_amount(salary, "salary")
    if base is not None:
        base = check_amount(base, "base")
    first_day = period_start(period)
    last_day = first_day.replace(day=calendar.monthrange(first_day.year, first_day.month)[1])
    if hire_date is not None and hire_date > last_day:
        raise ProblemError(
            "hire_after_period",
            f"hire_date {hire_date} is after the period {period}; nothing is due for it",
            field="hire_date",
        )
    return CalculationInput(period, first_day, salary, base, hire_date)


def period_start(period: str) -> dt.date:
    """The first day of a ``YYYY-MM`` period the catalogue can cover, or ``invalid_period``."""
    match = _PERIOD.fullmatch(period)
    if match and 1 <= int(match.group(2)) <= 12 and EARLIEST.year <= int(match.group(1)) <= LATEST.year:
        return dt.date(int(match.group(1)), int(match.group(2)), 1)
    raise ProblemError(
        "invalid_period",
        f"period: a month as YYYY-MM between {EARLIEST.year}-01 and {LATEST.year}-12, e.g. \"2024-08\"",
        field="period",
    )


def calculate(policy: PolicyVersion, given: CalculationInput) -> Calculation:
    base, clamped = _base(policy, given)
    share = month_share(policy.proration, given.first_day, given.hire_date)
    contributions = {}
    employer_total = employee_total = Decimal("0.00")
    for insurance_type in Rates.__struct_fields__:
        rates = getattr(policy.rates, insurance_type)
        employer = round_amount(base * rates.employer * share, policy.rounding)
        employee = round_amount(base * rates.employee * share, policy.rounding)
        contributions[insurance_type] = Contribution(rates.employer, rates.employee, employer, employee)
        employer_total += employer
        employee_total += employee
    return Calculation(
        region=policy.region,
        period=given.period,
        policy=PolicyRef(
            region=policy.region,
            version=policy.version,
            origin=policy.origin,
            effective_from=policy.effective_from,
            effective_to=policy.effective_to,
            in_force_until=policy.in_force_until,
            base_floor=policy.base_floor,
            base_ceiling=policy.base_ceiling,
            sample_data=policy.sample_data,
            source=policy.source,
        ),
        salary=given.salary,
        base=base,
        clamped=clamped,
        hire_date=given.hire_date,
        month_share=share,
        contributions=Contributions(**contributions),
        totals=Totals(employer_total, employee_total, employer_total + employee_total),
    )


def _base(policy: PolicyVersion, given: CalculationInput) -> tuple[Decimal, Literal["floor", "ceiling"] | None]:
    floor, ceiling = policy.base_floor.quantize(_CENT), policy.base_ceiling.quantize(_CENT)
    if given.base is not None:
        if not floor <= given.base <= ceiling:
            raise ProblemError(
                "base_out_of_range",
                f"base {given.base} is outside {floor}-{ceiling}, the range of {policy.region} version "
                f"{policy.version}; send salary instead to have it clamped",
                field="base",
                base_floor=str(floor),
                base_ceiling=str(ceiling),
            )
        return given.base, None
    assert given.salary is not None
    if given.salary < floor:
        return floor, "floor"
    if given.salary > ceiling:
        return ceiling, "ceiling"
    return given.salary, None


def month_share(proration: Proration, first_day: dt.date, hire_date: dt.date | None) -> Decimal:
    """1 for a whole month; the rule's fraction when the hire date is inside the month."""
    if hire_date is None or hire_date < first_day:
        return Decimal(1)
    return proration.on_or_before if hire_date.day <= proration.cutoff_day else proration.after


def round_amount(value: Decimal, rounding: Rounding) -> Decimal:
    """Round to the rule's places with its mode, then show as CNY with 2 places."""
    step = Decimal(1).scaleb(-rounding.places)
    return value.quantize(step, rounding=_MODES[rounding.mode]).quantize(_CENT)
