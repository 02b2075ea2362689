#!/usr/bin/env python
"""Measure the gateway's overhead on participation searches.

One run starts a json-hmac mock bureau and a live-mode gateway as separate
processes on free loopback ports (persistence on: SQLite in a temporary
directory), creates a live API client, warms up, and then times the same search

- **direct**: the project's own ``JsonHmacBureauAdapter`` calling the mock (the same
  signing, HTTP and parsing work the gateway does upstream), and
- **through the gateway**: ``POST /v1/social-security/participation-searches`` from
  one keep-alive ``httpx.AsyncClient``,

in three kinds of pass per path:

- **sequential** (concurrency 1): unloaded latency;
- **moderate rate** (open loop): requests start on a fixed schedule (default
  100 requests/s), each as its own task whether or not earlier ones have finished,
  and latency is measured from the *scheduled* start, so a stall on the server
  cannot hide behind coordinated omission. The latency-overhead targets are judged
  on these passes;
- **saturation** (closed loop, default concurrency 8, no think time): maximum
  throughput. The throughput-ratio target is judged on these passes; their latency
  is mostly queueing.

It reports p50/p90/p99 latency and throughput per pass, the overhead (gateway minus
direct, at p50/p90/p99), the throughput ratio, and the CPU time each process spent
per request.

Everything is bounded: request counts, requests in flight, a time limit per pass,
start-up waits. The child processes are always terminated (also on Ctrl-C or SIGTERM).

    .venv/bin/python bench/search_overhead.py                  # print the table
    .venv/bin/python bench/search_overhead.py --write-docs     # and rewrite docs/performance.md
    .venv/bin/python bench/search_overhead.py --json out.json  # and dump the raw numbers
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
from rich.console import Console
from rich.table import Table

from adapters import AdapterConfig, CallContext, Person
from adapters.social_security.json_hmac import JsonHmacBureauAdapter

ROOT = Path(__file__).resolve().parent.parent
DOCS_FILE = ROOT / "docs" / "performance.md"
SEARCH_PATH = "/v1/social-security/participation-searches"
REGION = "440100"
ID_NUMBER = "440104199003120213"  # seeded in mocks/json_hmac/seeds/440100.json with 2 records
NAME = "Wang Fang"
EXPECTED_RECORDS = 2
APP_ID = "hgw-bench"
APP_SECRET = "bench-secret-not-a-real-credential"

# Targets (see docs/performance.md): latency overhead at moderate load (the fixed-rate,
# open-loop passes), throughput ratio at saturation (the closed-loop passes).
TARGET_P50_OVERHEAD_MS = 2.0
TARGET_P99_OVERHEAD_MS = 10.0
TARGET_THROUGHPUT_RATIO = 0.5

# "Moderate" means well below both paths' capacity: above this share of the saturated
# throughput measured in the same run, the report says the rate is not moderate.
MODERATE_MAX_FRACTION = 0.5

# Default plan (see --help).
DEFAULT_PASS_WARMUP = 10
DEFAULT_SEQUENTIAL_REQUESTS = 500
DEFAULT_RATE = 100.0
DEFAULT_RATE_REQUESTS = 2000
DEFAULT_MAX_IN_FLIGHT = 256
DEFAULT_CONCURRENCY = 8
DEFAULT_SATURATION_REQUESTS = 2000

# Before each measured pass, wait (bounded) until the rest of the machine uses less than this.
QUIET_THRESHOLD_CORES = 0.25
# A pass stops early after this many failed requests (a broken setup must not run long).
MAX_ERRORS_PER_PASS = 20
RESULTS_BEGIN = "<!-- BEGIN results: written by bench/search_overhead.py --write-docs; do not edit by hand -->"
RESULTS_END = "<!-- END results -->"

console = Console(highlight=False)


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


# -- child processes -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: have the child receive SIGTERM if this benchmark dies without cleaning up."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def hr_gateway_command() -> list[str]:
    """The venv's ``hr-gateway`` script (next to this interpreter)."""
    script = Path(sys.executable).parent / "hr-gateway"
    if not script.exists():
        raise BenchError(f"no hr-gateway next to {sys.executable}; run this with the project's venv Python")
    return [str(script)]


@dataclass
class Child:
    """A child process with its output in a log file."""

    name: str
    args: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        log = self.log_path.open("wb")
        try:
            self.process = subprocess.Popen(
                self.args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the benchmark only; it stops the children in order
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        finally:
            log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def check_alive(self) -> None:
        if not self.alive():
            code = self.process.returncode if self.process else None
            raise BenchError(f"{self.name} exited (status {code}); last lines of {self.log_path}:\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; only this child's own pid."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait(5)

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def main_thread_schedstat(self) -> tuple[float, float]:
        return thread_schedstat(self.pid, self.pid)


# -- /proc probes (Linux; NaN elsewhere) ----------------------------------------------------

_NAN = float("nan")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all threads) so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _NAN


def thread_schedstat(pid: int, tid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for a CPU) of one thread so far."""
    try:
        run_ns, wait_ns, _ = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
        return int(run_ns) / 1e9, int(wait_ns) / 1e9
    except (OSError, ValueError):
        return _NAN, _NAN


def machine_busy_seconds() -> tuple[float, float]:
    """(busy CPU seconds, total CPU seconds) over all cores since boot, from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return _NAN, _NAN
    tick = os.sysconf("SC_CLK_TCK")
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal (guest time is inside user)
    idle = values[3] + values[4]
    return (total - idle) / tick, total / tick


@dataclass
class Snapshot:
    cpu: dict[str, float]
    gateway_loop: tuple[float, float]
    machine: tuple[float, float]


class Probes:
    """Resource counters read before and after each measured pass."""

    def __init__(self, children: dict[str, Child]) -> None:
        self.children = children

    def snapshot(self) -> Snapshot:
        cpu = {name: child.cpu_seconds() for name, child in self.children.items()}
        cpu["bench"] = time.process_time()
        gateway = self.children.get("gateway")
        loop = gateway.main_thread_schedstat() if gateway else (_NAN, _NAN)
        return Snapshot(cpu, loop, machine_busy_seconds())

    @staticmethod
    def usage(before: Snapshot, after: Snapshot, wall: float, requests: int) -> dict[str, Any]:
        per_request = {k: (after.cpu[k] - before.cpu[k]) * 1000 / max(1, requests) for k in before.cpu}
        on_cpu = after.gateway_loop[0] - before.gateway_loop[0]
        queued = after.gateway_loop[1] - before.gateway_loop[1]
        busy = after.machine[0] - before.machine[0]
        ours = sum(after.cpu[k] - before.cpu[k] for k in before.cpu)
        return {
            "cpu_ms_per_request": per_request,
            # Share of the pass the gateway's event-loop thread was running / runnable but waiting for a core.
            "gateway_loop_on_cpu": on_cpu / wall if wall else _NAN,
            "gateway_loop_waiting_for_cpu": queued / wall if wall else _NAN,
            "machine_busy_cores": busy / wall if wall else _NAN,
            # CPU used by processes other than the benchmark's three: interference from the rest of the machine.
            "other_load_cores": max(0.0, busy - ours) / wall if wall else _NAN,
        }

    def wait_for_quiet(self, max_wait: float, threshold: float = QUIET_THRESHOLD_CORES) -> float:
        """Wait (at most ``max_wait`` s) until other processes use less than ``threshold`` cores
        over one second; return the other load last seen."""
        deadline = time.monotonic() + max_wait
        while True:
            before, started = self.snapshot(), time.monotonic()
            time.sleep(1.0)
            other = self.usage(before, self.snapshot(), time.monotonic() - started, 1)["other_load_cores"]
            if other != other or other < threshold or time.monotonic() >= deadline:  # NaN: no /proc, do not wait
                return other


def run_cli(exe: list[str], args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run one ``hr-gateway`` command to completion (bounded)."""
    try:
        return subprocess.run([*exe, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise BenchError(f"hr-gateway {' '.join(args[:2])} did not finish in {timeout:g}s") from None


def wait_until(what: str, child: Child, probe: Callable[[], bool], timeout: float) -> float:
    """Poll ``probe`` until it is true; raise with the child's log if it dies or time runs out."""
    started = time.monotonic()
    while True:
        child.check_alive()
        with contextlib.suppress(httpx.HTTPError):
            if probe():
                return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise BenchError(
                f"{what} not ready after {timeout:g}s; last lines of {child.log_path}:\n{child.log_tail()}"
            )
        time.sleep(0.1)


def write_config(tmp: Path, gateway_port: int, mock_url: str) -> Path:
    config = tmp / "gateway.toml"
    config.write_text(
        f"""\
[gateway]
host = "127.0.0.1"
port = {gateway_port}
data_dir = {json.dumps(str(tmp / "data"))}

[database]
url = {json.dumps("sqlite+aiosqlite:///" + str(tmp / "gw.db"))}

[[upstreams]]
name = "bench-{REGION}"
adapter = "json-hmac"
base_url = {json.dumps(mock_url)}
regions = ["{REGION}"]

[upstreams.credentials]
app_id = "{APP_ID}"
app_secret = "{APP_SECRET}"
""",
        encoding="utf-8",
    )
    return config


# -- measurement -------------------------------------------------------------------------


SEQUENTIAL, RATE, SATURATION = "sequential", "rate", "saturation"
"""Pass kinds: closed loop at concurrency 1; open loop at a fixed rate; closed loop at concurrency c."""


@dataclass
class PassResult:
    name: str
    path: str  # "direct" or "gateway"
    concurrency: int
    """Closed loop: the number of workers. Open loop: the bound on requests in flight."""
    requested: int
    completed: int
    errors: int
    wall_seconds: float
    latencies_ms: list[float]
    truncated: bool
    error_samples: list[str] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    """CPU per request by process, gateway event-loop occupancy, machine load (see ``Probes.usage``)."""
    gateway_upstream_ms: list[float] = field(default_factory=list)
    """For gateway passes: the upstream latency the gateway itself reported per request."""
    attempts: int = 1
    """How many times the pass ran (it is repeated when other processes interfered)."""
    mode: str = SATURATION
    rate: float | None = None
    """Open loop: the scheduled arrival rate (requests/s)."""
    dispatch_lag_ms: list[float] = field(default_factory=list)
    """Open loop: how late each request actually started, after its scheduled start."""
    peak_in_flight: int = 0
    overflow: int = 0
    """Open loop: scheduled requests not started because the in-flight bound was reached (counted as errors)."""

    @property
    def throughput(self) -> float:
        return self.completed / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def pct(self, p: float) -> float:
        return percentile(self.latencies_ms, p)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name, "path": self.path, "mode": self.mode, "concurrency": self.concurrency,
            **({"rate_rps": self.rate, "peak_in_flight": self.peak_in_flight, "overflow": self.overflow,
                "dispatch_lag_ms": {
                    "p50": round(percentile(self.dispatch_lag_ms, 50), 3),
                    "p99": round(percentile(self.dispatch_lag_ms, 99), 3),
                    "max": round(max(self.dispatch_lag_ms), 3) if self.dispatch_lag_ms else None,
                }} if self.mode == RATE else {}),
            "requested": self.requested, "completed": self.completed, "errors": self.errors,
            "truncated_by_time_limit": self.truncated, "attempts": self.attempts, "wall_seconds": round(self.wall_seconds, 4),
            "throughput_rps": round(self.throughput, 2),
            "latency_ms": {
                "min": round(min(self.latencies_ms), 3) if self.latencies_ms else None,
                "mean": round(statistics.fmean(self.latencies_ms), 3) if self.latencies_ms else None,
                "p50": round(self.pct(50), 3), "p90": round(self.pct(90), 3), "p99": round(self.pct(99), 3),
                "max": round(max(self.latencies_ms), 3) if self.latencies_ms else None,
            },
            "gateway_reported_upstream_ms": {
                "p50": round(percentile(self.gateway_upstream_ms, 50), 3),
                "p99": round(percentile(self.gateway_upstream_ms, 99), 3),
            } if self.gateway_upstream_ms else None,
            "resources": {k: ({kk: round(vv, 3) for kk, vv in v.items()} if isinstance(v, dict) else round(v, 3))
                          for k, v in self.usage.items()},
            "error_samples": self.error_samples,
        }


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def run_pass(
    name: str, path: str, call: Callable[[], Awaitable[None]], *, requests: int, concurrency: int,
    time_limit: float, probes: Probes | None,
) -> PassResult:
    """Closed loop: ``requests`` calls from ``concurrency`` workers, each starting its next
    call when the previous one is done; stops early at ``time_limit`` seconds."""
    latencies: list[float] = []
    error_samples: list[str] = []
    errors = 0
    issued = 0
    perf = time.perf_counter
    started = perf()
    stop_at = started + time_limit

    async def worker() -> None:
        nonlocal issued, errors
        while issued < requests and perf() < stop_at and errors < MAX_ERRORS_PER_PASS:
            issued += 1
            t0 = perf()
            try:
                await call()
            except Exception as exc:  # counted and reported; a pass never hides failures
                errors += 1
                if len(error_samples) < 5:
                    error_samples.append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            latencies.append((perf() - t0) * 1000)

    before = probes.snapshot() if probes else None
    try:
        # Each request is bounded by its own HTTP timeouts; this only guards the pass.
        async with asyncio.timeout(time_limit + 30):
            await asyncio.gather(*(worker() for _ in range(concurrency)))
    except TimeoutError:
        error_samples.append("pass cancelled: requests outlived the time limit")
    wall = perf() - started
    done = len(latencies)
    usage = Probes.usage(before, probes.snapshot(), wall, done + errors) if probes and before else {}
    return PassResult(
        name=name, path=path, concurrency=concurrency, requested=requests, completed=done, errors=errors,
        wall_seconds=wall, latencies_ms=latencies, truncated=issued < requests and errors < MAX_ERRORS_PER_PASS,
        error_samples=error_samples, usage=usage, mode=SEQUENTIAL if concurrency == 1 else SATURATION,
    )


async def run_rate_pass(
    name: str, path: str, call: Callable[[], Awaitable[None]], *, requests: int, rate: float, max_in_flight: int,
    time_limit: float, probes: Probes | None,
) -> PassResult:
    """Open loop: request ``i`` is scheduled at ``t0 + i / rate`` and started then as its own
    task, whether or not earlier requests have finished. Latency runs from the *scheduled*
    start, so a late start (a busy load generator) or a stalled server counts in full
    instead of delaying later requests (no coordinated omission).

    At most ``max_in_flight`` requests run at once; a request due while that many are
    in flight is not started and counts as an error. Stops scheduling at ``time_limit``
    seconds or after ``MAX_ERRORS_PER_PASS`` errors, then waits (bounded) for the rest.
    """
    latencies: list[float] = []
    lags: list[float] = []
    error_samples: list[str] = []
    errors = overflow = issued = peak = 0
    in_flight: set[asyncio.Task[None]] = set()
    perf = time.perf_counter
    interval = 1.0 / rate

    def failed(message: str) -> None:
        nonlocal errors
        errors += 1
        if len(error_samples) < 5:
            error_samples.append(message[:300])

    async def one(scheduled: float) -> None:
        lags.append((perf() - scheduled) * 1000)
        try:
            await call()
        except Exception as exc:  # counted and reported; a pass never hides failures
            failed(f"{type(exc).__name__}: {exc}")
            return
        latencies.append((perf() - scheduled) * 1000)

    before = probes.snapshot() if probes else None
    t0 = perf() + 0.01  # the first request's scheduled start
    stop_at = t0 + time_limit
    try:
        while issued < requests and errors < MAX_ERRORS_PER_PASS:
            scheduled = t0 + issued * interval
            if scheduled >= stop_at:
                break
            delay = scheduled - perf()
            if delay > 0:
                await asyncio.sleep(delay)
            issued += 1
            if len(in_flight) >= max_in_flight:
                overflow += 1
                failed(f"overflow: {max_in_flight} requests already in flight when request {issued} was due")
                continue
            task = asyncio.create_task(one(scheduled))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            peak = max(peak, len(in_flight))
        if in_flight:
            # Each request is bounded by its own HTTP timeouts; this only guards the pass.
            _, pending = await asyncio.wait(set(in_flight), timeout=30.0)
            if pending:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                for _ in pending:
                    failed("still in flight 30 s after the last request was started; cancelled")
    finally:
        for task in in_flight:
            task.cancel()
    wall = perf() - t0
    done = len(latencies)
    usage = Probes.usage(before, probes.snapshot(), wall, done + errors) if probes and before else {}
    return PassResult(
        name=name, path=path, concurrency=max_in_flight, requested=requests, completed=done, errors=errors,
        wall_seconds=wall, latencies_ms=latencies, truncated=issued < requests and errors < MAX_ERRORS_PER_PASS,
        error_samples=error_samples, usage=usage, mode=RATE, rate=rate, dispatch_lag_ms=lags,
        peak_in_flight=peak, overflow=overflow,
    )


class Profiler:
    """py-spy sampling the gateway process during one pass (``--profile-gateway``).

    py-spy pauses the process for each sample, so a profiled run's numbers are not
    the benchmark's numbers; ``--write-docs`` refuses to run with it.
    """

    def __init__(self, py_spy: str, pid: int, output: Path) -> None:
        self.output = output
        self.process = subprocess.Popen(
            [py_spy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "--output", str(output)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        if self.process.returncode not in (0, -signal.SIGINT) or not self.output.exists():
            console.print(f"[yellow]py-spy did not write {self.output}: {err.decode(errors='replace')[-500:]}[/]")
        else:
            console.print(f"gateway profile (py-spy raw/folded stacks) written to {self.output}")


async def measure(args: argparse.Namespace, mock_url: str, gateway_url: str, api_key: str,
                  children: dict[str, Child]) -> list[PassResult]:
    person = Person(ID_NUMBER, NAME)
    adapter = JsonHmacBureauAdapter(
        AdapterConfig(name="direct", base_url=mock_url, regions=(REGION,),
                      credentials={"app_id": APP_ID, "app_secret": APP_SECRET})
    )
    http = httpx.AsyncClient(
        base_url=gateway_url,
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        timeout=httpx.Timeout(30.0),
        # Room for every request the open-loop passes may have in flight: the client's pool
        # must not be a hidden limit (at the moderate rate a handful of connections is used).
        limits=httpx.Limits(max_connections=max(args.concurrency, args.max_in_flight),
                            max_keepalive_connections=max(args.concurrency, args.max_in_flight)),
    )
    gateway_upstream_ms: list[float] = []
    request_body = {"id_number": ID_NUMBER, "name": NAME, "regions": [REGION]}

    async def direct() -> None:
        records = await adapter.search_participation(person, context=CallContext())
        if len(records) != EXPECTED_RECORDS:
            raise BenchError(f"direct search returned {len(records)} records, expected {EXPECTED_RECORDS}")

    async def via_gateway() -> None:
        response = await http.post(SEARCH_PATH, content=msgspec.json.encode(request_body))
        if response.status_code != 200:
            raise BenchError(f"gateway answered HTTP {response.status_code}: {response.text[:200]}")
        data = msgspec.json.decode(response.content)
        if not data["complete"] or len(data["records"]) != EXPECTED_RECORDS:
            raise BenchError(f"gateway search incomplete or wrong: {response.text[:300]}")
        gateway_upstream_ms.append(float(data["regions"][0]["latency_ms"]))

    probes = Probes(children)
    results: list[PassResult] = []
    try:
        # Correctness first: one of each must give the two seeded records.
        for path, call in (("direct", direct), ("through the gateway", via_gateway)):
            try:
                await call()
            except Exception as exc:
                raise BenchError(f"the first search {path} failed: {type(exc).__name__}: {exc}") from exc
        console.print(f"check: direct and gateway searches both return {EXPECTED_RECORDS} records")

        for path, call in (("direct", direct), ("gateway", via_gateway)):
            warm = await run_pass(f"warm-up {path}", path, call, requests=args.warmup, concurrency=args.concurrency,
                                  time_limit=args.duration_limit, probes=None)
            if warm.errors:
                raise BenchError(f"warm-up {path} failed: {warm.error_samples}")
        rate_label = f"{args.rate:g} req/s"
        plan: list[tuple[str, str, Callable[[], Awaitable[None]], str]] = [
            ("direct, sequential (c=1)", "direct", direct, SEQUENTIAL),
            ("gateway, sequential (c=1)", "gateway", via_gateway, SEQUENTIAL),
            (f"direct, open loop {rate_label}", "direct", direct, RATE),
            (f"gateway, open loop {rate_label}", "gateway", via_gateway, RATE),
        ]
        if args.concurrency > 1:
            plan += [
                (f"direct, saturation (c={args.concurrency})", "direct", direct, SATURATION),
                (f"gateway, saturation (c={args.concurrency})", "gateway", via_gateway, SATURATION),
            ]
        for name, path, call, mode in plan:
            count = {SEQUENTIAL: args.sequential_requests, RATE: args.rate_requests,
                     SATURATION: args.requests}[mode]
            for attempt in range(1, args.interference_retries + 2):
                for child in children.values():
                    child.check_alive()
                gateway_upstream_ms.clear()
                if args.quiet_wait > 0:
                    other = await asyncio.to_thread(probes.wait_for_quiet, args.quiet_wait)
                    if other >= QUIET_THRESHOLD_CORES:
                        console.print(f"[yellow]other processes use {other:.2f} cores; measuring anyway[/]")
                # Re-warm right before measuring, at the pass's concurrency: idle pooled connections
                # expire between passes (after 5 s in this client, 30 s in the adapter), and opening
                # several at once to the threaded mock sometimes stalls some of them for 0.5 to 3.5 s
                # (see docs/performance.md). The passes measure steady state, not connection set-up.
                warm_c = args.concurrency if mode == SATURATION else 1
                rewarm = await run_pass(f"re-warm {name}", path, call, requests=args.pass_warmup * warm_c,
                                        concurrency=warm_c, time_limit=args.duration_limit, probes=None)
                if rewarm.errors:
                    raise BenchError(f"re-warm before {name} failed: {rewarm.error_samples}")
                gateway_upstream_ms.clear()
                console.print(f"running {name}: {count} requests ...")
                profiling = args.profile_gateway is not None and path == "gateway" and mode == args.profile_pass
                profiler = Profiler(args.py_spy, children["gateway"].pid, args.profile_gateway) if profiling else None
                try:
                    if mode == RATE:
                        result = await run_rate_pass(name, path, call, requests=count, rate=args.rate,
                                                     max_in_flight=args.max_in_flight,
                                                     time_limit=args.duration_limit, probes=probes)
                    else:
                        result = await run_pass(name, path, call, requests=count,
                                                concurrency=1 if mode == SEQUENTIAL else args.concurrency,
                                                time_limit=args.duration_limit, probes=probes)
                finally:
                    if profiler is not None:
                        profiler.stop()
                result.attempts = attempt
                if path == "gateway":
                    result.gateway_upstream_ms = list(gateway_upstream_ms)
                other = result.usage.get("other_load_cores", 0.0)
                if not other >= QUIET_THRESHOLD_CORES or attempt > args.interference_retries:
                    break
                console.print(f"[yellow]other processes used {other:.2f} cores during {name}; running it again[/]")
            results.append(result)
    finally:
        await http.aclose()
        await adapter.aclose()
    return results


# -- reporting ----------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.partition(":")[2].strip()
                break
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0

    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": f"{platform.system()} {platform.release()}",
        "packages": {p: version(p) for p in ("litestar", "uvicorn", "httpx", "sqlalchemy", "aiosqlite")},
        "uvicorn_loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "uvicorn_http": "httptools" if importlib.util.find_spec("httptools") else "h11",
    }


def command_line() -> str:
    """The command as typed, with paths inside the project shown relative to it."""

    def rel(p: str) -> str:
        with contextlib.suppress(ValueError):
            return str(Path(p).relative_to(ROOT)) if Path(p).is_absolute() else p
        return p

    return shlex.join([rel(sys.executable), rel(sys.argv[0]), *sys.argv[1:]])


def comparison(results: list[PassResult]) -> dict[str, Any]:
    """Gateway against direct for each kind of pass, and the targets.

    The latency-overhead targets are judged on the fixed-rate (open-loop) passes, the
    throughput-ratio target on the saturation (closed-loop) passes. A target with a
    failed request in either of its passes is not met.
    """
    by = {(r.path, r.mode): r for r in results}
    out: dict[str, Any] = {}
    pairs: dict[str, tuple[PassResult, PassResult]] = {}
    for mode in (SEQUENTIAL, RATE, SATURATION):
        d, g = by.get(("direct", mode)), by.get(("gateway", mode))
        if d is None or g is None:
            continue
        pairs[mode] = (d, g)
        entry: dict[str, Any] = {
            "p50_overhead_ms": round(g.pct(50) - d.pct(50), 3),
            "p90_overhead_ms": round(g.pct(90) - d.pct(90), 3),
            "p99_overhead_ms": round(g.pct(99) - d.pct(99), 3),
            "throughput_rps": {"direct": round(d.throughput, 2), "gateway": round(g.throughput, 2)},
            "throughput_ratio": round(g.throughput / d.throughput, 3) if d.throughput else None,
            "errors": {"direct": d.errors, "gateway": g.errors},
        }
        if mode == RATE:
            entry = {"rate_rps": g.rate, **entry}
            entry.pop("throughput_ratio")  # both paths run at the same scheduled rate
        else:
            entry = {"concurrency": g.concurrency, **entry}
        out[{SEQUENTIAL: "sequential", RATE: "moderate_rate", SATURATION: "saturation"}[mode]] = entry
    rate, saturation = out.get("moderate_rate"), out.get("saturation")
    if rate and saturation:
        fractions = {p: round(rate["rate_rps"] / saturation["throughput_rps"][p], 3)
                     if saturation["throughput_rps"][p] else None for p in ("direct", "gateway")}
        rate["fraction_of_saturated_throughput"] = fractions
        rate["moderate"] = all(f is not None and f <= MODERATE_MAX_FRACTION for f in fractions.values())

    def clean(mode: str) -> bool:
        return mode in pairs and not any(r.errors for r in pairs[mode])

    targets: dict[str, Any] = {}
    if rate:
        targets["p50_overhead"] = {"judged_on": "moderate_rate", "failed_requests": not clean(RATE),
                                   "target_ms": TARGET_P50_OVERHEAD_MS,
                                   "actual_ms": rate["p50_overhead_ms"],
                                   "met": clean(RATE) and rate["p50_overhead_ms"] <= TARGET_P50_OVERHEAD_MS}
        targets["p99_overhead"] = {"judged_on": "moderate_rate", "failed_requests": not clean(RATE),
                                   "target_ms": TARGET_P99_OVERHEAD_MS,
                                   "actual_ms": rate["p99_overhead_ms"],
                                   "met": clean(RATE) and rate["p99_overhead_ms"] <= TARGET_P99_OVERHEAD_MS}
    if saturation:
        targets["throughput_ratio"] = {"judged_on": "saturation", "failed_requests": not clean(SATURATION),
                                       "target": TARGET_THROUGHPUT_RATIO,
                                       "actual": saturation["throughput_ratio"],
                                       "met": clean(SATURATION)
                                       and (saturation["throughput_ratio"] or 0) >= TARGET_THROUGHPUT_RATIO}
    if targets:
        out["targets"] = targets
    return out


def comparison_lines(comp: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, entry) for each comparison present, in plan order."""
    lines = []
    if "sequential" in comp:
        lines.append(("sequential (c=1, unloaded)", comp["sequential"]))
    if "moderate_rate" in comp:
        lines.append((f"moderate load ({comp['moderate_rate']['rate_rps']:g} req/s, open loop)", comp["moderate_rate"]))
    if "saturation" in comp:
        lines.append((f"saturation (c={comp['saturation']['concurrency']}, closed loop)", comp["saturation"]))
    return lines


def rate_share(comp: dict[str, Any]) -> str | None:
    """'100 req/s is 9 % of the direct path's and 24 % of the gateway's saturated throughput'."""
    rate = comp.get("moderate_rate")
    fractions = rate.get("fraction_of_saturated_throughput") if rate else None
    if not fractions or None in fractions.values():
        return None
    return (f"{rate['rate_rps']:g} req/s is {fractions['direct']:.0%} of the direct path's and "
            f"{fractions['gateway']:.0%} of the gateway's saturated throughput in this run")


TARGET_LABELS = {
    "p50_overhead": ("p50 overhead", "<=", " ms"),
    "p99_overhead": ("p99 overhead", "<=", " ms"),
    "throughput_ratio": ("throughput ratio", ">=", ""),
}


def target_phrases(comp: dict[str, Any], markup: str) -> list[str]:
    """One phrase per target; ``markup`` is "md" or "rich"."""
    phrases = []
    for key, t in comp.get("targets", {}).items():
        label, relation, unit = TARGET_LABELS[key]
        target = t.get("target_ms", t.get("target"))
        actual = t.get("actual_ms", t.get("actual"))
        where = "at moderate load" if t["judged_on"] == "moderate_rate" else "at saturation"
        if markup == "md":
            verdict = "**met**" if t["met"] else "**missed**"
        else:
            verdict = "[green]met[/]" if t["met"] else "[red]missed[/]"
        shown = "n/a" if actual is None else f"{actual:+.2f}" if unit else f"{actual:.2f}"
        why = " (requests failed in its passes)" if t.get("failed_requests") else ""
        phrases.append(f"{label} {where} {shown}{unit} (want {relation} {target:g}{unit}): {verdict}{why}")
    return phrases


def stragglers(r: PassResult) -> tuple[int, float]:
    """(requests slower than max(100 ms, 10 × the pass's p99), the slowest); (0, NaN) when none."""
    if not r.latencies_ms:
        return 0, _NAN
    limit = max(100.0, 10 * r.pct(99))
    slow = [x for x in r.latencies_ms if x > limit]
    return len(slow), max(slow, default=_NAN)


def straggler_note(results: list[PassResult]) -> str | None:
    notes = []
    for r in results:
        count, slowest = stragglers(r)
        if count:
            notes.append(f"{r.name}: {count} request{'s' if count > 1 else ''} over max(100 ms, 10 × p99), "
                         f"the slowest {slowest:.0f} ms (p99 {r.pct(99):.2f} ms)")
    if not notes:
        return None
    return ("Stragglers: " + "; ".join(notes) + ". They do not move the percentiles shown, but in a closed-loop "
            "pass a straggler holds one worker, so that pass's req/s is understated.")


def fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"  # NaN check


COLUMNS = (
    "pass", "requests", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms", "req/s",
    "CPU ms/req gateway", "CPU ms/req mock", "CPU ms/req load gen",
    "gateway loop on CPU", "gateway loop waiting for CPU", "machine busy cores", "other processes cores",
)


def table_rows(results: list[PassResult]) -> list[list[str]]:
    rows = []
    for r in results:
        u = r.usage
        cpu = u.get("cpu_ms_per_request", {})
        gateway_path = r.path == "gateway"

        def pct(key: str) -> str:
            return f"{fmt(u.get(key, _NAN) * 100, 0)} %" if gateway_path else "-"

        rows.append([
            r.name, f"{r.completed}" + (" (time limit)" if r.truncated else ""), str(r.errors),
            fmt(r.pct(50)), fmt(r.pct(90)), fmt(r.pct(99)), fmt(max(r.latencies_ms, default=_NAN)),
            fmt(r.throughput, 0),
            fmt(cpu.get("gateway", _NAN)) if gateway_path else "-", fmt(cpu.get("mock", _NAN)),
            fmt(cpu.get("bench", _NAN)),
            pct("gateway_loop_on_cpu"), pct("gateway_loop_waiting_for_cpu"), fmt(u.get("machine_busy_cores", _NAN)),
            fmt(u.get("other_load_cores", _NAN)),
        ])
    return rows


def print_results(results: list[PassResult], comp: dict[str, Any]) -> None:
    width = max(shutil.get_terminal_size((170, 24)).columns, 150)
    out = Console(highlight=False, width=width)
    table = Table(title="Participation search: direct vs through the gateway")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "pass" else "right", no_wrap=column == "pass")
    for row, r in zip(table_rows(results), results):
        if r.errors:
            row[2] = f"[red]{row[2]}[/]"
        table.add_row(*row)
    out.print(table)
    for label, c in comparison_lines(comp):
        ratio = c.get("throughput_ratio")
        out.print(f"overhead {label}: p50 {c['p50_overhead_ms']:+.2f} ms, p90 {c['p90_overhead_ms']:+.2f} ms, "
                  f"p99 {c['p99_overhead_ms']:+.2f} ms; req/s direct {c['throughput_rps']['direct']:.0f}, "
                  f"gateway {c['throughput_rps']['gateway']:.0f}"
                  + (f", throughput ratio {ratio:.2f}" if ratio is not None else ""))
    share = rate_share(comp)
    if share:
        moderate = comp["moderate_rate"].get("moderate")
        out.print(share + ("" if moderate else f" [yellow](above {MODERATE_MAX_FRACTION:.0%}: not a moderate load)[/]"))
    for r in results:
        if r.mode == RATE:
            out.print(f"{r.name}: start lateness p50 {fmt(percentile(r.dispatch_lag_ms, 50))} ms, "
                      f"p99 {fmt(percentile(r.dispatch_lag_ms, 99))} ms, "
                      f"max {fmt(max(r.dispatch_lag_ms, default=_NAN))} ms; peak in flight {r.peak_in_flight}"
                      + (f"; [red]{r.overflow} not sent: over the in-flight bound[/]" if r.overflow else ""))
    note = straggler_note(results)
    if note:
        out.print(f"[yellow]{note}[/]")
    for phrase in target_phrases(comp, "rich"):
        out.print(f"target {phrase}")
    for r in results:
        other = r.usage.get("other_load_cores", 0)
        if other >= QUIET_THRESHOLD_CORES:
            out.print(f"[yellow]{r.name}: other processes used {other:.2f} cores during this pass[/]")
        for sample in r.error_samples:
            out.print(f"[red]{r.name}: {sample}[/]")


DEFAULT_HEADER = f"""\
# Performance: gateway overhead on participation searches

`bench/search_overhead.py` measures what the gateway adds to a participation search,
compared with calling the bureau directly with the same adapter code.

## Method

One run starts a json-hmac mock bureau (`hr-gateway mocks serve`, region {REGION}) and
the gateway in live mode (`hr-gateway serve --config`: SQLite persistence and audit log
on) as separate processes on loopback ports, creates a live API client
(`hr-gateway clients create`), warms both paths up, and times the same search
(a seeded person with 2 records) two ways:

- *direct*: `JsonHmacBureauAdapter.search_participation` against the mock: request
  signing, HTTP, envelope and record parsing, i.e. the upstream work the gateway
  does itself;
- *gateway*: `POST {SEARCH_PATH}` with a bearer key,
  from one keep-alive `httpx.AsyncClient`: authentication, validation, fan-out, the
  same adapter call, the audit row, the response encoding, and one more HTTP hop.

Each path runs three kinds of pass, in this order:

1. **Sequential** (c=1, `--sequential-requests`, default {DEFAULT_SEQUENTIAL_REQUESTS}): one request
   at a time. Unloaded latency.
2. **Moderate load** (open loop at a fixed rate: `--rate`, default {DEFAULT_RATE:g} requests/s,
   `--rate-requests`, default {DEFAULT_RATE_REQUESTS}): request *i* is started at *t0 + i / rate* as its
   own task, whether or not earlier requests have finished, and its latency is measured
   from that *scheduled* start. A stall (of the server or of the load generator)
   therefore counts in full for every request due during it instead of holding the
   following requests back (no coordinated omission). At most `--max-in-flight`
   (default {DEFAULT_MAX_IN_FLIGHT}) requests are in flight; a request due beyond that is not sent
   and counts as an error. "Moderate" means a fixed arrival rate well below both
   paths' capacity: the results give the rate as a share of each path's saturated
   throughput measured in the same run, and say so when it is above {MODERATE_MAX_FRACTION:.0%} of either.
3. **Saturation** (closed loop: `--concurrency`, default {DEFAULT_CONCURRENCY}, `--requests`, default
   {DEFAULT_SATURATION_REQUESTS}): c workers each send the next request as soon as the previous one is
   answered, with no think time. This gives each path's maximum throughput on this
   machine. Latency in these passes is mostly queueing (Little's law: latency ≈ c /
   throughput); it is shown, not judged.

Right before each measured pass, `--pass-warmup` (default {DEFAULT_PASS_WARMUP}) unmeasured requests
per worker run at the pass's concurrency (one at a time before the sequential and
open-loop passes), so that each pass starts with its pooled connections open: the
passes measure steady state, not connection set-up (see the note on stragglers
below).

Latency is taken in the load generator until the response is decoded and checked:
from before sending in the closed-loop passes, from the scheduled start in the
open-loop passes. The open-loop passes also report the load generator's *start
lateness* (actual start minus scheduled start). It is part of both paths'
latencies, so it mostly cancels out of the overhead. *Overhead* is gateway minus
direct at the same percentile in the same kind of pass; *throughput ratio* is
gateway req/s over direct req/s.

Resource columns, from `/proc`, per pass: *CPU ms/req* is the CPU time (user +
system) each process used per request; *gateway loop on CPU* / *waiting for CPU* is
the share of the pass the gateway's event-loop thread was running / runnable but
waiting for a core (the two add up to ~100 % when the gateway is the bottleneck);
*machine busy cores* is all CPU use on the machine and *other processes cores* the
part not used by the three benchmark processes (interference). Before each pass the
script waits (bounded, `--quiet-wait`) for the rest of the machine to go quiet, and
it runs a pass again (at most `--interference-retries` times) when other processes
used a quarter of a core or more during it.

The load generator, the gateway and the mock share the machine: on a small machine
the gateway path competes for cores with the other two, so the numbers bound the
overhead from above rather than give a server's capacity.

**Targets:**

- at moderate load (the open-loop passes): p50 overhead <= {TARGET_P50_OVERHEAD_MS:g} ms, and p99
  overhead <= {TARGET_P99_OVERHEAD_MS:g} ms;
- at saturation (the closed-loop passes): gateway throughput >= {TARGET_THROUGHPUT_RATIO:.0%} of direct.

A target is not met if either of its passes had a failed request.

Re-run with `.venv/bin/python bench/search_overhead.py --write-docs`. It rewrites only
the results section between the markers below and keeps the rest of this file.
Other options: `--json FILE` keeps the raw latencies; `--profile-gateway FILE` samples
the gateway with py-spy during one gateway pass (`--profile-pass`, by default the
saturation pass); `--help` lists the rest.
"""


def results_markdown(results: list[PassResult], comp: dict[str, Any], machine: dict[str, Any],
                     args: argparse.Namespace, when: dt.datetime, command: str) -> str:
    plan = (f"{args.warmup} warm-up requests per path, and {args.pass_warmup} per worker right before each pass; "
            f"{args.sequential_requests} sequential requests per path; "
            f"{args.rate_requests} requests per path at {args.rate:g} req/s (open loop, at most "
            f"{args.max_in_flight} in flight)")
    if args.concurrency > 1:
        plan += f"; {args.requests} requests per path at concurrency {args.concurrency} (closed loop)"
    lines = [
        RESULTS_BEGIN,
        "## Results",
        "",
        f"- Date: {when.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {machine['cpu_model']}, {machine['cores']} cores ({machine['usable_cores']} usable), "
        f"{machine['kernel']}",
        f"- Python {machine['python']} ({machine['implementation']}); litestar {machine['packages']['litestar']}, "
        f"uvicorn {machine['packages']['uvicorn']} (loop {machine['uvicorn_loop']}, http {machine['uvicorn_http']}), "
        f"httpx {machine['packages']['httpx']}, SQLAlchemy {machine['packages']['sqlalchemy']}",
        f"- Command: `{command}`",
        f"- Plan: {plan}; time limit {args.duration_limit:g} s per pass",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|---" + "|---:" * (len(COLUMNS) - 1) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    lines += ["", "| comparison | p50 overhead ms | p90 overhead ms | p99 overhead ms | req/s direct | "
                  "req/s gateway | throughput ratio |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for label, c in comparison_lines(comp):
        ratio = c.get("throughput_ratio")
        lines.append(f"| {label} | {c['p50_overhead_ms']:+.2f} | {c['p90_overhead_ms']:+.2f} | "
                     f"{c['p99_overhead_ms']:+.2f} | {c['throughput_rps']['direct']:.0f} | "
                     f"{c['throughput_rps']['gateway']:.0f} | {'-' if ratio is None else f'{ratio:.2f}'} |")
    share = rate_share(comp)
    if share:
        moderate = comp["moderate_rate"].get("moderate")
        lines += ["", f"The fixed rate: {share}"
                  + (" (a moderate load)." if moderate else
                     f". **That is above {MODERATE_MAX_FRACTION:.0%} of a path's capacity: not the moderate load the "
                     "latency targets mean**; re-run with a lower `--rate`.")]
    rate_passes = [r for r in results if r.mode == RATE]
    if rate_passes:
        lines += ["", "Start lateness of the open-loop passes (actual start minus scheduled start; part of both "
                      "paths' latencies):", ""]
        for r in rate_passes:
            lines.append(f"- {r.name}: p50 {fmt(percentile(r.dispatch_lag_ms, 50))} ms, "
                         f"p99 {fmt(percentile(r.dispatch_lag_ms, 99))} ms, "
                         f"max {fmt(max(r.dispatch_lag_ms, default=_NAN))} ms; peak in flight "
                         f"{r.peak_in_flight}" + (f"; **{r.overflow} request(s) not sent: over the in-flight bound**"
                                                  if r.overflow else ""))
    phrases = target_phrases(comp, "md")
    if phrases:
        lines += ["", "Targets:", "", *(f"- {p}" for p in phrases)]
    inner = [r for r in results if r.gateway_upstream_ms]
    if inner:
        lines += ["", "Upstream latency as the gateway itself reports it (`regions[].latency_ms`), next to the "
                      "end-to-end latency of the same requests:", ""]
        for r in inner:
            lines.append(f"- {r.name}: upstream p50 {fmt(percentile(r.gateway_upstream_ms, 50))} ms / "
                         f"p99 {fmt(percentile(r.gateway_upstream_ms, 99))} ms; end-to-end p50 {fmt(r.pct(50))} ms / "
                         f"p99 {fmt(r.pct(99))} ms")
    note = straggler_note(results)
    if note:
        lines += ["", note]
    repeated = [r for r in results if r.attempts > 1]
    if repeated:
        lines += ["", "Passes run again because other processes interfered: "
                  + ", ".join(f"{r.name} ({r.attempts} runs, the last is shown)" for r in repeated) + "."]
    noisy = [r for r in results if r.usage.get("other_load_cores", 0) >= QUIET_THRESHOLD_CORES]
    if noisy:
        lines += ["", "**Interference:** other processes on the machine used "
                  + ", ".join(f"{r.usage['other_load_cores']:.2f} cores during {r.name}" for r in noisy)
                  + "; those passes understate what the machine can do."]
    errors = [f"{r.name}: {s}" for r in results for s in r.error_samples]
    if errors:
        lines += ["", "Errors:", "", *(f"- `{e}`" for e in errors)]
    lines += ["", RESULTS_END, ""]
    return "\n".join(lines)


def write_docs(path: Path, section: str) -> None:
    """Replace the results section (between the markers), keeping everything else."""
    text = path.read_text(encoding="utf-8") if path.exists() else DEFAULT_HEADER
    begin, end = text.find(RESULTS_BEGIN), text.find(RESULTS_END)
    if begin != -1 and end != -1 and end > begin:
        text = text[:begin] + section.rstrip("\n") + text[end + len(RESULTS_END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


# -- main --------------------------------------------------------------------------------


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--warmup", type=int, default=200, help="warm-up requests per path (not measured)")
    parser.add_argument("--pass-warmup", type=int, default=DEFAULT_PASS_WARMUP,
                        help="unmeasured requests per worker right before each measured pass (at the saturation "
                             "passes' concurrency before those, one at a time before the others)")
    parser.add_argument("--sequential-requests", type=positive_int, default=DEFAULT_SEQUENTIAL_REQUESTS,
                        help="requests per path in the sequential (concurrency 1) passes")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE,
                        help="requests/s in the moderate-load (open-loop, fixed-rate) passes")
    parser.add_argument("--rate-requests", type=positive_int, default=DEFAULT_RATE_REQUESTS,
                        help="requests per path in the moderate-load passes")
    parser.add_argument("--max-in-flight", type=positive_int, default=DEFAULT_MAX_IN_FLIGHT,
                        help="bound on requests in flight in the moderate-load passes (more count as errors)")
    parser.add_argument("--concurrency", type=positive_int, default=DEFAULT_CONCURRENCY,
                        help="concurrent requests in the saturation (closed-loop) passes; 1: no saturation passes")
    parser.add_argument("--requests", type=positive_int, default=DEFAULT_SATURATION_REQUESTS,
                        help="requests per path in the saturation passes")
    parser.add_argument("--duration-limit", type=float, default=120.0,
                        help="seconds after which a pass stops even if not all requests are done")
    parser.add_argument("--startup-timeout", type=float, default=30.0,
                        help="seconds to wait for the mock and the gateway to come up")
    parser.add_argument("--write-docs", action="store_true",
                        help=f"rewrite the results section of {DOCS_FILE.relative_to(ROOT)}")
    parser.add_argument("--docs-file", type=Path, default=DOCS_FILE, help=argparse.SUPPRESS)
    parser.add_argument("--json", dest="json_path", type=Path, default=None, help="dump the raw numbers to this file")
    parser.add_argument("--quiet-wait", type=float, default=60.0,
                        help="before each measured pass, wait up to this many seconds for the rest of the machine to "
                             f"use less than {QUIET_THRESHOLD_CORES:g} cores (0: do not wait)")
    parser.add_argument("--interference-retries", type=int, default=2,
                        help="run a pass again (at most this many times) when other processes used "
                             f"{QUIET_THRESHOLD_CORES:g} cores or more during it")
    parser.add_argument("--keep-logs", action="store_true", help="keep the child processes' logs and say where")
    parser.add_argument("--profile-gateway", type=Path, default=None, metavar="FILE",
                        help="sample the gateway with py-spy during one gateway pass (folded stacks to FILE); "
                             "slows the gateway, so not with --write-docs")
    parser.add_argument("--profile-pass", choices=(SEQUENTIAL, RATE, SATURATION), default=SATURATION,
                        help="which gateway pass --profile-gateway samples")
    parser.add_argument("--py-spy", default=None, help="py-spy executable (default: on PATH or next to this Python)")
    args = parser.parse_args(argv)
    if not args.rate > 0 or args.rate == float("inf"):
        parser.error("--rate must be a positive number of requests per second")
    if (args.duration_limit <= 0 or args.startup_timeout <= 0 or args.warmup < 0 or args.pass_warmup < 0
            or args.interference_retries < 0):
        parser.error("--duration-limit and --startup-timeout must be positive, --warmup, --pass-warmup and "
                     "--interference-retries not negative")
    if args.profile_gateway is not None:
        if args.write_docs:
            parser.error("--profile-gateway distorts the numbers; do not combine it with --write-docs")
        args.py_spy = args.py_spy or shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(args.py_spy).exists() and not shutil.which(args.py_spy):
            parser.error("--profile-gateway needs py-spy (pip install py-spy, or --py-spy PATH)")
    return args


@contextlib.contextmanager
def sigterm_as_keyboard_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        # Inside asyncio.run, the SIGINT handler cancels the main task cleanly; reuse it.
        on_sigint = signal.getsignal(signal.SIGINT)
        if callable(on_sigint):
            on_sigint(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    when = dt.datetime.now(dt.timezone.utc)
    command = command_line()
    machine = machine_info()
    exe = hr_gateway_command()
    children: dict[str, Child] = {}
    tmp = Path(tempfile.mkdtemp(prefix="hgw-bench-"))
    try:
        mock_port = free_port()
        gateway_port = free_port()
        while gateway_port == mock_port:
            gateway_port = free_port()
        mock_url = f"http://127.0.0.1:{mock_port}"
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        config = write_config(tmp, gateway_port, mock_url)

        children["mock"] = Child("mock bureau", [
            *exe, "mocks", "serve", "--dialect", "json-hmac", "--region", REGION, "--host", "127.0.0.1",
            "--port", str(mock_port), "--app-id", APP_ID, "--app-secret", APP_SECRET,
        ], tmp / "mock.log").start()

        cli_timeout = max(60.0, args.startup_timeout)
        # Live mode needs a keyring made once per deployment (gateways that still create it
        # on first use have no `keys init`).
        init = run_cli(exe, ["keys", "init", "--config", str(config)], cli_timeout)
        if init.returncode != 0 and "No such command" not in init.stderr:
            raise BenchError(f"hr-gateway keys init failed ({init.returncode}):\n{init.stderr[-2000:]}")
        created = run_cli(exe, ["clients", "create", "--config", str(config), "--name", "bench",
                                "--scopes", "social_security:read", "--json"], cli_timeout)
        if created.returncode != 0:
            raise BenchError(f"hr-gateway clients create failed ({created.returncode}):\n{created.stderr[-2000:]}")
        try:
            api_key = json.loads(created.stdout)["api_key"]
        except (ValueError, KeyError) as exc:
            raise BenchError(f"hr-gateway clients create printed no API key: {created.stdout[-500:]!r}") from exc
        if not api_key.startswith("hgw_live_"):
            raise BenchError(f"expected a live key, got {api_key[:9]}…")

        children["gateway"] = Child("gateway", [*exe, "serve", "--config", str(config)], tmp / "gateway.log").start()

        with httpx.Client(timeout=2.0) as probe:
            took = wait_until("mock bureau", children["mock"],
                              lambda: probe.get(f"{mock_url}/api/v1/ping").status_code == 200, args.startup_timeout)
            console.print(f"mock bureau ready at {mock_url} (pid {children['mock'].pid}, {took:.1f}s)")
            took = wait_until("gateway", children["gateway"],
                              lambda: probe.get(f"{gateway_url}/readyz").status_code == 200, args.startup_timeout)
            console.print(f"gateway ready at {gateway_url} (pid {children['gateway'].pid}, {took:.1f}s)")

        results = asyncio.run(measure(args, mock_url, gateway_url, api_key, children))
        for child in children.values():
            child.check_alive()
    except BenchError as exc:
        console.print(f"[red]benchmark failed:[/] {exc}")
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; stopping the mock and the gateway[/]")
        return 130
    finally:
        for name in ("gateway", "mock"):  # the gateway first: it may still be talking to the mock
            if name in children:
                children[name].stop()
        if args.keep_logs:
            console.print(f"child logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    comp = comparison(results)
    print_results(results, comp)
    if args.json_path:
        payload = {
            "date": when.isoformat(), "command": command, "machine": machine,
            "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "passes": [r.summary() for r in results], "comparison": comp,
            "raw": [{"name": r.name, "mode": r.mode, "latencies_ms": [round(x, 4) for x in r.latencies_ms],
                     **({"dispatch_lag_ms": [round(x, 4) for x in r.dispatch_lag_ms]} if r.mode == RATE else {}),
                     "gateway_reported_upstream_ms": r.gateway_upstream_ms} for r in results],
        }
        args.json_path.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        console.print(f"raw numbers written to {args.json_path}")
    if args.write_docs:
        write_docs(args.docs_file, results_markdown(results, comp, machine, args, when, command))
        console.print(f"results written to {args.docs_file}")
    return 1 if any(r.errors for r in results) else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with sigterm_as_keyboard_interrupt():
        return run(args)


if __name__ == "__main__":
    sys.exit(main())
