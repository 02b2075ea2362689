"""Level 2: every rule with a failing and a passing record; cross-row state keyed by
hashes; the pipeline over the example export matches its manifest; determinism."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from gateway.policy import PolicyVersion, shipped_regions
from sandbox.errors import MappingError
from sandbox.findings import RULES, Finding
from sandbox.mapping import load_mapping, parse_mapping
from sandbox.records import MigrationRecord
from sandbox.sources import SourceRow, open_source
from sandbox.validation import LogicChecker, RowOutcome, validate

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "migration"
LI_MING = "430102199511080356"  # born 1995-11-08, male
WANG_FANG = "440104199003120213"  # born 1990-03-12


def record(**changes) -> MigrationRecord:
    base = MigrationRecord(
        row=2, id_number=LI_MING, name="李明", gender="male", birth_date=dt.date(1995, 11, 8),
        employer_uscc="91430100MA4L16JQ9D", employer_name="长沙示例制造有限公司", region="430100",
        hire_date=dt.date(2024, 4, 8), leave_date=None, employment_status="active", contributing=True,
        insurance_types=("pension", "medical"), contribution_base=Decimal("6000.00"), period="2024-06",
        previous_region=None,
    )  # fmt: skip
    return msgspec.structs.replace(base, **changes)


def rules(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings}


def check(*records: MigrationRecord, catalogue=None) -> list[list[Finding]]:
    checker = LogicChecker(catalogue)
    return [checker.check(r) for r in records]


def test_a_clean_record_has_no_findings():
    assert check(record()) == [[]]


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"id_number": "440104199003120214"}, "invalid_id_number"),  # bad check digit
        ({"id_number": "4301021995110803"}, "invalid_id_number"),  # too short
        ({"employer_uscc": "91430100MA4L16JQ9E"}, "invalid_uscc"),
        ({"birth_date": dt.date(1995, 11, 9)}, "birth_date_mismatch"),
        ({"gender": "female"}, "gender_mismatch"),
        ({"hire_date": dt.date(2011, 11, 7)}, "hired_before_16"),  # the day before the 16th birthday
        ({"leave_date": dt.date(2024, 4, 8), "employment_status": "departed", "contributing": False}, "leave_before_hire"),
        ({"employment_status": "departed", "contributing": False}, "departed_without_leave_date"),
        ({"contribution_base": Decimal("3603.99")}, "base_out_of_range"),
        ({"contribution_base": Decimal("18021.01")}, "base_out_of_range"),
        ({"region": "110100"}, "no_policy"),
        ({"leave_date": dt.date(2024, 5, 31), "employment_status": "departed"}, "departed_still_contributing"),
    ],
)
def test_each_rule_on_a_record_alone(changes, rule):
    [findings] = check(record(**changes))
    assert rules(findings) == {rule}
    [finding] = findings
    assert (finding.row, finding.level, finding.severity) == (2, 2, RULES[rule].severity)
    assert LI_MING not in finding.message and "李明" not in finding.message


@pytest.mark.parametrize(
    "changes",
    [
        {"hire_date": dt.date(2011, 11, 8)},  # on the 16th birthday
        {"leave_date": dt.date(2024, 4, 9), "employment_status": "departed", "contributing": False},
        {"contribution_base": Decimal("3604.00")},
        {"contribution_base": Decimal("18021.00")},
        {"contribution_base": None},
        {"gender": None, "birth_date": None},
        {"id_number": "43010219951108035x".upper().replace("035X", "0356")},
    ],
)
def test_boundaries_that_pass(changes):
    assert check(record(**changes)) == [[]]


def test_hired_before_16_uses_the_birth_date_column_when_the_id_is_invalid():
    [findings] = check(record(id_number="440104199003120214", birth_date=dt.date(2010, 1, 1)))
    assert rules(findings) == {"invalid_id_number", "hired_before_16"}


def test_the_base_range_is_the_one_in_force_for_the_period():
    # Changsha: 3,483-17,415 in 2023, 3,604-18,021 in 2024.
    assert check(record(contribution_base=Decimal("3500.00"), period="2023-12")) == [[]]
    [findings] = check(record(contribution_base=Decimal("3500.00"), period="2024-01"))
    assert rules(findings) == {"base_out_of_range"} and "3604.00-18021.00" in findings[0].message


def test_a_given_catalogue_replaces_the_shipped_one():
    shipped = shipped_regions()["430100"].versions[1]
    cut = msgspec.structs.replace(shipped, base_floor=Decimal("6500.00"), version=4, origin="added")
    catalogue: dict[str, list[PolicyVersion]] = {"430100": [cut]}
    [findings] = check(record(), catalogue=catalogue)
    assert rules(findings) == {"base_out_of_range"}
    [findings] = check(record(region="440100"), catalogue=catalogue)
    assert rules(findings) == {"no_policy"}


# -- across rows ----------------------------------------------------------------------


def test_duplicate_id_in_one_region_is_reported_on_the_later_row():
    first, same_region, other_region = check(
        record(row=2), record(row=9, name="李明明"), record(row=12, region="440100", contributing=False)
    )
    assert first == [] and other_region == []
    [finding] = same_region
    assert (finding.rule, finding.row, finding.related_row) == ("duplicate_id", 9, 2)
    assert "4301**********0356" in finding.message and LI_MING not in finding.message


def test_same_name_and_birth_date_under_another_id_is_a_likely_duplicate():
    other_id = "110101199511080013"  # also born 1995-11-08, male
    first, second, different_name = check(
        record(row=2), record(row=5, id_number=other_id, region="440100"), record(row=6, id_number=WANG_FANG, name="王芳",
                                                                                   birth_date=None, gender=None)
    )  # fmt: skip
    assert first == [] and different_name == []
    [finding] = second
    assert (finding.rule, finding.severity, finding.related_row) == ("likely_duplicate_person", "warning", 2)


def test_active_and_contributing_in_two_regions():
    first, departed_elsewhere, active_elsewhere = check(
        record(row=2),
        record(row=3, region="440100", employment_status="departed", contributing=False, leave_date=dt.date(2024, 5, 1)),
        record(row=4, region="420100", employer_uscc="91420100MA4K2QXL25"),
    )
    assert first == [] and departed_elsewhere == []
    [finding] = active_elsewhere
    assert (finding.rule, finding.related_row, finding.field) == ("active_in_two_regions", 2, "region")


def test_cross_row_state_holds_hashes_not_plaintext():
    checker = LogicChecker()
    for row in range(2, 50):
        checker.check(record(row=row, region=["430100", "440100"][row % 2]))
    state = repr([checker._id_in_region, checker._person, checker._active])
    assert LI_MING not in state and "李明" not in state and "1995-11-08" not in state
    assert all(isinstance(key, int) for key in [*checker._id_in_region, *checker._person, *checker._active])


# -- the pipeline -----------------------------------------------------------------------


def test_row_outcome_passed():
    row = SourceRow(2, {})
    warning = Finding(2, 2, "gender_mismatch", "m", severity="warning")
    error = Finding(2, 2, "duplicate_id", "m")
    assert RowOutcome(row, record(), [warning]).passed
    assert not RowOutcome(row, record(), [warning, error]).passed
    assert not RowOutcome(row, None, []).passed


def test_the_example_export_has_exactly_the_defects_of_its_manifest():
    manifest = json.loads((EXAMPLES / "employees.csv.manifest.json").read_text(encoding="utf-8"))
    mapping = load_mapping(EXAMPLES / "mapping.toml")
    source = open_source(EXAMPLES / "employees.csv", encoding=mapping.source_encoding)
    assert source.encoding == "gbk"
    outcomes = list(validate(source, mapping))
    assert len(outcomes) == manifest["rows"]
    found: dict[str, list[int]] = {}
    for outcome in outcomes:
        for finding in outcome.findings:
            found.setdefault(finding.rule, []).append(outcome.source.number)
    assert found == {rule: rows for rule, rows in manifest["defect_rows"].items() if rows}
    assert all(manifest["defects"].values()), "every defect kind is in the example"
    clean = [o for o in outcomes if not o.findings]
    assert len(clean) == manifest["clean_rows"] and len(clean) > manifest["rows"] // 2
    # level-2 findings name the source column of their field
    dup = next(f for o in outcomes for f in o.findings if f.rule == "duplicate_id")
    assert dup.column == "身份证号码" and dup.related_row is not None
    # the documented sandbox persons are clean, Wang Fang as a transfer from Guangzhou
    sandbox = {o.source.number: o for o in outcomes if o.source.number in manifest["sandbox_person_rows"]}
    assert all(o.passed and not o.findings for o in sandbox.values())
    assert [(o.record.id_number, o.record.previous_region) for o in sandbox.values()][0] == (WANG_FANG, "440100")


def test_validating_twice_gives_the_same_outcomes():
    mapping = load_mapping(EXAMPLES / "mapping.toml")
    source = open_source(EXAMPLES / "employees.csv", encoding="gbk")
    assert list(validate(source, mapping)) == list(validate(source, mapping))


def test_a_missing_column_stops_validation_before_any_row(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("姓名\n王芳\n", encoding="utf-8")
    mapping = load_mapping(EXAMPLES / "mapping.toml")
    outcomes = validate(open_source(path), mapping)
    with pytest.raises(MappingError, match="has no column") as exc:
        next(outcomes)
    assert exc.value.file == "mapping.toml" and "'身份证号码'" in str(exc.value)


def test_jsonl_and_xlsx_sources_validate_like_csv(tmp_path):
    import openpyxl

    text = """
    [fields]
    id_number = "id"
    name = "name"
    employer_uscc = { value = "91430100MA4L16JQ9D" }
    region = { value = "430100" }
    hire_date = "hired"
    employment_status = { value = "active" }
    contributing = { value = "yes" }
    insurance_types = { value = "五险" }
    period = { value = "2024-06" }
    """
    mapping = parse_mapping(text)
    jsonl = tmp_path / "e.jsonl"
    jsonl.write_text(f'{{"id": "{LI_MING}", "name": "李明", "hired": "2024-04-08"}}\n"not an object"\n', encoding="utf-8")
    ok, bad = validate(open_source(jsonl), mapping)
    assert ok.passed and ok.record.insurance_types[-1] == "maternity"
    assert (bad.source.number, bad.findings[0].rule) == (2, "malformed_row")

    book = openpyxl.Workbook()
    book.active.append(["id", "name", "hired"])
    book.active.append([LI_MING, "李明", dt.datetime(2024, 4, 8)])
    book.active.append([LI_MING, "李明", dt.datetime(2024, 4, 9)])
    book.save(tmp_path / "e.xlsx")
    first, second = validate(open_source(tmp_path / "e.xlsx"), mapping)
    assert first.passed and first.record.hire_date == dt.date(2024, 4, 8)
    assert [(f.rule, f.related_row) for f in second.findings] == [("duplicate_id", 2)]


def test_id_number_check_agrees_with_python_stdnum():
    import random

    from stdnum.cn import ric

    from sandbox.validation import id_number_problem

    rng = random.Random(7)
    cases = [WANG_FANG, LI_MING, "440104199003120214", "43010219951108035", "440104199002300213", "999999199003120213"]
    for _ in range(3000):
        division = rng.choice(["440104", "430102", "110101", "999999", "431002"])
        body = f"{division}{rng.randint(1950, 2010)}{rng.randint(1, 13):02d}{rng.randint(1, 31):02d}{rng.randint(0, 999):03d}"
        cases.append(body + rng.choice("0123456789X"))
    for number in cases:
        reason, birth = id_number_problem(number)
        assert (reason is None) == ric.is_valid(number), number
        assert birth == (ric.get_birth_date(number) if reason is None else None)
