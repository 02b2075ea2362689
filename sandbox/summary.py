"""The report of a migration run, built from the store: the dict that
``sandbox.report.render_html`` renders and that the JSON report is, exactly.

Everything in it is masked: finding values and sample cells are stored masked,
and every message passes the ID-number mask once more on the way out.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from gateway.encryption import mask_id_numbers_in

from .findings import RULES
from .replay import OUTCOMES
from .store import Run, RunStore

__all__ = ["EXAMPLES_PER_GROUP", "build_report", "utc_iso"]

#: Example rows shown per rule and per replay outcome group.
EXAMPLES_PER_GROUP = 5


def utc_iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, to the second."""
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _masked(text: str | None) -> str | None:
    return mask_id_numbers_in(text) if text else text


async def build_report(store: RunStore, run_id: str, *, examples: int = EXAMPLES_PER_GROUP) -> dict[str, Any]:
    run = await store.get(run_id)
    if run is None:
        raise LookupError(f"no migration run {run_id}")
    counts = await store.level_counts(run_id)
    rows = run.rows_total if run.rows_total is not None and run.phase != "validating" else run.rows_validated
    replay = {outcome: counts.get(f"replay.{outcome}", 0) for outcome in OUTCOMES}
    # Rows that failed validation, or were not reached, were not replayed either.
    replay["not_replayed"] = rows - sum(v for k, v in replay.items() if k != "not_replayed")
    return {
        "run": _run_part(run),
        "summary": {
            "rows": rows,
            "level1": {"passed": counts.get("level1.passed", 0), "failed": counts.get("level1.failed", 0)},
            "level2": {
                "passed": counts.get("level2.passed", 0),
                "failed": counts.get("level2.failed", 0),
                "warnings": counts.get("level2.warnings", 0),
            },
            "replay": replay,
        },
        "rules": await _rules(store, run_id, examples),
        "sample": {
            "seed": run.seed,
            "per_stratum": run.per_stratum,
            "items": [
                {"row": s.row, "stratum": s.stratum, "source": s.source, "canonical": s.canonical}
                for s in await store.sample_rows(run_id)
            ],
        },
        "sign_off": (
            {"reviewer": run.signed_off_by, "at": utc_iso(run.signed_off_at), "note": run.sign_off_note}
            if run.signed_off_at is not None else None
        ),
        "replay": {"by_outcome": await _outcome_groups(store, run_id, examples)},
    }


def _run_part(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "status": run.status,
        "source": {
            "file": run.source_file,
            "format": run.source_format,
            "encoding": run.source_encoding,
            "rows": run.rows_total if run.phase != "validating" else run.rows_validated,
        },
        "mapping": run.mapping_file,
        "started_at": utc_iso(run.started_at),
        "finished_at": utc_iso(run.finished_at),
        "batch_size": run.batch_size,
        "concurrency": run.concurrency,
        "seed": run.seed,
    }


async def _rules(store: RunStore, run_id: str, examples: int) -> list[dict[str, Any]]:
    result = []
    for code, count in await store.rule_counts(run_id):
        found = await store.rule_examples(run_id, code, examples)
        rule = RULES.get(code)
        result.append({
            "rule": code,
            "level": rule.level if rule else found[0].level,
            "title": rule.title if rule else code,
            "severity": rule.severity if rule else found[0].severity,
            "count": count,
            "examples": [
                {
                    "row": f.row_no,
                    "column": f.column_name,
                    "field": f.field,
                    "value": f.value,
                    "message": _masked(f.message),
                    "related_row": f.related_row,
                }
                for f in found
            ],
        })
    return result


async def _outcome_groups(store: RunStore, run_id: str, examples: int) -> list[dict[str, Any]]:
    groups = []
    for outcome, code, message, count in await store.outcome_groups(run_id):
        groups.append({
            "outcome": outcome,
            "code": code,
            "message": _masked(message),
            "count": count,
            "examples": await store.outcome_examples(run_id, outcome, code, message, examples),
        })
    return groups
