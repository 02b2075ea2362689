"""Value notations several bureau dialects share: yuan as decimal strings and
``yyyyMM`` months. Dialect-specific notations (dates, codes) stay in each adapter."""

from __future__ import annotations

import re
from decimal import Decimal

from .models import money

__all__ = ["format_yuan", "parse_yuan", "parse_yyyymm", "period_slices", "to_yyyymm"]

_YUAN = re.compile(r"-?\d+(\.\d{1,2})?")
_YYYYMM = re.compile(r"\d{4}(0[1-9]|1[0-2])")
_CANONICAL_PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


def parse_yuan(value: object) -> Decimal | None:
    """Yuan as a decimal string (``"3604.00"``) -> ``Decimal``; empty -> ``None``."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _YUAN.fullmatch(value):  # no exponents, NaN or separators
        raise ValueError(f"bad amount {value!r}")
    return money(value)


def format_yuan(amount: Decimal) -> str:
    """``Decimal`` -> yuan with exactly two places, never in exponent notation."""
    return format(money(amount), "f")


def parse_yyyymm(value: object) -> str | None:
    """``yyyyMM`` -> ``YYYY-MM``; empty -> ``None``."""
    if not value:
        return None
    if not isinstance(value, str) or not _YYYYMM.fullmatch(value):
        raise ValueError(f"bad period {value!r}")
    return f"{value[:4]}-{value[4:]}"


def to_yyyymm(period: str) -> str:
    """``YYYY-MM`` -> ``yyyyMM`` (refusing anything else)."""
    if not isinstance(period, str) or not _CANONICAL_PERIOD.fullmatch(period):
        raise ValueError(f"a period must be YYYY-MM, got {period!r}")
    return period.replace("-", "")


def period_slices(from_period: str, to_period: str, span: int) -> list[tuple[str, str]]:
    """``YYYY-MM``..``YYYY-MM`` (inclusive) as consecutive ``yyyyMM`` ranges of at most
    ``span`` months, for bureaus that limit how many months one query may cover."""
    first = _month_index(to_yyyymm(from_period))
    last = _month_index(to_yyyymm(to_period))
    if first > last:
        raise ValueError(f"from_period {from_period} is after to_period {to_period}")
    return [(_yyyymm_of(start), _yyyymm_of(min(start + span - 1, last))) for start in range(first, last + 1, span)]


def _month_index(period: str) -> int:
    return int(period[:4]) * 12 + int(period[4:]) - 1


def _yyyymm_of(index: int) -> str:
    return f"{index // 12:04d}{index % 12 + 1:02d}"
