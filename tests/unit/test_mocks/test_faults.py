"""Fault injection, the control plane and the server lifecycle, over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mocks import MOCK_DIALECTS, Fault, JsonHmacBureau, Sm4AsyncBureau, XmlGbkBureau, parse_fault
from mocks.faults import FaultBook, FaultKind

SECRET = "sandbox-secret-440100"
WANG_FANG = "440104199003120213"
LI_MING = "430102199511080356"
QUERY = "/api/v1/insured/query"
SUBMIT = "/api/v1/enrolment/submit"
ENROLMENT_QUERY = "/api/v1/enrolment/query"
REPO = Path(__file__).resolve().parents[3]


def post(client: httpx.Client, path: str, payload: Any) -> httpx.Response:
    """A correctly signed json-hmac POST (signing rebuilt from the protocol description)."""
    body = json.dumps(payload, ensure_ascii=False).encode()
    ts, nonce = str(int(time.time())), secrets.token_hex(16)
    to_sign = "\n".join(["POST", path, ts, nonce, hashlib.sha256(body).hexdigest()])
    headers = {
        "X-App-Id": "hgw-sandbox",
        "X-Timestamp": ts,
        "X-Nonce": nonce,
        "X-Signature": hmac.new(SECRET.encode(), to_sign.encode(), hashlib.sha256).hexdigest(),
    }
    return client.post(path, content=body, headers=headers)


def query(client: httpx.Client, id_number: str = WANG_FANG, name: str = "王芳") -> httpx.Response:
    return post(client, QUERY, {"idCardNo": id_number, "name": name})


def submit(client: httpx.Client, biz_no: str = "HGW-FAULTS-0001") -> httpx.Response:
    return post(
        client,
        SUBMIT,
        {
            "bizNo": biz_no,
            "idCardNo": LI_MING,
            "name": "李明",
            "unitCode": "91440101MA59BX4C3Y",
            "unitName": "广州示例科技有限公司",
            "startDate": "20241101",
            "insuranceTypes": ["110"],
            "baseAmount": 800000,
        },
    )


@pytest.fixture(scope="module")
def bureau() -> Iterator[JsonHmacBureau]:
    with JsonHmacBureau("440100") as server:
        yield server


@pytest.fixture
def client(bureau: JsonHmacBureau) -> Iterator[httpx.Client]:
    bureau.reset()
    with httpx.Client(base_url=bureau.base_url, timeout=5) as http:
        yield http


# parse_fault and Fault


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("/api/v1/insured/query:latency:ms=500", Fault(QUERY, FaultKind.LATENCY, latency_ms=500)),
        ("*:error:status=503,times=3", Fault("*", FaultKind.ERROR, status=503, times=3)),
        (f"{SUBMIT}:rate_limit:retry_after=2", Fault(SUBMIT, FaultKind.RATE_LIMIT, retry_after=2)),
        ("*:drop", Fault("*", FaultKind.DROP)),
        (f"{SUBMIT}:drop_after:times=1", Fault(SUBMIT, FaultKind.DROP_AFTER, times=1)),
        ("*:error:match=440104199003120213", Fault("*", FaultKind.ERROR, match_id_number=WANG_FANG)),
        ("*:error", Fault("*", FaultKind.ERROR, status=503)),
    ],
)
def test_parse_fault_accepts_the_documented_forms(spec: str, expected: Fault) -> None:
    assert parse_fault(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "ROUTE:KIND"),
        ("*", "ROUTE:KIND"),
        ("*:explode", "unknown kind"),
        ("api/v1/ping:drop", "route"),
        ("*:latency", "positive latency"),
        ("*:latency:ms=abc", "integer"),
        ("*:latency:ms", "bad parameter"),
        ("*:drop:ms=5", "does not apply"),
        ("*:error:retry_after=1", "does not apply"),
        ("*:error:status=200", "400-599"),
        ("*:error:times=0", "positive"),
        ("*:error:colour=red", "bad parameter"),
    ],
)
def test_parse_fault_rejects_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fault(spec)


def test_fault_from_json_round_trips_and_rejects_unknown_fields() -> None:
    fault = Fault("*", FaultKind.RATE_LIMIT, retry_after=3, times=2)
    assert Fault.from_json(fault.to_json()) == fault
    with pytest.raises(ValueError, match="needs 'kind'"):
        Fault.from_json({"route": "*"})
    with pytest.raises(ValueError, match="unknown fault field"):
        Fault.from_json({"route": "*", "kind": "drop", "probability": 0.5})
    with pytest.raises(ValueError, match="times"):
        Fault.from_json({"route": "*", "kind": "drop", "times": True})


def test_fault_book_take_counts_down_and_lets_latency_combine() -> None:
    book = FaultBook()
    slow = Fault("*", FaultKind.LATENCY, latency_ms=1)
    first = Fault(QUERY, FaultKind.ERROR, times=1)
    second = Fault("*", FaultKind.DROP, times=1)
    for fault in (slow, first, second):
        book.add(fault)
    assert book.take(QUERY, None) == [slow, first]
    assert book.take(QUERY, None) == [slow, second]
    assert book.take(QUERY, None) == [slow]
    assert len(book) == 1


# Faults over HTTP


def test_latency_delays_then_answers_normally(client: httpx.Client, bureau: JsonHmacBureau) -> None:
    bureau.faults.add(Fault(QUERY, FaultKind.LATENCY, latency_ms=200))
    started = time.perf_counter()
    response = query(client)
    assert time.perf_counter() - started >= 0.2
    assert response.json()["code"] == "0000"
    started = time.perf_counter()
    client.get("/api/v1/ping")
    assert time.perf_counter() - started < 0.2


def test_latency_combines_with_an_error(client: httpx.Client, bureau: JsonHmacBureau) -> None:
    bureau.faults.add(parse_fault("*:latency:ms=100"))
    bureau.faults.add(parse_fault("*:error:status=500"))
    started = time.perf_counter()
    response = query(client)
    assert time.perf_counter() - started >= 0.1
    assert (response.status_code, response.json()["code"]) == (500, "5000")


def test_error_answers_the_status_with_5000(client: httpx.Client, bureau: JsonHmacBureau) -> None:
    bureau.faults.add(parse_fault("*:error:status=503"))
    response = query(client, name="not even checked")
    assert response.status_code == 503
    assert response.json()["code"] == "5000"
    assert "data" not in response.json()


def test_rate_limit_answers_429_with_retry_after(client: httpx.Client, bureau: JsonHmacBureau) -> None:
    bureau.faults.add(parse_fault(f"{QUERY}:rate_limit:retry_after=2"))
    response = query(client)
    assert (response.status_code, response.json()["code"]) == (429, "4290")
    assert response.headers["Retry-After"] == "2"
    assert client.get("/api/v1/ping").status_code == 200


def test_drop_closes_without_a_response_and_changes_nothing(client: httpx.Client, bureau: JsonHmacBureau) -> None:
    bureau.faults.add(parse_fault(f"{SUBMIT}:drop:times=1"))
    with pytest.raises(httpx.TransportError):
        submit(client)
    assert bureau.enrolments() == []
    assert post(client, ENROLMENT_QUERY, {"bizNo": "HGW-FAULTS-0001"}).json()["code"] == "2404"
    assert bureau.count(SUBMIT, "DROP") == 1


def test_drop_after_processes_then_closes(client: httpx.Client, bureau: JsonHmacBureau) -> None:
    bureau.faults.add(parse_fault(f"{SUBMIT}:drop_after:times=1"))
    with pytest.raises(httpx.TransportError):
        submit(client)
    [enrolment] = bureau.enrolments()
    found = post(client, ENROLMENT_QUERY, {"bizNo": "HGW-FAULTS-0001"}).json()
    assert found["data"]["acceptNo"] == enrolment.accept_no
    assert submit(client).json()["data"]["acceptNo"] == enrolment.accept_no
    [dropped] = [record for record in bureau.requests if record.code == "DROP"]
    assert (dropped.path, dropped.http_status, dropped.biz_no) == (SUBMIT, None, "HGW-FAULTS-0001")


def test_times_expires_the_fault(client: httpx.Client, bureau: JsonHmacBureau) -> None:
    bureau.faults.add(parse_fault("*:error:status=503,times=2"))
    assert [query(client).status_code for _ in range(3)] == [503, 503, 200]
    assert len(bureau.faults) == 0


def test_match_id_number_only_hits_that_person(client: httpx.Client, bureau: JsonHmacBureau) -> None:
    bureau.faults.add(parse_fault(f"*:error:match={WANG_FANG},times=1"))
    assert query(client, LI_MING, "李明").status_code == 200
    assert client.get("/api/v1/ping").status_code == 200
    assert query(client).status_code == 503
    assert query(client).status_code == 200


# Control plane, request log, reset


def test_control_plane_manages_faults(client: httpx.Client) -> None:
    created = client.post("/__mock__/faults", json={"route": QUERY, "kind": "error", "status": 500, "times": 1})
    assert created.status_code == 201
    assert created.json() == {
        "route": QUERY,
        "kind": "error",
        "latency_ms": 0,
        "status": 500,
        "retry_after": 1,
        "times": 1,
        "match_id_number": None,
    }
    client.post("/__mock__/faults", json={"route": "*", "kind": "rate_limit"})
    assert client.delete("/__mock__/faults").status_code == 204
    assert query(client).status_code == 200


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"kind": "drop"}', b'{"route": "*", "kind": "boom"}', b'["*", "drop"]'],
)
def test_control_plane_rejects_bad_faults(client: httpx.Client, body: bytes) -> None:
    response = client.post("/__mock__/faults", content=body)
    assert response.status_code == 400
    assert response.json()["error"]


def test_control_plane_lists_requests_and_resets(client: httpx.Client, bureau: JsonHmacBureau) -> None:
    submit(client)
    client.get("/api/v1/ping")
    query(client, name="wrong")
    logged = client.get("/__mock__/requests").json()
    assert [(r["method"], r["path"], r["code"], r["http_status"], r["biz_no"]) for r in logged] == [
        ("POST", SUBMIT, "0000", 200, "HGW-FAULTS-0001"),
        ("GET", "/api/v1/ping", "0000", 200, None),
        ("POST", QUERY, "2005", 200, None),
    ]
    assert all(isinstance(r["at"], float) for r in logged)
    assert bureau.count() == 3 and bureau.count(code="0000") == 2 and bureau.count(QUERY) == 1
    assert len(client.get("/__mock__/state").json()["enrolments"]) == 1

    assert client.post("/__mock__/reset").status_code == 204
    assert client.get("/__mock__/requests").json() == []
    assert client.get("/__mock__/state").json()["enrolments"] == []


def test_control_plane_unknown_endpoint_and_method(client: httpx.Client) -> None:
    assert client.get("/__mock__/nothing").status_code == 404
    assert client.get("/__mock__/reset").status_code == 405


def test_control_plane_ignores_faults(client: httpx.Client, bureau: JsonHmacBureau) -> None:
    bureau.faults.add(parse_fault("*:drop"))
    assert client.get("/__mock__/state").status_code == 200
    assert client.delete("/__mock__/faults").status_code == 204


def test_reset_restores_seeded_state(client: httpx.Client, bureau: JsonHmacBureau) -> None:
    assert submit(client).json()["data"]["acceptNo"] == "440100E000001"
    bureau.faults.add(parse_fault("*:latency:ms=50"))
    bureau.reset()
    assert bureau.enrolments() == [] and len(bureau.faults) == 0 and len(bureau.requests) == 0
    assert query(client, LI_MING, "anyone").json()["data"]["total"] == 0
    assert query(client).json()["data"]["total"] == 2
    assert submit(client).json()["data"]["acceptNo"] == "440100E000001"


# Lifecycle and command line


def test_lifecycle_is_idempotent_and_releases_the_port() -> None:
    bureau = JsonHmacBureau("440100")
    assert bureau.start() is bureau.start()
    assert bureau.base_url == f"http://127.0.0.1:{bureau.port}"
    with httpx.Client(base_url=bureau.base_url) as http:
        assert http.get("/api/v1/ping").status_code == 200
        bureau.stop()
        bureau.stop()
        with pytest.raises(httpx.TransportError):
            http.get("/api/v1/ping")
    with pytest.raises(RuntimeError):
        bureau.start()


def test_dialect_registry() -> None:
    assert MOCK_DIALECTS == {"json-hmac": JsonHmacBureau, "sm4-async": Sm4AsyncBureau, "xml-gbk": XmlGbkBureau}


def test_python_m_mocks_serves_until_sigterm() -> None:
    command = [
        sys.executable, "-m", "mocks", "--dialect", "json-hmac", "--region", "440300", "--port", "0",
        "--fault", "/api/v1/ping:error:status=500,times=1",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
            assert "app_id=hgw-sandbox" in banner and "app_secret=sandbox-secret-440300" in banner
            base_url = next(word for word in banner.split() if word.startswith("http://"))
            assert httpx.get(f"{base_url}/api/v1/ping").status_code == 500
            assert httpx.get(f"{base_url}/api/v1/ping").json()["data"] == {"region": "440300"}
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=5) == 0
        finally:
            if process.poll() is None:
                process.kill()


def test_python_m_mocks_reports_bad_fault_specs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mocks", "--dialect", "json-hmac", "--region", "440100", "--fault", "*:boom"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 2
    assert "unknown kind" in result.stderr
