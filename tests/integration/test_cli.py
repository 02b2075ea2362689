"""The hr-gateway command line, including a real `serve --sandbox` process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from gateway.cli import main
from tests.conftest import free_port as _free_port

WANG_FANG = {"id_number": "440104199003120213", "name": "Wang Fang"}


def run(*args: str, data_dir: Path) -> dict | list | str:
    result = CliRunner().invoke(main, [*args, "--data-dir", str(data_dir)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_clients_create_list_revoke(tmp_path):
    out = run("clients", "create", "--name", "payroll", "--scopes", "social_security:read,admin", "--sandbox", "--json",
              data_dir=tmp_path)
    created = json.loads(out)
    assert created["api_key"].startswith("hgw_test_")
    assert created["jwe_key"]["kty"] == "oct" and created["jwe_key"]["kid"] == created["kid"]
    assert len(created["jwe_key"]["k"]) == 43  # 256 bits, base64url
    listed = json.loads(run("clients", "list", "--json", data_dir=tmp_path))
    assert [c["client_id"] for c in listed] == [created["client_id"]]
    assert created["api_key"] not in json.dumps(listed)
    run("clients", "revoke", created["client_id"], data_dir=tmp_path)
    listed = json.loads(run("clients", "list", "--json", data_dir=tmp_path))
    assert listed[0]["revoked_at"]


def test_clients_create_refuses_unknown_scopes(tmp_path):
    result = CliRunner().invoke(main, ["clients", "create", "--name", "x", "--scopes", "root", "--data-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "unknown scope" in result.output


def test_revoke_unknown_client_fails(tmp_path):
    result = CliRunner().invoke(main, ["clients", "revoke", "cli_nope", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "no active client" in result.output


def test_keys_rotate_reencrypts_everything(tmp_path):
    created = json.loads(run("clients", "create", "--name", "a", "--scopes", "admin", "--json", data_dir=tmp_path))
    before = json.loads((tmp_path / "keyring.json").read_text())
    out = run("keys", "rotate", "--settle-seconds", "0", data_dir=tmp_path)
    after = json.loads((tmp_path / "keyring.json").read_text())
    assert after["active"] != before["active"] and before["active"] in after["data_keys"]
    assert "re-encrypted      1 values in clients.jwe_key_enc" in out
    # the client still works: its JWE key decrypts under the new key
    listed = json.loads(run("clients", "list", "--json", data_dir=tmp_path))
    assert listed[0]["kid"] == created["kid"]
    assert oct(os.stat(tmp_path / "keyring.json").st_mode & 0o777) == "0o600"


def test_bad_upstream_policy_is_one_clear_line_at_start(tmp_path):
    from gateway.encryption import Keyring

    config = tmp_path / "c.toml"
    config.write_text(
        f"""
[gateway]
data_dir = "{tmp_path}"
[database]
url = "sqlite+aiosqlite:///{tmp_path / 'x.db'}"
[[upstreams]]
name = "gz"
adapter = "json-hmac"
base_url = "http://127.0.0.1:9"
regions = ["440100"]
credentials = {{ app_id = "a", app_secret = "s" }}
options = {{ policy = {{ retry = {{ max_atempts = 2 }} }} }}
"""
    )
    Keyring.generate().save(tmp_path / "keyring.json")
    exe = Path(sys.executable).with_name("hr-gateway")
    result = subprocess.run([str(exe), "serve", "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "max_atempts" in result.stderr and "Traceback" not in result.stderr


def test_db_upgrade(tmp_path):
    from gateway.store import head_revision

    assert f"database at migration {head_revision()}" in run("db", "upgrade", data_dir=tmp_path)


def test_live_config_errors_are_reported(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[database]\nurl = 'sqlite+aiosqlite:///x.db'\n[[upstreams]]\nname = 'a'\n")
    result = CliRunner().invoke(main, ["clients", "list", "--config", str(bad)])
    assert result.exit_code == 1 and "missing key 'adapter'" in result.output


def test_sandbox_story_and_clean_shutdown(sandbox_server):
    proc, base, key, banner = sandbox_server
    assert "JWE key" in banner and '"kty": "oct"' in banner
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        search = http.post("/v1/social-security/participation-searches", json=WANG_FANG)
        assert search.status_code == 200
        assert search.json()["active_regions"] == ["440100"]
        enrol = http.post(
            "/v1/social-security/enrolments",
            headers={"Idempotency-Key": "story-1"},
            json={
                "employee": WANG_FANG,
                "employer": {"uscc": "91440300MA5FXXKQ11", "name": "深圳示例电子有限公司"},
                "region": "440300",
                "hire_date": "2026-11-02",
                "insurance_types": ["pension"],
                "contribution_base": "9000.00",
            },
        )
        assert enrol.status_code == 409 and enrol.json()["code"] == "transfer_required"

        # A request in flight when SIGTERM arrives still gets its answer.
        mock_url = re.search(r"sandbox-bureau-440100 .*-> (http://\S+)", banner).group(1).rstrip("/")
        httpx.post(f"{mock_url}/__mock__/faults", json={"route": "*", "kind": "latency", "latency_ms": 1500})
        result: dict = {}

        def slow_search() -> None:
            result["response"] = http.post("/v1/social-security/participation-searches", json=WANG_FANG)

        thread = threading.Thread(target=slow_search)
        thread.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        thread.join(30)
        assert result["response"].status_code == 200
        assert result["response"].json()["active_regions"] == ["440100"]
    # uvicorn re-raises the signal after a graceful shutdown, so the exit status says SIGTERM
    assert proc.wait(30) in (0, -signal.SIGTERM)
    output = proc.log_path.read_text()
    assert "stopped cleanly" in output
    assert "440104199003120213" not in banner + output  # no ID number in any log line


def test_live_mode_serves_configured_upstreams_only(tmp_path):
    from mocks import JsonHmacBureau

    bureau = JsonHmacBureau("440100", app_id="live-app", app_secret="live-secret").start()
    port = _free_port()
    config = tmp_path / "hr-gateway.toml"
    config.write_text(
        f"""
[gateway]
port = {port}
data_dir = "{tmp_path / 'data'}"
[database]
url = "sqlite+aiosqlite:///{tmp_path / 'data' / 'live.db'}"
[[upstreams]]
name = "gz"
adapter = "json-hmac"
base_url = "{bureau.base_url}"
regions = ["440100"]
[upstreams.credentials]
app_id = "live-app"
app_secret = "wrong, replaced from the environment"
"""
    )
    env = {**os.environ, "HGW_UPSTREAM_GZ__APP_SECRET": "live-secret"}
    no_keyring = CliRunner().invoke(main, ["clients", "list", "--config", str(config)])
    assert no_keyring.exit_code == 1 and "keys init" in no_keyring.output
    exe = Path(sys.executable).with_name("hr-gateway")
    refused = subprocess.run([str(exe), "serve", "--config", str(config)], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "no keyring" in refused.stderr and "Traceback" not in refused.stderr
    assert CliRunner().invoke(main, ["keys", "init", "--config", str(config)]).exit_code == 0
    again = CliRunner().invoke(main, ["keys", "init", "--config", str(config)])
    assert again.exit_code == 1 and "already exists" in again.output
    live = json.loads(CliRunner().invoke(main, ["clients", "create", "--config", str(config), "--name", "hr",
                                                "--scopes", "social_security:read", "--json"]).stdout)
    sandbox = json.loads(CliRunner().invoke(main, ["clients", "create", "--config", str(config), "--name", "t",
                                                   "--scopes", "social_security:read", "--sandbox", "--json"]).stdout)
    proc = subprocess.Popen([str(exe), "serve", "--config", str(config)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for _ in range(100):
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            ok = http.post("/v1/social-security/participation-searches", json=WANG_FANG,
                           headers={"Authorization": f"Bearer {live['api_key']}"})
            assert ok.status_code == 200, ok.text
            assert ok.json()["active_regions"] == ["440100"]
            refused = http.post("/v1/social-security/participation-searches", json=WANG_FANG,
                                headers={"Authorization": f"Bearer {sandbox['api_key']}"})
            assert refused.status_code == 403 and refused.json()["code"] == "environment_unavailable"
    finally:
        proc.terminate()
        proc.wait(30)
        bureau.stop()


def test_mocks_serve_runs_one_bureau_with_faults_from_the_command_line(tmp_path):
    port = _free_port()
    exe = Path(sys.executable).with_name("hr-gateway")
    proc = subprocess.Popen(
        [str(exe), "mocks", "serve", "--dialect", "json-hmac", "--region", "440100", "--port", str(port),
         "--fault", "*:error:status=503,times=1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for _ in range(100):
                try:
                    first = http.get("/api/v1/ping")
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            assert first.status_code == 503 and first.json()["code"] == "5000"
            second = http.get("/api/v1/ping")
            assert second.status_code == 200 and second.json()["data"] == {"region": "440100"}
    finally:
        proc.terminate()
        proc.wait(10)
    bad = CliRunner().invoke(main, ["mocks", "serve", "--dialect", "smoke-signals", "--region", "440100"])
    assert bad.exit_code == 2 and "known dialects" in bad.output and "iso20022" in bad.output
    no_region = CliRunner().invoke(main, ["mocks", "serve", "--dialect", "json-hmac"])
    assert no_region.exit_code == 1 and "--region" in no_region.output


def test_mocks_serve_runs_a_bank_without_a_region(tmp_path):
    port = _free_port()
    exe = Path(sys.executable).with_name("hr-gateway")
    proc = subprocess.Popen(
        [str(exe), "mocks", "serve", "--dialect", "iso20022", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for _ in range(200):
                try:
                    answer = http.get("/h2h/v1/ping")
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            assert answer.status_code in (200, 401)  # up, and asking for its signature
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_needs_exactly_one_mode(tmp_path):
    neither = CliRunner().invoke(main, ["serve"])
    both = CliRunner().invoke(main, ["serve", "--sandbox", "--config", str(tmp_path / "x.toml")])
    assert neither.exit_code == 2 and both.exit_code == 2
    assert "not both" in both.output
