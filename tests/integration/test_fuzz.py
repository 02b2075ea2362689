"""Schemathesis fuzzes the published OpenAPI document against a real sandbox
server: whatever it sends, the gateway never answers 5xx. Bounded (fixed seed, a few
dozen examples per operation) so it ends by itself in well under a minute."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_openapi_fuzzing_finds_no_server_errors(sandbox_server, tmp_path):
    _proc, base, key, _banner = sandbox_server
    schemathesis = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [
            str(schemathesis), "run", f"{base}/schema/openapi.json",
            "--header", f"Authorization: Bearer {key}",
            "--checks", "not_a_server_error",
            "--max-examples", "40",
            "--seed", "20261121",
            "--request-timeout", "20",
        ],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,  # its cache stays out of the checkout
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
