"""The sm4-async mock bureau against docs/dialects/sm4-async.md, over real HTTP.

The request encryption and signing below are rebuilt from the protocol description,
not taken from the mock, so the two check each other.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.hmac import HMAC

from mocks import MOCK_DIALECTS, Fault, Sm4AsyncBureau, parse_fault
from mocks.sm4_async import sandbox_mac_key, sandbox_sm4_key

REPO = Path(__file__).resolve().parents[3]
APPID = "hgw-sandbox"
CS_SM4 = sandbox_sm4_key("430100")
CS_MAC = "sandbox-mac-430100"
HZ_SM4 = sandbox_sm4_key("330100")
HZ_MAC = "sandbox-mac-330100"
LIU_YANG = "430104199306150282"
LI_MING = "430102199511080356"
ZHAO_LEI = "440303199201010554"
CHEN_JING = "330102198707150426"
BAD_CHECK = "430104199306150283"
PERSON = "/api/person/query"
CONTRIBUTION = "/api/contribution/query"
SUBMIT = "/api/enrolment/submit"
RESULT = "/api/task/result"
CHINA = timezone(timedelta(hours=8))


# -- the protocol, from the document -------------------------------------------------


def seal(key_hex: str, plaintext: bytes, *, pad: bool = True) -> str:
    iv = os.urandom(16)
    if pad:
        padder = padding.PKCS7(128).padder()
        plaintext = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.SM4(bytes.fromhex(key_hex)), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(plaintext) + encryptor.finalize()).decode()


def unseal(key_hex: str, data: str) -> Any:
    raw = base64.b64decode(data, validate=True)
    decryptor = Cipher(algorithms.SM4(bytes.fromhex(key_hex)), modes.CBC(raw[:16])).decryptor()
    padded = decryptor.update(raw[16:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return json.loads((unpadder.update(padded) + unpadder.finalize()).decode("utf-8"))


def hmac_sm3(mac_key: str, fields: dict[str, str]) -> str:
    signer = HMAC(mac_key.encode(), hashes.SM3())
    signer.update("&".join(f"{key}={fields[key]}" for key in sorted(fields)).encode())
    return signer.finalize().hex()


def build_form(
    payload: Any,
    *,
    appid: str = APPID,
    sm4_key: str = CS_SM4,
    mac_key: str = CS_MAC,
    timestamp: int | None = None,
    data: str | None = None,
) -> dict[str, str]:
    if data is None:
        plaintext = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
        data = seal(sm4_key, plaintext)
    fields = {
        "appid": appid,
        "timestamp": str(int(time.time() * 1000) if timestamp is None else timestamp),
        "nonce": secrets.token_hex(16),
        "data": data,
    }
    return {**fields, "sign": hmac_sm3(mac_key, fields)}


def call(client: httpx.Client, path: str, payload: Any = None, *, form: dict[str, str] | None = None,
         **options: Any) -> httpx.Response:  # fmt: skip
    return client.post(path, data=form if form is not None else build_form(payload, **options))


def opened(response: httpx.Response, *, sm4_key: str = CS_SM4, mac_key: str = CS_MAC) -> tuple[str, Any]:
    """Verify the answer's signature; return its code and decrypted data (None for ``""``)."""
    assert response.headers["content-type"].startswith("application/json")
    envelope = response.json()
    assert set(envelope) == {"code", "message", "data", "sign"}
    fields = {key: envelope[key] for key in ("code", "data", "message")}
    assert envelope["sign"] == hmac_sm3(mac_key, fields)
    data = unseal(sm4_key, envelope["data"]) if envelope["data"] else None
    return envelope["code"], data


def ok(response: httpx.Response, **keys: str) -> Any:
    assert response.status_code == 200, response.text
    code, data = opened(response, **keys)
    assert code == "0" and response.json()["message"] == "成功"
    return data


def refused(response: httpx.Response, code: str, status: int, **keys: str) -> str:
    assert response.status_code == status, response.text
    got, data = opened(response, **keys)
    assert got == code and data is None and response.json()["data"] == ""
    return str(response.json()["message"])


def submit_payload(biz_no: str = "HGW-0123456789ABCDEF", **overrides: Any) -> dict[str, Any]:
    return {
        "bizNo": biz_no, "idNo": LI_MING, "name": "李明", "dwbh": "91430100MA4L16JQ9D",
        "dwmc": "长沙示例制造有限公司", "cbrq": "20261102", "xzlx": ["110", "310"], "jfjs": "8000.00",
        **overrides,
    }  # fmt: skip


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def bureau(clock: FakeClock) -> Iterator[Sm4AsyncBureau]:
    with Sm4AsyncBureau("430100", clock=clock, processing_delay=0.5) as server:
        yield server


@pytest.fixture
def client(bureau: Sm4AsyncBureau, clock: FakeClock) -> Iterator[httpx.Client]:
    bureau.reset()
    clock.now = time.time()
    with httpx.Client(base_url=bureau.base_url, timeout=5) as http:
        yield http


@pytest.fixture
def hangzhou() -> Iterator[Sm4AsyncBureau]:
    with Sm4AsyncBureau("330100", slow_seconds=30.0, processing_delay=0) as server:
        yield server


def hz_call(client: httpx.Client, path: str, payload: Any) -> httpx.Response:
    return call(client, path, payload, sm4_key=HZ_SM4, mac_key=HZ_MAC)


def hz_ok(response: httpx.Response) -> Any:
    return ok(response, sm4_key=HZ_SM4, mac_key=HZ_MAC)


# -- person/query --------------------------------------------------------------------


LIU_RECORD = {
    "xzlx": "110", "cbzt": "3", "dwbh": "91430100MA4L16JQ9D", "dwmc": "长沙示例制造有限公司",
    "cbrq": "20180701", "zzrq": "20230630", "jfys": 60, "jfjs": "6000.00", "zhjfny": "202306",
}  # fmt: skip


@pytest.mark.parametrize("name", ["刘洋", "Liu Yang", " liu yang "])
def test_person_query_returns_the_seeded_record(client: httpx.Client, name: str) -> None:
    assert ok(call(client, PERSON, {"idNo": LIU_YANG, "name": name})) == {"records": [LIU_RECORD]}


def test_answers_are_sealed_with_a_fresh_iv_and_signed(client: httpx.Client) -> None:
    first = call(client, PERSON, {"idNo": LIU_YANG, "name": "刘洋"}).json()
    second = call(client, PERSON, {"idNo": LIU_YANG, "name": "刘洋"}).json()
    assert first["data"] != second["data"]
    assert base64.b64decode(first["data"])[:16] != base64.b64decode(second["data"])[:16]
    assert unseal(CS_SM4, first["data"]) == unseal(CS_SM4, second["data"])
    assert first["sign"] == hmac_sm3(CS_MAC, {"code": "0", "data": first["data"], "message": "成功"})


def test_unknown_person_has_no_records(client: httpx.Client) -> None:
    assert ok(call(client, PERSON, {"idNo": LI_MING, "name": "李明"})) == {"records": []}


def test_person_query_refusals(client: httpx.Client) -> None:
    assert refused(call(client, PERSON, {"idNo": LIU_YANG, "name": "王芳"}), "61005", 200).startswith("姓名")
    assert refused(call(client, PERSON, {"idNo": BAD_CHECK, "name": "刘洋"}), "61003", 200).startswith("公民身份号码")
    refused(call(client, PERSON, {"idNo": "43010419930615028", "name": "刘洋"}), "40005", 400)
    refused(call(client, PERSON, {"idNo": LIU_YANG, "name": " "}), "40005", 400)


# -- contribution/query --------------------------------------------------------------


def _months(client: httpx.Client, id_number: str, name: str, start: str, end: str) -> Any:
    return ok(call(client, CONTRIBUTION, {"idNo": id_number, "name": name, "startMonth": start, "endMonth": end}))


def test_contribution_query_returns_months_in_range(client: httpx.Client) -> None:
    assert _months(client, LIU_YANG, "刘洋", "202212", "202304") == {
        "months": [
            {"ny": f"2023{m:02d}", "xzlx": "110", "jfzt": "1", "dwjf": "960.00", "grjf": "480.00",
             "dzrq": f"2023{m + 1:02d}15"}
            for m in (1, 2, 3, 4)
        ]
    }  # fmt: skip
    everything = _months(client, LIU_YANG, "Liu Yang", "202007", "202306")["months"]
    assert [month["ny"] for month in everything] == ["202301", "202302", "202303", "202304", "202305", "202306"]
    assert everything[-1]["dzrq"] == "20230715"
    assert _months(client, LI_MING, "李明", "202301", "202301") == {"months": []}


@pytest.mark.parametrize(
    ("start", "end", "code"),
    [
        ("202307", "202306", "40005"),  # start after end
        ("202001", "202212", "0"),  # exactly 36 months
        ("202001", "202301", "40005"),  # 37 months
        ("202313", "202401", "40005"),  # no such month
        ("2023-01", "202302", "40005"),
    ],
)
def test_contribution_range_checks(client: httpx.Client, start: str, end: str, code: str) -> None:
    response = call(client, CONTRIBUTION, {"idNo": LIU_YANG, "name": "刘洋", "startMonth": start, "endMonth": end})
    if code == "0":
        ok(response)
    else:
        refused(response, code, 400)


def test_contribution_query_checks_the_person(client: httpx.Client) -> None:
    query = {"startMonth": "202301", "endMonth": "202302"}
    refused(call(client, CONTRIBUTION, {"idNo": LIU_YANG, "name": "李明", **query}), "61005", 200)
    refused(call(client, CONTRIBUTION, {"idNo": BAD_CHECK, "name": "刘洋", **query}), "61003", 200)


# -- request checks, in the document's order -----------------------------------------


def _tamper(case: str) -> dict[str, str]:
    person = {"idNo": LIU_YANG, "name": "刘洋"}
    stale = int((time.time() - 301) * 1000)
    match case:
        case "missing field":
            form = build_form(person)
            del form["nonce"]
            return form
        case "missing field, unknown appid":
            form = build_form(person, appid="someone-else")
            del form["timestamp"]
            return form
        case "blank field":
            return {**build_form(person), "appid": ""}
        case "extra field":
            return {**build_form(person), "version": "1"}
        case "short nonce":
            fields = {"appid": APPID, "timestamp": str(int(time.time() * 1000)), "nonce": "abc123",
                      "data": seal(CS_SM4, b"{}")}  # fmt: skip
            return {**fields, "sign": hmac_sm3(CS_MAC, fields)}
        case "seconds timestamp":
            fields = {"appid": APPID, "timestamp": "17x", "nonce": secrets.token_hex(8), "data": seal(CS_SM4, b"{}")}
            return {**fields, "sign": hmac_sm3(CS_MAC, fields)}
        case "unknown appid":
            return build_form(person, appid="someone-else")
        case "unknown appid, bad sign":
            return {**build_form(person, appid="someone-else"), "sign": "0" * 64}
        case "bad sign":
            return build_form(person, mac_key="wrong-key")
        case "upper-case sign":
            form = build_form(person)
            return {**form, "sign": form["sign"].upper()}
        case "bad sign, stale":
            return build_form(person, mac_key="wrong-key", timestamp=stale)
        case "stale timestamp":
            return build_form(person, timestamp=stale)
        case "future timestamp":
            return build_form(person, timestamp=int((time.time() + 301) * 1000))
        case "stale, bad base64":
            return build_form(person, timestamp=stale, data="not base64!")
        case "bad base64":
            return build_form(person, data="not base64!")
        case "missing base64 padding":
            return build_form(person, data=seal(CS_SM4, b'{"idNo": "1"}').rstrip("="))
        case "url-safe base64":
            url_safe = base64.urlsafe_b64encode(os.urandom(32)).decode()
            return build_form(person, data=url_safe.replace("=", "") + "-_")
        case "only an iv":
            return build_form(person, data=base64.b64encode(os.urandom(16)).decode())
        case "bad length":
            return build_form(person, data=base64.b64encode(os.urandom(16 + 20)).decode())
        case "bad padding":
            return build_form(person, data=seal(CS_SM4, b'{"idNo":"x"}' + b"\x00" * 4, pad=False))
        case "wrong key":
            return build_form(person, sm4_key="00" * 16)
        case "non-JSON plaintext":
            return build_form(b"idNo=430104199306150282")
        case "JSON array":
            return build_form([person])
        case "not UTF-8":
            return build_form('{"name": "刘洋"}'.encode("gbk"))
        case "missing JSON field":
            return build_form({"idNo": LIU_YANG})
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "code", "status"),
    [
        ("missing field", "40005", 400),
        ("missing field, unknown appid", "40005", 400),
        ("blank field", "40005", 400),
        ("extra field", "40005", 400),
        ("short nonce", "40005", 400),
        ("seconds timestamp", "40005", 400),
        ("unknown appid", "40004", 401),
        ("unknown appid, bad sign", "40004", 401),
        ("bad sign", "40001", 401),
        ("upper-case sign", "40001", 401),
        ("bad sign, stale", "40001", 401),
        ("stale timestamp", "40002", 401),
        ("future timestamp", "40002", 401),
        ("stale, bad base64", "40002", 401),
        ("bad base64", "40003", 400),
        ("missing base64 padding", "40003", 400),
        ("url-safe base64", "40003", 400),
        ("only an iv", "40003", 400),
        ("bad length", "40003", 400),
        ("bad padding", "40003", 400),
        ("wrong key", "40003", 400),
        ("non-JSON plaintext", "40003", 400),
        ("JSON array", "40003", 400),
        ("not UTF-8", "40003", 400),
        ("missing JSON field", "40005", 400),
    ],
)
def test_checks_run_in_order(client: httpx.Client, case: str, code: str, status: int) -> None:
    refused(call(client, PERSON, form=_tamper(case)), code, status)


def test_timestamp_window_follows_the_bureau_clock(client: httpx.Client, clock: FakeClock) -> None:
    clock.now = float(int(clock.now))
    form = build_form({"idNo": LIU_YANG, "name": "刘洋"}, timestamp=int(clock.now * 1000))
    clock.advance(300)
    ok(call(client, PERSON, form=form))
    clock.advance(1)
    refused(call(client, PERSON, form=form), "40002", 401)


def test_nonces_are_not_tracked(client: httpx.Client) -> None:
    form = build_form({"idNo": LIU_YANG, "name": "刘洋"})
    ok(call(client, PERSON, form=form))
    ok(call(client, PERSON, form=form))


def test_form_encoding_and_route_errors(client: httpx.Client) -> None:
    form = build_form({"idNo": LIU_YANG, "name": "刘洋"})
    refused(client.post(PERSON, json=form), "40005", 400)
    refused(client.post("/api/person/lookup", data=form), "40005", 404)
    refused(client.get(PERSON), "40005", 405)


# -- asynchronous enrolment ----------------------------------------------------------


def _result(client: httpx.Client, **query: str) -> dict[str, str]:
    return dict(ok(call(client, RESULT, query)))


def test_submit_is_processing_until_the_delay_then_succeeds(
    client: httpx.Client, bureau: Sm4AsyncBureau, clock: FakeClock
) -> None:
    answer = ok(call(client, SUBMIT, submit_payload()))
    assert answer == {"ticket": "T430100-000001", "bizNo": "HGW-0123456789ABCDEF"}
    processing = {"ticket": "T430100-000001", "bizNo": "HGW-0123456789ABCDEF", "ywlx": "01", "state": "PROCESSING",
                  "acceptNo": "", "acceptDate": "", "failCode": "", "failMsg": ""}  # fmt: skip
    assert _result(client, ticket="T430100-000001") == processing
    assert ok(call(client, PERSON, {"idNo": LI_MING, "name": "李明"})) == {"records": []}
    submitted = clock.now
    clock.advance(0.49)
    assert _result(client, bizNo="HGW-0123456789ABCDEF")["state"] == "PROCESSING"
    clock.advance(0.02)
    accept_date = datetime.fromtimestamp(submitted + 0.5, CHINA).strftime("%Y%m%d")
    assert _result(client, ticket="T430100-000001") == {
        **processing, "state": "SUCCESS", "acceptNo": "430100-R-000001", "acceptDate": accept_date,
    }  # fmt: skip
    records = ok(call(client, PERSON, {"idNo": LI_MING, "name": "李明"}))["records"]
    assert records == [
        {"xzlx": xzlx, "cbzt": "1", "dwbh": "91430100MA4L16JQ9D", "dwmc": "长沙示例制造有限公司",
         "cbrq": "20261102", "zzrq": "", "jfys": 0, "jfjs": "8000.00", "zhjfny": ""}
        for xzlx in ("110", "310")
    ]  # fmt: skip
    [task] = bureau.tasks()
    assert (task.id_number, task.state, task.xzlx) == (LI_MING, "SUCCESS", ("110", "310"))


def test_settle_decides_in_submission_order(client: httpx.Client, bureau: Sm4AsyncBureau) -> None:
    # Liu Yang's pension record is terminated ("3"), so enrolling in 110 again is allowed once.
    liu = {"idNo": LIU_YANG, "name": "刘洋", "xzlx": ["110"]}
    ok(call(client, SUBMIT, submit_payload("HGW-LIU-000001", **liu)))
    ok(call(client, SUBMIT, submit_payload("HGW-LIU-000002", **liu)))
    ok(call(client, SUBMIT, submit_payload("HGW-LIU-000003", **{**liu, "name": "赵磊", "xzlx": ["210"]})))
    assert [t.state for t in bureau.tasks()] == ["PROCESSING"] * 3
    first, second, third = bureau.settle()
    assert (first.state, first.accept_no) == ("SUCCESS", "430100-R-000001")
    assert (second.state, second.fail_code, second.accept_no) == ("FAILED", "61001", "")
    assert (third.state, third.fail_code) == ("FAILED", "61005")
    assert _result(client, ticket="T430100-000002") == {
        "ticket": "T430100-000002", "bizNo": "HGW-LIU-000002", "ywlx": "01", "state": "FAILED", "acceptNo": "",
        "acceptDate": "", "failCode": "61001", "failMsg": "该险种已有有效参保记录",
    }  # fmt: skip
    assert _result(client, bizNo="HGW-LIU-000003")["failMsg"] == "姓名与公民身份号码不符"
    records = ok(call(client, PERSON, {"idNo": LIU_YANG, "name": "刘洋"}))["records"]
    assert [(r["xzlx"], r["cbzt"], r["cbrq"]) for r in records] == [("110", "3", "20180701"), ("110", "1", "20261102")]


def test_same_biz_no_returns_the_same_ticket_and_changes_nothing(
    client: httpx.Client, bureau: Sm4AsyncBureau
) -> None:
    first = ok(call(client, SUBMIT, submit_payload()))
    again = ok(call(client, SUBMIT, submit_payload(xzlx=["210"], name="Somebody Else")))
    assert first == again == {"ticket": "T430100-000001", "bizNo": "HGW-0123456789ABCDEF"}
    bureau.settle()
    assert ok(call(client, SUBMIT, submit_payload())) == first
    [task] = bureau.tasks()
    assert task.xzlx == ("110", "310") and task.state == "SUCCESS"
    assert ok(call(client, SUBMIT, submit_payload("HGW-OTHER-0001")))["ticket"] == "T430100-000002"


def test_concurrent_submits_register_one_task(bureau: Sm4AsyncBureau, client: httpx.Client) -> None:
    forms = [build_form(submit_payload("HGW-RACE-000001")) for _ in range(16)]
    with httpx.Client(base_url=bureau.base_url, timeout=5) as http, ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda form: ok(call(http, SUBMIT, form=form)), forms))
    assert {answer["ticket"] for answer in answers} == {"T430100-000001"}
    assert len(bureau.tasks()) == 1


@pytest.mark.parametrize(
    "overrides",
    [
        {"bizNo": "HGW-1"},
        {"bizNo": "HGW_0123456789"},
        {"bizNo": "X" * 41},
        {"xzlx": []},
        {"xzlx": ["110", "999"]},
        {"xzlx": "110"},
        {"jfjs": "8000"},
        {"jfjs": 8000.0},
        {"jfjs": "0.00"},
        {"cbrq": "2026-11-02"},
        {"cbrq": "20260231"},
        {"dwmc": ""},
        {"idNo": "4301021995110803"},
    ],
)
def test_submit_format_problems_answer_40005_at_once(
    client: httpx.Client, bureau: Sm4AsyncBureau, overrides: dict[str, Any]
) -> None:
    refused(call(client, SUBMIT, submit_payload(**overrides)), "40005", 400)
    assert bureau.tasks() == []


def test_submit_missing_field_and_bad_check_digit(client: httpx.Client, bureau: Sm4AsyncBureau) -> None:
    payload = submit_payload()
    del payload["dwbh"]
    refused(call(client, SUBMIT, payload), "40005", 400)
    refused(call(client, SUBMIT, submit_payload(idNo=BAD_CHECK)), "61003", 200)
    assert bureau.tasks() == []


def test_task_result_lookups(client: httpx.Client) -> None:
    ok(call(client, SUBMIT, submit_payload()))
    assert _result(client, ticket="T430100-000001", bizNo="HGW-0123456789ABCDEF")["state"] == "PROCESSING"
    refused(call(client, RESULT, {"ticket": "T430100-000002"}), "61404", 200)
    refused(call(client, RESULT, {"ticket": "T330100-000001"}), "61404", 200)
    refused(call(client, RESULT, {"bizNo": "HGW-NEVER-SENT"}), "61404", 200)
    refused(call(client, RESULT, {"ticket": "T430100-000001", "bizNo": "HGW-NEVER-SENT"}), "61404", 200)
    refused(call(client, RESULT, {}), "40005", 400)
    refused(call(client, RESULT, {"ticket": 1}), "40005", 400)


# -- faults --------------------------------------------------------------------------


def test_error_fault_answers_50000_signed(client: httpx.Client, bureau: Sm4AsyncBureau) -> None:
    bureau.faults.add(Fault(route=SUBMIT, kind="error", status=503, times=1))
    refused(call(client, SUBMIT, submit_payload()), "50000", 503)
    assert bureau.tasks() == []
    ok(call(client, SUBMIT, submit_payload()))
    assert bureau.count(SUBMIT, "50000") == 1 and bureau.count(SUBMIT, "0") == 1


def test_rate_limit_fault_answers_429_with_retry_after(client: httpx.Client, bureau: Sm4AsyncBureau) -> None:
    bureau.faults.add(Fault(route="*", kind="rate_limit", retry_after=7, times=1))
    response = call(client, PERSON, {"idNo": LIU_YANG, "name": "刘洋"})
    assert refused(response, "42900", 429).startswith("请求过于频繁")
    assert response.headers["Retry-After"] == "7"
    ok(call(client, PERSON, {"idNo": LIU_YANG, "name": "刘洋"}))


def test_drop_fault_registers_nothing(client: httpx.Client, bureau: Sm4AsyncBureau) -> None:
    bureau.faults.add(Fault(route=SUBMIT, kind="drop", times=1))
    with pytest.raises(httpx.TransportError):
        call(client, SUBMIT, submit_payload())
    assert bureau.tasks() == []
    refused(call(client, RESULT, {"bizNo": "HGW-0123456789ABCDEF"}), "61404", 200)
    assert bureau.count(SUBMIT, "DROP") == 1


def test_drop_after_registers_the_task_then_drops(client: httpx.Client, bureau: Sm4AsyncBureau) -> None:
    bureau.faults.add(Fault(route=SUBMIT, kind="drop_after", times=1))
    with pytest.raises(httpx.TransportError):
        call(client, SUBMIT, submit_payload())
    [task] = bureau.tasks()
    assert task.ticket == "T430100-000001"
    assert _result(client, bizNo="HGW-0123456789ABCDEF")["ticket"] == "T430100-000001"
    assert ok(call(client, SUBMIT, submit_payload()))["ticket"] == "T430100-000001"
    assert len(bureau.tasks()) == 1


def test_latency_fault_and_id_matching(client: httpx.Client, bureau: Sm4AsyncBureau) -> None:
    bureau.faults.add(Fault(route=PERSON, kind="latency", latency_ms=200, times=1))
    started = time.monotonic()
    ok(call(client, PERSON, {"idNo": LIU_YANG, "name": "刘洋"}))
    assert time.monotonic() - started >= 0.2
    bureau.faults.add(Fault(route="*", kind="error", status=500, match_id_number=LI_MING))
    ok(call(client, PERSON, {"idNo": LIU_YANG, "name": "刘洋"}))
    refused(call(client, PERSON, {"idNo": LI_MING, "name": "李明"}), "50000", 500)


def test_request_log_and_control_plane(client: httpx.Client, bureau: Sm4AsyncBureau) -> None:
    form = build_form(submit_payload())
    response = client.post(SUBMIT, data=form, headers={"X-Request-ID": "req-42"})
    assert response.headers["X-Request-ID"] == "req-42"
    [record] = bureau.requests.snapshot()
    assert (record.path, record.code, record.http_status, record.biz_no, record.request_id) == (
        SUBMIT, "0", 200, "HGW-0123456789ABCDEF", "req-42",
    )  # fmt: skip
    state = client.get("/__mock__/state").json()
    assert state["dialect"] == "sm4-async" and state["region"] == "430100"
    assert state["tasks"][0]["idNo"] == "4301**********0356"
    assert LI_MING not in json.dumps(state)
    assert client.post("/__mock__/reset").status_code == 204
    assert bureau.tasks() == [] and len(bureau.requests) == 0


# -- Hangzhou: another seed, the slow person -----------------------------------------


def test_hangzhou_seed_and_enrolment(hangzhou: Sm4AsyncBureau) -> None:
    hangzhou.slow_seconds = 0.05
    with httpx.Client(base_url=hangzhou.base_url, timeout=5) as http:
        zhao = hz_ok(hz_call(http, PERSON, {"idNo": ZHAO_LEI, "name": "Zhao Lei"}))
        assert zhao == {"records": [{
            "xzlx": "110", "cbzt": "1", "dwbh": "91330100MA2H8K5L36", "dwmc": "杭州示例网络有限公司",
            "cbrq": "20220101", "zzrq": "", "jfys": 54, "jfjs": "10000.00", "zhjfny": "202606",
        }]}  # fmt: skip
        chen = hz_ok(hz_call(http, PERSON, {"idNo": CHEN_JING, "name": "陈静"}))
        assert chen == {"records": [
            {"xzlx": xzlx, "cbzt": "1", "dwbh": "91330100MA2H8K5L36", "dwmc": "杭州示例网络有限公司",
             "cbrq": "20200601", "zzrq": "", "jfys": 73, "jfjs": "8500.00", "zhjfny": "202606"}
            for xzlx in ("110", "310")
        ]}  # fmt: skip
        unit = {"dwbh": "91330100MA2H8K5L36", "dwmc": "杭州示例网络有限公司", "idNo": ZHAO_LEI, "name": "赵磊"}
        ack = hz_ok(hz_call(http, SUBMIT, submit_payload("HGW-HZ-000001", **unit, xzlx=["310"])))
        assert ack["ticket"] == "T330100-000001"
        hz_ok(hz_call(http, SUBMIT, submit_payload("HGW-HZ-000002", **unit, xzlx=["110"])))
        results = [
            hz_ok(hz_call(http, RESULT, {"bizNo": biz_no}))
            for biz_no in ("HGW-HZ-000001", "HGW-HZ-000002")
        ]
        assert [(r["state"], r["acceptNo"], r["failCode"]) for r in results] == [
            ("SUCCESS", "330100-R-000001", ""),
            ("FAILED", "", "61001"),
        ]
        # The Changsha keys do not open Hangzhou's door.
        refused(call(http, PERSON, {"idNo": ZHAO_LEI, "name": "赵磊"}), "40001", 401, mac_key=HZ_MAC)


def test_slow_person_times_out_a_client_and_stop_cuts_the_wait(hangzhou: Sm4AsyncBureau) -> None:
    with httpx.Client(base_url=hangzhou.base_url, timeout=0.5) as http:
        hz_ok(hz_call(http, PERSON, {"idNo": ZHAO_LEI, "name": "赵磊"}))
        with pytest.raises(httpx.ReadTimeout):
            hz_call(http, PERSON, {"idNo": CHEN_JING, "name": "陈静"})
        with pytest.raises(httpx.ReadTimeout):
            months = {"startMonth": "202601", "endMonth": "202602"}
            hz_call(http, CONTRIBUTION, {"idNo": CHEN_JING, "name": "陈静", **months})

    outcome: list[BaseException | httpx.Response] = []

    def slow_request() -> None:
        with httpx.Client(base_url=hangzhou.base_url, timeout=10) as http:
            try:
                outcome.append(hz_call(http, PERSON, {"idNo": CHEN_JING, "name": "陈静"}))
            except httpx.TransportError as exc:
                outcome.append(exc)

    waiter = threading.Thread(target=slow_request)
    waiter.start()
    time.sleep(0.2)
    started = time.monotonic()
    hangzhou.stop()
    assert time.monotonic() - started < 1.0
    waiter.join(timeout=2)
    assert not waiter.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.TransportError)


# -- construction and the CLI --------------------------------------------------------


def test_credentials_and_cli_construction_path() -> None:
    factory = MOCK_DIALECTS["sm4-async"]
    assert factory is Sm4AsyncBureau
    server = factory("430100", host="127.0.0.1", port=0, app_id="acme", app_secret="acme-mac")
    try:
        assert (server.appid, server.mac_key, server.sm4_key) == ("acme", "acme-mac", CS_SM4)
        assert (server.app_id, server.app_secret) == ("acme", "acme-mac")
        line = server.describe()
        assert "appid=acme" in line and f"sm4_key={CS_SM4}" in line and "acme-mac" not in line
    finally:
        server.stop()
    custom = Sm4AsyncBureau("430100", appid="x", sm4_key="AB" * 16, mac_key="m")
    try:
        assert "sm4_key" not in custom.describe() and "mac_key" not in custom.describe()
    finally:
        custom.stop()
    assert len(CS_SM4) == 32 and int(CS_SM4, 16) >= 0 and CS_SM4 != HZ_SM4
    assert sandbox_mac_key("430100") == CS_MAC
    for bad in ({"sm4_key": "00" * 15}, {"sm4_key": "zz" * 16}, {"appid": "a", "app_id": "b"},
                {"mac_key": "a", "app_secret": "b"}, {"processing_delay": -1}):  # fmt: skip
        with pytest.raises(ValueError):
            Sm4AsyncBureau("430100", **bad)
    with pytest.raises(ValueError):
        Sm4AsyncBureau("4301")


def test_python_m_mocks_serves_sm4_async() -> None:
    command = [sys.executable, "-m", "mocks", "--dialect", "sm4-async", "--region", "430100", "--port", "0"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
            words = dict(word.split("=", 1) for word in banner.split() if "=" in word)
            assert words == {"appid": APPID, "sm4_key": CS_SM4, "mac_key": CS_MAC}
            base_url = next(word for word in banner.split() if word.startswith("http://"))
            with httpx.Client(base_url=base_url, timeout=5) as http:
                assert ok(call(http, PERSON, {"idNo": LIU_YANG, "name": "刘洋"})) == {"records": [LIU_RECORD]}
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=5) == 0


# -- declarations, transfers in and out, contribution query without a name ------------

DECLARE = "/api/declaration/submit"
TRANSFER_IN = "/api/transfer-in/submit"
TRANSFER_OUT = "/api/transfer-out/submit"
TRANSFER_QUERY = "/api/transfer-out/query"
WANG_FANG = "440104199003120213"
CS_UNIT = {"dwbh": "91430100MA4L16JQ9D", "dwmc": "长沙示例制造有限公司"}


def line(hh: int, id_number: str, name: str, bdlx: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"hh": hh, "idNo": id_number, "name": name, "bdlx": bdlx, "xzlx": ["110"]}
    if bdlx != "2":
        body["jfjs"] = "8000.00"
    return {**body, **fields}


def declaration(biz_no: str, *lines: dict[str, Any], sbny: str = "202611") -> dict[str, Any]:
    return {"bizNo": biz_no, **CS_UNIT, "sbny": sbny, "mx": list(lines)}


def records_of(client: httpx.Client, id_number: str, name: str) -> list[dict[str, Any]]:
    return list(ok(call(client, PERSON, {"idNo": id_number, "name": name}))["records"])


def wang_fang_transfer_in(biz_no: str = "HGW-TI-000001", **overrides: Any) -> dict[str, Any]:
    return {
        "bizNo": biz_no, "idNo": WANG_FANG, "name": "王芳", "zcdq": "440100", "zcbh": "GZ-TO-000123",
        "xz": [{"xzlx": "110", "jfys": 36, "cbrq": "20230101", "zyjj": "17280.00"},
               {"xzlx": "310", "jfys": 36, "cbrq": "20230101", "zyjj": "4320.00", "jfjs": "6000.00"}],
        **overrides,
    }  # fmt: skip


def test_declaration_is_processing_then_decided_line_by_line(
    client: httpx.Client, bureau: Sm4AsyncBureau, clock: FakeClock
) -> None:
    ack = ok(call(client, DECLARE, declaration(
        "HGW-DECL-000001",
        line(1, LI_MING, "李明", "1", xzlx=["110", "310"], rzrq="20261102"),
        line(2, LIU_YANG, "刘洋", "2"),  # his pension is terminated: not insured here
        line(3, LIU_YANG, "王芳", "4"),  # another name
        line(4, BAD_CHECK, "刘洋", "1"),
    )))  # fmt: skip
    assert ack == {"ticket": "T430100-000001", "bizNo": "HGW-DECL-000001"}
    pending = _result(client, bizNo="HGW-DECL-000001")
    assert (pending["ywlx"], pending["state"], pending["mx"], pending["acceptNo"]) == ("02", "PROCESSING", [], "")
    assert records_of(client, LI_MING, "李明") == []
    clock.advance(0.5)
    decided = _result(client, ticket="T430100-000001")
    assert (decided["state"], decided["acceptNo"]) == ("PARTIAL", "430100-R-000001")
    assert decided["acceptDate"] == datetime.fromtimestamp(clock.now, CHINA).strftime("%Y%m%d")
    assert decided["mx"] == [
        {"hh": 1, "jg": "1", "failCode": "", "failMsg": ""},
        {"hh": 2, "jg": "2", "failCode": "61002", "failMsg": "该人员在本单位无有效参保记录"},
        {"hh": 3, "jg": "2", "failCode": "61005", "failMsg": "姓名与公民身份号码不符"},
        {"hh": 4, "jg": "2", "failCode": "61003", "failMsg": "公民身份号码校验位错误"},
    ]
    assert [(r["xzlx"], r["cbzt"], r["cbrq"], r["jfys"], r["jfjs"]) for r in records_of(client, LI_MING, "李明")] == [
        ("110", "1", "20261102", 0, "8000.00"), ("310", "1", "20261102", 0, "8000.00"),
    ]  # fmt: skip
    assert records_of(client, LIU_YANG, "刘洋") == [LIU_RECORD]


def test_declaration_changes_reactivate_change_continue_and_leave(client: httpx.Client, bureau: Sm4AsyncBureau) -> None:
    ok(call(client, DECLARE, declaration(
        "HGW-DECL-000001",
        line(1, LIU_YANG, "刘洋", "1"),  # reactivates the terminated pension, keeping its 60 months
        line(2, LI_MING, "李明", "1", xzlx=["110", "310"]),  # no hire date: the first day of sbny
    )))  # fmt: skip
    bureau.settle()
    assert _result(client, bizNo="HGW-DECL-000001")["state"] == "SUCCESS"
    assert records_of(client, LIU_YANG, "刘洋") == [
        {**LIU_RECORD, "cbzt": "1", "zzrq": "", "jfjs": "8000.00"}
    ]
    assert {r["cbrq"] for r in records_of(client, LI_MING, "李明")} == {"20261101"}
    ok(call(client, DECLARE, declaration(
        "HGW-DECL-000002",
        line(1, LIU_YANG, "刘洋", "3", jfjs="9000.00"),
        line(2, LI_MING, "李明", "4", xzlx=["110", "310"], jfjs="1.00"),  # continue changes nothing
        line(3, LI_MING, "李明", "1"),  # already active
        line(4, LIU_YANG, "刘洋", "4", xzlx=["310"]),  # no active medical here
        line(5, LIU_YANG, "刘洋", "4", xzlx=["110", "310"]),  # one listed type active here is enough
        sbny="202612",
    )))  # fmt: skip
    bureau.settle()
    result = _result(client, bizNo="HGW-DECL-000002")
    assert result["state"] == "PARTIAL"
    assert [(m["jg"], m["failCode"]) for m in result["mx"]] == [("1", ""), ("1", ""), ("2", "61001"), ("2", "61002"), ("1", "")]
    assert records_of(client, LIU_YANG, "刘洋")[0]["jfjs"] == "9000.00"
    assert {r["jfjs"] for r in records_of(client, LI_MING, "李明")} == {"8000.00"}
    ok(call(client, DECLARE, declaration(
        "HGW-DECL-000003",
        line(1, LI_MING, "李明", "2", lzrq="20270110"),  # only the pension leaves
        line(2, LIU_YANG, "刘洋", "2", xzlx=["110", "310"]),  # one listed type active is enough
        sbny="202701",
    )))  # fmt: skip
    bureau.settle()
    assert _result(client, bizNo="HGW-DECL-000003")["state"] == "SUCCESS"
    assert [(r["xzlx"], r["cbzt"], r["zzrq"]) for r in records_of(client, LI_MING, "李明")] == [
        ("110", "3", "20270110"), ("310", "1", ""),
    ]  # fmt: skip
    assert [(r["cbzt"], r["zzrq"], r["jfys"]) for r in records_of(client, LIU_YANG, "刘洋")] == [("3", "20270131", 60)]


def test_a_declaration_with_no_accepted_line_fails(client: httpx.Client, bureau: Sm4AsyncBureau) -> None:
    ok(call(client, DECLARE, declaration("HGW-DECL-000001", line(1, LI_MING, "李明", "3"))))
    [task] = bureau.settle()
    assert task.state == "FAILED"
    result = _result(client, bizNo="HGW-DECL-000001")
    assert (result["state"], result["acceptNo"], result["failCode"]) == ("FAILED", "", "")
    assert result["mx"] == [{"hh": 1, "jg": "2", "failCode": "61002", "failMsg": "该人员在本单位无有效参保记录"}]
    assert records_of(client, LI_MING, "李明") == []  # an unknown person stays unknown


def test_declaration_idempotency_and_lookups(client: httpx.Client, bureau: Sm4AsyncBureau) -> None:
    first = ok(call(client, DECLARE, declaration("HGW-DECL-000001", line(1, LI_MING, "李明", "1"))))
    again = ok(call(client, DECLARE, declaration("HGW-DECL-000001", line(1, LIU_YANG, "刘洋", "1"))))
    assert first == again
    bureau.settle()
    assert ok(call(client, DECLARE, declaration("HGW-DECL-000001", line(1, LIU_YANG, "刘洋", "1")))) == first
    assert len(bureau.tasks()) == 1
    assert records_of(client, LIU_YANG, "刘洋") == [LIU_RECORD]  # the repeat changed nothing
    refused(call(client, RESULT, {"bizNo": "HGW-DECL-NEVER"}), "61404", 200)
    # bizNo values are one space over every submission
    refused(call(client, SUBMIT, submit_payload("HGW-DECL-000001")), "40005", 400)
    refused(call(client, TRANSFER_OUT, {"bizNo": "HGW-DECL-000001", "idNo": LIU_YANG, "name": "刘洋",
                                        "zrdq": "440100", "xzlx": ["110"]}), "40005", 400)  # fmt: skip


@pytest.mark.parametrize(
    "broken",
    [
        {"sbny": "202613"},
        {"sbny": "2026-11"},
        {"mx": []},
        {"mx": [line(1, LI_MING, "李明", "1"), line(1, LIU_YANG, "刘洋", "2")]},  # duplicate hh
        {"mx": [line(1, LI_MING, "李明", "5")]},
        {"mx": [line(0, LI_MING, "李明", "1")]},
        {"mx": [line(1, LI_MING, "李明", "1", jfjs="8000")]},
        {"mx": [line(1, LI_MING, "李明", "1", jfjs="0.00")]},
        {"mx": [line(1, LI_MING, "李明", "3", jfjs=None)]},
        {"mx": [line(1, LI_MING, "李明", "2", jfjs="8000.00")]},
        {"mx": [line(1, LI_MING, "李明", "2", rzrq="20261101")]},
        {"mx": [line(1, LI_MING, "李明", "1", lzrq="20261101")]},
        {"mx": [line(1, LI_MING, "李明", "1", rzrq="20261131")]},
        {"mx": [line(1, LI_MING, "李明", "1", xzlx=[])]},
        {"mx": [line(1, "4301021995110803", "李明", "1")]},
        {"mx": ["not a line"]},
        {"dwbh": ""},
    ],
)
def test_a_malformed_declaration_is_refused_whole(
    client: httpx.Client, bureau: Sm4AsyncBureau, broken: dict[str, Any]
) -> None:
    payload = {**declaration("HGW-DECL-000001", line(1, LI_MING, "李明", "1")), **broken}
    refused(call(client, DECLARE, payload), "40005", 400)
    assert bureau.tasks() == []


def test_faults_apply_to_the_new_services(client: httpx.Client, bureau: Sm4AsyncBureau) -> None:
    bureau.faults.add(Fault(route=DECLARE, kind="error", status=500, times=1))
    refused(call(client, DECLARE, declaration("HGW-DECL-000001", line(1, LI_MING, "李明", "1"))), "50000", 500)
    assert bureau.tasks() == []
    bureau.faults.add(Fault(route=DECLARE, kind="drop_after", times=1))
    with pytest.raises(httpx.TransportError):
        call(client, DECLARE, declaration("HGW-DECL-000001", line(1, LI_MING, "李明", "1")))
    # the ambiguous send landed: the lookup by bizNo finds it
    assert _result(client, bizNo="HGW-DECL-000001")["ticket"] == "T430100-000001"
    bureau.faults.add(Fault(route=TRANSFER_QUERY, kind="rate_limit", retry_after=3, times=1))
    refused(call(client, TRANSFER_QUERY, {"bizNo": "HGW-TO-000001"}), "42900", 429)
    refused(call(client, TRANSFER_QUERY, {"bizNo": "HGW-TO-000001"}), "61404", 200)


def test_wang_fang_transferred_in_then_enrolled_keeps_her_months(
    client: httpx.Client, bureau: Sm4AsyncBureau, clock: FakeClock
) -> None:
    ack = ok(call(client, TRANSFER_IN, wang_fang_transfer_in()))
    assert ack == {"ticket": "T430100-000001", "bizNo": "HGW-TI-000001"}
    assert _result(client, bizNo="HGW-TI-000001")["state"] == "PROCESSING"
    clock.advance(0.5)
    result = _result(client, bizNo="HGW-TI-000001")
    assert (result["ywlx"], result["state"], result["acceptNo"]) == ("03", "SUCCESS", "430100-R-000001")
    assert records_of(client, WANG_FANG, "王芳") == [
        {"xzlx": "110", "cbzt": "2", "dwbh": "", "dwmc": "", "cbrq": "20230101", "zzrq": "", "jfys": 36,
         "jfjs": "0.00", "zhjfny": ""},
        {"xzlx": "310", "cbzt": "2", "dwbh": "", "dwmc": "", "cbrq": "20230101", "zzrq": "", "jfys": 36,
         "jfjs": "6000.00", "zhjfny": ""},
    ]  # fmt: skip
    other = [{"xzlx": "110", "jfys": 99, "cbrq": "", "zyjj": "0.00"}]
    assert ok(call(client, TRANSFER_IN, wang_fang_transfer_in(xz=other))) == ack  # the same bizNo changes nothing
    bureau.settle()
    assert [r["jfys"] for r in records_of(client, WANG_FANG, "王芳")] == [36, 36]
    enrol = submit_payload("HGW-EN-000001", idNo=WANG_FANG, name="王芳", cbrq="20261102")
    ok(call(client, SUBMIT, enrol))
    bureau.settle()
    assert _result(client, bizNo="HGW-EN-000001")["state"] == "SUCCESS"
    assert records_of(client, WANG_FANG, "王芳") == [
        {"xzlx": xzlx, "cbzt": "1", "dwbh": "91430100MA4L16JQ9D", "dwmc": "长沙示例制造有限公司",
         "cbrq": "20230101", "zzrq": "", "jfys": 36, "jfjs": "8000.00", "zhjfny": ""}
        for xzlx in ("110", "310")
    ]  # fmt: skip
    ok(call(client, SUBMIT, submit_payload("HGW-EN-000002", idNo=WANG_FANG, name="王芳", xzlx=["110"])))
    bureau.settle()
    assert _result(client, bizNo="HGW-EN-000002")["failCode"] == "61001"


def test_transfer_in_merges_into_a_held_record_and_checks_the_name(client: httpx.Client, bureau: Sm4AsyncBureau) -> None:
    merge = {"idNo": LIU_YANG, "name": "刘洋", "xz": [{"xzlx": "110", "jfys": 12, "cbrq": "20150101", "zyjj": "0.00"}]}
    ok(call(client, TRANSFER_IN, wang_fang_transfer_in("HGW-TI-000001", **merge)))
    ok(call(client, TRANSFER_IN, wang_fang_transfer_in("HGW-TI-000002", idNo=LIU_YANG, name="王芳")))
    bureau.settle()
    assert records_of(client, LIU_YANG, "刘洋") == [{**LIU_RECORD, "jfys": 72, "cbrq": "20150101"}]
    failed = _result(client, bizNo="HGW-TI-000002")
    assert (failed["state"], failed["failCode"], failed["failMsg"]) == ("FAILED", "61005", "姓名与公民身份号码不符")
    refused(call(client, TRANSFER_IN, wang_fang_transfer_in("HGW-TI-000003", idNo=BAD_CHECK)), "61003", 200)
    refused(call(client, TRANSFER_IN, wang_fang_transfer_in("HGW-TI-000004", zcdq="4401")), "40005", 400)
    refused(call(client, TRANSFER_IN, wang_fang_transfer_in("HGW-TI-000005", xz=[])), "40005", 400)
    two_pensions = [{"xzlx": "110", "jfys": 1, "cbrq": "", "zyjj": "0.00"}] * 2
    refused(call(client, TRANSFER_IN, wang_fang_transfer_in("HGW-TI-000006", xz=two_pensions)), "40005", 400)
    refused(call(client, TRANSFER_IN, wang_fang_transfer_in("HGW-TI-000007", xz=[{"xzlx": "110", "jfys": -1,
                                                         "cbrq": "", "zyjj": "0.00"}])), "40005", 400)  # fmt: skip
    assert len(bureau.tasks()) == 2


def test_contribution_query_without_a_name(client: httpx.Client) -> None:
    query = {"idNo": LIU_YANG, "startMonth": "202305", "endMonth": "202306"}
    assert [m["ny"] for m in ok(call(client, CONTRIBUTION, query))["months"]] == ["202305", "202306"]
    assert ok(call(client, CONTRIBUTION, {**query, "name": "刘洋"})) == ok(call(client, CONTRIBUTION, query))
    refused(call(client, CONTRIBUTION, {**query, "name": "王芳"}), "61005", 200)
    refused(call(client, CONTRIBUTION, {**query, "name": ""}), "40005", 400)
    assert ok(call(client, CONTRIBUTION, {**query, "idNo": LI_MING})) == {"months": []}


# -- transfer out, Hangzhou on an accelerated clock ----------------------------------


@pytest.fixture
def hz_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def hz_bureau(hz_clock: FakeClock) -> Iterator[Sm4AsyncBureau]:
    with Sm4AsyncBureau("330100", clock=hz_clock, processing_delay=0, transfer_step_seconds=5.0) as server:
        yield server


def zhao_lei_transfer(biz_no: str = "HGW-TO-000001", **overrides: Any) -> dict[str, Any]:
    return {"bizNo": biz_no, "idNo": ZHAO_LEI, "name": "赵磊", "zrdq": "440300", "xzlx": ["110"], **overrides}


def test_transfer_out_moves_one_stage_per_step(hz_bureau: Sm4AsyncBureau, hz_clock: FakeClock) -> None:
    assert hz_bureau.transfer_step_seconds == 5.0
    hz_bureau.transfer_step_seconds = 2.0
    today = datetime.fromtimestamp(hz_clock.now, CHINA).strftime("%Y%m%d")
    with httpx.Client(base_url=hz_bureau.base_url, timeout=5) as http:
        submitted = hz_ok(hz_call(http, TRANSFER_OUT, zhao_lei_transfer()))
        assert submitted == {"zybh": "ZC330100-000001", "bizNo": "HGW-TO-000001", "zrdq": "440300", "zyjd": "01",
                             "sqrq": today, "gxrq": today, "bhdm": "", "bhyy": "", "xz": []}  # fmt: skip
        hz_clock.advance(1.9)
        assert hz_ok(hz_call(http, TRANSFER_QUERY, {"bizNo": "HGW-TO-000001"}))["zyjd"] == "01"
        hz_clock.advance(0.1)
        assert hz_ok(hz_call(http, TRANSFER_QUERY, {"zybh": "ZC330100-000001"}))["zyjd"] == "02"
        assert hz_ok(hz_call(http, PERSON, {"idNo": ZHAO_LEI, "name": "赵磊"}))["records"][0]["cbzt"] == "1"
        hz_clock.advance(2.0)
        done = hz_ok(hz_call(http, TRANSFER_QUERY, {"bizNo": "HGW-TO-000001", "zybh": "ZC330100-000001"}))
        day = datetime.fromtimestamp(hz_clock.now, CHINA).strftime("%Y%m%d")
        # the fund: base 10000.00 x 8 % personal pension rate x 54 months
        assert (done["zyjd"], done["gxrq"], done["xz"]) == (
            "03", day, [{"xzlx": "110", "jfys": 54, "cbrq": "20220101", "zyjj": "43200.00"}]
        )
        [record] = hz_ok(hz_call(http, PERSON, {"idNo": ZHAO_LEI, "name": "赵磊"}))["records"]
        assert (record["cbzt"], record["zzrq"], record["jfys"]) == ("4", day, 54)
        # the same bizNo answers the transfer's current state and changes nothing
        assert hz_ok(hz_call(http, TRANSFER_OUT, zhao_lei_transfer(xzlx=["310"]))) == done
        hz_clock.advance(60)
        assert hz_ok(hz_call(http, TRANSFER_QUERY, {"bizNo": "HGW-TO-000001"})) == done
        # a transferred-out record is not transferred again
        hz_ok(hz_call(http, TRANSFER_OUT, zhao_lei_transfer("HGW-TO-000002")))
        hz_clock.advance(2.0)
        assert hz_ok(hz_call(http, TRANSFER_QUERY, {"bizNo": "HGW-TO-000002"}))["bhdm"] == "62001"
    assert [t.stage for t in hz_bureau.transfers()] == ["03", "09"]


def test_transfer_out_rejections(hz_bureau: Sm4AsyncBureau, hz_clock: FakeClock) -> None:
    with httpx.Client(base_url=hz_bureau.base_url, timeout=5) as http:
        refused(hz_call(http, TRANSFER_OUT, zhao_lei_transfer(name="陈静")), "61005", 200,
                sm4_key=HZ_SM4, mac_key=HZ_MAC)  # fmt: skip
        refused(hz_call(http, TRANSFER_OUT, zhao_lei_transfer(idNo="440303199201010555")), "61003", 200,
                sm4_key=HZ_SM4, mac_key=HZ_MAC)  # fmt: skip
        for broken in ({"zrdq": "330100"}, {"zrdq": "44030"}, {"xzlx": []}, {"bizNo": "short"}):
            refused(hz_call(http, TRANSFER_OUT, zhao_lei_transfer(**broken)), "40005", 400,
                    sm4_key=HZ_SM4, mac_key=HZ_MAC)  # fmt: skip
        assert hz_bureau.transfers() == []
        # he holds a pension here but no medical: the review rejects the application
        hz_ok(hz_call(http, TRANSFER_OUT, zhao_lei_transfer(xzlx=["110", "310"])))
        hz_clock.advance(5.0)
        rejected = hz_ok(hz_call(http, TRANSFER_QUERY, {"bizNo": "HGW-TO-000001"}))
        assert (rejected["zyjd"], rejected["bhdm"], rejected["bhyy"], rejected["xz"]) == (
            "09", "62001", "申请转出的险种在本地无有效或中断参保记录", []
        )
        hz_clock.advance(60)
        assert hz_ok(hz_call(http, TRANSFER_QUERY, {"bizNo": "HGW-TO-000001"})) == rejected
        assert hz_ok(hz_call(http, PERSON, {"idNo": ZHAO_LEI, "name": "赵磊"}))["records"][0]["cbzt"] == "1"
        refused(hz_call(http, TRANSFER_QUERY, {"bizNo": "HGW-TO-NEVER"}), "61404", 200, sm4_key=HZ_SM4, mac_key=HZ_MAC)
        refused(hz_call(http, TRANSFER_QUERY, {"bizNo": "HGW-TO-000001", "zybh": "ZC330100-000009"}), "61404", 200,
                sm4_key=HZ_SM4, mac_key=HZ_MAC)  # fmt: skip
        refused(hz_call(http, TRANSFER_QUERY, {}), "40005", 400, sm4_key=HZ_SM4, mac_key=HZ_MAC)


def test_a_record_that_changes_after_review_is_not_transferred(hz_bureau: Sm4AsyncBureau, hz_clock: FakeClock) -> None:
    unit = {"dwbh": "91330100MA2H8K5L36", "dwmc": "杭州示例网络有限公司"}
    with httpx.Client(base_url=hz_bureau.base_url, timeout=5) as http:
        hz_ok(hz_call(http, TRANSFER_OUT, zhao_lei_transfer()))
        hz_clock.advance(5.0)
        assert hz_ok(hz_call(http, TRANSFER_QUERY, {"bizNo": "HGW-TO-000001"}))["zyjd"] == "02"
        leave = {"bizNo": "HGW-DECL-000001", **unit, "sbny": "202611", "mx": [line(1, ZHAO_LEI, "赵磊", "2")]}
        hz_ok(hz_call(http, DECLARE, leave))
        hz_clock.advance(0.1)  # the declaration is decided (delay 0) before the transfer's next step
        assert hz_ok(hz_call(http, RESULT, {"bizNo": "HGW-DECL-000001"}))["state"] == "SUCCESS"
        hz_clock.advance(5.0)
        rejected = hz_ok(hz_call(http, TRANSFER_QUERY, {"bizNo": "HGW-TO-000001"}))
        assert (rejected["zyjd"], rejected["bhdm"]) == ("09", "62002")
        [record] = hz_ok(hz_call(http, PERSON, {"idNo": ZHAO_LEI, "name": "赵磊"}))["records"]
        assert record["cbzt"] == "3"


def test_transfers_show_masked_in_state_and_reset_clears_them(hz_bureau: Sm4AsyncBureau) -> None:
    with httpx.Client(base_url=hz_bureau.base_url, timeout=5) as http:
        hz_ok(hz_call(http, TRANSFER_OUT, zhao_lei_transfer()))
        hz_ok(hz_call(http, TRANSFER_IN, wang_fang_transfer_in()))
        state = http.get("/__mock__/state").json()
        assert [t["zybh"] for t in state["transfers_out"]] == ["ZC330100-000001"]
        assert state["transfers_out"][0]["idNo"] == "4403**********0554"
        assert ZHAO_LEI not in json.dumps(state) and WANG_FANG not in json.dumps(state)
        assert "赵磊" not in json.dumps(state, ensure_ascii=False)
        assert http.post("/__mock__/reset").status_code == 204
        assert hz_bureau.transfers() == [] and hz_bureau.tasks() == []
        assert hz_ok(hz_call(http, PERSON, {"idNo": ZHAO_LEI, "name": "赵磊"}))["records"][0]["cbzt"] == "1"


def test_transfer_step_seconds_is_checked() -> None:
    with pytest.raises(ValueError):
        Sm4AsyncBureau("430100", transfer_step_seconds=-1)
    server = Sm4AsyncBureau("430100")
    try:
        assert server.transfer_step_seconds == 2.0
        with pytest.raises(ValueError):
            server.transfer_step_seconds = -0.5
    finally:
        server.stop()


# -- payment notices -------------------------------------------------------------------

PAY = "/api/contribution-payment/submit"


def payment(biz_no: str = "HGW-PAY-000001", sblsh: str = "HGW-DECL-000001", **overrides: Any) -> dict[str, Any]:
    return {
        "bizNo": biz_no, **CS_UNIT, "sbny": "202611", "sblsh": sblsh, "jkje": "2600.00", "jkrq": "20261120",
        "yhlsh": "E2E-20261120-000001", **overrides,
    }  # fmt: skip


def months_in(client: httpx.Client, id_number: str, month: str = "202611") -> dict[str, dict[str, Any]]:
    held = ok(call(client, CONTRIBUTION, {"idNo": id_number, "startMonth": month, "endMonth": month}))["months"]
    return {m["xzlx"]: m for m in held}


def declare_li_ming(client: httpx.Client, biz_no: str = "HGW-DECL-000001") -> None:
    """Li Ming hired for pension and medical at 8000; a leave line refused (Liu Yang is not active)."""
    ok(call(client, DECLARE, declaration(
        biz_no, line(1, LI_MING, "李明", "1", xzlx=["110", "310"]), line(2, LIU_YANG, "刘洋", "2"),
    )))  # fmt: skip


def test_payment_notice_is_processing_then_confirms_the_declared_months(
    client: httpx.Client, bureau: Sm4AsyncBureau, clock: FakeClock
) -> None:
    declare_li_ming(client)
    ack = ok(call(client, PAY, payment()))
    assert ack == {"ticket": "T430100-000002", "bizNo": "HGW-PAY-000001"}
    processing = _result(client, bizNo="HGW-PAY-000001")
    assert processing == {
        "ticket": "T430100-000002", "bizNo": "HGW-PAY-000001", "ywlx": "04", "state": "PROCESSING",
        "acceptNo": "", "acceptDate": "", "failCode": "", "failMsg": "", "qrje": "",
    }  # fmt: skip
    clock.advance(0.5)  # the declaration is decided first, then the notice
    decided = _result(client, ticket="T430100-000002")
    today = datetime.fromtimestamp(clock.now, CHINA).strftime("%Y%m%d")
    assert decided == {
        **processing, "state": "SUCCESS", "acceptNo": "430100-R-000002", "acceptDate": today, "qrje": "2600.00",
    }  # fmt: skip
    assert months_in(client, LI_MING) == {
        "110": {"ny": "202611", "xzlx": "110", "jfzt": "1", "dwjf": "1280.00", "grjf": "640.00", "dzrq": "20261120"},
        "310": {"ny": "202611", "xzlx": "310", "jfzt": "1", "dwjf": "640.00", "grjf": "160.00", "dzrq": "20261120"},
    }
    assert months_in(client, LIU_YANG) == {}  # his refused leave line made nothing due
    assert {(r["xzlx"], r["jfys"], r["zhjfny"]) for r in records_of(client, LI_MING, "李明")} == {
        ("110", 1, "202611"), ("310", 1, "202611"),
    }
    [notice] = bureau.contribution_payments()
    assert (notice.biz_no, notice.state, notice.sblsh) == ("HGW-PAY-000001", "SUCCESS", "HGW-DECL-000001")
    state = client.get("/__mock__/state").json()
    assert [t["ywlx"] for t in state["tasks"]] == ["02", "04"]
    assert state["tasks"][1]["yhlsh"] == "E2E-20261120-000001" and LI_MING not in str(state)


def test_the_same_payment_biz_no_returns_the_same_ticket(client: httpx.Client, bureau: Sm4AsyncBureau) -> None:
    declare_li_ming(client)
    first = ok(call(client, PAY, payment()))
    assert ok(call(client, PAY, payment(jkje="1.00"))) == first
    refused(call(client, PAY, payment(biz_no="HGW-DECL-000001")), "40005", 400)  # a declaration's bizNo
    refused(call(client, DECLARE, declaration("HGW-PAY-000001", line(1, LI_MING, "李明", "1"))), "40005", 400)
    bureau.settle()
    assert [t.biz_no for t in bureau.contribution_payments()] == ["HGW-PAY-000001"]
    assert months_in(client, LI_MING)["110"]["jfzt"] == "1"


@pytest.mark.parametrize(
    ("code", "overrides"),
    [
        ("63004", {"jkje": "0.00"}),
        ("63004", {"jkje": "-5.00"}),
        ("63001", {"sblsh": "HGW-DECL-NEVER1"}),
        ("63001", {"sblsh": "HGW-0123456789ABCDEF"}),  # an enrolment's bizNo, not a declaration's
        ("63003", {"dwbh": "91440101MA59BX4C3Y"}),
        ("63003", {"sbny": "202612"}),
        ("63002", {"sblsh": "HGW-DECL-REFUSED"}),
        ("63005", {"bizNo": "HGW-PAY-SECOND"}),
    ],
)
def test_payment_notices_the_bureau_refuses(
    client: httpx.Client, bureau: Sm4AsyncBureau, clock: FakeClock, code: str, overrides: dict[str, Any]
) -> None:
    declare_li_ming(client)
    ok(call(client, SUBMIT, submit_payload(idNo=WANG_FANG, name="王芳")))
    ok(call(client, DECLARE, declaration("HGW-DECL-REFUSED", line(1, LIU_YANG, "刘洋", "4"))))
    if code == "63005":
        ok(call(client, PAY, payment()))
    body = payment(**overrides)
    ok(call(client, PAY, body))
    clock.advance(0.5)
    result = _result(client, bizNo=body["bizNo"])
    assert (result["state"], result["failCode"], result["acceptNo"], result["qrje"]) == ("FAILED", code, "", "")
    assert result["failMsg"] and result["acceptDate"]
    if code != "63005":
        assert months_in(client, LI_MING) == {}
        assert {r["jfys"] for r in records_of(client, LI_MING, "李明")} == {0}


@pytest.mark.parametrize(
    "overrides",
    [{"jkje": "2600"}, {"jkje": 2600}, {"jkrq": "2026-11-20"}, {"sblsh": "short"}, {"yhlsh": "x" * 65},
     {"yhlsh": ""}, {"sbny": "202613"}, {"dwmc": None}],
)  # fmt: skip
def test_malformed_payment_notices_are_40005_at_once(
    client: httpx.Client, bureau: Sm4AsyncBureau, overrides: dict[str, Any]
) -> None:
    body = {k: v for k, v in payment(**overrides).items() if v is not None}
    refused(call(client, PAY, body), "40005", 400)
    assert bureau.contribution_payments() == []
    refused(call(client, RESULT, {"bizNo": "HGW-PAY-000001"}), "61404", 200)


def test_drop_after_on_a_payment_notice_registers_it_once(client: httpx.Client, bureau: Sm4AsyncBureau) -> None:
    declare_li_ming(client)
    bureau.faults.add(parse_fault(f"{PAY}:drop_after:times=1"))
    with pytest.raises(httpx.TransportError):
        call(client, PAY, payment())
    assert _result(client, bizNo="HGW-PAY-000001")["state"] == "PROCESSING"
    assert ok(call(client, PAY, payment()))["ticket"] == "T430100-000002"
    bureau.settle()
    assert [(t.biz_no, t.state) for t in bureau.contribution_payments()] == [("HGW-PAY-000001", "SUCCESS")]


# -- a clerk corrects a person's contribution status -----------------------------------


def test_correcting_a_month_over_the_control_plane(client: httpx.Client, bureau: Sm4AsyncBureau) -> None:
    r = client.post("/__mock__/contributions", json={"id_number": LIU_YANG, "period": "2023-05", "status": "unpaid"})
    assert r.status_code == 200 and LIU_YANG not in r.text
    assert r.json() == {
        "id_number": "4301**********0282",
        "months": [{"ny": "202305", "xzlx": "110", "jfzt": "3", "dwjf": "960.00", "grjf": "480.00", "dzrq": ""}],
    }
    r = client.post(
        "/__mock__/contributions",
        json={"id_number": LIU_YANG, "period": "202305", "status": "late", "insurance_type": "pension",
              "paid_on": "2023-08-01"},
    )  # fmt: skip
    assert r.status_code == 200
    corrected = months_in(client, LIU_YANG, "202305")["110"]
    assert (corrected["jfzt"], corrected["dzrq"]) == ("2", "20230801")
    assert bureau.set_contribution_status(LIU_YANG, "2023-05", "paid", paid_on=date(2023, 6, 15)) == [
        {"ny": "202305", "xzlx": "110", "jfzt": "1", "dwjf": "960.00", "grjf": "480.00", "dzrq": "20230615"},
    ]
    assert months_in(client, LIU_YANG, "202304")["110"]["jfzt"] == "1"  # other months untouched
    bureau.reset()
    assert months_in(client, LIU_YANG, "202305")["110"]["dzrq"] == "20230615"  # the seed's own date


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"id_number": LI_MING, "period": "2023-05", "status": "paid"}, 404),
        ({"id_number": LIU_YANG, "period": "2024-05", "status": "paid"}, 404),
        ({"id_number": LIU_YANG, "period": "2023-05", "status": "paid", "insurance_type": "medical"}, 404),
        ({"id_number": LIU_YANG, "period": "2023-05", "status": "PAID"}, 400),
        ({"id_number": LIU_YANG, "period": "2023-5", "status": "paid"}, 400),
        ({"id_number": LIU_YANG, "period": "2023-05", "status": "paid", "paid_on": 20230615}, 400),
        ({"id_number": 430104199306150282, "period": "2023-05", "status": "paid"}, 400),
    ],
)
def test_corrections_the_bureau_cannot_make(client: httpx.Client, body: dict[str, Any], status: int) -> None:
    r = client.post("/__mock__/contributions", json=body)
    assert (r.status_code, "error" in r.json()) == (status, True)
    assert months_in(client, LIU_YANG, "202305")["110"]["jfzt"] == "1"
