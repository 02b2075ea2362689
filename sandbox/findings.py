"""Findings: what validation says about a row, and the catalogue of rule codes.

Rule codes are stable (reports, the API and people's notes refer to them); titles
are what a report shows. Level 1 is the field mapping (does every value parse),
level 2 the data logic (is the record plausible, alone and against earlier rows).
Level 3, the sampled manual review, signs off a run rather than producing findings.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["RULES", "Finding", "Level", "Rule", "Severity"]

Level = Literal[1, 2]
Severity = Literal["error", "warning"]


class Rule(msgspec.Struct, frozen=True):
    code: str
    level: Level
    title: str
    severity: Severity


class Finding(msgspec.Struct, frozen=True):
    """One problem with one row. ``value`` is always masked; ``related_row`` names the
    earlier row a cross-row conflict is with (the finding sits on the later row)."""

    row: int
    level: Level
    rule: str
    message: str
    field: str | None = None
    column: str | None = None
    value: str | None = None
    severity: Severity = "error"
    related_row: int | None = None


def _catalogue(*rules: Rule) -> dict[str, Rule]:
    return {rule.code: rule for rule in rules}


RULES: dict[str, Rule] = _catalogue(
    # level 1: the row and its fields
    Rule("missing_column", 1, "A mapped column is missing from the row", "error"),
    Rule("required_field_missing", 1, "A required field is empty", "error"),
    Rule("unparseable_value", 1, "A value does not parse", "error"),
    Rule("unknown_code", 1, "A value is not in the field's code table", "error"),
    Rule("ragged_row", 1, "The row has a different number of cells than the header", "error"),
    Rule("undecodable_row", 1, "The row holds bytes the file's encoding cannot decode", "error"),
    Rule("malformed_row", 1, "The row cannot be read (bad CSV quoting, or a line that is not a JSON object)", "error"),
    # level 2: the record alone
    Rule("invalid_id_number", 2, "Resident ID number is invalid", "error"),
    Rule("invalid_uscc", 2, "Employer's Unified Social Credit Code is invalid", "error"),
    Rule("birth_date_mismatch", 2, "Birth date differs from the one in the ID number", "error"),
    Rule("gender_mismatch", 2, "Gender differs from the one in the ID number", "warning"),
    Rule("hired_before_16", 2, "Hired before the 16th birthday", "error"),
    Rule("leave_before_hire", 2, "Leave date is not after the hire date", "error"),
    Rule("departed_without_leave_date", 2, "Departed employee without a leave date", "warning"),
    Rule("base_out_of_range", 2, "Contribution base outside the region's range for the period", "error"),
    Rule("no_policy", 2, "No policy version for the region and period: base not checked", "warning"),
    Rule("departed_still_contributing", 2, "Departed employee still marked as contributing", "error"),
    # level 2: against earlier rows
    Rule("duplicate_id", 2, "The same ID number appears twice in one region", "error"),
    Rule("likely_duplicate_person", 2, "Same name and birth date under a different ID number", "warning"),
    Rule("active_in_two_regions", 2, "Active and contributing in two regions at once", "error"),
)
