"""The run store on SQLite and PostgreSQL: runs, validation batches, the replay
checkpoint in the batch's transaction, the lease, sign-off with its audit event."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.auth import ClientStore
from gateway.encryption import FieldCipher, Keyring
from gateway.store import audit_events, create_engine, upgrade
from sandbox.findings import Finding
from sandbox.store import ReplayedRow, RowValidation, RunBusy, RunStore, SampleRow, rows, runs


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[tuple[RunStore, str]]:
    engine = create_engine(database_url)
    await upgrade(engine)
    issued = await ClientStore(engine, FieldCipher(Keyring.generate())).create("tests", "admin", sandbox=True)
    try:
        yield RunStore(engine), issued.client.id
    finally:
        await engine.dispose()


async def _run(store: RunStore, client_id: str, run_id: str = "mig_1", **kw: Any):
    values: dict[str, Any] = dict(
        client_id=client_id, source_file="employees.csv", source_sha256="a" * 64, source_bytes=10,
        mapping_file="mapping.toml", mapping_sha256="b" * 64, batch_size=2, concurrency=2, seed=7, per_stratum=3,
    )
    values.update(kw)
    return await store.create(run_id, **values)


def _validated(row: int, *, passed: bool = True, warn: bool = False) -> RowValidation:
    findings = []
    if not passed:
        findings.append(Finding(row, 2, "invalid_id_number", "bad check digit", field="id_number", column="身份证号",
                                value="4401**********0214"))
    if warn:
        findings.append(Finding(row, 2, "gender_mismatch", "gender differs", severity="warning"))
    return RowValidation(row, "passed", "passed" if passed else "failed", int(warn), "430100", findings)


async def test_a_new_run_is_validating_and_held_by_its_creator(store: tuple[RunStore, str]) -> None:
    runs_, client_id = store
    run = await _run(runs_, client_id, holder="me")
    assert (run.status, run.phase, run.rows_validated, run.rows_replayed) == ("validating", "validating", 0, 0)
    assert run.lease_holder == "me" and run.locked_until is not None
    assert run.started_at.tzinfo is not None
    assert await runs_.get("mig_1", client_id="someone-else") is None


async def test_validation_batches_findings_sample_and_counts(store: tuple[RunStore, str]) -> None:
    runs_, client_id = store
    await _run(runs_, client_id)
    await runs_.save_validation_batch("mig_1", [_validated(2), _validated(3, passed=False)], rows_validated=2)
    await runs_.save_validation_batch(
        "mig_1", [_validated(4, warn=True), RowValidation(5, "failed", None, 0, None, [
            Finding(5, 1, "unparseable_value", "not a date", field="hire_date", column="入职日期", value="2024-13-01")
        ])], rows_validated=4,
    )
    replay_total = await runs_.finish_validation(
        "mig_1", rows_total=4, source_format="csv", source_encoding="gbk",
        sample_rows=[SampleRow(3, "430100/failed_level2", {"姓名": "王*"}, {"name": "王*"})],
    )
    assert replay_total == 2  # rows 2 and 4
    run = await runs_.get("mig_1")
    assert (run.rows_total, run.rows_validated, run.replay_total, run.source_encoding) == (4, 4, 2, "gbk")
    counts = await runs_.level_counts("mig_1")
    assert counts["level1.passed"] == 3 and counts["level1.failed"] == 1
    assert counts["level2.passed"] == 2 and counts["level2.failed"] == 1 and counts["level2.warnings"] == 1
    assert await runs_.rule_counts("mig_1") == [("gender_mismatch", 1), ("invalid_id_number", 1),
                                                ("unparseable_value", 1)]
    [example] = await runs_.rule_examples("mig_1", "unparseable_value", 5)
    assert (example.row_no, example.column_name, example.value) == (5, "入职日期", "2024-13-01")
    [item] = await runs_.sample_rows("mig_1")
    assert item.source == {"姓名": "王*"} and item.stratum == "430100/failed_level2"

    # An unfinished validation is forgotten before it is redone.
    await runs_.reset_validation("mig_1")
    assert await runs_.level_counts("mig_1") == {}
    assert await runs_.rule_counts("mig_1") == [] and await runs_.sample_rows("mig_1") == []


async def test_replay_outcomes_and_checkpoint_commit_together(store: tuple[RunStore, str]) -> None:
    runs_, client_id = store
    await _run(runs_, client_id)
    await runs_.save_validation_batch("mig_1", [_validated(r) for r in (2, 3, 4)], rows_validated=3)
    await runs_.finish_validation("mig_1", rows_total=3, source_format="csv", source_encoding="utf-8", sample_rows=[])
    run = await runs_.save_replay_batch("mig_1", [
        ReplayedRow(2, "enrolment", "accepted", reference="HGW-1", resource_id="enr_1"),
        ReplayedRow(3, "enrolment", "rejected", "61001", "name does not match"),
    ], checkpoint_row=3)
    assert (run.rows_replayed, run.batches_committed, run.checkpoint_row) == (2, 1, 3)
    assert await runs_.replayed_rows("mig_1") == {2, 3}
    assert (await runs_.outcome_of("mig_1", 2)).reference == "HGW-1"
    assert (await runs_.level_counts("mig_1"))["replay.accepted"] == 1

    # The checkpoint write fails (the process dies there): the batch's outcomes are not kept either.
    def fail_checkpoint(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE MIGRATION_RUNS"):
            raise RuntimeError("killed while writing the checkpoint")

    sa.event.listen(runs_.engine.sync_engine, "before_cursor_execute", fail_checkpoint)
    try:
        with pytest.raises(RuntimeError, match="checkpoint"):
            await runs_.save_replay_batch("mig_1", [ReplayedRow(4, "enrolment", "accepted")], checkpoint_row=4)
    finally:
        sa.event.remove(runs_.engine.sync_engine, "before_cursor_execute", fail_checkpoint)
    run = await runs_.get("mig_1")
    assert (run.rows_replayed, run.batches_committed, run.checkpoint_row) == (2, 1, 3)
    assert await runs_.replayed_rows("mig_1") == {2, 3}

    groups = await runs_.outcome_groups("mig_1")
    assert ("rejected", "61001", "name does not match", 1) in groups
    assert await runs_.outcome_examples("mig_1", "accepted", None, None, 5) == [2]


async def test_one_holder_at_a_time_until_the_lease_runs_out(store: tuple[RunStore, str]) -> None:
    runs_, client_id = store
    await _run(runs_, client_id, holder="first", lease_seconds=30)
    with pytest.raises(RunBusy):
        await runs_.claim("mig_1", "second")
    await runs_.claim("mig_1", "first")  # the holder may renew its claim
    assert await runs_.renew("mig_1", "first")
    assert not await runs_.renew("mig_1", "second")
    # A holder that died stops renewing: once the lease has run out, another takes over.
    await runs_.update("mig_1", locked_until=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1))
    await runs_.claim("mig_1", "second")
    assert (await runs_.get("mig_1")).lease_holder == "second"
    await runs_.finish("mig_1", "interrupted")
    run = await runs_.get("mig_1")
    assert run.lease_holder is None and run.status == "interrupted" and run.finished_at is not None


async def test_sign_off_is_recorded_once_and_audited(store: tuple[RunStore, str]) -> None:
    runs_, client_id = store
    await _run(runs_, client_id)
    run = await runs_.sign_off("mig_1", reviewer="Li Hua", note="sample checked", client_id=client_id)
    assert run is not None and run.signed_off_by == "Li Hua" and run.sign_off_note == "sample checked"
    assert await runs_.sign_off("mig_1", reviewer="Someone Else", note=None, client_id=client_id) is None
    async with runs_.engine.connect() as conn:
        audited = (await conn.execute(
            sa.select(audit_events.c.operation, audit_events.c.gateway_id, audit_events.c.outcome)
        )).all()
        stored = (await conn.execute(sa.select(runs.c.signed_off_by).where(runs.c.id == "mig_1"))).scalar_one()
        assert (await conn.execute(sa.select(sa.func.count()).select_from(rows))).scalar_one() == 0
    assert audited == [("sandbox.migration.sign_off", "mig_1", "signed off by Li Hua")]
    assert stored == "Li Hua"
