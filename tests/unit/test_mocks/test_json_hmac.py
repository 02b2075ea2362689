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


# -- declarations, transfers, contribution history ------------------------------------------

DECLARE = "/api/v1/declaration/submit"
DECLARATION_QUERY = "/api/v1/declaration/query"
TRANSFER_OUT = "/api/v1/transfer/out/submit"
TRANSFER_OUT_QUERY = "/api/v1/transfer/out/query"
TRANSFER_IN = "/api/v1/transfer/in/submit"
TRANSFER_IN_QUERY = "/api/v1/transfer/in/query"
CONTRIBUTIONS = "/api/v1/contribution/query"
GZ_UNIT = "91440101MA59BX4C3Y"
OTHER_UNIT = "91430100MA4L16JQ9D"
ZHAO_LEI = "440303199201010554"


def line(line_no: int, change: str, id_number: str = LI_MING, name: str = "李明", **overrides: Any) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "lineNo": line_no,
        "idCardNo": id_number,
        "name": name,
        "changeType": change,
        "insuranceTypes": ["110", "310"],
    }
    if change != "02":
        detail["baseAmount"] = 800000
    detail.update(overrides)
    return detail


def declaration(biz_no: str = "HGW-DECL-000001", *details: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {
        "bizNo": biz_no,
        "unitCode": GZ_UNIT,
        "unitName": "广州示例科技有限公司",
        "period": "202608",
        "details": list(details) or [line(1, "01")],
        **overrides,
    }


def records_of(client: httpx.Client, id_number: str, name: str, **signing: Any) -> dict[str, dict[str, Any]]:
    """A person's records keyed by insurance type (the last one of each type wins)."""
    data = post(client, QUERY, {"idCardNo": id_number, "name": name}, **signing).json()["data"]
    return {record["insuranceType"]: record for record in data["records"]}


def transfer_out_payload(biz_no: str = "HGW-TOUT-000001", **overrides: Any) -> dict[str, Any]:
    return {
        "bizNo": biz_no,
        "idCardNo": WANG_FANG,
        "name": "王芳",
        "targetRegion": "430100",
        "insuranceTypes": ["110", "310"],
        **overrides,
    }


def transfer_in_payload(biz_no: str = "HGW-TIN-000001", **overrides: Any) -> dict[str, Any]:
    return {
        "bizNo": biz_no,
        "idCardNo": LI_MING,
        "name": "李明",
        "sourceRegion": "430100",
        "sourceTransferNo": "430100-T-000007",
        "carried": [{"insuranceType": "110", "paidMonths": 24, "startDate": "20200101", "fundAmount": 1536000}],
        **overrides,
    }


def test_declaration_decides_each_line_on_its_own(client: httpx.Client) -> None:
    body = declaration(
        "HGW-DECL-000001",
        line(1, "01", hireDate="20240805"),  # new for an unknown person: accepted
        line(2, "01", WANG_FANG, "王芳", insuranceTypes=["310"]),  # medical already active
        line(3, "02", WANG_FANG, "王小芳"),  # wrong name
        line(4, "03", WANG_FANG, "王芳", baseAmount=900000),  # base change: accepted
        line(5, "04", ZHAO_LEI, "赵磊"),  # not insured with this unit
    )
    answer = post(client, DECLARE, body).json()
    assert answer["code"] == "0000"
    data = answer["data"]
    assert data["status"] == "PARTIAL"
    assert re.fullmatch(r"440100D\d{6}", data["declareNo"])
    assert (data["bizNo"], data["period"]) == ("HGW-DECL-000001", "202608")
    assert re.fullmatch(r"\d{8}", data["declaredAt"])
    assert [(d["lineNo"], d["status"], d["code"]) for d in data["details"]] == [
        (1, "ACCEPTED", "0000"),
        (2, "REJECTED", "2001"),
        (3, "REJECTED", "2005"),
        (4, "ACCEPTED", "0000"),
        (5, "REJECTED", "2002"),
    ]
    assert data["details"][4]["msg"] == "该单位无此人有效参保记录"
    li_ming = records_of(client, LI_MING, "李明")
    assert {t: (r["status"], r["startDate"], r["paidMonths"], r["unitCode"]) for t, r in li_ming.items()} == {
        "110": ("1", "20240805", 0, GZ_UNIT),
        "310": ("1", "20240805", 0, GZ_UNIT),
    }
    wang_fang = records_of(client, WANG_FANG, "王芳")
    assert [r["baseAmount"] for r in wang_fang.values()] == [900000, 900000]


def test_declaration_all_accepted_or_all_rejected(client: httpx.Client) -> None:
    accepted = post(client, DECLARE, declaration("HGW-DECL-ALL-OK", line(1, "04", WANG_FANG, "王芳"))).json()
    assert accepted["data"]["status"] == "ACCEPTED"
    rejected = post(client, DECLARE, declaration("HGW-DECL-NONE-1", line(1, "02"), line(2, "03"))).json()
    assert rejected["data"]["status"] == "REJECTED"
    assert [d["code"] for d in rejected["data"]["details"]] == ["2002", "2002"]
    assert re.fullmatch(r"440100D\d{6}", rejected["data"]["declareNo"])


def test_new_line_without_hire_date_starts_on_the_first_of_the_period(client: httpx.Client) -> None:
    post(client, DECLARE, declaration("HGW-DECL-000002", line(1, "01", insuranceTypes=["410"])))
    assert records_of(client, LI_MING, "李明")["410"]["startDate"] == "20260801"


def test_leave_terminates_then_new_reactivates_keeping_months(client: httpx.Client) -> None:
    leave = declaration("HGW-DECL-LEAVE1", line(1, "02", WANG_FANG, "Wang Fang", leaveDate="20260815"))
    assert post(client, DECLARE, leave).json()["data"]["status"] == "ACCEPTED"
    left = records_of(client, WANG_FANG, "王芳")
    assert {(r["status"], r["endDate"], r["paidMonths"]) for r in left.values()} == {("3", "20260815", 36)}
    # Without a leave date the record ends on the last day of the period.
    post(client, DECLARE, declaration("HGW-DECL-NEWAGN", line(1, "01", WANG_FANG, "王芳", insuranceTypes=["110"])))
    again = post(client, QUERY, {"idCardNo": WANG_FANG, "name": "王芳"}).json()["data"]
    assert again["total"] == 2  # reactivated, not a second pension record
    pension = records_of(client, WANG_FANG, "王芳")["110"]
    assert (pension["status"], pension["endDate"], pension["paidMonths"], pension["startDate"]) == (
        "1", "", 36, "20230801"
    )
    other_unit = declaration("HGW-DECL-OTHER1", line(1, "02", WANG_FANG, "王芳"), unitCode=OTHER_UNIT)
    assert post(client, DECLARE, other_unit).json()["data"]["details"][0]["code"] == "2002"
    post(client, DECLARE, declaration("HGW-DECL-LEAVE2", line(1, "02", WANG_FANG, "王芳", insuranceTypes=["110"])))
    assert records_of(client, WANG_FANG, "王芳")["110"]["endDate"] == "20260831"


def test_lines_are_decided_in_line_order_against_earlier_lines(client: httpx.Client) -> None:
    body = declaration("HGW-DECL-ORDER1", line(2, "03", baseAmount=500000), line(1, "01"))
    data = post(client, DECLARE, body).json()["data"]
    assert [(d["lineNo"], d["code"]) for d in data["details"]] == [(1, "0000"), (2, "0000")]
    assert records_of(client, LI_MING, "李明")["110"]["baseAmount"] == 500000


def test_declaration_resubmission_returns_the_stored_answer(client: httpx.Client) -> None:
    first = post(client, DECLARE, declaration("HGW-DECL-REPEAT", line(1, "01"))).json()
    again = post(client, DECLARE, declaration("HGW-DECL-REPEAT", line(1, "01"))).json()
    assert again == first and first["data"]["status"] == "ACCEPTED"
    assert post(client, QUERY, {"idCardNo": LI_MING, "name": "李明"}).json()["data"]["total"] == 2
    assert post(client, DECLARATION_QUERY, {"bizNo": "HGW-DECL-REPEAT"}).json() == first
    missing = post(client, DECLARATION_QUERY, {"bizNo": "HGW-DECL-NEVER1"})
    assert (missing.status_code, missing.json()["code"]) == (200, "2404")


def test_declaration_line_with_bad_check_digit_is_2003(client: httpx.Client) -> None:
    body = declaration("HGW-DECL-CHECK1", line(1, "01", "430102199511080357"), line(2, "01"))
    data = post(client, DECLARE, body).json()["data"]
    assert [d["code"] for d in data["details"]] == ["2003", "0000"]


@pytest.mark.parametrize(
    "body",
    [
        declaration(period="2026-08"),
        declaration(period="202613"),
        declaration(details=[]),
        declaration("HGW-DECL-DUPLIC", line(1, "01"), line(1, "04", WANG_FANG, "王芳")),
        declaration("HGW-DECL-CHANGE", line(1, "05")),
        declaration("HGW-DECL-LVBASE", line(1, "02", baseAmount=800000)),
        declaration("HGW-DECL-ZEROBS", line(1, "01", baseAmount=0)),
        declaration("HGW-DECL-FLOAT1", line(1, "03", baseAmount=8000.5)),
        declaration("HGW-DECL-NOBASE", {k: v for k, v in line(1, "01").items() if k != "baseAmount"}),
        declaration("HGW-DECL-LINE00", line(0, "01")),
        declaration("HGW-DECL-NONAME", line(1, "01", name="")),
        declaration("HGW-DECL-HIREDT", line(1, "01", hireDate="2024-08-05")),
        declaration("HGW-DECL-TYPES1", line(1, "01", insuranceTypes=[])),
        declaration(bizNo="short"),
    ],
)
def test_malformed_declaration_is_refused_whole(client: httpx.Client, body: dict[str, Any]) -> None:
    response = post(client, DECLARE, body)
    assert (response.status_code, response.json()["code"]) == (400, "1100")
    assert post(client, DECLARATION_QUERY, {"bizNo": body["bizNo"]}).json()["code"] in ("2404", "1100")
    assert post(client, QUERY, {"idCardNo": LI_MING, "name": "x"}).json()["data"]["total"] == 0


class Clock:
    def __init__(self, now: float = 1_786_000_000.0) -> None:  # 2026-08-06 +08:00
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clocked() -> Iterator[tuple[JsonHmacBureau, httpx.Client, Clock]]:
    clock = Clock()
    with JsonHmacBureau(REGION, clock=clock, transfer_step_seconds=60) as server, httpx.Client(
        base_url=server.base_url, timeout=5
    ) as http:
        yield server, http, clock


def at(clock: Clock) -> dict[str, int]:
    return {"timestamp": int(clock.now)}


def test_transfer_out_progresses_one_stage_per_step(clocked: tuple[JsonHmacBureau, httpx.Client, Clock]) -> None:
    bureau, http, clock = clocked
    submitted = post(http, TRANSFER_OUT, transfer_out_payload(), **at(clock)).json()["data"]
    assert re.fullmatch(r"440100T\d{6}", submitted["transferNo"])
    assert (submitted["stage"], submitted["carried"], submitted["targetRegion"]) == ("SUBMITTED", [], "430100")
    assert submitted["acceptedAt"] == submitted["updatedAt"] == "20260806"

    def status() -> dict[str, Any]:
        return post(http, TRANSFER_OUT_QUERY, {"bizNo": "HGW-TOUT-000001"}, **at(clock)).json()["data"]

    clock.now += 59
    assert status()["stage"] == "SUBMITTED"
    clock.now += 1
    reviewed = status()
    assert (reviewed["stage"], reviewed["carried"]) == ("SOURCE_REVIEWED", [])
    assert records_of(http, WANG_FANG, "王芳", **at(clock))["110"]["status"] == "1"
    clock.now += 86_400  # the next day: the funds step is dated when it came due
    done = status()
    assert done["stage"] == "FUNDS_TRANSFERRED"
    assert done["updatedAt"] == "20260806"
    assert done["carried"] == [
        {"insuranceType": "110", "paidMonths": 36, "startDate": "20230801", "fundAmount": 2304000},
        {"insuranceType": "310", "paidMonths": 36, "startDate": "20230801", "fundAmount": 576000},
    ]
    assert (done["reasonCode"], done["reasonMsg"]) == ("", "")
    moved = records_of(http, WANG_FANG, "王芳", **at(clock))
    assert {(r["status"], r["endDate"], r["paidMonths"]) for r in moved.values()} == {("4", "20260806", 36)}
    by_number = post(http, TRANSFER_OUT_QUERY, {"transferNo": done["transferNo"]}, **at(clock)).json()["data"]
    assert by_number == done
    # Final: later questions change nothing.
    clock.now += 600
    assert status() == done


def test_transfer_step_is_settable_by_tests(clocked: tuple[JsonHmacBureau, httpx.Client, Clock]) -> None:
    bureau, http, clock = clocked
    assert bureau.transfer_step_seconds == 60
    bureau.transfer_step_seconds = 0
    post(http, TRANSFER_OUT, transfer_out_payload(), **at(clock))
    status = post(http, TRANSFER_OUT_QUERY, {"bizNo": "HGW-TOUT-000001"}, **at(clock)).json()["data"]
    assert status["stage"] == "FUNDS_TRANSFERRED"
    assert JsonHmacBureau(REGION).transfer_step_seconds == 2.0


def test_transfer_out_without_every_type_is_rejected_at_review(
    clocked: tuple[JsonHmacBureau, httpx.Client, Clock],
) -> None:
    bureau, http, clock = clocked
    post(http, TRANSFER_OUT, transfer_out_payload(insuranceTypes=["110", "210"]), **at(clock))
    post(http, TRANSFER_OUT, transfer_out_payload("HGW-TOUT-000002", idCardNo=LI_MING, name="李明"), **at(clock))
    clock.now += 120
    for biz_no in ("HGW-TOUT-000001", "HGW-TOUT-000002"):
        status = post(http, TRANSFER_OUT_QUERY, {"bizNo": biz_no}, **at(clock)).json()["data"]
        assert (status["stage"], status["reasonCode"], status["reasonMsg"]) == (
            "REJECTED", "3001", "转出地无该险种有效参保记录"
        )
        assert status["carried"] == []
    assert {r["status"] for r in records_of(http, WANG_FANG, "王芳", **at(clock)).values()} == {"1"}


def test_transfer_out_rejected_when_a_record_stops_before_the_funds(
    clocked: tuple[JsonHmacBureau, httpx.Client, Clock],
) -> None:
    bureau, http, clock = clocked
    post(http, TRANSFER_OUT, transfer_out_payload(), **at(clock))
    clock.now += 60
    leave = declaration("HGW-DECL-LEAVE9", line(1, "02", WANG_FANG, "王芳", insuranceTypes=["310"]))
    assert post(http, DECLARE, leave, **at(clock)).json()["data"]["status"] == "ACCEPTED"
    clock.now += 60
    status = post(http, TRANSFER_OUT_QUERY, {"bizNo": "HGW-TOUT-000001"}, **at(clock)).json()["data"]
    assert (status["stage"], status["reasonCode"]) == ("REJECTED", "3001")
    assert records_of(http, WANG_FANG, "王芳", **at(clock))["110"]["status"] == "1"


def test_transfer_out_refusals_and_idempotency(client: httpx.Client) -> None:
    mismatch = post(client, TRANSFER_OUT, transfer_out_payload(name="王小芳"))
    assert (mismatch.status_code, mismatch.json()["code"]) == (200, "2005")
    assert post(client, TRANSFER_OUT_QUERY, {"bizNo": "HGW-TOUT-000001"}).json()["code"] == "2404"
    assert post(client, TRANSFER_OUT, transfer_out_payload(idCardNo="440104199003120214")).json()["code"] == "2003"
    first = post(client, TRANSFER_OUT, transfer_out_payload()).json()
    again = post(client, TRANSFER_OUT, transfer_out_payload(insuranceTypes=["110"])).json()
    assert again["data"]["transferNo"] == first["data"]["transferNo"] == "440100T000001"
    assert post(client, TRANSFER_OUT_QUERY, {"transferNo": "440100T000999"}).json()["code"] == "2404"


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        (TRANSFER_OUT, transfer_out_payload(targetRegion="440100")),
        (TRANSFER_OUT, transfer_out_payload(targetRegion="4301")),
        (TRANSFER_OUT, transfer_out_payload(insuranceTypes=["999"])),
        (TRANSFER_OUT_QUERY, {}),
        (TRANSFER_OUT_QUERY, {"bizNo": "HGW-TOUT-000001", "transferNo": "440100T000001"}),
        (TRANSFER_IN, transfer_in_payload(carried=[])),
        (TRANSFER_IN, transfer_in_payload(sourceRegion="440100")),
        (TRANSFER_IN, transfer_in_payload(sourceTransferNo="")),
        (TRANSFER_IN, transfer_in_payload(carried=[{"insuranceType": "110", "paidMonths": -1, "fundAmount": 0}])),
        (TRANSFER_IN, transfer_in_payload(carried=[{"insuranceType": "110", "paidMonths": 1, "fundAmount": 1.5}])),
        (
            TRANSFER_IN,
            transfer_in_payload(
                carried=[
                    {"insuranceType": "110", "paidMonths": 1, "fundAmount": 1},
                    {"insuranceType": "110", "paidMonths": 2, "fundAmount": 1},
                ]
            ),
        ),
        (TRANSFER_IN_QUERY, {"bizNo": 12345678}),
    ],
)
def test_malformed_transfers_are_1100(client: httpx.Client, path: str, payload: Any) -> None:
    response = post(client, path, payload)
    assert (response.status_code, response.json()["code"]) == (400, "1100")


def test_transfer_in_creates_a_suspended_record_then_enrolment_reactivates_it(client: httpx.Client) -> None:
    answer = post(client, TRANSFER_IN, transfer_in_payload()).json()
    assert answer["code"] == "0000"
    data = answer["data"]
    assert re.fullmatch(r"440100I\d{6}", data["transferInNo"])
    assert (data["status"], data["reasonCode"], data["reasonMsg"]) == ("ACCEPTED", "", "")
    assert post(client, TRANSFER_IN_QUERY, {"bizNo": "HGW-TIN-000001"}).json() == answer
    [record] = records_of(client, LI_MING, "李明").values()
    assert record == {
        "insuranceType": "110",
        "status": "2",
        "unitCode": "",
        "unitName": "",
        "startDate": "20200101",
        "endDate": "",
        "paidMonths": 24,
        "baseAmount": 0,
        "lastPaidPeriod": "",
    }
    assert post(client, SUBMIT, submit_payload()).json()["code"] == "0000"
    enrolled = records_of(client, LI_MING, "李明")
    assert len(post(client, QUERY, {"idCardNo": LI_MING, "name": "李明"}).json()["data"]["records"]) == 2
    assert (enrolled["110"]["status"], enrolled["110"]["paidMonths"], enrolled["110"]["unitCode"]) == ("1", 24, GZ_UNIT)
    assert (enrolled["110"]["startDate"], enrolled["110"]["baseAmount"]) == ("20200101", 800000)
    assert (enrolled["310"]["paidMonths"], enrolled["310"]["startDate"]) == (0, "20241101")
    # An active record still refuses a second enrolment.
    assert post(client, SUBMIT, submit_payload("HGW-ENROL-AGAIN1")).json()["code"] == "2001"


def test_transfer_in_merges_into_an_existing_record(client: httpx.Client) -> None:
    payload = transfer_in_payload(
        idCardNo=WANG_FANG,
        name="王芳",
        carried=[
            {"insuranceType": "110", "paidMonths": 12, "startDate": "20200301", "fundAmount": 1, "baseAmount": 500000},
            {"insuranceType": "210", "paidMonths": 5, "startDate": "", "fundAmount": 0, "baseAmount": 500000},
        ],
    )
    assert post(client, TRANSFER_IN, payload).json()["data"]["status"] == "ACCEPTED"
    records = records_of(client, WANG_FANG, "王芳")
    assert (records["110"]["status"], records["110"]["paidMonths"], records["110"]["startDate"]) == ("1", 48, "20200301")
    assert (records["210"]["status"], records["210"]["paidMonths"], records["210"]["baseAmount"]) == ("2", 5, 500000)
    assert records["310"]["paidMonths"] == 36
    # Idempotent: the same bizNo again changes nothing.
    again = post(client, TRANSFER_IN, payload).json()
    assert again["data"]["transferInNo"] == "440100I000001"
    assert records_of(client, WANG_FANG, "王芳")["110"]["paidMonths"] == 48


def test_transfer_in_with_another_name_is_stored_rejected(client: httpx.Client) -> None:
    payload = transfer_in_payload(idCardNo=WANG_FANG, name="王小芳")
    data = post(client, TRANSFER_IN, payload).json()["data"]
    assert (data["status"], data["reasonCode"], data["reasonMsg"]) == ("REJECTED", "2005", "姓名与公民身份号码不符")
    assert post(client, TRANSFER_IN_QUERY, {"bizNo": "HGW-TIN-000001"}).json()["data"] == data
    assert records_of(client, WANG_FANG, "王芳")["110"]["paidMonths"] == 36
    assert post(client, TRANSFER_IN_QUERY, {"bizNo": "HGW-TIN-NEVER01"}).json()["code"] == "2404"
    assert post(client, TRANSFER_IN, transfer_in_payload("HGW-TIN-000002", idCardNo="430102199511080357")).json()[
        "code"
    ] == "2003"


def test_wang_fang_moves_from_guangzhou_with_36_months(clocked: tuple[JsonHmacBureau, httpx.Client, Clock]) -> None:
    bureau, http, clock = clocked
    bureau.transfer_step_seconds = 1
    post(http, TRANSFER_OUT, transfer_out_payload(), **at(clock))
    clock.now += 2
    done = post(http, TRANSFER_OUT_QUERY, {"bizNo": "HGW-TOUT-000001"}, **at(clock)).json()["data"]
    with JsonHmacBureau("440300", transfer_step_seconds=0) as target, httpx.Client(base_url=target.base_url) as other:
        carried = post(
            other,
            TRANSFER_IN,
            transfer_in_payload(
                idCardNo=WANG_FANG, name="王芳", sourceRegion=REGION, sourceTransferNo=done["transferNo"],
                carried=done["carried"],
            ),
            secret="sandbox-secret-440300",
        ).json()["data"]
        assert carried["status"] == "ACCEPTED"
        moved = records_of(other, WANG_FANG, "王芳", secret="sandbox-secret-440300")
        assert {t: (r["status"], r["paidMonths"]) for t, r in moved.items()} == {"110": ("2", 36), "310": ("2", 36)}


def month(period: str, kind: str, unit: int, personal: int, paid: str) -> dict[str, Any]:
    return {
        "period": period, "insuranceType": kind, "payStatus": "1",
        "unitAmount": unit, "personalAmount": personal, "paidDate": paid,
    }


def test_contribution_history_is_derived_from_seeded_totals(client: httpx.Client) -> None:
    query = {"idCardNo": WANG_FANG, "name": "王芳", "startPeriod": "202306", "endPeriod": "202309", "pageSize": 50}
    data = post(client, CONTRIBUTIONS, query).json()["data"]
    assert data["total"] == 4
    assert data["months"] == [
        month("202308", "110", 128000, 64000, "20230915"),
        month("202308", "310", 64000, 16000, "20230915"),
        month("202309", "110", 128000, 64000, "20231015"),
        month("202309", "310", 64000, 16000, "20231015"),
    ]
    whole = post(client, CONTRIBUTIONS, {**query, "startPeriod": "200001", "endPeriod": "209912"}).json()["data"]
    assert whole["total"] == 72
    last = post(client, CONTRIBUTIONS, {**query, "startPeriod": "202607", "endPeriod": "202612"}).json()["data"]
    assert [m["paidDate"] for m in last["months"]] == ["20260815", "20260815"]


def test_contribution_history_without_a_name_and_paging(client: httpx.Client) -> None:
    query = {"idCardNo": WANG_FANG, "startPeriod": "202401", "endPeriod": "202412", "pageNo": 2, "pageSize": 20}
    data = post(client, CONTRIBUTIONS, query).json()["data"]
    assert (data["total"], data["pageNo"], len(data["months"])) == (24, 2, 4)
    assert [m["period"] for m in data["months"]] == ["202411", "202411", "202412", "202412"]
    assert post(client, CONTRIBUTIONS, {**query, "name": "Wang Fang"}).json()["data"]["total"] == 24
    assert post(client, CONTRIBUTIONS, {**query, "name": "王小芳"}).json()["code"] == "2005"
    unknown = post(client, CONTRIBUTIONS, {**query, "idCardNo": LI_MING}).json()["data"]
    assert (unknown["total"], unknown["months"]) == (0, [])
    assert post(client, CONTRIBUTIONS, {**query, "idCardNo": "440104199003120214"}).json()["code"] == "2003"


@pytest.mark.parametrize(
    "overrides",
    [{"startPeriod": "202413"}, {"endPeriod": "2024-12"}, {"startPeriod": "202501"}, {"name": ""}, {"pageSize": 51}],
)
def test_malformed_contribution_query_is_1100(client: httpx.Client, overrides: dict[str, Any]) -> None:
    query = {"idCardNo": WANG_FANG, "startPeriod": "202401", "endPeriod": "202412", **overrides}
    assert post(client, CONTRIBUTIONS, query).json()["code"] == "1100"


def test_shenzhen_contributions_for_zhao_lei() -> None:
    with JsonHmacBureau("440300") as shenzhen, httpx.Client(base_url=shenzhen.base_url) as http:
        query = {"idCardNo": ZHAO_LEI, "startPeriod": "202001", "endPeriod": "202612", "pageSize": 50}
        data = post(http, CONTRIBUTIONS, query, secret="sandbox-secret-440300").json()["data"]
        assert data["total"] == 65
        assert data["months"][0] == month("202103", "110", 192000, 96000, "20210415")


def test_new_state_shows_masked_and_resets(client: httpx.Client, bureau: JsonHmacBureau) -> None:
    post(client, DECLARE, declaration("HGW-DECL-STATE1", line(1, "01")))
    post(client, TRANSFER_OUT, transfer_out_payload())
    post(client, TRANSFER_IN, transfer_in_payload())
    state = client.get("/__mock__/state").json()
    assert [d["bizNo"] for d in state["declarations"]] == ["HGW-DECL-STATE1"]
    assert state["declarations"][0]["idCardNos"] == ["4301**********0356"]
    assert state["transfersOut"][0]["idCardNo"] == "4401**********0213"
    assert state["transfersIn"][0]["transferInNo"] == "440100I000001"
    dumped = json.dumps(state)
    assert LI_MING not in dumped and WANG_FANG not in dumped
    assert client.post("/__mock__/reset").status_code == 204
    state = client.get("/__mock__/state").json()
    assert (state["declarations"], state["transfersOut"], state["transfersIn"]) == ([], [], [])
    assert post(client, DECLARATION_QUERY, {"bizNo": "HGW-DECL-STATE1"}).json()["code"] == "2404"
    assert records_of(client, WANG_FANG, "王芳")["110"]["paidMonths"] == 36


def test_faults_apply_to_the_new_routes(client: httpx.Client, bureau: JsonHmacBureau) -> None:
    from mocks.faults import parse_fault

    bureau.faults.add(parse_fault(f"{TRANSFER_OUT}:drop_after:times=1"))
    with pytest.raises(httpx.TransportError):
        post(client, TRANSFER_OUT, transfer_out_payload())
    assert post(client, TRANSFER_OUT_QUERY, {"bizNo": "HGW-TOUT-000001"}).json()["data"]["stage"] == "SUBMITTED"
    bureau.faults.add(parse_fault(f"*:error:status=503,match={LI_MING},times=1"))
    refused = post(client, DECLARE, declaration("HGW-DECL-FAULT1", line(1, "01")))
    assert (refused.status_code, refused.json()["code"]) == (503, "5000")
    assert post(client, DECLARATION_QUERY, {"bizNo": "HGW-DECL-FAULT1"}).json()["code"] == "2404"
    bureau.faults.add(parse_fault(f"{CONTRIBUTIONS}:rate_limit:retry_after=3"))
    limited = post(client, CONTRIBUTIONS, {"idCardNo": WANG_FANG, "startPeriod": "202401", "endPeriod": "202401"})
    assert (limited.status_code, limited.json()["code"], limited.headers["Retry-After"]) == (429, "4290", "3")


# -- payment confirmation ------------------------------------------------------------------

PAY_NOTIFY = "/api/v1/contribution/payment/notify"
PAY_QUERY = "/api/v1/contribution/payment/query"


def payment(biz_no: str = "HGW-PAY-000001", declare_biz_no: str = "HGW-DECL-000001", **overrides: Any) -> dict[str, Any]:
    return {
        "bizNo": biz_no,
        "unitCode": GZ_UNIT,
        "unitName": "广州示例科技有限公司",
        "period": "202608",
        "declareBizNo": declare_biz_no,
        "payAmount": 390000,
        "paidDate": "20260820",
        "bankSerialNo": "E2E-20260820-000001",
        **overrides,
    }


def months_in(client: httpx.Client, id_number: str, period: str = "202608") -> dict[str, dict[str, Any]]:
    query = {"idCardNo": id_number, "startPeriod": period, "endPeriod": period, "pageSize": 50}
    return {m["insuranceType"]: m for m in post(client, CONTRIBUTIONS, query).json()["data"]["months"]}


def declare_the_month(client: httpx.Client) -> None:
    """Li Ming hired (pension + medical at 8000), Wang Fang continues (listing unemployment,
    which she does not hold), Zhao Lei refused (not insured here), a leave line for nobody."""
    body = declaration(
        "HGW-DECL-000001",
        line(1, "01"),
        line(2, "04", WANG_FANG, "王芳", insuranceTypes=["110", "210", "310"], baseAmount=900000),
        line(3, "04", ZHAO_LEI, "赵磊"),
    )
    assert post(client, DECLARE, body).json()["data"]["status"] == "PARTIAL"


def test_a_confirmed_payment_marks_the_declared_months_paid(client: httpx.Client) -> None:
    declare_the_month(client)
    answer = post(client, PAY_NOTIFY, payment())
    assert answer.status_code == 200
    assert answer.json() == {
        "code": "0000",
        "msg": "成功",
        "data": {
            "bizNo": "HGW-PAY-000001", "confirmNo": "440100P000001", "declareBizNo": "HGW-DECL-000001",
            "period": "202608", "status": "CONFIRMED", "confirmedAmount": 390000,
            "confirmedAt": answer.json()["data"]["confirmedAt"], "reasonCode": "", "reasonMsg": "",
        },
    }  # fmt: skip
    assert re.fullmatch(r"[0-9]{8}", answer.json()["data"]["confirmedAt"])
    assert months_in(client, LI_MING) == {
        "110": {**month("202608", "110", 128000, 64000, "20260820")},
        "310": {**month("202608", "310", 64000, 16000, "20260820")},
    }
    assert months_in(client, WANG_FANG) == {  # at the declared base; unemployment never applied
        "110": month("202608", "110", 144000, 72000, "20260820"),
        "310": month("202608", "310", 72000, 18000, "20260820"),
    }
    assert months_in(client, ZHAO_LEI) == {}
    wang = records_of(client, WANG_FANG, "王芳")
    assert (wang["110"]["paidMonths"], wang["110"]["lastPaidPeriod"]) == (37, "202608")
    li = records_of(client, LI_MING, "李明")
    assert (li["310"]["paidMonths"], li["310"]["lastPaidPeriod"]) == (1, "202608")
    assert post(client, PAY_QUERY, {"bizNo": "HGW-PAY-000001"}).json()["data"] == answer.json()["data"]


def test_a_repeated_notice_answers_the_stored_decision_and_counts_nothing_twice(client: httpx.Client) -> None:
    declare_the_month(client)
    first = post(client, PAY_NOTIFY, payment()).json()["data"]
    again = post(client, PAY_NOTIFY, payment(payAmount=1, declareBizNo="HGW-DECL-OTHER1")).json()["data"]
    assert again == first
    assert records_of(client, LI_MING, "李明")["110"]["paidMonths"] == 1


def test_a_month_already_held_is_replaced_and_not_counted_twice(client: httpx.Client, bureau: JsonHmacBureau) -> None:
    # Wang Fang's 202607 is paid (derived from her totals); a continue declared for 202607 is paid again.
    post(client, DECLARE, declaration("HGW-DECL-JULY01", line(1, "04", WANG_FANG, "王芳"), period="202607"))
    post(client, PAY_NOTIFY, payment(declare_biz_no="HGW-DECL-JULY01", period="202607", paidDate="20260810"))
    assert months_in(client, WANG_FANG, "202607")["110"]["paidDate"] == "20260810"
    assert records_of(client, WANG_FANG, "王芳")["110"]["paidMonths"] == 36


@pytest.mark.parametrize(
    ("reason", "overrides"),
    [
        ("2504", {"payAmount": 0}),
        ("2504", {"payAmount": -100}),
        ("2501", {"declareBizNo": "HGW-DECL-NEVER1"}),
        ("2503", {"unitCode": OTHER_UNIT}),
        ("2503", {"period": "202609"}),
        ("2502", {"declareBizNo": "HGW-DECL-REFUSED"}),
        ("2505", {"bizNo": "HGW-PAY-SECOND"}),
    ],
)
def test_refused_notices_are_stored_rejected_and_mark_nothing(
    client: httpx.Client, reason: str, overrides: dict[str, Any]
) -> None:
    declare_the_month(client)
    refused = declaration("HGW-DECL-REFUSED", line(1, "04", ZHAO_LEI, "赵磊"))
    assert post(client, DECLARE, refused).json()["data"]["status"] == "REJECTED"
    if reason == "2505":
        assert post(client, PAY_NOTIFY, payment()).json()["data"]["status"] == "CONFIRMED"
    else:
        assert months_in(client, LI_MING) == {}
    body = payment(**overrides)
    answer = post(client, PAY_NOTIFY, body)
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert (data["status"], data["reasonCode"], data["confirmedAmount"]) == ("REJECTED", reason, 0)
    assert data["reasonMsg"] and data["confirmNo"].startswith("440100P")
    assert post(client, PAY_QUERY, {"bizNo": body["bizNo"]}).json()["data"] == data
    if reason != "2505":
        assert months_in(client, LI_MING) == {}


@pytest.mark.parametrize(
    "overrides",
    [
        {"bizNo": "short"},
        {"declareBizNo": "x"},
        {"period": "2026-08"},
        {"paidDate": "2026-08-20"},
        {"payAmount": "3900.00"},
        {"bankSerialNo": ""},
        {"bankSerialNo": "x" * 65},
        {"unitName": None},
    ],
)
def test_malformed_notices_are_1100_and_stored_nowhere(client: httpx.Client, overrides: dict[str, Any]) -> None:
    declare_the_month(client)
    body = {k: v for k, v in payment(**overrides).items() if v is not None}
    answer = post(client, PAY_NOTIFY, body)
    assert (answer.status_code, answer.json()["code"]) == (400, "1100")
    assert post(client, PAY_QUERY, {"bizNo": "HGW-PAY-000001"}).json()["code"] == "2404"
    assert months_in(client, LI_MING) == {}


def test_payment_query_of_an_unknown_notice_is_2404(client: httpx.Client) -> None:
    answer = post(client, PAY_QUERY, {"bizNo": "HGW-PAY-NEVER1"})
    assert (answer.status_code, answer.json()["code"]) == (200, "2404")


def test_drop_after_on_a_notice_confirms_it_once(client: httpx.Client, bureau: JsonHmacBureau) -> None:
    from mocks.faults import parse_fault

    declare_the_month(client)
    bureau.faults.add(parse_fault(f"{PAY_NOTIFY}:drop_after:times=1"))
    with pytest.raises(httpx.TransportError):
        post(client, PAY_NOTIFY, payment())
    assert post(client, PAY_QUERY, {"bizNo": "HGW-PAY-000001"}).json()["data"]["status"] == "CONFIRMED"
    assert [p.notice.biz_no for p in bureau.contribution_payments()] == ["HGW-PAY-000001"]
    state = client.get("/__mock__/state").json()
    assert [p["bizNo"] for p in state["payments"]] == ["HGW-PAY-000001"]
    assert client.post("/__mock__/reset").status_code == 204
    assert client.get("/__mock__/state").json()["payments"] == []


# -- a clerk corrects a person's contribution status ---------------------------------------


def test_correcting_one_type_of_a_month(client: httpx.Client, bureau: JsonHmacBureau) -> None:
    corrected = bureau.set_contribution_status(WANG_FANG, "2024-08", "late", "pension", paid_on="2024-10-28")
    assert corrected == [
        {"period": "202408", "insuranceType": "110", "payStatus": "2", "unitAmount": 128000,
         "personalAmount": 64000, "paidDate": "20241028"},
    ]  # fmt: skip
    held = months_in(client, WANG_FANG, "202408")
    assert (held["110"]["payStatus"], held["110"]["paidDate"]) == ("2", "20241028")
    assert (held["310"]["payStatus"], held["310"]["paidDate"]) == ("1", "20240915")


def test_correcting_every_type_over_the_control_plane(client: httpx.Client) -> None:
    r = client.post("/__mock__/contributions", json={"id_number": WANG_FANG, "period": "2024-08", "status": "unpaid"})
    assert r.status_code == 200
    assert r.json()["id_number"] == "4401**********0213"
    assert [(m["insuranceType"], m["payStatus"], m["paidDate"]) for m in r.json()["months"]] == [
        ("110", "3", ""), ("310", "3", ""),
    ]  # fmt: skip
    r = client.post(
        "/__mock__/contributions",
        json={"id_number": WANG_FANG, "period": "202408", "status": "paid", "insurance_type": "310"},
    )
    assert r.status_code == 200
    held = months_in(client, WANG_FANG, "202408")
    assert (held["110"]["payStatus"], held["310"]["payStatus"]) == ("3", "1")
    assert re.fullmatch(r"[0-9]{8}", held["310"]["paidDate"])  # a month paid without a date is dated today
    assert WANG_FANG not in r.text


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"id_number": LI_MING, "period": "2024-08", "status": "paid"}, 404),  # nobody the bureau holds
        ({"id_number": WANG_FANG, "period": "2019-01", "status": "paid"}, 404),  # no such month
        ({"id_number": WANG_FANG, "period": "2024-08", "status": "paid", "insurance_type": "maternity"}, 404),
        ({"id_number": WANG_FANG, "period": "2024-08", "status": "settled"}, 400),
        ({"id_number": WANG_FANG, "period": "2024/08", "status": "paid"}, 400),
        ({"id_number": WANG_FANG, "period": "2024-08", "status": "paid", "insurance_type": "dental"}, 400),
        ({"id_number": WANG_FANG, "period": "2024-08", "status": "paid", "paid_on": "yesterday"}, 400),
        ({"period": "2024-08", "status": "paid"}, 400),
        ([WANG_FANG], 400),
    ],
)
def test_corrections_the_bureau_cannot_make(client: httpx.Client, body: Any, status: int) -> None:
    r = client.post("/__mock__/contributions", json=body)
    assert r.status_code == status
    assert "error" in r.json()
    assert months_in(client, WANG_FANG, "202408")["110"]["payStatus"] == "1"


def test_corrections_are_undone_by_a_reset(client: httpx.Client, bureau: JsonHmacBureau) -> None:
    bureau.set_contribution_status(WANG_FANG, "202408", "unpaid")
    assert client.post("/__mock__/reset").status_code == 204
    assert months_in(client, WANG_FANG, "202408")["110"]["payStatus"] == "1"
    assert client.get("/__mock__/contributions").status_code == 405
