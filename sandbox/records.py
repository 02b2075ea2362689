"""The canonical migration record: one row of a customer's export after mapping.

Everything a level-2 check or a replayed submission needs, in canonical form
(dates, ``Decimal`` CNY, ``YYYY-MM`` periods, six-digit region codes), with the
source row number so every finding and outcome points back at the file.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

import msgspec

from adapters.models import InsuranceType

__all__ = ["CANONICAL_FIELDS", "EmploymentStatus", "Gender", "MigrationRecord"]

Gender = Literal["male", "female"]
EmploymentStatus = Literal["active", "departed"]


class MigrationRecord(msgspec.Struct, frozen=True):
    """``period``: the month the record describes; ``previous_region``: where the person
    contributed before and whose relationship must be transferred to ``region``."""

    row: int
    id_number: str
    name: str
    gender: Gender | None
    birth_date: dt.date | None
    employer_uscc: str
    employer_name: str | None
    region: str
    hire_date: dt.date
    leave_date: dt.date | None
    employment_status: EmploymentStatus
    contributing: bool
    insurance_types: tuple[InsuranceType, ...]
    contribution_base: Decimal | None
    period: str
    previous_region: str | None


#: The fields a mapping can fill (``row`` comes from the source).
CANONICAL_FIELDS: tuple[str, ...] = tuple(f for f in MigrationRecord.__struct_fields__ if f != "row")
