"""``hr-gateway sandbox``: rehearse a customer's historical HR data against the
sandbox bureaus (``migrate``), sign the review off (``sign-off``), and write a run's
report again (``report``).

``migrate`` works in the sandbox's data directory (``--data-dir``, the same
database as ``hr-gateway serve --sandbox``) and starts the sandbox's mock bureaus
itself, unless ``--sandbox-upstreams`` names mocks that are already running.

Exit codes of ``migrate``:

* 0 — the run completed (rows may still have findings or refusals: see the report);
* 2 — bad command line, or a file that does not exist;
* 3 — the data file or the mapping cannot be used (the message names the file, row
  and column, or the mapping key); if the run had started, it is ``failed`` and the
  rows checked until then are kept;
* 4 — the run cannot be resumed (unknown run, other files, another process on it);
* 130 — interrupted (Ctrl-C): the run is ``interrupted``; ``--resume RUN_ID`` continues it;
* 1 — anything else (the gateway could not start, an unexpected failure).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, TaskID, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from gateway.config import Settings, UpstreamSettings

    from .progress import Progress

__all__ = ["EXIT_BAD_FILE", "EXIT_CANNOT_RESUME", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "sandbox"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_FILE = 3
EXIT_CANNOT_RESUME = 4
EXIT_INTERRUPTED = 130

#: How long ``--resume`` waits for the lease of a process that stopped renewing it.
_LEASE_WAIT_LIMIT = 30.0

out = Console(highlight=False, soft_wrap=True)
# Messages name files, columns and rows as they are: never read as markup.
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

data_dir_option = click.option(
    "--data-dir", default=".hr-gateway", show_default=True, type=click.Path(file_okay=False),
    help="The sandbox's data directory (its SQLite database and keyring), as for `hr-gateway serve --sandbox`.",
)


@click.group()
def sandbox() -> None:
    """Rehearse data migrations against the sandbox bureaus."""


# -- migrate -------------------------------------------------------------------------


@sandbox.command("migrate")
@click.argument("data_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--mapping", "mapping_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The TOML mapping from the file's columns to canonical fields.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
              help="Write the report as a self-contained HTML page here.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the report as JSON here.")
@click.option("--resume", "resume_id", default=None, metavar="RUN_ID",
              help="Continue an interrupted or killed run (same data file and mapping); no row is replayed twice.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=None,
              help="Rows replayed per batch; the checkpoint is committed after each.  [default: 200]")
@click.option("--concurrency", type=click.IntRange(1, 64), default=None,
              help="Rows sent to the bureaus at once.  [default: 8]")
@click.option("--seed", type=int, default=None, help="Seed of the review sample (level 3).  [default: 0]")
@click.option("--per-stratum", type=click.IntRange(1, 100), default=None,
              help="Rows sampled for review per region and outcome.  [default: 5]")
@data_dir_option
@click.option("--sandbox-upstreams", type=click.Path(exists=True, dir_okay=False), envvar="HGW_SANDBOX_UPSTREAMS",
              default=None,
              help="JSON list of mock upstreams already running ({name, adapter, base_url, regions, credentials, "
                   "options}) to use instead of starting the bundled ones.")
def migrate(
    data_file: str, mapping_file: str, report_path: str | None, json_path: str | None, resume_id: str | None,
    batch_size: int | None, concurrency: int | None, seed: int | None, per_stratum: int | None, data_dir: str,
    sandbox_upstreams: str | None,
) -> None:
    """Validate DATA_FILE (CSV, XLSX or JSON Lines) with the mapping, replay the rows that pass
    against the sandbox bureaus, and report.

    Exit codes: 0 completed; 2 bad command line; 3 unusable data file or mapping; 4 cannot resume;
    130 interrupted (resume it); 1 other failures.
    """
    from gateway.config import sandbox_settings

    settings = sandbox_settings(data_dir)
    upstreams = _read_upstreams(sandbox_upstreams) if sandbox_upstreams else None
    code = asyncio.run(_migrate(
        settings, upstreams, Path(data_file), Path(mapping_file), resume_id=resume_id,
        options=dict(batch_size=batch_size, concurrency=concurrency, seed=seed, per_stratum=per_stratum),
        report_path=Path(report_path) if report_path else None, json_path=Path(json_path) if json_path else None,
    ))
    sys.exit(code)


def _read_upstreams(path: str) -> list[UpstreamSettings]:
    from gateway.config import UpstreamSettings

    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        return [
            UpstreamSettings(
                name=str(u["name"]), adapter=str(u["adapter"]), base_url=str(u["base_url"]),
                regions=tuple(u.get("regions", ())), credentials=dict(u.get("credentials", {})),
                options=dict(u.get("options", {})),
            )
            for u in raw
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise click.BadParameter(f"{path}: not a JSON list of upstreams ({exc})", param_hint="--sandbox-upstreams")


async def _migrate(
    settings: Settings,
    upstreams: list[UpstreamSettings] | None,
    data_file: Path,
    mapping_file: Path,
    *,
    resume_id: str | None,
    options: dict[str, int | None],
    report_path: Path | None,
    json_path: Path | None,
) -> int:
    from gateway.config import ConfigError
    from gateway.encryption import KeyringError
    from gateway.logging import configure_logging
    from gateway.policy import PolicyCatalogue
    from gateway.runtime import Gateway
    from gateway.sandbox import ensure_sandbox_client

    from .errors import MigrationError
    from .runner import MigrationRunner, RunOptions, prepare
    from .store import RunBusy, RunStore
    from .validation import load_policies

    configure_logging("WARNING")
    try:
        prepared = await asyncio.to_thread(prepare, data_file, mapping_file)
    except MigrationError as exc:
        err.print(f"error: {exc}")
        return EXIT_BAD_FILE

    gateway = Gateway(settings, sandbox_upstreams=upstreams)
    try:
        await gateway.start()
    except (ConfigError, KeyringError, OSError) as exc:
        err.print(f"error: the sandbox could not start: {exc}")
        return EXIT_FAILED
    stop = asyncio.Event()
    main_task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    progress = _ProgressDisplay()

    def on_signal() -> None:
        if not stop.is_set():
            stop.set()
            err.print("stopping after the current batch (press Ctrl-C again to stop at once)…")
        elif main_task is not None:
            main_task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        issued = await ensure_sandbox_client(gateway.clients, settings.data_dir)
        client = await gateway.clients.get(issued.data["client_id"])
        assert client is not None and gateway.upstreams.sandbox is not None
        store = RunStore(gateway.engine)
        runner = MigrationRunner(
            store, gateway, client, gateway.upstreams.sandbox,
            policies=await load_policies(PolicyCatalogue(gateway.engine, "sandbox")),
            listener=progress.update, stop=stop,
        )
        if resume_id:
            try:
                run = await _claim(runner, resume_id, prepared)
            except (LookupError, ValueError, RunBusy) as exc:
                err.print(f"error: cannot resume: {exc}")
                return EXIT_CANNOT_RESUME
            changed = {k: v for k, v in options.items() if v is not None and k in ("batch_size", "concurrency")}
            if options.get("seed") is not None and options["seed"] != run.seed:
                err.print(f"error: cannot resume: run {run.id} samples with seed {run.seed}, not {options['seed']}")
                return EXIT_CANNOT_RESUME
            if changed:
                await store.update(run.id, **changed)
                run = await store.get(run.id)  # type: ignore[assignment]
            out.print(f"resuming run [bold]{run.id}[/] ({run.status}, {run.phase}: "
                      f"{run.rows_replayed} of {run.replay_total if run.replay_total is not None else '?'} "
                      "rows replayed)")
        else:
            defaults = RunOptions()
            run_options = RunOptions(**{k: v if v is not None else getattr(defaults, k) for k, v in options.items()})
            run = await runner.create(prepared, run_options)
            out.print(f"run [bold]{run.id}[/]  (if it stops, continue it with: hr-gateway sandbox migrate "
                      f"{data_file} --mapping {mapping_file} --resume {run.id})")
        sys.stdout.flush()
        failure: MigrationError | None = None
        with progress:
            try:
                run = await runner.execute(run, prepared)
            except MigrationError as exc:
                failure = exc
        if failure is not None:
            err.print(f"error: {failure}")
        run = await store.get(run.id)  # type: ignore[assignment]
        assert run is not None
        await _write_reports(store, run.id, report_path, json_path)
        _print_summary(await _report(store, run.id), report_path, json_path)
        if failure is not None:
            return EXIT_BAD_FILE
        if run.status == "interrupted":
            out.print(f"interrupted: continue with --resume {run.id}")
            return EXIT_INTERRUPTED
        return EXIT_OK if run.status == "completed" else EXIT_FAILED
    except asyncio.CancelledError:
        err.print("stopped at once; the run is interrupted and can be resumed")
        return EXIT_INTERRUPTED
    except Exception as exc:  # logged with its trace by the runner
        err.print(f"error: the run failed unexpectedly ({type(exc).__name__}); see the log above")
        return EXIT_FAILED
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await gateway.stop()


async def _claim(runner: Any, run_id: str, prepared: Any) -> Any:
    """Claim the run; when a process that died still holds it for a few seconds, wait."""
    from .store import RunBusy

    try:
        return await runner.claim(run_id, prepared)
    except RunBusy as busy:
        wait = (busy.until - dt.datetime.now(dt.timezone.utc)).total_seconds()
        if wait > _LEASE_WAIT_LIMIT:
            raise
        err.print(f"run {run_id} was held by another process until {busy.until:%H:%M:%S}; waiting {wait:.0f} s…")
        await asyncio.sleep(max(0.0, wait) + 0.5)
        return await runner.claim(run_id, prepared)


async def _report(store: Any, run_id: str) -> dict[str, Any]:
    from .summary import build_report

    return await build_report(store, run_id)


async def _write_reports(store: Any, run_id: str, html_path: Path | None, json_path: Path | None) -> None:
    if html_path is None and json_path is None:
        return
    from .report import render_html, render_json

    report = await _report(store, run_id)
    if html_path is not None:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(render_html(report), encoding="utf-8")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_bytes(render_json(report))


def _print_summary(report: dict[str, Any], html_path: Path | None, json_path: Path | None) -> None:
    run, summary = report["run"], report["summary"]
    table = Table(title=f"run {run['id']}: {run['status']}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("rows", str(summary["rows"]))
    table.add_row("level 1 (mapping)", f"{summary['level1']['passed']} passed, {summary['level1']['failed']} failed")
    level2 = summary["level2"]
    table.add_row("level 2 (logic)", f"{level2['passed']} passed, {level2['failed']} failed, "
                                     f"{level2['warnings']} with warnings")
    table.add_row("level 3 (review)", f"{len(report['sample']['items'])} rows sampled, "
                                      + ("signed off by " + report["sign_off"]["reviewer"] if report["sign_off"]
                                         else "not signed off"))
    for outcome, count in summary["replay"].items():
        table.add_row(f"replay: {outcome.replace('_', ' ')}", str(count))
    out.print(table)
    for rule in report["rules"][:10]:
        out.print(f"  {rule['count']:>7}  L{rule['level']} {rule['rule']}: {rule['title']}")
    for path, kind in ((html_path, "HTML"), (json_path, "JSON")):
        if path is not None:
            out.print(f"{kind} report: {path}")
    if not report["sign_off"] and run["status"] == "completed":
        out.print(f"review the sample, then: hr-gateway sandbox sign-off {run['id']} --reviewer NAME")


class _RateColumn(ProgressColumn):
    def render(self, task: Any) -> Text:
        speed = task.fields.get("rate") or task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "- rows/s")


class _ProgressDisplay:
    """A rich progress bar per phase: rows done of total, rate and ETA."""

    def __init__(self) -> None:
        self._progress = RichProgress(
            TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
            TextColumn("ETA"), TimeRemainingColumn(), console=err, transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _ProgressDisplay:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, event: Progress) -> None:
        task = self._tasks.get(event.phase)
        if task is None:
            if event.phase not in ("validating", "replaying"):
                return
            task = self._tasks[event.phase] = self._progress.add_task(
                event.phase, total=event.total, completed=event.done, rate=event.rate
            )
        self._progress.update(task, completed=event.done, total=event.total, rate=event.rate)


# -- sign-off and report -------------------------------------------------------------


async def _with_store(data_dir: str, work: Any) -> Any:
    from gateway.config import sandbox_settings
    from gateway.store import create_engine, upgrade

    from .store import RunStore

    engine = create_engine(sandbox_settings(data_dir).database_url)
    try:
        await upgrade(engine)
        return await work(RunStore(engine))
    finally:
        await engine.dispose()


@sandbox.command("sign-off")
@click.argument("run_id")
@click.option("--reviewer", required=True, help="Who reviewed the sample (recorded and audited).")
@click.option("--note", default=None, help="What the reviewer wants on record.")
@data_dir_option
def sign_off(run_id: str, reviewer: str, note: str | None, data_dir: str) -> None:
    """Record that the review sample (level 3) of a completed run was checked."""
    reviewer = reviewer.strip()
    if not reviewer:
        raise click.BadParameter("name the reviewer", param_hint="--reviewer")

    async def work(store: Any) -> str:
        run = await store.get(run_id)
        if run is None:
            raise click.ClickException(f"no migration run {run_id} in {data_dir}")
        if run.status != "completed":
            raise click.ClickException(f"run {run_id} is {run.status}: finish it first (migrate … --resume {run_id})")
        signed = await store.sign_off(run_id, reviewer=reviewer, note=note, client_id=None)
        if signed is None:
            raise click.ClickException(
                f"run {run_id} was already signed off by {run.signed_off_by} at {run.signed_off_at:%Y-%m-%d %H:%M} UTC"
            )
        return f"run {run_id} signed off by {signed.signed_off_by} at {signed.signed_off_at:%Y-%m-%d %H:%M:%S} UTC"

    out.print(asyncio.run(_with_store(data_dir, work)))


@sandbox.command("report")
@click.argument("run_id")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None, help="HTML report file.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="JSON report file.")
@data_dir_option
def report(run_id: str, report_path: str | None, json_path: str | None, data_dir: str) -> None:
    """Print a run's summary and write its report (e.g. again, after the sign-off)."""

    async def work(store: Any) -> dict[str, Any]:
        if await store.get(run_id) is None:
            raise click.ClickException(f"no migration run {run_id} in {data_dir}")
        html, js = (Path(p) if p else None for p in (report_path, json_path))
        await _write_reports(store, run_id, html, js)
        return await _report(store, run_id)

    data = asyncio.run(_with_store(data_dir, work))
    _print_summary(data, Path(report_path) if report_path else None, Path(json_path) if json_path else None)

