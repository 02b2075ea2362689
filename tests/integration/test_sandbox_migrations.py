"""Sandbox migrations end to end: ``hr-gateway sandbox migrate`` in a subprocess over
the mock bureaus (reports, sign-off, bad files, SIGKILL and resume, Ctrl-C), and
``/v1/sandbox/migrations`` inside a running gateway."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from stdnum.cn import ric

from gateway.config import UpstreamSettings, sandbox_settings
from mocks.faults import Fault, FaultKind
from tests.conftest import WANG_FANG, ZHAO_LEI, Api, create_client, upstreams_for

ZHANG_SAN = "420102198805200177"
HR_GATEWAY = str(Path(sys.executable).with_name("hr-gateway"))
PLAINTEXT_ID = re.compile(r"\d{17}[\dX]")
SUBMIT = "/api/v1/enrolment/submit"
GZ_EMPLOYER = ("广州示例科技有限公司", "91440101MA59BX4C3Y")
CS_EMPLOYER = ("长沙示例制造有限公司", "91430100MA4L16JQ9D")
WH_EMPLOYER = ("武汉示例物流有限公司", "91420100MA4K2QXL25")

HEADER = "序号,姓名,身份证号码,单位名称,统一社会信用代码,参保地,原参保地,入职日期,离职日期,人员状态,是否缴费,参保险种,缴费基数(元),所属期"
MAPPING = """\
[source]
encoding = "utf-8"

[fields.id_number]
column = "身份证号码"
transforms = ["trim", "upper"]

[fields.name]
column = "姓名"
transforms = ["trim"]

[fields.employer_uscc]
column = "统一社会信用代码"

[fields.employer_name]
column = "单位名称"

[fields.region]
column = "参保地"

[fields.previous_region]
column = "原参保地"

[fields.hire_date]
column = "入职日期"
formats = ["%Y-%m-%d"]

[fields.leave_date]
column = "离职日期"
formats = ["%Y-%m-%d"]

[fields.employment_status]
column = "人员状态"

[fields.contributing]
column = "是否缴费"

[fields.insurance_types]
column = "参保险种"

[fields.contribution_base]
column = "缴费基数(元)"
unit = "yuan"

[fields.period]
column = "所属期"
formats = ["%Y%m"]
"""


def resident_id(area: str, birth: str, sequence: int) -> str:
    """A valid resident ID number (check digit computed) for generated employees."""
    first = f"{area}{birth}{sequence % 1000:03d}"
    return first + ric.calc_check_digit(first + "0")  # it reads the first 17 of 18 characters


def line(no: int, name: str, id_number: str, employer: tuple[str, str], region: str, *, previous: str = "",
         hire: str = "2024-03-01", leave: str = "", status: str = "在职", paying: str = "是",
         types: str = "养老、医疗", base: str = "8000", period: str = "202406") -> str:
    return ",".join([str(no), name, id_number, employer[0], employer[1], region, previous, hire, leave, status,
                     paying, types, base, period])


def write_case(directory: Path, lines: list[str], *, mapping: str = MAPPING) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "employees.csv"
    data.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    mapping_path = directory / "mapping.toml"
    mapping_path.write_text(mapping, encoding="utf-8")
    return data, mapping_path


def write_upstreams(path: Path, bureaus: dict[str, Any]) -> Path:
    path.write_text(json.dumps([
        {"name": u.name, "adapter": u.adapter, "base_url": u.base_url, "regions": list(u.regions),
         "credentials": u.credentials, "options": u.options}
        for u in upstreams_for(bureaus)
    ]))
    return path


def cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HR_GATEWAY, "sandbox", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def start_cli(*args: str, cwd: Path) -> subprocess.Popen[str]:
    log = open(cwd / "cli.log", "w")  # noqa: SIM115 - a file, not a pipe: a chatty process never blocks
    return subprocess.Popen([HR_GATEWAY, "sandbox", *args], cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True)


def db(data_dir: Path, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{data_dir / 'gateway.db'}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(query, params).fetchall()


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except sqlite3.OperationalError:
            pass  # the database or table is not there yet
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def story_lines() -> list[str]:
    """One row of each kind, with the outcome each must come to."""
    return [
        # 2: a first-time participant: enrolled in Changsha
        line(1, "Li Ming", "430102199511080356", CS_EMPLOYER, "长沙市"),
        # 3: active in Guangzhou, hired in Changsha without a transfer: refused, transfer_required
        line(2, WANG_FANG["name"], WANG_FANG["id_number"], CS_EMPLOYER, "长沙市"),
        # 4: active in Shenzhen and Hangzhou; the data says Shenzhen: transferred to Wuhan
        line(3, ZHAO_LEI["name"], ZHAO_LEI["id_number"], WH_EMPLOYER, "武汉市", previous="深圳市"),
        # 5: Zhang San's ID under another name, in Wuhan: the bureau refuses (the name does not match)
        line(4, "Zhang Wei", ZHANG_SAN, WH_EMPLOYER, "武汉市", hire="2024-04-01"),
        # 6: departed: enrolled from the hire date, then terminated at the leave date
        line(5, "Sun Qiang", resident_id("440106", "19880101", 11), GZ_EMPLOYER, "广州市", hire="2023-02-01",
             leave="2024-05-31", status="离职", paying="否"),
        # 7: active but not contributing: nothing to send
        line(6, "Zhou Min", resident_id("420102", "19920202", 21), WH_EMPLOYER, "武汉市", paying="否"),
        # 8: level 1: the hire date does not parse
        line(7, "Wu Lan", resident_id("430103", "19930303", 31), CS_EMPLOYER, "长沙市", hire="2024-13-01"),
        # 9: level 2: the ID number's check digit is wrong
        line(8, "Zheng Hao", "440104199003120214", GZ_EMPLOYER, "广州市"),
        # 10: a valid hire in Guangzhou
        line(9, "Qian Yu", resident_id("440104", "19950505", 41), GZ_EMPLOYER, "广州市", hire="2024-05-01"),
    ]


# -- CLI ------------------------------------------------------------------------------


def test_cli_migrates_reports_signs_off_and_masks(tmp_path: Path, bureaus: dict[str, Any]) -> None:
    data, mapping = write_case(tmp_path / "case", story_lines())
    upstreams = write_upstreams(tmp_path / "upstreams.json", bureaus)
    data_dir = tmp_path / "data"
    result = cli("migrate", str(data), "--mapping", str(mapping), "--report", "report.html", "--json", "report.json",
                 "--data-dir", str(data_dir), "--sandbox-upstreams", str(upstreams), "--batch-size", "3",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = re.search(r"run (mig_\w+)", result.stdout).group(1)  # type: ignore[union-attr]
    assert result.stdout.index(run_id) < result.stdout.index("rows")  # printed before the work, to resume with
    assert "Traceback" not in result.stderr

    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["run"]["id"] == run_id and report["run"]["status"] == "completed"
    assert report["run"]["source"] == {"file": "employees.csv", "format": "csv", "encoding": "utf-8", "rows": 9}
    summary = report["summary"]
    assert summary["level1"] == {"passed": 8, "failed": 1}
    assert summary["level2"] == {"passed": 7, "failed": 1, "warnings": 0}
    assert summary["replay"] == {"accepted": 4, "rejected": 1, "transfer_required": 1, "upstream_unavailable": 0,
                                 "not_replayed": 3}
    groups = {(g["outcome"], g["code"]): g for g in report["replay"]["by_outcome"]}
    required = groups[("transfer_required", "transfer_required")]
    assert required["examples"] == [3] and "440100" in required["message"]
    [rejected] = [g for g in report["replay"]["by_outcome"] if g["outcome"] == "rejected"]
    assert rejected["examples"] == [5] and rejected["code"] and rejected["message"]
    assert groups[("not_replayed", "nothing_to_submit")]["examples"] == [7]
    assert {g["count"] for g in report["replay"]["by_outcome"] if g["outcome"] == "accepted"} == {4}
    assert {r["rule"] for r in report["rules"]} == {"unparseable_value", "invalid_id_number"}
    assert report["sample"]["items"] and report["sign_off"] is None
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    for text in (json.dumps(report, ensure_ascii=False), html, result.stdout, result.stderr):
        assert not PLAINTEXT_ID.search(text)

    # What the bureaus hold: the enrolments, the termination and the transfer really happened.
    enrolled = _enrolled(bureaus["430100"]) | _enrolled(bureaus["440100"])
    assert {"430102199511080356", resident_id("440106", "19880101", 11)} <= enrolled
    assert WANG_FANG["id_number"] not in enrolled
    [(transfers,)] = db(data_dir, "SELECT count(*) FROM transfers WHERE from_region = '440300'")
    assert transfers == 1

    signed = cli("sign-off", run_id, "--reviewer", "Chen Lu", "--note", "sample checked", "--data-dir", str(data_dir),
                 cwd=tmp_path)
    assert signed.returncode == 0, signed.stdout + signed.stderr
    again = cli("sign-off", run_id, "--reviewer", "Chen Lu", "--data-dir", str(data_dir), cwd=tmp_path)
    assert again.returncode != 0 and "already signed off" in again.stderr
    rewritten = cli("report", run_id, "--json", "after.json", "--data-dir", str(data_dir), cwd=tmp_path)
    assert rewritten.returncode == 0, rewritten.stderr
    after = json.loads((tmp_path / "after.json").read_text(encoding="utf-8"))
    assert after["sign_off"]["reviewer"] == "Chen Lu" and after["sign_off"]["note"] == "sample checked"
    assert db(data_dir, "SELECT operation, gateway_id FROM audit_events WHERE operation LIKE 'sandbox.%'") == [
        ("sandbox.migration.sign_off", run_id)]


def test_cli_bad_files_are_one_clear_message(tmp_path: Path) -> None:
    data, mapping = write_case(tmp_path / "case", story_lines()[:2],
                               mapping=MAPPING.replace('transforms = ["trim"]', 'transforms = ["trim", "shout"]', 1))
    result = cli("migrate", str(data), "--mapping", str(mapping), "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert result.returncode == 3
    assert "mapping.toml" in result.stderr and "fields.name.transforms" in result.stderr and "shout" in result.stderr
    assert "Traceback" not in result.stderr

    _, good_mapping = write_case(tmp_path / "good", [])
    empty = tmp_path / "case" / "empty.csv"
    empty.write_bytes(b"")
    result = cli("migrate", str(empty), "--mapping", str(good_mapping), cwd=tmp_path)
    assert result.returncode == 3 and "empty.csv" in result.stderr and "Traceback" not in result.stderr

    missing_column = tmp_path / "case" / "short.csv"
    missing_column.write_text("姓名,身份证号码\nLi Ming,430102199511080356\n", encoding="utf-8")
    result = cli("migrate", str(missing_column), "--mapping", str(good_mapping), cwd=tmp_path)
    assert result.returncode == 3 and "参保地" in result.stderr and "Traceback" not in result.stderr

    result = cli("migrate", str(tmp_path / "nope.csv"), "--mapping", str(mapping), cwd=tmp_path)
    assert result.returncode == 2 and "nope.csv" in result.stderr

    result = cli("migrate", str(data), "--mapping", str(good_mapping), "--resume", "mig_unknown",
                 "--data-dir", str(tmp_path / "data2"), "--sandbox-upstreams", str(tmp_path / "none.json"),
                 cwd=tmp_path)
    assert result.returncode == 2  # the upstreams file does not exist


def _enrolled(bureau: Any) -> set[str]:
    """ID numbers the bureau enrolled (json-hmac keeps enrolments; sm4-async, decided tasks)."""
    if hasattr(bureau, "enrolments"):
        return {e.id_number for e in bureau.enrolments()}
    return {t.id_number for t in bureau.tasks() if t.ywlx == "01" and t.state == "SUCCESS"}  # 01: enrolment


def bulk_lines(count: int) -> list[str]:
    """Active, contributing Guangzhou hires, every one valid and new to the bureaus."""
    return [
        line(i, f"Employee {i}", resident_id("440103", f"1990{1 + i % 12:02d}{1 + i % 28:02d}", i), GZ_EMPLOYER,
             "广州市")
        for i in range(1, count + 1)
    ]


def submissions_by_reference(bureau: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in bureau.requests:
        if record.path == SUBMIT and record.biz_no:
            counts[record.biz_no] = counts.get(record.biz_no, 0) + 1
    return counts


def test_killed_run_resumes_and_replays_every_row_exactly_once(tmp_path: Path, bureaus: dict[str, Any]) -> None:
    rows = 60
    data, mapping = write_case(tmp_path / "case", bulk_lines(rows))
    upstreams = write_upstreams(tmp_path / "upstreams.json", bureaus)
    data_dir = tmp_path / "data"
    # Slow submissions, so that the kill lands while some are under way.
    bureaus["440100"].faults.add(Fault(SUBMIT, FaultKind.LATENCY, latency_ms=150, times=10_000))
    args = [str(data), "--mapping", str(mapping), "--data-dir", str(data_dir), "--sandbox-upstreams", str(upstreams)]
    proc = start_cli("migrate", *args, "--batch-size", "8", "--concurrency", "4", cwd=tmp_path)
    try:
        def mid_batch() -> bool:
            replayed = db(data_dir, "SELECT rows_replayed FROM migration_runs")
            in_flight = db(data_dir, "SELECT count(*) FROM enrolments WHERE status = 'submitting'")[0][0]
            return bool(replayed) and replayed[0][0] >= 16 and in_flight > 0
        wait_for(mid_batch, 90, "two batches replayed and a third under way")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    [(run_id, status, replayed_before)] = db(data_dir, "SELECT id, status, rows_replayed FROM migration_runs")
    assert status == "replaying" and 16 <= replayed_before < rows
    started = db(data_dir, "SELECT count(*) FROM enrolments")[0][0]
    assert started > replayed_before  # rows whose send was under way when the process died

    resumed = cli("migrate", *args, "--resume", run_id, cwd=tmp_path, timeout=180)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming run" in resumed.stdout
    [(status, replayed, batches)] = db(data_dir, "SELECT status, rows_replayed, batches_committed FROM migration_runs")
    assert status == "completed" and replayed == rows
    outcomes = db(data_dir, "SELECT outcome, reference FROM migration_rows WHERE run_id = ?", run_id)
    assert len(outcomes) == rows and {o for o, _ in outcomes} == {"accepted"}
    references = {ref for _, ref in outcomes}
    assert len(references) == rows
    # Every row reached the bureau exactly once: one submission per reference, one enrolment each.
    sent = submissions_by_reference(bureaus["440100"])
    assert set(sent) == references and set(sent.values()) == {1}, sent
    assert len(bureaus["440100"].enrolments()) == rows
    assert db(data_dir, "SELECT count(*) FROM enrolments")[0][0] == rows


def test_ctrl_c_stops_after_the_batch_and_resume_finishes(tmp_path: Path, bureaus: dict[str, Any]) -> None:
    rows = 40
    data, mapping = write_case(tmp_path / "case", bulk_lines(rows))
    upstreams = write_upstreams(tmp_path / "upstreams.json", bureaus)
    data_dir = tmp_path / "data"
    bureaus["440100"].faults.add(Fault(SUBMIT, FaultKind.LATENCY, latency_ms=100, times=10_000))
    args = [str(data), "--mapping", str(mapping), "--data-dir", str(data_dir), "--sandbox-upstreams", str(upstreams)]
    proc = start_cli("migrate", *args, "--batch-size", "5", "--concurrency", "5", cwd=tmp_path)
    try:
        wait_for(lambda: db(data_dir, "SELECT count(*) FROM migration_runs WHERE rows_replayed >= 5")[0][0], 90,
                 "a batch replayed")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    output = (tmp_path / "cli.log").read_text()
    assert "stopping after the current batch" in output and "Traceback" not in output
    [(run_id, status, replayed, batches)] = db(
        data_dir, "SELECT id, status, rows_replayed, batches_committed FROM migration_runs")
    assert status == "interrupted" and replayed == 5 * batches and replayed < rows
    # The batch under way was finished: every row the gateway started has its stored outcome.
    assert db(data_dir, "SELECT count(*) FROM enrolments")[0][0] == replayed

    resumed = cli("migrate", *args, "--resume", run_id, cwd=tmp_path, timeout=180)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert db(data_dir, "SELECT status, rows_replayed FROM migration_runs") == [("completed", rows)]
    assert set(submissions_by_reference(bureaus["440100"]).values()) == {1}
    assert len(bureaus["440100"].enrolments()) == rows


# -- API ------------------------------------------------------------------------------


def files_of(data: Path, mapping: Path) -> dict[str, Any]:
    return {"data": (data.name, data.read_bytes(), "text/csv"), "mapping": (mapping.name, mapping.read_bytes(),
                                                                          "application/toml")}


async def wait_finished(api: Api, run_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await api.http.get(f"/v1/sandbox/migrations/{run_id}", headers=api.headers())
        assert got.status_code == 200, got.text
        body = got.json()
        if body["status"] in ("completed", "failed", "interrupted"):
            return body
        await asyncio.sleep(0.2)
    raise AssertionError("the run did not finish")


async def test_api_runs_an_upload_in_the_background_and_reports(api: Api, tmp_path: Path) -> None:
    data, mapping = write_case(tmp_path, story_lines())
    started = await api.http.post("/v1/sandbox/migrations", headers=api.headers(), files=files_of(data, mapping),
                                  data={"batch_size": "4", "concurrency": "2", "seed": "11"})
    assert started.status_code == 202, started.text
    body = started.json()
    assert started.headers["location"] == f"/v1/sandbox/migrations/{body['id']}"
    assert body["status"] == "validating" and (body["batch_size"], body["concurrency"], body["seed"]) == (4, 2, 11)
    spooled = list((api.settings.data_dir / "sandbox-migrations" / body["id"]).rglob("*"))
    assert any(p.name == "employees.csv" for p in spooled)

    done = await wait_finished(api, body["id"])
    assert done["status"] == "completed" and done["phase"] == "done", done
    assert done["rows_replayed"] == done["rows_to_replay"] == 7 and done["source"]["rows"] == 9
    assert done["progress"]["done"] == 7 and done["progress"]["rate_per_second"] > 0

    as_json = await api.http.get(f"/v1/sandbox/migrations/{body['id']}/report",
                                 headers=api.headers(Accept="application/json"))
    assert as_json.status_code == 200 and as_json.headers["content-type"].startswith("application/json")
    report = as_json.json()
    assert report["summary"]["replay"]["transfer_required"] == 1 and report["sample"]["seed"] == 11
    assert report["summary"]["replay"]["accepted"] == 4 and report["summary"]["replay"]["rejected"] == 1
    as_html = await api.http.get(f"/v1/sandbox/migrations/{body['id']}/report", headers=api.headers(Accept="text/html"))
    assert as_html.status_code == 200 and as_html.headers["content-type"].startswith("text/html")
    assert body["id"] in as_html.text and not PLAINTEXT_ID.search(as_html.text + as_json.text)
    refused = await api.http.get(f"/v1/sandbox/migrations/{body['id']}/report", headers=api.headers(Accept="image/png"))
    assert refused.status_code == 406 and refused.json()["code"] == "not_acceptable"

    signed = await api.http.post(f"/v1/sandbox/migrations/{body['id']}/sign-off", headers=api.headers(),
                                 json={"reviewer": "Chen Lu", "note": "ok"})
    assert signed.status_code == 200, signed.text
    assert signed.json()["sign_off"]["reviewer"] == "Chen Lu"
    twice = await api.http.post(f"/v1/sandbox/migrations/{body['id']}/sign-off", headers=api.headers(),
                                json={"reviewer": "Chen Lu"})
    assert twice.status_code == 409 and twice.json()["code"] == "already_signed_off"

    other = await api.new_client("sandbox:migrate")
    hidden = await api.http.get(f"/v1/sandbox/migrations/{body['id']}", headers=api.headers(other["api_key"]))
    assert hidden.status_code == 404 and hidden.json()["code"] == "not_found"


async def test_api_refuses_bad_uploads_with_stable_codes(api: Api, tmp_path: Path) -> None:
    data, mapping = write_case(tmp_path, story_lines()[:3])

    async def post(**kw: Any) -> Any:
        return await api.http.post("/v1/sandbox/migrations", headers=api.headers(), **kw)

    missing = await post(files={"data": ("employees.csv", data.read_bytes(), "text/csv")})
    assert missing.status_code == 400 and missing.json()["code"] == "missing_upload_part"
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["part"] == "mapping"
    empty = await post(files={"data": ("employees.csv", b"", "text/csv"), "mapping": ("m.toml", mapping.read_bytes())})
    assert empty.status_code == 422 and empty.json()["code"] == "empty_upload" and empty.json()["file"] == "employees.csv"
    bad_mapping = await post(files={"data": ("employees.csv", data.read_bytes()), "mapping": ("m.toml", b"[fields\n")})
    assert bad_mapping.status_code == 422 and bad_mapping.json()["code"] == "invalid_mapping"
    assert "m.toml" in bad_mapping.json()["detail"]
    bad_source = await post(files={"data": ("employees.xls", b"\xd0\xcf\x11\xe0"), "mapping": ("m.toml", mapping.read_bytes())})
    assert bad_source.status_code == 422 and bad_source.json()["code"] == "invalid_source"
    not_multipart = await api.http.post("/v1/sandbox/migrations", headers=api.headers(), json={"data": "x"})
    assert not_multipart.status_code == 400 and not_multipart.json()["code"] == "invalid_upload"
    bad_number = await post(files=files_of(data, mapping), data={"batch_size": "0"})
    assert bad_number.status_code == 400 and bad_number.json()["field"] == "batch_size"
    # Nothing was left behind by the refused uploads.
    spool = api.settings.data_dir / "sandbox-migrations"
    assert not spool.exists() or not any(spool.iterdir())

    no_scope = await api.new_client("social_security:read")
    refused = await api.http.post("/v1/sandbox/migrations", headers=api.headers(no_scope["api_key"]),
                                  files=files_of(data, mapping))
    assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"
    unknown = await api.http.get("/v1/sandbox/migrations/mig_nope", headers=api.headers())
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"


async def test_live_keys_cannot_start_migration_runs(bureaus: dict[str, Any], tmp_path: Path) -> None:
    from litestar.testing import AsyncTestClient

    from gateway.app import create_app

    live = tuple(UpstreamSettings(**{**u.__dict__, "name": "live-" + u.name}) for u in upstreams_for(bureaus))
    settings = sandbox_settings(tmp_path / "data", upstreams=live, api_key_cache_seconds=0)
    issued = await create_client(settings, "sandbox:migrate", sandbox=False)
    data, mapping = write_case(tmp_path / "case", story_lines()[:2])
    app = create_app(settings, sandbox_upstreams=upstreams_for(bureaus))
    async with AsyncTestClient(app=app, timeout=30) as http:
        refused = await http.post("/v1/sandbox/migrations", headers={"Authorization": f"Bearer {issued['api_key']}"},
                                  files=files_of(data, mapping))
    assert refused.status_code == 403 and refused.json()["code"] == "sandbox_key_required"


async def test_gateway_shutdown_interrupts_a_background_run_after_its_batch(
    bureaus: dict[str, Any], tmp_path: Path
) -> None:
    from litestar.testing import AsyncTestClient

    from gateway.app import create_app
    from gateway.store import create_engine
    from sandbox.store import RunStore

    settings = sandbox_settings(tmp_path / "data", api_key_cache_seconds=0)
    issued = await create_client(settings, "sandbox:migrate")
    headers = {"Authorization": f"Bearer {issued['api_key']}"}
    data, mapping = write_case(tmp_path / "case", bulk_lines(40))
    bureaus["440100"].faults.add(Fault(SUBMIT, FaultKind.LATENCY, latency_ms=100, times=10_000))
    app = create_app(settings, sandbox_upstreams=upstreams_for(bureaus))
    async with AsyncTestClient(app=app, timeout=30) as http:
        started = await http.post("/v1/sandbox/migrations", headers=headers, files=files_of(data, mapping),
                                  data={"batch_size": "5", "concurrency": "5"})
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            body = (await http.get(f"/v1/sandbox/migrations/{run_id}", headers=headers)).json()
            if body["rows_replayed"] >= 5:
                break
            await asyncio.sleep(0.05)
        assert body["status"] == "replaying" and body["progress"]["total"] == 40
    # The app has shut down: the run stopped after the batch it was in, resumable.
    engine = create_engine(settings.database_url)
    try:
        run = await RunStore(engine).get(run_id)
    finally:
        await engine.dispose()
    assert run is not None and run.status == "interrupted" and run.phase == "replaying"
    assert run.rows_replayed % 5 == 0 and 5 <= run.rows_replayed < 40 and run.lease_holder is None
