"""Shared helpers for the adapter SDK unit tests (no gateway, no network)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx

from adapters.http import CircuitPolicy, RetryPolicy, Timeouts, UpstreamPolicy

BASE_URL = "https://bureau.test"
APP_ID = "hgw-unit-test"
SECRET = "unit-test-secret-440100"
REGION = "440100"

QUERY = "/api/v1/insured/query"
SUBMIT = "/api/v1/enrolment/submit"
ENROLMENT_QUERY = "/api/v1/enrolment/query"

WANG_FANG_ID = "440104199003120213"
LI_MING_ID = "430102199511080356"
USCC = "91440101MA59BX4C3Y"
UNIT_NAME = "广州示例科技有限公司"


def fast_policy(
    *, failure_threshold: int = 1000, reset_timeout: float = 30.0, **retry: Any
) -> UpstreamPolicy:
    """A policy whose retries take milliseconds; the circuit stays out of the way
    unless a test asks for it."""
    settings: dict[str, Any] = {
        "max_attempts": 3,
        "initial_backoff": 0.001,
        "max_backoff": 0.01,
        "jitter": 0.0,
        "deadline": 5.0,
    }
    settings.update(retry)
    return UpstreamPolicy(
        timeouts=Timeouts(connect=2.0, read=2.0, write=2.0, pool=2.0),
        retry=RetryPolicy(**settings),
        circuit=CircuitPolicy(failure_threshold=failure_threshold, reset_timeout=reset_timeout),
    )


class SleepRecorder:
    """A stand-in for ``asyncio.sleep`` that returns at once and remembers each wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def envelope(code: str = "0000", msg: str = "成功", data: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "msg": msg}
    if code == "0000":
        body["data"] = data
    return body


def ok(data: Any, *, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, json=envelope(data=data), headers=headers)


def refusal(code: str, msg: str = "拒绝", *, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=envelope(code=code, msg=msg), headers=headers)


def raw_record(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "insuranceType": "110",
        "status": "1",
        "unitCode": USCC,
        "unitName": UNIT_NAME,
        "startDate": "20230801",
        "endDate": "",
        "paidMonths": 36,
        "baseAmount": 800000,
        "lastPaidPeriod": "202607",
    }
    record.update(overrides)
    return record


def page(records: list[dict[str, Any]], *, total: int | None = None, page_no: int = 1, page_size: int = 50) -> httpx.Response:
    return ok(
        {
            "total": len(records) if total is None else total,
            "pageNo": page_no,
            "pageSize": page_size,
            "records": records,
        }
    )


def acceptance(biz_no: str, accept_no: str = "440100E000001", *, status: str = "ACCEPTED", accepted_at: str = "20241101") -> httpx.Response:
    return ok({"bizNo": biz_no, "acceptNo": accept_no, "status": status, "acceptedAt": accepted_at})


def expected_signature(method: str, target: str, timestamp: str, nonce: str, body: bytes, secret: str = SECRET) -> str:
    """The signature exactly as docs/dialects/json-hmac.md defines it."""
    string_to_sign = "\n".join([method, target, timestamp, nonce, hashlib.sha256(body).hexdigest()])
    return hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def json_body(request: httpx.Request) -> Any:
    return json.loads(request.content.decode("utf-8"))
