"""The xml-gbk bureau adapter against docs/dialects/xml-gbk.md, with respx.

Every call goes to ``POST /si/gateway``; a scripted ``FakeBureau`` (the respx side
effect) decodes each GBK request, records it, and answers per ``TransCode`` with GBK
XML written here from the protocol document.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from adapters import (
    AmbiguousOutcome,
    BureauAdapter,
    BusinessRejection,
    CallContext,
    Capability,
    ConfigurationError,
    ContributionHistory,
    ContributionMonth,
    Declarations,
    Employer,
    EnrolmentReceipt,
    EnrolmentSubmission,
    ParticipationRecord,
    Person,
    UpstreamAuthenticationError,
    UpstreamConnectError,
    UpstreamNotFound,
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
from adapters.protocols import ContributionPayments, TransfersIn, TransfersOut
from adapters.social_security.xml_gbk import (
    GATEWAY_PATH,
    XmlGbkBureauAdapter,
    format_money,
    parse_date,
    parse_money,
    parse_period,
    to_wire_period,
)

from .._support import FakeClock, SleepRecorder, fast_policy
from ..conftest import bureau_config

REGION = "420100"
USER_ID = "hgw-wuhan"
PASSWORD = "pa55-武汉"
ZHANG_SAN = Person(id_number="420102198805200177", name="张三")
LI_MING = Person(id_number="430102199511080356", name="李明")
USCC = "91420100MA4K2QXL25"
UNIT_NAME = "武汉示例软件有限公司"
BIZ_NO = "HGW-0123456789ABCDEF"
NOT_GBK = "𠮷"  # U+20BB7, outside GBK
SERIAL = re.compile(r"[0-9A-Za-z-]{1,32}")

MakeAdapter = Callable[..., XmlGbkBureauAdapter]


def config(**overrides: Any) -> Any:
    settings: dict[str, Any] = {
        "name": "wh-bureau",
        "regions": (REGION,),
        "credentials": {"user_id": USER_ID, "password": PASSWORD},
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


# -- the scripted bureau ----------------------------------------------------------------

_STATUS_OF = {"0000": 200, "AUTH01": 401, "AUTH02": 401, "S400": 400, "S503": 503, "S999": 500}


@dataclass
class Reply:
    """One answer of the bureau: ``body`` is the inner XML of ``<Body>``."""

    body: str = ""
    code: str = "0000"
    msg: str = "成功"
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    serial_no: str | None = None  # default: echo the request's


def refuse(code: str, msg: str = "拒绝", **kwargs: Any) -> Reply:
    return Reply(code=code, msg=msg, **kwargs)


def render(reply: Reply, trans_code: str, serial_no: str) -> httpx.Response:
    document = (
        '<?xml version="1.0" encoding="GBK"?>\n'
        "<Response>\n"
        "  <Head>\n"
        f"    <TransCode>{trans_code}</TransCode>\n"
        f"    <SerialNo>{serial_no if reply.serial_no is None else reply.serial_no}</SerialNo>\n"
        f"    <ReturnCode>{reply.code}</ReturnCode>\n"
        f"    <ReturnMsg>{reply.msg}</ReturnMsg>\n"
        "  </Head>\n"
        f"  <Body>{reply.body}</Body>\n"
        "</Response>\n"
    )
    status = reply.status or _STATUS_OF.get(reply.code, 200)
    headers = {"Content-Type": "text/xml; charset=GBK", **reply.headers}
    return httpx.Response(status, content=document.encode("gbk"), headers=headers)


@dataclass
class Received:
    request: httpx.Request
    trans_code: str
    head: dict[str, str]
    body: ET.Element

    def text(self, path: str) -> str | None:
        element = self.body.find(path)
        return None if element is None else (element.text or "")


def decode_request(request: httpx.Request) -> Received:
    """What the bureau would read: the request must be GBK XML with the declaration."""
    assert request.method == "POST"
    assert request.url.path == GATEWAY_PATH
    assert request.headers["Content-Type"] == "text/xml; charset=GBK"
    assert request.content.startswith(b'<?xml version="1.0" encoding="GBK"?>')
    root = ET.fromstring(request.content.decode("gbk"))
    assert root.tag == "Request"
    head = {child.tag: (child.text or "") for child in root.find("Head")}  # type: ignore[union-attr]
    body = root.find("Body")
    assert body is not None
    return Received(request, head["TransCode"], head, body)


Effect = Reply | httpx.Response | Exception | Callable[[Received], Any]


class FakeBureau:
    """Answers each TransCode from a queue, then from a default; LOGIN by default
    hands out TOKEN-1, TOKEN-2, ... valid for ``ttl`` seconds."""

    def __init__(self, ttl: int = 600) -> None:
        self.ttl = ttl
        self.queues: dict[str, list[Effect]] = defaultdict(list)
        self.defaults: dict[str, Effect] = {}
        self.received: list[Received] = []
        self.tokens_issued = 0
        self.login_delay = 0.0

    def on(self, trans_code: str, *effects: Effect) -> FakeBureau:
        self.queues[trans_code].extend(effects)
        return self

    def always(self, trans_code: str, effect: Effect) -> FakeBureau:
        self.defaults[trans_code] = effect
        return self

    def calls(self, trans_code: str) -> list[Received]:
        return [r for r in self.received if r.trans_code == trans_code]

    def count(self, trans_code: str) -> int:
        return len(self.calls(trans_code))

    @property
    def order(self) -> list[str]:
        return [r.trans_code for r in self.received]

    def _login(self, received: Received) -> Reply:
        self.tokens_issued += 1
        return Reply(f"<SessionToken>TOKEN-{self.tokens_issued}</SessionToken><ExpiresIn>{self.ttl}</ExpiresIn>")

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        received = decode_request(request)
        self.received.append(received)
        code = received.trans_code
        if code == "LOGIN" and self.login_delay:
            await asyncio.sleep(self.login_delay)
        if self.queues[code]:
            effect: Effect = self.queues[code].pop(0)
        elif code in self.defaults:
            effect = self.defaults[code]
        elif code == "LOGIN":
            effect = self._login
        else:
            raise AssertionError(f"unexpected {code}")
        if callable(effect) and not isinstance(effect, (Reply, httpx.Response, Exception)):
            effect = effect(received)
            if inspect.isawaitable(effect):
                effect = await effect
        if isinstance(effect, Exception):
            raise effect
        if isinstance(effect, httpx.Response):
            return effect
        assert isinstance(effect, Reply)
        return render(effect, code, received.head.get("SerialNo", ""))


def record_xml(**overrides: str) -> str:
    fields = {
        "InsType": "110",
        "Status": "参保缴费",
        "UnitCode": USCC,
        "UnitName": UNIT_NAME,
        "BeginDate": "2019-03-01",
        "EndDate": "",
        "PaidMonths": "68",
        "Base": "9000.00",
        "LastPaidPeriod": "202410",
    }
    fields.update(overrides)
    inner = "".join(f"<{k}/>" if v == "" else f"<{k}>{v}</{k}>" for k, v in fields.items())
    return f"<Record>{inner}</Record>"


def records(*raw: str) -> Reply:
    return Reply(f"<Records>{''.join(raw)}</Records>" if raw else "<Records/>")


def month_xml(period: str = "202408", ins_type: str = "110", pay_status: str = "1", employer: str = "1440.00",
              personal: str = "720.00", paid: str = "2024-09-15") -> str:
    return (
        f"<Month><Period>{period}</Period><InsType>{ins_type}</InsType><PayStatus>{pay_status}</PayStatus>"
        f"<EmployerAmount>{employer}</EmployerAmount><PersonalAmount>{personal}</PersonalAmount>"
        f"<PaidDate>{paid}</PaidDate></Month>"
    )


def months(*raw: str) -> Reply:
    return Reply(f"<Months>{''.join(raw)}</Months>")


def acceptance(biz_no: str = BIZ_NO, accept_no: str = "420100-E-000001", accept_date: str = "2026-11-21") -> Reply:
    return Reply(f"<BizNo>{biz_no}</BizNo><AcceptNo>{accept_no}</AcceptNo><AcceptDate>{accept_date}</AcceptDate>")


NOT_FOUND = refuse("B404", "无此业务")


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def fake(bureau: respx.MockRouter) -> FakeBureau:
    fake = FakeBureau()
    bureau.post(GATEWAY_PATH).mock(side_effect=fake)
    return fake


@pytest.fixture
async def make_adapter(
    fake: FakeBureau, transport: Callable[[], httpx.MockTransport]
) -> AsyncIterator[MakeAdapter]:
    """xml-gbk adapters with a fast policy (this module's own, not json-hmac's)."""
    made: list[XmlGbkBureauAdapter] = []

    def make(*, sleep: SleepRecorder | None = None, **kwargs: Any) -> XmlGbkBureauAdapter:
        kwargs.setdefault("policy", fast_policy())
        kwargs.setdefault("transport", transport())
        adapter = XmlGbkBureauAdapter(kwargs.pop("config", None) or config(), **kwargs)
        if sleep is not None:
            adapter.client._sleep = sleep
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def adapter(make_adapter: MakeAdapter) -> XmlGbkBureauAdapter:
    return make_adapter()


# -- declaration and configuration -------------------------------------------------------


def test_declares_what_it_is() -> None:
    assert XmlGbkBureauAdapter.kind == "social_security"
    assert XmlGbkBureauAdapter.dialect == "xml-gbk"
    assert XmlGbkBureauAdapter.version
    assert XmlGbkBureauAdapter.capabilities == {
        Capability.PARTICIPATION_SEARCH,
        Capability.ENROLMENT,
        Capability.ENROLMENT_LOOKUP,
        Capability.CONTRIBUTION_HISTORY,
        Capability.DECLARATION,
        Capability.TRANSFER_OUT,
        Capability.TRANSFER_IN,
        Capability.CONTRIBUTION_PAYMENT,
    }
    assert XmlGbkBureauAdapter.required_credentials == ("user_id", "password")
    retry = XmlGbkBureauAdapter.policy.retry
    assert {429, 503} <= retry.not_applied_statuses
    assert 500 not in retry.not_applied_statuses  # S999 after E001 is ambiguous
    assert retry.respect_retry_after


async def test_satisfies_the_bureau_protocols(adapter: XmlGbkBureauAdapter) -> None:
    assert isinstance(adapter, BureauAdapter)
    assert isinstance(adapter, ContributionHistory)
    assert isinstance(adapter, Declarations)
    assert isinstance(adapter, TransfersOut)
    assert isinstance(adapter, TransfersIn)
    assert isinstance(adapter, ContributionPayments)
    assert adapter.name == "wh-bureau"


@pytest.mark.parametrize("regions", [(), ("420100", "420200")])
def test_serves_exactly_one_region(regions: tuple[str, ...]) -> None:
    with pytest.raises(ConfigurationError, match="exactly one region"):
        XmlGbkBureauAdapter(config(regions=regions))


@pytest.mark.parametrize(
    "credentials", [{}, {"user_id": USER_ID}, {"password": PASSWORD}, {"user_id": "", "password": PASSWORD}]
)
def test_missing_credentials_are_refused(credentials: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="missing credentials"):
        XmlGbkBureauAdapter(config(credentials=credentials))


async def test_credentials_that_gbk_cannot_hold_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="password"):
        XmlGbkBureauAdapter(config(credentials={"user_id": USER_ID, "password": f"x{NOT_GBK}"}))


async def test_from_config_builds_an_instance_with_the_declared_policy() -> None:
    adapter = XmlGbkBureauAdapter.from_config(config())
    try:
        assert adapter.client.policy == XmlGbkBureauAdapter.policy
    finally:
        await adapter.aclose()


# -- value formats ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("3604.00", Decimal("3604.00")), ("0.10", Decimal("0.10")), ("8000", Decimal("8000.00")), ("-12.5", Decimal("-12.50")),
     ("", None), (None, None)],
)
def test_parse_money(raw: str | None, expected: Decimal | None) -> None:
    value = parse_money(raw)
    assert value == expected
    if expected is not None:
        assert str(value) == str(expected)


@pytest.mark.parametrize("raw", ["1e3", "NaN", "Infinity", "1,000.00", "12.345", "¥12.00", "12."])
def test_parse_money_refuses_other_formats(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_money(raw)


@pytest.mark.parametrize(("amount", "wire"), [(Decimal(8000), "8000.00"), (Decimal("3604.5"), "3604.50"),
                                              (Decimal("1E+3"), "1000.00"), (Decimal("0.1"), "0.10")])
def test_format_money(amount: Decimal, wire: str) -> None:
    assert format_money(amount) == wire


@pytest.mark.parametrize(("raw", "expected"), [("2019-03-01", dt.date(2019, 3, 1)), ("", None), (None, None)])
def test_parse_date(raw: str | None, expected: dt.date | None) -> None:
    assert parse_date(raw) == expected


@pytest.mark.parametrize("raw", ["20190301", "2019-02-30", "2019-3-1", "2019-W10-1"])
def test_parse_date_refuses_other_formats(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_date(raw)


@pytest.mark.parametrize(("raw", "expected"), [("202408", "2024-08"), ("", None), (None, None)])
def test_parse_period(raw: str | None, expected: str | None) -> None:
    assert parse_period(raw) == expected


@pytest.mark.parametrize("raw", ["2024-08", "202413", "202400", "20248"])
def test_parse_period_refuses_other_formats(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_period(raw)


@pytest.mark.parametrize("raw", ["202408", "2024-8", "2024-13", "24-08"])
def test_to_wire_period_wants_yyyy_mm(raw: str) -> None:
    with pytest.raises(ValueError):
        to_wire_period(raw)


# -- encoding and envelope ----------------------------------------------------------------


async def test_gbk_round_trip_of_names(fake: FakeBureau, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(transport=None)  # through httpx's real transport, patched by respx
    fake.on("Q001", records(record_xml()))
    [record] = await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert record.employer == Employer(uscc=USCC, name=UNIT_NAME)

    request = fake.calls("Q001")[0].request
    content = request.content
    assert "张三".encode("gbk") in content
    assert "张三".encode() not in content
    with pytest.raises(UnicodeDecodeError):
        content.decode("utf-8")
    assert request.headers["Content-Type"] == "text/xml; charset=GBK"
    root = ET.fromstring(content.decode("gbk"))
    assert [child.tag for child in root] == ["Head", "Body"]
    assert root.findtext("Body/IdNo") == ZHANG_SAN.id_number
    assert root.findtext("Body/Name") == "张三"


async def test_unit_name_goes_out_in_gbk_in_an_enrolment(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("E001", acceptance())
    await adapter.submit_enrolment(submission(), context=CallContext())
    content = fake.calls("E001")[0].request.content
    assert UNIT_NAME.encode("gbk") in content
    assert "李明".encode("gbk") in content


async def test_request_head(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("Q001", records())
    before = dt.datetime.now().replace(microsecond=0)
    await adapter.search_participation(ZHANG_SAN, context=CallContext())
    after = dt.datetime.now()
    login, query = fake.received
    assert list(login.head) == ["TransCode", "SerialNo", "RequestTime"]  # no token for LOGIN
    assert list(query.head) == ["TransCode", "SessionToken", "SerialNo", "RequestTime"]
    assert query.head["TransCode"] == "Q001"
    assert query.head["SessionToken"] == "TOKEN-1"
    for received in (login, query):
        assert SERIAL.fullmatch(received.head["SerialNo"])
        sent = dt.datetime.strptime(received.head["RequestTime"], "%Y%m%d%H%M%S")
        assert before <= sent <= after


async def test_every_message_has_its_own_serial_no(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.always("Q001", records())
    for _ in range(5):
        await adapter.search_participation(ZHANG_SAN, context=CallContext())
    serials = [r.head["SerialNo"] for r in fake.received]
    assert len(serials) == 6
    assert len(set(serials)) == 6


async def test_login_sends_the_credentials(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("Q001", records())
    await adapter.search_participation(ZHANG_SAN, context=CallContext())
    login = fake.calls("LOGIN")[0]
    assert login.text("UserId") == USER_ID
    assert login.text("Password") == PASSWORD  # GBK too
    assert [child.tag for child in login.body] == ["UserId", "Password"]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda a: a.search_participation(Person(ZHANG_SAN.id_number, f"张{NOT_GBK}"), context=CallContext()), "name"),
        (lambda a: a.contribution_history(Person(ZHANG_SAN.id_number, NOT_GBK), "2024-01", "2024-02", context=CallContext()), "name"),
        (lambda a: a.submit_enrolment(submission(person=Person(LI_MING.id_number, f"李{NOT_GBK}")), context=CallContext()), "name"),
        (lambda a: a.submit_enrolment(submission(employer=Employer(USCC, f"武汉{NOT_GBK}公司")), context=CallContext()), "employer.name"),
        (lambda a: a.submit_enrolment(submission(person=Person(LI_MING.id_number, "李明😀")), context=CallContext()), "name"),
    ],
)
async def test_a_value_gbk_cannot_hold_is_refused_before_anything_is_sent(
    fake: FakeBureau, adapter: XmlGbkBureauAdapter, call: Callable[[XmlGbkBureauAdapter], Any], field: str
) -> None:
    with pytest.raises(BusinessRejection) as info:
        await call(adapter)
    error = info.value
    assert (error.upstream_code, error.field) == ("GBK", field)
    assert "GBK" in error.upstream_message
    assert error.upstream == "wh-bureau"
    assert fake.received == []  # not even a LOGIN


async def test_rare_characters_that_gbk_has_are_sent(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("Q001", records())
    await adapter.search_participation(Person(ZHANG_SAN.id_number, "王堃赟"), context=CallContext())
    assert fake.calls("Q001")[0].text("Name") == "王堃赟"


async def test_markup_characters_in_values_are_escaped(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("E001", acceptance())
    await adapter.submit_enrolment(submission(employer=Employer(USCC, "A&B <武汉> 公司")), context=CallContext())
    assert fake.calls("E001")[0].text("UnitName") == "A&B <武汉> 公司"


async def test_x_request_id_travels_on_every_call(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("Q001", refuse("AUTH01", "会话失效"), records())
    fake.on("E001", httpx.ReadTimeout("lost"), acceptance())
    fake.on("E002", NOT_FOUND)
    fake.on("Q002", months())
    context = CallContext(request_id="req-0a1b2c")
    await adapter.search_participation(ZHANG_SAN, context=context)
    await adapter.submit_enrolment(submission(), context=context)
    await adapter.contribution_history(ZHANG_SAN, "2024-08", "2024-10", context=context)
    assert fake.order == ["LOGIN", "Q001", "LOGIN", "Q001", "E001", "E002", "E001", "Q002"]
    assert {r.request.headers.get("X-Request-ID") for r in fake.received} == {"req-0a1b2c"}


# -- session ----------------------------------------------------------------------------


async def test_logs_in_once_for_several_calls(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.always("Q001", records()).always("Q002", months()).always("E002", NOT_FOUND)
    await adapter.search_participation(ZHANG_SAN, context=CallContext())
    await adapter.search_participation(LI_MING, context=CallContext())
    await adapter.contribution_history(ZHANG_SAN, "2024-01", "2024-03", context=CallContext())
    assert await adapter.find_enrolment(BIZ_NO, context=CallContext()) is None
    assert fake.order == ["LOGIN", "Q001", "Q001", "Q002", "E002"]
    assert {r.head["SessionToken"] for r in fake.received[1:]} == {"TOKEN-1"}


async def test_no_login_until_first_use(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    assert fake.received == []


async def test_concurrent_callers_share_one_login(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.login_delay = 0.02  # every caller arrives while the login is in flight
    fake.always("Q001", records())
    await asyncio.gather(*(adapter.search_participation(ZHANG_SAN, context=CallContext()) for _ in range(5)))
    assert fake.count("LOGIN") == 1
    assert fake.count("Q001") == 5
    assert {r.head["SessionToken"] for r in fake.calls("Q001")} == {"TOKEN-1"}


@pytest.mark.parametrize(("ttl", "renew_after"), [(600, 570.0), (40, 20.0), (2, 1.0)])
async def test_session_is_renewed_shortly_before_it_expires(
    fake: FakeBureau, make_adapter: MakeAdapter, ttl: int, renew_after: float
) -> None:
    fake.ttl = ttl
    clock = FakeClock()
    adapter = make_adapter(clock=clock)
    fake.always("Q001", records())
    await adapter.search_participation(ZHANG_SAN, context=CallContext())
    clock.advance(renew_after - 0.5)
    await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert fake.count("LOGIN") == 1
    clock.advance(0.5)  # exactly at the renewal instant
    await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert fake.count("LOGIN") == 2
    assert [r.head["SessionToken"] for r in fake.calls("Q001")] == ["TOKEN-1", "TOKEN-1", "TOKEN-2"]


async def test_session_is_renewed_with_a_real_tiny_ttl(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.ttl = 1  # renewed after half a second
    fake.always("Q001", records())
    await adapter.search_participation(ZHANG_SAN, context=CallContext())
    await asyncio.sleep(0.55)
    await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert fake.count("LOGIN") == 2


async def test_auth01_logs_in_again_once_and_repeats_the_call(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.always("Q001", records())
    await adapter.search_participation(ZHANG_SAN, context=CallContext())
    fake.on("Q001", refuse("AUTH01", "会话已过期"))
    assert await adapter.search_participation(ZHANG_SAN, context=CallContext()) == []
    assert fake.order == ["LOGIN", "Q001", "Q001", "LOGIN", "Q001"]
    assert [r.head["SessionToken"] for r in fake.calls("Q001")] == ["TOKEN-1", "TOKEN-1", "TOKEN-2"]
    # ... and the new session is kept for the next call
    await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert fake.count("LOGIN") == 2
    assert fake.calls("Q001")[-1].head["SessionToken"] == "TOKEN-2"


async def test_auth01_twice_is_an_authentication_error(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.always("Q001", refuse("AUTH01", "会话无效"))
    with pytest.raises(UpstreamAuthenticationError) as info:
        await adapter.search_participation(ZHANG_SAN, context=CallContext())
    error = info.value
    assert (error.upstream_code, error.upstream_message) == ("AUTH01", "会话无效")
    assert error.status_code == 401
    assert error.upstream == "wh-bureau"
    assert error.request is not None
    assert fake.order == ["LOGIN", "Q001", "LOGIN", "Q001"]  # once more, never a loop
    # the refused token is not kept: the next call logs in afresh
    fake.always("Q001", records())
    await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert fake.calls("Q001")[-1].head["SessionToken"] == "TOKEN-3"


async def test_auth02_on_login_is_an_authentication_error(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.always("LOGIN", refuse("AUTH02", "用户名或密码错误"))
    with pytest.raises(UpstreamAuthenticationError) as info:
        await adapter.search_participation(ZHANG_SAN, context=CallContext())
    error = info.value
    assert (error.upstream_code, error.upstream_message, error.status_code) == ("AUTH02", "用户名或密码错误", 401)
    assert fake.order == ["LOGIN"]  # not retried, no business call


async def test_auth02_after_auth01_is_an_authentication_error(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("LOGIN", fake._login, refuse("AUTH02", "密码已修改"))
    fake.on("Q001", refuse("AUTH01"))
    with pytest.raises(UpstreamAuthenticationError) as info:
        await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert info.value.upstream_code == "AUTH02"
    assert fake.order == ["LOGIN", "Q001", "LOGIN"]


async def test_auth01_on_e001_logs_in_again_and_resends_without_a_lookup(
    fake: FakeBureau, adapter: XmlGbkBureauAdapter
) -> None:
    # AUTH01 is a refusal before anything was applied: sending E001 again is safe.
    fake.on("E001", refuse("AUTH01", "会话已过期"), acceptance())
    receipt = await adapter.submit_enrolment(submission(), context=CallContext())
    assert receipt.bureau_reference == "420100-E-000001"
    assert fake.order == ["LOGIN", "E001", "LOGIN", "E001"]
    first, second = fake.calls("E001")
    assert first.text("BizNo") == second.text("BizNo") == BIZ_NO
    assert first.head["SerialNo"] != second.head["SerialNo"]
    assert (first.head["SessionToken"], second.head["SessionToken"]) == ("TOKEN-1", "TOKEN-2")


async def test_concurrent_auth01_share_one_new_login(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    stale = 0

    async def token_1_has_expired(received: Received) -> Reply:
        nonlocal stale
        if received.head["SessionToken"] != "TOKEN-1":
            return records()
        stale += 1
        # all four are in flight with TOKEN-1; their refusals arrive one after another,
        # the later ones after the first caller has already logged in again
        await asyncio.sleep(0.01 * stale)
        return refuse("AUTH01")

    fake.on("Q001", records())
    await adapter.search_participation(ZHANG_SAN, context=CallContext())
    fake.always("Q001", token_1_has_expired)
    await asyncio.gather(*(adapter.search_participation(ZHANG_SAN, context=CallContext()) for _ in range(4)))
    assert fake.count("LOGIN") == 2  # a late AUTH01 for TOKEN-1 does not drop TOKEN-2
    tokens = [r.head["SessionToken"] for r in fake.calls("Q001")[1:]]
    assert sorted(tokens) == ["TOKEN-1"] * 4 + ["TOKEN-2"] * 4


async def test_login_is_retried_like_a_query(fake: FakeBureau, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(sleep=SleepRecorder())
    fake.on("LOGIN", httpx.ReadTimeout("slow"), refuse("S999", "系统错误"), fake._login)
    fake.on("Q001", records())
    await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert fake.order == ["LOGIN", "LOGIN", "LOGIN", "Q001"]


@pytest.mark.parametrize(
    "body",
    [
        "",
        "<SessionToken>T</SessionToken>",
        "<ExpiresIn>600</ExpiresIn>",
        "<SessionToken>T</SessionToken><ExpiresIn>soon</ExpiresIn>",
        "<SessionToken>T</SessionToken><ExpiresIn>0</ExpiresIn>",
        "<SessionToken> </SessionToken><ExpiresIn>600</ExpiresIn>",
    ],
)
async def test_an_unreadable_login_answer_is_a_protocol_error(
    fake: FakeBureau, adapter: XmlGbkBureauAdapter, body: str
) -> None:
    fake.on("LOGIN", Reply(body))
    with pytest.raises(UpstreamProtocolError):
        await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert fake.order == ["LOGIN"]


# -- Q001 participation -----------------------------------------------------------------


async def test_search_maps_a_record_to_the_canonical_model(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("Q001", records(record_xml()))
    [record] = await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert record == ParticipationRecord(
        region=REGION,
        insurance_type="pension",
        status="active",
        employer=Employer(uscc=USCC, name=UNIT_NAME),
        start_date=dt.date(2019, 3, 1),
        end_date=None,
        paid_months=68,
        contribution_base=Decimal("9000.00"),
        last_paid_period="2024-10",
    )
    assert str(record.contribution_base) == "9000.00"


@pytest.mark.parametrize(
    ("code", "insurance_type"),
    [("110", "pension"), ("210", "unemployment"), ("310", "medical"), ("410", "work_injury"), ("510", "maternity")],
)
async def test_insurance_type_codes(fake: FakeBureau, adapter: XmlGbkBureauAdapter, code: str, insurance_type: str) -> None:
    fake.on("Q001", records(record_xml(InsType=code)))
    [record] = await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert record.insurance_type == insurance_type


@pytest.mark.parametrize(
    ("word", "status"),
    [("参保缴费", "active"), ("暂停缴费", "suspended"), ("终止参保", "terminated"), ("已转出", "transferred")],
)
async def test_status_words(fake: FakeBureau, adapter: XmlGbkBureauAdapter, word: str, status: str) -> None:
    fake.on("Q001", records(record_xml(Status=f"\n      {word}  ")))  # trimmed
    [record] = await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert record.status == status


async def test_unknown_insurance_types_are_skipped(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("Q001", records(record_xml(InsType="110"), record_xml(InsType="999"), record_xml(InsType="310")))
    found = await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert [r.insurance_type for r in found] == ["pension", "medical"]


@pytest.mark.parametrize("empty", ["<EndDate/>", "<EndDate></EndDate>", "<EndDate>  </EndDate>", ""])
async def test_an_empty_or_absent_end_date_means_none(fake: FakeBureau, adapter: XmlGbkBureauAdapter, empty: str) -> None:
    raw = record_xml().replace("<EndDate/>", empty)
    fake.on("Q001", records(raw))
    [record] = await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert record.end_date is None


async def test_terminated_record_without_employer_base_or_last_period(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    raw = record_xml(Status="终止参保", UnitCode="", UnitName="", EndDate="2024-01-31", PaidMonths="", Base="", LastPaidPeriod="")
    fake.on("Q001", records(raw))
    [record] = await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert record.status == "terminated"
    assert record.employer is None
    assert record.end_date == dt.date(2024, 1, 31)
    assert record.paid_months == 0
    assert record.contribution_base is None
    assert record.last_paid_period is None


async def test_records_carry_the_configured_region(fake: FakeBureau, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(config=config(regions=("420300",)))
    fake.on("Q001", records(record_xml()))
    [record] = await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert record.region == "420300"


@pytest.mark.parametrize("reply", [records(), Reply("<Records></Records>"), Reply("<Records>\n  </Records>")])
async def test_no_records_is_an_empty_list(fake: FakeBureau, adapter: XmlGbkBureauAdapter, reply: Reply) -> None:
    fake.on("Q001", reply)
    assert await adapter.search_participation(ZHANG_SAN, context=CallContext()) == []
    assert fake.count("Q001") == 1


@pytest.mark.parametrize(
    "body",
    [
        "",  # no <Records>
        record_xml(),  # a record outside <Records>
        f"<Records>{record_xml(Status='正常')}</Records>",
        f"<Records>{record_xml(Status='1')}</Records>",
        f"<Records>{record_xml(BeginDate='20190301')}</Records>",
        f"<Records>{record_xml(LastPaidPeriod='2024-10')}</Records>",
        f"<Records>{record_xml(Base='9,000.00')}</Records>",
        f"<Records>{record_xml(PaidMonths='many')}</Records>",
        f"<Records>{record_xml(InsType='')}</Records>",
    ],
)
async def test_malformed_records_are_a_protocol_error(fake: FakeBureau, adapter: XmlGbkBureauAdapter, body: str) -> None:
    fake.on("Q001", Reply(body))
    with pytest.raises(UpstreamProtocolError) as info:
        await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert fake.count("Q001") == 1
    assert info.value.upstream == "wh-bureau"
    assert info.value.response is not None and info.value.request is not None


# -- Q002 contribution history ------------------------------------------------------------


async def test_contribution_history_maps_months(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on(
        "Q002",
        months(
            month_xml("202408", "110", "2", "1440.00", "720.00", "2024-10-28"),
            month_xml("202408", "310", "1", "720.00", "180.00", "2024-08-15"),
            month_xml("202408", "999", "1"),  # a local scheme: skipped
            month_xml("202409", "110", "3", "", "", ""),
            month_xml("202410", "110", "1", "1440.00", "720.00", "2024-10-15"),
        ),
    )
    history = await adapter.contribution_history(ZHANG_SAN, "2024-08", "2024-10", context=CallContext())
    assert history == [
        ContributionMonth(REGION, "2024-08", "pension", "late", Decimal("1440.00"), Decimal("720.00"), dt.date(2024, 10, 28)),
        ContributionMonth(REGION, "2024-08", "medical", "paid", Decimal("720.00"), Decimal("180.00"), dt.date(2024, 8, 15)),
        ContributionMonth(REGION, "2024-09", "pension", "unpaid", None, None, None),
        ContributionMonth(REGION, "2024-10", "pension", "paid", Decimal("1440.00"), Decimal("720.00"), dt.date(2024, 10, 15)),
    ]
    [query] = fake.calls("Q002")
    assert [(child.tag, child.text) for child in query.body] == [
        ("IdNo", ZHANG_SAN.id_number),
        ("Name", "张三"),
        ("FromPeriod", "202408"),
        ("ToPeriod", "202410"),
    ]


async def test_unpaid_month_with_empty_elements(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("Q002", months("<Month><Period>202409</Period><InsType>210</InsType><PayStatus>3</PayStatus>"
                           "<EmployerAmount/><PersonalAmount></PersonalAmount><PaidDate/></Month>"))
    [month] = await adapter.contribution_history(ZHANG_SAN, "2024-09", "2024-09", context=CallContext())
    assert (month.insurance_type, month.status, month.employer_amount, month.personal_amount, month.paid_on) == (
        "unemployment", "unpaid", None, None, None
    )


async def test_contribution_history_with_no_months(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("Q002", Reply("<Months/>"))
    assert await adapter.contribution_history(ZHANG_SAN, "2024-01", "2024-12", context=CallContext()) == []


async def test_a_long_range_is_asked_in_slices_the_bureau_accepts(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("Q002", months(month_xml("202001")), months(month_xml("202301")), months(month_xml("202601")))
    history = await adapter.contribution_history(ZHANG_SAN, "2020-01", "2026-02", context=CallContext())
    assert [m.period for m in history] == ["2020-01", "2023-01", "2026-01"]
    assert [(q.text("FromPeriod"), q.text("ToPeriod")) for q in fake.calls("Q002")] == [
        ("202001", "202212"),
        ("202301", "202512"),
        ("202601", "202602"),
    ]
    assert fake.count("LOGIN") == 1


@pytest.mark.parametrize(("start", "end"), [("2024-10", "2024-08"), ("202408", "2024-10"), ("2024-08", "2024-13")])
async def test_contribution_history_refuses_bad_periods(
    fake: FakeBureau, adapter: XmlGbkBureauAdapter, start: str, end: str
) -> None:
    with pytest.raises(ValueError):
        await adapter.contribution_history(ZHANG_SAN, start, end, context=CallContext())
    assert fake.received == []


@pytest.mark.parametrize(
    "body",
    [
        "",
        f"<Months>{month_xml(pay_status='4')}</Months>",
        f"<Months>{month_xml(period='2024-08')}</Months>",
        f"<Months>{month_xml(employer='lots')}</Months>",
        f"<Months>{month_xml(paid='28/10/2024')}</Months>",
        "<Months><Month><InsType>110</InsType><PayStatus>1</PayStatus></Month></Months>",
    ],
)
async def test_malformed_months_are_a_protocol_error(fake: FakeBureau, adapter: XmlGbkBureauAdapter, body: str) -> None:
    fake.on("Q002", Reply(body))
    with pytest.raises(UpstreamProtocolError):
        await adapter.contribution_history(ZHANG_SAN, "2024-08", "2024-10", context=CallContext())


# -- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "field"), [("B001", "insurance_types"), ("B003", "id_number"), ("B005", "name"), ("B999", None)]
)
async def test_business_refusals_on_search(fake: FakeBureau, adapter: XmlGbkBureauAdapter, code: str, field: str | None) -> None:
    fake.on("Q001", refuse(code, "业务拒绝"))
    with pytest.raises(BusinessRejection) as info:
        await adapter.search_participation(ZHANG_SAN, context=CallContext())
    error = info.value
    assert (error.upstream_code, error.upstream_message, error.field) == (code, "业务拒绝", field)
    assert error.status_code == 200
    assert error.upstream == "wh-bureau"
    assert fake.count("Q001") == 1  # a business "no" is never retried


@pytest.mark.parametrize(("code", "field"), [("B001", "insurance_types"), ("B003", "id_number"), ("B005", "name")])
async def test_business_refusals_on_submit_are_not_retried_or_looked_up(
    fake: FakeBureau, adapter: XmlGbkBureauAdapter, code: str, field: str
) -> None:
    fake.on("E001", refuse(code, "已参保"))
    with pytest.raises(BusinessRejection) as info:
        await adapter.submit_enrolment(submission(), context=CallContext())
    assert (info.value.upstream_code, info.value.upstream_message, info.value.field) == (code, "已参保", field)
    assert fake.order == ["LOGIN", "E001"]


@pytest.mark.parametrize("operation", ["search", "submit"])
async def test_s400_is_a_rejection_not_an_ambiguity(fake: FakeBureau, adapter: XmlGbkBureauAdapter, operation: str) -> None:
    fake.always("Q001", refuse("S400", "报文格式错误")).always("E001", refuse("S400", "报文格式错误"))
    with pytest.raises(BusinessRejection) as info:
        if operation == "search":
            await adapter.search_participation(ZHANG_SAN, context=CallContext())
        else:
            await adapter.submit_enrolment(submission(), context=CallContext())
    error = info.value
    assert (error.upstream_code, error.upstream_message, error.field, error.status_code) == ("S400", "报文格式错误", None, 400)
    assert fake.order == ["LOGIN", "Q001" if operation == "search" else "E001"]  # no retry, no lookup


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>gateway</html>"),
        httpx.Response(200, content=b""),
        httpx.Response(200, content=b'<?xml version="1.0" encoding="GBK"?><Response><Head>'),  # truncated
        httpx.Response(200, content=b"\xff\xfe<\x00R\x00"),  # not GBK
        httpx.Response(200, content='<?xml version="1.0" encoding="GBK"?><Reply><Head><ReturnCode>0000</ReturnCode></Head><Body/></Reply>'.encode("gbk")),
        httpx.Response(200, content=b"<Response><Head><ReturnMsg>ok</ReturnMsg></Head><Body/></Response>"),
        httpx.Response(200, content=b"<Response><Body/></Response>"),
        httpx.Response(200, content=b"<Response><Head><ReturnCode>0000</ReturnCode></Head></Response>"),  # no Body
        httpx.Response(400, content=b"<Response><Head><ReturnCode>0000</ReturnCode></Head><Body><Records/></Body></Response>"),
        httpx.Response(404, text="Not Found"),
        httpx.Response(401, text="Unauthorized"),
    ],
)
async def test_an_unreadable_answer_is_a_protocol_error(
    fake: FakeBureau, adapter: XmlGbkBureauAdapter, response: httpx.Response
) -> None:
    fake.on("Q001", response)
    with pytest.raises(UpstreamProtocolError) as info:
        await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert fake.count("Q001") == 1
    assert info.value.status_code == response.status_code
    assert info.value.request is not None
    assert info.value.upstream == "wh-bureau"


@pytest.mark.parametrize(
    "document",
    [
        # an internal entity ("billion laughs" in miniature)
        (
            '<?xml version="1.0" encoding="GBK"?><!DOCTYPE Response [<!ENTITY a "成功"><!ENTITY b "&a;&a;&a;">]>'
            "<Response><Head><ReturnCode>0000</ReturnCode><ReturnMsg>&b;</ReturnMsg></Head><Body><Records/></Body></Response>"
        ),
        # an external entity
        (
            '<?xml version="1.0" encoding="GBK"?><!DOCTYPE Response [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            "<Response><Head><ReturnCode>0000</ReturnCode><ReturnMsg>&x;</ReturnMsg></Head><Body><Records/></Body></Response>"
        ),
        # a DTD, even without entities
        (
            '<?xml version="1.0" encoding="GBK"?><!DOCTYPE Response SYSTEM "http://evil.test/r.dtd">'
            "<Response><Head><ReturnCode>0000</ReturnCode></Head><Body><Records/></Body></Response>"
        ),
    ],
)
async def test_dtds_and_entities_from_upstream_are_refused(
    fake: FakeBureau, adapter: XmlGbkBureauAdapter, document: str
) -> None:
    fake.on("Q001", httpx.Response(200, content=document.encode("gbk")))
    with pytest.raises(UpstreamProtocolError, match="DTD or entities"):
        await adapter.search_participation(ZHANG_SAN, context=CallContext())


async def test_an_answer_to_another_message_is_a_protocol_error(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("Q001", Reply("<Records/>", serial_no="HGW-SOMEONE-ELSE"))
    with pytest.raises(UpstreamProtocolError, match="another message"):
        await adapter.search_participation(ZHANG_SAN, context=CallContext())


async def test_b404_elsewhere_is_not_found(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("Q001", NOT_FOUND)
    with pytest.raises(UpstreamNotFound):
        await adapter.search_participation(ZHANG_SAN, context=CallContext())


# -- transient failures and retries --------------------------------------------------------


async def test_s503_is_retried_after_retry_after(fake: FakeBureau, make_adapter: MakeAdapter) -> None:
    sleeps = SleepRecorder()
    adapter = make_adapter(sleep=sleeps, policy=fast_policy(max_retry_after=10.0))
    fake.on("Q001", refuse("S503", "系统繁忙", headers={"Retry-After": "3"}), records(record_xml()))
    assert len(await adapter.search_participation(ZHANG_SAN, context=CallContext())) == 1
    assert fake.order == ["LOGIN", "Q001", "Q001"]
    assert len(sleeps.waits) == 1
    assert sleeps.waits[0] >= 3.0


async def test_s503_on_e001_means_not_applied_and_is_retried_without_lookup(fake: FakeBureau, make_adapter: MakeAdapter) -> None:
    sleeps = SleepRecorder()
    adapter = make_adapter(sleep=sleeps)
    fake.on("E001", refuse("S503", "系统繁忙", headers={"Retry-After": "2"}), acceptance())
    receipt = await adapter.submit_enrolment(submission(), context=CallContext())
    assert receipt.reference == BIZ_NO
    assert fake.order == ["LOGIN", "E001", "E001"]
    assert sleeps.waits[0] >= 2.0


async def test_s503_with_a_retry_after_beyond_the_policy_gives_up(fake: FakeBureau, make_adapter: MakeAdapter) -> None:
    sleeps = SleepRecorder()
    adapter = make_adapter(sleep=sleeps, policy=fast_policy(max_retry_after=5.0, max_attempts=4))
    fake.always("Q001", refuse("S503", "系统繁忙", headers={"Retry-After": "60"}))
    with pytest.raises(UpstreamServerError) as info:
        await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert info.value.status_code == 503
    assert fake.count("Q001") == 1
    assert sleeps.waits == []


async def test_s503_with_another_status_is_still_retried(fake: FakeBureau, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(sleep=SleepRecorder())
    fake.on("E001", refuse("S503", "系统繁忙", status=200), acceptance())
    await adapter.submit_enrolment(submission(), context=CallContext())
    assert fake.order == ["LOGIN", "E001", "E001"]


async def test_declared_policy_waits_for_s503(fake: FakeBureau, transport: Callable[[], httpx.MockTransport]) -> None:
    adapter = XmlGbkBureauAdapter(config(), transport=transport())
    sleeps = SleepRecorder()
    adapter.client._sleep = sleeps
    try:
        fake.on("Q001", refuse("S503", "系统繁忙", headers={"Retry-After": "4"}), records())
        await adapter.search_participation(ZHANG_SAN, context=CallContext())
        assert sleeps.waits[0] >= 4.0
    finally:
        await adapter.aclose()


@pytest.mark.parametrize(
    "failure",
    [refuse("S999", "系统错误"), httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.Response(502)],
)
async def test_a_query_retries_transient_failures(fake: FakeBureau, adapter: XmlGbkBureauAdapter, failure: Any) -> None:
    fake.on("Q001", failure, failure, records(record_xml()))
    assert len(await adapter.search_participation(ZHANG_SAN, context=CallContext())) == 1
    assert fake.count("Q001") == 3


@pytest.mark.parametrize(
    ("failure", "error_type"),
    [(refuse("S999", "系统错误"), UpstreamServerError), (httpx.ConnectError("x"), UpstreamConnectError),
     (httpx.ReadTimeout("slow"), UpstreamTimeout)],
)
async def test_a_query_gives_up_after_max_attempts(
    fake: FakeBureau, make_adapter: MakeAdapter, failure: Any, error_type: type[Exception]
) -> None:
    adapter = make_adapter(policy=fast_policy(max_attempts=3))
    fake.always("Q001", failure)
    with pytest.raises(error_type):
        await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert fake.count("Q001") == 3


async def test_429_is_rate_limited(fake: FakeBureau, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(sleep=SleepRecorder(), policy=fast_policy(max_attempts=2))
    fake.always("Q001", httpx.Response(429, headers={"Retry-After": "1"}))
    with pytest.raises(UpstreamRateLimited):
        await adapter.search_participation(ZHANG_SAN, context=CallContext())


# -- E001 / E002: exactly once -------------------------------------------------------------


async def test_submit_sends_the_protocol_body_and_returns_the_receipt(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("E001", acceptance(accept_no="420100-E-000042", accept_date="2026-11-21"))
    receipt = await adapter.submit_enrolment(
        submission(insurance_types=("pension", "unemployment", "medical", "work_injury", "maternity"),
                   contribution_base=Decimal(3604)),
        context=CallContext(),
    )
    assert receipt == EnrolmentReceipt(
        reference=BIZ_NO, bureau_reference="420100-E-000042", status="accepted", accepted_on=dt.date(2026, 11, 21)
    )
    [sent] = fake.calls("E001")
    assert [child.tag for child in sent.body] == [
        "BizNo", "IdNo", "Name", "UnitCode", "UnitName", "BeginDate", "InsTypes", "Base"
    ]
    assert sent.text("BizNo") == BIZ_NO
    assert sent.text("IdNo") == LI_MING.id_number
    assert sent.text("Name") == "李明"
    assert sent.text("UnitCode") == USCC
    assert sent.text("UnitName") == UNIT_NAME
    assert sent.text("BeginDate") == "2026-11-02"
    assert [t.text for t in sent.body.findall("InsTypes/InsType")] == ["110", "210", "310", "410", "510"]
    assert sent.text("Base") == "3604.00"
    assert sent.head["SessionToken"] == "TOKEN-1"


async def test_receipt_without_accept_date(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("E001", Reply(f"<BizNo>{BIZ_NO}</BizNo><AcceptNo>420100-E-000003</AcceptNo><AcceptDate/>"))
    receipt = await adapter.submit_enrolment(submission(), context=CallContext())
    assert (receipt.status, receipt.accepted_on) == ("accepted", None)


@pytest.mark.parametrize(
    "reply",
    [
        acceptance(biz_no="HGW-SOMETHING-ELSE"),
        Reply(f"<BizNo>{BIZ_NO}</BizNo>"),  # no AcceptNo
        Reply("<AcceptNo>420100-E-000001</AcceptNo>"),  # no BizNo
        acceptance(accept_date="2026/11/21"),
    ],
)
async def test_an_unreadable_receipt_is_a_protocol_error(fake: FakeBureau, adapter: XmlGbkBureauAdapter, reply: Reply) -> None:
    fake.on("E002", reply)
    with pytest.raises(UpstreamProtocolError):
        await adapter.find_enrolment(BIZ_NO, context=CallContext())


@pytest.mark.parametrize("lost", [httpx.ReadTimeout("no answer"), httpx.RemoteProtocolError("gone"), refuse("S999", "系统错误")])
async def test_ambiguous_submit_that_landed_is_not_sent_again(fake: FakeBureau, adapter: XmlGbkBureauAdapter, lost: Any) -> None:
    fake.on("E001", lost, acceptance(accept_no="420100-E-000999"))
    fake.on("E002", acceptance(accept_no="420100-E-000001"))
    receipt = await adapter.submit_enrolment(submission(), context=CallContext())
    assert receipt.bureau_reference == "420100-E-000001"  # the bureau's answer to E002
    assert fake.order == ["LOGIN", "E001", "E002"]
    [lookup] = fake.calls("E002")
    assert [(child.tag, child.text) for child in lookup.body] == [("BizNo", BIZ_NO)]


@pytest.mark.parametrize("lost", [httpx.ReadTimeout("no answer"), httpx.ReadError("reset"), refuse("S999", "系统错误"),
                                  httpx.Response(502)])
async def test_ambiguous_submit_that_did_not_land_is_sent_again(fake: FakeBureau, adapter: XmlGbkBureauAdapter, lost: Any) -> None:
    fake.on("E001", lost, acceptance())
    fake.on("E002", NOT_FOUND)
    receipt = await adapter.submit_enrolment(submission(), context=CallContext())
    assert receipt.reference == BIZ_NO
    assert fake.order == ["LOGIN", "E001", "E002", "E001"]  # asked first, then sent again
    first, second = fake.calls("E001")
    assert ET.tostring(first.body) == ET.tostring(second.body)  # same BizNo, same body
    assert first.head["SerialNo"] != second.head["SerialNo"]  # a new message


async def test_s999_with_status_200_on_e001_is_ambiguous_too(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("E001", refuse("S999", "系统错误", status=200))
    fake.on("E002", acceptance())
    await adapter.submit_enrolment(submission(), context=CallContext())
    assert fake.order == ["LOGIN", "E001", "E002"]


async def test_submit_lost_every_round_but_never_landed_is_a_plain_failure(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.always("E001", httpx.ReadTimeout("lost")).always("E002", NOT_FOUND)
    with pytest.raises(UpstreamServerError, match="did not land"):
        await adapter.submit_enrolment(submission(), context=CallContext())
    rounds = XmlGbkBureauAdapter.max_submit_rounds
    assert fake.count("E001") == rounds
    assert fake.count("E002") == rounds
    assert fake.count("LOGIN") == 1


async def test_submit_is_ambiguous_when_the_bureau_cannot_be_asked(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.always("E001", httpx.ReadTimeout("lost")).always("E002", httpx.ConnectError("refused"))
    with pytest.raises(AmbiguousOutcome) as info:
        await adapter.submit_enrolment(submission(), context=CallContext())
    assert BIZ_NO in str(info.value)
    assert info.value.upstream == "wh-bureau"
    assert isinstance(info.value.__cause__, UpstreamConnectError)
    assert fake.count("E001") == 1  # never re-sent blind
    assert fake.count("E002") == 3  # the lookup itself is a retried query


async def test_auth01_on_the_lookup_logs_in_again(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("E001", httpx.ReadTimeout("lost"))
    fake.on("E002", refuse("AUTH01"), acceptance())
    receipt = await adapter.submit_enrolment(submission(), context=CallContext())
    assert receipt.reference == BIZ_NO
    assert fake.order == ["LOGIN", "E001", "E002", "LOGIN", "E002"]


async def test_find_enrolment_returns_the_receipt(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("E002", acceptance(accept_no="420100-E-000007", accept_date="2026-11-22"))
    receipt = await adapter.find_enrolment(BIZ_NO, context=CallContext())
    assert receipt == EnrolmentReceipt(
        reference=BIZ_NO, bureau_reference="420100-E-000007", status="accepted", accepted_on=dt.date(2026, 11, 22)
    )


async def test_find_enrolment_returns_none_when_unknown(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("E002", NOT_FOUND)
    assert await adapter.find_enrolment(BIZ_NO, context=CallContext()) is None
    assert fake.order == ["LOGIN", "E002"]


async def test_find_enrolment_does_not_hide_other_errors(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.always("E002", refuse("AUTH01"))
    with pytest.raises(UpstreamAuthenticationError):
        await adapter.find_enrolment(BIZ_NO, context=CallContext())


# -- Q002 without a name ----------------------------------------------------------------------


async def test_contribution_history_without_a_name_leaves_it_out(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("Q002", months(month_xml("202408", "110", "2")))
    [month] = await adapter.contribution_history(
        Person(id_number=ZHANG_SAN.id_number, name=""), "2024-08", "2024-08", context=CallContext()
    )
    assert month.status == "late"
    [query] = fake.calls("Q002")
    assert [child.tag for child in query.body] == ["IdNo", "FromPeriod", "ToPeriod"]


# -- D001 / D002 declarations -----------------------------------------------------------------

DECL_NO = "HGW-D-0123456789ABCDEF"


def declaration_submission(**overrides: Any) -> DeclarationSubmission:
    values: dict[str, Any] = {
        "reference": DECL_NO,
        "region": REGION,
        "employer": Employer(uscc=USCC, name=UNIT_NAME),
        "period": "2026-11",
        "lines": (
            DeclarationLine(1, LI_MING, "new", ("pension", "medical"), Decimal("8000"), hire_date=dt.date(2026, 11, 2)),
            DeclarationLine(2, ZHANG_SAN, "leave", ("pension",), None, leave_date=dt.date(2026, 11, 15)),
            DeclarationLine(3, ZHANG_SAN, "change", ("medical",), Decimal("9500.00")),
            DeclarationLine(4, ZHANG_SAN, "continue", ("medical",), Decimal("9500.00")),
        ),
    }
    values.update(overrides)
    return DeclarationSubmission(**values)


def result_xml(line_no: int, status: str = "1", code: str = "", msg: str = "") -> str:
    return (f"<Result><LineNo>{line_no}</LineNo><LineStatus>{status}</LineStatus>"
            f"<ErrCode>{code}</ErrCode><ErrMsg>{msg}</ErrMsg></Result>")


def declared(*results: str, status: str = "2", biz_no: str = DECL_NO, decl_no: str = "420100-D-000001") -> Reply:
    return Reply(f"<BizNo>{biz_no}</BizNo><DeclNo>{decl_no}</DeclNo><DeclStatus>{status}</DeclStatus>"
                 f"<DecideDate>2026-11-21</DecideDate><Results>{''.join(results)}</Results>")


PARTIAL = declared(result_xml(1), result_xml(2, "0", "B006", "该单位无此人有效参保记录"), result_xml(3), result_xml(4))


async def test_declaration_sends_the_protocol_body_and_maps_line_results(
    fake: FakeBureau, adapter: XmlGbkBureauAdapter
) -> None:
    fake.on("D001", PARTIAL)
    receipt = await adapter.submit_declaration(declaration_submission(), context=CallContext())
    assert receipt == DeclarationReceipt(
        reference=DECL_NO,
        bureau_reference="420100-D-000001",
        status="partially_accepted",
        lines=(
            DeclarationLineResult(1, "accepted"),
            DeclarationLineResult(2, "rejected", "B006", "该单位无此人有效参保记录"),
            DeclarationLineResult(3, "accepted"),
            DeclarationLineResult(4, "accepted"),
        ),
        decided_on=dt.date(2026, 11, 21),
    )
    [sent] = fake.calls("D001")
    assert [child.tag for child in sent.body] == ["BizNo", "UnitCode", "UnitName", "Period", "Lines"]
    assert (sent.text("BizNo"), sent.text("UnitName"), sent.text("Period")) == (DECL_NO, UNIT_NAME, "202611")
    lines = [{child.tag: (child.text or "") for child in line if child.tag != "InsTypes"}
             for line in sent.body.findall("Lines/Line")]
    assert lines == [
        {"LineNo": "1", "IdNo": LI_MING.id_number, "Name": "李明", "ChangeType": "1", "Base": "8000.00",
         "HireDate": "2026-11-02"},
        {"LineNo": "2", "IdNo": ZHANG_SAN.id_number, "Name": "张三", "ChangeType": "2", "LeaveDate": "2026-11-15"},
        {"LineNo": "3", "IdNo": ZHANG_SAN.id_number, "Name": "张三", "ChangeType": "3", "Base": "9500.00"},
        {"LineNo": "4", "IdNo": ZHANG_SAN.id_number, "Name": "张三", "ChangeType": "4", "Base": "9500.00"},
    ]
    assert [t.text for t in sent.body.findall("Lines/Line[1]/InsTypes/InsType")] == ["110", "310"]


@pytest.mark.parametrize(("wire", "status"), [("1", "accepted"), ("2", "partially_accepted"), ("3", "rejected")])
async def test_declaration_statuses(fake: FakeBureau, adapter: XmlGbkBureauAdapter, wire: str, status: str) -> None:
    fake.on("D002", declared(result_xml(1), status=wire))
    receipt = await adapter.find_declaration(DECL_NO, context=CallContext())
    assert receipt is not None and receipt.status == status


async def test_declaration_refused_as_a_whole_is_a_rejection(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("D001", refuse("S400", "报文格式错误: LineNo must be unique"))
    with pytest.raises(BusinessRejection) as info:
        await adapter.submit_declaration(declaration_submission(), context=CallContext())
    assert info.value.upstream_code == "S400"
    assert fake.order == ["LOGIN", "D001"]


async def test_ambiguous_declaration_that_landed_is_not_sent_again(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("D001", httpx.ReadTimeout("lost"))
    fake.on("D002", PARTIAL)
    receipt = await adapter.submit_declaration(declaration_submission(), context=CallContext())
    assert receipt.status == "partially_accepted"
    assert fake.order == ["LOGIN", "D001", "D002"]
    assert fake.calls("D002")[0].text("BizNo") == DECL_NO


async def test_ambiguous_declaration_that_did_not_land_is_sent_again(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("D001", refuse("S999", "系统错误"), declared(result_xml(1), status="1"))
    fake.on("D002", NOT_FOUND)
    receipt = await adapter.submit_declaration(declaration_submission(), context=CallContext())
    assert receipt.status == "accepted"
    assert fake.order == ["LOGIN", "D001", "D002", "D001"]
    first, second = fake.calls("D001")
    assert ET.tostring(first.body) == ET.tostring(second.body)


async def test_find_declaration_of_a_reference_that_never_landed_is_none(
    fake: FakeBureau, adapter: XmlGbkBureauAdapter
) -> None:
    fake.on("D002", NOT_FOUND)
    assert await adapter.find_declaration(DECL_NO, context=CallContext()) is None


async def test_auth01_on_a_declaration_logs_in_again_once(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("D001", refuse("AUTH01"), PARTIAL)
    await adapter.submit_declaration(declaration_submission(), context=CallContext())
    assert fake.order == ["LOGIN", "D001", "LOGIN", "D001"]


@pytest.mark.parametrize(
    "reply",
    [
        declared(result_xml(1), biz_no="HGW-D-SOMETHING-ELSE"),
        declared(result_xml(1), status="7"),
        declared(result_xml(1, "5")),
        Reply(f"<BizNo>{DECL_NO}</BizNo><DeclNo>420100-D-000001</DeclNo><DeclStatus>1</DeclStatus>"),
    ],
)
async def test_an_unreadable_declaration_answer_is_a_protocol_error(
    fake: FakeBureau, adapter: XmlGbkBureauAdapter, reply: Reply
) -> None:
    fake.on("D002", reply)
    with pytest.raises(UpstreamProtocolError):
        await adapter.find_declaration(DECL_NO, context=CallContext())


async def test_declaration_names_gbk_cannot_hold_are_refused_before_sending(
    fake: FakeBureau, adapter: XmlGbkBureauAdapter
) -> None:
    bad = DeclarationLine(1, Person(LI_MING.id_number, f"李{NOT_GBK}"), "new", ("pension",), Decimal("8000.00"))
    with pytest.raises(BusinessRejection) as info:
        await adapter.submit_declaration(declaration_submission(lines=(bad,)), context=CallContext())
    assert info.value.field == "name"
    assert fake.received == []


# -- T001 / T002 transfers out -------------------------------------------------------------

TRANSFER_REF = "HGW-T-0123456789ABCDEF"


def transfer_out_submission(**overrides: Any) -> TransferOutSubmission:
    values: dict[str, Any] = {
        "reference": TRANSFER_REF,
        "region": REGION,
        "to_region": "330100",
        "person": ZHANG_SAN,
        "insurance_types": ("pension", "medical"),
    }
    values.update(overrides)
    return TransferOutSubmission(**values)


CARRIED_XML = (
    "<Item><InsType>110</InsType><PaidMonths>68</PaidMonths><BeginDate>2019-03-01</BeginDate>"
    "<Base>9000.00</Base><FundAmount>48960.00</FundAmount></Item>"
    "<Item><InsType>310</InsType><PaidMonths>68</PaidMonths><BeginDate>2019-03-01</BeginDate>"
    "<Base>9000.00</Base><FundAmount>12240.00</FundAmount></Item>"
)


def transfer_state(stage: str = "1", carried: str = "", reason_code: str = "", reason_msg: str = "",
                   biz_no: str = TRANSFER_REF, stage_date: str = "2026-11-21") -> Reply:
    return Reply(
        f"<BizNo>{biz_no}</BizNo><TransferNo>420100-T-000001</TransferNo><ToRegion>330100</ToRegion>"
        f"<Stage>{stage}</Stage><ApplyDate>2026-11-21</ApplyDate><StageDate>{stage_date}</StageDate>"
        f"<ReasonCode>{reason_code}</ReasonCode><ReasonMsg>{reason_msg}</ReasonMsg><Carried>{carried}</Carried>"
    )


async def test_transfer_out_sends_the_protocol_body(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("T001", transfer_state("1"))
    progress = await adapter.submit_transfer_out(transfer_out_submission(), context=CallContext())
    assert progress == TransferOutProgress(
        reference=TRANSFER_REF, bureau_reference="420100-T-000001", stage="submitted",
        updated_on=dt.date(2026, 11, 21),
    )
    [sent] = fake.calls("T001")
    assert [(child.tag, child.text) for child in sent.body if child.tag != "InsTypes"] == [
        ("BizNo", TRANSFER_REF), ("IdNo", ZHANG_SAN.id_number), ("Name", "张三"), ("ToRegion", "330100"),
    ]
    assert [t.text for t in sent.body.findall("InsTypes/InsType")] == ["110", "310"]


async def test_transfer_out_stages_and_carried_funds(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("T002", transfer_state("2"), transfer_state("3", CARRIED_XML, stage_date="2026-11-22"))
    reviewed = await adapter.transfer_out_status(TRANSFER_REF, context=CallContext())
    assert reviewed is not None and (reviewed.stage, reviewed.carried) == ("source_reviewed", ())
    done = await adapter.transfer_out_status(TRANSFER_REF, context=CallContext())
    assert done == TransferOutProgress(
        reference=TRANSFER_REF,
        bureau_reference="420100-T-000001",
        stage="funds_transferred",
        carried=(
            CarriedInsurance("pension", 68, dt.date(2019, 3, 1), Decimal("48960.00")),
            CarriedInsurance("medical", 68, dt.date(2019, 3, 1), Decimal("12240.00")),
        ),
        updated_on=dt.date(2026, 11, 22),
    )
    assert [(c.text("BizNo")) for c in fake.calls("T002")] == [TRANSFER_REF, TRANSFER_REF]


async def test_transfer_out_rejected_with_a_chinese_reason(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("T002", transfer_state("9", reason_code="B007", reason_msg="无可转出的参保记录：失业保险"))
    progress = await adapter.transfer_out_status(TRANSFER_REF, context=CallContext())
    assert progress is not None
    assert (progress.stage, progress.reason_code, progress.reason_message, progress.carried) == (
        "rejected", "B007", "无可转出的参保记录：失业保险", ()
    )


async def test_transfer_out_name_mismatch_is_a_rejection(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("T001", refuse("B005", "姓名与公民身份号码不符"))
    with pytest.raises(BusinessRejection) as info:
        await adapter.submit_transfer_out(transfer_out_submission(), context=CallContext())
    assert (info.value.upstream_code, info.value.upstream_message, info.value.field) == (
        "B005", "姓名与公民身份号码不符", "name"
    )
    assert fake.order == ["LOGIN", "T001"]


async def test_ambiguous_transfer_out_is_asked_about_before_resending(
    fake: FakeBureau, adapter: XmlGbkBureauAdapter
) -> None:
    fake.on("T001", httpx.ReadTimeout("lost"), transfer_state("1"))
    fake.on("T002", NOT_FOUND)
    progress = await adapter.submit_transfer_out(transfer_out_submission(), context=CallContext())
    assert progress.stage == "submitted"
    assert fake.order == ["LOGIN", "T001", "T002", "T001"]


async def test_ambiguous_transfer_out_that_landed(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("T001", refuse("S999", "系统错误"))
    fake.on("T002", transfer_state("2"))
    progress = await adapter.submit_transfer_out(transfer_out_submission(), context=CallContext())
    assert progress.stage == "source_reviewed"
    assert fake.order == ["LOGIN", "T001", "T002"]


async def test_transfer_out_status_of_a_reference_that_never_landed_is_none(
    fake: FakeBureau, adapter: XmlGbkBureauAdapter
) -> None:
    fake.on("T002", NOT_FOUND)
    assert await adapter.transfer_out_status(TRANSFER_REF, context=CallContext()) is None


@pytest.mark.parametrize(
    "reply",
    [
        transfer_state("1", biz_no="HGW-T-OTHER-000001"),
        transfer_state("4"),
        transfer_state("9"),  # rejected without a reason code
        transfer_state("3", "<Item><InsType>110</InsType><PaidMonths>x</PaidMonths><FundAmount>1.00</FundAmount></Item>"),
        transfer_state("3", "<Item><InsType>110</InsType><PaidMonths>1</PaidMonths></Item>"),
    ],
)
async def test_an_unreadable_transfer_state_is_a_protocol_error(
    fake: FakeBureau, adapter: XmlGbkBureauAdapter, reply: Reply
) -> None:
    fake.on("T002", reply)
    with pytest.raises(UpstreamProtocolError):
        await adapter.transfer_out_status(TRANSFER_REF, context=CallContext())


# -- T003 / T004 transfers in --------------------------------------------------------------

TRANSFER_IN_REF = "HGW-I-0123456789ABCDEF"


def transfer_in_submission(**overrides: Any) -> TransferInSubmission:
    values: dict[str, Any] = {
        "reference": TRANSFER_IN_REF,
        "region": REGION,
        "from_region": "330100",
        "source_reference": "330100-T-000001",
        "person": LI_MING,
        "carried": (
            CarriedInsurance("pension", 30, dt.date(2018, 1, 1), Decimal("1000")),
            CarriedInsurance("medical", 24, None, Decimal("0.00")),
        ),
    }
    values.update(overrides)
    return TransferInSubmission(**values)


def transferred_in(status: str = "1", code: str = "", msg: str = "", biz_no: str = TRANSFER_IN_REF) -> Reply:
    return Reply(f"<BizNo>{biz_no}</BizNo><AcceptNo>420100-I-000001</AcceptNo><InStatus>{status}</InStatus>"
                 f"<AcceptDate>2026-11-21</AcceptDate><ReasonCode>{code}</ReasonCode><ReasonMsg>{msg}</ReasonMsg>")


async def test_transfer_in_sends_the_protocol_body(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("T003", transferred_in())
    receipt = await adapter.submit_transfer_in(transfer_in_submission(), context=CallContext())
    assert receipt == TransferInReceipt(TRANSFER_IN_REF, "420100-I-000001", "accepted")
    [sent] = fake.calls("T003")
    assert [(child.tag, child.text) for child in sent.body if child.tag != "Carried"] == [
        ("BizNo", TRANSFER_IN_REF), ("IdNo", LI_MING.id_number), ("Name", "李明"), ("FromRegion", "330100"),
        ("SourceTransferNo", "330100-T-000001"),
    ]
    items = [{child.tag: child.text for child in item} for item in sent.body.findall("Carried/Item")]
    assert items == [
        {"InsType": "110", "PaidMonths": "30", "BeginDate": "2018-01-01", "FundAmount": "1000.00"},
        {"InsType": "310", "PaidMonths": "24", "FundAmount": "0.00"},
    ]


async def test_transfer_in_refused_with_a_reason(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("T003", transferred_in("9", "B005", "姓名与公民身份号码不符"))
    receipt = await adapter.submit_transfer_in(transfer_in_submission(), context=CallContext())
    assert (receipt.status, receipt.reason_code, receipt.reason_message) == ("rejected", "B005", "姓名与公民身份号码不符")


async def test_ambiguous_transfer_in_then_lookup(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("T003", httpx.RemoteProtocolError("gone"))
    fake.on("T004", transferred_in())
    receipt = await adapter.submit_transfer_in(transfer_in_submission(), context=CallContext())
    assert receipt.status == "accepted"
    assert fake.order == ["LOGIN", "T003", "T004"]


async def test_find_transfer_in_of_a_reference_that_never_landed_is_none(
    fake: FakeBureau, adapter: XmlGbkBureauAdapter
) -> None:
    fake.on("T004", NOT_FOUND)
    assert await adapter.find_transfer_in(TRANSFER_IN_REF, context=CallContext()) is None


async def test_an_unreadable_transfer_in_answer_is_a_protocol_error(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("T004", transferred_in("5"))
    with pytest.raises(UpstreamProtocolError):
        await adapter.find_transfer_in(TRANSFER_IN_REF, context=CallContext())


async def test_observer_names_the_new_operations(fake: FakeBureau, make_adapter: MakeAdapter) -> None:
    seen: list[UpstreamCall] = []
    adapter = make_adapter(observer=seen.append)
    fake.on("D001", PARTIAL).on("D002", PARTIAL)
    fake.on("T001", transfer_state()).on("T002", transfer_state())
    fake.on("T003", transferred_in()).on("T004", transferred_in())
    await adapter.submit_declaration(declaration_submission(), context=CallContext())
    await adapter.find_declaration(DECL_NO, context=CallContext())
    await adapter.submit_transfer_out(transfer_out_submission(), context=CallContext())
    await adapter.transfer_out_status(TRANSFER_REF, context=CallContext())
    await adapter.submit_transfer_in(transfer_in_submission(), context=CallContext())
    await adapter.find_transfer_in(TRANSFER_IN_REF, context=CallContext())
    assert [c.operation for c in seen if c.operation != "session.login"] == [
        "declaration.submit", "declaration.lookup", "transfer_out.submit", "transfer_out.status",
        "transfer_in.submit", "transfer_in.lookup",
    ]


# -- observer and circuit --------------------------------------------------------------------


async def test_observer_sees_login_and_business_calls(fake: FakeBureau, make_adapter: MakeAdapter) -> None:
    seen: list[UpstreamCall] = []
    adapter = make_adapter(observer=seen.append)
    fake.on("Q001", refuse("AUTH01"), records())
    fake.on("E001", httpx.ReadTimeout("lost"))
    fake.on("E002", acceptance())
    await adapter.search_participation(ZHANG_SAN, context=CallContext())
    await adapter.submit_enrolment(submission(), context=CallContext())
    assert [(c.operation, c.outcome, c.upstream_code) for c in seen] == [
        ("session.login", "ok", None),
        ("participation.search", "SessionExpired", "AUTH01"),
        ("session.login", "ok", None),
        ("participation.search", "ok", None),
        ("enrolment.submit", "AmbiguousOutcome", None),
        ("enrolment.lookup", "ok", None),
    ]


async def test_refusals_do_not_open_the_circuit(fake: FakeBureau, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(policy=fast_policy(max_attempts=1, failure_threshold=2))
    fake.always("Q001", refuse("B005", "姓名不符"))
    for _ in range(4):
        with pytest.raises(BusinessRejection):
            await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert adapter.health().circuit == "closed"
    assert adapter.health().consecutive_failures == 0


async def test_repeated_s999_opens_the_circuit(fake: FakeBureau, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(policy=fast_policy(max_attempts=1, failure_threshold=2))
    fake.always("Q001", refuse("S999", "系统错误"))
    for _ in range(2):
        with pytest.raises(UpstreamServerError):
            await adapter.search_participation(ZHANG_SAN, context=CallContext())
    assert adapter.health().circuit == "open"


# -- payment notices (P001 / P002) -------------------------------------------------------

PAY_BIZ_NO = "HGW-P-0123456789ABCDEF"
DECL_BIZ_NO = "HGW-D-0123456789ABCDEF"


def payment_notice(**overrides: Any) -> ContributionPaymentNotice:
    values: dict[str, Any] = {
        "reference": PAY_BIZ_NO,
        "region": REGION,
        "employer": Employer(uscc=USCC, name=UNIT_NAME),
        "period": "2026-11",
        "declaration_reference": DECL_BIZ_NO,
        "amount": Decimal("2592.00"),
        "paid_on": dt.date(2026, 11, 20),
        "payment_reference": "E2E-20261120-000001",
    }
    values.update(overrides)
    return ContributionPaymentNotice(**values)


def confirmation(biz_no: str = PAY_BIZ_NO, amount: str = "2592.00") -> Reply:
    return Reply(
        f"<BizNo>{biz_no}</BizNo><ConfirmNo>420100-P-000001</ConfirmNo><DeclNo>420100-D-000001</DeclNo>"
        f"<ConfirmAmount>{amount}</ConfirmAmount><ConfirmDate>2026-11-21</ConfirmDate>"
    )


async def test_payment_notice_is_p001_and_a_confirmation_is_mapped(
    fake: FakeBureau, adapter: XmlGbkBureauAdapter
) -> None:
    fake.on("P001", confirmation())
    receipt = await adapter.notify_contribution_payment(payment_notice(), context=CallContext())
    assert receipt == ContributionPaymentReceipt(
        reference=PAY_BIZ_NO,
        bureau_reference="420100-P-000001",
        status="confirmed",
        confirmed_amount=Decimal("2592.00"),
        confirmed_on=dt.date(2026, 11, 21),
    )
    (sent,) = fake.calls("P001")
    assert [child.tag for child in sent.body] == [
        "BizNo", "UnitCode", "UnitName", "Period", "DeclBizNo", "PayAmount", "PayDate", "BankSerialNo"
    ]
    assert sent.text("BizNo") == PAY_BIZ_NO
    assert sent.text("UnitCode") == USCC and sent.text("UnitName") == UNIT_NAME
    assert sent.text("Period") == "202611"
    assert sent.text("DeclBizNo") == DECL_BIZ_NO
    assert sent.text("PayAmount") == "2592.00"
    assert sent.text("PayDate") == "2026-11-20"
    assert sent.text("BankSerialNo") == "E2E-20261120-000001"
    assert sent.head["SessionToken"] == "TOKEN-1"


@pytest.mark.parametrize(
    ("code", "field_name"),
    [
        ("B008", "declaration_reference"),
        ("B009", "declaration_reference"),
        ("B010", None),
        ("B011", "amount"),
        ("B012", "declaration_reference"),
    ],
)
async def test_payment_refusals_are_business_rejections(
    fake: FakeBureau, adapter: XmlGbkBureauAdapter, code: str, field_name: str | None
) -> None:
    fake.on("P001", refuse(code, "不予确认"))
    with pytest.raises(BusinessRejection) as caught:
        await adapter.notify_contribution_payment(payment_notice(), context=CallContext())
    assert caught.value.upstream_code == code
    assert caught.value.upstream_message == "不予确认"
    assert caught.value.field == field_name
    assert fake.count("P001") == 1 and fake.count("P002") == 0  # a refusal is not ambiguous


async def test_an_ambiguous_payment_notice_is_asked_about_before_it_is_sent_again(
    fake: FakeBureau, adapter: XmlGbkBureauAdapter
) -> None:
    fake.on("P001", refuse("S999", "系统内部错误"), confirmation())
    fake.on("P002", NOT_FOUND)
    receipt = await adapter.notify_contribution_payment(payment_notice(), context=CallContext())
    assert receipt.status == "confirmed"
    assert fake.order == ["LOGIN", "P001", "P002", "P001"]
    assert fake.calls("P002")[0].text("BizNo") == PAY_BIZ_NO


async def test_a_lost_payment_notice_that_landed_is_not_sent_again(
    fake: FakeBureau, adapter: XmlGbkBureauAdapter
) -> None:
    fake.on("P001", httpx.ReadTimeout("lost"))
    fake.on("P002", confirmation())
    receipt = await adapter.notify_contribution_payment(payment_notice(), context=CallContext())
    assert receipt.bureau_reference == "420100-P-000001"
    assert fake.count("P001") == 1


async def test_find_contribution_payment(fake: FakeBureau, adapter: XmlGbkBureauAdapter) -> None:
    fake.on("P002", NOT_FOUND, confirmation(), confirmation(biz_no="HGW-P-SOMEONE-ELSE"))
    assert await adapter.find_contribution_payment(PAY_BIZ_NO, context=CallContext()) is None
    found = await adapter.find_contribution_payment(PAY_BIZ_NO, context=CallContext())
    assert found is not None and found.status == "confirmed" and found.confirmed_amount == Decimal("2592.00")
    with pytest.raises(UpstreamProtocolError):
        await adapter.find_contribution_payment(PAY_BIZ_NO, context=CallContext())
