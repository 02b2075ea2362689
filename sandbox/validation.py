"""Level 2 of validation (data logic) and the validation pipeline over a whole file.

``LogicChecker.check`` looks at one mapped record alone (ID check digit and birth
date, the employer's code, ages and dates, the contribution base against the
region's policy for the period) and against the rows before it (the same ID twice
in a region, the same person under two IDs, active in two regions at once).

Cross-row state holds keyed hashes and row numbers only: never an ID number or a
name in plaintext, and a few dozen bytes per row, so 100k rows stay well within
memory. A conflict is reported on the later row, with ``related_row`` naming the
earlier one. The checker is deterministic: validating the same file twice gives the
same findings (a resumed run validates again rather than storing this state).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
from collections.abc import Iterator, Sequence
from collections.abc import Mapping as MappingOf
from typing import TYPE_CHECKING

import msgspec
from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError

from gateway.policy import PolicyVersion, in_force, resolve, shipped_regions

from .findings import RULES, Finding
from .masking import mask_id
from .records import MigrationRecord
from .sources import Source, SourceRow

if TYPE_CHECKING:
    from gateway.policy import PolicyCatalogue

    from .mapping import Mapping

__all__ = [
    "LogicChecker",
    "Policies",
    "RowOutcome",
    "birth_place_known",
    "id_number_problem",
    "load_policies",
    "shipped_policies",
    "validate",
]

#: Policy versions by region (as ``PolicyCatalogue.all_versions()`` returns them).
Policies = MappingOf[str, Sequence[PolicyVersion]]


def shipped_policies() -> dict[str, list[PolicyVersion]]:
    """The versions shipped with the gateway, resolved (what a fresh sandbox uses)."""
    return {code: resolve(region.versions) for code, region in shipped_regions().items()}


async def load_policies(catalogue: PolicyCatalogue) -> dict[str, list[PolicyVersion]]:
    """An environment's whole catalogue (shipped and added versions) read once, so
    checking 100k rows asks the database nothing."""
    return await catalogue.all_versions()


class RowOutcome(msgspec.Struct):
    """One row after levels 1 and 2: ``record`` is ``None`` if level 1 failed."""

    source: SourceRow
    record: MigrationRecord | None
    findings: list[Finding]

    @property
    def passed(self) -> bool:
        """Mapped and without an error-severity finding (warnings do not stop a row)."""
        return self.record is not None and not any(f.severity == "error" for f in self.findings)

    @property
    def level1_passed(self) -> bool:
        return self.record is not None

    @property
    def level2_passed(self) -> bool:
        return self.passed


def _finding(row: int, rule: str, message: str, **details: object) -> Finding:
    return Finding(row, 2, rule, message, severity=RULES[rule].severity, **details)  # type: ignore[arg-type]


def _sixteenth_birthday(birth: dt.date) -> dt.date:
    try:
        return birth.replace(year=birth.year + 16)
    except ValueError:  # born on 29 February
        return dt.date(birth.year + 16, 3, 1)


class LogicChecker:
    """Level-2 checks; feed it a file's records in row order.

    ``catalogue``: policy versions by region (``await load_policies(PolicyCatalogue(engine,
    "sandbox"))``); ``None`` uses the versions shipped with the gateway. ``columns``: the
    source column of each canonical field (``Mapping.field_columns``), named in findings.
    """

    def __init__(self, catalogue: Policies | None = None, *, columns: MappingOf[str, str] | None = None) -> None:
        self._columns = dict(columns or {})  # field -> source column, named in findings
        policies = shipped_policies() if catalogue is None else catalogue
        self._policies = {code: resolve(versions) for code, versions in policies.items()}
        # A fresh key per checker: the hashes mean nothing outside this run's memory.
        self._key = os.urandom(32)
        self._id_in_region: dict[int, int] = {}  # hash(id, region) -> first row
        self._person: dict[int, tuple[int, int]] = {}  # hash(name, birth) -> (hash(id), first row)
        self._active: dict[int, tuple[str, int]] = {}  # hash(id) -> (region, first row) while active
        self._policy_for = functools.lru_cache(maxsize=4096)(self._lookup_policy)

    def _hash(self, *parts: str) -> int:
        # Keyed BLAKE2b is a MAC: without the key the hashes reveal nothing.
        return int.from_bytes(hashlib.blake2b("\x1f".join(parts).encode(), key=self._key, digest_size=8).digest(), "big")

    def _lookup_policy(self, region: str, period: str) -> PolicyVersion | None:
        versions = self._policies.get(region)
        if not versions:
            return None
        return in_force(versions, dt.date(int(period[:4]), int(period[5:7]), 1))

    def check(self, record: MigrationRecord) -> list[Finding]:
        findings: list[Finding] = []
        row = record.row
        id_birth = self._check_id(record, findings)
        self._check_employer(record, findings)
        birth = id_birth or record.birth_date
        if birth is not None and record.hire_date < _sixteenth_birthday(birth):
            findings.append(_finding(
                row, "hired_before_16", f"hired on {record.hire_date}, before the 16th birthday "
                f"({_sixteenth_birthday(birth)})", field="hire_date", value=record.hire_date.isoformat(),
            ))  # fmt: skip
        if record.leave_date is not None and record.leave_date <= record.hire_date:
            findings.append(_finding(
                row, "leave_before_hire", f"leave date {record.leave_date} is not after the hire date {record.hire_date}",
                field="leave_date", value=record.leave_date.isoformat(),
            ))  # fmt: skip
        if record.employment_status == "departed":
            if record.contributing:
                findings.append(_finding(
                    row, "departed_still_contributing", "departed, but still marked as contributing",
                    field="contributing", value="true",
                ))  # fmt: skip
            if record.leave_date is None:
                findings.append(_finding(
                    row, "departed_without_leave_date", "departed, but no leave date", field="leave_date"
                ))  # fmt: skip
        self._check_base(record, findings)
        self._check_across_rows(record, birth, findings)
        if findings and self._columns:
            findings = [
                msgspec.structs.replace(f, column=self._columns.get(f.field)) if f.field and f.column is None else f
                for f in findings
            ]
        return findings

    # -- the record alone -----------------------------------------------------------

    def _check_id(self, record: MigrationRecord, findings: list[Finding]) -> dt.date | None:
        """Validate the ID number; its birth date, or ``None`` if the number is invalid."""
        number = record.id_number.strip().upper()
        reason, birth = id_number_problem(number)
        if reason is not None or birth is None:
            masked = mask_id(number)
            findings.append(_finding(
                record.row, "invalid_id_number", f"ID number {masked} is invalid: {reason}",
                field="id_number", value=masked,
            ))  # fmt: skip
            return None
        if record.birth_date is not None and record.birth_date != birth:
            findings.append(_finding(
                record.row, "birth_date_mismatch",
                f"birth date {record.birth_date} differs from the one in the ID number",
                field="birth_date", value=record.birth_date.isoformat(),
            ))  # fmt: skip
        if record.gender is not None:
            id_gender = "male" if int(number[16]) % 2 else "female"
            if record.gender != id_gender:
                findings.append(_finding(
                    record.row, "gender_mismatch", f"gender {record.gender} differs from the one in the ID number",
                    field="gender", value=record.gender,
                ))  # fmt: skip
        return birth

    def _check_employer(self, record: MigrationRecord, findings: list[Finding]) -> None:
        reason = _uscc_problem(record.employer_uscc)
        if reason is not None:
            findings.append(_finding(
                record.row, "invalid_uscc", f"employer code {record.employer_uscc!r} is invalid: {reason}",
                field="employer_uscc", value=record.employer_uscc,
            ))  # fmt: skip

    def _check_base(self, record: MigrationRecord, findings: list[Finding]) -> None:
        base = record.contribution_base
        if base is None:
            return
        policy = self._policy_for(record.region, record.period)
        if policy is None:
            findings.append(_finding(
                record.row, "no_policy", f"no policy version for region {record.region} in {record.period}; "
                "the base was not checked", field="contribution_base", value=str(base),
            ))  # fmt: skip
            return
        if not policy.base_floor <= base <= policy.base_ceiling:
            findings.append(_finding(
                record.row, "base_out_of_range",
                f"base {base} is outside {record.region}'s range for {record.period} "
                f"({policy.base_floor}-{policy.base_ceiling}, policy version {policy.version})",
                field="contribution_base", value=str(base),
            ))  # fmt: skip

    # -- against earlier rows -------------------------------------------------------

    def _check_across_rows(self, record: MigrationRecord, birth: dt.date | None, findings: list[Finding]) -> None:
        row = record.row
        id_number = record.id_number.strip().upper()
        masked = mask_id(id_number)
        id_hash = self._hash("id", id_number)

        in_region = self._hash("id-region", id_number, record.region)
        first = self._id_in_region.setdefault(in_region, row)
        if first != row:
            findings.append(_finding(
                row, "duplicate_id", f"ID number {masked} already appears in region {record.region} on row {first}",
                field="id_number", value=masked, related_row=first,
            ))  # fmt: skip

        if birth is not None:
            person = self._hash("person", " ".join(record.name.split()).casefold(), birth.isoformat())
            earlier = self._person.setdefault(person, (id_hash, row))
            if earlier[0] != id_hash:
                findings.append(_finding(
                    row, "likely_duplicate_person",
                    f"same name and birth date as row {earlier[1]}, under a different ID number ({masked})",
                    field="id_number", value=masked, related_row=earlier[1],
                ))  # fmt: skip

        if record.employment_status == "active" and record.contributing:
            region, first_active = self._active.setdefault(id_hash, (record.region, row))
            if region != record.region:
                findings.append(_finding(
                    row, "active_in_two_regions",
                    f"active and contributing in {record.region}, and in {region} on row {first_active}",
                    field="region", value=record.region, related_row=first_active,
                ))  # fmt: skip


def id_number_problem(number: str) -> tuple[str | None, dt.date | None]:
    """``(None, birth date)`` for a valid resident ID number, else ``(reason, None)``.

    The steps of ``stdnum.cn.ric.validate`` (length, digits, check digit, birth date,
    birth place) without its per-character clean-up, which dominates a large file's
    checking time; the birth-place lookup is cached.
    """
    if len(number) != 18:
        return f"it has {len(number)} characters, not 18", None
    if not (number[:17].isdigit() and number[:17].isascii()):
        return "the first 17 characters must be digits", None
    if number[17] != ric.calc_check_digit(number):
        return "the check digit is wrong", None
    try:
        birth = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return "it holds no real birth date", None
    if not birth_place_known(number[:6], number[6:10]):
        return "its birth place is not a division code of its birth year", None
    return None, birth


@functools.lru_cache(maxsize=16_384)
def birth_place_known(division: str, year: str) -> bool:
    """Whether the six-digit division existed in that year (python-stdnum's database)."""
    try:
        ric.get_birth_place(f"{division}{year}0101000" + "0")
    except ValidationError:
        return False
    return True


@functools.lru_cache(maxsize=1024)
def _uscc_problem(code: str) -> str | None:
    try:
        uscc.validate(code)
    except ValidationError as exc:
        return str(exc)
    return None


def validate(source: Source, mapping: Mapping, catalogue: Policies | None = None) -> Iterator[RowOutcome]:
    """Levels 1 and 2 over every row of ``source``, streamed in row order.

    Raises ``MappingError`` before reading any row if the file lacks a mapped column.
    """
    mapping.check_columns(source.columns)
    checker = LogicChecker(catalogue, columns=mapping.field_columns)
    for row in source.rows():
        record, findings = mapping.apply(row)
        if record is not None:
            findings = checker.check(record)
        yield RowOutcome(row, record, findings)
