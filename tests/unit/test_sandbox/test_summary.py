"""The report dict built from the store: exactly the documented shape, counts that
add up, examples per rule and per outcome, sign-off, and nothing unmasked."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import pytest

from gateway.auth import ClientStore
from gateway.encryption import FieldCipher, Keyring
from gateway.store import create_engine, upgrade
from sandbox.findings import Finding
from sandbox.report import render_html, render_json
from sandbox.store import ReplayedRow, RowValidation, RunStore, SampleRow
from sandbox.summary import build_report

PLAINTEXT_ID = re.compile(r"\d{17}[\dX]")


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[RunStore]:
    engine = create_engine(database_url)
    await upgrade(engine)
    issued = await ClientStore(engine, FieldCipher(Keyring.generate())).create("tests", "admin", sandbox=True)
    runs = RunStore(engine)
    await runs.create("mig_r", client_id=issued.client.id, source_file="employees.csv", source_sha256="a" * 64,
                      source_bytes=100, mapping_file="mapping.toml", mapping_sha256="b" * 64, batch_size=2,
                      concurrency=3, seed=5, per_stratum=2)
    try:
        yield runs
    finally:
        await engine.dispose()


def bad_id(row: int) -> Finding:
    return Finding(row, 2, "invalid_id_number", "ID number 4401**********0214 is invalid", field="id_number",
                   column="身份证号码", value="4401**********0214")


async def seed(store: RunStore) -> None:
    validated = [
        RowValidation(2, "passed", "passed", 0, "440100"),
        RowValidation(3, "passed", "passed", 1, "430100", [Finding(3, 2, "gender_mismatch", "gender differs",
                                                                   severity="warning")]),
        RowValidation(4, "passed", "failed", 0, "440100", [bad_id(4)]),
        RowValidation(5, "failed", None, 0, None, [Finding(5, 1, "unparseable_value", "not a date",
                                                           field="hire_date", column="入职日期", value="2024-13-01")]),
        RowValidation(6, "passed", "failed", 0, "440100", [bad_id(6)]),
        RowValidation(7, "passed", "passed", 0, "420100"),
        RowValidation(8, "passed", "passed", 0, "420100"),
    ]
    await store.save_validation_batch("mig_r", validated, rows_validated=7)
    await store.finish_validation("mig_r", rows_total=7, source_format="csv", source_encoding="gbk", sample_rows=[
        SampleRow(4, "440100/failed_level2", {"身份证号码": "4401**********0214"}, {"id_number": "4401**********0214"}),
    ])
    await store.save_replay_batch("mig_r", [
        ReplayedRow(2, "enrolment", "accepted", reference="HGW-1"),
        ReplayedRow(3, "enrolment", "transfer_required", "transfer_required", "actively insured in 440100 (pension)"),
    ], checkpoint_row=3)
    await store.save_replay_batch("mig_r", [
        ReplayedRow(7, "enrolment", "rejected", "B003", "person 420102198805200177 name does not match"),
        ReplayedRow(8, "enrolment", "rejected", "B003", "person 420102198805200177 name does not match"),
    ], checkpoint_row=8)


async def test_the_report_has_the_documented_shape_and_counts(store: RunStore) -> None:
    await seed(store)
    await store.finish("mig_r", "completed", phase="done")
    report = await build_report(store, "mig_r", examples=1)

    assert list(report) == ["run", "summary", "rules", "sample", "sign_off", "replay"]
    run = report["run"]
    assert set(run) == {"id", "status", "source", "mapping", "started_at", "finished_at", "batch_size", "concurrency",
                        "seed"}
    assert run["source"] == {"file": "employees.csv", "format": "csv", "encoding": "gbk", "rows": 7}
    assert (run["status"], run["mapping"], run["batch_size"], run["concurrency"], run["seed"]) == (
        "completed", "mapping.toml", 2, 3, 5)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", run["started_at"]) and run["finished_at"].endswith("Z")

    assert report["summary"] == {
        "rows": 7,
        "level1": {"passed": 6, "failed": 1},
        "level2": {"passed": 4, "failed": 2, "warnings": 1},
        "replay": {"accepted": 1, "rejected": 2, "transfer_required": 1, "upstream_unavailable": 0,
                   "not_replayed": 3},
    }
    rules = {r["rule"]: r for r in report["rules"]}
    assert [r["rule"] for r in report["rules"]][0] == "invalid_id_number"  # the most frequent first
    assert rules["invalid_id_number"] == {
        "rule": "invalid_id_number", "level": 2, "title": "Resident ID number is invalid", "severity": "error",
        "count": 2, "examples": [{"row": 4, "column": "身份证号码", "field": "id_number", "value": "4401**********0214",
                                  "message": "ID number 4401**********0214 is invalid", "related_row": None}],
    }
    assert rules["gender_mismatch"]["severity"] == "warning" and rules["unparseable_value"]["level"] == 1
    assert report["sample"] == {"seed": 5, "per_stratum": 2, "items": [
        {"row": 4, "stratum": "440100/failed_level2", "source": {"身份证号码": "4401**********0214"},
         "canonical": {"id_number": "4401**********0214"}}]}
    assert report["sign_off"] is None
    by_outcome = report["replay"]["by_outcome"]
    assert by_outcome[0] == {"outcome": "rejected", "code": "B003", "message": "person 4201**********0177 name does "
                             "not match", "count": 2, "examples": [7]}
    assert {(g["outcome"], g["count"]) for g in by_outcome} == {("rejected", 2), ("accepted", 1),
                                                                 ("transfer_required", 1)}

    # Both renderings take it as it is, and nothing in any of them is an unmasked ID number.
    for text in (json.dumps(report, ensure_ascii=False), render_json(report).decode(), render_html(report)):
        assert not PLAINTEXT_ID.search(text)
    assert json.loads(render_json(report)) == report


async def test_sign_off_and_a_run_still_validating(store: RunStore) -> None:
    await store.save_validation_batch("mig_r", [RowValidation(2, "passed", "passed", 0, "440100")], rows_validated=1)
    early = await build_report(store, "mig_r")
    assert early["run"]["status"] == "validating" and early["run"]["finished_at"] is None
    assert early["summary"]["rows"] == 1 and early["summary"]["replay"]["not_replayed"] == 1
    assert early["run"]["source"]["rows"] == 1

    await store.finish("mig_r", "completed", phase="done")
    await store.sign_off("mig_r", reviewer="Chen Lu", note="checked 2 rows", client_id=None)
    signed = (await build_report(store, "mig_r"))["sign_off"]
    assert signed["reviewer"] == "Chen Lu" and signed["note"] == "checked 2 rows" and signed["at"].endswith("Z")
    with pytest.raises(LookupError):
        await build_report(store, "mig_missing")
