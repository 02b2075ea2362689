"""A region's contribution policy as data: base range, rates, rounding, proration.

A policy *version* is what a region's notice says for a span of dates. Everything
that differs between regions or years is a value here, never a branch in code: a
province cutting employer pension from 16% to 15% is a new version, added as data.

``PolicyTerms`` is the part an administrator sends (and a shipped data file holds per
version); ``PolicyVersion`` is a stored version as the catalogue hands it out.
``check_terms`` is the one validation both go through.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal, TypeVar

import msgspec

from ..errors import ProblemError

__all__ = [
    "EARLIEST",
    "LATEST",
    "PolicyTerms",
    "PolicyVersion",
    "Proration",
    "Rates",
    "Rounding",
    "SideRates",
    "check_terms",
]

#: The dates a policy version may name (anything outside is a typo, not a policy).
EARLIEST = dt.date(2000, 1, 1)
LATEST = dt.date(2100, 12, 31)

_RATE_STEP = Decimal("0.0001")  # rates and fractions: at most 4 decimal places
_CENT = Decimal("0.01")
_MAX_BASE = Decimal(10_000_000)


class SideRates(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Fractions of the base, e.g. ``"0.16"``; 0 where a side pays nothing."""

    employer: Decimal
    employee: Decimal


class Rates(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """All five insurance types, always: a type a region does not levy (maternity merged
    into medical) has rates of 0, so a missing type is an error, not a zero."""

    pension: SideRates
    medical: SideRates
    unemployment: SideRates
    work_injury: SideRates
    maternity: SideRates


class Rounding(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Applied to each amount (type and side) separately; totals are sums of rounded amounts."""

    places: Annotated[int, msgspec.Meta(ge=0, le=2, description="Decimal places kept: 2 (fen), 1 (jiao) or 0 (yuan)")]
    mode: Literal["half_up", "up", "down"]


class Proration(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The month's share paid by someone hired during the month: ``on_or_before`` if
    the hire date's day is at most ``cutoff_day``, ``after`` otherwise."""

    cutoff_day: Annotated[int, msgspec.Meta(ge=1, le=31)]
    on_or_before: Decimal
    after: Decimal


class PolicyTerms(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One version's dates and figures, as an administrator sends them."""

    effective_from: dt.date
    effective_to: dt.date | None = None
    base_floor: Annotated[Decimal, msgspec.Meta(description="Lowest monthly contribution base, CNY")]
    base_ceiling: Annotated[Decimal, msgspec.Meta(description="Highest monthly contribution base, CNY")]
    rates: Rates
    rounding: Rounding
    proration: Proration
    sample_data: bool = False
    source: Annotated[
        str,
        msgspec.Meta(
            min_length=1, max_length=2000, pattern=r"\S",
            description="Where the figures come from (the notice), or why they are sample data",
        ),
    ]


class PolicyVersion(PolicyTerms, frozen=True, kw_only=True):
    """A version in the catalogue. ``in_force_until`` is when lookups stop using it:
    its own ``effective_to``, or the day before a later version starts, whichever is
    earlier (``null``: open-ended)."""

    region: str
    version: int
    origin: Literal["shipped", "added"]
    in_force_until: dt.date | None = None
    created_by: str | None = None
    created_at: dt.datetime | None = None


_Terms = TypeVar("_Terms", bound=PolicyTerms)


def check_terms(terms: _Terms) -> _Terms:
    """Refuse figures no notice could contain; returns the terms with money at 2 places.

    Raises ``ProblemError("invalid_policy")`` naming the field.
    """
    for name, value in (("effective_from", terms.effective_from), ("effective_to", terms.effective_to)):
        if value is not None and not EARLIEST <= value <= LATEST:
            _invalid(name, f"must be between {EARLIEST} and {LATEST}")
    if terms.effective_to is not None and terms.effective_to < terms.effective_from:
        _invalid("effective_to", "must not be before effective_from")
    for name in ("base_floor", "base_ceiling"):
        if not _is_step(getattr(terms, name), _CENT, low=_CENT, high=_MAX_BASE):
            _invalid(name, f"a CNY amount with at most 2 decimal places, from 0.01 to {_MAX_BASE}")
    if terms.base_floor > terms.base_ceiling:
        _invalid("base_floor", "must not be above base_ceiling")
    for insurance_type in Rates.__struct_fields__:
        side_rates: SideRates = getattr(terms.rates, insurance_type)
        for side in ("employer", "employee"):
            if not _is_step(getattr(side_rates, side), _RATE_STEP, low=Decimal(0), high=Decimal(1)):
                _invalid(f"rates.{insurance_type}.{side}", "a fraction from 0 to 1 with at most 4 decimal places")
    for name in ("on_or_before", "after"):
        if not _is_step(getattr(terms.proration, name), _RATE_STEP, low=Decimal(0), high=Decimal(1)):
            _invalid(f"proration.{name}", "a fraction of the month from 0 to 1 with at most 4 decimal places")
    return msgspec.structs.replace(
        terms, base_floor=terms.base_floor.quantize(_CENT), base_ceiling=terms.base_ceiling.quantize(_CENT)
    )


def _is_step(value: Decimal, step: Decimal, *, low: Decimal, high: Decimal) -> bool:
    """Finite, within [low, high], and a whole multiple of ``step`` ("0.160" is 0.16)."""
    try:
        return value.is_finite() and low <= value <= high and value == value.quantize(step)
    except InvalidOperation:
        return False


def _invalid(field: str, detail: str) -> None:
    raise ProblemError("invalid_policy", f"{field}: {detail}", field=field)
