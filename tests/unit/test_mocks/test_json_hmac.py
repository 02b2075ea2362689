"""The json-hmac mock bureau against docs/dialects/json-hmac.md, over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mocks import JsonHmacBureau
from mocks.json_hmac.signing import WINDOW_SECONDS, NonceCache

REGION = "440100"
APP_ID = "hgw-sandbox"
SECRET = "sandbox-secret-440100"
WANG_FANG = "440104199003120213"
LI_MING = "430102199511080356"
QUERY = "/api/v1/insured/query"
SUBMIT = "/api/v1/enrolment/submit"
ENROLMENT_QUERY = "/api/v1/enrolment/query"


def sign_headers(
    method: str,
    target: str,
    body: bytes,
    *,
    app_id: str = APP_ID,
    secret: str = SECRET,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four signing headers, computed from the protocol description."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_hex(16)
    to_sign = "\n".join([method, target, ts, nonce, hashlib.sha256(body).hexdigest()])
    signature = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return {"X-App-Id": app_id, "X-Timestamp": ts, "X-Nonce": nonce, "X-Signature": signature}


def post(client: httpx.Client, path: str, payload: Any, **signing: Any) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
    return client.post(path, content=body, headers=sign_headers("POST", path, body, **signing))


def submit_payload(biz_no: str = "HGW-0123456789ABCDEF", **overrides: Any) -> dict[str, Any]:
    return {
        "bizNo": biz_no,
        "idCardNo": LI_MING,
        "name": "李明",
        "unitCode": "91440101MA59BX4C3Y",
        "unitName": "广州示例科技有限公司",
        "startDate": "20241101",
        "insuranceTypes": ["110", "310"],
        "baseAmount": 800000,
        **overrides,
    }


@pytest.fixture(scope="module")
def bureau() -> Iterator[JsonHmacBureau]:
    with JsonHmacBureau(REGION) as server:
        yield server


@pytest.fixture
def client(bureau: JsonHmacBureau) -> Iterator[httpx.Client]:
    bureau.reset()
    with httpx.Client(base_url=bureau.base_url, timeout=5) as http:
        yield http


WANG_FANG_RECORD = {
    "status": "1",
    "unitCode": "91440101MA59BX4C3Y",
    "unitName": "广州示例科技有限公司",
    "startDate": "20230801",
    "endDate": "",
    "paidMonths": 36,
    "baseAmount": 800000,
    "lastPaidPeriod": "202607",
}


def test_ping_is_unsigned(client: httpx.Client) -> None:
    response = client.get("/api/v1/ping")
    assert response.status_code == 200
    assert response.json() == {"code": "0000", "msg": "pong", "data": {"region": REGION}}


def test_query_returns_both_records_in_the_documented_format(client: httpx.Client) -> None:
    response = post(client, QUERY, {"idCardNo": WANG_FANG, "name": "王芳", "pageNo": 1, "pageSize": 20})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == "0000"
    assert body["data"] == {
        "total": 2,
        "pageNo": 1,
        "pageSize": 20,
        "records": [
            {"insuranceType": "110", **WANG_FANG_RECORD},
            {"insuranceType": "310", **WANG_FANG_RECORD},
        ],
    }


def test_query_pages_default_to_first_page_of_twenty(client: httpx.Client) -> None:
    data = post(client, QUERY, {"idCardNo": WANG_FANG, "name": "王芳"}).json()["data"]
    assert (data["pageNo"], data["pageSize"], data["total"], len(data["records"])) == (1, 20, 2, 2)


def test_query_paging_with_page_size_one(client: httpx.Client) -> None:
    pages = [
        post(client, QUERY, {"idCardNo": WANG_FANG, "name": "王芳", "pageNo": n, "pageSize": 1}).json()["data"]
        for n in (1, 2, 3)
    ]
    assert [page["total"] for page in pages] == [2, 2, 2]
    assert [[r["insuranceType"] for r in page["records"]] for page in pages] == [["110"], ["310"], []]


@pytest.mark.parametrize("name", ["王芳", "Wang Fang", " wang FANG ", "王芳 "])
def test_name_check_accepts_chinese_and_pinyin(client: httpx.Client, name: str) -> None:
    assert post(client, QUERY, {"idCardNo": WANG_FANG, "name": name}).json()["data"]["total"] == 2


def test_name_mismatch_is_2005(client: httpx.Client) -> None:
    response = post(client, QUERY, {"idCardNo": WANG_FANG, "name": "王小芳"})
    assert response.status_code == 200
    assert response.json()["code"] == "2005"
    assert "data" not in response.json()


def test_bad_check_digit_is_2003(client: httpx.Client) -> None:
    response = post(client, QUERY, {"idCardNo": "440104199003120214", "name": "王芳"})
    assert (response.status_code, response.json()["code"]) == (200, "2003")


def test_unknown_person_has_no_records_and_no_name_check(client: httpx.Client) -> None:
    data = post(client, QUERY, {"idCardNo": LI_MING, "name": "anyone"}).json()["data"]
    assert data["total"] == 0 and data["records"] == []


def test_signed_query_string_is_part_of_the_signature(client: httpx.Client) -> None:
    body = json.dumps({"idCardNo": WANG_FANG, "name": "王芳"}).encode()
    target = QUERY + "?trace=1"
    good = client.post(target, content=body, headers=sign_headers("POST", target, body))
    assert good.json()["code"] == "0000"
    bad = client.post(target, content=body, headers=sign_headers("POST", QUERY, body))
    assert bad.json()["code"] == "1001"


def test_bad_signature_is_401_1001(client: httpx.Client) -> None:
    response = post(client, QUERY, {"idCardNo": WANG_FANG, "name": "王芳"}, secret="wrong-secret")
    assert (response.status_code, response.json()) == (401, {"code": "1001", "msg": "签名无效"})


def test_tampered_body_is_1001(client: httpx.Client) -> None:
    signed = json.dumps({"idCardNo": WANG_FANG, "name": "王芳"}).encode()
    sent = json.dumps({"idCardNo": WANG_FANG, "name": "Wang Fang"}).encode()
    response = client.post(QUERY, content=sent, headers=sign_headers("POST", QUERY, signed))
    assert (response.status_code, response.json()["code"]) == (401, "1001")


@pytest.mark.parametrize("missing", ["X-App-Id", "X-Timestamp", "X-Nonce", "X-Signature"])
def test_missing_signing_header_is_1001(client: httpx.Client, missing: str) -> None:
    body = json.dumps({"idCardNo": WANG_FANG, "name": "王芳"}).encode()
    headers = sign_headers("POST", QUERY, body)
    del headers[missing]
    response = client.post(QUERY, content=body, headers=headers)
    assert (response.status_code, response.json()["code"]) == (401, "1001")


def test_short_nonce_is_1001(client: httpx.Client) -> None:
    response = post(client, QUERY, {"idCardNo": WANG_FANG, "name": "王芳"}, nonce="abc123")
    assert response.json()["code"] == "1001"


def test_stale_timestamp_is_1002(client: httpx.Client) -> None:
    for skew in (-WINDOW_SECONDS - 5, WINDOW_SECONDS + 5):
        response = post(client, QUERY, {"idCardNo": WANG_FANG, "name": "王芳"}, timestamp=int(time.time()) + skew)
        assert (response.status_code, response.json()["code"]) == (401, "1002")


def test_bureau_clock_drives_the_window_and_acceptance_date() -> None:
    now = [1_730_419_200.0]  # 2024-11-01 08:00 +08:00
    with JsonHmacBureau(REGION, clock=lambda: now[0]) as bureau, httpx.Client(base_url=bureau.base_url) as http:
        ts = int(now[0])
        accepted = post(http, SUBMIT, submit_payload(), timestamp=ts).json()
        assert accepted["data"]["acceptedAt"] == "20241101"
        now[0] += WINDOW_SECONDS + 1
        stale = post(http, ENROLMENT_QUERY, {"bizNo": "HGW-0123456789ABCDEF"}, timestamp=ts)
        assert stale.json()["code"] == "1002"


def test_nonce_replay_is_1003(client: httpx.Client) -> None:
    body = json.dumps({"idCardNo": WANG_FANG, "name": "王芳"}).encode()
    headers = sign_headers("POST", QUERY, body)
    assert client.post(QUERY, content=body, headers=headers).json()["code"] == "0000"
    replay = client.post(QUERY, content=body, headers=headers)
    assert (replay.status_code, replay.json()["code"]) == (401, "1003")


def test_unknown_app_id_is_1004(client: httpx.Client) -> None:
    response = post(client, QUERY, {"idCardNo": WANG_FANG, "name": "王芳"}, app_id="someone-else")
    assert (response.status_code, response.json()["code"]) == (401, "1004")


def test_nonce_memory_is_bounded_by_the_window() -> None:
    cache = NonceCache()
    for i in range(100):
        assert cache.add(f"nonce{i:012d}", timestamp=1000, now=1000.0)
    assert not cache.add("nonce000000000000", timestamp=1000, now=1200.0)
    assert cache.add("fresh00000000000", timestamp=1400, now=1400.0)
    assert len(cache) == 1


def test_submit_then_enrolment_query(client: httpx.Client) -> None:
    response = post(client, SUBMIT, submit_payload())
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == "0000"
    data = body["data"]
    assert re.fullmatch(r"440100E\d{6}", data["acceptNo"])
    assert data["bizNo"] == "HGW-0123456789ABCDEF"
    assert data["status"] == "ACCEPTED"
    assert re.fullmatch(r"\d{8}", data["acceptedAt"])
    looked_up = post(client, ENROLMENT_QUERY, {"bizNo": "HGW-0123456789ABCDEF"}).json()
    assert looked_up == {"code": "0000", "msg": "成功", "data": data}


def test_enrolment_query_for_unknown_biz_no_is_2404(client: httpx.Client) -> None:
    response = post(client, ENROLMENT_QUERY, {"bizNo": "HGW-NEVER-SENT"})
    assert (response.status_code, response.json()["code"]) == (200, "2404")


def test_accept_numbers_follow_a_sequence(client: httpx.Client) -> None:
    first = post(client, SUBMIT, submit_payload("HGW-FIRST-001")).json()["data"]["acceptNo"]
    second = post(
        client, SUBMIT, submit_payload("HGW-SECOND-02", idCardNo=WANG_FANG, name="Wang Fang", insuranceTypes=["210"])
    ).json()["data"]["acceptNo"]
    assert (first, second) == ("440100E000001", "440100E000002")


def test_resubmitting_a_biz_no_returns_the_original_acceptance(client: httpx.Client, bureau: JsonHmacBureau) -> None:
    first = post(client, SUBMIT, submit_payload()).json()
    again = post(client, SUBMIT, submit_payload()).json()
    assert again == first
    assert len(bureau.enrolments()) == 1


def test_concurrent_submits_with_one_biz_no_create_one_enrolment(
    client: httpx.Client, bureau: JsonHmacBureau
) -> None:
    barrier = threading.Barrier(20)
    results: list[dict[str, Any]] = []

    def submit() -> None:
        with httpx.Client(base_url=bureau.base_url, timeout=5) as own:
            barrier.wait()
            results.append(post(own, SUBMIT, submit_payload()).json())

    threads = [threading.Thread(target=submit) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 20
    assert {result["code"] for result in results} == {"0000"}
    assert len({result["data"]["acceptNo"] for result in results}) == 1
    assert len(bureau.enrolments()) == 1
    records = post(client, QUERY, {"idCardNo": LI_MING, "name": "李明"}).json()["data"]["records"]
    assert [r["insuranceType"] for r in records] == ["110", "310"]


def test_submit_for_an_active_type_is_2001(client: httpx.Client, bureau: JsonHmacBureau) -> None:
    payload = submit_payload(idCardNo=WANG_FANG, name="王芳", insuranceTypes=["210", "310"])
    response = post(client, SUBMIT, payload)
    assert (response.status_code, response.json()["code"]) == (200, "2001")
    assert bureau.enrolments() == []
    assert post(client, QUERY, {"idCardNo": WANG_FANG, "name": "王芳"}).json()["data"]["total"] == 2


def test_submit_with_bad_check_digit_is_2003(client: httpx.Client, bureau: JsonHmacBureau) -> None:
    response = post(client, SUBMIT, submit_payload(idCardNo="430102199511080357"))
    assert response.json()["code"] == "2003"
    assert bureau.enrolments() == []


def test_enrolled_person_shows_new_active_records(client: httpx.Client) -> None:
    assert post(client, SUBMIT, submit_payload()).json()["code"] == "0000"
    data = post(client, QUERY, {"idCardNo": LI_MING, "name": "李明"}).json()["data"]
    expected = {
        "status": "1",
        "unitCode": "91440101MA59BX4C3Y",
        "unitName": "广州示例科技有限公司",
        "startDate": "20241101",
        "endDate": "",
        "paidMonths": 0,
        "baseAmount": 800000,
        "lastPaidPeriod": "",
    }
    assert data["total"] == 2
    assert data["records"] == [{"insuranceType": "110", **expected}, {"insuranceType": "310", **expected}]
    assert post(client, QUERY, {"idCardNo": LI_MING, "name": "王芳"}).json()["code"] == "2005"


def test_malformed_json_is_1100(client: httpx.Client) -> None:
    response = post(client, QUERY, b'{"idCardNo": "440104199003120213", ')
    assert (response.status_code, response.json()["code"]) == (400, "1100")


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        (QUERY, {"name": "王芳"}),
        (QUERY, {"idCardNo": WANG_FANG}),
        (QUERY, {"idCardNo": 440104199003120213, "name": "王芳"}),
        (QUERY, {"idCardNo": "4401041990031202", "name": "王芳"}),
        (QUERY, {"idCardNo": WANG_FANG, "name": "王芳", "pageSize": 51}),
        (QUERY, {"idCardNo": WANG_FANG, "name": "王芳", "pageNo": 0}),
        (QUERY, {"idCardNo": WANG_FANG, "name": "王芳", "pageNo": "1"}),
        (QUERY, [WANG_FANG, "王芳"]),
        (SUBMIT, {k: v for k, v in submit_payload().items() if k != "unitCode"}),
        (SUBMIT, submit_payload(bizNo="short")),
        (SUBMIT, submit_payload(bizNo="HGW_UNDERSCORE_1")),
        (SUBMIT, submit_payload(baseAmount=0)),
        (SUBMIT, submit_payload(baseAmount=8000.5)),
        (SUBMIT, submit_payload(insuranceTypes=[])),
        (SUBMIT, submit_payload(insuranceTypes=["110", "999"])),
        (SUBMIT, submit_payload(insuranceTypes="110")),
        (SUBMIT, submit_payload(startDate="2024-11-01")),
        (SUBMIT, submit_payload(startDate="20241301")),
        (ENROLMENT_QUERY, {}),
    ],
)
def test_missing_or_mistyped_fields_are_1100(client: httpx.Client, path: str, payload: Any) -> None:
    response = post(client, path, payload)
    assert (response.status_code, response.json()["code"]) == (400, "1100")


def test_request_id_is_echoed(client: httpx.Client) -> None:
    assert client.get("/api/v1/ping", headers={"X-Request-ID": "req-42"}).headers["X-Request-ID"] == "req-42"


def test_unknown_path_and_wrong_method(client: httpx.Client) -> None:
    missing = client.post("/api/v2/nothing", content=b"{}")
    assert (missing.status_code, missing.json()["code"]) == (404, "1100")
    wrong = client.get(QUERY)
    assert (wrong.status_code, wrong.json()["code"]) == (405, "1100")


def test_shenzhen_seed_and_unseeded_region() -> None:
    with JsonHmacBureau("440300") as shenzhen, httpx.Client(base_url=shenzhen.base_url) as http:
        body = post(
            http, QUERY, {"idCardNo": "440303199201010554", "name": "Zhao Lei"}, secret="sandbox-secret-440300"
        ).json()
        assert body["data"]["records"] == [
            {
                "insuranceType": "110",
                "status": "1",
                "unitCode": "91440300MA5FXXKQ11",
                "unitName": "深圳示例电子有限公司",
                "startDate": "20210301",
                "endDate": "",
                "paidMonths": 65,
                "baseAmount": 1200000,
                "lastPaidPeriod": "202607",
            }
        ]
    with JsonHmacBureau("440500", app_secret="s3cret") as empty, httpx.Client(base_url=empty.base_url) as http:
        body = post(http, QUERY, {"idCardNo": WANG_FANG, "name": "王芳"}, secret="s3cret").json()
        assert body["data"]["total"] == 0
        assert "s3cret" not in empty.describe()


def test_unseeded_bureau_starts_empty() -> None:
    with JsonHmacBureau(REGION, seed=False) as bureau, httpx.Client(base_url=bureau.base_url) as http:
        assert post(http, QUERY, {"idCardNo": WANG_FANG, "name": "nobody"}).json()["data"]["total"] == 0


def test_invalid_region_is_refused() -> None:
    with pytest.raises(ValueError, match="six-digit"):
        JsonHmacBureau("../etc")


def test_state_dump_masks_id_numbers(client: httpx.Client) -> None:
    post(client, SUBMIT, submit_payload())
    state = client.get("/__mock__/state").json()
    assert state["region"] == REGION
    [enrolment] = state["enrolments"]
    assert enrolment["idCardNo"] == "4301**********0356"
    assert LI_MING not in json.dumps(state)
