"""Level 3 sampling: seeded, stratified by region × outcome, bounded, masked."""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec
import pytest

from sandbox.records import MigrationRecord
from sandbox.sampling import OUTCOME_CLASSES, SampleItem, StratifiedSample, outcome_class

REGIONS = ("430100", "440100", "420100")
ID_NUMBER = "440104199003120213"


@dataclass(frozen=True)
class FakeSourceRow:
    number: int
    values: dict[str, str | None]
    problem: str | None = None


@dataclass(frozen=True)
class FakeFinding:
    row: int
    level: int
    rule: str
    severity: str = "error"


@dataclass(frozen=True)
class FakeOutcome:
    """The documented shape of ``sandbox.validation.RowOutcome``."""

    source: FakeSourceRow
    record: MigrationRecord | None
    findings: list[FakeFinding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.record is not None and not any(f.severity == "error" for f in self.findings)


def _record(row: int, region: str, *, id_number: str = ID_NUMBER, name: str = "王芳") -> MigrationRecord:
    return MigrationRecord(
        row=row,
        id_number=id_number,
        name=name,
        gender="female",
        birth_date=dt.date(1990, 3, 12),
        employer_uscc="91430100MA4L16JQ9D",
        employer_name="长沙示例科技有限公司",
        region=region,
        hire_date=dt.date(2024, 3, 1),
        leave_date=None,
        employment_status="active",
        contributing=True,
        insurance_types=("pension", "medical"),
        contribution_base=Decimal("8000.00"),
        period="2024-03",
        previous_region=None,
    )


def _outcome(row: int, region: str, kind: str) -> FakeOutcome:
    source = FakeSourceRow(row, {"姓名": "王芳", "证件号码": ID_NUMBER, "参保地": region, "入职日期": "2024/3/1"})
    if kind == "failed_level1":
        return FakeOutcome(source, None, [FakeFinding(row, 1, "unparseable_value")])
    findings = {
        "passed": [],
        "warning": [FakeFinding(row, 2, "likely_duplicate_person", "warning")],
        "failed_level2": [FakeFinding(row, 2, "invalid_id_number")],
    }[kind]
    return FakeOutcome(source, _record(row, region), findings)


def _dataset(rows: int = 1200) -> list[FakeOutcome]:
    """Rows cycling through regions, with every outcome class in every region (level-1
    failures carry no record, so their region is unknown)."""
    kinds = ("passed", "passed", "passed", "warning", "failed_level2", "failed_level1")
    return [_outcome(row, REGIONS[row % 3], kinds[(row // 3) % len(kinds)]) for row in range(2, rows + 2)]


def _sample(outcomes, seed: int = 7, per_stratum: int = 4, **options) -> StratifiedSample:
    sample = StratifiedSample(seed, per_stratum, **options)
    for outcome in outcomes:
        sample.offer(outcome)
    return sample


def _rows(sample: StratifiedSample) -> list[tuple[str, int]]:
    return [(item.stratum, item.row) for item in sample.items()]


def test_same_seed_same_sample_whatever_the_batches_or_order() -> None:
    data = _dataset()
    first = _sample(data)
    assert _rows(first) == _rows(_sample(data))
    assert [item.as_dict() for item in first.items()] == [item.as_dict() for item in _sample(data).items()]

    # batches offered by another sampler per batch boundary, and in a shuffled order
    shuffled = list(data)
    random.Random(3).shuffle(shuffled)
    assert _rows(_sample(shuffled)) == _rows(first)


def test_different_seed_different_sample() -> None:
    data = _dataset()
    samples = {tuple(_rows(_sample(data, seed=seed))) for seed in range(5)}
    assert len(samples) == 5


def test_every_stratum_is_represented() -> None:
    sample = _sample(_dataset())
    strata = {item.stratum for item in sample.items()}
    expected = {f"{region}/{kind}" for region in REGIONS for kind in ("passed", "warning", "failed_level2")}
    expected.add("unknown/failed_level1")
    assert strata == expected
    assert set(sample.strata()) == expected
    assert sum(sample.strata().values()) == 1200
    # a rare stratum (one row in 1,200) is still in the sample
    data = _dataset()
    data.append(_outcome(5000, "330100", "warning"))
    assert "330100/warning" in {item.stratum for item in _sample(data).items()}


def test_size_is_bounded_per_stratum_and_regions_are_capped() -> None:
    sample = _sample(_dataset(6000), per_stratum=4)
    counts: dict[str, int] = {}
    for item in sample.items():
        counts[item.stratum] = counts.get(item.stratum, 0) + 1
    assert set(counts.values()) == {4}
    assert len(sample.items()) == 4 * 10

    many_regions = [_outcome(row, f"{410000 + row:06d}", "passed") for row in range(2, 2002)]
    capped = _sample(many_regions, per_stratum=2, max_regions=10)
    assert len(capped.strata()) == 11  # ten regions (one row each) and "other"
    assert len(capped.items()) == 10 + 2
    assert "other/passed" in {item.stratum for item in capped.items()}
    assert capped.strata()["other/passed"] == 2000 - 10


def test_each_row_is_equally_likely_to_be_sampled() -> None:
    # 40 rows in one stratum, 4 kept: over 500 seeds each row should be kept ~50 times
    data = [_outcome(row, "430100", "passed") for row in range(2, 42)]
    hits = dict.fromkeys(range(2, 42), 0)
    for seed in range(500):
        for item in _sample(data, seed=seed).items():
            hits[item.row] += 1
    assert sum(hits.values()) == 500 * 4
    assert min(hits.values()) > 25 and max(hits.values()) < 80, hits


def test_a_row_offered_twice_is_kept_once() -> None:
    data = _dataset(300)
    sample = _sample(data + data)  # a resumed run validates the file again
    rows = [item.row for item in sample.items()]
    assert len(rows) == len(set(rows))
    assert _rows(sample) == _rows(_sample(data))


def test_outcome_classes() -> None:
    assert [outcome_class(_outcome(2, "430100", kind)) for kind in OUTCOME_CLASSES] == list(OUTCOME_CLASSES)
    # a record with a level-1 error (a field that did not parse) failed at level 1
    mixed = FakeOutcome(FakeSourceRow(3, {}), _record(3, "430100"), [FakeFinding(3, 1, "unknown_code")])
    assert outcome_class(mixed) == "failed_level1"


def test_values_are_masked_on_both_sides() -> None:
    outcome = _outcome(2, "430100", "passed")
    outcome.source.values["联系人"] = "Wang Fang"  # a column no heuristic recognises, mapped to name
    outcome.source.values["开户账号"] = "6222021234567890123"  # unmapped, looks like an account
    sample = _sample([outcome], column_fields={"联系人": "name", "证件号码": "id_number", "入职日期": "hire_date"})
    (item,) = sample.items()
    assert isinstance(item, SampleItem)
    assert item.source == {
        "姓名": "王*",
        "证件号码": "4401**********0213",
        "参保地": "430100",
        "入职日期": "2024/3/1",
        "联系人": "W*** F***",
        "开户账号": "***************0123",
    }
    assert item.canonical["id_number"] == "4401**********0213"
    assert item.canonical["name"] == "王*"
    assert item.canonical["hire_date"] == "2024-03-01"
    assert item.canonical["insurance_types"] == "pension,medical"
    assert item.canonical["contribution_base"] == "8000.00"
    assert item.canonical["contributing"] == "true"
    assert item.canonical["leave_date"] is None
    assert "row" not in item.canonical
    text = json.dumps([i.as_dict() for i in sample.items()], ensure_ascii=False)
    for secret in (ID_NUMBER, "王芳", "Wang Fang", "6222021234567890123"):
        assert secret not in text


def test_a_level1_failure_has_its_source_row_and_no_canonical_record() -> None:
    (item,) = _sample([_outcome(9, "430100", "failed_level1")]).items()
    assert item.stratum == "unknown/failed_level1"
    assert item.canonical == {}
    assert item.source["证件号码"] == "4401**********0213"


def test_undecodable_bytes_become_replacement_characters() -> None:
    outcome = FakeOutcome(FakeSourceRow(4, {"部门": "财\udcb2务"}, problem="undecodable"), None, [])
    (item,) = _sample([outcome]).items()
    assert item.source["部门"] == "财\ufffd务"
    msgspec.json.encode(item)  # writable as UTF-8


@pytest.mark.parametrize("per_stratum", [0, -1])
def test_per_stratum_must_be_positive(per_stratum: int) -> None:
    with pytest.raises(ValueError):
        StratifiedSample(1, per_stratum)


def test_the_example_export_through_real_validation() -> None:
    from pathlib import Path

    from sandbox.mapping import load_mapping
    from sandbox.sources import open_source
    from sandbox.validation import validate

    folder = Path(__file__).resolve().parents[3] / "examples" / "migration"
    mapping = load_mapping(folder / "mapping.toml")
    manifest = json.loads((folder / "employees.csv.manifest.json").read_text(encoding="utf-8"))

    def run(batch: int) -> tuple[StratifiedSample, set[str]]:
        source = open_source(folder / "employees.csv", encoding=mapping.source_encoding)
        sample = StratifiedSample.for_mapping(mapping, seed=11, per_stratum=3)
        outcomes = list(validate(source, mapping))
        for start in range(0, len(outcomes), batch):
            for outcome in outcomes[start : start + batch]:
                sample.offer(outcome)
        return sample, {_id for o in outcomes if o.record is not None for _id in [o.record.id_number]}

    first, id_numbers = run(7)
    second, _ = run(100)
    assert _rows(first) == _rows(second)
    assert set(first.strata()) == {item.stratum for item in first.items()}
    assert {"430100/passed", "unknown/failed_level1"} <= set(first.strata())
    assert {stratum.split("/")[1] for stratum in first.strata()} == set(OUTCOME_CLASSES)
    assert sum(first.strata().values()) == manifest["rows"]
    text = json.dumps([item.as_dict() for item in first.items()], ensure_ascii=False)
    assert not [number for number in id_numbers if number in text]
