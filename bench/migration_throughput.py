#!/usr/bin/env python
"""Measure sandbox migration throughput on a generated export (100,000 rows by default).

One run

1. generates the export with ``bench/migration_dataset.py`` (GBK CSV, every defect kind
   at its default rate) in a child process, unless ``--data`` names one already made;
2. **validation** (child process): streams the file through levels 1 and 2
   (``sandbox.validation.validate``) and offers every row to the level-3 sample, with
   nothing stored: the loader, mapping and checks alone, in rows/s;
3. **the run** (child process): what ``hr-gateway sandbox migrate`` does, in a fresh
   sandbox data directory: the gateway started with its mock bureaus (threads of the
   same process, as in the CLI), ``MigrationRunner`` validating into the store and
   replaying every row that passed through the gateway's services to the mocks, then
   the report built and rendered as HTML and JSON. Phase times come from the runner's
   progress events;
4. prints a table of times, rates and each child's peak resident memory
   (``resource.getrusage``, ``ru_maxrss``; with ``--tracemalloc`` also the peak of
   Python allocations during a second validation pass).

The replay is bounded by ``--replay-time-limit`` (default 900 s): when the limit is
reached the run is stopped after its batch, as Ctrl-C would, and the replay time for
all rows is extrapolated from the rate so far (and marked as such).

    .venv/bin/python bench/migration_throughput.py                      # print the table
    .venv/bin/python bench/migration_throughput.py --write-docs         # and update docs/performance.md
    .venv/bin/python bench/migration_throughput.py --rows 20000 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOCS_FILE = ROOT / "docs" / "performance.md"
MAPPING = ROOT / "examples" / "migration" / "mapping.toml"
GENERATOR = ROOT / "bench" / "migration_dataset.py"
BEGIN_MARKER = (
    "<!-- BEGIN migration results: written by bench/migration_throughput.py --write-docs; do not edit by hand -->"
)
END_MARKER = "<!-- END migration results -->"

# Targets for 100,000 rows on a 2-core machine (docs/performance.md).
TARGET_VALIDATION_SECONDS = 60.0
TARGET_REPLAY_SECONDS = 600.0
TARGET_PEAK_BYTES = 1 << 30


# -- child: validation alone ------------------------------------------------------------


def child_validate(data: Path, with_tracemalloc: bool) -> dict[str, Any]:
    from sandbox.mapping import load_mapping
    from sandbox.sampling import StratifiedSample
    from sandbox.sources import open_source
    from sandbox.validation import validate

    def one_pass() -> tuple[int, int, int, float]:
        mapping = load_mapping(MAPPING)
        source = open_source(data, encoding=mapping.source_encoding, sheet=mapping.sheet)
        sample = StratifiedSample.for_mapping(mapping, seed=0, per_stratum=5)
        rows = passed = 0
        started = time.perf_counter()
        for outcome in validate(source, mapping):
            rows += 1
            passed += outcome.passed
            sample.offer(outcome)
        return rows, passed, len(sample.items()), time.perf_counter() - started

    rows, passed, sampled, seconds = one_pass()
    result: dict[str, Any] = {
        "rows": rows,
        "passed": passed,
        "sampled": sampled,
        "seconds": seconds,
        "peak_rss_bytes": _peak_rss(),
    }
    if with_tracemalloc:
        tracemalloc.start()
        one_pass()
        result["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result


# -- child: the whole run, as the CLI does it ---------------------------------------------


async def child_run(data: Path, data_dir: Path, batch_size: int, concurrency: int, limit: float) -> dict[str, Any]:
    from gateway.config import sandbox_settings
    from gateway.logging import configure_logging
    from gateway.policy import PolicyCatalogue
    from gateway.runtime import Gateway
    from gateway.sandbox import ensure_sandbox_client
    from sandbox.progress import Progress
    from sandbox.report import render_html, render_json
    from sandbox.runner import MigrationRunner, RunOptions, prepare
    from sandbox.store import RunStore
    from sandbox.summary import build_report
    from sandbox.validation import load_policies

    configure_logging("WARNING")
    settings = sandbox_settings(data_dir)
    gateway = Gateway(settings)
    started_gateway = time.perf_counter()
    await gateway.start()
    startup_seconds = time.perf_counter() - started_gateway
    events: list[tuple[float, Progress]] = []
    stop = asyncio.Event()
    try:
        issued = await ensure_sandbox_client(gateway.clients, settings.data_dir)
        client = await gateway.clients.get(issued.data["client_id"])
        assert client is not None and gateway.upstreams.sandbox is not None
        store = RunStore(gateway.engine)
        runner = MigrationRunner(
            store, gateway, client, gateway.upstreams.sandbox,
            policies=await load_policies(PolicyCatalogue(gateway.engine, "sandbox")),
            listener=lambda event: events.append((time.perf_counter(), event)), stop=stop,
        )  # fmt: skip
        prepared = await asyncio.to_thread(prepare, data, MAPPING)
        run = await runner.create(prepared, RunOptions(batch_size=batch_size, concurrency=concurrency))

        cpu_at_replay: list[float] = []

        async def stop_at_limit() -> None:
            # The limit applies to the replay: it starts when validation has reached its last row.
            while not any(
                event.phase == "replaying" or (event.phase == "validating" and event.done == event.total)
                for _, event in events
            ):
                await asyncio.sleep(0.2)
            cpu_at_replay.append(_cpu_seconds())
            await asyncio.sleep(limit)
            stop.set()

        limiter = asyncio.create_task(stop_at_limit())
        started = time.perf_counter()
        final = await runner.execute(run, prepared)
        finished = time.perf_counter()
        cpu_finished = _cpu_seconds()
        limiter.cancel()

        validating = [at for at, event in events if event.phase == "validating"]
        validation_end = max(validating) if validating else started
        report_started = time.perf_counter()
        report = await build_report(store, run.id)
        page = render_html(report)
        document = render_json(report)
        report_seconds = time.perf_counter() - report_started
        replay_rows = final.rows_replayed
        replay_total = final.replay_total or 0
        replay_seconds = finished - validation_end
        return {
            "run_id": run.id,
            "status": final.status,
            "startup_seconds": startup_seconds,
            "validation_seconds": validation_end - started,
            "rows": report["summary"]["rows"],
            "replay_seconds": replay_seconds,
            "replay_rows": replay_rows,
            "replay_total": replay_total,
            "replay_limited": final.status == "interrupted" and stop.is_set(),
            "replay": report["summary"]["replay"],
            "report_seconds": report_seconds,
            "report_html_bytes": len(page.encode("utf-8")),
            "report_json_bytes": len(document),
            "database_bytes": (data_dir / "gateway.db").stat().st_size,
            "peak_rss_bytes": _peak_rss(),
            # CPU of the whole process (event loop, mock bureau threads, SQLite thread) during the replay.
            "replay_cpu_seconds": cpu_finished - cpu_at_replay[0] if cpu_at_replay else None,
        }
    finally:
        await gateway.stop()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss() -> int:
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


# -- parent ---------------------------------------------------------------------------------


def _child(args: list[str], timeout: float) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), *args]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr)
        raise SystemExit(f"{shlex.join(command)} failed with exit code {completed.returncode}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _generate(rows: int, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, str(GENERATOR), "--rows", str(rows), "--out", str(out)],
        check=True, stdout=subprocess.DEVNULL, cwd=ROOT, timeout=1800,
    )  # fmt: skip
    return time.perf_counter() - started


def _mib(value: int) -> str:
    return f"{value / (1 << 20):,.0f} MiB"


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.1f} min ({seconds:,.0f} s)"
    return f"{seconds:.1f} s"


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def _results_markdown(results: dict[str, Any]) -> str:
    validation, run = results["validation"], results["run"]
    rows = validation["rows"]
    replay_rate = run["replay_rows"] / run["replay_seconds"] if run["replay_seconds"] > 0 else 0.0
    replay_all = run["replay_total"] / replay_rate if replay_rate > 0 else float("inf")
    peak = max(validation["peak_rss_bytes"], run["peak_rss_bytes"])
    lines = [
        "## Results",
        "",
        f"- Date: {results['date']}",
        f"- Machine: {results['machine']}",
        f"- Python {results['python']}",
        f"- Command: `{results['command']}`",
        f"- Data: {rows:,} rows, {results['data_bytes'] / (1 << 20):.1f} MiB GBK CSV "
        f"(`bench/migration_dataset.py --rows {results['rows']}`, generated in {results['generate_seconds']:.1f} s), "
        "mapped by `examples/migration/mapping.toml`",
        f"- Run options: batch size {results['batch_size']}, concurrency {results['concurrency']}, "
        f"replay time limit {results['replay_time_limit']:.0f} s",
        "",
        "| phase | rows | time | rows/s | peak memory (process) |",
        "|---|---:|---:|---:|---:|",
        f"| validation alone (levels 1–2 and the level-3 sample, nothing stored) | {rows:,} | "
        f"{_duration(validation['seconds'])} | {rows / validation['seconds']:,.0f} | {_mib(validation['peak_rss_bytes'])} |",
        f"| run: gateway and mock bureaus started | | {_duration(run['startup_seconds'])} | | |",
        f"| run: validation into the store | {run['rows']:,} | {_duration(run['validation_seconds'])} | "
        f"{run['rows'] / run['validation_seconds']:,.0f} | |",
        f"| run: replay to the sandbox bureaus | {run['replay_rows']:,} of {run['replay_total']:,} | "
        f"{_duration(run['replay_seconds'])} | {replay_rate:,.1f} | |",
        f"| run: report built and rendered (HTML {run['report_html_bytes'] / 1024:,.0f} KiB, "
        f"JSON {run['report_json_bytes'] / 1024:,.0f} KiB) | | {_duration(run['report_seconds'])} | | "
        f"{_mib(run['peak_rss_bytes'])} |",
        "",
    ]
    if "tracemalloc_peak_bytes" in validation:
        lines += [f"Peak of Python allocations during validation (tracemalloc): "
                  f"{_mib(validation['tracemalloc_peak_bytes'])}.", ""]  # fmt: skip
    replay = run["replay"]
    lines += [
        "Replay outcomes: "
        + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in replay.items())
        + f" (run status `{run['status']}`; SQLite database {run['database_bytes'] / (1 << 20):,.0f} MiB).",
        "",
        *(
            [
                f"During the replay the run's process used {run['replay_cpu_seconds']:,.0f} CPU-seconds in "
                f"{run['replay_seconds']:,.0f} s ({run['replay_cpu_seconds'] / run['replay_seconds']:.2f} cores), "
                f"{1000 * run['replay_cpu_seconds'] / max(1, run['replay_rows']):,.0f} ms of CPU per replayed row "
                "(gateway, adapters, the in-process mock bureaus and SQLite together).",
                "",
            ]
            if run.get("replay_cpu_seconds") and run["replay_seconds"] > 0
            else []
        ),
        "Targets (100,000 rows):" if rows == 100_000 else f"Targets (set for 100,000 rows; this run had {rows:,}):",
        "",
        f"- validated in {_duration(run['validation_seconds'])} in the run "
        f"({_duration(validation['seconds'])} alone) (want < 60 s): "
        f"{_verdict(run['validation_seconds'] < TARGET_VALIDATION_SECONDS)}",
    ]
    if run["replay_limited"]:
        lines.append(
            f"- replayed: stopped at the time limit after {run['replay_rows']:,} of {run['replay_total']:,} rows; "
            f"at {replay_rate:,.1f} rows/s all of them would take about {_duration(replay_all)} "
            f"(want < 10 min): {_verdict(replay_all < TARGET_REPLAY_SECONDS)}"
        )
    else:
        lines.append(
            f"- replayed {run['replay_rows']:,} rows in {_duration(run['replay_seconds'])} (want < 10 min): "
            f"{_verdict(run['replay_seconds'] < TARGET_REPLAY_SECONDS)}"
        )
    lines.append(f"- peak memory {_mib(peak)} (want < 1 GiB): {_verdict(peak < TARGET_PEAK_BYTES)}")
    return "\n".join(lines) + "\n"


def _write_docs(markdown: str) -> None:
    text = DOCS_FILE.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(BEGIN_MARKER) + r".*?" + re.escape(END_MARKER), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{DOCS_FILE}: the migration results markers are missing")
    DOCS_FILE.write_text(pattern.sub(lambda _: f"{BEGIN_MARKER}\n{markdown}\n{END_MARKER}", text), encoding="utf-8")


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), {platform.system()} {platform.release()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows to generate (default 100000)")
    parser.add_argument("--data", type=Path, help="use this export (made by bench/migration_dataset.py) instead")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--replay-time-limit", type=float, default=900.0, help="seconds of replay before stopping")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations in a second pass")
    parser.add_argument("--write-docs", action="store_true", help="rewrite the results in docs/performance.md")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--child", choices=("validate", "run"), help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child == "validate":
        print(json.dumps(child_validate(args.data, args.tracemalloc)))
        return 0
    if args.child == "run":
        result = asyncio.run(child_run(args.data, args.data_dir, args.batch_size, args.concurrency,
                                       args.replay_time_limit))  # fmt: skip
        print(json.dumps(result))
        return 0

    with tempfile.TemporaryDirectory(prefix="hgw-migration-bench-") as tmp:
        work = Path(tmp)
        generate_seconds = 0.0
        data = args.data
        if data is None:
            data = work / "employees.csv"
            print(f"generating {args.rows:,} rows …", flush=True)
            generate_seconds = _generate(args.rows, data)
        data = data.resolve()
        print("validating …", flush=True)
        validate_args = ["--child", "validate", "--data", str(data)] + (["--tracemalloc"] if args.tracemalloc else [])
        validation = _child(validate_args, timeout=1800)
        print(f"  {validation['rows']:,} rows in {validation['seconds']:.1f} s", flush=True)
        print(f"running the migration (replay limited to {args.replay_time_limit:.0f} s) …", flush=True)
        run = _child(
            ["--child", "run", "--data", str(data), "--data-dir", str(work / "sandbox"),
             "--batch-size", str(args.batch_size), "--concurrency", str(args.concurrency),
             "--replay-time-limit", str(args.replay_time_limit)],
            timeout=args.replay_time_limit + 3600,
        )  # fmt: skip
        results = {
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": _machine(),
            "python": f"{platform.python_version()} ({platform.python_implementation()})",
            "command": ".venv/bin/python bench/migration_throughput.py "
            + shlex.join(argv if argv is not None else sys.argv[1:]),
            "rows": args.rows if args.data is None else validation["rows"],
            "data_bytes": data.stat().st_size,
            "generate_seconds": generate_seconds,
            "batch_size": args.batch_size,
            "concurrency": args.concurrency,
            "replay_time_limit": args.replay_time_limit,
            "validation": validation,
            "run": run,
        }
    markdown = _results_markdown(results)
    print()
    print(markdown)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    if args.write_docs:
        _write_docs(markdown)
        print(f"updated {DOCS_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
