"""The sm4-async bureau adapter against docs/dialects/sm4-async.md, with respx.

The bureau's side is written here from the protocol document, with its own crypto
helpers (``cryptography`` primitives, not the adapter's codec): each request is
parsed as a form, its ``sign`` recomputed and its ``data`` decrypted; each answer is
encrypted with a fresh IV and signed over ``code=…&data=…&message=…``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import hashes, hmac, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from adapters import (
    AmbiguousOutcome,
    BureauAdapter,
    BusinessRejection,
    CallContext,
    Capability,
    ConfigurationError,
    ContributionHistory,
    ContributionMonth,
    Employer,
    EnrolmentReceipt,
    EnrolmentSubmission,
    ParticipationRecord,
    Person,
    UpstreamAuthenticationError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamTimeout,
)
from adapters.http import UpstreamCall
from adapters.models import (
    CarriedInsurance,
    ContributionPaymentNotice,
    ContributionPaymentReceipt,
    DeclarationLine,
    DeclarationLineResult,
    DeclarationReceipt,
    DeclarationSubmission,
    TransferInReceipt,
    TransferInSubmission,
    TransferOutProgress,
    TransferOutSubmission,
)
from adapters.protocols import ContributionPayments, Declarations, TransfersIn, TransfersOut
from adapters.social_security.sm4_async import (
    CONTRIBUTION_PATH,
    DECLARATION_PATH,
    PAYMENT_PATH,
    PERSON_QUERY_PATH,
    SUBMIT_PATH,
    TASK_RESULT_PATH,
    TRANSFER_IN_PATH,
    TRANSFER_OUT_PATH,
    TRANSFER_QUERY_PATH,
    Sm4AsyncAuth,
    Sm4AsyncBureauAdapter,
    Sm4Codec,
    format_money,
    parse_date,
    parse_money,
    parse_period,
    to_wire_period,
)

from .._support import FakeClock, SleepRecorder, fast_policy
from ..conftest import bureau_config

REGION = "430100"
APPID = "hgw-changsha"
SM4_KEY_HEX = "0123456789abcdeffedcba9876543210"
SM4_KEY = bytes.fromhex(SM4_KEY_HEX)
MAC_KEY = "mac-密钥-430100"  # any string, used as its UTF-8 bytes
LIU_YANG = Person(id_number="430104199306150282", name="刘洋")
LI_MING = Person(id_number="430102199511080356", name="李明")
USCC = "91430100MA4L16JQ9D"
UNIT_NAME = "长沙示例制造有限公司"
BIZ_NO = "HGW-0123456789ABCDEF"
TICKET = "T430100-000001"
NONCE = re.compile(r"[0-9a-zA-Z]{16,64}")
FIELDS = {"appid", "timestamp", "nonce", "data", "sign"}

MakeAdapter = Callable[..., Sm4AsyncBureauAdapter]


def config(**overrides: Any) -> Any:
    settings: dict[str, Any] = {
        "name": "cs-bureau",
        "regions": (REGION,),
        "credentials": {"appid": APPID, "sm4_key": SM4_KEY_HEX, "mac_key": MAC_KEY},
        "options": {"poll_interval": 0.001, "poll_timeout": 1.0},
    }
    settings.update(overrides)
    return bureau_config(**settings)


def submission(**overrides: Any) -> EnrolmentSubmission:
    values: dict[str, Any] = {
        "reference": BIZ_NO,
        "region": REGION,
        "person": LI_MING,
        "employer": Employer(uscc=USCC, name=UNIT_NAME),
        "hire_date": dt.date(2026, 11, 2),
        "insurance_types": ("pension", "medical"),
        "contribution_base": Decimal("8000.00"),
    }
    values.update(overrides)
    return EnrolmentSubmission(**values)


# -- the bureau's side, from the document ------------------------------------------------


def sm4_cbc(key: bytes, iv: bytes, data: bytes, *, encrypt: bool) -> bytes:
    cipher = Cipher(algorithms.SM4(key), modes.CBC(iv))
    ctx = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx.update(data) + ctx.finalize()


def pkcs7(data: bytes) -> bytes:
    n = 16 - len(data) % 16
    return data + bytes([n]) * n


def bureau_encrypt(plaintext: bytes, *, iv: bytes | None = None, key: bytes = SM4_KEY, pad: bool = True) -> str:
    iv = os.urandom(16) if iv is None else iv
    body = pkcs7(plaintext) if pad else plaintext
    return base64.b64encode(iv + sm4_cbc(key, iv, body, encrypt=True)).decode()


def bureau_decrypt(data: str, *, key: bytes = SM4_KEY) -> bytes:
    raw = base64.b64decode(data, validate=True)
    assert len(raw) > 16 and (len(raw) - 16) % 16 == 0
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(sm4_cbc(key, raw[:16], raw[16:], encrypt=False)) + unpadder.finalize()


def hmac_sm3(fields: dict[str, str], mac_key: str = MAC_KEY) -> str:
    message = "&".join(f"{key}={fields[key]}" for key in sorted(fields))
    mac = hmac.HMAC(mac_key.encode("utf-8"), hashes.SM3())
    mac.update(message.encode("utf-8"))
    return mac.finalize().hex()


_STATUS_OF = {"0": 200, "40001": 401, "40002": 401, "40003": 400, "40004": 401, "40005": 400, "42900": 429, "50000": 500}


def answer(
    payload: Any = None,
    *,
    code: str = "0",
    message: str = "成功",
    status: int | None = None,
    headers: dict[str, str] | None = None,
    data: str | None = None,
    sign: str | None = None,
    mac_key: str = MAC_KEY,
) -> httpx.Response:
    """One answer of the bureau: ``payload`` encrypted into ``data`` and signed."""
    if data is None:
        data = "" if payload is None else bureau_encrypt(json.dumps(payload, ensure_ascii=False).encode("utf-8"))
    fields = {"code": code, "data": data, "message": message}
    body = {**fields, "sign": hmac_sm3(fields, mac_key) if sign is None else sign}
    return httpx.Response(
        status or _STATUS_OF.get(code, 200),
        content=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def refuse(code: str, message: str = "拒绝", **kwargs: Any) -> httpx.Response:
    return answer(code=code, message=message, **kwargs)


@dataclass
class Received:
    request: httpx.Request
    form: dict[str, str]
    plaintext: bytes

    @property
    def payload(self) -> Any:
        return json.loads(self.plaintext.decode("utf-8"))

    @property
    def iv(self) -> bytes:
        return base64.b64decode(self.form["data"])[:16]


def received(request: httpx.Request) -> Received:
    """Check a request as the bureau would, and open it."""
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    pairs = parse_qsl(request.content.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    form = dict(pairs)
    assert len(pairs) == len(form) and set(form) == FIELDS  # exactly these fields, once each
    assert form["appid"] == APPID
    assert form["timestamp"].isdigit()
    assert abs(int(form["timestamp"]) - time.time() * 1000) < 60_000  # milliseconds, now
    assert NONCE.fullmatch(form["nonce"])
    assert re.fullmatch(r"[0-9a-f]{64}", form["sign"])  # lower-case hex
    assert form["sign"] == hmac_sm3({k: form[k] for k in ("appid", "data", "nonce", "timestamp")})
    return Received(request, form, bureau_decrypt(form["data"]))


def record(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "xzlx": "110",
        "cbzt": "3",
        "dwbh": USCC,
        "dwmc": UNIT_NAME,
        "cbrq": "20180701",
        "zzrq": "20230630",
        "jfys": 60,
        "jfjs": "6000.00",
        "zhjfny": "202306",
    }
    raw.update(overrides)
    return raw


def month(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "ny": "202408", "xzlx": "110", "jfzt": "1", "dwjf": "960.00", "grjf": "480.00", "dzrq": "20240915",
    }
    raw.update(overrides)
    return raw


def ticket_answer(ticket: str = TICKET, biz_no: str = BIZ_NO) -> httpx.Response:
    return answer({"ticket": ticket, "bizNo": biz_no})


def task(
    state: str,
    *,
    ticket: str = TICKET,
    biz_no: str = BIZ_NO,
    accept_no: str = "430100-R-000001",
    accept_date: str = "20261121",
    fail_code: str = "",
    fail_msg: str = "",
) -> httpx.Response:
    success = state == "SUCCESS"
    return answer(
        {
            "ticket": ticket,
            "bizNo": biz_no,
            "state": state,
            "acceptNo": accept_no if success else "",
            "acceptDate": accept_date if success else "",
            "failCode": fail_code,
            "failMsg": fail_msg,
        }
    )


def not_found() -> httpx.Response:
    return refuse("61404", "无此业务")


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
async def make_adapter(transport: Callable[[], httpx.MockTransport]) -> AsyncIterator[MakeAdapter]:
    """sm4-async adapters with a fast policy and tiny poll interval; closed afterwards."""
    made: list[Sm4AsyncBureauAdapter] = []

    def make(*, retry_sleep: SleepRecorder | None = None, **kwargs: Any) -> Sm4AsyncBureauAdapter:
        # the declared policy's idea of "not applied", at test speed
        kwargs.setdefault("policy", fast_policy(not_applied_statuses=Sm4AsyncBureauAdapter.policy.retry.not_applied_statuses))
        kwargs.setdefault("transport", transport())
        adapter = Sm4AsyncBureauAdapter(kwargs.pop("config", None) or config(), **kwargs)
        if retry_sleep is not None:
            # the client's retry waits; the adapter's own ``sleep`` is for polling
            adapter.client._sleep = retry_sleep
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def adapter(make_adapter: MakeAdapter) -> Sm4AsyncBureauAdapter:
    return make_adapter()


# -- declaration and configuration ---------------------------------------------------------


def test_declares_what_it_is() -> None:
    assert Sm4AsyncBureauAdapter.kind == "social_security"
    assert Sm4AsyncBureauAdapter.dialect == "sm4-async"
    assert Sm4AsyncBureauAdapter.version
    assert Sm4AsyncBureauAdapter.capabilities == {
        Capability.PARTICIPATION_SEARCH,
        Capability.ENROLMENT,
        Capability.ENROLMENT_LOOKUP,
        Capability.CONTRIBUTION_HISTORY,
        Capability.DECLARATION,
        Capability.TRANSFER_OUT,
        Capability.TRANSFER_IN,
        Capability.CONTRIBUTION_PAYMENT,
    }
    assert Sm4AsyncBureauAdapter.required_credentials == ("appid", "sm4_key", "mac_key")
    retry = Sm4AsyncBureauAdapter.policy.retry
    assert 429 in retry.not_applied_statuses
    assert 500 not in retry.not_applied_statuses  # 50000 after a submit is ambiguous
    assert retry.respect_retry_after


async def test_satisfies_the_bureau_protocols(adapter: Sm4AsyncBureauAdapter) -> None:
    assert isinstance(adapter, BureauAdapter)
    assert isinstance(adapter, ContributionHistory)
    assert isinstance(adapter, Declarations)
    assert isinstance(adapter, TransfersOut)
    assert isinstance(adapter, TransfersIn)
    assert isinstance(adapter, ContributionPayments)
    assert adapter.name == "cs-bureau"
    assert (adapter.poll_interval, adapter.poll_timeout) == (0.001, 1.0)


async def test_poll_options_default() -> None:
    adapter = Sm4AsyncBureauAdapter.from_config(config(options={}))
    try:
        assert (adapter.poll_interval, adapter.poll_timeout) == (0.2, 5.0)
        assert adapter.client.policy == Sm4AsyncBureauAdapter.policy
    finally:
        await adapter.aclose()


@pytest.mark.parametrize("regions", [(), ("430100", "330100")])
def test_serves_exactly_one_region(regions: tuple[str, ...]) -> None:
    with pytest.raises(ConfigurationError, match="exactly one region"):
        Sm4AsyncBureauAdapter(config(regions=regions))


@pytest.mark.parametrize(
    "credentials",
    [
        {},
        {"appid": APPID, "sm4_key": SM4_KEY_HEX},
        {"appid": APPID, "mac_key": MAC_KEY},
        {"sm4_key": SM4_KEY_HEX, "mac_key": MAC_KEY},
        {"appid": APPID, "sm4_key": "", "mac_key": MAC_KEY},
    ],
)
def test_missing_credentials_are_refused(credentials: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="missing credentials"):
        Sm4AsyncBureauAdapter(config(credentials=credentials))


@pytest.mark.parametrize(
    "sm4_key",
    [
        SM4_KEY_HEX[:-1],  # 31
        SM4_KEY_HEX + "0",  # 33
        SM4_KEY_HEX[:-2] + "zz",  # not hex
        "0123456789abcdef",  # a 64-bit key
        " " + SM4_KEY_HEX[1:],
        "0x" + SM4_KEY_HEX[2:],
        "０" * 32,  # full-width digits are not hex
    ],
)
def test_an_sm4_key_that_is_not_32_hex_characters_is_refused(sm4_key: str) -> None:
    with pytest.raises(ConfigurationError, match="sm4_key must be 32 hexadecimal") as info:
        Sm4AsyncBureauAdapter(config(credentials={"appid": APPID, "sm4_key": sm4_key, "mac_key": MAC_KEY}))
    assert sm4_key not in str(info.value)  # never echo key material


async def test_an_upper_case_sm4_key_is_the_same_key(make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(config=config(credentials={"appid": APPID, "sm4_key": SM4_KEY_HEX.upper(), "mac_key": MAC_KEY}))
    assert bureau_decrypt(adapter.codec.encrypt(b"{}")) == b"{}"


@pytest.mark.parametrize(
    "options",
    [
        {"poll_interval": 0},
        {"poll_interval": -1},
        {"poll_timeout": -0.1},
        {"poll_timeout": float("nan")},
        {"poll_timeout": float("inf")},
        {"poll_interval": "fast"},
        {"poll_timeout": True},
    ],
)
def test_bad_poll_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="poll_"):
        Sm4AsyncBureauAdapter(config(options=options))


def test_policy_overrides_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="unknown"):
        Sm4AsyncBureauAdapter(config(options={"policy": {"retry": {"attempts": 2}}}))


# -- value formats ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("6000.00", Decimal("6000.00")), ("0.01", Decimal("0.01")), ("3604.5", Decimal("3604.50")), ("", None), (None, None)],
)
def test_parse_money(raw: str | None, expected: Decimal | None) -> None:
    parsed = parse_money(raw)
    assert parsed == expected
    if expected is not None:
        assert str(parsed) == str(expected)


@pytest.mark.parametrize("raw", ["6,000.00", "1e3", "NaN", "6000.001", "￥6000"])
def test_parse_money_refuses_other_formats(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_money(raw)


@pytest.mark.parametrize(("amount", "wire"), [(Decimal(8000), "8000.00"), (Decimal("1E+3"), "1000.00"), (Decimal("0.1"), "0.10")])
def test_format_money(amount: Decimal, wire: str) -> None:
    assert format_money(amount) == wire


@pytest.mark.parametrize(("raw", "expected"), [("20180701", dt.date(2018, 7, 1)), ("", None), (None, None)])
def test_parse_date(raw: str | None, expected: dt.date | None) -> None:
    assert parse_date(raw) == expected


@pytest.mark.parametrize("raw", ["2018-07-01", "20180231", "2018071", "abcdefgh"])
def test_parse_date_refuses_other_formats(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_date(raw)


@pytest.mark.parametrize(("raw", "expected"), [("202306", "2023-06"), ("", None), (None, None)])
def test_parse_period(raw: str | None, expected: str | None) -> None:
    assert parse_period(raw) == expected


@pytest.mark.parametrize("raw", ["2023-06", "202313", "20236", "2023ab"])
def test_parse_period_refuses_other_formats(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_period(raw)


@pytest.mark.parametrize("raw", ["202408", "2024-13", "24-08", "2024-8"])
def test_to_wire_period_wants_yyyy_mm(raw: str) -> None:
    with pytest.raises(ValueError):
        to_wire_period(raw)


# -- crypto ------------------------------------------------------------------------------------


def test_the_primitives_are_sm4_and_sm3() -> None:
    # GB/T 32907-2016 example 1 and GB/T 32905-2016 example 1: the library really is SM4/SM3.
    assert sm4_cbc(SM4_KEY, bytes(16), SM4_KEY, encrypt=True).hex() == "681edf34d206965e86b3e94f536e4246"
    digest = hashes.Hash(hashes.SM3())
    digest.update(b"abc")
    assert digest.finalize().hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_codec_encrypts_as_the_document_says() -> None:
    codec = Sm4Codec.from_credentials(SM4_KEY_HEX, MAC_KEY)
    iv = bytes(range(16))
    plaintext = '{"name":"刘洋"}'.encode()
    assert codec.encrypt(plaintext, iv=iv) == bureau_encrypt(plaintext, iv=iv)
    assert codec.decrypt(bureau_encrypt(plaintext)) == plaintext
    full_block = b"0123456789abcdef"  # a whole block of padding is added
    assert len(base64.b64decode(codec.encrypt(full_block))) == 16 + 32


def test_codec_signs_as_the_document_says() -> None:
    codec = Sm4Codec.from_credentials(SM4_KEY_HEX, MAC_KEY)
    fields = {"message": "成功", "code": "0", "data": "ab+/=="}
    assert codec.sign(fields) == hmac_sm3(fields)
    assert codec.verify(fields, hmac_sm3(fields))
    assert not codec.verify(fields, hmac_sm3(fields, "another-key"))
    assert not codec.verify(fields, "签名")  # non-hex garbage is just a mismatch


def test_auth_builds_the_signed_form_with_a_millisecond_timestamp() -> None:
    codec = Sm4Codec.from_credentials(SM4_KEY_HEX, MAC_KEY)
    auth = Sm4AsyncAuth(APPID, codec, clock=lambda: 1_795_000_000.1234)
    plaintext = '{"idNo":"430104199306150282","name":"刘洋"}'.encode()
    request = httpx.Request(
        "POST", "https://bureau.test/api/person/query", content=plaintext,
        headers={"Content-Type": "application/json", "X-Request-ID": "req-1"},
    )
    signed = next(auth.auth_flow(request))
    form = dict(parse_qsl(signed.content.decode("ascii"), strict_parsing=True))
    assert set(form) == FIELDS
    assert form["timestamp"] == "1795000000123"
    assert form["sign"] == hmac_sm3({k: form[k] for k in ("appid", "data", "nonce", "timestamp")})
    assert bureau_decrypt(form["data"]) == plaintext
    assert signed.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert signed.headers["Content-Length"] == str(len(signed.content))
    assert signed.headers["X-Request-ID"] == "req-1"
    assert signed.url == request.url


def test_auth_uses_a_fresh_nonce_and_iv_every_time() -> None:
    auth = Sm4AsyncAuth(APPID, Sm4Codec.from_credentials(SM4_KEY_HEX, MAC_KEY))
    forms = [auth.form(b"{}") for _ in range(50)]
    assert len({f["nonce"] for f in forms}) == 50
    assert len({base64.b64decode(f["data"])[:16] for f in forms}) == 50
    assert all(NONCE.fullmatch(f["nonce"]) for f in forms)


# -- requests on the wire ----------------------------------------------------------------------


async def test_search_request_is_encrypted_and_signed(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(transport=None)  # the real httpx transport, patched by respx
    route = bureau.post(PERSON_QUERY_PATH).mock(return_value=answer({"records": []}))
    await adapter.search_participation(LIU_YANG, context=CallContext(request_id="req-cs-1"))
    got = received(route.calls.last.request)
    assert got.payload == {"idNo": LIU_YANG.id_number, "name": "刘洋"}
    assert "刘洋".encode() in got.plaintext  # UTF-8, not \u escapes
    assert got.request.headers["X-Request-ID"] == "req-cs-1"


async def test_submit_request_carries_the_protocol_payload(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    submit = bureau.post(SUBMIT_PATH).mock(return_value=ticket_answer())
    bureau.post(TASK_RESULT_PATH).mock(return_value=task("SUCCESS"))
    await adapter.submit_enrolment(submission(), context=CallContext())
    got = received(submit.calls.last.request)
    assert got.payload == {
        "bizNo": BIZ_NO,
        "idNo": LI_MING.id_number,
        "name": "李明",
        "dwbh": USCC,
        "dwmc": UNIT_NAME,
        "cbrq": "20261102",
        "xzlx": ["110", "310"],
        "jfjs": "8000.00",
    }
    assert UNIT_NAME.encode() in got.plaintext


async def test_every_request_has_its_own_iv_and_nonce(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    route = bureau.post(PERSON_QUERY_PATH).mock(return_value=answer({"records": []}))
    for _ in range(3):
        await adapter.search_participation(LIU_YANG, context=CallContext())
    got = [received(call.request) for call in route.calls]
    assert len({g.form["nonce"] for g in got}) == 3
    assert len({g.iv for g in got}) == 3
    assert len({g.form["data"] for g in got}) == 3
    assert len({g.plaintext for g in got}) == 1


async def test_every_retry_is_encrypted_and_signed_afresh(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    route = bureau.post(PERSON_QUERY_PATH).mock(
        side_effect=[refuse("50000", "系统异常"), httpx.ReadTimeout("slow"), answer({"records": []})]
    )
    await adapter.search_participation(LIU_YANG, context=CallContext())
    assert route.call_count == 3
    got = [received(call.request) for call in route.calls]  # each one valid on its own
    assert len({g.form["nonce"] for g in got}) == 3
    assert len({g.iv for g in got}) == 3
    assert len({g.form["sign"] for g in got}) == 3
    assert len({g.plaintext for g in got}) == 1  # the same question each time


async def test_a_resubmission_is_encrypted_afresh_with_the_same_payload(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter
) -> None:
    submit = bureau.post(SUBMIT_PATH).mock(side_effect=[httpx.ReadTimeout("lost"), ticket_answer()])
    bureau.post(TASK_RESULT_PATH).mock(side_effect=[not_found(), task("SUCCESS")])
    await adapter.submit_enrolment(submission(), context=CallContext())
    first, second = (received(call.request) for call in submit.calls)
    assert first.payload == second.payload
    assert first.form["nonce"] != second.form["nonce"]
    assert first.iv != second.iv


async def test_x_request_id_travels_on_every_call(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    query = bureau.post(PERSON_QUERY_PATH).mock(side_effect=[httpx.Response(500), answer({"records": []})])
    history = bureau.post(CONTRIBUTION_PATH).mock(return_value=answer({"months": []}))
    submit = bureau.post(SUBMIT_PATH).mock(side_effect=[httpx.ReadTimeout("lost"), ticket_answer()])
    results = bureau.post(TASK_RESULT_PATH).mock(side_effect=[not_found(), task("PROCESSING"), task("SUCCESS"), task("SUCCESS")])
    context = CallContext(request_id="req-0a1b2c")
    await adapter.search_participation(LIU_YANG, context=context)
    await adapter.contribution_history(LIU_YANG, "2024-08", "2024-10", context=context)
    await adapter.submit_enrolment(submission(), context=context)
    await adapter.find_enrolment(BIZ_NO, context=context)
    requests = [c.request for route in (query, history, submit, results) for c in route.calls]
    assert len(requests) == 2 + 1 + 2 + 4
    assert {r.headers.get("X-Request-ID") for r in requests} == {"req-0a1b2c"}


# -- answers: sign and data ---------------------------------------------------------------------


async def test_an_answer_with_a_wrong_sign_is_refused(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    route = bureau.post(PERSON_QUERY_PATH).mock(return_value=answer({"records": [record()]}, mac_key="someone-else"))
    with pytest.raises(UpstreamProtocolError, match="sign does not match") as info:
        await adapter.search_participation(LIU_YANG, context=CallContext())
    assert info.value.upstream == "cs-bureau"
    assert info.value.response is not None
    assert route.call_count == 1  # not retried


@pytest.mark.parametrize("tamper", ["message", "code", "data"])
async def test_a_tampered_answer_is_refused(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, tamper: str) -> None:
    data = bureau_encrypt(json.dumps({"records": []}).encode())
    fields = {"code": "0", "data": data, "message": "成功"}
    body = {**fields, "sign": hmac_sm3(fields)}
    body[tamper] = {"message": "成 功", "code": "00", "data": bureau_encrypt(b'{"records":[]}')}[tamper]
    bureau.post(PERSON_QUERY_PATH).respond(200, json=body)
    with pytest.raises(UpstreamProtocolError, match="sign"):
        await adapter.search_participation(LIU_YANG, context=CallContext())


async def test_a_business_refusal_with_a_wrong_sign_is_refused_too(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    bureau.post(PERSON_QUERY_PATH).mock(return_value=refuse("61005", "姓名不符", mac_key="someone-else"))
    with pytest.raises(UpstreamProtocolError, match="sign does not match"):
        await adapter.search_participation(LIU_YANG, context=CallContext())


@pytest.mark.parametrize("code", ["40001", "40004", "40005"])
async def test_refusals_given_before_the_bureau_can_sign_for_us_are_still_reported(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, code: str
) -> None:
    # unknown appid, a missing field, or a mac_key the bureau does not share: it cannot
    # sign with our key, and the call fails either way: report what it said.
    bureau.post(PERSON_QUERY_PATH).mock(return_value=refuse(code, "拒绝", mac_key="the-bureau's-own"))
    expected = BusinessRejection if code == "40005" else UpstreamAuthenticationError
    with pytest.raises(expected, match="could not be verified") as info:
        await adapter.search_participation(LIU_YANG, context=CallContext())
    assert info.value.upstream_code == code


def bad_padding() -> str:
    # One block whose last byte is 0x00: no valid PKCS#7 padding.
    return bureau_encrypt(b'{"records":[]}\x00\x00', pad=False)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        pytest.param(bad_padding(), "padding", id="bad-padding"),
        pytest.param(bureau_encrypt(b'{"records":[]}', key=bytes(16)), "padding|JSON|UTF-8", id="wrong-key"),
        pytest.param("not base64!", "base64", id="not-base64"),
        pytest.param(base64.b64encode(os.urandom(16)).decode(), "multiple of 16", id="iv-only"),
        pytest.param(base64.b64encode(os.urandom(16 + 20)).decode(), "multiple of 16", id="ragged-length"),
        pytest.param(base64.b64encode(os.urandom(40)).decode().rstrip("="), "base64", id="unpadded-base64"),
        pytest.param(bureau_encrypt(b"\xff\xfe{}"), "UTF-8", id="not-utf8"),
        pytest.param(bureau_encrypt("记录".encode()), "JSON", id="not-json"),
        pytest.param(bureau_encrypt(b'["records"]'), "JSON object", id="not-an-object"),
    ],
)
async def test_undecryptable_data_is_a_protocol_error(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, data: str, why: str
) -> None:
    route = bureau.post(PERSON_QUERY_PATH).mock(return_value=answer(data=data))
    with pytest.raises(UpstreamProtocolError, match="could not be decrypted") as info:
        await adapter.search_participation(LIU_YANG, context=CallContext())
    assert re.search(why, str(info.value))
    assert route.call_count == 1


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>502 Bad Gateway</html>"),
        httpx.Response(200, json=["0"]),
        httpx.Response(200, json={"code": "0", "message": "成功", "data": ""}),  # no sign
        httpx.Response(200, json={"code": 0, "message": "成功", "data": "", "sign": ""}),  # code not a string
        httpx.Response(401, text=""),
    ],
)
async def test_an_answer_without_the_envelope_is_a_protocol_error(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, response: httpx.Response
) -> None:
    bureau.post(PERSON_QUERY_PATH).mock(return_value=response)
    with pytest.raises(UpstreamProtocolError):
        await adapter.search_participation(LIU_YANG, context=CallContext())


async def test_a_success_without_data_is_a_protocol_error(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    bureau.post(PERSON_QUERY_PATH).mock(return_value=answer(None))
    with pytest.raises(UpstreamProtocolError, match="without data"):
        await adapter.search_participation(LIU_YANG, context=CallContext())


async def test_a_success_code_with_an_error_status_is_a_protocol_error(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    bureau.post(PERSON_QUERY_PATH).mock(return_value=answer({"records": []}, status=400))
    with pytest.raises(UpstreamProtocolError, match="HTTP 400"):
        await adapter.search_participation(LIU_YANG, context=CallContext())


# -- code mapping ------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["40001", "40002", "40004"])
async def test_credential_refusals_are_authentication_errors(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, code: str
) -> None:
    route = bureau.post(PERSON_QUERY_PATH).mock(return_value=refuse(code, "签名错误"))
    with pytest.raises(UpstreamAuthenticationError) as info:
        await adapter.search_participation(LIU_YANG, context=CallContext())
    assert (info.value.upstream_code, info.value.upstream_message) == (code, "签名错误")
    assert info.value.status_code == 401
    assert "could not be verified" not in str(info.value)
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("code", "field"), [("40003", None), ("40005", None), ("61003", "id_number"), ("61005", "name"), ("69999", None)]
)
async def test_business_refusals_on_search(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, code: str, field: str | None
) -> None:
    route = bureau.post(PERSON_QUERY_PATH).mock(return_value=refuse(code, "拒绝了"))
    with pytest.raises(BusinessRejection) as info:
        await adapter.search_participation(LIU_YANG, context=CallContext())
    assert (info.value.upstream_code, info.value.upstream_message, info.value.field) == (code, "拒绝了", field)
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("code", "error", "field"),
    [
        ("40001", UpstreamAuthenticationError, None),
        ("40003", BusinessRejection, None),
        ("40005", BusinessRejection, None),
        ("61003", BusinessRejection, "id_number"),
    ],
)
async def test_refusals_on_submit_are_not_retried_or_looked_up(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, code: str, error: type[UpstreamError], field: str | None
) -> None:
    submit = bureau.post(SUBMIT_PATH).mock(return_value=refuse(code))
    results = bureau.post(TASK_RESULT_PATH).mock(return_value=not_found())
    with pytest.raises(error) as info:
        await adapter.submit_enrolment(submission(), context=CallContext())
    assert info.value.upstream_code == code
    assert getattr(info.value, "field", None) == field
    assert submit.call_count == 1
    assert results.call_count == 0


async def test_429_with_retry_after_is_retried(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    sleeps = SleepRecorder()
    adapter = make_adapter(retry_sleep=sleeps)
    route = bureau.post(PERSON_QUERY_PATH).mock(
        side_effect=[refuse("42900", "请求过于频繁", headers={"Retry-After": "2"}), answer({"records": [record()]})]
    )
    assert len(await adapter.search_participation(LIU_YANG, context=CallContext())) == 1
    assert route.call_count == 2
    assert sleeps.waits[0] >= 2.0


async def test_429_that_never_ends_is_rate_limited(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(retry_sleep=SleepRecorder())
    route = bureau.post(PERSON_QUERY_PATH).mock(return_value=refuse("42900", headers={"Retry-After": "1"}))
    with pytest.raises(UpstreamRateLimited) as info:
        await adapter.search_participation(LIU_YANG, context=CallContext())
    assert info.value.retry_after == 1.0
    assert route.call_count == 3


async def test_42900_with_another_status_is_still_retried(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    sleeps = SleepRecorder()
    adapter = make_adapter(retry_sleep=sleeps)
    route = bureau.post(PERSON_QUERY_PATH).mock(
        side_effect=[refuse("42900", status=200, headers={"Retry-After": "3"}), answer({"records": []})]
    )
    await adapter.search_participation(LIU_YANG, context=CallContext())
    assert route.call_count == 2
    assert sleeps.waits[0] >= 3.0


@pytest.mark.parametrize(
    "failure", [refuse("50000", "系统异常"), refuse("50000", status=200), httpx.ReadTimeout("slow"), httpx.ConnectError("refused")]
)
async def test_a_query_retries_transient_failures(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, failure: Any) -> None:
    route = bureau.post(PERSON_QUERY_PATH).mock(side_effect=[failure, answer({"records": []})])
    assert await adapter.search_participation(LIU_YANG, context=CallContext()) == []
    assert route.call_count == 2


@pytest.mark.parametrize(
    ("failure", "error"),
    [(refuse("50000"), UpstreamServerError), (httpx.ReadTimeout("slow"), UpstreamTimeout), (httpx.ConnectError("x"), UpstreamConnectError)],
)
async def test_a_query_gives_up_after_max_attempts(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, failure: Any, error: type[Exception]
) -> None:
    route = bureau.post(PERSON_QUERY_PATH).mock(side_effect=failure)
    with pytest.raises(error):
        await adapter.search_participation(LIU_YANG, context=CallContext())
    assert route.call_count == 3


# -- participation -------------------------------------------------------------------------------


async def test_search_maps_a_record_to_the_canonical_model(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    bureau.post(PERSON_QUERY_PATH).mock(return_value=answer({"records": [record()]}))
    records = await adapter.search_participation(LIU_YANG, context=CallContext())
    assert records == [
        ParticipationRecord(
            region=REGION,
            insurance_type="pension",
            status="terminated",
            employer=Employer(uscc=USCC, name=UNIT_NAME),
            start_date=dt.date(2018, 7, 1),
            end_date=dt.date(2023, 6, 30),
            paid_months=60,
            contribution_base=Decimal("6000.00"),
            last_paid_period="2023-06",
        )
    ]
    assert str(records[0].contribution_base) == "6000.00"


@pytest.mark.parametrize(
    ("code", "insurance_type"),
    [("110", "pension"), ("210", "unemployment"), ("310", "medical"), ("410", "work_injury"), ("510", "maternity")],
)
async def test_insurance_type_codes(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, code: str, insurance_type: str) -> None:
    bureau.post(PERSON_QUERY_PATH).mock(return_value=answer({"records": [record(xzlx=code)]}))
    [found] = await adapter.search_participation(LIU_YANG, context=CallContext())
    assert found.insurance_type == insurance_type


@pytest.mark.parametrize(("cbzt", "status"), [("1", "active"), ("2", "suspended"), ("3", "terminated")])
async def test_record_status_codes(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, cbzt: str, status: str) -> None:
    bureau.post(PERSON_QUERY_PATH).mock(return_value=answer({"records": [record(cbzt=cbzt)]}))
    [found] = await adapter.search_participation(LIU_YANG, context=CallContext())
    assert found.status == status


async def test_unknown_insurance_types_are_skipped(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    bureau.post(PERSON_QUERY_PATH).mock(
        return_value=answer({"records": [record(xzlx="990"), record(xzlx="310", cbzt="1", zzrq="")]})
    )
    [found] = await adapter.search_participation(LIU_YANG, context=CallContext())
    assert (found.insurance_type, found.status, found.end_date) == ("medical", "active", None)


async def test_a_new_record_without_employer_payments_or_dates(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    bureau.post(PERSON_QUERY_PATH).mock(
        return_value=answer({"records": [record(cbzt="1", dwbh="", dwmc="", zzrq="", jfys=0, jfjs="", zhjfny="")]})
    )
    [found] = await adapter.search_participation(LIU_YANG, context=CallContext())
    assert (found.employer, found.end_date, found.paid_months, found.contribution_base, found.last_paid_period) == (
        None, None, 0, None, None,
    )


async def test_no_records_is_an_empty_list(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    bureau.post(PERSON_QUERY_PATH).mock(return_value=answer({"records": []}))
    assert await adapter.search_participation(LIU_YANG, context=CallContext()) == []


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"records": None},
        {"records": ["110"]},
        {"records": [record(cbzt="9")]},
        {"records": [record(cbrq="2018-07-01")]},
        {"records": [record(jfjs=6000)]},
        {"records": [record(jfjs="6,000.00")]},
        {"records": [record(jfys="sixty")]},
        {"records": [record(zhjfny="2023-06")]},
    ],
)
async def test_malformed_records_are_a_protocol_error(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, payload: dict[str, Any]
) -> None:
    bureau.post(PERSON_QUERY_PATH).mock(return_value=answer(payload))
    with pytest.raises(UpstreamProtocolError):
        await adapter.search_participation(LIU_YANG, context=CallContext())


# -- contribution history --------------------------------------------------------------------------


async def test_contribution_history_maps_months(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    route = bureau.post(CONTRIBUTION_PATH).mock(
        return_value=answer(
            {
                "months": [
                    month(),
                    month(xzlx="310", jfzt="2", dwjf="640.00", grjf="160.00", dzrq="20241105"),
                    month(ny="202409", xzlx="990"),  # a local scheme: skipped
                    month(ny="202410", jfzt="3", dwjf="", grjf="", dzrq=""),
                ]
            }
        )
    )
    months = await adapter.contribution_history(LIU_YANG, "2024-08", "2024-10", context=CallContext())
    assert received(route.calls.last.request).payload == {
        "idNo": LIU_YANG.id_number, "name": "刘洋", "startMonth": "202408", "endMonth": "202410",
    }
    assert months == [
        ContributionMonth(REGION, "2024-08", "pension", "paid", Decimal("960.00"), Decimal("480.00"), dt.date(2024, 9, 15)),
        ContributionMonth(REGION, "2024-08", "medical", "late", Decimal("640.00"), Decimal("160.00"), dt.date(2024, 11, 5)),
        ContributionMonth(REGION, "2024-10", "pension", "unpaid", None, None, None),
    ]


async def test_contribution_history_with_no_months(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    bureau.post(CONTRIBUTION_PATH).mock(return_value=answer({"months": []}))
    assert await adapter.contribution_history(LIU_YANG, "2024-01", "2024-01", context=CallContext()) == []


@pytest.mark.parametrize(
    ("start", "end", "slices"),
    [
        ("2022-01", "2024-12", [("202201", "202412")]),  # exactly 36 months: one query
        ("2020-01", "2024-12", [("202001", "202212"), ("202301", "202412")]),
        ("2019-11", "2023-01", [("201911", "202210"), ("202211", "202301")]),
        ("2014-01", "2024-12", [("201401", "201612"), ("201701", "201912"), ("202001", "202212"), ("202301", "202412")]),
    ],
)
async def test_a_long_range_is_asked_in_slices_the_bureau_accepts(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, start: str, end: str, slices: list[tuple[str, str]]
) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        payload = received(request).payload
        return answer({"months": [month(ny=payload["startMonth"]), month(ny=payload["endMonth"], xzlx="310")]})

    route = bureau.post(CONTRIBUTION_PATH).mock(side_effect=reply)
    months = await adapter.contribution_history(LIU_YANG, start, end, context=CallContext())
    asked = [(p["startMonth"], p["endMonth"]) for p in (received(c.request).payload for c in route.calls)]
    assert asked == slices
    assert [m.period.replace("-", "") for m in months] == [p for pair in slices for p in pair]


@pytest.mark.parametrize(("start", "end"), [("2024-10", "2024-08"), ("202408", "2024-10"), ("2024-08", "2024-13")])
async def test_contribution_history_refuses_bad_periods(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, start: str, end: str
) -> None:
    route = bureau.post(CONTRIBUTION_PATH).mock(return_value=answer({"months": []}))
    with pytest.raises(ValueError):
        await adapter.contribution_history(LIU_YANG, start, end, context=CallContext())
    assert route.call_count == 0


@pytest.mark.parametrize(
    "payload", [{}, {"months": [month(jfzt="4")]}, {"months": [month(ny="")]}, {"months": [month(dzrq="2024-09-15")]}]
)
async def test_malformed_months_are_a_protocol_error(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, payload: dict[str, Any]
) -> None:
    bureau.post(CONTRIBUTION_PATH).mock(return_value=answer(payload))
    with pytest.raises(UpstreamProtocolError):
        await adapter.contribution_history(LIU_YANG, "2024-08", "2024-10", context=CallContext())


async def test_contribution_refusal_names_the_field(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    bureau.post(CONTRIBUTION_PATH).mock(return_value=refuse("61005", "姓名不符"))
    with pytest.raises(BusinessRejection) as info:
        await adapter.contribution_history(LIU_YANG, "2024-08", "2024-10", context=CallContext())
    assert info.value.field == "name"


# -- enrolment: submit and poll ----------------------------------------------------------------------


async def test_submit_polls_until_success(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    submit = bureau.post(SUBMIT_PATH).mock(return_value=ticket_answer())
    results = bureau.post(TASK_RESULT_PATH).mock(
        side_effect=[task("PROCESSING"), task("PROCESSING"), task("SUCCESS", accept_no="430100-R-000042")]
    )
    receipt = await adapter.submit_enrolment(submission(), context=CallContext())
    assert receipt == EnrolmentReceipt(
        reference=BIZ_NO, bureau_reference="430100-R-000042", status="accepted", accepted_on=dt.date(2026, 11, 21)
    )
    assert submit.call_count == 1
    assert results.call_count == 3
    assert [received(c.request).payload for c in results.calls] == [{"ticket": TICKET}] * 3


async def test_polls_wait_the_poll_interval(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    clock = FakeClock()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    adapter = make_adapter(config=config(options={"poll_interval": 0.25, "poll_timeout": 5}), clock=clock, sleep=sleep)
    bureau.post(SUBMIT_PATH).mock(return_value=ticket_answer())
    bureau.post(TASK_RESULT_PATH).mock(side_effect=[task("PROCESSING"), task("SUCCESS")])
    await adapter.submit_enrolment(submission(), context=CallContext())
    assert waits == [0.25, 0.25]


async def test_success_without_an_accept_date(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    bureau.post(SUBMIT_PATH).mock(return_value=ticket_answer())
    bureau.post(TASK_RESULT_PATH).mock(return_value=task("SUCCESS", accept_date=""))
    receipt = await adapter.submit_enrolment(submission(), context=CallContext())
    assert (receipt.status, receipt.accepted_on) == ("accepted", None)


@pytest.mark.parametrize(
    ("fail_code", "field"), [("61001", "insurance_types"), ("61005", "name"), ("61999", None)]
)
async def test_a_failed_task_is_a_business_rejection(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, fail_code: str, field: str | None
) -> None:
    submit = bureau.post(SUBMIT_PATH).mock(return_value=ticket_answer())
    results = bureau.post(TASK_RESULT_PATH).mock(
        side_effect=[task("PROCESSING"), task("FAILED", fail_code=fail_code, fail_msg="已存在有效参保记录")]
    )
    with pytest.raises(BusinessRejection) as info:
        await adapter.submit_enrolment(submission(), context=CallContext())
    error = info.value
    assert (error.upstream_code, error.upstream_message, error.field) == (fail_code, "已存在有效参保记录", field)
    assert error.upstream == "cs-bureau"
    assert BIZ_NO in str(error)
    assert submit.call_count == 1
    assert results.call_count == 2


async def test_still_processing_at_the_poll_timeout_is_pending(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    clock = FakeClock()

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    adapter = make_adapter(config=config(options={"poll_interval": 0.2, "poll_timeout": 1.0}), clock=clock, sleep=sleep)
    submit = bureau.post(SUBMIT_PATH).mock(return_value=ticket_answer())
    results = bureau.post(TASK_RESULT_PATH).mock(return_value=task("PROCESSING"))
    receipt = await adapter.submit_enrolment(submission(), context=CallContext())
    assert receipt == EnrolmentReceipt(reference=BIZ_NO, bureau_reference=TICKET, status="pending", accepted_on=None)
    assert submit.call_count == 1
    assert results.call_count == 5  # at 0.2, 0.4, 0.6, 0.8 and 1.0 s


async def test_poll_timeout_in_real_time(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(config=config(options={"poll_interval": 0.01, "poll_timeout": 0.1}))
    bureau.post(SUBMIT_PATH).mock(return_value=ticket_answer())
    results = bureau.post(TASK_RESULT_PATH).mock(return_value=task("PROCESSING"))
    started = time.monotonic()
    receipt = await adapter.submit_enrolment(submission(), context=CallContext())
    assert time.monotonic() - started < 1.0
    assert (receipt.status, receipt.bureau_reference) == ("pending", TICKET)
    assert 2 <= results.call_count <= 11


async def test_a_zero_poll_timeout_answers_pending_at_once(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(config=config(options={"poll_timeout": 0}))
    bureau.post(SUBMIT_PATH).mock(return_value=ticket_answer())
    results = bureau.post(TASK_RESULT_PATH).mock(return_value=task("SUCCESS"))
    receipt = await adapter.submit_enrolment(submission(), context=CallContext())
    assert (receipt.status, receipt.bureau_reference) == ("pending", TICKET)
    assert results.call_count == 0


async def test_polling_stops_at_the_callers_deadline(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(config=config(options={"poll_interval": 0.01, "poll_timeout": 30}))
    bureau.post(SUBMIT_PATH).mock(return_value=ticket_answer())
    bureau.post(TASK_RESULT_PATH).mock(return_value=task("PROCESSING"))
    started = time.monotonic()
    receipt = await adapter.submit_enrolment(submission(), context=CallContext(deadline=time.monotonic() + 0.15))
    assert time.monotonic() - started < 1.0
    assert receipt.status == "pending"


async def test_a_poll_that_fails_leaves_the_enrolment_pending(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    # The bureau gave a ticket: the enrolment landed, so it must not be reported failed.
    submit = bureau.post(SUBMIT_PATH).mock(return_value=ticket_answer())
    polls = iter([task("PROCESSING")])

    def on_result(request: httpx.Request) -> httpx.Response:
        for reply in polls:
            return reply
        raise httpx.ConnectError("refused", request=request)

    results = bureau.post(TASK_RESULT_PATH).mock(side_effect=on_result)
    receipt = await adapter.submit_enrolment(submission(), context=CallContext())
    assert (receipt.status, receipt.bureau_reference) == ("pending", TICKET)
    assert submit.call_count == 1
    assert results.call_count == 1 + 3  # the failing poll was retried as a query


async def test_an_unreadable_poll_leaves_the_enrolment_pending(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    bureau.post(SUBMIT_PATH).mock(return_value=ticket_answer())
    bureau.post(TASK_RESULT_PATH).mock(return_value=answer(data=bad_padding()))
    receipt = await adapter.submit_enrolment(submission(), context=CallContext())
    assert receipt.status == "pending"


@pytest.mark.parametrize(
    "response",
    [
        answer({"bizNo": BIZ_NO}),  # no ticket
        answer({"ticket": TICKET, "bizNo": "HGW-SOMEONE-ELSE"}),
        answer(None),
        answer({"ticket": TICKET}, mac_key="someone-else"),
    ],
)
async def test_an_unreadable_submit_answer_is_a_protocol_error(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, response: httpx.Response
) -> None:
    bureau.post(SUBMIT_PATH).mock(return_value=response)
    results = bureau.post(TASK_RESULT_PATH).mock(return_value=task("SUCCESS"))
    with pytest.raises(UpstreamProtocolError):
        await adapter.submit_enrolment(submission(), context=CallContext())
    assert results.call_count == 0


# -- enrolment: exactly once ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lost",
    [httpx.ReadTimeout("no answer"), httpx.ReadError("reset"), refuse("50000", "系统异常"), httpx.Response(502), refuse("50000", status=200)],
)
async def test_ambiguous_submit_that_landed_is_not_sent_again(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, lost: Any
) -> None:
    submit = bureau.post(SUBMIT_PATH).mock(side_effect=[lost, ticket_answer()])
    results = bureau.post(TASK_RESULT_PATH).mock(return_value=task("SUCCESS", accept_no="430100-R-000007"))
    receipt = await adapter.submit_enrolment(submission(), context=CallContext())
    assert (receipt.status, receipt.bureau_reference) == ("accepted", "430100-R-000007")
    assert submit.call_count == 1
    assert results.call_count == 1
    assert received(results.calls.last.request).payload == {"bizNo": BIZ_NO}


async def test_ambiguous_submit_still_processing_is_polled_by_its_ticket(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter
) -> None:
    submit = bureau.post(SUBMIT_PATH).mock(side_effect=httpx.ReadTimeout("lost"))
    results = bureau.post(TASK_RESULT_PATH).mock(side_effect=[task("PROCESSING", ticket="T430100-000009"), task("SUCCESS", ticket="T430100-000009")])
    receipt = await adapter.submit_enrolment(submission(), context=CallContext())
    assert receipt.status == "accepted"
    assert submit.call_count == 1
    assert [received(c.request).payload for c in results.calls] == [{"bizNo": BIZ_NO}, {"ticket": "T430100-000009"}]


async def test_ambiguous_submit_that_failed_is_its_rejection(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    submit = bureau.post(SUBMIT_PATH).mock(side_effect=httpx.ReadTimeout("lost"))
    bureau.post(TASK_RESULT_PATH).mock(return_value=task("FAILED", fail_code="61005", fail_msg="姓名不符"))
    with pytest.raises(BusinessRejection) as info:
        await adapter.submit_enrolment(submission(), context=CallContext())
    assert (info.value.upstream_code, info.value.field) == ("61005", "name")
    assert submit.call_count == 1


@pytest.mark.parametrize("lost", [httpx.ReadTimeout("no answer"), refuse("50000", "系统异常"), httpx.Response(503)])
async def test_ambiguous_submit_that_did_not_land_is_sent_again(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, lost: Any
) -> None:
    order: list[str] = []
    answers = iter([lost, ticket_answer()])

    def on_submit(request: httpx.Request) -> httpx.Response:
        order.append("submit")
        reply = next(answers)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def on_result(request: httpx.Request) -> httpx.Response:
        payload = received(request).payload
        order.append(f"result:{next(iter(payload))}")
        return not_found() if "bizNo" in payload else task("SUCCESS")

    bureau.post(SUBMIT_PATH).mock(side_effect=on_submit)
    bureau.post(TASK_RESULT_PATH).mock(side_effect=on_result)
    receipt = await adapter.submit_enrolment(submission(), context=CallContext())
    assert receipt.status == "accepted"
    assert order == ["submit", "result:bizNo", "submit", "result:ticket"]


async def test_submit_429_is_retried_without_lookup(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    sleeps = SleepRecorder()
    adapter = make_adapter(retry_sleep=sleeps)
    submit = bureau.post(SUBMIT_PATH).mock(
        side_effect=[refuse("42900", "限流", headers={"Retry-After": "2"}), ticket_answer()]
    )
    results = bureau.post(TASK_RESULT_PATH).mock(return_value=task("SUCCESS"))
    await adapter.submit_enrolment(submission(), context=CallContext())
    assert submit.call_count == 2
    assert [received(c.request).payload for c in results.calls] == [{"ticket": TICKET}]  # the poll only
    assert sleeps.waits[0] >= 2.0


async def test_submit_connect_error_is_retried_without_lookup(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    submit = bureau.post(SUBMIT_PATH).mock(side_effect=[httpx.ConnectError("refused"), ticket_answer()])
    results = bureau.post(TASK_RESULT_PATH).mock(return_value=task("SUCCESS"))
    await adapter.submit_enrolment(submission(), context=CallContext())
    assert submit.call_count == 2
    assert results.call_count == 1


async def test_submit_lost_every_round_but_never_landed_is_a_plain_failure(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter
) -> None:
    submit = bureau.post(SUBMIT_PATH).mock(side_effect=httpx.ReadTimeout("lost"))
    results = bureau.post(TASK_RESULT_PATH).mock(return_value=not_found())
    with pytest.raises(UpstreamServerError, match="did not land"):
        await adapter.submit_enrolment(submission(), context=CallContext())
    assert submit.call_count == Sm4AsyncBureauAdapter.max_submit_rounds
    assert results.call_count == Sm4AsyncBureauAdapter.max_submit_rounds


async def test_submit_is_ambiguous_when_the_bureau_cannot_be_asked(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    submit = bureau.post(SUBMIT_PATH).mock(side_effect=httpx.ReadTimeout("lost"))
    results = bureau.post(TASK_RESULT_PATH).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(AmbiguousOutcome) as info:
        await adapter.submit_enrolment(submission(), context=CallContext())
    assert BIZ_NO in str(info.value)
    assert isinstance(info.value.__cause__, UpstreamConnectError)
    assert submit.call_count == 1  # never re-sent blind
    assert results.call_count == 3  # the lookup itself is a retried query


# -- find_enrolment --------------------------------------------------------------------------------


async def test_find_enrolment_returns_an_accepted_receipt(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    route = bureau.post(TASK_RESULT_PATH).mock(return_value=task("SUCCESS", accept_no="430100-R-000003", accept_date="20261122"))
    receipt = await adapter.find_enrolment(BIZ_NO, context=CallContext())
    assert receipt == EnrolmentReceipt(
        reference=BIZ_NO, bureau_reference="430100-R-000003", status="accepted", accepted_on=dt.date(2026, 11, 22)
    )
    assert received(route.calls.last.request).payload == {"bizNo": BIZ_NO}
    assert route.call_count == 1


async def test_find_enrolment_still_processing_is_pending_with_the_ticket(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter
) -> None:
    route = bureau.post(TASK_RESULT_PATH).mock(return_value=task("PROCESSING"))
    receipt = await adapter.find_enrolment(BIZ_NO, context=CallContext())
    assert receipt == EnrolmentReceipt(reference=BIZ_NO, bureau_reference=TICKET, status="pending")
    assert route.call_count == 1  # a lookup does not poll


async def test_find_enrolment_of_a_failed_task_raises_its_rejection(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    bureau.post(TASK_RESULT_PATH).mock(return_value=task("FAILED", fail_code="61001", fail_msg="已参保"))
    with pytest.raises(BusinessRejection) as info:
        await adapter.find_enrolment(BIZ_NO, context=CallContext())
    assert (info.value.upstream_code, info.value.upstream_message, info.value.field) == ("61001", "已参保", "insurance_types")


async def test_find_enrolment_returns_none_when_unknown(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    route = bureau.post(TASK_RESULT_PATH).mock(return_value=not_found())
    assert await adapter.find_enrolment(BIZ_NO, context=CallContext()) is None
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (refuse("40001", "签名错误"), UpstreamAuthenticationError),
        (task("SUCCESS", biz_no="HGW-SOMEONE-ELSE"), UpstreamProtocolError),
        (task("SUCCESS", accept_no=""), UpstreamProtocolError),
        (task("FAILED", fail_code=""), UpstreamProtocolError),
        (task("QUEUED"), UpstreamProtocolError),
        (task("SUCCESS", accept_date="2026-11-21"), UpstreamProtocolError),
    ],
)
async def test_find_enrolment_does_not_hide_other_errors(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, response: httpx.Response, error: type[Exception]
) -> None:
    bureau.post(TASK_RESULT_PATH).mock(return_value=response)
    with pytest.raises(error):
        await adapter.find_enrolment(BIZ_NO, context=CallContext())


# -- observer and circuit -----------------------------------------------------------------------------


async def test_observer_sees_submit_lookup_and_polls(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    seen: list[UpstreamCall] = []
    adapter = make_adapter(observer=seen.append)
    bureau.post(SUBMIT_PATH).mock(side_effect=[httpx.ReadTimeout("lost"), ticket_answer()])
    bureau.post(TASK_RESULT_PATH).mock(side_effect=[not_found(), task("PROCESSING"), task("SUCCESS")])
    await adapter.submit_enrolment(submission(), context=CallContext())
    assert [(c.operation, c.outcome, c.upstream_code) for c in seen] == [
        ("enrolment.submit", "AmbiguousOutcome", None),
        ("enrolment.lookup", "UpstreamNotFound", "61404"),
        ("enrolment.submit", "ok", None),
        ("enrolment.poll", "ok", None),
        ("enrolment.poll", "ok", None),
    ]


async def test_refusals_do_not_open_the_circuit(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(policy=fast_policy(max_attempts=1, failure_threshold=2))
    route = bureau.post(PERSON_QUERY_PATH).mock(return_value=refuse("61005", "姓名不符"))
    for _ in range(4):
        with pytest.raises(BusinessRejection):
            await adapter.search_participation(LIU_YANG, context=CallContext())
    assert route.call_count == 4
    assert adapter.health().circuit == "closed"


# -- participation: transferred out ---------------------------------------------------------------------


async def test_a_transferred_out_record_is_transferred(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    bureau.post(PERSON_QUERY_PATH).mock(return_value=answer({"records": [record(cbzt="4", zzrq="20261121", jfys=54)]}))
    [found] = await adapter.search_participation(LIU_YANG, context=CallContext())
    assert (found.status, found.end_date, found.paid_months) == ("transferred", dt.date(2026, 11, 21), 54)


# -- contribution history without a name ---------------------------------------------------------------


async def test_contribution_history_with_and_without_a_name(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    route = bureau.post(CONTRIBUTION_PATH).mock(return_value=answer({"months": [month()]}))
    unnamed = Person(id_number=LIU_YANG.id_number, name="")
    [found] = await adapter.contribution_history(unnamed, "2024-08", "2024-08", context=CallContext())
    assert found.period == "2024-08"
    await adapter.contribution_history(LIU_YANG, "2024-08", "2024-08", context=CallContext())
    first, second = (received(c.request).payload for c in route.calls)
    assert first == {"idNo": LIU_YANG.id_number, "startMonth": "202408", "endMonth": "202408"}
    assert second == {**first, "name": "刘洋"}


# -- declarations ----------------------------------------------------------------------------------------

DECL_NO = "HGW-DECL-0123456789"
DECL_TICKET = "T430100-000005"


def declaration(**overrides: Any) -> DeclarationSubmission:
    values: dict[str, Any] = {
        "reference": DECL_NO,
        "region": REGION,
        "employer": Employer(uscc=USCC, name=UNIT_NAME),
        "period": "2026-11",
        "lines": (
            DeclarationLine(line=1, person=LI_MING, change="new", insurance_types=("pension", "medical"),
                            contribution_base=Decimal("8000"), hire_date=dt.date(2026, 11, 2)),
            DeclarationLine(line=2, person=LIU_YANG, change="leave", insurance_types=("pension",),
                            contribution_base=None, leave_date=dt.date(2026, 11, 15)),
            DeclarationLine(line=3, person=LIU_YANG, change="change", insurance_types=("pension",),
                            contribution_base=Decimal("9000.5")),
            DeclarationLine(line=4, person=LI_MING, change="continue", insurance_types=("medical",),
                            contribution_base=Decimal("8000.00"), hire_date=dt.date(2026, 1, 1)),
        ),
    }  # fmt: skip
    values.update(overrides)
    return DeclarationSubmission(**values)


def declaration_task(state: str, *lines: tuple[int, str, str], ticket: str = DECL_TICKET, biz_no: str = DECL_NO,
                     accept_no: str = "430100-R-000009", accept_date: str = "20261121",
                     ywlx: str = "02") -> httpx.Response:  # fmt: skip
    return answer({
        "ticket": ticket, "bizNo": biz_no, "ywlx": ywlx, "state": state,
        "acceptNo": accept_no if state in ("SUCCESS", "PARTIAL") else "",
        "acceptDate": accept_date if state != "PROCESSING" else "", "failCode": "", "failMsg": "",
        "mx": [{"hh": hh, "jg": jg, "failCode": code, "failMsg": "拒绝" if code else ""} for hh, jg, code in lines],
    })  # fmt: skip


async def test_declaration_request_carries_the_protocol_payload(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter
) -> None:
    submit = bureau.post(DECLARATION_PATH).mock(return_value=ticket_answer(DECL_TICKET, DECL_NO))
    bureau.post(TASK_RESULT_PATH).mock(return_value=declaration_task("SUCCESS", (1, "1", ""), (2, "1", ""), (3, "1", ""), (4, "1", "")))
    await adapter.submit_declaration(declaration(), context=CallContext())
    assert received(submit.calls.last.request).payload == {
        "bizNo": DECL_NO, "dwbh": USCC, "dwmc": UNIT_NAME, "sbny": "202611",
        "mx": [
            {"hh": 1, "idNo": LI_MING.id_number, "name": "李明", "bdlx": "1", "xzlx": ["110", "310"],
             "jfjs": "8000.00", "rzrq": "20261102"},
            {"hh": 2, "idNo": LIU_YANG.id_number, "name": "刘洋", "bdlx": "2", "xzlx": ["110"], "lzrq": "20261115"},
            {"hh": 3, "idNo": LIU_YANG.id_number, "name": "刘洋", "bdlx": "3", "xzlx": ["110"], "jfjs": "9000.50"},
            {"hh": 4, "idNo": LI_MING.id_number, "name": "李明", "bdlx": "4", "xzlx": ["310"], "jfjs": "8000.00"},
        ],
    }  # fmt: skip


async def test_declaration_polls_until_decided_line_by_line(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    bureau.post(DECLARATION_PATH).mock(return_value=ticket_answer(DECL_TICKET, DECL_NO))
    results = bureau.post(TASK_RESULT_PATH).mock(side_effect=[
        declaration_task("PROCESSING"),
        declaration_task("PARTIAL", (1, "1", ""), (2, "2", "61002"), (3, "1", ""), (4, "2", "61005")),
    ])  # fmt: skip
    receipt = await adapter.submit_declaration(declaration(), context=CallContext())
    assert receipt == DeclarationReceipt(
        reference=DECL_NO,
        bureau_reference="430100-R-000009",
        status="partially_accepted",
        lines=(
            DeclarationLineResult(line=1, status="accepted"),
            DeclarationLineResult(line=2, status="rejected", upstream_code="61002", upstream_message="拒绝"),
            DeclarationLineResult(line=3, status="accepted"),
            DeclarationLineResult(line=4, status="rejected", upstream_code="61005", upstream_message="拒绝"),
        ),
        decided_on=dt.date(2026, 11, 21),
    )
    assert [received(c.request).payload for c in results.calls] == [{"ticket": DECL_TICKET}] * 2


@pytest.mark.parametrize(
    ("state", "lines", "status", "bureau_reference"),
    [
        ("SUCCESS", [(1, "1", "")], "accepted", "430100-R-000009"),
        ("FAILED", [(1, "2", "61001"), (2, "2", "61002")], "rejected", DECL_TICKET),
    ],
)
async def test_declaration_all_or_nothing(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, state: str, lines: list[Any], status: str,
    bureau_reference: str,
) -> None:  # fmt: skip
    bureau.post(DECLARATION_PATH).mock(return_value=ticket_answer(DECL_TICKET, DECL_NO))
    bureau.post(TASK_RESULT_PATH).mock(return_value=declaration_task(state, *lines))
    receipt = await adapter.submit_declaration(declaration(), context=CallContext())
    assert (receipt.status, receipt.bureau_reference) == (status, bureau_reference)
    assert [line.status for line in receipt.lines] == ["accepted" if jg == "1" else "rejected" for _, jg, _ in lines]


async def test_declaration_pending_then_found_decided(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(config=config(options={"poll_interval": 0.001, "poll_timeout": 0}))
    bureau.post(DECLARATION_PATH).mock(return_value=ticket_answer(DECL_TICKET, DECL_NO))
    results = bureau.post(TASK_RESULT_PATH).mock(return_value=declaration_task("PROCESSING"))
    pending = await adapter.submit_declaration(declaration(), context=CallContext())
    assert pending == DeclarationReceipt(reference=DECL_NO, bureau_reference=DECL_TICKET, status="pending")
    assert results.call_count == 0
    assert await adapter.find_declaration(DECL_NO, context=CallContext()) == pending
    results.mock(return_value=declaration_task("SUCCESS", (1, "1", "")))
    decided = await adapter.find_declaration(DECL_NO, context=CallContext())
    assert decided is not None and (decided.status, decided.decided_on) == ("accepted", dt.date(2026, 11, 21))
    assert received(results.calls.last.request).payload == {"bizNo": DECL_NO}


async def test_find_declaration_that_never_landed_is_none(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    bureau.post(TASK_RESULT_PATH).mock(return_value=not_found())
    assert await adapter.find_declaration(DECL_NO, context=CallContext()) is None


async def test_ambiguous_declaration_that_landed_is_not_sent_again(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter
) -> None:
    submit = bureau.post(DECLARATION_PATH).mock(side_effect=[httpx.ReadTimeout("lost"), ticket_answer(DECL_TICKET, DECL_NO)])
    results = bureau.post(TASK_RESULT_PATH).mock(return_value=declaration_task("SUCCESS", (1, "1", "")))
    receipt = await adapter.submit_declaration(declaration(), context=CallContext())
    assert receipt.status == "accepted"
    assert submit.call_count == 1
    assert [received(c.request).payload for c in results.calls] == [{"bizNo": DECL_NO}]


async def test_ambiguous_declaration_that_did_not_land_is_sent_again_with_the_same_reference(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter
) -> None:
    submit = bureau.post(DECLARATION_PATH).mock(side_effect=[refuse("50000", "系统异常"), ticket_answer(DECL_TICKET, DECL_NO)])
    bureau.post(TASK_RESULT_PATH).mock(side_effect=[not_found(), declaration_task("SUCCESS", (1, "1", ""))])
    receipt = await adapter.submit_declaration(declaration(), context=CallContext())
    assert receipt.status == "accepted"
    first, second = (received(c.request).payload for c in submit.calls)
    assert first == second and first["bizNo"] == DECL_NO


async def test_a_malformed_declaration_is_refused_whole(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    submit = bureau.post(DECLARATION_PATH).mock(return_value=refuse("40005", "请求参数缺失或格式错误: hh must be unique"))
    results = bureau.post(TASK_RESULT_PATH).mock(return_value=not_found())
    with pytest.raises(BusinessRejection) as info:
        await adapter.submit_declaration(declaration(), context=CallContext())
    assert info.value.upstream_code == "40005"
    assert (submit.call_count, results.call_count) == (1, 0)


async def test_declaration_inputs_are_checked_before_sending(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    submit = bureau.post(DECLARATION_PATH).mock(return_value=ticket_answer(DECL_TICKET, DECL_NO))
    with pytest.raises(ValueError):
        await adapter.submit_declaration(declaration(period="202611"), context=CallContext())
    no_base = DeclarationLine(line=1, person=LI_MING, change="new", insurance_types=("pension",), contribution_base=None)
    with pytest.raises(ValueError):
        await adapter.submit_declaration(declaration(lines=(no_base,)), context=CallContext())
    assert submit.call_count == 0


@pytest.mark.parametrize(
    "answer_",
    [
        declaration_task("SUCCESS", (1, "2", "61002")),  # says success, a line says no
        declaration_task("FAILED", (1, "1", "")),
        declaration_task("PARTIAL", (1, "3", "")),
        declaration_task("PARTIAL", (1, "2", "")),  # rejected without a code
        declaration_task("SUCCESS"),  # no lines
        declaration_task("SUCCESS", (1, "1", ""), ywlx="01"),  # an enrolment, not a declaration
        declaration_task("SUCCESS", (1, "1", ""), accept_no=""),
    ],
)
async def test_unreadable_declaration_results_are_protocol_errors(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, answer_: httpx.Response
) -> None:
    bureau.post(TASK_RESULT_PATH).mock(return_value=answer_)
    with pytest.raises(UpstreamProtocolError):
        await adapter.find_declaration(DECL_NO, context=CallContext())


async def test_an_enrolment_lookup_refuses_another_kind_of_task(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    bureau.post(TASK_RESULT_PATH).mock(return_value=declaration_task("SUCCESS", (1, "1", ""), biz_no=BIZ_NO))
    with pytest.raises(UpstreamProtocolError):
        await adapter.find_enrolment(BIZ_NO, context=CallContext())


# -- transfers in -----------------------------------------------------------------------------------------

TI_NO = "HGW-TI-0123456789"
TI_TICKET = "T430100-000006"
WANG_FANG = Person(id_number="440104199003120213", name="王芳")


def transfer_in(**overrides: Any) -> TransferInSubmission:
    values: dict[str, Any] = {
        "reference": TI_NO,
        "region": REGION,
        "from_region": "440100",
        "source_reference": "GZ-TO-000123",
        "person": WANG_FANG,
        "carried": (
            CarriedInsurance(insurance_type="pension", paid_months=36, start_date=dt.date(2023, 1, 1),
                             fund_amount=Decimal("17280")),
            CarriedInsurance(insurance_type="medical", paid_months=36, start_date=None, fund_amount=Decimal("4320.5")),
        ),
    }  # fmt: skip
    values.update(overrides)
    return TransferInSubmission(**values)


def transfer_in_task(state: str, **fields: str) -> httpx.Response:
    return answer({
        "ticket": TI_TICKET, "bizNo": TI_NO, "ywlx": "03", "state": state,
        "acceptNo": "430100-R-000011" if state == "SUCCESS" else "", "acceptDate": "20261121" if state == "SUCCESS" else "",
        "failCode": "", "failMsg": "", **fields,
    })  # fmt: skip


async def test_transfer_in_request_and_acceptance(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    submit = bureau.post(TRANSFER_IN_PATH).mock(return_value=ticket_answer(TI_TICKET, TI_NO))
    results = bureau.post(TASK_RESULT_PATH).mock(side_effect=[transfer_in_task("PROCESSING"), transfer_in_task("SUCCESS")])
    receipt = await adapter.submit_transfer_in(transfer_in(), context=CallContext())
    assert receipt == TransferInReceipt(reference=TI_NO, bureau_reference="430100-R-000011", status="accepted")
    assert received(submit.calls.last.request).payload == {
        "bizNo": TI_NO, "idNo": WANG_FANG.id_number, "name": "王芳", "zcdq": "440100", "zcbh": "GZ-TO-000123",
        "xz": [{"xzlx": "110", "jfys": 36, "cbrq": "20230101", "zyjj": "17280.00"},
               {"xzlx": "310", "jfys": 36, "cbrq": "", "zyjj": "4320.50"}],
    }  # fmt: skip
    assert results.call_count == 2


async def test_transfer_in_rejected_with_the_bureaus_reason(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    bureau.post(TRANSFER_IN_PATH).mock(return_value=ticket_answer(TI_TICKET, TI_NO))
    bureau.post(TASK_RESULT_PATH).mock(return_value=transfer_in_task("FAILED", failCode="61005", failMsg="姓名与公民身份号码不符"))
    receipt = await adapter.submit_transfer_in(transfer_in(), context=CallContext())
    assert receipt == TransferInReceipt(
        reference=TI_NO, bureau_reference=TI_TICKET, status="rejected",
        reason_code="61005", reason_message="姓名与公民身份号码不符",
    )  # fmt: skip


async def test_transfer_in_pending_then_found(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(config=config(options={"poll_interval": 0.001, "poll_timeout": 0}))
    bureau.post(TRANSFER_IN_PATH).mock(return_value=ticket_answer(TI_TICKET, TI_NO))
    results = bureau.post(TASK_RESULT_PATH).mock(return_value=transfer_in_task("SUCCESS"))
    pending = await adapter.submit_transfer_in(transfer_in(), context=CallContext())
    assert pending == TransferInReceipt(reference=TI_NO, bureau_reference=TI_TICKET, status="pending")
    found = await adapter.find_transfer_in(TI_NO, context=CallContext())
    assert found is not None and found.status == "accepted"
    assert received(results.calls.last.request).payload == {"bizNo": TI_NO}
    results.mock(return_value=not_found())
    assert await adapter.find_transfer_in("HGW-TI-NEVER-SENT", context=CallContext()) is None


async def test_ambiguous_transfer_in_is_looked_up_before_resending(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    submit = bureau.post(TRANSFER_IN_PATH).mock(side_effect=httpx.ReadTimeout("lost"))
    results = bureau.post(TASK_RESULT_PATH).mock(return_value=transfer_in_task("SUCCESS"))
    receipt = await adapter.submit_transfer_in(transfer_in(), context=CallContext())
    assert receipt.status == "accepted"
    assert submit.call_count == 1
    assert [received(c.request).payload for c in results.calls] == [{"bizNo": TI_NO}]


# -- transfers out ----------------------------------------------------------------------------------------

TO_NO = "HGW-TO-0123456789"
ZHAO_LEI = Person(id_number="440303199201010554", name="赵磊")


def transfer_out(**overrides: Any) -> TransferOutSubmission:
    values: dict[str, Any] = {
        "reference": TO_NO, "region": REGION, "to_region": "440300", "person": ZHAO_LEI,
        "insurance_types": ("pension",),
    }  # fmt: skip
    values.update(overrides)
    return TransferOutSubmission(**values)


def transfer_state(stage: str, *, biz_no: str = TO_NO, **fields: Any) -> httpx.Response:
    return answer({
        "zybh": "ZC430100-000001", "bizNo": biz_no, "zrdq": "440300", "zyjd": stage, "sqrq": "20261120",
        "gxrq": "20261121", "bhdm": "", "bhyy": "", "xz": [], **fields,
    })  # fmt: skip


async def test_transfer_out_request_and_submitted_stage(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    submit = bureau.post(TRANSFER_OUT_PATH).mock(return_value=transfer_state("01", gxrq="20261120"))
    progress = await adapter.submit_transfer_out(transfer_out(insurance_types=("pension", "medical")), context=CallContext())
    assert progress == TransferOutProgress(
        reference=TO_NO, bureau_reference="ZC430100-000001", stage="submitted", updated_on=dt.date(2026, 11, 20)
    )
    assert received(submit.calls.last.request).payload == {
        "bizNo": TO_NO, "idNo": ZHAO_LEI.id_number, "name": "赵磊", "zrdq": "440300", "xzlx": ["110", "310"],
    }  # fmt: skip


async def test_transfer_out_stages_and_what_moved(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    carried = [{"xzlx": "110", "jfys": 54, "cbrq": "20220101", "zyjj": "43200.00"},
               {"xzlx": "999", "jfys": 3, "cbrq": "", "zyjj": "1.00"}]  # fmt: skip
    query = bureau.post(TRANSFER_QUERY_PATH).mock(side_effect=[transfer_state("02"), transfer_state("03", xz=carried)])
    reviewed = await adapter.transfer_out_status(TO_NO, context=CallContext())
    assert reviewed is not None and (reviewed.stage, reviewed.carried) == ("source_reviewed", ())
    moved = await adapter.transfer_out_status(TO_NO, context=CallContext())
    assert moved is not None and moved.stage == "funds_transferred"
    assert moved.carried == (
        CarriedInsurance(insurance_type="pension", paid_months=54, start_date=dt.date(2022, 1, 1),
                         fund_amount=Decimal("43200.00")),
    )  # fmt: skip
    assert [received(c.request).payload for c in query.calls] == [{"bizNo": TO_NO}] * 2


async def test_transfer_out_rejected_with_reason(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    bureau.post(TRANSFER_QUERY_PATH).mock(
        return_value=transfer_state("09", bhdm="62001", bhyy="申请转出的险种在本地无有效或中断参保记录")
    )
    progress = await adapter.transfer_out_status(TO_NO, context=CallContext())
    assert progress is not None
    assert (progress.stage, progress.reason_code, progress.reason_message) == (
        "rejected", "62001", "申请转出的险种在本地无有效或中断参保记录"
    )


async def test_transfer_out_name_mismatch_is_refused_at_once(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    bureau.post(TRANSFER_OUT_PATH).mock(return_value=refuse("61005", "姓名与公民身份号码不符"))
    query = bureau.post(TRANSFER_QUERY_PATH).mock(return_value=not_found())
    with pytest.raises(BusinessRejection) as info:
        await adapter.submit_transfer_out(transfer_out(), context=CallContext())
    assert (info.value.upstream_code, info.value.field) == ("61005", "name")
    assert query.call_count == 0


async def test_transfer_out_status_of_an_unknown_reference_is_none(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    bureau.post(TRANSFER_QUERY_PATH).mock(return_value=not_found())
    assert await adapter.transfer_out_status("HGW-TO-NEVER-SENT", context=CallContext()) is None


async def test_ambiguous_transfer_out_is_looked_up_before_resending(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    submit = bureau.post(TRANSFER_OUT_PATH).mock(side_effect=[httpx.ReadTimeout("lost"), transfer_state("01")])
    query = bureau.post(TRANSFER_QUERY_PATH).mock(side_effect=[transfer_state("01")])
    progress = await adapter.submit_transfer_out(transfer_out(), context=CallContext())
    assert progress.stage == "submitted"
    assert (submit.call_count, query.call_count) == (1, 1)


async def test_transfer_out_lost_and_absent_is_sent_again(bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter) -> None:
    submit = bureau.post(TRANSFER_OUT_PATH).mock(side_effect=[refuse("50000", "系统异常"), transfer_state("01")])
    bureau.post(TRANSFER_QUERY_PATH).mock(return_value=not_found())
    progress = await adapter.submit_transfer_out(transfer_out(), context=CallContext())
    assert progress.bureau_reference == "ZC430100-000001"
    assert submit.call_count == 2


@pytest.mark.parametrize(
    "broken",
    [
        transfer_state("05"),
        transfer_state("09"),  # rejected without a reason code
        transfer_state("03", xz=[{"xzlx": "110", "jfys": 1, "cbrq": "", "zyjj": ""}]),
        transfer_state("02", biz_no="HGW-TO-SOMEONE-ELSE"),
    ],
)
async def test_unreadable_transfer_states_are_protocol_errors(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, broken: httpx.Response
) -> None:
    bureau.post(TRANSFER_QUERY_PATH).mock(return_value=broken)
    with pytest.raises(UpstreamProtocolError):
        await adapter.transfer_out_status(TO_NO, context=CallContext())


async def test_observer_sees_the_new_operations(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    seen: list[UpstreamCall] = []
    adapter = make_adapter(observer=seen.append)
    bureau.post(DECLARATION_PATH).mock(side_effect=[httpx.ReadTimeout("lost"), ticket_answer(DECL_TICKET, DECL_NO)])
    bureau.post(TRANSFER_IN_PATH).mock(return_value=ticket_answer(TI_TICKET, TI_NO))
    bureau.post(TRANSFER_OUT_PATH).mock(return_value=transfer_state("01"))
    bureau.post(TRANSFER_QUERY_PATH).mock(return_value=transfer_state("02"))
    bureau.post(TASK_RESULT_PATH).mock(side_effect=[
        not_found(), declaration_task("SUCCESS", (1, "1", "")), transfer_in_task("SUCCESS"), transfer_in_task("SUCCESS"),
    ])  # fmt: skip
    await adapter.submit_declaration(declaration(), context=CallContext())
    await adapter.submit_transfer_in(transfer_in(), context=CallContext())
    await adapter.find_transfer_in(TI_NO, context=CallContext())
    await adapter.submit_transfer_out(transfer_out(), context=CallContext())
    await adapter.transfer_out_status(TO_NO, context=CallContext())
    assert [(c.operation, c.outcome) for c in seen] == [
        ("declaration.submit", "AmbiguousOutcome"),
        ("declaration.lookup", "UpstreamNotFound"),
        ("declaration.submit", "ok"),
        ("declaration.lookup", "ok"),
        ("transfer_in.submit", "ok"),
        ("transfer_in.lookup", "ok"),
        ("transfer_in.lookup", "ok"),
        ("transfer_out.submit", "ok"),
        ("transfer_out.status", "ok"),
    ]


# -- payment notices ----------------------------------------------------------------------------------------

PAY_NO = "HGW-PAY-0123456789"
PAY_TICKET = "T430100-000009"
DECL_NO = "HGW-DECL-0123456789"


def payment_notice(**overrides: Any) -> ContributionPaymentNotice:
    values: dict[str, Any] = {
        "reference": PAY_NO, "region": REGION, "employer": Employer(uscc=USCC, name=UNIT_NAME),
        "period": "2026-11", "declaration_reference": DECL_NO, "amount": Decimal("1300"),
        "paid_on": dt.date(2026, 11, 20), "payment_reference": "E2E-20261120-000001",
    }  # fmt: skip
    values.update(overrides)
    return ContributionPaymentNotice(**values)


def payment_task(state: str, **fields: str) -> httpx.Response:
    success = state == "SUCCESS"
    return answer({
        "ticket": PAY_TICKET, "bizNo": PAY_NO, "ywlx": "04", "state": state,
        "acceptNo": "430100-R-000012" if success else "", "acceptDate": "20261121" if state != "PROCESSING" else "",
        "failCode": "", "failMsg": "", "qrje": "1300.00" if success else "", **fields,
    })  # fmt: skip


async def test_payment_notice_request_then_polled_to_confirmed(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter
) -> None:
    submit = bureau.post(PAYMENT_PATH).mock(return_value=ticket_answer(PAY_TICKET, PAY_NO))
    results = bureau.post(TASK_RESULT_PATH).mock(side_effect=[payment_task("PROCESSING"), payment_task("SUCCESS")])
    receipt = await adapter.notify_contribution_payment(payment_notice(), context=CallContext())
    assert receipt == ContributionPaymentReceipt(
        reference=PAY_NO, bureau_reference="430100-R-000012", status="confirmed",
        confirmed_amount=Decimal("1300.00"), confirmed_on=dt.date(2026, 11, 21),
    )  # fmt: skip
    assert received(submit.calls.last.request).payload == {
        "bizNo": PAY_NO, "dwbh": USCC, "dwmc": UNIT_NAME, "sbny": "202611", "sblsh": DECL_NO,
        "jkje": "1300.00", "jkrq": "20261120", "yhlsh": "E2E-20261120-000001",
    }  # fmt: skip
    assert [received(c.request).payload for c in results.calls] == [{"ticket": PAY_TICKET}] * 2


@pytest.mark.parametrize("code", ["63001", "63002", "63003", "63004", "63005"])
async def test_a_failed_payment_notice_is_a_rejected_receipt(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter, code: str
) -> None:
    bureau.post(PAYMENT_PATH).mock(return_value=ticket_answer(PAY_TICKET, PAY_NO))
    bureau.post(TASK_RESULT_PATH).mock(return_value=payment_task("FAILED", failCode=code, failMsg="不予确认"))
    receipt = await adapter.notify_contribution_payment(payment_notice(), context=CallContext())
    assert receipt == ContributionPaymentReceipt(
        reference=PAY_NO, bureau_reference=PAY_TICKET, status="rejected", reason_code=code, reason_message="不予确认"
    )


async def test_a_malformed_payment_notice_is_refused_at_once(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter
) -> None:
    bureau.post(PAYMENT_PATH).mock(return_value=refuse("40005", "请求参数缺失或格式错误: jkrq"))
    results = bureau.post(TASK_RESULT_PATH).mock(return_value=not_found())
    with pytest.raises(BusinessRejection) as caught:
        await adapter.notify_contribution_payment(payment_notice(), context=CallContext())
    assert caught.value.upstream_code == "40005"
    assert results.call_count == 0


async def test_payment_notice_pending_then_found(bureau: respx.MockRouter, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(config=config(options={"poll_interval": 0.001, "poll_timeout": 0}))
    bureau.post(PAYMENT_PATH).mock(return_value=ticket_answer(PAY_TICKET, PAY_NO))
    results = bureau.post(TASK_RESULT_PATH).mock(return_value=payment_task("PROCESSING"))
    pending = await adapter.notify_contribution_payment(payment_notice(), context=CallContext())
    assert pending == ContributionPaymentReceipt(reference=PAY_NO, bureau_reference=PAY_TICKET, status="pending")
    assert results.call_count == 0  # no poll budget: the ticket is the answer
    assert await adapter.find_contribution_payment(PAY_NO, context=CallContext()) == pending
    results.mock(return_value=payment_task("SUCCESS"))
    found = await adapter.find_contribution_payment(PAY_NO, context=CallContext())
    assert found is not None and found.status == "confirmed" and found.confirmed_amount == Decimal("1300.00")
    assert received(results.calls.last.request).payload == {"bizNo": PAY_NO}
    results.mock(return_value=not_found())
    assert await adapter.find_contribution_payment("HGW-PAY-NEVER-SENT", context=CallContext()) is None


async def test_an_ambiguous_payment_notice_is_looked_up_before_resending(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter
) -> None:
    submit = bureau.post(PAYMENT_PATH).mock(side_effect=httpx.ReadTimeout("lost"))
    results = bureau.post(TASK_RESULT_PATH).mock(return_value=payment_task("SUCCESS"))
    receipt = await adapter.notify_contribution_payment(payment_notice(), context=CallContext())
    assert receipt.status == "confirmed"
    assert submit.call_count == 1
    assert [received(c.request).payload for c in results.calls] == [{"bizNo": PAY_NO}]


async def test_a_payment_lookup_that_finds_another_kind_of_task_is_unreadable(
    bureau: respx.MockRouter, adapter: Sm4AsyncBureauAdapter
) -> None:
    bureau.post(TASK_RESULT_PATH).mock(return_value=transfer_in_task("SUCCESS", bizNo=PAY_NO))
    with pytest.raises(UpstreamProtocolError):
        await adapter.find_contribution_payment(PAY_NO, context=CallContext())
