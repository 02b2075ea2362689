"""Progress of a migration run: events while it works, and the same figures read
back from the store (``GET /v1/sandbox/migrations/{id}``), with rate and ETA."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from .store import Run

__all__ = ["Progress", "ProgressListener", "progress_of"]


@dataclass(frozen=True, slots=True)
class Progress:
    """``done`` of ``total`` units of ``phase`` (rows validated, rows replayed);
    ``total`` is an estimate while validating (the file's lines) and None if unknown."""

    run_id: str
    status: str
    phase: str
    done: int
    total: int | None
    rate: float | None = None  # units per second in this phase (this process's share)
    eta_seconds: float | None = None


ProgressListener = Callable[[Progress], None]


def progress_of(run: Run, now: dt.datetime | None = None) -> Progress:
    """The run's progress as stored; rate and ETA over the current phase's work."""
    now = now or dt.datetime.now(dt.timezone.utc)
    if run.phase == "validating":
        done, total = run.rows_validated, run.rows_total
    else:
        done, total = run.rows_replayed, run.replay_total
    rate = eta = None
    if run.phase_started_at is not None:
        elapsed = ((run.finished_at or now) - run.phase_started_at).total_seconds()
        worked = done - run.phase_done_at_start
        if elapsed > 0 and worked > 0:
            rate = worked / elapsed
            if total is not None and not run.finished:
                eta = max(0, total - done) / rate
    return Progress(run.id, run.status, run.phase, done, total, rate, eta)
