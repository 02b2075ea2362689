"""Where migration runs are kept: the run, each row's validation and replay outcome,
the findings, the review sample, the sign-off and the replay checkpoint.

The tables live in the gateway's database (created by its migration ``0005``), so a
run started by ``hr-gateway sandbox migrate`` is visible to ``hr-gateway serve
--sandbox`` and the other way round, on SQLite and PostgreSQL alike. No column holds
PII in plaintext: rows are known by their number in the data file, finding values
and sample cells arrive masked, and outcome messages never carry the person.

The replay checkpoint is written in the same transaction as the outcomes of the
batch it follows (``save_replay_batch``): a run killed at any moment has either
both or neither.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table, Text, TypeDecorator
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import audit_events

from .findings import Finding

__all__ = [
    "ReplayedRow",
    "RowValidation",
    "Run",
    "RunBusy",
    "RunStore",
    "SampleRow",
    "findings",
    "rows",
    "runs",
    "sample",
]

_MAX_TEXT = 200


class _Utc(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC on the way in and out, on SQLite (naive storage) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value


# Created by gateway/store/migrations/versions/0005_sandbox_migrations.py.
metadata = MetaData()

runs = Table(
    "migration_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("client_id", String(40), nullable=False, index=True),
    # validating | replaying | completed | failed | interrupted
    Column("status", String(16), nullable=False),
    # validating | replaying | done: where the run is (or stopped)
    Column("phase", String(16), nullable=False),
    Column("source_file", String(500), nullable=False),
    Column("source_format", String(8), nullable=True),
    Column("source_encoding", String(40), nullable=True),
    Column("source_sha256", String(64), nullable=False),
    Column("source_bytes", BigInteger, nullable=False),
    Column("mapping_file", String(500), nullable=False),
    Column("mapping_sha256", String(64), nullable=False),
    Column("batch_size", Integer, nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("seed", Integer, nullable=False),
    Column("per_stratum", Integer, nullable=False),
    Column("rows_total", Integer, nullable=True),
    Column("rows_validated", Integer, nullable=False),
    Column("replay_total", Integer, nullable=True),
    Column("rows_replayed", Integer, nullable=False),
    Column("batches_committed", Integer, nullable=False),
    Column("checkpoint_row", Integer, nullable=True),
    # For the rate and ETA of the current phase: when it (re)started and how far it was then.
    Column("phase_started_at", _Utc, nullable=True),
    Column("phase_done_at_start", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("lease_holder", String(40), nullable=True),
    Column("locked_until", _Utc, nullable=True),
    Column("signed_off_by", String(200), nullable=True),
    Column("signed_off_at", _Utc, nullable=True),
    Column("sign_off_note", Text, nullable=True),
    Column("started_at", _Utc, nullable=False),
    Column("updated_at", _Utc, nullable=False),
    Column("finished_at", _Utc, nullable=True),
)

rows = Table(
    "migration_rows",
    metadata,
    Column("run_id", String(40), primary_key=True),
    Column("row_no", Integer, primary_key=True),
    Column("level1", String(8), nullable=False),  # passed | failed
    Column("level2", String(8), nullable=True),  # passed | failed; None when level 1 failed
    Column("warnings", Integer, nullable=False),
    Column("region", String(6), nullable=True),
    Column("action", String(24), nullable=True),
    # accepted | rejected | transfer_required | upstream_unavailable | not_replayed; None: not yet
    Column("outcome", String(24), nullable=True),
    Column("code", String(60), nullable=True),
    Column("message", Text, nullable=True),
    Column("reference", String(64), nullable=True),
    Column("resource_id", String(40), nullable=True),
    Column("replayed_at", _Utc, nullable=True),
)

findings = Table(
    "migration_findings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(40), nullable=False),
    Column("row_no", Integer, nullable=False),
    Column("level", Integer, nullable=False),
    Column("rule", String(60), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("field", String(60), nullable=True),
    Column("column_name", String(200), nullable=True),
    Column("value", String(200), nullable=True),
    Column("message", Text, nullable=False),
    Column("related_row", Integer, nullable=True),
)

sample = Table(
    "migration_sample",
    metadata,
    Column("run_id", String(40), primary_key=True),
    Column("row_no", Integer, primary_key=True),
    Column("stratum", String(100), nullable=False),
    Column("source", Text, nullable=False),
    Column("canonical", Text, nullable=False),
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _clip(text: str | None, limit: int = _MAX_TEXT) -> str | None:
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


class RunBusy(Exception):
    """Another process holds the run (it is validating or replaying it now)."""

    def __init__(self, run_id: str, until: dt.datetime) -> None:
        super().__init__(
            f"run {run_id} is being worked on by another process (its lease runs until {until.isoformat()}); "
            "if that process died, try again after that time"
        )
        self.until = until


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    client_id: str
    status: str
    phase: str
    source_file: str
    source_format: str | None
    source_encoding: str | None
    source_sha256: str
    source_bytes: int
    mapping_file: str
    mapping_sha256: str
    batch_size: int
    concurrency: int
    seed: int
    per_stratum: int
    rows_total: int | None
    rows_validated: int
    replay_total: int | None
    rows_replayed: int
    batches_committed: int
    checkpoint_row: int | None
    phase_started_at: dt.datetime | None
    phase_done_at_start: int
    error: str | None
    lease_holder: str | None
    locked_until: dt.datetime | None
    signed_off_by: str | None
    signed_off_at: dt.datetime | None
    sign_off_note: str | None
    started_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, row: Any) -> Run:
        return cls(**{name: getattr(row, name) for name in cls.__slots__})  # type: ignore[arg-type]

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed", "interrupted")


@dataclass(frozen=True, slots=True)
class RowValidation:
    """A row's level-1 and level-2 results (``level2`` None when level 1 failed)."""

    row: int
    level1: str
    level2: str | None
    warnings: int
    region: str | None
    findings: Sequence[Finding] = ()


@dataclass(frozen=True, slots=True)
class ReplayedRow:
    """What replaying one row came to. ``message`` never names the person."""

    row: int
    action: str
    outcome: str
    code: str | None = None
    message: str | None = None
    reference: str | None = None
    resource_id: str | None = None


@dataclass(frozen=True, slots=True)
class SampleRow:
    row: int
    stratum: str
    source: dict[str, str | None]
    canonical: dict[str, str | None]


class RunStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # -- runs -----------------------------------------------------------------------

    async def create(
        self,
        run_id: str,
        *,
        client_id: str,
        source_file: str,
        source_sha256: str,
        source_bytes: int,
        mapping_file: str,
        mapping_sha256: str,
        batch_size: int,
        concurrency: int,
        seed: int,
        per_stratum: int,
        holder: str | None = None,
        lease_seconds: float = 10.0,
    ) -> Run:
        now = _now()
        values = dict(
            id=run_id, client_id=client_id, status="validating", phase="validating",
            source_file=source_file, source_sha256=source_sha256, source_bytes=source_bytes,
            mapping_file=mapping_file, mapping_sha256=mapping_sha256,
            batch_size=batch_size, concurrency=concurrency, seed=seed, per_stratum=per_stratum,
            rows_validated=0, rows_replayed=0, batches_committed=0, phase_done_at_start=0,
            phase_started_at=now, started_at=now, updated_at=now,
            lease_holder=holder, locked_until=now + dt.timedelta(seconds=lease_seconds) if holder else None,
        )
        async with self.engine.begin() as conn:
            await conn.execute(runs.insert().values(**values))
        run = await self.get(run_id)
        assert run is not None
        return run

    async def get(self, run_id: str, *, client_id: str | None = None) -> Run | None:
        query = runs.select().where(runs.c.id == run_id)
        if client_id is not None:
            query = query.where(runs.c.client_id == client_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return Run.of(row) if row is not None else None

    async def update(self, run_id: str, **values: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(runs.update().where(runs.c.id == run_id).values(updated_at=_now(), **values))

    async def start_phase(self, run_id: str, phase: str, *, done: int, **values: Any) -> None:
        """Enter ``phase`` (``done`` of its units already finished, e.g. on resume)."""
        await self.update(
            run_id, phase=phase, status=phase, phase_started_at=_now(), phase_done_at_start=done,
            finished_at=None, error=None, **values,
        )

    async def finish(self, run_id: str, status: str, *, error: str | None = None, phase: str | None = None) -> None:
        values: dict[str, Any] = dict(status=status, error=error, finished_at=_now(), lease_holder=None, locked_until=None)
        if phase is not None:
            values["phase"] = phase
        await self.update(run_id, **values)

    # -- the lease: one process works on a run at a time --------------------------------

    async def claim(self, run_id: str, holder: str, *, lease_seconds: float = 10.0) -> None:
        """Take the run for ``holder`` (one conditional UPDATE); raises ``RunBusy`` when
        another holder's lease has not run out."""
        now = _now()
        async with self.engine.begin() as conn:
            taken = await conn.execute(
                runs.update()
                .where(
                    runs.c.id == run_id,
                    sa.or_(runs.c.lease_holder.is_(None), runs.c.lease_holder == holder, runs.c.locked_until < now),
                )
                .values(lease_holder=holder, locked_until=now + dt.timedelta(seconds=lease_seconds), updated_at=now)
            )
            if taken.rowcount == 1:
                return
            until = (await conn.execute(sa.select(runs.c.locked_until).where(runs.c.id == run_id))).scalar_one()
        raise RunBusy(run_id, until)

    async def renew(self, run_id: str, holder: str, *, lease_seconds: float = 10.0) -> bool:
        async with self.engine.begin() as conn:
            renewed = await conn.execute(
                runs.update()
                .where(runs.c.id == run_id, runs.c.lease_holder == holder)
                .values(locked_until=_now() + dt.timedelta(seconds=lease_seconds))
            )
        return renewed.rowcount == 1

    # -- validation -----------------------------------------------------------------

    async def reset_validation(self, run_id: str) -> None:
        """Forget a validation that did not finish: it is redone from the first row
        (validation is deterministic, so the result is the same)."""
        async with self.engine.begin() as conn:
            await conn.execute(findings.delete().where(findings.c.run_id == run_id))
            await conn.execute(sample.delete().where(sample.c.run_id == run_id))
            await conn.execute(rows.delete().where(rows.c.run_id == run_id))
            await conn.execute(runs.update().where(runs.c.id == run_id).values(rows_validated=0, updated_at=_now()))

    async def save_validation_batch(self, run_id: str, validated: Sequence[RowValidation], *, rows_validated: int) -> None:
        """The rows' level results and findings, and the count so far, in one transaction."""
        if not validated:
            return
        row_values = [
            dict(run_id=run_id, row_no=v.row, level1=v.level1, level2=v.level2, warnings=v.warnings, region=v.region)
            for v in validated
        ]
        finding_values = [
            dict(
                run_id=run_id, row_no=f.row, level=int(f.level), rule=f.rule, severity=f.severity,
                field=_clip(f.field, 60), column_name=_clip(f.column), value=_clip(f.value),
                message=f.message, related_row=f.related_row,
            )
            for v in validated
            for f in v.findings
        ]
        async with self.engine.begin() as conn:
            await conn.execute(rows.insert(), row_values)
            if finding_values:
                await conn.execute(findings.insert(), finding_values)
            await conn.execute(
                runs.update().where(runs.c.id == run_id).values(rows_validated=rows_validated, updated_at=_now())
            )

    async def finish_validation(
        self, run_id: str, *, rows_total: int, source_format: str, source_encoding: str | None,
        sample_rows: Iterable[SampleRow],
    ) -> int:
        """Record the review sample and how many rows are to be replayed; returns that number."""
        sample_values = [
            dict(run_id=run_id, row_no=s.row, stratum=s.stratum[:100],
                 source=json.dumps(s.source, ensure_ascii=False), canonical=json.dumps(s.canonical, ensure_ascii=False))
            for s in sample_rows
        ]
        async with self.engine.begin() as conn:
            await conn.execute(sample.delete().where(sample.c.run_id == run_id))
            if sample_values:
                await conn.execute(sample.insert(), sample_values)
            replay_total = (
                await conn.execute(
                    sa.select(sa.func.count()).select_from(rows).where(
                        rows.c.run_id == run_id, rows.c.level1 == "passed", rows.c.level2 == "passed"
                    )
                )
            ).scalar_one()
            await conn.execute(
                runs.update().where(runs.c.id == run_id).values(
                    rows_total=rows_total, rows_validated=rows_total, replay_total=replay_total,
                    source_format=source_format, source_encoding=source_encoding, updated_at=_now(),
                )
            )
        return int(replay_total)

    # -- replay ---------------------------------------------------------------------

    async def replayed_rows(self, run_id: str) -> set[int]:
        """Rows whose replay outcome is stored (never replayed again)."""
        async with self.engine.connect() as conn:
            result = await conn.execute(
                sa.select(rows.c.row_no).where(rows.c.run_id == run_id, rows.c.outcome.is_not(None))
            )
            return {row_no for (row_no,) in result}

    async def save_replay_batch(self, run_id: str, outcomes: Sequence[ReplayedRow], *, checkpoint_row: int) -> Run:
        """The batch's outcomes and the checkpoint after it, in one transaction."""
        now = _now()
        async with self.engine.begin() as conn:
            if outcomes:
                await conn.execute(
                    rows.update()
                    .where(rows.c.run_id == sa.bindparam("b_run"), rows.c.row_no == sa.bindparam("b_row"))
                    .values(
                        action=sa.bindparam("b_action"), outcome=sa.bindparam("b_outcome"), code=sa.bindparam("b_code"),
                        message=sa.bindparam("b_message"), reference=sa.bindparam("b_reference"),
                        resource_id=sa.bindparam("b_resource"), replayed_at=sa.bindparam("b_at"),
                    ),
                    [
                        dict(b_run=run_id, b_row=o.row, b_action=o.action, b_outcome=o.outcome, b_code=_clip(o.code, 60),
                             b_message=o.message, b_reference=o.reference, b_resource=o.resource_id, b_at=now)
                        for o in outcomes
                    ],
                )
            await conn.execute(
                runs.update().where(runs.c.id == run_id).values(
                    rows_replayed=runs.c.rows_replayed + len(outcomes),
                    batches_committed=runs.c.batches_committed + 1,
                    checkpoint_row=checkpoint_row,
                    updated_at=now,
                )
            )
            row = (await conn.execute(runs.select().where(runs.c.id == run_id))).first()
        return Run.of(row)

    # -- sign-off -------------------------------------------------------------------

    async def sign_off(self, run_id: str, *, reviewer: str, note: str | None, client_id: str | None) -> Run | None:
        """Record the level-3 sign-off, audited in the same transaction; None if the
        run is already signed off."""
        now = _now()
        async with self.engine.begin() as conn:
            signed = await conn.execute(
                runs.update()
                .where(runs.c.id == run_id, runs.c.signed_off_at.is_(None))
                .values(signed_off_by=reviewer, signed_off_at=now, sign_off_note=note, updated_at=now)
            )
            if signed.rowcount != 1:
                return None
            await conn.execute(
                audit_events.insert().values(
                    at=now, client_id=client_id, environment="sandbox", operation="sandbox.migration.sign_off",
                    upstream="gateway", region=None, gateway_id=run_id, request_id=None, upstream_status=None,
                    upstream_code=None, outcome=_clip(f"signed off by {reviewer}", 60), attempts=0, latency_ms=0.0,
                )
            )
            row = (await conn.execute(runs.select().where(runs.c.id == run_id))).first()
        return Run.of(row)

    # -- reading for the report -----------------------------------------------------

    async def level_counts(self, run_id: str) -> dict[str, int]:
        """Rows by level-1/level-2 result, warnings, and by replay outcome."""
        async with self.engine.connect() as conn:
            levels = (
                await conn.execute(
                    sa.select(rows.c.level1, rows.c.level2, sa.func.count(), sa.func.sum(sa.case((rows.c.warnings > 0, 1), else_=0)))
                    .where(rows.c.run_id == run_id)
                    .group_by(rows.c.level1, rows.c.level2)
                )
            ).all()
            outcomes = (
                await conn.execute(
                    sa.select(rows.c.outcome, sa.func.count()).where(rows.c.run_id == run_id).group_by(rows.c.outcome)
                )
            ).all()
        counts: dict[str, int] = {}
        for level1, level2, count, warned in levels:
            counts[f"level1.{level1}"] = counts.get(f"level1.{level1}", 0) + count
            if level2 is not None:
                counts[f"level2.{level2}"] = counts.get(f"level2.{level2}", 0) + count
                counts["level2.warnings"] = counts.get("level2.warnings", 0) + int(warned or 0)
        for outcome, count in outcomes:
            counts[f"replay.{outcome}"] = count
        return counts

    async def rule_counts(self, run_id: str) -> list[tuple[str, int]]:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                sa.select(findings.c.rule, sa.func.count())
                .where(findings.c.run_id == run_id)
                .group_by(findings.c.rule)
                .order_by(sa.func.count().desc(), findings.c.rule)
            )
            return [(rule, count) for rule, count in result]

    async def rule_examples(self, run_id: str, rule: str, limit: int) -> list[Any]:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                findings.select()
                .where(findings.c.run_id == run_id, findings.c.rule == rule)
                .order_by(findings.c.row_no, findings.c.id)
                .limit(limit)
            )
            return list(result)

    async def sample_rows(self, run_id: str) -> list[SampleRow]:
        async with self.engine.connect() as conn:
            result = await conn.execute(sample.select().where(sample.c.run_id == run_id).order_by(sample.c.row_no))
            return [SampleRow(r.row_no, r.stratum, json.loads(r.source), json.loads(r.canonical)) for r in result]

    async def outcome_groups(self, run_id: str) -> list[tuple[str, str | None, str | None, int]]:
        """(outcome, code, message, count) of replayed rows, largest groups first."""
        async with self.engine.connect() as conn:
            result = await conn.execute(
                sa.select(rows.c.outcome, rows.c.code, rows.c.message, sa.func.count())
                .where(rows.c.run_id == run_id, rows.c.outcome.is_not(None))
                .group_by(rows.c.outcome, rows.c.code, rows.c.message)
                .order_by(sa.func.count().desc(), rows.c.outcome, rows.c.code)
            )
            return [(o, c, m, n) for o, c, m, n in result]

    async def outcome_examples(
        self, run_id: str, outcome: str, code: str | None, message: str | None, limit: int
    ) -> list[int]:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                sa.select(rows.c.row_no)
                .where(
                    rows.c.run_id == run_id, rows.c.outcome == outcome,
                    rows.c.code.is_(None) if code is None else rows.c.code == code,
                    rows.c.message.is_(None) if message is None else rows.c.message == message,
                )
                .order_by(rows.c.row_no)
                .limit(limit)
            )
            return [r for (r,) in result]

    async def outcome_of(self, run_id: str, row: int) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(rows.select().where(rows.c.run_id == run_id, rows.c.row_no == row))).first()
