"""The migration pipeline: validate → sample → replay in batches, with a checkpoint
after every batch, and resume.

1. ``prepare`` loads the mapping, opens the data file and checks its columns: a
   file-level problem (``SourceError``, ``MappingError``) stops here, before a run
   exists.
2. Validation streams the file once (levels 1 and 2), storing each row's result and
   findings in batches and offering every row to the level-3 sample.
3. Replay streams the file again (validation is deterministic, and nothing personal
   was stored), takes the rows that passed and whose outcome is not stored yet, and
   sends them through the gateway (``sandbox.replay``) ``concurrency`` at a time in
   batches of ``batch_size``; each batch's outcomes and the checkpoint after it are
   committed in one transaction.

A stop request (Ctrl-C, the gateway shutting down) is honoured after the current
batch: the run is ``interrupted`` and ``resume`` picks it up. A run killed outright
resumes the same way: rows with a stored outcome are skipped, and a row whose send
was under way is asked about by its reference before anything is sent again.

One process works on a run at a time: it holds a lease on the run, renewed while
it works.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gateway.auth import Client
from gateway.ids import new_id
from gateway.registry import UpstreamSet

from .errors import MigrationError
from .findings import Finding
from .mapping import Mapping, load_mapping
from .progress import Progress, ProgressListener
from .records import MigrationRecord
from .replay import Replayer, ReplayServices
from .sampling import StratifiedSample
from .sources import Source, open_source
from .store import ReplayedRow, RowValidation, Run, RunStore, SampleRow
from .validation import Policies, RowOutcome, validate

__all__ = ["MigrationRunner", "Prepared", "RunOptions", "prepare"]

log = logging.getLogger("hr_gateway.sandbox.runner")

T = TypeVar("T")

#: Rows pulled from the validating iterator per hop to a worker thread (keeps the
#: event loop free for the gateway's requests while a file is being checked).
_CHUNK = 256
#: Validation results are written in batches of at least this many rows.
_VALIDATION_BATCH = 1000


@dataclass(frozen=True, slots=True)
class RunOptions:
    batch_size: int = 200
    concurrency: int = 8
    seed: int = 0
    per_stratum: int = 5

    def __post_init__(self) -> None:
        for name in ("batch_size", "concurrency", "per_stratum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A data file and a mapping that fit each other, with their fingerprints."""

    data_path: Path
    mapping_path: Path
    mapping: Mapping
    source: Source
    data_sha256: str
    data_bytes: int
    mapping_sha256: str

    def reopen(self) -> Source:
        return open_source(self.data_path, encoding=self.mapping.source_encoding, sheet=self.mapping.sheet)


def _sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def prepare(data_path: str | Path, mapping_path: str | Path) -> Prepared:
    """Load and check both files (blocking file IO: call it in a worker thread from a
    running loop). Raises ``MappingError`` / ``SourceError`` with the file and place."""
    data_path, mapping_path = Path(data_path), Path(mapping_path)
    mapping = load_mapping(mapping_path)
    source = open_source(data_path, encoding=mapping.source_encoding, sheet=mapping.sheet)
    mapping.check_columns(source.columns)
    data_sha, data_bytes = _sha256(data_path)
    mapping_sha, _ = _sha256(mapping_path)
    return Prepared(data_path, mapping_path, mapping, source, data_sha, data_bytes, mapping_sha)


def _estimate_rows(prepared: Prepared) -> int | None:
    """Data rows in the file, counted by line ends (a quoted line break in a CSV cell
    makes it an estimate; XLSX is not counted)."""
    if prepared.source.format not in ("csv", "jsonl"):
        return None
    lines = 0
    last = b""
    with prepared.data_path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    if last not in (b"\n", b""):
        lines += 1
    return max(0, lines - 1) if prepared.source.format == "csv" else lines


def _take(iterator: Iterator[T], count: int) -> list[T]:
    taken = []
    for item in iterator:
        taken.append(item)
        if len(taken) >= count:
            break
    return taken


def _validation_of(outcome: RowOutcome) -> RowValidation:
    findings: list[Finding] = outcome.findings
    errors = [f for f in findings if f.severity == "error"]
    level1_failed = outcome.record is None or any(f.level == 1 for f in errors)
    level2 = None if level1_failed else ("failed" if errors else "passed")
    return RowValidation(
        row=outcome.source.number,
        level1="failed" if level1_failed else "passed",
        level2=level2,
        warnings=sum(1 for f in findings if f.severity == "warning"),
        region=outcome.record.region if outcome.record is not None else None,
        findings=findings,
    )


class RunStopped(Exception):
    """The run was asked to stop and did, after a batch (status ``interrupted``)."""


class MigrationRunner:
    def __init__(
        self,
        store: RunStore,
        services: ReplayServices,
        client: Client,
        upstreams: UpstreamSet,
        *,
        policies: Policies | None = None,
        listener: ProgressListener | None = None,
        stop: asyncio.Event | None = None,
        lease_seconds: float = 6.0,
        replayer_options: dict[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.services = services
        self.client = client
        self.upstreams = upstreams
        self.policies = policies
        self.listener = listener
        self.stop = stop or asyncio.Event()
        self.lease_seconds = lease_seconds
        self.replayer_options = replayer_options or {}
        self.holder = f"{socket.gethostname()[:20]}-{os.getpid()}-{secrets.token_hex(4)}"[:40]

    # -- starting and resuming ------------------------------------------------------

    async def create(
        self,
        prepared: Prepared,
        options: RunOptions,
        *,
        run_id: str | None = None,
        source_name: str | None = None,
        mapping_name: str | None = None,
    ) -> Run:
        """Record a new run (status ``validating``), held by this runner."""
        return await self.store.create(
            run_id or new_id("mig"),
            client_id=self.client.id,
            source_file=source_name or prepared.data_path.name,
            source_sha256=prepared.data_sha256,
            source_bytes=prepared.data_bytes,
            mapping_file=mapping_name or prepared.mapping_path.name,
            mapping_sha256=prepared.mapping_sha256,
            batch_size=options.batch_size,
            concurrency=options.concurrency,
            seed=options.seed,
            per_stratum=options.per_stratum,
            holder=self.holder,
            lease_seconds=self.lease_seconds,
        )

    async def claim(self, run_id: str, prepared: Prepared) -> Run:
        """Take an existing run of this client to resume it; the files must be the ones
        it was started with. Raises ``LookupError``/``ValueError`` (with a message a
        person can act on) or ``RunBusy``."""
        run = await self.store.get(run_id, client_id=self.client.id)
        if run is None:
            raise LookupError(f"no migration run {run_id} in this sandbox")
        if run.source_sha256 != prepared.data_sha256:
            raise ValueError(f"{prepared.data_path} is not the data file run {run_id} was started with "
                             f"({run.source_file}, {run.source_bytes} bytes): resume needs the same file")
        if run.mapping_sha256 != prepared.mapping_sha256:
            raise ValueError(f"{prepared.mapping_path} is not the mapping run {run_id} was started with "
                             f"({run.mapping_file}): resume needs the same mapping")
        await self.store.claim(run_id, self.holder, lease_seconds=self.lease_seconds)
        return run

    # -- working ----------------------------------------------------------------------

    async def execute(self, run: Run, prepared: Prepared) -> Run:
        """Validate (unless done), replay what is left, and finish the run. Returns the
        run as stored at the end (``completed``, ``interrupted`` or ``failed``)."""
        heartbeat = asyncio.create_task(self._heartbeat(run.id), name=f"lease-{run.id}")
        try:
            if run.status == "completed":
                return run
            if run.phase == "validating":
                await self._validate(run, prepared)
            await self._replay(run, prepared)
            await self.store.finish(run.id, "completed", phase="done")
        except RunStopped:
            await self.store.finish(run.id, "interrupted")
        except MigrationError as exc:
            # The file turned out unreadable part-way: rows checked so far are kept.
            await self.store.finish(run.id, "failed", error=str(exc))
            raise
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.finish(run.id, "interrupted"))
            raise
        except Exception as exc:
            log.exception("migration run %s failed", run.id)
            await self.store.finish(run.id, "failed", error=f"the run failed unexpectedly ({type(exc).__name__})")
            raise
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        final = await self.store.get(run.id)
        assert final is not None
        self._emit(final, final.phase, final.rows_replayed, final.replay_total, rate=None)
        return final

    async def _heartbeat(self, run_id: str) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                if not await self.store.renew(run_id, self.holder, lease_seconds=self.lease_seconds):
                    log.error("migration run %s: the lease was lost; stopping after this batch", run_id)
                    self.stop.set()
            except Exception:
                log.exception("migration run %s: renewing the lease failed", run_id)

    def _emit(self, run: Run, phase: str, done: int, total: int | None, *, rate: float | None) -> None:
        if self.listener is None:
            return
        eta = (max(0, total - done) / rate) if rate and total is not None else None
        self.listener(Progress(run.id, run.status if phase == run.phase else phase, phase, done, total, rate, eta))

    async def _validate(self, run: Run, prepared: Prepared) -> None:
        await self.store.reset_validation(run.id)
        estimate = await asyncio.to_thread(_estimate_rows, prepared)
        await self.store.start_phase(run.id, "validating", done=0, rows_total=estimate)
        run = await self._reload(run.id)
        sample = StratifiedSample.for_mapping(prepared.mapping, seed=run.seed, per_stratum=run.per_stratum)
        source = await asyncio.to_thread(prepared.reopen)
        rows = validate(source, prepared.mapping, self.policies)
        batch: list[RowValidation] = []
        done = 0
        started = time.monotonic()
        try:
            while chunk := await asyncio.to_thread(_take, rows, _CHUNK):
                for outcome in chunk:
                    sample.offer(outcome)
                    batch.append(_validation_of(outcome))
                done += len(chunk)
                if len(batch) >= max(_VALIDATION_BATCH, run.batch_size):
                    await self.store.save_validation_batch(run.id, batch, rows_validated=done)
                    batch = []
                    self._emit(run, "validating", done, max(estimate or 0, done) if estimate else None,
                               rate=done / max(1e-6, time.monotonic() - started))
                    if self.stop.is_set():
                        raise RunStopped
        finally:
            # What was checked is kept, also when the file fails part-way.
            await self.store.save_validation_batch(run.id, batch, rows_validated=done)
        replay_total = await self.store.finish_validation(
            run.id, rows_total=done, source_format=source.format, source_encoding=source.encoding,
            sample_rows=[SampleRow(i.row, i.stratum, i.source, i.canonical) for i in sample.items()],
        )
        self._emit(run, "validating", done, done, rate=done / max(1e-6, time.monotonic() - started))
        if self.stop.is_set():
            raise RunStopped
        log.info("migration run %s: %d rows validated, %d to replay", run.id, done, replay_total)

    async def _replay(self, run: Run, prepared: Prepared) -> None:
        run = await self._reload(run.id)
        await self.store.start_phase(run.id, "replaying", done=run.rows_replayed)
        run = await self._reload(run.id)
        stored = await self.store.replayed_rows(run.id)
        replayer = Replayer(self.services, self.client, self.upstreams, run.id, **self.replayer_options)
        limit = asyncio.Semaphore(run.concurrency)
        done = run.rows_replayed
        started = time.monotonic()
        sent_here = 0

        async def one(record: MigrationRecord) -> ReplayedRow:
            async with limit:
                return await replayer.replay(record)

        async def flush(records: list[MigrationRecord]) -> None:
            nonlocal done, sent_here
            outcomes = await asyncio.gather(*(one(r) for r in records))
            await self.store.save_replay_batch(run.id, outcomes, checkpoint_row=max(r.row for r in records))
            done += len(outcomes)
            sent_here += len(outcomes)
            self._emit(run, "replaying", done, run.replay_total, rate=sent_here / max(1e-6, time.monotonic() - started))
            if self.stop.is_set():
                raise RunStopped

        source = await asyncio.to_thread(prepared.reopen)
        rows = validate(source, prepared.mapping, self.policies)
        pending: list[MigrationRecord] = []
        while chunk := await asyncio.to_thread(_take, rows, _CHUNK):
            for outcome in chunk:
                if outcome.passed and outcome.source.number not in stored:
                    assert outcome.record is not None
                    pending.append(outcome.record)
                if len(pending) >= run.batch_size:
                    batch, pending = pending, []
                    await flush(batch)
        if pending:
            await flush(pending)
        if self.stop.is_set():
            raise RunStopped

    async def _reload(self, run_id: str) -> Run:
        run = await self.store.get(run_id)
        assert run is not None
        return run

