"""Adapter for the ``xml-gbk`` bureau family (docs/dialects/xml-gbk.md).

GBK-encoded XML documents over ``POST /si/gateway``, the transaction named inside the
document; a session token from ``LOGIN``; ``<Head><ReturnCode>`` envelopes; money
in yuan with two places, dates ``yyyy-MM-dd``, periods ``yyyyMM``, statuses as
Chinese words. One deployment serves one region.

Answers are parsed with ``defusedxml`` (no DTDs, no entities); requests are built
with ``xml.etree`` and encoded strictly as GBK, so a value GBK cannot hold is refused
before anything is sent, never turned into a character reference or a ``?``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import secrets
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import defusedxml.ElementTree as SafeET
import httpx
from defusedxml import DefusedXmlException

from ..base import HttpAdapter
from ..context import CallContext
from ..errors import (
    AmbiguousOutcome,
    BusinessRejection,
    ConfigurationError,
    UpstreamAuthenticationError,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamServerError,
)
from ..exactly_once import send_at_most_once
from ..http import RetryPolicy, UpstreamPolicy, retry_after_seconds
from ..models import (
    CarriedInsurance,
    ContributionMonth,
    ContributionPaymentNotice,
    ContributionPaymentReceipt,
    DeclarationChange,
    DeclarationLine,
    DeclarationLineResult,
    DeclarationReceipt,
    DeclarationSubmission,
    Employer,
    EnrolmentReceipt,
    EnrolmentSubmission,
    InsuranceType,
    ParticipationRecord,
    ParticipationStatus,
    PaymentStatus,
    Person,
    TransferInReceipt,
    TransferInSubmission,
    TransferOutProgress,
    TransferOutSubmission,
)
from ..protocols import AdapterConfig, AdapterKind, Capability
from ..values import format_yuan as format_money
from ..values import parse_yuan as parse_money
from ..values import parse_yyyymm as parse_period
from ..values import period_slices
from ..values import to_yyyymm as to_wire_period

__all__ = [
    "GATEWAY_PATH",
    "SessionExpired",
    "XmlGbkBureauAdapter",
    "format_money",
    "parse_date",
    "parse_money",
    "parse_period",
    "to_wire_period",
]

T = TypeVar("T")

GATEWAY_PATH = "/si/gateway"
ENCODING = "GBK"
CONTENT_TYPE = "text/xml; charset=GBK"
_DECLARATION = '<?xml version="1.0" encoding="GBK"?>\n'
_HEADERS = {"Content-Type": CONTENT_TYPE}

_TYPE_TO_CODE: dict[InsuranceType, str] = {
    "pension": "110",
    "unemployment": "210",
    "medical": "310",
    "work_injury": "410",
    "maternity": "510",
}
_CODE_TO_TYPE: dict[str, InsuranceType] = {code: kind for kind, code in _TYPE_TO_CODE.items()}
_STATUS: dict[str, ParticipationStatus] = {
    "参保缴费": "active",
    "暂停缴费": "suspended",
    "终止参保": "terminated",
    "已转出": "transferred",
}
_PAY_STATUS: dict[str, PaymentStatus] = {"1": "paid", "2": "late", "3": "unpaid"}
# D001 ChangeType (变更类型): 增员, 减员, 基数调整, 续缴.
_CHANGE_TYPE: dict[DeclarationChange, str] = {"new": "1", "leave": "2", "change": "3", "continue": "4"}
_DECLARATION_STATUS = {"1": "accepted", "2": "partially_accepted", "3": "rejected"}
_LINE_STATUS = {"1": "accepted", "0": "rejected"}
_TRANSFER_STAGE = {"1": "submitted", "2": "source_reviewed", "3": "funds_transferred", "9": "rejected"}
_TRANSFER_IN_STATUS = {"1": "accepted", "9": "rejected"}

# Which canonical field a business refusal is about (B008..B012: a payment notice's).
_REJECTION_FIELDS = {
    "B001": "insurance_types",
    "B003": "id_number",
    "B005": "name",
    "B008": "declaration_reference",
    "B009": "declaration_reference",
    "B011": "amount",
    "B012": "declaration_reference",
}
# Which canonical field a request element carries (for values GBK cannot encode).
_FIELD_OF_ELEMENT = {
    "IdNo": "id_number",
    "Name": "name",
    "UnitCode": "employer.uscc",
    "UnitName": "employer.name",
    "ToRegion": "to_region",
    "FromRegion": "from_region",
    "SourceTransferNo": "source_reference",
    "DeclBizNo": "declaration_reference",
    "BankSerialNo": "payment_reference",
}

#: The bureau refuses a Q002 range wider than this; longer ranges are asked in slices.
MAX_PERIOD_SPAN = 36

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class SessionExpired(UpstreamAuthenticationError):
    """``AUTH01``: the session token is missing, unknown or expired.

    The bureau refused the call before applying it, so after logging in again the
    adapter repeats it once (even a state-changing one). Seen only by the audit log
    and, if a fresh token is refused too, as the cause of the final error."""


# -- value formats ---------------------------------------------------------------------






def parse_date(value: str | None) -> dt.date | None:
    """``yyyy-MM-dd`` -> a date; empty -> ``None``."""
    if not value:
        return None
    # fromisoformat alone also takes "20190301" and week dates.
    if not _DATE.fullmatch(value):
        raise ValueError(f"bad date {value!r}")
    return dt.date.fromisoformat(value)










def _text(parent: ET.Element, tag: str) -> str | None:
    """The trimmed text of ``parent/tag``; ``None`` when absent or empty."""
    element = parent.find(tag)
    if element is None:
        return None
    return (element.text or "").strip() or None


def _required(parent: ET.Element, tag: str) -> str:
    value = _text(parent, tag)
    if value is None:
        raise ValueError(f"<{parent.tag}> without <{tag}>")
    return value


def _element(tag: str, children: Iterable[tuple[str, Any]]) -> ET.Element:
    """``<tag>`` holding one child per ``(name, text)``; a list value nests again."""
    element = ET.Element(tag)
    for name, value in children:
        if isinstance(value, list):
            element.append(_element(name, value))
        else:
            ET.SubElement(element, name).text = value
    return element


def _new_serial_no() -> str:
    # 19 characters of [0-9A-Z]: within the protocol's 1..32 of [0-9A-Za-z-].
    return "HGW" + secrets.token_hex(8).upper()


@dataclass(frozen=True, slots=True)
class _Session:
    token: str
    renew_at: float  # on the adapter's clock


class XmlGbkBureauAdapter(HttpAdapter):
    kind: ClassVar[AdapterKind] = "social_security"
    dialect: ClassVar[str] = "xml-gbk"
    version: ClassVar[str] = "1.0"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.PARTICIPATION_SEARCH,
            Capability.ENROLMENT,
            Capability.ENROLMENT_LOOKUP,
            Capability.CONTRIBUTION_HISTORY,
            Capability.DECLARATION,
            Capability.TRANSFER_OUT,
            Capability.TRANSFER_IN,
            Capability.CONTRIBUTION_PAYMENT,
        }
    )
    # A busy bureau answers S503 (HTTP 503) with Retry-After and applies nothing, so a
    # 503 is retried even after E001; S999 (HTTP 500) after E001 is ambiguous and is
    # asked about with E002. A few patient retries; a search still answers in seconds.
    policy: ClassVar[UpstreamPolicy] = UpstreamPolicy(
        retry=RetryPolicy(
            max_attempts=4,
            initial_backoff=0.2,
            max_backoff=2.0,
            deadline=15.0,
            max_retry_after=10.0,
            not_applied_statuses=frozenset({429, 503}),
        )
    )
    one_region: ClassVar[bool] = True  # One xml-gbk deployment is one region's bureau; its records carry no region.
    required_credentials: ClassVar[tuple[str, ...]] = ("user_id", "password")

    #: How many times a submission whose outcome was ambiguous is checked and re-sent.
    max_submit_rounds: ClassVar[int] = 3
    #: A session is renewed this many seconds before it expires (at half its life if shorter).
    renew_early: ClassVar[float] = 30.0

    def __init__(
        self, config: AdapterConfig, *, clock: Callable[[], float] = time.monotonic, **kwargs: Any
    ) -> None:
        super().__init__(config, **kwargs)
        for key in self.required_credentials:
            try:
                config.credentials[key].encode(ENCODING)
            except UnicodeEncodeError:
                raise ConfigurationError(
                    f"adapter {config.name!r} (xml-gbk): credential {key!r} cannot be written in GBK"
                ) from None
        self.region = config.regions[0]
        self._clock = clock
        self._session: _Session | None = None
        self._login_lock = asyncio.Lock()

    # -- documents ----------------------------------------------------------------------

    def _check_encodable(self, body: ET.Element) -> None:
        """Refuse, before anything is sent, a value that GBK cannot hold."""
        for element in body.iter():
            text = element.text or ""
            try:
                text.encode(ENCODING)
            except UnicodeEncodeError as exc:
                bad = text[exc.start]
                field = _FIELD_OF_ELEMENT.get(element.tag)
                raise BusinessRejection(
                    f"{field or element.tag} cannot be written in GBK, which this bureau requires",
                    upstream_code="GBK",
                    upstream_message=f"<{element.tag}> holds U+{ord(bad):04X}, a character GBK cannot encode",
                    field=field,
                    upstream=self.name,
                ) from None

    @staticmethod
    def _document(trans_code: str, body: ET.Element, token: str | None, serial_no: str) -> bytes:
        head = [("TransCode", trans_code)]
        if token is not None:
            head.append(("SessionToken", token))
        head += [("SerialNo", serial_no), ("RequestTime", dt.datetime.now().strftime("%Y%m%d%H%M%S"))]
        root = _element("Request", [("Head", head)])
        root.append(body)
        # Serialised to text and encoded strictly here: ElementTree's own encoder would
        # turn an unencodable character into a character reference without a word.
        return (_DECLARATION + ET.tostring(root, encoding="unicode")).encode(ENCODING)

    def _unwrap(
        self, response: httpx.Response, *, trans_code: str, serial_no: str, idempotent: bool
    ) -> ET.Element:
        """The ``<Body>`` of a ``0000`` answer; otherwise the taxonomy's error."""
        try:
            root = SafeET.fromstring(response.content.decode(ENCODING), forbid_dtd=True)
        except UnicodeDecodeError as exc:
            raise UpstreamProtocolError(
                f"the answer is not GBK (HTTP {response.status_code})", response=response
            ) from exc
        except DefusedXmlException as exc:
            raise UpstreamProtocolError(
                f"the answer declares a DTD or entities, which this protocol never uses: {exc}", response=response
            ) from exc
        except ET.ParseError as exc:
            raise UpstreamProtocolError(
                f"the answer is not well-formed XML (HTTP {response.status_code}): {exc}", response=response
            ) from exc
        head = root.find("Head")
        code = _text(head, "ReturnCode") if head is not None else None
        if root.tag != "Response" or head is None or code is None:
            raise UpstreamProtocolError(
                f"no <Response><Head><ReturnCode> in the answer (HTTP {response.status_code})", response=response
            )
        message = _text(head, "ReturnMsg") or ""
        if code == "0000":
            body = root.find("Body")
            echoed_serial, echoed_code = _text(head, "SerialNo"), _text(head, "TransCode")
            if not response.is_success or body is None:
                raise UpstreamProtocolError(
                    f"a success without a body or with HTTP {response.status_code}", response=response
                )
            if (echoed_serial is not None and echoed_serial != serial_no) or (
                echoed_code is not None and echoed_code != trans_code
            ):
                raise UpstreamProtocolError(
                    f"the answer is for another message ({echoed_code} {echoed_serial}, sent {trans_code} {serial_no})",
                    response=response,
                )
            return body
        details: dict[str, Any] = {"upstream_code": code, "upstream_message": message, "response": response}
        if code == "AUTH01":
            raise SessionExpired("bureau refused the session token (AUTH01)", **details)
        if code.startswith("AUTH"):
            raise UpstreamAuthenticationError(f"bureau refused our credentials ({code})", **details)
        if code == "B404":
            raise UpstreamNotFound(f"bureau has no such business ({trans_code})", **details)
        if code == "S503":
            # Normally HTTP 503, which the client handles; with another status it still
            # means "busy, nothing applied".
            raise UpstreamServerError(
                "bureau is busy (S503)",
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
                **details,
            )
        if code == "S999":
            # Normally HTTP 500 (client handles it); a bureau-side failure may have
            # applied a state-changing call.
            if idempotent:
                raise UpstreamServerError("bureau-side failure (S999)", **details)
            raise AmbiguousOutcome("bureau-side failure (S999) after a state-changing call", **details)
        # S400 included: the bureau refused what was sent, so nothing was applied and
        # nothing is ambiguous.
        raise BusinessRejection(f"bureau refused the request ({code})", field=_REJECTION_FIELDS.get(code), **details)

    # -- session ------------------------------------------------------------------------

    async def _send(
        self,
        trans_code: str,
        body: ET.Element,
        interpret: Callable[[ET.Element], T],
        *,
        token: str | None,
        operation: str,
        context: CallContext,
        idempotent: bool,
    ) -> T:
        """One message (a fresh ``SerialNo``; the client's retries repeat it as is)."""
        serial_no = _new_serial_no()
        content = self._document(trans_code, body, token, serial_no)

        def handle(response: httpx.Response) -> T:
            return interpret(
                self._unwrap(response, trans_code=trans_code, serial_no=serial_no, idempotent=idempotent)
            )

        return await self.client.call(
            "POST", GATEWAY_PATH, handle, operation=operation, context=context,
            idempotent=idempotent, content=content, headers=_HEADERS,
        )

    def _valid_session(self) -> str | None:
        session = self._session
        if session is not None and self._clock() < session.renew_at:
            return session.token
        return None

    async def _token(self, context: CallContext) -> str:
        """A session token, logging in if there is none or it is about to expire.

        Concurrent callers wait for one login instead of each making their own."""
        token = self._valid_session()
        if token is not None:
            return token
        async with self._login_lock:
            token = self._valid_session()
            if token is not None:
                return token
            sent_at = self._clock()  # the token's life is counted from before we asked
            body = _element(
                "Body", [("UserId", self.config.credentials["user_id"]), ("Password", self.config.credentials["password"])]
            )
            token, ttl = await self._send(
                "LOGIN", body, self._login_answer, token=None, operation="session.login",
                context=context, idempotent=True,  # a login changes nothing the bureau keeps
            )
            self._session = _Session(token, renew_at=sent_at + ttl - min(self.renew_early, ttl / 2))
            return token

    @staticmethod
    def _login_answer(body: ET.Element) -> tuple[str, float]:
        token = _required(body, "SessionToken")
        ttl = int(_required(body, "ExpiresIn"))
        if ttl <= 0:
            raise ValueError(f"ExpiresIn must be positive, got {ttl}")
        return token, float(ttl)

    def _forget(self, token: str) -> None:
        """Drop ``token`` unless another caller has already replaced it."""
        if self._session is not None and self._session.token == token:
            self._session = None

    async def _exchange(
        self,
        trans_code: str,
        body: ET.Element,
        interpret: Callable[[ET.Element], T],
        *,
        operation: str,
        context: CallContext,
        idempotent: bool,
    ) -> T:
        """Send a business transaction in a session; on ``AUTH01`` log in again once
        and repeat it. ``AUTH01`` is a refusal before anything was applied, so the
        repeat is safe for ``E001`` too (``E001`` is idempotent by ``BizNo`` anyway)."""
        self._check_encodable(body)
        token = await self._token(context)
        try:
            return await self._send(
                trans_code, body, interpret, token=token, operation=operation, context=context, idempotent=idempotent
            )
        except SessionExpired:
            self._forget(token)
        token = await self._token(context)
        try:
            return await self._send(
                trans_code, body, interpret, token=token, operation=operation, context=context, idempotent=idempotent
            )
        except SessionExpired as exc:
            self._forget(token)
            raise UpstreamAuthenticationError(
                f"bureau refused a fresh session token too ({exc.upstream_code})",
                upstream=exc.upstream,
                request=exc.request,
                response=exc.response,
                upstream_code=exc.upstream_code,
                upstream_message=exc.upstream_message,
            ) from exc

    # -- participation ------------------------------------------------------------------

    def _record(self, raw: ET.Element) -> ParticipationRecord | None:
        insurance_type = _CODE_TO_TYPE.get(_required(raw, "InsType"))
        if insurance_type is None:  # a local scheme the canonical model does not cover
            return None
        status = _required(raw, "Status")
        if status not in _STATUS:
            raise ValueError(f"unknown record status {status!r}")
        unit_code = _text(raw, "UnitCode")
        paid_months = _text(raw, "PaidMonths")
        if paid_months is not None and not paid_months.isdigit():
            raise ValueError(f"bad PaidMonths {paid_months!r}")
        return ParticipationRecord(
            region=self.region,
            insurance_type=insurance_type,
            status=_STATUS[status],
            employer=Employer(uscc=unit_code, name=_text(raw, "UnitName") or "") if unit_code else None,
            start_date=parse_date(_text(raw, "BeginDate")),
            end_date=parse_date(_text(raw, "EndDate")),
            paid_months=int(paid_months or 0),
            contribution_base=parse_money(_text(raw, "Base")),
            last_paid_period=parse_period(_text(raw, "LastPaidPeriod")),
        )

    def _records(self, body: ET.Element) -> list[ParticipationRecord]:
        records = body.find("Records")
        if records is None:
            raise UpstreamProtocolError("participation answer without <Records>")
        return [r for r in map(self._record, records.findall("Record")) if r is not None]

    async def search_participation(self, person: Person, *, context: CallContext) -> list[ParticipationRecord]:
        body = _element("Body", [("IdNo", person.id_number), ("Name", person.name)])
        return await self._exchange(
            "Q001", body, self._records, operation="participation.search", context=context, idempotent=True
        )

    # -- contribution history -----------------------------------------------------------

    def _month(self, raw: ET.Element) -> ContributionMonth | None:
        insurance_type = _CODE_TO_TYPE.get(_required(raw, "InsType"))
        if insurance_type is None:
            return None
        pay_status = _required(raw, "PayStatus")
        if pay_status not in _PAY_STATUS:
            raise ValueError(f"unknown PayStatus {pay_status!r}")
        return ContributionMonth(
            region=self.region,
            period=parse_period(_required(raw, "Period")),  # type: ignore[arg-type]  # required: never None
            insurance_type=insurance_type,
            status=_PAY_STATUS[pay_status],
            employer_amount=parse_money(_text(raw, "EmployerAmount")),
            personal_amount=parse_money(_text(raw, "PersonalAmount")),
            paid_on=parse_date(_text(raw, "PaidDate")),
        )

    def _months(self, body: ET.Element) -> list[ContributionMonth]:
        months = body.find("Months")
        if months is None:
            raise UpstreamProtocolError("contribution answer without <Months>")
        return [m for m in map(self._month, months.findall("Month")) if m is not None]

    async def contribution_history(
        self, person: Person, from_period: str, to_period: str, *, context: CallContext
    ) -> list[ContributionMonth]:
        """Months ``from_period``..``to_period`` (``YYYY-MM``, inclusive) the bureau holds.

        A range longer than the bureau accepts in one ``Q002`` is asked for in
        consecutive slices of at most ``MAX_PERIOD_SPAN`` months."""
        months: list[ContributionMonth] = []
        for start, end in period_slices(from_period, to_period, MAX_PERIOD_SPAN):
            # Q002's Name is optional: an unknown name ("") is left out, not sent empty.
            who = [("IdNo", person.id_number)] + ([("Name", person.name)] if person.name else [])
            body = _element("Body", [*who, ("FromPeriod", start), ("ToPeriod", end)])
            months += await self._exchange(
                "Q002", body, self._months, operation="contribution.history", context=context, idempotent=True
            )
        return months

    # -- enrolment ----------------------------------------------------------------------

    @staticmethod
    def _receipt_for(reference: str) -> Callable[[ET.Element], EnrolmentReceipt]:
        def receipt(body: ET.Element) -> EnrolmentReceipt:
            biz_no = _required(body, "BizNo")
            if biz_no != reference:
                raise UpstreamProtocolError(f"the bureau answered about enrolment {biz_no}, not {reference}")
            return EnrolmentReceipt(
                reference=biz_no,
                bureau_reference=_required(body, "AcceptNo"),
                status="accepted",
                accepted_on=parse_date(_text(body, "AcceptDate")),
            )

        return receipt

    async def submit_enrolment(self, submission: EnrolmentSubmission, *, context: CallContext) -> EnrolmentReceipt:
        body = _element(
            "Body",
            [
                ("BizNo", submission.reference),
                ("IdNo", submission.person.id_number),
                ("Name", submission.person.name),
                ("UnitCode", submission.employer.uscc),
                ("UnitName", submission.employer.name),
                ("BeginDate", submission.hire_date.isoformat()),
                ("InsTypes", [("InsType", _TYPE_TO_CODE[t]) for t in submission.insurance_types]),
                ("Base", format_money(submission.contribution_base)),
            ],
        )
        self._check_encodable(body)  # before the first round, so nothing at all is sent
        return await send_at_most_once(
            lambda: self._exchange(
                "E001", body, self._receipt_for(submission.reference), operation="enrolment.submit",
                context=context, idempotent=False,
            ),
            lambda: self.find_enrolment(submission.reference, context=context),
            reference=f"enrolment {submission.reference}", upstream=self.name, rounds=self.max_submit_rounds,
        )

    async def find_enrolment(self, reference: str, *, context: CallContext) -> EnrolmentReceipt | None:
        body = _element("Body", [("BizNo", reference)])
        try:
            return await self._exchange(
                "E002", body, self._receipt_for(reference), operation="enrolment.lookup",
                context=context, idempotent=True,
            )
        except UpstreamNotFound:
            return None

    # -- declarations (D001 / D002) -----------------------------------------------------

    @staticmethod
    def _declaration_line(line: DeclarationLine) -> list[tuple[str, Any]]:
        fields: list[tuple[str, Any]] = [
            ("LineNo", str(line.line)),
            ("IdNo", line.person.id_number),
            ("Name", line.person.name),
            ("ChangeType", _CHANGE_TYPE[line.change]),
            ("InsTypes", [("InsType", _TYPE_TO_CODE[t]) for t in line.insurance_types]),
        ]
        # A leaver carries no base; the bureau refuses one.
        if line.change != "leave" and line.contribution_base is not None:
            fields.append(("Base", format_money(line.contribution_base)))
        if line.change == "new" and line.hire_date is not None:
            fields.append(("HireDate", line.hire_date.isoformat()))
        if line.change == "leave" and line.leave_date is not None:
            fields.append(("LeaveDate", line.leave_date.isoformat()))
        return fields

    @staticmethod
    def _declaration_receipt_for(reference: str) -> Callable[[ET.Element], DeclarationReceipt]:
        def receipt(body: ET.Element) -> DeclarationReceipt:
            _check_reference(body, reference, "declaration")
            status = _required(body, "DeclStatus")
            if status not in _DECLARATION_STATUS:
                raise ValueError(f"unknown DeclStatus {status!r}")
            results = body.find("Results")
            if results is None:
                raise ValueError("declaration answer without <Results>")
            lines: list[DeclarationLineResult] = []
            for raw in results.findall("Result"):
                line_status = _required(raw, "LineStatus")
                if line_status not in _LINE_STATUS:
                    raise ValueError(f"unknown LineStatus {line_status!r}")
                line_no = _required(raw, "LineNo")
                if not line_no.isdigit():
                    raise ValueError(f"bad LineNo {line_no!r}")
                lines.append(
                    DeclarationLineResult(
                        line=int(line_no),
                        status=_LINE_STATUS[line_status],  # type: ignore[arg-type]  # checked above
                        upstream_code=_text(raw, "ErrCode"),
                        upstream_message=_text(raw, "ErrMsg"),
                    )
                )
            return DeclarationReceipt(
                reference=reference,
                bureau_reference=_required(body, "DeclNo"),
                status=_DECLARATION_STATUS[status],  # type: ignore[arg-type]  # checked above
                lines=tuple(lines),
                decided_on=parse_date(_text(body, "DecideDate")),
            )

        return receipt

    async def submit_declaration(self, submission: DeclarationSubmission, *, context: CallContext) -> DeclarationReceipt:
        """The bureau decides a declaration at once, so the receipt is never ``pending``."""
        body = _element(
            "Body",
            [
                ("BizNo", submission.reference),
                ("UnitCode", submission.employer.uscc),
                ("UnitName", submission.employer.name),
                ("Period", to_wire_period(submission.period)),
                ("Lines", [("Line", self._declaration_line(line)) for line in submission.lines]),
            ],
        )
        self._check_encodable(body)
        return await send_at_most_once(
            lambda: self._exchange(
                "D001", body, self._declaration_receipt_for(submission.reference), operation="declaration.submit",
                context=context, idempotent=False,
            ),
            lambda: self.find_declaration(submission.reference, context=context),
            reference=f"declaration {submission.reference}", upstream=self.name, rounds=self.max_submit_rounds,
        )

    async def find_declaration(self, reference: str, *, context: CallContext) -> DeclarationReceipt | None:
        body = _element("Body", [("BizNo", reference)])
        try:
            return await self._exchange(
                "D002", body, self._declaration_receipt_for(reference), operation="declaration.lookup",
                context=context, idempotent=True,
            )
        except UpstreamNotFound:
            return None

    # -- transfers out (T001 / T002) ----------------------------------------------------

    @staticmethod
    def _carried(raw: ET.Element) -> CarriedInsurance | None:
        insurance_type = _CODE_TO_TYPE.get(_required(raw, "InsType"))
        if insurance_type is None:
            return None
        paid_months = _required(raw, "PaidMonths")
        if not paid_months.isdigit():
            raise ValueError(f"bad PaidMonths {paid_months!r}")
        fund = parse_money(_required(raw, "FundAmount"))
        assert fund is not None  # required: never empty
        return CarriedInsurance(
            insurance_type=insurance_type,
            paid_months=int(paid_months),
            start_date=parse_date(_text(raw, "BeginDate")),
            fund_amount=fund,
        )

    def _progress_for(self, reference: str) -> Callable[[ET.Element], TransferOutProgress]:
        def progress(body: ET.Element) -> TransferOutProgress:
            _check_reference(body, reference, "transfer")
            stage = _required(body, "Stage")
            if stage not in _TRANSFER_STAGE:
                raise ValueError(f"unknown Stage {stage!r}")
            carried = body.find("Carried")
            items = [] if carried is None else carried.findall("Item")
            rejected = stage == "9"
            return TransferOutProgress(
                reference=reference,
                bureau_reference=_required(body, "TransferNo"),
                stage=_TRANSFER_STAGE[stage],  # type: ignore[arg-type]  # checked above
                carried=tuple(c for c in map(self._carried, items) if c is not None),
                reason_code=_required(body, "ReasonCode") if rejected else None,
                reason_message=_text(body, "ReasonMsg") if rejected else None,
                updated_on=parse_date(_text(body, "StageDate")),
            )

        return progress

    async def submit_transfer_out(
        self, submission: TransferOutSubmission, *, context: CallContext
    ) -> TransferOutProgress:
        body = _element(
            "Body",
            [
                ("BizNo", submission.reference),
                ("IdNo", submission.person.id_number),
                ("Name", submission.person.name),
                ("ToRegion", submission.to_region),
                ("InsTypes", [("InsType", _TYPE_TO_CODE[t]) for t in submission.insurance_types]),
            ],
        )
        self._check_encodable(body)
        return await send_at_most_once(
            lambda: self._exchange(
                "T001", body, self._progress_for(submission.reference), operation="transfer_out.submit",
                context=context, idempotent=False,
            ),
            lambda: self.transfer_out_status(submission.reference, context=context),
            reference=f"transfer out {submission.reference}", upstream=self.name, rounds=self.max_submit_rounds,
        )

    async def transfer_out_status(self, reference: str, *, context: CallContext) -> TransferOutProgress | None:
        body = _element("Body", [("BizNo", reference)])
        try:
            return await self._exchange(
                "T002", body, self._progress_for(reference), operation="transfer_out.status",
                context=context, idempotent=True,
            )
        except UpstreamNotFound:
            return None

    # -- transfers in (T003 / T004) -----------------------------------------------------

    @staticmethod
    def _transfer_in_receipt_for(reference: str) -> Callable[[ET.Element], TransferInReceipt]:
        def receipt(body: ET.Element) -> TransferInReceipt:
            _check_reference(body, reference, "transfer in")
            status = _required(body, "InStatus")
            if status not in _TRANSFER_IN_STATUS:
                raise ValueError(f"unknown InStatus {status!r}")
            rejected = status == "9"
            return TransferInReceipt(
                reference=reference,
                bureau_reference=_required(body, "AcceptNo"),
                status=_TRANSFER_IN_STATUS[status],  # type: ignore[arg-type]  # checked above
                reason_code=_required(body, "ReasonCode") if rejected else None,
                reason_message=_text(body, "ReasonMsg") if rejected else None,
            )

        return receipt

    async def submit_transfer_in(self, submission: TransferInSubmission, *, context: CallContext) -> TransferInReceipt:
        """The bureau decides a transfer in at once, so the receipt is never ``pending``."""
        items: list[tuple[str, Any]] = []
        for carried in submission.carried:
            item: list[tuple[str, Any]] = [
                ("InsType", _TYPE_TO_CODE[carried.insurance_type]),
                ("PaidMonths", str(carried.paid_months)),
            ]
            if carried.start_date is not None:
                item.append(("BeginDate", carried.start_date.isoformat()))
            item.append(("FundAmount", format_money(carried.fund_amount)))
            items.append(("Item", item))
        body = _element(
            "Body",
            [
                ("BizNo", submission.reference),
                ("IdNo", submission.person.id_number),
                ("Name", submission.person.name),
                ("FromRegion", submission.from_region),
                ("SourceTransferNo", submission.source_reference),
                ("Carried", items),
            ],
        )
        self._check_encodable(body)
        return await send_at_most_once(
            lambda: self._exchange(
                "T003", body, self._transfer_in_receipt_for(submission.reference), operation="transfer_in.submit",
                context=context, idempotent=False,
            ),
            lambda: self.find_transfer_in(submission.reference, context=context),
            reference=f"transfer in {submission.reference}", upstream=self.name, rounds=self.max_submit_rounds,
        )

    async def find_transfer_in(self, reference: str, *, context: CallContext) -> TransferInReceipt | None:
        body = _element("Body", [("BizNo", reference)])
        try:
            return await self._exchange(
                "T004", body, self._transfer_in_receipt_for(reference), operation="transfer_in.lookup",
                context=context, idempotent=True,
            )
        except UpstreamNotFound:
            return None


    # -- payment notices (P001 / P002) ---------------------------------------------------

    @staticmethod
    def _payment_receipt_for(reference: str) -> Callable[[ET.Element], ContributionPaymentReceipt]:
        def receipt(body: ET.Element) -> ContributionPaymentReceipt:
            _check_reference(body, reference, "payment notice")
            amount = parse_money(_required(body, "ConfirmAmount"))
            return ContributionPaymentReceipt(
                reference=reference,
                bureau_reference=_required(body, "ConfirmNo"),
                status="confirmed",
                confirmed_amount=amount,
                confirmed_on=parse_date(_text(body, "ConfirmDate")),
            )

        return receipt

    async def notify_contribution_payment(
        self, notice: ContributionPaymentNotice, *, context: CallContext
    ) -> ContributionPaymentReceipt:
        """The bureau decides at once: ``confirmed``, or a ``BusinessRejection`` with its
        ``B008``..``B012`` (it stores nothing for a refused notice, so a lookup of one
        finds nothing and the notice may be sent again once the cause is fixed)."""
        body = _element(
            "Body",
            [
                ("BizNo", notice.reference),
                ("UnitCode", notice.employer.uscc),
                ("UnitName", notice.employer.name),
                ("Period", to_wire_period(notice.period)),
                ("DeclBizNo", notice.declaration_reference),
                ("PayAmount", format_money(notice.amount)),
                ("PayDate", notice.paid_on.isoformat()),
                ("BankSerialNo", notice.payment_reference),
            ],
        )
        self._check_encodable(body)
        return await send_at_most_once(
            lambda: self._exchange(
                "P001", body, self._payment_receipt_for(notice.reference), operation="contribution_payment.notify",
                context=context, idempotent=False,
            ),
            lambda: self.find_contribution_payment(notice.reference, context=context),
            reference=f"payment notice {notice.reference}", upstream=self.name, rounds=self.max_submit_rounds,
        )

    async def find_contribution_payment(
        self, reference: str, *, context: CallContext
    ) -> ContributionPaymentReceipt | None:
        body = _element("Body", [("BizNo", reference)])
        try:
            return await self._exchange(
                "P002", body, self._payment_receipt_for(reference), operation="contribution_payment.lookup",
                context=context, idempotent=True,
            )
        except UpstreamNotFound:
            return None


def _check_reference(body: ET.Element, reference: str, what: str) -> None:
    biz_no = _required(body, "BizNo")
    if biz_no != reference:
        raise UpstreamProtocolError(f"the bureau answered about {what} {biz_no}, not {reference}")
