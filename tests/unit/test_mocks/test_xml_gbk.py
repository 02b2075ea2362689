"""The xml-gbk mock bureau against docs/dialects/xml-gbk.md, over real HTTP.

Request documents are written here by hand and encoded as GBK, so the tests check
the mock against the protocol description rather than against its own helpers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from mocks import MOCK_DIALECTS, XmlGbkBureau, parse_fault
from mocks.faults import Fault, FaultKind

REGION = "420100"
PATH = "/si/gateway"
USER_ID = "hgw-sandbox"
PASSWORD = "sandbox-password-420100"
ZHANG_SAN = "420102198805200177"
LI_MING = "430102199511080356"
BAD_CHECK_DIGIT = "440104199003120214"
DECLARATION = '<?xml version="1.0" encoding="GBK"?>'
HEADERS = {"Content-Type": "text/xml; charset=GBK"}
UNIT_CODE = "91420100MA4K2QXL25"
UNIT_NAME = "武汉示例软件有限公司"
CHINA = timezone(timedelta(hours=8))
# 2026-11-21 09:30:00 China time.
NOW = datetime(2026, 11, 21, 9, 30, tzinfo=CHINA).timestamp()
REPO = Path(__file__).resolve().parents[3]


class Clock:
    """A settable clock for the bureau: token expiry and acceptance dates."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Reply:
    status: int
    headers: httpx.Headers
    root: ET.Element

    def head(self, tag: str) -> str:
        return (self.root.findtext(f"Head/{tag}") or "").strip()

    @property
    def code(self) -> str:
        return self.head("ReturnCode")

    @property
    def body(self) -> ET.Element:
        body = self.root.find("Body")
        assert body is not None
        return body

    def text(self, path: str) -> str:
        return (self.body.findtext(path) or "").strip()

    def items(self, path: str) -> list[dict[str, str]]:
        return [{child.tag: (child.text or "").strip() for child in item} for item in self.body.findall(path)]


def document(
    trans_code: str,
    body: str,
    *,
    token: str | None = None,
    serial_no: str = "HGW-20261121-0001",
    request_time: str = "20261121093000",
    declaration: str = DECLARATION,
) -> str:
    token_element = "" if token is None else f"<SessionToken>{token}</SessionToken>"
    return (
        f"{declaration}\n<Request>\n  <Head>\n    <TransCode>{trans_code}</TransCode>\n    {token_element}\n"
        f"    <SerialNo>{serial_no}</SerialNo>\n    <RequestTime>{request_time}</RequestTime>\n  </Head>\n"
        f"  <Body>{body}</Body>\n</Request>\n"
    )


def read_reply(response: httpx.Response) -> Reply:
    """Check the response's encoding and declaration, then parse it."""
    assert response.headers["Content-Type"] == "text/xml; charset=GBK"
    text = response.content.decode("gbk")
    assert text.startswith(DECLARATION)
    return Reply(response.status_code, response.headers, ET.fromstring(text[len(DECLARATION) :]))


def post(client: httpx.Client, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return client.post(PATH, content=content, headers={**HEADERS, **(headers or {})})


def call(
    client: httpx.Client, trans_code: str, body: str, token: str | None = None, **options: str
) -> Reply:
    return read_reply(post(client, document(trans_code, body, token=token, **options).encode("gbk")))


def login(client: httpx.Client, user_id: str = USER_ID, password: str = PASSWORD) -> str:
    reply = call(client, "LOGIN", f"<UserId>{user_id}</UserId><Password>{password}</Password>")
    assert (reply.status, reply.code) == (200, "0000")
    return reply.text("SessionToken")


def person(id_number: str = ZHANG_SAN, name: str = "张三") -> str:
    return f"<IdNo>{id_number}</IdNo><Name>{name}</Name>"


def months_query(from_period: str, to_period: str, id_number: str = ZHANG_SAN, name: str = "张三") -> str:
    return person(id_number, name) + f"<FromPeriod>{from_period}</FromPeriod><ToPeriod>{to_period}</ToPeriod>"


def enrolment(
    biz_no: str = "HGW-0123456789ABCDEF",
    id_number: str = LI_MING,
    name: str = "李明",
    *,
    types: tuple[str, ...] = ("110", "310"),
    base: str = "8000.00",
    begin_date: str = "2026-11-02",
    unit_name: str = UNIT_NAME,
) -> str:
    ins_types = "".join(f"<InsType>{t}</InsType>" for t in types)
    return (
        f"<BizNo>{biz_no}</BizNo><IdNo>{id_number}</IdNo><Name>{name}</Name>"
        f"<UnitCode>{UNIT_CODE}</UnitCode><UnitName>{unit_name}</UnitName>"
        f"<BeginDate>{begin_date}</BeginDate><InsTypes>{ins_types}</InsTypes><Base>{base}</Base>"
    )


CLOCK = Clock()
STEP = 2.0


@pytest.fixture(scope="module")
def bureau() -> Iterator[XmlGbkBureau]:
    with XmlGbkBureau(REGION, clock=CLOCK) as server:
        yield server


@pytest.fixture
def client(bureau: XmlGbkBureau) -> Iterator[httpx.Client]:
    bureau.reset()
    bureau.transfer_step_seconds = STEP
    CLOCK.now = NOW
    with httpx.Client(base_url=bureau.base_url, timeout=5) as http:
        yield http


@pytest.fixture
def token(client: httpx.Client) -> str:
    return login(client)


ZHANG_SAN_RECORDS = [
    {
        "InsType": ins_type,
        "Status": "参保缴费",
        "UnitCode": UNIT_CODE,
        "UnitName": UNIT_NAME,
        "BeginDate": "2019-03-01",
        "EndDate": "",
        "PaidMonths": "68",
        "Base": "9000.00",
        "LastPaidPeriod": "202410",
    }
    for ins_type in ("110", "310")
]


# LOGIN and Q001


def test_login_then_q001_returns_zhang_san_exactly(client: httpx.Client) -> None:
    reply = call(client, "LOGIN", f"<UserId>{USER_ID}</UserId><Password>{PASSWORD}</Password>", serial_no="L-1")
    assert (reply.status, reply.code, reply.head("ReturnMsg")) == (200, "0000", "成功")
    assert (reply.head("TransCode"), reply.head("SerialNo")) == ("LOGIN", "L-1")
    assert reply.text("ExpiresIn") == "600" and len(reply.text("SessionToken")) >= 16

    response = post(client, document("Q001", person(), token=reply.text("SessionToken")).encode("gbk"))
    assert UNIT_NAME.encode("gbk") in response.content and "参保缴费".encode("gbk") in response.content
    records = read_reply(response)
    assert (records.status, records.code, records.head("TransCode")) == (200, "0000", "Q001")
    assert records.head("SerialNo") == "HGW-20261121-0001"
    assert records.items("Records/Record") == ZHANG_SAN_RECORDS
    assert records.body.find("Records/Record/EndDate").text is None  # an empty element: no value


@pytest.mark.parametrize("name", ["Zhang San", " zhang san ", "  张三\n"])
def test_q001_accepts_any_name_on_file(client: httpx.Client, token: str, name: str) -> None:
    reply = call(client, "Q001", person(name=name), token)
    assert reply.code == "0000" and len(reply.items("Records/Record")) == 2


def test_logging_in_again_keeps_earlier_tokens(client: httpx.Client) -> None:
    first, second = login(client), login(client)
    assert first != second
    assert call(client, "Q001", person(), first).code == "0000"
    assert call(client, "Q001", person(), second).code == "0000"


def test_q001_name_mismatch_is_b005(client: httpx.Client, token: str) -> None:
    reply = call(client, "Q001", person(name="李四"), token)
    assert (reply.status, reply.code) == (200, "B005")
    assert len(reply.body) == 0


@pytest.mark.parametrize(
    ("trans_code", "body"),
    [
        ("Q001", person(BAD_CHECK_DIGIT, "王芳")),
        ("Q002", months_query("202401", "202402", BAD_CHECK_DIGIT, "王芳")),
        ("E001", enrolment(id_number=BAD_CHECK_DIGIT)),
    ],
)
def test_bad_check_digit_is_b003(client: httpx.Client, token: str, trans_code: str, body: str) -> None:
    reply = call(client, trans_code, body, token)
    assert (reply.status, reply.code) == (200, "B003")


def test_unknown_person_has_no_records_and_no_name_check(client: httpx.Client, token: str) -> None:
    reply = call(client, "Q001", person(LI_MING, "任何人"), token)
    assert reply.code == "0000" and reply.body.find("Records") is not None
    assert reply.items("Records/Record") == []
    months = call(client, "Q002", months_query("202401", "202410", LI_MING, "任何人"), token)
    assert months.code == "0000" and months.body.find("Months") is not None and months.items("Months/Month") == []


# AUTH01 / AUTH02


@pytest.mark.parametrize("token", [None, "", "0123456789abcdef0123456789abcdef"])
def test_missing_empty_or_unknown_token_is_auth01(client: httpx.Client, token: str | None) -> None:
    reply = call(client, "Q001", person(), token, serial_no="Q-7")
    assert (reply.status, reply.code, reply.head("SerialNo"), reply.head("TransCode")) == (401, "AUTH01", "Q-7", "Q001")


def test_expire_tokens_expires_every_issued_token(client: httpx.Client, bureau: XmlGbkBureau) -> None:
    first, second = login(client), login(client)
    bureau.expire_tokens()
    assert [call(client, "Q001", person(), t).status for t in (first, second)] == [401, 401]
    assert call(client, "Q001", person(), first).code == "AUTH01"
    assert call(client, "Q001", person(), login(client)).code == "0000"


def test_tokens_expire_after_their_ttl() -> None:
    clock = Clock(1_000.0)
    with XmlGbkBureau(REGION, clock=clock, token_ttl=5.0) as short, httpx.Client(base_url=short.base_url) as http:
        reply = call(http, "LOGIN", f"<UserId>{USER_ID}</UserId><Password>{PASSWORD}</Password>")
        assert reply.text("ExpiresIn") == "5"
        token = reply.text("SessionToken")
        clock.now += 4.9
        assert call(http, "Q001", person(), token).code == "0000"
        clock.now += 0.1
        reply = call(http, "Q001", person(), token)
        assert (reply.status, reply.code) == (401, "AUTH01")
        assert call(http, "Q001", person(), login(http)).code == "0000"


def test_reset_forgets_sessions(client: httpx.Client, bureau: XmlGbkBureau, token: str) -> None:
    bureau.reset()
    assert call(client, "Q001", person(), token).code == "AUTH01"


@pytest.mark.parametrize(("user_id", "password"), [(USER_ID, "wrong"), ("someone", PASSWORD)])
def test_wrong_credentials_are_auth02(client: httpx.Client, user_id: str, password: str) -> None:
    reply = call(client, "LOGIN", f"<UserId>{user_id}</UserId><Password>{password}</Password>")
    assert (reply.status, reply.code) == (401, "AUTH02")
    assert reply.body.find("SessionToken") is None


def test_custom_credentials_and_aliases() -> None:
    with XmlGbkBureau("420100", user_id="u1", password="p1", seed=False) as custom:
        assert (custom.app_id, custom.app_secret) == ("u1", "p1")
        assert "p1" not in custom.describe()
        with httpx.Client(base_url=custom.base_url) as http:
            token = login(http, "u1", "p1")
            assert call(http, "Q001", person(), token).items("Records/Record") == []  # seed=False
    aliased = XmlGbkBureau("420100", app_id="a", app_secret="s")
    try:
        assert (aliased.user_id, aliased.password) == ("a", "s")
    finally:
        aliased.stop()
    with pytest.raises(ValueError, match="region"):
        XmlGbkBureau("wuhan")


# S400: documents and envelopes


def test_lower_case_gbk_declaration_is_accepted(client: httpx.Client) -> None:
    body = f"<UserId>{USER_ID}</UserId><Password>{PASSWORD}</Password>"
    declaration = "<?xml version='1.0' encoding='gbk'?>"
    reply = read_reply(post(client, document("LOGIN", body, declaration=declaration).encode("gbk")))
    assert reply.code == "0000"


@pytest.mark.parametrize(
    "content",
    [
        document("Q001", person(), declaration='<?xml version="1.0" encoding="UTF-8"?>').encode("utf-8"),
        document("Q001", person(), declaration='<?xml version="1.0"?>').encode("gbk"),
        document("Q001", person(), declaration="").lstrip().encode("gbk"),
        b"",
        document("Q001", "<IdNo>1</IdNo").encode("gbk"),
        document("Q001", person() + "&undefined;").encode("gbk"),
        document("Q001", person()).encode("gbk") + b"<Request/>",
    ],
    ids=["utf-8", "no-encoding", "no-declaration", "empty", "not-well-formed", "entity", "two-roots"],
)
def test_bad_documents_are_s400(client: httpx.Client, content: bytes) -> None:
    reply = read_reply(post(client, content))
    assert (reply.status, reply.code) == (400, "S400")
    assert len(reply.body) == 0


def test_invalid_gbk_bytes_are_s400(client: httpx.Client, token: str) -> None:
    content = document("Q001", person(name="NAME"), token=token).encode("gbk").replace(b"NAME", b"\x81\x20\xff")
    reply = read_reply(post(client, content))
    assert (reply.status, reply.code) == (400, "S400")


def test_doctype_and_entities_are_refused(client: httpx.Client, token: str) -> None:
    doctype = '<!DOCTYPE Request [<!ENTITY name "张三">]>'
    text = document("Q001", f"<IdNo>{ZHANG_SAN}</IdNo><Name>&name;</Name>", token=token)
    text = text.replace("<Request>", doctype + "<Request>", 1)
    reply = read_reply(post(client, text.encode("gbk")))
    assert (reply.status, reply.code) == (400, "S400")
    plain = text.replace('[<!ENTITY name "张三">]', "").replace("&name;", "张三")
    assert read_reply(post(client, plain.encode("gbk"))).code == "S400"


def test_unknown_trans_code_is_s400_and_echoed(client: httpx.Client, token: str) -> None:
    reply = call(client, "Q999", person(), token, serial_no="X-1")
    assert (reply.status, reply.code, reply.head("TransCode"), reply.head("SerialNo")) == (400, "S400", "Q999", "X-1")


@pytest.mark.parametrize(
    ("content_type"), [None, "application/xml; charset=GBK", "text/xml", "text/xml; charset=UTF-8"]
)
def test_wrong_content_type_is_s400(client: httpx.Client, token: str, content_type: str | None) -> None:
    content = document("Q001", person(), token=token).encode("gbk")
    headers = {} if content_type is None else {"Content-Type": content_type}
    reply = read_reply(client.post(PATH, content=content, headers=headers))
    assert (reply.status, reply.code) == (400, "S400")
    assert read_reply(post(client, content, {"Content-Type": "text/xml;charset=gbk"})).code == "0000"


@pytest.mark.parametrize(
    "options",
    [
        {"serial_no": ""},
        {"serial_no": "has space"},
        {"serial_no": "X" * 33},
        {"request_time": ""},
        {"request_time": "2026-11-21 09:30"},
        {"request_time": "20261321093000"},
    ],
)
def test_malformed_head_is_s400(client: httpx.Client, token: str, options: dict[str, str]) -> None:
    reply = call(client, "Q001", person(), token, **options)
    assert (reply.status, reply.code) == (400, "S400")


def test_serial_no_of_32_characters_is_echoed(client: httpx.Client, token: str) -> None:
    serial_no = "A-" + "9" * 30
    assert call(client, "Q001", person(), token, serial_no=serial_no).head("SerialNo") == serial_no


def test_wrong_root_missing_body_and_repeated_elements_are_s400(client: httpx.Client, token: str) -> None:
    as_response = document("Q001", person(), token=token).replace("Request>", "Answer>")
    no_body = document("Q001", person(), token=token).replace(f"<Body>{person()}</Body>", "")
    twice = document("Q001", person() + "<Name>张三</Name>", token=token)
    for text in (as_response, no_body, twice):
        reply = read_reply(post(client, text.encode("gbk")))
        assert (reply.status, reply.code) == (400, "S400")


@pytest.mark.parametrize(
    "body",
    [
        person(id_number="42010219880520017"),
        person(id_number="420102198805200x77"),
        person(name=""),
        f"<IdNo>{ZHANG_SAN}</IdNo>",
        person(name="<First>张</First>"),
    ],
)
def test_malformed_q001_bodies_are_s400(client: httpx.Client, token: str, body: str) -> None:
    reply = call(client, "Q001", body, token)
    assert (reply.status, reply.code) == (400, "S400")


def test_login_without_password_is_s400(client: httpx.Client) -> None:
    reply = call(client, "LOGIN", f"<UserId>{USER_ID}</UserId>")
    assert (reply.status, reply.code) == (400, "S400")


def test_wrong_path_and_method(client: httpx.Client) -> None:
    content = document("LOGIN", f"<UserId>{USER_ID}</UserId><Password>{PASSWORD}</Password>").encode("gbk")
    missing = read_reply(client.post("/si/other", content=content, headers=HEADERS))
    assert (missing.status, missing.code) == (404, "S400")
    wrong = read_reply(client.get(PATH))
    assert (wrong.status, wrong.code) == (405, "S400")


# Q002


def test_q002_returns_months_ordered_by_period_then_type(client: httpx.Client, token: str) -> None:
    reply = call(client, "Q002", months_query("202408", "202410"), token)
    assert (reply.status, reply.code, reply.head("TransCode")) == (200, "0000", "Q002")
    amounts = {"110": ("1440.00", "720.00"), "310": ("720.00", "180.00")}
    expected = [
        {
            "Period": period,
            "InsType": ins_type,
            "PayStatus": status,
            "EmployerAmount": amounts[ins_type][0],
            "PersonalAmount": amounts[ins_type][1],
            "PaidDate": paid,
        }
        for period, status, paid in (
            ("202408", "2", "2024-10-28"),
            ("202409", "2", "2024-10-28"),
            ("202410", "1", "2024-11-15"),
        )
        for ins_type in ("110", "310")
    ]
    assert reply.items("Months/Month") == expected


def test_q002_holds_only_periods_on_record(client: httpx.Client, token: str) -> None:
    months = call(client, "Q002", months_query("202312", "202402", name="Zhang San"), token).items("Months/Month")
    assert [(m["Period"], m["InsType"], m["PaidDate"]) for m in months] == [
        ("202401", "110", "2024-02-15"),
        ("202401", "310", "2024-02-15"),
        ("202402", "110", "2024-03-15"),
        ("202402", "310", "2024-03-15"),
    ]
    assert len(call(client, "Q002", months_query("202401", "202701"), token).items("Months/Month")) == 20
    assert call(client, "Q002", months_query("202408", "202410", name="李四"), token).code == "B005"


@pytest.mark.parametrize(
    ("from_period", "to_period"),
    [("202410", "202408"), ("202401", "202702"), ("202413", "202414"), ("202400", "202401"), ("2024-08", "202410")],
)
def test_q002_bad_ranges_are_s400(client: httpx.Client, token: str, from_period: str, to_period: str) -> None:
    reply = call(client, "Q002", months_query(from_period, to_period), token)
    assert (reply.status, reply.code) == (400, "S400")


# E001 and E002


def test_e001_then_e002(client: httpx.Client, bureau: XmlGbkBureau, token: str) -> None:
    reply = call(client, "E001", enrolment(), token, serial_no="E-1")
    assert (reply.status, reply.code, reply.head("TransCode"), reply.head("SerialNo")) == (200, "0000", "E001", "E-1")
    acceptance = {"BizNo": "HGW-0123456789ABCDEF", "AcceptNo": "420100-E-000001", "AcceptDate": "2026-11-21"}
    assert reply.items(".") == [acceptance]
    found = call(client, "E002", "<BizNo>HGW-0123456789ABCDEF</BizNo>", token)
    assert (found.code, found.head("TransCode"), found.items(".")) == ("0000", "E002", [acceptance])
    missing = call(client, "E002", "<BizNo>HGW-NEVER-SENT</BizNo>", token)
    assert (missing.status, missing.code, len(missing.body)) == (200, "B404", 0)
    assert call(client, "E002", "<BizNo>short</BizNo>", token).code == "S400"

    second = call(client, "E001", enrolment("HGW-SECOND-0001", "110101199003074514", "王五", types=("410",)), token)
    assert second.text("AcceptNo") == "420100-E-000002"
    state = client.get("/__mock__/state").json()
    assert state["enrolments"][0] == {
        **acceptance,
        "IdNo": "4301**********0356",
        "UnitCode": UNIT_CODE,
        "BeginDate": "2026-11-02",
        "InsTypes": ["110", "310"],
        "Base": "8000.00",
    }
    assert LI_MING not in client.get("/__mock__/state").text and "李明" not in client.get("/__mock__/state").text
    assert [e.id_number for e in bureau.enrolments()] == [LI_MING, "110101199003074514"]


def test_acceptance_date_is_china_time(client: httpx.Client) -> None:
    CLOCK.now = datetime(2026, 11, 21, 16, 30, tzinfo=UTC).timestamp()  # 00:30 on the 22nd in China
    assert call(client, "E001", enrolment(), login(client)).text("AcceptDate") == "2026-11-22"


def test_e001_is_idempotent_by_biz_no(client: httpx.Client, bureau: XmlGbkBureau, token: str) -> None:
    first = call(client, "E001", enrolment(), token)
    again = call(client, "E001", enrolment(), token)
    changed = call(client, "E001", enrolment(types=("510",), base="1.00"), token)
    assert first.items(".") == again.items(".") == changed.items(".")
    assert len(bureau.enrolments()) == 1
    records = call(client, "Q001", person(LI_MING, "李明"), token).items("Records/Record")
    assert [r["InsType"] for r in records] == ["110", "310"]


def test_concurrent_e001_with_one_biz_no_enrols_once(bureau: XmlGbkBureau, client: httpx.Client, token: str) -> None:
    content = document("E001", enrolment(), token=token).encode("gbk")
    barrier = threading.Barrier(20)
    accept_nos: list[str] = []
    lock = threading.Lock()

    def send() -> None:
        with httpx.Client(base_url=bureau.base_url, timeout=5) as http:
            barrier.wait()
            reply = read_reply(post(http, content))
        with lock:
            accept_nos.append(reply.text("AcceptNo"))

    threads = [threading.Thread(target=send) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert accept_nos == ["420100-E-000001"] * 20
    assert len(bureau.enrolments()) == 1


def test_e001_refusals(client: httpx.Client, bureau: XmlGbkBureau, token: str) -> None:
    active = call(client, "E001", enrolment("HGW-ZHANG-0001", ZHANG_SAN, "张三", types=("410", "110")), token)
    assert (active.status, active.code, len(active.body)) == (200, "B001", 0)
    other_name = call(client, "E001", enrolment("HGW-ZHANG-0002", ZHANG_SAN, "张叁", types=("410",)), token)
    assert other_name.code == "B005"
    assert call(client, "E002", "<BizNo>HGW-ZHANG-0001</BizNo>", token).code == "B404"
    assert bureau.enrolments() == []
    # A type without an active record is fine for a person on file, under a pinyin name too.
    assert call(client, "E001", enrolment("HGW-ZHANG-0003", ZHANG_SAN, "Zhang San", types=("410",)), token).code == (
        "0000"
    )


def test_enrolled_person_is_on_file_under_the_enrolled_name(client: httpx.Client, token: str) -> None:
    name, unit = "李明", "武汉示例软件有限公司（东湖分部）"
    assert call(client, "E001", enrolment(name=name, unit_name=unit), token).code == "0000"
    reply = call(client, "Q001", person(LI_MING, name), token)
    assert reply.items("Records/Record") == [
        {
            "InsType": ins_type,
            "Status": "参保缴费",
            "UnitCode": UNIT_CODE,
            "UnitName": unit,
            "BeginDate": "2026-11-02",
            "EndDate": "",
            "PaidMonths": "0",
            "Base": "8000.00",
            "LastPaidPeriod": "",
        }
        for ins_type in ("110", "310")
    ]
    assert call(client, "Q001", person(LI_MING, "Li Ming"), token).code == "B005"
    assert call(client, "Q002", months_query("202601", "202612", LI_MING, name), token).items("Months/Month") == []
    again = call(client, "E001", enrolment("HGW-LIMING-0002", types=("310", "510")), token)
    assert (again.code, again.head("ReturnMsg").endswith("310")) == ("B001", True)


@pytest.mark.parametrize(
    "body",
    [
        enrolment(base="0.00"),
        enrolment(base="8000"),
        enrolment(base="-1.00"),
        enrolment(base="8,000.00"),
        enrolment(begin_date="20261102"),
        enrolment(begin_date="2026-02-30"),
        enrolment(types=("999",)),
        enrolment(types=()),
        enrolment(biz_no="HGW-1"),
        enrolment(biz_no="HGW_0123456789"),
        enrolment(biz_no="H" * 41),
        enrolment(unit_name=""),
        enrolment().replace("<InsTypes>", "<InsTypes><Other/>"),
    ],
)
def test_malformed_e001_is_s400(client: httpx.Client, bureau: XmlGbkBureau, token: str, body: str) -> None:
    reply = call(client, "E001", body, token)
    assert (reply.status, reply.code) == (400, "S400")
    assert bureau.enrolments() == []


# Q002 without a name


def test_q002_name_is_optional(client: httpx.Client, token: str) -> None:
    no_name = f"<IdNo>{ZHANG_SAN}</IdNo><FromPeriod>202408</FromPeriod><ToPeriod>202409</ToPeriod>"
    empty_name = f"<IdNo>{ZHANG_SAN}</IdNo><Name/><FromPeriod>202408</FromPeriod><ToPeriod>202409</ToPeriod>"
    with_name = call(client, "Q002", months_query("202408", "202409"), token).items("Months/Month")
    assert call(client, "Q002", no_name, token).items("Months/Month") == with_name
    assert call(client, "Q002", empty_name, token).items("Months/Month") == with_name
    assert [(m["Period"], m["PayStatus"]) for m in with_name] == [("202408", "2")] * 2 + [("202409", "2")] * 2
    unknown = f"<IdNo>{LI_MING}</IdNo><FromPeriod>202401</FromPeriod><ToPeriod>202412</ToPeriod>"
    assert call(client, "Q002", unknown, token).items("Months/Month") == []


def test_no_months_are_invented_for_a_newly_enrolled_person(client: httpx.Client, token: str) -> None:
    call(client, "E001", enrolment(), token)
    assert call(client, "Q002", months_query("202611", "202612", LI_MING, "李明"), token).items("Months/Month") == []


# E001 reactivates a suspended record


def test_e001_reactivates_a_suspended_record(client: httpx.Client, token: str) -> None:
    carried = "<Item><InsType>110</InsType><PaidMonths>30</PaidMonths><BeginDate>2018-01-01</BeginDate>" \
              "<FundAmount>1000.00</FundAmount></Item>"
    assert call(client, "T003", transfer_in_body(carried=carried), token).text("InStatus") == "1"
    assert call(client, "E001", enrolment(types=("110", "310")), token).code == "0000"
    records = call(client, "Q001", person(LI_MING, "李明"), token).items("Records/Record")
    assert [(r["InsType"], r["Status"], r["UnitCode"], r["BeginDate"], r["PaidMonths"], r["Base"]) for r in records] == [
        ("110", "参保缴费", UNIT_CODE, "2018-01-01", "30", "8000.00"),
        ("310", "参保缴费", UNIT_CODE, "2026-11-02", "0", "8000.00"),
    ]
    again = call(client, "E001", enrolment("HGW-SECOND-0001", types=("110",)), token)
    assert again.code == "B001"


# D001 and D002


def line(
    line_no: int,
    id_number: str = LI_MING,
    name: str = "李明",
    change: str = "1",
    types: tuple[str, ...] = ("110", "310"),
    base: str | None = "8000.00",
    hire_date: str | None = None,
    leave_date: str | None = None,
) -> str:
    parts = [f"<LineNo>{line_no}</LineNo><IdNo>{id_number}</IdNo><Name>{name}</Name><ChangeType>{change}</ChangeType>",
             "<InsTypes>" + "".join(f"<InsType>{t}</InsType>" for t in types) + "</InsTypes>"]
    if base is not None:
        parts.append(f"<Base>{base}</Base>")
    if hire_date is not None:
        parts.append(f"<HireDate>{hire_date}</HireDate>")
    if leave_date is not None:
        parts.append(f"<LeaveDate>{leave_date}</LeaveDate>")
    return "<Line>" + "".join(parts) + "</Line>"


def declaration(*lines: str, biz_no: str = "HGW-D-0001", period: str = "202611", unit_code: str = UNIT_CODE) -> str:
    return (
        f"<BizNo>{biz_no}</BizNo><UnitCode>{unit_code}</UnitCode><UnitName>{UNIT_NAME}</UnitName>"
        f"<Period>{period}</Period><Lines>{''.join(lines)}</Lines>"
    )


def records_of(client: httpx.Client, token: str, id_number: str = ZHANG_SAN, name: str = "张三") -> list[dict[str, str]]:
    return call(client, "Q001", person(id_number, name), token).items("Records/Record")


def test_d001_decides_each_line_and_d002_finds_it(client: httpx.Client, token: str) -> None:
    reply = call(
        client,
        "D001",
        declaration(
            line(1, hire_date="2026-11-02"),  # new hire: accepted
            line(2, ZHANG_SAN, "张三", types=("110",)),  # already active: B001
            line(3, ZHANG_SAN, "李四", change="4"),  # name mismatch: B005
            line(4, "110101199003074514", "王五", change="3"),  # not insured here: B006
            line(5, BAD_CHECK_DIGIT, "赵六"),  # bad check digit: B003
        ),
        token,
        serial_no="D-1",
    )
    assert (reply.status, reply.code, reply.head("TransCode"), reply.head("SerialNo")) == (200, "0000", "D001", "D-1")
    outcome = {k: reply.text(k) for k in ("BizNo", "DeclNo", "DeclStatus", "DecideDate")}
    assert outcome == {"BizNo": "HGW-D-0001", "DeclNo": "420100-D-000001", "DeclStatus": "2", "DecideDate": "2026-11-21"}
    results = reply.items("Results/Result")
    assert [(r["LineNo"], r["LineStatus"], r["ErrCode"]) for r in results] == [
        ("1", "1", ""), ("2", "0", "B001"), ("3", "0", "B005"), ("4", "0", "B006"), ("5", "0", "B003"),
    ]
    assert results[3]["ErrMsg"] == "该单位无此人有效参保记录"
    assert "该单位无此人有效参保记录".encode("gbk") in post(
        client, document("D002", "<BizNo>HGW-D-0001</BizNo>", token=token).encode("gbk")
    ).content
    found = call(client, "D002", "<BizNo>HGW-D-0001</BizNo>", token)
    assert (found.code, found.head("TransCode")) == ("0000", "D002")
    assert found.items("Results/Result") == results and found.text("DeclNo") == "420100-D-000001"
    missing = call(client, "D002", "<BizNo>HGW-D-NEVER</BizNo>", token)
    assert (missing.status, missing.code) == (200, "B404")

    li_ming = records_of(client, token, LI_MING, "李明")
    assert [(r["InsType"], r["Status"], r["BeginDate"], r["PaidMonths"], r["Base"]) for r in li_ming] == [
        ("110", "参保缴费", "2026-11-02", "0", "8000.00"),
        ("310", "参保缴费", "2026-11-02", "0", "8000.00"),
    ]
    assert records_of(client, token) == ZHANG_SAN_RECORDS  # refused lines changed nothing


def test_d001_all_accepted_and_none_accepted(client: httpx.Client, token: str) -> None:
    accepted = call(client, "D001", declaration(line(1), biz_no="HGW-D-ALL"), token)
    assert accepted.text("DeclStatus") == "1"
    # a new hire without HireDate starts on the first day of the period
    assert {r["BeginDate"] for r in records_of(client, token, LI_MING, "李明")} == {"2026-11-01"}
    rejected = call(client, "D001", declaration(line(1), biz_no="HGW-D-NONE"), token)
    assert (rejected.text("DeclStatus"), rejected.text("DeclNo")) == ("3", "420100-D-000002")


def test_d001_is_idempotent_by_biz_no(client: httpx.Client, token: str) -> None:
    first = call(client, "D001", declaration(line(1)), token)
    again = call(client, "D001", declaration(line(1, types=("510",))), token)
    assert first.items(".") == again.items(".") and first.items("Results/Result") == again.items("Results/Result")
    assert [r["InsType"] for r in records_of(client, token, LI_MING, "李明")] == ["110", "310"]
    state = client.get("/__mock__/state").json()
    assert [d["DeclNo"] for d in state["declarations"]] == ["420100-D-000001"]
    assert LI_MING not in str(state) and "李明" not in str(state)


def test_d001_leave_change_and_continue(client: httpx.Client, token: str) -> None:
    reply = call(
        client,
        "D001",
        declaration(
            line(1, ZHANG_SAN, "张三", change="3", types=("310",), base="9500.00"),
            line(2, ZHANG_SAN, "张三", change="4", types=("110",)),
            line(3, ZHANG_SAN, "Zhang San", change="2", types=("110", "210"), base=None, leave_date="2026-11-15"),
        ),
        token,
    )
    assert [r["LineStatus"] for r in reply.items("Results/Result")] == ["1", "1", "1"]
    records = records_of(client, token)
    assert [(r["InsType"], r["Status"], r["EndDate"], r["PaidMonths"], r["Base"]) for r in records] == [
        ("110", "终止参保", "2026-11-15", "68", "9000.00"),
        ("310", "参保缴费", "", "68", "9500.00"),
    ]
    # another unit cannot touch his remaining record
    other = call(client, "D001", declaration(line(1, ZHANG_SAN, "张三", change="3", types=("310",)),
                                             biz_no="HGW-D-OTHER", unit_code="91420100OTHER00000"), token)
    assert [(r["LineStatus"], r["ErrCode"]) for r in other.items("Results/Result")] == [("0", "B006")]
    # a terminated record is reactivated by a new hire, months kept
    rehire = call(client, "D001", declaration(line(1, ZHANG_SAN, "张三", types=("110",), base="7000.00"),
                                              biz_no="HGW-D-REHIRE"), token)
    assert rehire.text("DeclStatus") == "1"
    pension = records_of(client, token)[0]
    assert (pension["Status"], pension["EndDate"], pension["BeginDate"], pension["PaidMonths"], pension["Base"]) == (
        "参保缴费", "", "2019-03-01", "68", "7000.00"
    )


def test_d001_lines_are_decided_in_line_order(client: httpx.Client, token: str) -> None:
    reply = call(
        client,
        "D001",
        declaration(line(2, change="3", base="9000.00"), line(1)),  # the hire (line 1) comes first
        token,
    )
    assert [(r["LineNo"], r["LineStatus"]) for r in reply.items("Results/Result")] == [("1", "1"), ("2", "1")]
    assert {r["Base"] for r in records_of(client, token, LI_MING, "李明")} == {"9000.00"}


@pytest.mark.parametrize(
    "body",
    [
        declaration(line(1), period="2026-11"),
        declaration(line(1), period="202613"),
        declaration(),
        declaration(line(1), line(1, ZHANG_SAN, "张三")),
        declaration(line(1, change="5")),
        declaration(line(1, base="8000")),
        declaration(line(1, base="-1.00")),
        declaration(line(1, base=None)),
        declaration(line(1, change="2", base="100.00", leave_date="2026-11-15")),
        declaration(line(1, change="2", base=None)),
        declaration(line(1, hire_date="2026/11/02")),
        declaration(line(1, types=("999",))),
        declaration(line(1)).replace("<BizNo>HGW-D-0001</BizNo>", ""),
        declaration(line(1)).replace(f"<UnitCode>{UNIT_CODE}</UnitCode>", ""),
    ],
)
def test_malformed_d001_is_refused_as_a_whole(client: httpx.Client, token: str, body: str) -> None:
    reply = call(client, "D001", body, token)
    assert (reply.status, reply.code) == (400, "S400")
    assert call(client, "D002", "<BizNo>HGW-D-0001</BizNo>", token).code == "B404"
    assert records_of(client, token, LI_MING, "李明") == []


# T001 and T002


def transfer_out_body(
    biz_no: str = "HGW-T-0001",
    id_number: str = ZHANG_SAN,
    name: str = "张三",
    types: tuple[str, ...] = ("110", "310"),
    to_region: str = "330100",
) -> str:
    ins_types = "".join(f"<InsType>{t}</InsType>" for t in types)
    return (
        f"<BizNo>{biz_no}</BizNo><IdNo>{id_number}</IdNo><Name>{name}</Name>"
        f"<ToRegion>{to_region}</ToRegion><InsTypes>{ins_types}</InsTypes>"
    )


def stage_of(client: httpx.Client, token: str, biz_no: str = "HGW-T-0001") -> Reply:
    return call(client, "T002", f"<BizNo>{biz_no}</BizNo>", token)


def test_zhang_san_transfers_out_stage_by_stage(client: httpx.Client, token: str) -> None:
    submitted = call(client, "T001", transfer_out_body(), token, serial_no="T-1")
    assert (submitted.code, submitted.head("TransCode"), submitted.head("SerialNo")) == ("0000", "T001", "T-1")
    head = {k: submitted.text(k) for k in ("BizNo", "TransferNo", "ToRegion", "Stage", "ApplyDate", "StageDate",
                                            "ReasonCode", "ReasonMsg")}
    assert head == {"BizNo": "HGW-T-0001", "TransferNo": "420100-T-000001", "ToRegion": "330100", "Stage": "1",
                    "ApplyDate": "2026-11-21", "StageDate": "2026-11-21", "ReasonCode": "", "ReasonMsg": ""}
    assert submitted.items("Carried/Item") == []

    CLOCK.now = NOW + STEP - 0.01
    assert stage_of(client, token).text("Stage") == "1"
    CLOCK.now = NOW + STEP
    assert stage_of(client, token).text("Stage") == "2"
    assert records_of(client, token) == ZHANG_SAN_RECORDS  # nothing moves at review
    CLOCK.now = NOW + 2 * STEP
    done = stage_of(client, token)
    assert (done.text("Stage"), done.text("StageDate"), done.text("TransferNo")) == ("3", "2026-11-21", "420100-T-000001")
    assert done.items("Carried/Item") == [
        {"InsType": "110", "PaidMonths": "68", "BeginDate": "2019-03-01", "Base": "9000.00", "FundAmount": "48960.00"},
        {"InsType": "310", "PaidMonths": "68", "BeginDate": "2019-03-01", "Base": "9000.00", "FundAmount": "12240.00"},
    ]
    by_number = call(client, "T002", "<TransferNo>420100-T-000001</TransferNo>", token)
    assert by_number.items(".") == done.items(".")
    assert [(r["InsType"], r["Status"], r["EndDate"], r["PaidMonths"]) for r in records_of(client, token)] == [
        ("110", "已转出", "2026-11-21", "68"),
        ("310", "已转出", "2026-11-21", "68"),
    ]
    assert "已转出".encode("gbk") in post(client, document("Q001", person(), token=token).encode("gbk")).content
    # his monthly history stays where it was paid
    assert len(call(client, "Q002", months_query("202401", "202410"), token).items("Months/Month")) == 20


def test_stages_advance_when_anything_is_asked(client: httpx.Client, token: str) -> None:
    call(client, "T001", transfer_out_body(), token)
    CLOCK.now = NOW + 10 * STEP
    assert {r["Status"] for r in records_of(client, token)} == {"已转出"}  # a Q001 is enough
    assert stage_of(client, token).text("Stage") == "3"


def test_transfer_step_is_settable(client: httpx.Client, bureau: XmlGbkBureau, token: str) -> None:
    assert XmlGbkBureau(REGION, transfer_step_seconds=5.0).transfer_step_seconds == 5.0
    bureau.transfer_step_seconds = 0.0
    assert call(client, "T001", transfer_out_body(), token).text("Stage") == "1"
    assert stage_of(client, token).text("Stage") == "3"
    assert client.get("/__mock__/state").json()["transfer_step_seconds"] == 0.0


def test_t001_rejected_at_review_with_a_chinese_reason(client: httpx.Client, token: str) -> None:
    call(client, "T001", transfer_out_body(types=("110", "210")), token)
    CLOCK.now = NOW + STEP
    rejected = stage_of(client, token)
    assert (rejected.text("Stage"), rejected.text("ReasonCode"), rejected.text("ReasonMsg")) == (
        "9", "B007", "无可转出的参保记录：失业保险"
    )
    assert "无可转出的参保记录".encode("gbk") in post(
        client, document("T002", "<BizNo>HGW-T-0001</BizNo>", token=token).encode("gbk")
    ).content
    CLOCK.now = NOW + 5 * STEP
    assert stage_of(client, token).text("Stage") == "9"  # final
    assert records_of(client, token) == ZHANG_SAN_RECORDS


def test_t001_for_an_unknown_person_is_rejected_at_review(client: httpx.Client, token: str) -> None:
    assert call(client, "T001", transfer_out_body(id_number=LI_MING, name="李明"), token).text("Stage") == "1"
    CLOCK.now = NOW + STEP
    assert stage_of(client, token).text("ReasonCode") == "B007"


def test_t001_refusals_at_once(client: httpx.Client, token: str) -> None:
    mismatch = call(client, "T001", transfer_out_body(name="李四"), token)
    assert (mismatch.status, mismatch.code) == (200, "B005")
    assert call(client, "T001", transfer_out_body(id_number=BAD_CHECK_DIGIT), token).code == "B003"
    assert call(client, "T001", transfer_out_body(to_region=REGION), token).code == "S400"
    assert call(client, "T001", transfer_out_body(to_region="33010"), token).code == "S400"
    assert stage_of(client, token).code == "B404"
    assert call(client, "T002", "", token).code == "S400"
    both = "<BizNo>HGW-T-0001</BizNo><TransferNo>420100-T-000001</TransferNo>"
    assert call(client, "T002", both, token).code == "S400"
    assert call(client, "T002", "<TransferNo>420100-T-999999</TransferNo>", token).code == "B404"


def test_t001_is_idempotent_by_biz_no(client: httpx.Client, token: str) -> None:
    first = call(client, "T001", transfer_out_body(), token)
    CLOCK.now = NOW + STEP
    again = call(client, "T001", transfer_out_body(types=("110",)), token)
    assert (again.text("TransferNo"), again.text("Stage")) == (first.text("TransferNo"), "2")
    state = client.get("/__mock__/state").json()
    assert [(t["TransferNo"], t["InsTypes"], t["IdNo"]) for t in state["transfers_out"]] == [
        ("420100-T-000001", ["110", "310"], "4201**********0177")
    ]


def test_a_suspended_record_can_be_transferred(client: httpx.Client, token: str) -> None:
    carried = "<Item><InsType>110</InsType><PaidMonths>12</PaidMonths><BeginDate>2020-01-01</BeginDate>" \
              "<FundAmount>100.00</FundAmount><Base>5000.00</Base></Item>"
    call(client, "T003", transfer_in_body(carried=carried), token)
    call(client, "T001", transfer_out_body(id_number=LI_MING, name="李明", types=("110",)), token)
    CLOCK.now = NOW + 2 * STEP
    [item] = stage_of(client, token).items("Carried/Item")
    assert item == {"InsType": "110", "PaidMonths": "12", "BeginDate": "2020-01-01", "Base": "5000.00",
                    "FundAmount": "4800.00"}


# T003 and T004


def transfer_in_body(
    biz_no: str = "HGW-I-0001",
    id_number: str = LI_MING,
    name: str = "李明",
    from_region: str = "330100",
    carried: str = "<Item><InsType>110</InsType><PaidMonths>30</PaidMonths><BeginDate>2018-01-01</BeginDate>"
    "<FundAmount>1000.00</FundAmount></Item>",
) -> str:
    return (
        f"<BizNo>{biz_no}</BizNo><IdNo>{id_number}</IdNo><Name>{name}</Name><FromRegion>{from_region}</FromRegion>"
        f"<SourceTransferNo>330100-T-000001</SourceTransferNo><Carried>{carried}</Carried>"
    )


def test_t003_creates_suspended_records_for_a_new_person(client: httpx.Client, token: str) -> None:
    carried = (
        "<Item><InsType>110</InsType><PaidMonths>30</PaidMonths><BeginDate>2018-01-01</BeginDate>"
        "<FundAmount>1000.00</FundAmount><Base>6000.00</Base></Item>"
        "<Item><InsType>310</InsType><PaidMonths>24</PaidMonths><FundAmount>0.00</FundAmount></Item>"
    )
    reply = call(client, "T003", transfer_in_body(carried=carried), token, serial_no="I-1")
    assert (reply.code, reply.head("TransCode"), reply.head("SerialNo")) == ("0000", "T003", "I-1")
    assert reply.items(".") == [{"BizNo": "HGW-I-0001", "AcceptNo": "420100-I-000001", "InStatus": "1",
                                 "AcceptDate": "2026-11-21", "ReasonCode": "", "ReasonMsg": ""}]
    records = records_of(client, token, LI_MING, "李明")
    assert records == [
        {"InsType": "110", "Status": "暂停缴费", "UnitCode": "", "UnitName": "", "BeginDate": "2018-01-01",
         "EndDate": "", "PaidMonths": "30", "Base": "6000.00", "LastPaidPeriod": ""},
        {"InsType": "310", "Status": "暂停缴费", "UnitCode": "", "UnitName": "", "BeginDate": "",
         "EndDate": "", "PaidMonths": "24", "Base": "0.00", "LastPaidPeriod": ""},
    ]
    assert call(client, "T004", "<BizNo>HGW-I-0001</BizNo>", token).items(".") == reply.items(".")
    assert call(client, "T004", "<BizNo>HGW-I-NEVER</BizNo>", token).code == "B404"


def test_t003_merges_into_an_existing_record(client: httpx.Client, token: str) -> None:
    carried = "<Item><InsType>110</InsType><PaidMonths>20</PaidMonths><BeginDate>2015-06-01</BeginDate>" \
              "<FundAmount>500.00</FundAmount></Item>"
    reply = call(client, "T003", transfer_in_body(id_number=ZHANG_SAN, name="张三", carried=carried), token)
    assert reply.text("InStatus") == "1"
    pension = records_of(client, token)[0]
    assert (pension["Status"], pension["PaidMonths"], pension["BeginDate"], pension["UnitCode"]) == (
        "参保缴费", "88", "2015-06-01", UNIT_CODE
    )
    assert len(records_of(client, token)) == 2


def test_t003_does_not_merge_into_a_transferred_out_record(client: httpx.Client, bureau: XmlGbkBureau, token: str) -> None:
    bureau.transfer_step_seconds = 0.0
    call(client, "T001", transfer_out_body(types=("110",)), token)
    carried = "<Item><InsType>110</InsType><PaidMonths>5</PaidMonths><BeginDate>2026-01-01</BeginDate>" \
              "<FundAmount>50.00</FundAmount></Item>"
    call(client, "T003", transfer_in_body(id_number=ZHANG_SAN, name="张三", carried=carried), token)
    pensions = [r for r in records_of(client, token) if r["InsType"] == "110"]
    assert [(r["Status"], r["PaidMonths"], r["BeginDate"]) for r in pensions] == [
        ("已转出", "68", "2019-03-01"), ("暂停缴费", "5", "2026-01-01")
    ]


def test_t003_name_mismatch_is_a_refused_transfer_in(client: httpx.Client, token: str) -> None:
    reply = call(client, "T003", transfer_in_body(id_number=ZHANG_SAN, name="李四"), token)
    assert (reply.code, reply.text("InStatus"), reply.text("ReasonCode"), reply.text("ReasonMsg")) == (
        "0000", "9", "B005", "姓名与公民身份号码不符"
    )
    assert records_of(client, token) == ZHANG_SAN_RECORDS
    assert call(client, "T004", "<BizNo>HGW-I-0001</BizNo>", token).text("InStatus") == "9"


def test_t003_is_idempotent_by_biz_no(client: httpx.Client, token: str) -> None:
    first = call(client, "T003", transfer_in_body(), token)
    again = call(client, "T003", transfer_in_body(), token)
    assert first.items(".") == again.items(".")
    assert records_of(client, token, LI_MING, "李明")[0]["PaidMonths"] == "30"
    state = client.get("/__mock__/state").json()
    assert [(t["AcceptNo"], t["IdNo"], t["FromRegion"]) for t in state["transfers_in"]] == [
        ("420100-I-000001", "4301**********0356", "330100")
    ]


@pytest.mark.parametrize(
    "body",
    [
        transfer_in_body(from_region=REGION),
        transfer_in_body(carried=""),
        transfer_in_body(carried="<Item><InsType>110</InsType><PaidMonths>-1</PaidMonths><FundAmount>1.00</FundAmount></Item>"),
        transfer_in_body(carried="<Item><InsType>110</InsType><PaidMonths>1</PaidMonths><FundAmount>1</FundAmount></Item>"),
        transfer_in_body(carried="<Item><InsType>110</InsType><PaidMonths>1</PaidMonths><FundAmount>1.00</FundAmount></Item>" * 2),
        transfer_in_body(carried="<Item><InsType>999</InsType><PaidMonths>1</PaidMonths><FundAmount>1.00</FundAmount></Item>"),
    ],
)
def test_malformed_t003_is_s400(client: httpx.Client, token: str, body: str) -> None:
    assert call(client, "T003", body, token).code == "S400"
    assert records_of(client, token, LI_MING, "李明") == []


def test_new_transactions_need_a_session(client: httpx.Client) -> None:
    for trans_code in ("D001", "D002", "T001", "T002", "T003", "T004"):
        reply = call(client, trans_code, "<BizNo>HGW-ANYTHING</BizNo>", "bogus")
        assert (reply.status, reply.code) == (401, "AUTH01")


def test_faults_apply_to_the_new_transactions(client: httpx.Client, bureau: XmlGbkBureau, token: str) -> None:
    bureau.faults.add(parse_fault("D001:drop_after:times=1"))
    with pytest.raises(httpx.TransportError):
        post(client, document("D001", declaration(line(1)), token=token).encode("gbk"))
    assert call(client, "D002", "<BizNo>HGW-D-0001</BizNo>", token).text("DeclStatus") == "1"
    bureau.faults.add(parse_fault("T001:drop:times=1"))
    with pytest.raises(httpx.TransportError):
        post(client, document("T001", transfer_out_body(), token=token).encode("gbk"))
    assert stage_of(client, token).code == "B404"
    bureau.faults.add(parse_fault("T003:rate_limit:retry_after=2,times=1"))
    busy = call(client, "T003", transfer_in_body(), token)
    assert (busy.status, busy.code, busy.headers["Retry-After"]) == (503, "S503", "2")
    assert call(client, "T004", "<BizNo>HGW-I-0001</BizNo>", token).code == "B404"
    dropped = [r for r in bureau.requests if r.code == "DROP"]
    assert [(r.operation, r.biz_no) for r in dropped] == [("D001", "HGW-D-0001"), ("T001", "HGW-T-0001")]


def test_reset_forgets_declarations_and_transfers(client: httpx.Client, token: str) -> None:
    call(client, "D001", declaration(line(1)), token)
    call(client, "T001", transfer_out_body(), token)
    call(client, "T003", transfer_in_body(biz_no="HGW-I-0002", id_number="110101199003074514", name="王五"), token)
    assert client.post("/__mock__/reset").status_code == 204
    state = client.get("/__mock__/state").json()
    assert (state["declarations"], state["transfers_out"], state["transfers_in"]) == ([], [], [])
    token = login(client)
    assert records_of(client, token) == ZHANG_SAN_RECORDS
    assert records_of(client, token, LI_MING, "李明") == []


# Faults, request log, control plane


def test_gateway_route_error_is_s999_with_the_given_status(client: httpx.Client, bureau: XmlGbkBureau) -> None:
    token = login(client)
    bureau.faults.add(parse_fault(f"{PATH}:error:status=500,times=1"))
    reply = call(client, "Q001", person(), token, serial_no="F-1")
    assert (reply.status, reply.code, reply.head("SerialNo"), reply.head("TransCode")) == (500, "S999", "F-1", "Q001")
    assert call(client, "Q001", person(), token).code == "0000"
    bureau.faults.add(parse_fault("*:error"))
    assert (call(client, "LOGIN", "").status, call(client, "Q001", person(), token).code) == (503, "S999")


def test_trans_code_route_hits_only_that_transaction(client: httpx.Client, bureau: XmlGbkBureau, token: str) -> None:
    bureau.faults.add(Fault("E001", FaultKind.ERROR, status=502))
    assert call(client, "Q001", person(), token).code == "0000"
    assert call(client, "E002", "<BizNo>HGW-0123456789ABCDEF</BizNo>", token).code == "B404"
    reply = call(client, "E001", enrolment(), token)
    assert (reply.status, reply.code) == (502, "S999")
    assert bureau.enrolments() == []
    assert bureau.count(PATH, "S999", "E001") == 1 and bureau.count(operation="Q001") == 1


def test_rate_limit_is_503_s503_with_retry_after(client: httpx.Client, bureau: XmlGbkBureau, token: str) -> None:
    created = client.post("/__mock__/faults", json={"route": "E001", "kind": "rate_limit", "retry_after": 7, "times": 1})
    assert created.status_code == 201
    reply = call(client, "E001", enrolment(), token, serial_no="R-1")
    assert (reply.status, reply.code, reply.headers["Retry-After"], reply.head("SerialNo")) == (503, "S503", "7", "R-1")
    assert bureau.enrolments() == []
    assert call(client, "E001", enrolment(), token).code == "0000"


def test_drop_applies_nothing(client: httpx.Client, bureau: XmlGbkBureau, token: str) -> None:
    bureau.faults.add(parse_fault("E001:drop:times=1"))
    with pytest.raises(httpx.TransportError):
        post(client, document("E001", enrolment(), token=token).encode("gbk"))
    assert bureau.enrolments() == []
    assert call(client, "E002", "<BizNo>HGW-0123456789ABCDEF</BizNo>", token).code == "B404"


def test_drop_after_applies_the_enrolment(client: httpx.Client, bureau: XmlGbkBureau, token: str) -> None:
    bureau.faults.add(parse_fault("E001:drop_after:times=1"))
    with pytest.raises(httpx.TransportError):
        post(client, document("E001", enrolment(), token=token).encode("gbk"))
    [accepted] = bureau.enrolments()
    found = call(client, "E002", "<BizNo>HGW-0123456789ABCDEF</BizNo>", token)
    assert found.text("AcceptNo") == accepted.accept_no == "420100-E-000001"
    assert call(client, "E001", enrolment(), token).text("AcceptNo") == accepted.accept_no
    [dropped] = [record for record in bureau.requests if record.code == "DROP"]
    assert (dropped.path, dropped.operation, dropped.http_status, dropped.biz_no) == (
        PATH,
        "E001",
        None,
        "HGW-0123456789ABCDEF",
    )


def test_latency_and_id_number_matching(client: httpx.Client, bureau: XmlGbkBureau, token: str) -> None:
    bureau.faults.add(parse_fault("Q001:latency:ms=60,times=1"))
    started = time.perf_counter()
    assert call(client, "Q001", person(), token).code == "0000"
    assert time.perf_counter() - started >= 0.06
    bureau.faults.add(parse_fault(f"Q002:error:status=500,match={ZHANG_SAN}"))
    assert call(client, "Q001", person(), token).code == "0000"
    assert call(client, "Q002", months_query("202401", "202401", LI_MING, "李明"), token).code == "0000"
    assert call(client, "Q002", months_query("202401", "202401"), token).code == "S999"


def test_login_route_fault(client: httpx.Client, bureau: XmlGbkBureau) -> None:
    bureau.faults.add(parse_fault("LOGIN:rate_limit:retry_after=3,times=1"))
    reply = call(client, "LOGIN", f"<UserId>{USER_ID}</UserId><Password>{PASSWORD}</Password>")
    assert (reply.status, reply.code, reply.head("TransCode")) == (503, "S503", "LOGIN")
    assert login(client)


def test_fault_routes_are_validated() -> None:
    assert parse_fault("E001:drop_after") == Fault("E001", FaultKind.DROP_AFTER)
    with pytest.raises(ValueError, match="route"):
        parse_fault("si/gateway:drop")


def test_request_id_is_echoed_and_recorded(client: httpx.Client, bureau: XmlGbkBureau, token: str) -> None:
    content = document("Q001", person(), token=token).encode("gbk")
    response = post(client, content, {"X-Request-ID": "trace-xml-1"})
    assert response.headers["X-Request-ID"] == "trace-xml-1"
    assert read_reply(response).code == "0000"
    records = bureau.requests.snapshot()
    assert [(r.operation, r.code, r.http_status, r.request_id) for r in records] == [
        ("LOGIN", "0000", 200, None),
        ("Q001", "0000", 200, "trace-xml-1"),
    ]
    logged = client.get("/__mock__/requests").json()
    assert logged[-1]["request_id"] == "trace-xml-1" and logged[-1]["operation"] == "Q001"
    assert all(ZHANG_SAN not in str(r) for r in logged)


def test_state_and_reset_over_the_control_plane(client: httpx.Client, token: str) -> None:
    call(client, "E001", enrolment(), token)
    state = client.get("/__mock__/state").json()
    assert (state["dialect"], state["region"], state["sessions"], len(state["enrolments"])) == ("xml-gbk", REGION, 1, 1)
    assert client.post("/__mock__/reset").status_code == 204
    assert client.get("/__mock__/state").json()["enrolments"] == []


# CLI


def test_registry_constructs_it_with_cli_credentials() -> None:
    factory = MOCK_DIALECTS["xml-gbk"]
    server = factory(REGION, host="127.0.0.1", port=0, app_id="cli-user", app_secret="cli-pass")
    try:
        assert isinstance(server, XmlGbkBureau) and (server.user_id, server.password) == ("cli-user", "cli-pass")
    finally:
        server.stop()


def test_python_m_mocks_serves_xml_gbk() -> None:
    command = [
        sys.executable, "-m", "mocks", "--dialect", "xml-gbk", "--region", REGION, "--port", "0",
        "--fault", "LOGIN:error:status=500,times=1",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
            assert f"user_id={USER_ID}" in banner and f"password={PASSWORD}" in banner
            url = next(word for word in banner.split() if word.startswith("http://"))
            assert url.endswith(PATH)
            with httpx.Client(base_url=url.removesuffix(PATH), timeout=5) as http:
                assert call(http, "LOGIN", "").status == 500
                assert call(http, "Q001", person(), login(http)).code == "0000"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=5) == 0
        finally:
            if process.poll() is None:
                process.kill()


# P001 and P002: payment notices


def payment(
    biz_no: str = "HGW-P-0001",
    decl_biz_no: str = "HGW-D-0001",
    *,
    period: str = "202611",
    unit_code: str = UNIT_CODE,
    amount: str = "3900.00",
    pay_date: str = "2026-11-20",
    bank_serial_no: str = "E2E-20261120-000001",
) -> str:
    return (
        f"<BizNo>{biz_no}</BizNo><UnitCode>{unit_code}</UnitCode><UnitName>{UNIT_NAME}</UnitName>"
        f"<Period>{period}</Period><DeclBizNo>{decl_biz_no}</DeclBizNo><PayAmount>{amount}</PayAmount>"
        f"<PayDate>{pay_date}</PayDate><BankSerialNo>{bank_serial_no}</BankSerialNo>"
    )


def months_of(client: httpx.Client, token: str, id_number: str, period: str = "202611") -> dict[str, dict[str, str]]:
    reply = call(client, "Q002", f"<IdNo>{id_number}</IdNo><FromPeriod>{period}</FromPeriod><ToPeriod>{period}</ToPeriod>",
                 token)  # fmt: skip
    return {m["InsType"]: m for m in reply.items("Months/Month")}


def declare_the_month(client: httpx.Client, token: str) -> None:
    """Li Ming hired, Zhang San continues (listing unemployment, which he does not hold), a
    leaver who is not insured here (refused)."""
    reply = call(
        client,
        "D001",
        declaration(
            line(1),
            line(2, ZHANG_SAN, "张三", change="4", types=("110", "210", "310"), base="10000.00"),
            line(3, "110101199003074514", "王五", change="2", base=None, leave_date="2026-11-15"),
        ),
        token,
    )
    assert reply.text("DeclStatus") == "2"


def test_p001_confirms_and_marks_the_declared_months_paid(client: httpx.Client, token: str) -> None:
    declare_the_month(client, token)
    reply = call(client, "P001", payment(), token, serial_no="P-1")
    assert (reply.status, reply.code, reply.head("TransCode"), reply.head("SerialNo")) == (200, "0000", "P001", "P-1")
    answer = {child.tag: (child.text or "") for child in reply.body}
    assert answer == {
        "BizNo": "HGW-P-0001", "ConfirmNo": "420100-P-000001", "DeclNo": "420100-D-000001",
        "ConfirmAmount": "3900.00", "ConfirmDate": "2026-11-21",
    }  # fmt: skip
    assert months_of(client, token, LI_MING) == {
        "110": {"Period": "202611", "InsType": "110", "PayStatus": "1", "EmployerAmount": "1280.00",
                "PersonalAmount": "640.00", "PaidDate": "2026-11-20"},
        "310": {"Period": "202611", "InsType": "310", "PayStatus": "1", "EmployerAmount": "640.00",
                "PersonalAmount": "160.00", "PaidDate": "2026-11-20"},
    }  # fmt: skip
    zhang = months_of(client, token, ZHANG_SAN)
    assert set(zhang) == {"110", "310"}  # unemployment never applied to him
    assert (zhang["110"]["EmployerAmount"], zhang["110"]["PersonalAmount"]) == ("1600.00", "800.00")
    pension = records_of(client, token)[0]
    assert (pension["PaidMonths"], pension["LastPaidPeriod"]) == ("69", "202611")
    found = call(client, "P002", "<BizNo>HGW-P-0001</BizNo>", token)
    assert (found.code, found.head("TransCode")) == ("0000", "P002")
    assert {child.tag: (child.text or "") for child in found.body} == answer


def test_p001_is_idempotent_by_biz_no(client: httpx.Client, bureau: XmlGbkBureau, token: str) -> None:
    declare_the_month(client, token)
    first = call(client, "P001", payment(), token)
    again = call(client, "P001", payment(amount="1.00", decl_biz_no="HGW-D-OTHER"), token)
    assert again.code == "0000" and again.text("ConfirmAmount") == first.text("ConfirmAmount") == "3900.00"
    assert [p.biz_no for p in bureau.contribution_payments()] == ["HGW-P-0001"]
    assert records_of(client, token)[0]["PaidMonths"] == "69"
    state = client.get("/__mock__/state").json()
    assert [p["ConfirmNo"] for p in state["payments"]] == ["420100-P-000001"]


@pytest.mark.parametrize(
    ("code", "options"),
    [
        ("B011", {"amount": "0.00"}),
        ("B011", {"amount": "-5.00"}),
        ("B008", {"decl_biz_no": "HGW-D-NEVER"}),
        ("B010", {"unit_code": "91430100MA4L16JQ9D"}),
        ("B010", {"period": "202612"}),
        ("B009", {"decl_biz_no": "HGW-D-REFUSED"}),
        ("B012", {"biz_no": "HGW-P-SECOND"}),
    ],
)
def test_p001_refusals_store_and_mark_nothing(
    client: httpx.Client, bureau: XmlGbkBureau, token: str, code: str, options: dict[str, str]
) -> None:
    declare_the_month(client, token)
    refused = call(client, "D001", declaration(line(1, ZHANG_SAN, "张三", types=("110",)), biz_no="HGW-D-REFUSED"), token)
    assert refused.text("DeclStatus") == "3"
    if code == "B012":
        assert call(client, "P001", payment(), token).code == "0000"
    reply = call(client, "P001", payment(**options), token)
    assert (reply.status, reply.code) == (200, code)
    assert reply.head("ReturnMsg") and len(reply.body) == 0
    biz_no = options.get("biz_no", "HGW-P-0001")
    if code != "B012":
        assert call(client, "P002", f"<BizNo>{biz_no}</BizNo>", token).code == "B404"
        assert months_of(client, token, LI_MING) == {}
        assert bureau.contribution_payments() == []
    else:
        assert call(client, "P002", f"<BizNo>{biz_no}</BizNo>", token).code == "B404"
        assert [p.biz_no for p in bureau.contribution_payments()] == ["HGW-P-0001"]


@pytest.mark.parametrize(
    "body",
    [
        payment(amount="3900"),
        payment(amount="3,900.00"),
        payment(pay_date="20261120"),
        payment(period="2026-11"),
        payment(decl_biz_no="short"),
        payment(bank_serial_no="x" * 65),
        payment().replace("<BankSerialNo>E2E-20261120-000001</BankSerialNo>", ""),
    ],
)
def test_malformed_p001_is_s400(client: httpx.Client, bureau: XmlGbkBureau, token: str, body: str) -> None:
    declare_the_month(client, token)
    reply = call(client, "P001", body, token)
    assert (reply.status, reply.code) == (400, "S400")
    assert bureau.contribution_payments() == []


def test_p001_needs_a_session_and_faults_by_trans_code(client: httpx.Client, bureau: XmlGbkBureau, token: str) -> None:
    declare_the_month(client, token)
    assert call(client, "P001", payment()).code == "AUTH01"
    bureau.faults.add(parse_fault("P001:drop_after:times=1"))
    with pytest.raises(httpx.TransportError):
        post(client, document("P001", payment(), token=token).encode("gbk"))
    assert call(client, "P002", "<BizNo>HGW-P-0001</BizNo>", token).code == "0000"  # applied before the drop
    assert bureau.count(operation="P001") == 2


# A clerk corrects a person's contribution status


def test_zhang_sans_late_months_corrected_to_paid(client: httpx.Client, bureau: XmlGbkBureau, token: str) -> None:
    for period in ("2024-08", "2024-09"):
        r = client.post("/__mock__/contributions", json={"id_number": ZHANG_SAN, "period": period, "status": "paid"})
        assert r.status_code == 200
        assert r.json()["id_number"] == "4201**********0177" and ZHANG_SAN not in r.text
        assert [(m["InsType"], m["PayStatus"], m["PaidDate"]) for m in r.json()["months"]] == [
            ("110", "1", "2024-10-28"), ("310", "1", "2024-10-28"),
        ]  # fmt: skip
    held = call(client, "Q002", months_query("202408", "202409"), token).items("Months/Month")
    assert [(m["Period"], m["PayStatus"], m["PaidDate"]) for m in held] == [
        ("202408", "1", "2024-10-28"), ("202408", "1", "2024-10-28"),
        ("202409", "1", "2024-10-28"), ("202409", "1", "2024-10-28"),
    ]  # fmt: skip


def test_correcting_one_type_to_unpaid_then_late(client: httpx.Client, bureau: XmlGbkBureau, token: str) -> None:
    assert bureau.set_contribution_status(ZHANG_SAN, "202410", "unpaid", "medical") == [
        {"Period": "202410", "InsType": "310", "PayStatus": "3", "EmployerAmount": "720.00",
         "PersonalAmount": "180.00", "PaidDate": ""},
    ]  # fmt: skip
    bureau.set_contribution_status(ZHANG_SAN, "202410", "late", "310")  # dated today on the bureau's clock
    held = {m["InsType"]: m for m in call(client, "Q002", months_query("202410", "202410"), token).items("Months/Month")}
    assert (held["110"]["PayStatus"], held["110"]["PaidDate"]) == ("1", "2024-11-15")
    assert (held["310"]["PayStatus"], held["310"]["PaidDate"]) == ("2", "2026-11-21")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"id_number": LI_MING, "period": "2024-08", "status": "paid"}, 404),
        ({"id_number": ZHANG_SAN, "period": "2023-01", "status": "paid"}, 404),
        ({"id_number": ZHANG_SAN, "period": "2024-08", "status": "paid", "insurance_type": "210"}, 404),
        ({"id_number": ZHANG_SAN, "period": "2024-08", "status": "overdue"}, 400),
        ({"id_number": ZHANG_SAN, "period": "08/2024", "status": "paid"}, 400),
        ({"id_number": ZHANG_SAN, "period": "2024-08", "status": "paid", "paid_on": "28.10.2024"}, 400),
        ({"id_number": ZHANG_SAN, "status": "paid"}, 400),
    ],
)
def test_corrections_the_bureau_cannot_make(client: httpx.Client, token: str, body: dict[str, str], status: int) -> None:
    r = client.post("/__mock__/contributions", json=body)
    assert (r.status_code, "error" in r.json()) == (status, True)
    held = call(client, "Q002", months_query("202408", "202408"), token).items("Months/Month")
    assert {m["PayStatus"] for m in held} == {"2"}
