"""Level 3: the seeded, stratified sample of rows a person reviews before signing off.

Rows are grouped into strata by region and outcome (``passed``, ``warning`` — passed
with a warning, ``failed_level1``, ``failed_level2``), so a reviewer sees every region
and every kind of result, not only the common case. Within a stratum the sample is a
bottom-k reservoir: each row gets a priority from a keyed hash of (seed, row number)
and the ``per_stratum`` rows with the lowest priorities are kept. That makes the
sample

- reproducible: the same seed and the same rows give the same sample, whatever the
  batch boundaries or the order rows are offered in, and a row offered twice (a
  resumed run validates the file again) is kept once;
- a uniform random sample of each stratum (the hash stands in for a random draw);
- bounded: at most ``per_stratum`` rows per stratum and ``max_regions`` regions
  (further regions share the stratum region ``other``) are held, whatever the file's size.

Values are masked (``sandbox.masking``) when a row is kept, so no plaintext PII stays
in the sample.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from .masking import PII_FIELDS, mask_value

if TYPE_CHECKING:
    from .mapping import Mapping as Mapping_
    from .validation import RowOutcome

__all__ = ["OUTCOME_CLASSES", "OutcomeClass", "SampleItem", "StratifiedSample", "outcome_class", "stratum_of"]

OutcomeClass = Literal["passed", "warning", "failed_level1", "failed_level2"]
OUTCOME_CLASSES: tuple[OutcomeClass, ...] = ("passed", "warning", "failed_level1", "failed_level2")

UNKNOWN_REGION = "unknown"
OTHER_REGION = "other"
# Lone surrogates stand for bytes the file's encoding could not decode; they cannot be written as UTF-8.
_SURROGATES = re.compile("[\ud800-\udfff]")


class SampleItem(msgspec.Struct, frozen=True):
    """One sampled row: the source row as read (by column) and the canonical record the
    mapping made of it (by field; empty when level 1 made none), both masked."""

    row: int
    stratum: str
    source: dict[str, str | None]
    canonical: dict[str, str | None]

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "stratum": self.stratum, "source": self.source, "canonical": self.canonical}


def outcome_class(outcome: RowOutcome) -> OutcomeClass:
    """Where validation left the row: the first level with an error, else whether it warned."""
    errors = [finding for finding in outcome.findings if finding.severity == "error"]
    if outcome.record is None or any(finding.level == 1 for finding in errors):
        return "failed_level1"
    if errors:
        return "failed_level2"
    if outcome.findings:
        return "warning"
    return "passed"


def stratum_of(region: str, outcome: OutcomeClass) -> str:
    return f"{region}/{outcome}"


class StratifiedSample:
    """Offer every validated row; ``items()`` is the sample.

    ``column_fields`` maps source columns to the canonical fields the mapping fills
    from them, so a mapped column is masked as its field; an unmapped column is masked
    by what its name suggests (``sandbox.masking.mask_value``).
    """

    def __init__(
        self,
        seed: int,
        per_stratum: int,
        *,
        column_fields: Mapping[str, str] | None = None,
        max_regions: int = 500,
    ) -> None:
        if per_stratum < 1:
            raise ValueError("per_stratum must be at least 1")
        if max_regions < 1:
            raise ValueError("max_regions must be at least 1")
        self.seed = seed
        self.per_stratum = per_stratum
        self.max_regions = max_regions
        self._column_fields = dict(column_fields or {})
        self._key = hashlib.blake2b(str(seed).encode(), digest_size=32).digest()
        # Per stratum a max-heap (negated priorities) of the kept rows, and their row numbers.
        self._heaps: dict[str, list[tuple[int, int, SampleItem]]] = {}
        self._kept: dict[str, set[int]] = {}
        self._seen: dict[str, int] = {}
        self._regions: set[str] = set()

    @classmethod
    def for_mapping(cls, mapping: Mapping_, *, seed: int, per_stratum: int, max_regions: int = 500) -> StratifiedSample:
        """A sample that masks each mapped column as the canonical field the mapping fills from it."""
        column_fields = {column: field for field, column in mapping.field_columns.items()}
        return cls(seed, per_stratum, column_fields=column_fields, max_regions=max_regions)

    def offer(self, outcome: RowOutcome) -> bool:
        """Consider one row; True when it is (for now) in the sample."""
        row = outcome.source.number
        stratum = stratum_of(self._region(outcome), outcome_class(outcome))
        kept = self._kept.setdefault(stratum, set())
        if row in kept:
            return True
        heap = self._heaps.setdefault(stratum, [])
        self._seen[stratum] = self._seen.get(stratum, 0) + 1
        priority = self._priority(row)
        if len(heap) < self.per_stratum:
            heapq.heappush(heap, (-priority, -row, self._item(outcome, stratum)))
            kept.add(row)
            return True
        largest, largest_row = -heap[0][0], -heap[0][1]
        if (priority, row) >= (largest, largest_row):
            return False
        heapq.heapreplace(heap, (-priority, -row, self._item(outcome, stratum)))
        kept.discard(largest_row)
        kept.add(row)
        return True

    def items(self) -> list[SampleItem]:
        """The sample, ordered by stratum and row."""
        items = [entry[2] for heap in self._heaps.values() for entry in heap]
        return sorted(items, key=lambda item: (item.stratum, item.row))

    def strata(self) -> dict[str, int]:
        """Rows offered per stratum."""
        return dict(sorted(self._seen.items()))

    # -- internals ----------------------------------------------------------------

    def _priority(self, row: int) -> int:
        digest = hashlib.blake2b(row.to_bytes(8, "big", signed=True), key=self._key, digest_size=8).digest()
        return int.from_bytes(digest, "big")

    def _region(self, outcome: RowOutcome) -> str:
        region = outcome.record.region if outcome.record is not None else UNKNOWN_REGION
        if region in self._regions:
            return region
        if len(self._regions) >= self.max_regions:
            return OTHER_REGION
        self._regions.add(region)
        return region

    def _item(self, outcome: RowOutcome, stratum: str) -> SampleItem:
        source = {
            column: _clean(mask_value(self._mask_key(column), value)) for column, value in outcome.source.values.items()
        }
        canonical: dict[str, str | None] = {}
        if outcome.record is not None:
            for field in outcome.record.__struct_fields__:
                if field == "row":
                    continue
                canonical[field] = _clean(mask_value(field, _canonical_text(getattr(outcome.record, field))))
        return SampleItem(row=outcome.source.number, stratum=stratum, source=source, canonical=canonical)

    def _mask_key(self, column: str) -> str:
        field = self._column_fields.get(column)
        if field is None:
            return column  # unmapped: judged by the column's name
        # A mapped column is masked as its field; a non-PII field whose column name looks like PII is masked anyway.
        return field if field in PII_FIELDS else column


def _canonical_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple | list):
        return ",".join(str(part) for part in value)
    return str(value)


def _clean(value: str | None) -> str | None:
    return None if value is None else _SURROGATES.sub("\ufffd", value)
