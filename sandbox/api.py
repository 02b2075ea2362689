"""``/v1/sandbox/migrations``: start a migration run by uploading a data file and its
mapping, follow it, read its report, sign its review off.

The upload (``multipart/form-data``: ``data`` and ``mapping`` files, optional
``batch_size``, ``concurrency``, ``seed``, ``per_stratum``) is streamed to the
sandbox's data directory as it arrives, never held in memory. Both files are
checked before the answer (a bad mapping or an unreadable data file is a 422 with
the file, row and column); the run then works in the background inside the gateway,
over the same adapters and mock bureaus as sandbox requests. Sandbox keys only.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import msgspec
from litestar import Controller, Litestar, Request, Response, get, post
from litestar.params import HeaderParameter
from multipart import MultipartSegment, ParserError, ParserLimitReached, PushMultipartParser

from gateway.api.dependencies import ApiCall
from gateway.errors import ProblemError
from gateway.extensions import upload_stream
from gateway.ids import new_id
from gateway.policy import PolicyCatalogue
from gateway.runtime import Gateway

from .errors import MappingError, SourceError
from .progress import progress_of
from .runner import MigrationRunner, Prepared, RunOptions, prepare
from .store import Run, RunStore
from .summary import build_report, utc_iso
from .validation import load_policies

__all__ = ["MAX_DATA_BYTES", "BackgroundRuns", "MigrationsController", "background_runs"]

log = logging.getLogger("hr_gateway.sandbox.api")

#: The largest data file accepted (spooled to disk, so it may exceed memory).
MAX_DATA_BYTES = 2 * 1024**3
_MAX_MAPPING_BYTES = 1024**2
_MAX_FIELD_BYTES = 64
_FILE_PARTS = {"data": MAX_DATA_BYTES, "mapping": _MAX_MAPPING_BYTES}
_NUMBER_PARTS = {"batch_size": (1, 10_000), "concurrency": (1, 64), "seed": (-(2**31), 2**31 - 1),
                 "per_stratum": (1, 100)}
_UNSAFE = re.compile(r"[^\w.\- ()]+")
_STOP_GRACE_SECONDS = 30.0


# -- background runs ------------------------------------------------------------------


@dataclass
class BackgroundRuns:
    """Runs working inside this gateway; each stops after its current batch when the
    gateway shuts down (status ``interrupted``)."""

    tasks: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = field(default_factory=dict)

    def start(self, runner: MigrationRunner, run: Run, prepared: Prepared) -> None:
        async def work() -> None:
            try:
                await runner.execute(run, prepared)
            except (MappingError, SourceError):
                pass  # recorded on the run as its error
            except Exception:
                log.exception("migration run %s failed", run.id)
            finally:
                self.tasks.pop(run.id, None)

        self.tasks[run.id] = (asyncio.create_task(work(), name=f"migration-{run.id}"), runner.stop)

    async def stop_all(self) -> None:
        for _, stop in self.tasks.values():
            stop.set()
        running = [task for task, _ in self.tasks.values()]
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=_STOP_GRACE_SECONDS)
        for task in late:  # a batch that would not end: cancelled, still recorded as interrupted
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=5)


@asynccontextmanager
async def background_runs(app: Litestar) -> AsyncIterator[None]:
    runs = BackgroundRuns()
    app.state.sandbox_migration_runs = runs
    try:
        yield
    finally:
        await runs.stop_all()


# -- the upload -----------------------------------------------------------------------


def _safe_name(filename: str | None, fallback: str) -> str:
    name = _UNSAFE.sub("_", Path((filename or "").replace("\\", "/")).name).strip(" .")[:120]
    return name or fallback


@dataclass
class _Upload:
    files: dict[str, tuple[Path, str, int]] = field(default_factory=dict)  # part -> (path, name, bytes)
    numbers: dict[str, int] = field(default_factory=dict)


async def _receive_upload(request: Request, spool: Path) -> _Upload:
    """Parse the multipart body as it streams in, writing file parts under ``spool``."""
    content_type = request.headers.get("content-type", "")
    media, _, params = content_type.partition(";")
    boundary = next(
        (v.strip().strip('"') for k, _, v in (p.strip().partition("=") for p in params.split(";")) if k == "boundary"),
        "",
    )
    if media.strip().lower() != "multipart/form-data" or not boundary:
        raise ProblemError("invalid_upload", "send multipart/form-data with the parts data and mapping")
    upload = _Upload()
    current: MultipartSegment | None = None
    sink: Any = None
    size = 0
    text = bytearray()
    try:
        with PushMultipartParser(boundary.encode("latin-1"), max_segment_count=20) as parser:
            async for chunk in _then_end(upload_stream(request)):
                for part in parser.parse(chunk):
                    if isinstance(part, MultipartSegment):
                        current, size, text = part, 0, bytearray()
                        if part.name in _FILE_PARTS:
                            if part.name in upload.files:
                                raise ProblemError("invalid_upload", f"the part {part.name!r} is sent twice")
                            name = _safe_name(part.filename, "mapping.toml" if part.name == "mapping" else "data.csv")
                            path = spool / part.name / name
                            path.parent.mkdir(parents=True, exist_ok=True)
                            sink = await asyncio.to_thread(path.open, "wb")
                            upload.files[part.name] = (path, name, 0)
                    elif part:
                        assert current is not None
                        size += len(part)
                        if current.name in _FILE_PARTS:
                            if size > _FILE_PARTS[current.name]:
                                raise ProblemError("payload_too_large",
                                                   f"the {current.name} file is larger than {_FILE_PARTS[current.name]} "
                                                   "bytes")
                            await asyncio.to_thread(sink.write, part)
                        elif current.name in _NUMBER_PARTS:
                            text.extend(part)
                            if len(text) > _MAX_FIELD_BYTES:
                                raise ProblemError("invalid_field", f"{current.name}: not a number",
                                                   field=current.name)
                    else:  # the end of a part
                        assert current is not None
                        if current.name in _FILE_PARTS:
                            await asyncio.to_thread(sink.close)
                            sink = None
                            path, name, _ = upload.files[current.name]
                            upload.files[current.name] = (path, name, size)
                        elif current.name in _NUMBER_PARTS:
                            upload.numbers[current.name] = _number(current.name, text)
                        current = None
            if not parser.closed:
                raise ProblemError("invalid_upload", "the multipart body ended before its closing boundary")
    except ParserError as exc:
        raise ProblemError("invalid_upload", f"the multipart body is malformed: {exc}") from None
    except ParserLimitReached:
        raise ProblemError("invalid_upload", "the multipart body has too many parts") from None
    finally:
        if sink is not None:
            await asyncio.to_thread(sink.close)
    for part in ("data", "mapping"):
        if part not in upload.files:
            raise ProblemError("missing_upload_part", f"the upload has no {part!r} file part", part=part)
        _, name, size = upload.files[part]
        if size == 0:
            raise ProblemError("empty_upload", f"{name}: the {part} file is empty", part=part, file=name)
    return upload


async def _then_end(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The chunks, then the empty chunk that tells the parser the body has ended."""
    async for chunk in chunks:
        yield chunk
    yield b""


def _number(name: str, text: bytearray) -> int:
    low, high = _NUMBER_PARTS[name]
    try:
        value = int(text.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise ProblemError("invalid_field", f"{name}: not a whole number", field=name) from None
    if not low <= value <= high:
        raise ProblemError("invalid_field", f"{name}: must be between {low} and {high}", field=name)
    return value


# -- answers --------------------------------------------------------------------------


class ProgressOut(msgspec.Struct):
    phase: str
    done: int
    total: int | None
    rate_per_second: float | None
    eta_seconds: float | None


class SourceOut(msgspec.Struct):
    file: str
    format: str | None
    encoding: str | None
    rows: int | None


class SignOffOut(msgspec.Struct):
    reviewer: str
    at: str
    note: str | None


class MigrationRunOut(msgspec.Struct):
    id: str
    status: str
    phase: str
    source: SourceOut
    mapping: str
    progress: ProgressOut
    rows_validated: int
    rows_to_replay: int | None
    rows_replayed: int
    batch_size: int
    concurrency: int
    seed: int
    error: str | None
    sign_off: SignOffOut | None
    started_at: str
    finished_at: str | None
    report: str


class SignOffIn(msgspec.Struct, forbid_unknown_fields=True):
    reviewer: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")]
    note: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


def _out(run: Run) -> MigrationRunOut:
    progress = progress_of(run)
    return MigrationRunOut(
        id=run.id,
        status=run.status,
        phase=run.phase,
        source=SourceOut(run.source_file, run.source_format, run.source_encoding,
                         run.rows_total if run.phase != "validating" else None),
        mapping=run.mapping_file,
        progress=ProgressOut(
            progress.phase, progress.done, progress.total,
            round(progress.rate, 1) if progress.rate is not None else None,
            round(progress.eta_seconds, 1) if progress.eta_seconds is not None else None,
        ),
        rows_validated=run.rows_validated,
        rows_to_replay=run.replay_total,
        rows_replayed=run.rows_replayed,
        batch_size=run.batch_size,
        concurrency=run.concurrency,
        seed=run.seed,
        error=run.error,
        sign_off=SignOffOut(run.signed_off_by or "", utc_iso(run.signed_off_at) or "", run.sign_off_note)
        if run.signed_off_at is not None else None,
        started_at=utc_iso(run.started_at) or "",
        finished_at=utc_iso(run.finished_at),
        report=f"{MigrationsController.path}/{run.id}/report",
    )


def _sandbox_only(call: ApiCall) -> None:
    if not call.client.sandbox:
        raise ProblemError(
            "sandbox_key_required", "migration runs replay data against the sandbox bureaus: use a sandbox key (hgw_test_…)"
        )


async def _run_of(call: ApiCall, run_id: str) -> tuple[RunStore, Run]:
    store = RunStore(call.gateway.engine)
    run = await store.get(run_id, client_id=call.client.id)
    if run is None:
        raise ProblemError("not_found", "no migration run with this id for this client")
    return store, run


def _negotiate_report(accept: str | None) -> str:
    """application/json unless the client prefers text/html; 406 if it accepts neither."""
    if not accept:
        return "application/json"
    ranked = []
    for i, part in enumerate(accept.split(",")):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranked.append((-q, i, media.strip().lower()))
    for negative_q, _, media in sorted(ranked):
        if negative_q == 0:
            break
        if media in ("text/html", "application/json"):
            return media
        if media in ("*/*", "application/*", "application/jose"):
            return "application/json"
        if media == "text/*":
            return "text/html"
    raise ProblemError("not_acceptable", "the report is available as text/html or application/json")


class MigrationsController(Controller):
    path = "/v1/sandbox/migrations"
    tags = ["sandbox migrations"]

    @post(
        "/",
        opt={"scope": "sandbox:migrate", "streamed_upload": True},
        status_code=202,
        summary="Start a migration run: upload a data file and its mapping",
    )
    async def start(self, request: Request, call: ApiCall) -> Response[MigrationRunOut]:
        """`multipart/form-data` with the file parts `data` (CSV in UTF-8 or GBK, XLSX, or JSON Lines) and `mapping`
        (TOML), and optionally `batch_size`, `concurrency`, `seed` and `per_stratum`. The files are checked before
        the answer (422 `invalid_mapping` / `invalid_source` naming the file, row and column); the run then
        validates every row (levels 1 and 2), samples rows for review (level 3) and replays the rows that pass
        against the sandbox bureaus in the background. Follow it at `GET /v1/sandbox/migrations/{id}`."""
        _sandbox_only(call)
        gateway: Gateway = call.gateway
        run_id = new_id("mig")
        spool = gateway.settings.data_dir / "sandbox-migrations" / run_id
        try:
            upload = await _receive_upload(request, spool)
            data_path, data_name, _ = upload.files["data"]
            mapping_path, mapping_name, _ = upload.files["mapping"]
            try:
                prepared = await asyncio.to_thread(prepare, data_path, mapping_path)
            except MappingError as exc:
                raise ProblemError("invalid_mapping", str(exc), file=exc.file, key=exc.key) from None
            except SourceError as exc:
                raise ProblemError("invalid_source", str(exc), file=exc.file, row=exc.row, column=exc.column) from None
            try:
                options = RunOptions(**upload.numbers)
            except ValueError as exc:
                raise ProblemError("invalid_field", str(exc)) from None
            assert call.upstreams.environment == "sandbox"
            runner = MigrationRunner(
                RunStore(gateway.engine), gateway, call.client, call.upstreams,
                policies=await load_policies(PolicyCatalogue(gateway.engine, "sandbox")),
            )
            run = await runner.create(prepared, options, run_id=run_id, source_name=data_name, mapping_name=mapping_name)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, spool, True)
            raise
        request.app.state.sandbox_migration_runs.start(runner, run, prepared)
        return Response(_out(run), status_code=202, headers={"Location": f"{self.path}/{run.id}"})

    @get("/{run_id:str}", opt={"scope": "sandbox:migrate"}, summary="A migration run: status, phase and progress")
    async def get_run(self, run_id: str, call: ApiCall) -> MigrationRunOut:
        """`status` is `validating`, `replaying`, `completed`, `failed` (with `error`) or `interrupted`; `progress`
        counts the current phase's rows, with the rate and an estimate of the time left."""
        _sandbox_only(call)
        _, run = await _run_of(call, run_id)
        return _out(run)

    @get(
        "/{run_id:str}/report",
        opt={"scope": "sandbox:migrate"},
        summary="A migration run's report: an HTML page, or the same data as JSON",
    )
    async def report(
        self,
        run_id: str,
        call: ApiCall,
        accept: Annotated[str | None, HeaderParameter(name="Accept", required=False)] = None,
    ) -> Response[bytes]:
        """`Accept: text/html` for a self-contained page, `application/json` for the data; every value is
        masked. Available while the run works (what is done so far)."""
        _sandbox_only(call)
        wanted = _negotiate_report(accept)
        store, run = await _run_of(call, run_id)
        from .report import render_html, render_json

        data = await build_report(store, run.id)
        headers = {"Cache-Control": "no-store", "Vary": "Accept"}
        if wanted == "text/html":
            return Response(render_html(data).encode("utf-8"), media_type="text/html", headers=headers)
        return Response(render_json(data), media_type="application/json", headers=headers)

    @post(
        "/{run_id:str}/sign-off",
        opt={"scope": "sandbox:migrate"},
        status_code=200,
        summary="Sign off a completed run's review sample (level 3)",
    )
    async def sign_off(self, run_id: str, data: SignOffIn, call: ApiCall) -> MigrationRunOut:
        """Records who reviewed the sample, when, and their note (audited). 409 `run_not_finished` before the run
        completed, `already_signed_off` the second time."""
        _sandbox_only(call)
        store, run = await _run_of(call, run_id)
        if run.status != "completed":
            raise ProblemError("run_not_finished", f"the run is {run.status}; sign off once it has completed",
                               status=run.status)
        signed = await store.sign_off(run.id, reviewer=data.reviewer.strip(), note=data.note, client_id=call.client.id)
        if signed is None:
            raise ProblemError("already_signed_off", f"signed off by {run.signed_off_by} at {utc_iso(run.signed_off_at)}")
        return _out(signed)

