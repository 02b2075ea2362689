"""Adapter for the ``iso20022`` bank protocol (docs/dialects/iso20022.md).

Credit transfers go up as pain.001.001.09 (one message per payment, the canonical
reference as the end-to-end identification), each validated against the official
XSD before it is sent; their status comes back as pain.002.001.10 and statements as
camt.053.001.08. Requests are signed with an API key and HMAC-SHA256. Answers are
parsed with defusedxml.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import importlib.resources
import re
import secrets
import time
import xml.etree.ElementTree as ET  # building only; answers are parsed with defusedxml
from collections.abc import Callable, Generator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
import msgspec
import xmlschema
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from ..base import HttpAdapter
from ..context import CallContext
from ..errors import (
    BusinessRejection,
    ConfigurationError,
    UpstreamAuthenticationError,
    UpstreamNotFound,
    UpstreamProtocolError,
)
from ..exactly_once import send_at_most_once
from ..http import CircuitPolicy, RetryPolicy, Timeouts, UpstreamPolicy
from ..models import (
    AccountParty,
    BankPaymentStatus,
    PaymentPurpose,
    PaymentReceipt,
    PaymentRejectionReason,
    PaymentSubmission,
    Statement,
    StatementEntry,
    money,
)
from ..protocols import AdapterConfig, AdapterKind, Capability

__all__ = ["Iso20022Auth", "Iso20022BankAdapter", "message_id", "pain001_schema"]

PAYMENTS_PATH = "/h2h/v1/payments"
STATEMENTS_PATH = "/h2h/v1/statements"

PAIN001 = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
PAIN002 = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"
CAMT053 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
_CHINA = dt.timezone(dt.timedelta(hours=8))

_TX_STATUS: dict[str, BankPaymentStatus] = {
    "RCVD": "submitted",
    "PDNG": "submitted",
    "ACTC": "accepted",
    "ACCP": "accepted",
    "ACSP": "accepted",
    "ACWC": "accepted",
    "ACSC": "settled",
    "ACCC": "settled",
    "RJCT": "rejected",
}
_REASON: dict[str, PaymentRejectionReason] = {
    "AC01": "invalid_account",
    "AC02": "invalid_account",
    "AC03": "invalid_account",
    "AC04": "account_closed",
    "AC06": "account_blocked",
    "BE01": "creditor_name_mismatch",
    "AM04": "insufficient_funds",
    "AM01": "invalid_amount",
    "AM02": "invalid_amount",
    "AM12": "invalid_amount",
    "AM05": "duplicate_payment",
    "RC01": "invalid_bank_code",
    "RC10": "invalid_bank_code",
    "RR01": "regulatory",
    "RR02": "regulatory",
    "RR03": "regulatory",
    "RR04": "regulatory",
    "CUTA": "cut_off_passed",
}
# ISO external purpose codes for the canonical purposes.
_PURPOSE: dict[PaymentPurpose, str] = {
    "reimbursement": "BEXP",  # business expenses
    "social_security_contribution": "GOVI",  # government insurance
    "other": "OTHR",
}
# The bank's answers to an upload it already has: ask for the payment instead.
_REPEATED = frozenset({"DU01", "DU04"})
_BIC = re.compile(r"[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?")
_AMOUNT = re.compile(r"\d{1,18}(\.\d{1,5})?")


@functools.cache
def pain001_schema() -> xmlschema.XMLSchema:
    """The official pain.001.001.09 XSD (shipped by sepaxml), loaded once."""
    path = importlib.resources.files("sepaxml") / "schemas" / "pain.001.001.09.xsd"
    return xmlschema.XMLSchema(str(path))


def message_id(reference: str) -> str:
    """The ``MsgId`` (and ``PmtInfId``) of the one message that carries ``reference``.

    Deterministic, so that a repeated upload is recognised by the bank (``DU01``); 35
    characters whatever the reference looks like."""
    return "HGW" + hashlib.sha256(reference.encode("utf-8")).hexdigest()[:32].upper()


class Iso20022Auth(httpx.Auth):
    """Signs every attempt afresh: request time, nonce and HMAC over the body hash."""

    requires_request_body = True

    def __init__(self, api_key: str, api_secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self._api_key = api_key
        self._secret = api_secret.encode("utf-8")
        self._clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request_time = dt.datetime.fromtimestamp(int(self._clock()), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        nonce = secrets.token_hex(16)
        string_to_sign = "\n".join(
            (
                request.method.upper(),
                request.url.raw_path.decode("ascii"),
                request_time,
                nonce,
                hashlib.sha256(request.content).hexdigest(),
            )
        )
        digest = hmac.new(self._secret, string_to_sign.encode("utf-8"), hashlib.sha256).digest()
        request.headers["X-Api-Key"] = self._api_key
        request.headers["X-Request-Time"] = request_time
        request.headers["X-Nonce"] = nonce
        request.headers["X-Signature"] = base64.b64encode(digest).decode("ascii")
        yield request


# -- pain.001 -----------------------------------------------------------------------------


def _add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    # Unqualified: the root's xmlns attribute puts the whole document in the namespace.
    child = ET.SubElement(parent, tag, attrs)
    if text is not None:
        child.text = text
    return child


def _chain(parent: ET.Element, tags: str, text: str | None = None, **attrs: str) -> ET.Element:
    node = parent
    names = tags.split("/")
    for name in names[:-1]:
        node = _add(node, name)
    return _add(node, names[-1], text, **attrs)


def _agent(parent: ET.Element, tag: str, bank_code: str) -> None:
    institution = _chain(parent, f"{tag}/FinInstnId")
    if _BIC.fullmatch(bank_code):
        _add(institution, "BICFI", bank_code)
    else:  # a CNAPS code (the bank judges whether it knows it)
        member = _add(institution, "ClrSysMmbId")
        _chain(member, "ClrSysId/Cd", "CNAPS")
        _add(member, "MmbId", bank_code)


def _account(parent: ET.Element, tag: str, account: str, *, currency: str | None = None) -> None:
    node = _add(parent, tag)
    _chain(node, "Id/Othr/Id", account)
    if currency is not None:
        _add(node, "Ccy", currency)


def build_pain001(submission: PaymentSubmission, *, created_at: dt.datetime) -> bytes:
    """The pain.001.001.09 document for one payment; ``ValueError`` if the payment cannot
    be expressed in one that is valid against the official XSD."""
    if submission.amount != money(submission.amount):
        raise ValueError("the amount must have at most two decimal places")
    amount = format(money(submission.amount), "f")
    msg_id = message_id(submission.reference)
    root = ET.Element("Document", {"xmlns": PAIN001})
    initiation = _add(root, "CstmrCdtTrfInitn")
    header = _add(initiation, "GrpHdr")
    _add(header, "MsgId", msg_id)
    _add(header, "CreDtTm", created_at.astimezone(_CHINA).replace(microsecond=0).isoformat())
    _add(header, "NbOfTxs", "1")
    _add(header, "CtrlSum", amount)
    _chain(header, "InitgPty/Nm", submission.debtor.name)
    instruction = _add(initiation, "PmtInf")
    _add(instruction, "PmtInfId", msg_id)
    _add(instruction, "PmtMtd", "TRF")
    _add(instruction, "NbOfTxs", "1")
    _add(instruction, "CtrlSum", amount)
    _chain(instruction, "ReqdExctnDt/Dt", submission.requested_on.isoformat())
    _chain(instruction, "Dbtr/Nm", submission.debtor.name)
    _account(instruction, "DbtrAcct", submission.debtor.account, currency=submission.currency)
    _agent(instruction, "DbtrAgt", submission.debtor.bank_code)
    transaction = _add(instruction, "CdtTrfTxInf")
    payment_id = _add(transaction, "PmtId")
    _add(payment_id, "InstrId", submission.reference)
    _add(payment_id, "EndToEndId", submission.reference)
    _chain(transaction, "Amt/InstdAmt", amount, Ccy=submission.currency)
    _agent(transaction, "CdtrAgt", submission.creditor.bank_code)
    _chain(transaction, "Cdtr/Nm", submission.creditor.name)
    _account(transaction, "CdtrAcct", submission.creditor.account)
    _chain(transaction, "Purp/Cd", _PURPOSE[submission.purpose])
    if submission.remittance:
        _chain(transaction, "RmtInf/Ustrd", submission.remittance)
    document = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    failure = next(pain001_schema().iter_errors(SafeET.fromstring(document)), None)
    if failure is not None:
        # The path says which field; the reason might quote a name or an account number.
        where = (failure.path or "/Document").replace(f"{{{PAIN001}}}", "")
        raise ValueError(f"the payment does not fit pain.001.001.09 at {where}")
    return document


# -- answers ------------------------------------------------------------------------------


def _document(content: bytes, namespace: str, what: str) -> ET.Element:
    try:
        root = SafeET.fromstring(content)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise ValueError(f"{what} is not well-formed XML") from exc
    if root.tag != f"{{{namespace}}}Document":
        raise ValueError(f"not a {what} document")
    return root


def _finder(namespace: str) -> tuple[Callable[..., ET.Element | None], Callable[..., str | None]]:
    def find(node: ET.Element, path: str) -> ET.Element | None:
        return node.find("/".join(f"{{{namespace}}}{tag}" for tag in path.split("/")))

    def text(node: ET.Element, path: str) -> str | None:
        found = find(node, path)
        return found.text.strip() if found is not None and found.text is not None else None

    return find, text


_find002, _text002 = _finder(PAIN002)
_find053, _text053 = _finder(CAMT053)


def _amount(value: str | None) -> Decimal:
    if value is None or not _AMOUNT.fullmatch(value):
        raise ValueError("missing or malformed amount")
    amount = Decimal(value)
    if amount != money(amount):
        raise ValueError("an amount with more than two decimal places")
    return money(amount)


def _date(node: ET.Element | None, text: Callable[..., str | None]) -> dt.date | None:
    """``Dt`` or ``DtTm`` under a date choice element."""
    if node is None:
        return None
    day = text(node, "Dt")
    if day is not None:
        return dt.date.fromisoformat(day)
    moment = text(node, "DtTm")
    return dt.datetime.fromisoformat(moment).date() if moment is not None else None


@dataclass(frozen=True)
class _Reason:
    code: str | None
    message: str | None


def _reason(node: ET.Element) -> _Reason | None:
    info = _find002(node, "StsRsnInf")
    if info is None:
        return None
    code = _text002(info, "Rsn/Cd") or _text002(info, "Rsn/Prtry")
    lines = [n.text.strip() for n in info.findall(f"{{{PAIN002}}}AddtlInf") if n.text and n.text.strip()]
    return _Reason(code, " ".join(lines) or None)


@dataclass(frozen=True)
class _Repeated:
    """The bank already had this upload (``DU01``/``DU04``) and changed nothing."""

    code: str
    message: str | None


def parse_status_report(content: bytes) -> PaymentReceipt | _Repeated:
    """A pain.002.001.10 about one payment, as a receipt (or a refused repeat)."""
    root = _document(content, PAIN002, "pain.002.001.10")
    group = _find002(root, "CstmrPmtStsRpt/OrgnlGrpInfAndSts")
    if group is None:
        raise ValueError("a status report without OrgnlGrpInfAndSts")
    tx = _find002(root, "CstmrPmtStsRpt/OrgnlPmtInfAndSts/TxInfAndSts")
    if tx is None:
        reason = _reason(group)
        if _text002(group, "GrpSts") == "RJCT" and reason is not None and reason.code in _REPEATED:
            return _Repeated(reason.code, reason.message)
        raise ValueError("a status report without a transaction status")
    code = _text002(tx, "TxSts") or _text002(group, "GrpSts")
    if code not in _TX_STATUS:
        raise ValueError(f"unknown transaction status {code!r}")
    status = _TX_STATUS[code]
    reference = _text002(tx, "OrgnlEndToEndId")
    if not reference:
        raise ValueError("a transaction status without OrgnlEndToEndId")
    reason = _reason(tx) if status == "rejected" else None
    settled_on = None
    if status == "settled":
        day = _text002(tx, "OrgnlTxRef/IntrBkSttlmDt")
        settled_on = dt.date.fromisoformat(day) if day else None
    return PaymentReceipt(
        reference=reference,
        bank_reference=_text002(tx, "AcctSvcrRef"),
        status=status,
        reason=(_REASON.get(reason.code or "", "other") if reason else "other") if status == "rejected" else None,
        upstream_code=reason.code if reason else None,
        upstream_message=reason.message if reason else None,
        settled_on=settled_on,
    )


def _counterparty(details: ET.Element | None, direction: str) -> tuple[str | None, str | None]:
    """The other side of an entry: the creditor of a debit, the debtor of a credit."""
    if details is None:
        return None, None
    role = "Cdtr" if direction == "debit" else "Dbtr"
    name = _text053(details, f"RltdPties/{role}/Pty/Nm") or _text053(details, f"RltdPties/{role}/Nm")
    account = _text053(details, f"RltdPties/{role}Acct/Id/Othr/Id") or _text053(
        details, f"RltdPties/{role}Acct/Id/IBAN"
    )
    return name, account


def _transaction_code(entry: ET.Element) -> str | None:
    domain = _find053(entry, "BkTxCd/Domn")
    if domain is not None:
        parts = [_text053(domain, "Cd"), _text053(domain, "Fmly/Cd"), _text053(domain, "Fmly/SubFmlyCd")]
        return "/".join(p for p in parts if p) or None
    return _text053(entry, "BkTxCd/Prtry/Cd")


def _entry(node: ET.Element) -> StatementEntry | None:
    status_code = _text053(node, "Sts/Cd") or _text053(node, "Sts")
    if status_code not in ("BOOK", "PDNG"):  # INFO and future codes carry no movement
        return None
    indicator = _text053(node, "CdtDbtInd")
    if indicator not in ("CRDT", "DBIT"):
        raise ValueError("an entry without CdtDbtInd")
    direction = "credit" if indicator == "CRDT" else "debit"
    amount_node = _find053(node, "Amt")
    booked_on = _date(_find053(node, "BookgDt"), _text053)
    if booked_on is None:
        raise ValueError("an entry without BookgDt")
    details = _find053(node, "NtryDtls/TxDtls")
    end_to_end = _text053(details, "Refs/EndToEndId") if details is not None else None
    name, account = _counterparty(details, direction)
    remittance = None
    if details is not None:
        lines = [n.text.strip() for n in details.findall(f"{{{CAMT053}}}RmtInf/{{{CAMT053}}}Ustrd") if n.text]
        remittance = " ".join(lines) or None
    reference = _text053(node, "AcctSvcrRef") or _text053(node, "NtryRef")
    if not reference:
        raise ValueError("an entry without AcctSvcrRef or NtryRef")
    return StatementEntry(
        entry_reference=reference,
        booked_on=booked_on,
        value_on=_date(_find053(node, "ValDt"), _text053),
        amount=_amount(amount_node.text.strip() if amount_node is not None and amount_node.text else None),
        currency=amount_node.get("Ccy", "CNY") if amount_node is not None else "CNY",
        direction=direction,
        status="booked" if status_code == "BOOK" else "pending",
        reference=end_to_end if end_to_end and end_to_end != "NOTPROVIDED" else None,
        counterparty_name=name,
        counterparty_account=account,
        remittance=remittance,
        bank_transaction_code=_transaction_code(node),
    )


@dataclass(frozen=True)
class _StatementPart:
    currency: str
    opening: Decimal | None
    closing: Decimal | None
    entries: tuple[StatementEntry, ...]


def parse_statement(content: bytes, account: str) -> _StatementPart:
    """A camt.053.001.08 for ``account``: currency, OPBD, CLBD and the entries."""
    root = _document(content, CAMT053, "camt.053.001.08")
    stmt = _find053(root, "BkToCstmrStmt/Stmt")
    if stmt is None:
        raise ValueError("a camt.053 without Stmt")
    if _text053(stmt, "Acct/Id/Othr/Id") != account:
        raise ValueError("the statement is for another account")
    currency = _text053(stmt, "Acct/Ccy")
    balances: dict[str, Decimal] = {}
    for balance in stmt.findall(f"{{{CAMT053}}}Bal"):
        code = _text053(balance, "Tp/CdOrPrtry/Cd")
        amount_node = _find053(balance, "Amt")
        amount = _amount(amount_node.text.strip() if amount_node is not None and amount_node.text else None)
        if _text053(balance, "CdtDbtInd") == "DBIT":
            amount = -amount
        if code in ("OPBD", "CLBD"):
            balances[code] = amount
        if currency is None and amount_node is not None:
            currency = amount_node.get("Ccy")
    entries = tuple(e for e in map(_entry, stmt.findall(f"{{{CAMT053}}}Ntry")) if e is not None)
    return _StatementPart(currency or "CNY", balances.get("OPBD"), balances.get("CLBD"), entries)


def _error_body(response: httpx.Response) -> tuple[str | None, str | None]:
    try:
        body = msgspec.json.decode(response.content)
        return str(body["code"]), str(body.get("message", ""))
    except (msgspec.DecodeError, KeyError, TypeError):
        return None, None


# -- the adapter --------------------------------------------------------------------------


class Iso20022BankAdapter(HttpAdapter):
    """Sandbox Bank A and banks speaking the same host-to-host API.

    Options: ``accounts``, the debtor accounts this instance may pay from, as a list
    of ``{"account", "name", "bank_code"}`` (when absent, any debtor account is sent
    and the bank decides).
    """

    kind: ClassVar[AdapterKind] = "bank"
    dialect: ClassVar[str] = "iso20022"
    version: ClassVar[str] = "1.0"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.PAYMENT_INITIATION, Capability.PAYMENT_STATUS, Capability.STATEMENTS}
    )
    # A host-to-host gateway is slower than an API but rarely throttles; an upload is
    # never retried blind (the client turns a lost answer into a status query), and a
    # statement of a year of entries may take a while to build.
    policy: ClassVar[UpstreamPolicy] = UpstreamPolicy(
        timeouts=Timeouts(connect=3.0, read=20.0, write=10.0, pool=5.0),
        retry=RetryPolicy(max_attempts=3, initial_backoff=0.5, max_backoff=4.0, deadline=30.0, max_retry_after=15.0),
        circuit=CircuitPolicy(failure_threshold=5, reset_timeout=30.0),
    )
    required_credentials: ClassVar[tuple[str, ...]] = ("api_key", "api_secret")

    #: How many times an upload whose answer was lost is checked and sent again.
    max_submit_rounds: ClassVar[int] = 3
    #: The longest period one statement request may cover (the bank's limit).
    statement_days: ClassVar[int] = 366

    def __init__(self, config: AdapterConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.accounts = self._configured_accounts(config)
        pain001_schema()  # loaded now rather than inside the first payment's call

    @staticmethod
    def _configured_accounts(config: AdapterConfig) -> dict[str, AccountParty]:
        raw = config.options.get("accounts", [])
        try:
            parties = [msgspec.convert(item, AccountParty) for item in raw]
        except (msgspec.ValidationError, TypeError) as exc:
            raise ConfigurationError(
                f"adapter {config.name!r}: options.accounts must be a list of {{account, name, bank_code}}: {exc}"
            ) from None
        return {party.account: party for party in parties}

    def build_auth(self, config: AdapterConfig) -> httpx.Auth:
        return Iso20022Auth(config.credentials["api_key"], config.credentials["api_secret"])

    # -- answers --------------------------------------------------------------------------

    def _refusal(self, response: httpx.Response) -> None:
        """Raise for an answer that is not an ISO 20022 message."""
        code, message = _error_body(response)
        details: dict[str, Any] = {"upstream_code": code, "upstream_message": message, "response": response}
        status = response.status_code
        if status == 401:
            raise UpstreamAuthenticationError(f"bank refused our signature ({code})", **details)
        if status == 404:
            raise UpstreamNotFound(f"bank has no such thing ({code})", **details)
        if status in (400, 405, 413, 415, 422) and code is not None:
            raise BusinessRejection(
                f"bank refused the request ({code})", upstream_code=code, upstream_message=message or "",
                response=response,
            )
        raise UpstreamProtocolError(f"unexpected answer HTTP {status} ({code})", **details)

    def _upload_answer(self, response: httpx.Response) -> PaymentReceipt | _Repeated:
        if response.status_code not in (200, 409):
            self._refusal(response)
        try:
            answer = parse_status_report(response.content)
        except ValueError as exc:
            raise UpstreamProtocolError(f"unreadable status report: {exc}", response=response) from exc
        if response.status_code == 409 and not isinstance(answer, _Repeated):
            raise UpstreamProtocolError("a 409 that is not a repeated upload", response=response)
        return answer

    def _status_answer(self, response: httpx.Response) -> PaymentReceipt:
        if response.status_code != 200:
            self._refusal(response)
        try:
            answer = parse_status_report(response.content)
        except ValueError as exc:
            raise UpstreamProtocolError(f"unreadable status report: {exc}", response=response) from exc
        if isinstance(answer, _Repeated):
            raise UpstreamProtocolError("a status query answered as an upload", response=response)
        return answer

    # -- payments ---------------------------------------------------------------------------

    async def initiate_payment(self, submission: PaymentSubmission, *, context: CallContext) -> PaymentReceipt:
        if self.accounts and submission.debtor.account not in self.accounts:
            raise ConfigurationError(f"adapter {self.name!r} is not configured to pay from this debtor account")
        body = build_pain001(submission, created_at=dt.datetime.now(_CHINA))

        async def upload() -> PaymentReceipt:
            answer = await self.client.call(
                "POST", PAYMENTS_PATH, self._upload_answer, operation="payment.initiate", context=context,
                idempotent=False, content=body, headers={"Content-Type": "application/xml"},
            )
            if isinstance(answer, PaymentReceipt):
                if answer.reference != submission.reference:
                    raise UpstreamProtocolError("the status report is about another payment", upstream=self.name)
                return answer
            # Sent before (a retry after a crash, or a second call): the bank kept the first.
            found = await self.find_payment(submission.reference, context=context)
            if found is None:
                raise BusinessRejection(
                    "bank refused the upload as a repeat but has no such payment",
                    upstream_code=answer.code, upstream_message=answer.message or "", upstream=self.name,
                )
            return found

        return await send_at_most_once(
            upload,
            lambda: self.find_payment(submission.reference, context=context),
            reference=f"payment {submission.reference}", upstream=self.name, rounds=self.max_submit_rounds,
        )

    async def find_payment(self, reference: str, *, context: CallContext) -> PaymentReceipt | None:
        path = f"{PAYMENTS_PATH}/{quote(reference, safe='')}"
        try:
            receipt = await self.client.call(
                "GET", path, self._status_answer, operation="payment.status", context=context, idempotent=True
            )
        except UpstreamNotFound:
            return None
        if receipt.reference != reference:
            raise UpstreamProtocolError("the status report is about another payment", upstream=self.name)
        return receipt

    # -- statements -------------------------------------------------------------------------

    async def statement(
        self, account: str, from_date: dt.date, to_date: dt.date, *, context: CallContext
    ) -> Statement:
        if from_date > to_date:
            raise ValueError(f"from_date {from_date} is after to_date {to_date}")
        parts: list[_StatementPart] = []
        start = from_date
        while start <= to_date:  # the bank serves at most statement_days per request
            end = min(to_date, start + dt.timedelta(days=self.statement_days - 1))
            body = msgspec.json.encode({"account": account, "fromDate": start.isoformat(), "toDate": end.isoformat()})

            def interpret(response: httpx.Response) -> _StatementPart:
                if response.status_code != 200:
                    self._refusal(response)
                try:
                    return parse_statement(response.content, account)
                except ValueError as exc:
                    raise UpstreamProtocolError(f"unreadable statement: {exc}", response=response) from exc

            parts.append(
                await self.client.call(
                    "POST", STATEMENTS_PATH, interpret, operation="statement", context=context, idempotent=True,
                    content=body, headers={"Content-Type": "application/json"},
                )
            )
            start = end + dt.timedelta(days=1)
        return Statement(
            account=account,
            currency=parts[0].currency,
            from_date=from_date,
            to_date=to_date,
            opening_balance=parts[0].opening,
            closing_balance=parts[-1].closing,
            entries=tuple(entry for part in parts for entry in part.entries),
        )
