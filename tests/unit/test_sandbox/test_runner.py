"""The pipeline over a real store and a real data file, with services that stand in
for the gateway's: batches and checkpoints, progress, stop and resume."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.auth import ClientStore
from gateway.encryption import FieldCipher, Keyring
from gateway.store import create_engine, upgrade
from sandbox.progress import Progress
from sandbox.runner import MigrationRunner, RunOptions, prepare
from sandbox.store import RunStore
from tests.integration.test_sandbox_migrations import bulk_lines, line, write_case

ROWS = 23


class AcceptingEnrolments:
    """Accepts every enrolment; counts calls per idempotency token; can stop the run."""

    def __init__(self) -> None:
        self.tokens: dict[str, int] = {}
        self.stop_after: int | None = None
        self.stop: asyncio.Event | None = None

    async def enrol(self, client: Any, body: Any, upstreams: Any, context: Any, token: str) -> Any:
        self.tokens[token] = self.tokens.get(token, 0) + 1
        if self.stop is not None and self.stop_after is not None and len(self.tokens) >= self.stop_after:
            self.stop.set()
        await asyncio.sleep(0)
        return SimpleNamespace(id=f"enr_{len(self.tokens)}", status="accepted", reference=f"HGW-{token[-8:]}")


@pytest.fixture
async def setting(database_url: str, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    engine = create_engine(database_url)
    await upgrade(engine)
    issued = await ClientStore(engine, FieldCipher(Keyring.generate())).create("tests", "admin", sandbox=True)
    bad = line(99, "Broken", "440104199003120214", ("X", "91440101MA59BX4C3Y"), "广州市")
    data, mapping = write_case(tmp_path / "case", [*bulk_lines(ROWS), bad])
    try:
        yield dict(store=RunStore(engine), client=issued.client, prepared=prepare(data, mapping), tmp_path=tmp_path)
    finally:
        await engine.dispose()


def runner_for(setting: dict[str, Any], services: AcceptingEnrolments, **kw: Any) -> MigrationRunner:
    return MigrationRunner(setting["store"], SimpleNamespace(enrolments=services), setting["client"],
                           SimpleNamespace(environment="sandbox"), **kw)  # type: ignore[arg-type]


async def test_a_run_validates_samples_replays_in_batches_and_reports_progress(setting: dict[str, Any]) -> None:
    services = AcceptingEnrolments()
    events: list[Progress] = []
    runner = runner_for(setting, services, listener=events.append)
    run = await runner.create(setting["prepared"], RunOptions(batch_size=5, concurrency=3, seed=3, per_stratum=2))
    assert run.status == "validating"
    run = await runner.execute(run, setting["prepared"])

    assert (run.status, run.phase, run.rows_total, run.replay_total, run.rows_replayed) == (
        "completed", "done", ROWS + 1, ROWS, ROWS)
    assert run.batches_committed == 5 and run.checkpoint_row == ROWS + 1  # 5+5+5+5+3 rows; the last data row
    assert run.lease_holder is None and run.finished_at is not None
    assert len(services.tokens) == ROWS and set(services.tokens.values()) == {1}
    store: RunStore = setting["store"]
    assert await store.replayed_rows(run.id) == set(range(2, ROWS + 2))
    assert (await store.outcome_of(run.id, ROWS + 2)).outcome is None  # failed level 2: never sent
    assert await store.sample_rows(run.id)

    replaying = [e.done for e in events if e.phase == "replaying"]
    assert replaying == sorted(replaying) and replaying[-1] == ROWS
    assert all(e.total == ROWS for e in events if e.phase == "replaying")
    assert any(e.phase == "validating" and e.done == ROWS + 1 for e in events)


async def test_a_stopped_run_is_interrupted_after_its_batch_and_resumes_where_it_stopped(
    setting: dict[str, Any],
) -> None:
    services = AcceptingEnrolments()
    stop = asyncio.Event()
    services.stop, services.stop_after = stop, 7  # asked to stop during the second batch
    first = runner_for(setting, services, stop=stop)
    run = await first.create(setting["prepared"], RunOptions(batch_size=5, concurrency=2))
    run = await first.execute(run, setting["prepared"])
    assert run.status == "interrupted" and run.phase == "replaying"
    assert run.rows_replayed == 10 and run.batches_committed == 2  # the batch under way was finished

    # Another process resumes it: the same files are needed, and nothing is sent twice.
    second = runner_for(setting, services)
    other_data, _ = write_case(setting["tmp_path"] / "other", bulk_lines(3))
    with pytest.raises(ValueError, match="not the data file"):
        await second.claim(run.id, prepare(other_data, setting["prepared"].mapping_path))
    with pytest.raises(LookupError):
        await second.claim("mig_unknown", setting["prepared"])
    resumed = await second.claim(run.id, setting["prepared"])
    run = await second.execute(resumed, setting["prepared"])
    assert run.status == "completed" and run.rows_replayed == ROWS
    assert len(services.tokens) == ROWS and set(services.tokens.values()) == {1}


async def test_a_run_stopped_while_validating_validates_again_on_resume(setting: dict[str, Any]) -> None:
    services = AcceptingEnrolments()
    stop = asyncio.Event()
    stop.set()
    runner = runner_for(setting, services, stop=stop)
    run = await runner.create(setting["prepared"], RunOptions(batch_size=5))
    run = await runner.execute(run, setting["prepared"])
    assert (run.status, run.phase, run.rows_replayed) == ("interrupted", "validating", 0)
    assert not services.tokens

    run = await runner_for(setting, services).execute(
        await runner_for(setting, services).claim(run.id, setting["prepared"]), setting["prepared"])
    assert run.status == "completed" and run.rows_validated == ROWS + 1 and len(services.tokens) == ROWS
    counts = await setting["store"].level_counts(run.id)
    assert counts["level1.passed"] == ROWS + 1 and counts["level2.failed"] == 1  # each row counted once

