"""Adapter for the ``openbanking`` bank protocol (docs/dialects/openbanking.md).

JSON payment initiation behind an OAuth2 client-credentials token, each initiation
signed with a detached ES256 JWS and carrying the payment's reference as both its
``EndToEndIdentification`` and its ``x-idempotency-key``; status polled by the bank's
id or looked up by that reference; account transactions as statements. Money
travels as decimal strings in CNY, instants with the China offset.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

import httpx
import msgspec
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from joserfc.registry import HeaderParameter

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
from ..http import RetryPolicy, UpstreamPolicy
from ..models import (
    BankPaymentStatus,
    PaymentPurpose,
    PaymentReceipt,
    PaymentRejectionReason,
    PaymentSubmission,
    Statement,
    StatementEntry,
)
from ..protocols import AdapterConfig, AdapterKind, Capability
from ..values import format_yuan, parse_yuan

__all__ = ["OpenBankingBankAdapter", "TokenRejected", "sign_detached"]

T = TypeVar("T")

TOKEN_PATH = "/oauth2/token"
PAYMENTS_PATH = "/open-banking/v3.1/pisp/domestic-payments"
ACCOUNTS_PATH = "/open-banking/v3.1/aisp/accounts"
_JSON = {"Content-Type": "application/json"}

_STATUS: dict[str, BankPaymentStatus] = {
    "Pending": "submitted",
    "AcceptedSettlementInProcess": "accepted",
    "AcceptedSettlementCompleted": "settled",
    "Rejected": "rejected",
}
# The bank's status reasons are ISO 20022 ExternalStatusReason1Code values.
_REASONS: dict[str, PaymentRejectionReason] = {
    "AC01": "invalid_account",
    "AC02": "invalid_account",
    "AC03": "invalid_account",
    "AC04": "account_closed",
    "AC06": "account_blocked",
    "BE01": "creditor_name_mismatch",
    "AM04": "insufficient_funds",
    "AM02": "invalid_amount",
    "AM12": "invalid_amount",
    "AM05": "duplicate_payment",
    "RC01": "invalid_bank_code",
    "RR01": "regulatory",
    "RR02": "regulatory",
    "RR03": "regulatory",
    "RR04": "regulatory",
    "TM01": "cut_off_passed",
}
_PURPOSE: dict[PaymentPurpose, str] = {
    "reimbursement": "EXPENSE_REIMBURSEMENT",
    "social_security_contribution": "SOCIAL_INSURANCE",
    "other": "OTHER",
}
# Which canonical field the bank's error ``Path`` is about (longest prefix wins).
_FIELDS: tuple[tuple[str, str], ...] = (
    ("Data.Initiation.InstructedAmount.Currency", "currency"),
    ("Data.Initiation.InstructedAmount", "amount"),
    ("Data.Initiation.DebtorAccount.Name", "debtor.name"),
    ("Data.Initiation.DebtorAccount", "debtor.account"),
    ("Data.Initiation.CreditorAccount.Name", "creditor.name"),
    ("Data.Initiation.CreditorAccount", "creditor.account"),
    ("Data.Initiation.CreditorAgent", "creditor.bank_code"),
    ("Data.Initiation.RemittanceInformation", "remittance"),
    ("Data.Initiation.EndToEndIdentification", "reference"),
    ("Data.Initiation.InstructionIdentification", "reference"),
    ("Data.Initiation.RequestedExecutionDate", "requested_on"),
    ("Data.Initiation.PaymentPurpose", "purpose"),
    ("x-idempotency-key", "reference"),
)
_CNAPS = re.compile(r"\d{12}")
_BIC = re.compile(r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# ``iat`` is not a registered JWS header parameter; the protocol adds it.
_JWS_REGISTRY = jws.JWSRegistry(
    header_registry={"iat": HeaderParameter("Issued at (Unix seconds)", "int", required=True)}, algorithms=["ES256"]
)
#: A statement is read in pages; more than this many means the bank's paging loops.
MAX_STATEMENT_PAGES = 1000


class TokenRejected(UpstreamAuthenticationError):
    """``401 OB.Token.Invalid``: the bank refused the access token before applying
    anything, so the call is repeated once with a fresh token (even an initiation)."""


def sign_detached(body: bytes, key: ECKey, kid: str, iat: int) -> str:
    """The ``x-jws-signature`` of ``body``: a compact ES256 JWS with the payload left out."""
    compact = jws.serialize_compact({"alg": "ES256", "kid": kid, "iat": iat}, body, key, registry=_JWS_REGISTRY)
    header, _, signature = compact.split(".")
    return f"{header}..{signature}"


def _instant_date(value: object) -> dt.date:
    """The (China) date of an ISO 8601 instant such as ``2026-11-02T10:15:00+08:00``."""
    if not isinstance(value, str):
        raise ValueError(f"bad instant {value!r}")
    return dt.datetime.fromisoformat(value).date()


def _date(value: object) -> dt.date:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError(f"bad date {value!r}")
    return dt.date.fromisoformat(value)


def _amount(obj: Any) -> Decimal:
    if not isinstance(obj, dict) or obj.get("Currency") != "CNY":
        raise ValueError("an amount must be {Amount, Currency: CNY}")
    amount = parse_yuan(obj.get("Amount"))
    if amount is None:
        raise ValueError("an amount without Amount")
    return amount


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    renew_at: float  # on the adapter's monotonic clock


class OpenBankingBankAdapter(HttpAdapter):
    kind: ClassVar[AdapterKind] = "bank"
    dialect: ClassVar[str] = "openbanking"
    version: ClassVar[str] = "1.0"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.PAYMENT_INITIATION, Capability.PAYMENT_STATUS, Capability.STATEMENTS}
    )
    # The bank answers 503 and 429 (with Retry-After) when nothing was applied, and 500
    # when an initiation may have been: the first are retried, the last asked about by
    # EndToEndIdentification. A payment is not urgent to the second; a few patient tries.
    policy: ClassVar[UpstreamPolicy] = UpstreamPolicy(
        retry=RetryPolicy(
            max_attempts=4,
            initial_backoff=0.2,
            max_backoff=2.0,
            deadline=20.0,
            max_retry_after=10.0,
            not_applied_statuses=frozenset({429, 503}),
        )
    )
    required_credentials: ClassVar[tuple[str, ...]] = ("client_id", "client_secret", "signing_key")

    #: How many times an initiation whose outcome was ambiguous is checked and re-sent.
    max_submit_rounds: ClassVar[int] = 3
    #: A token is renewed this many seconds before it expires (at half its life if shorter).
    renew_early: ClassVar[float] = 30.0

    def __init__(
        self,
        config: AdapterConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> None:
        super().__init__(config, **kwargs)
        try:
            key = ECKey.import_key(config.credentials["signing_key"])
        except (JoseError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"adapter {config.name!r} (openbanking): signing_key is not a PEM EC key") from exc
        if key.curve_name != "P-256" or not key.is_private:
            raise ConfigurationError(
                f"adapter {config.name!r} (openbanking): signing_key must be an EC P-256 private key"
            )
        self._signing_key = key
        self._client_id = config.credentials["client_id"]
        basic = f"{self._client_id}:{config.credentials['client_secret']}".encode()
        self._basic = "Basic " + base64.b64encode(basic).decode("ascii")
        self._clock = clock
        self._wall_clock = wall_clock
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()
        self._account_ids: dict[str, str] = {}

    # -- access token -------------------------------------------------------------

    def _valid_token(self) -> str | None:
        token = self._token
        if token is not None and self._clock() < token.renew_at:
            return token.value
        return None

    async def _access_token(self, context: CallContext) -> str:
        """A cached token, fetched when there is none or it is about to expire; concurrent
        callers wait for one fetch."""
        token = self._valid_token()
        if token is not None:
            return token
        async with self._token_lock:
            token = self._valid_token()
            if token is not None:
                return token
            asked_at = self._clock()  # the token's life counts from before we asked
            value, ttl = await self.client.call(
                "POST", TOKEN_PATH, self._token_answer, operation="token.fetch", context=context,
                idempotent=True,  # a token request changes nothing the bank keeps
                content=b"grant_type=client_credentials&scope=payments%20accounts",
                headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": self._basic},
            )
            self._token = _Token(value, renew_at=asked_at + ttl - min(self.renew_early, ttl / 2))
            return value

    @staticmethod
    def _token_answer(response: httpx.Response) -> tuple[str, float]:
        if response.status_code != 200:
            try:
                error = msgspec.json.decode(response.content)
                code, description = str(error["error"]), str(error.get("error_description", ""))
            except (msgspec.DecodeError, KeyError, TypeError) as exc:
                raise UpstreamProtocolError(
                    f"token endpoint answered HTTP {response.status_code} without an OAuth error", response=response
                ) from exc
            raise UpstreamAuthenticationError(
                f"bank refused our client credentials ({code})",
                upstream_code=code, upstream_message=description, response=response,
            )
        answer = msgspec.json.decode(response.content)
        value, ttl = answer["access_token"], answer["expires_in"]
        if answer.get("token_type", "").lower() != "bearer" or not isinstance(value, str) or not value:
            raise ValueError("not a bearer token")
        if not isinstance(ttl, int) or ttl <= 0:
            raise ValueError(f"expires_in must be a positive integer, got {ttl!r}")
        return value, float(ttl)

    def _forget(self, value: str) -> None:
        """Drop the token unless another caller has already replaced it."""
        if self._token is not None and self._token.value == value:
            self._token = None

    async def _exchange(
        self,
        method: str,
        path: str,
        interpret: Callable[[Any, httpx.Response], T],
        *,
        operation: str,
        context: CallContext,
        idempotent: bool,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> T:
        """One API call with a bearer token; when the bank refuses the token, fetch a new
        one and repeat the call once (the refusal applied nothing)."""
        for attempt in (1, 2):
            token = await self._access_token(context)
            all_headers = {**(headers or {}), "Authorization": f"Bearer {token}"}
            if content is not None and method == "POST":
                all_headers["x-jws-signature"] = sign_detached(
                    content, self._signing_key, self._client_id, int(self._wall_clock())
                )
            try:
                return await self.client.call(
                    method, path, lambda response: interpret(self._unwrap(response), response),
                    operation=operation, context=context, idempotent=idempotent, content=content,
                    headers=all_headers,
                )
            except TokenRejected as exc:
                self._forget(token)
                if attempt == 2:
                    raise UpstreamAuthenticationError(
                        "bank refused a fresh access token too",
                        upstream=exc.upstream, request=exc.request, response=exc.response,
                        upstream_code=exc.upstream_code, upstream_message=exc.upstream_message,
                    ) from exc
        raise AssertionError("unreachable")

    # -- envelope -----------------------------------------------------------------

    def _unwrap(self, response: httpx.Response) -> Any:
        """The decoded body of a 2xx answer; otherwise the taxonomy's error."""
        if response.is_success:
            return msgspec.json.decode(response.content)
        status = response.status_code
        try:
            envelope = msgspec.json.decode(response.content)
            first = envelope["Errors"][0]
            code, message, path = str(first["ErrorCode"]), str(first.get("Message", "")), first.get("Path")
        except (msgspec.DecodeError, KeyError, IndexError, TypeError) as exc:
            raise UpstreamProtocolError(
                f"HTTP {status} without an error envelope", response=response
            ) from exc
        details: dict[str, Any] = {"upstream_code": code, "upstream_message": message, "response": response}
        if status == 401:
            raise TokenRejected(f"bank refused the access token ({code})", **details)
        if status == 403 or code.startswith("OB.Signature."):
            raise UpstreamAuthenticationError(f"bank refused our token or signature ({code})", **details)
        if status == 404:
            raise UpstreamNotFound(f"bank has no such resource ({code})", **details)
        if status in (400, 422):
            field = next((name for prefix, name in _FIELDS if isinstance(path, str) and path.startswith(prefix)), None)
            raise BusinessRejection(f"bank refused the request ({code})", field=field, **details)
        raise UpstreamProtocolError(f"unexpected HTTP {status} ({code})", **details)

    # -- payments -----------------------------------------------------------------

    @staticmethod
    def _agent(bank_code: str) -> dict[str, str]:
        if _CNAPS.fullmatch(bank_code):
            return {"SchemeName": "CN.CNAPS", "Identification": bank_code}
        if _BIC.fullmatch(bank_code):
            return {"SchemeName": "BICFI", "Identification": bank_code}
        raise ValueError(bank_code)

    def _initiation_body(self, submission: PaymentSubmission) -> bytes:
        try:
            agent = self._agent(submission.creditor.bank_code)
        except ValueError:
            raise BusinessRejection(
                "the creditor's bank code is neither a 12-digit CNAPS code nor a BIC; not sent",
                upstream_code="BANK_CODE",
                upstream_message="this bank identifies creditor agents by CNAPS code or BIC only",
                field="creditor.bank_code",
                upstream=self.name,
            ) from None
        initiation = {
            "InstructionIdentification": submission.reference,
            "EndToEndIdentification": submission.reference,
            "InstructedAmount": {"Amount": format_yuan(submission.amount), "Currency": submission.currency},
            "DebtorAccount": {
                "SchemeName": "CN.BankAccount", "Identification": submission.debtor.account, "Name": submission.debtor.name,
            },
            "CreditorAccount": {
                "SchemeName": "CN.BankAccount",
                "Identification": submission.creditor.account,
                "Name": submission.creditor.name,
            },
            "CreditorAgent": agent,
            "RemittanceInformation": {"Unstructured": submission.remittance},
            "PaymentPurpose": _PURPOSE[submission.purpose],
            "RequestedExecutionDate": submission.requested_on.isoformat(),
        }
        return msgspec.json.encode({"Data": {"Initiation": initiation}})

    def _receipt(self, data: Any) -> PaymentReceipt:
        """A payment resource's ``Data`` as a canonical receipt."""
        status = _STATUS[data["Status"]]
        reference = data["Initiation"]["EndToEndIdentification"]
        bank_reference = data["DomesticPaymentId"]
        if not isinstance(reference, str) or not isinstance(bank_reference, str):
            raise ValueError("a payment without its identifications")
        reason: PaymentRejectionReason | None = None
        code = message = None
        reasons = data.get("StatusReason") or []
        if reasons:
            code, message = str(reasons[0]["Code"]), str(reasons[0].get("Message", ""))
        if status == "rejected":
            reason = _REASONS.get(code or "", "other")
        settled_on = None
        if status == "settled":
            settled = data.get("SettlementDate")
            settled_on = _date(settled) if settled else _instant_date(data["StatusUpdateDateTime"])
        return PaymentReceipt(
            reference=reference,
            bank_reference=bank_reference,
            status=status,
            reason=reason,
            upstream_code=code if status == "rejected" else None,
            upstream_message=message if status == "rejected" else None,
            settled_on=settled_on,
        )

    def _created(self, reference: str) -> Callable[[Any, httpx.Response], PaymentReceipt]:
        def interpret(body: Any, response: httpx.Response) -> PaymentReceipt:
            receipt = self._receipt(body["Data"])
            if receipt.reference != reference:
                raise UpstreamProtocolError(
                    f"the bank answered for payment {receipt.reference!r}, not {reference!r}", response=response
                )
            return receipt

        return interpret

    async def initiate_payment(self, submission: PaymentSubmission, *, context: CallContext) -> PaymentReceipt:
        body = self._initiation_body(submission)
        reference = submission.reference
        return await send_at_most_once(
            lambda: self._exchange(
                "POST", PAYMENTS_PATH, self._created(reference), operation="payment.initiate", context=context,
                idempotent=False, content=body, headers={**_JSON, "x-idempotency-key": reference},
            ),
            lambda: self.find_payment(reference, context=context),
            reference=f"payment {reference}", upstream=self.name, rounds=self.max_submit_rounds,
        )

    async def find_payment(self, reference: str, *, context: CallContext) -> PaymentReceipt | None:
        """The bank's state of the payment carrying ``reference``; ``None`` when it has none.

        Should the bank hold more than one (a duplicate it rejected), the oldest is ours."""
        query = urllib.parse.urlencode({"EndToEndIdentification": reference})

        def interpret(body: Any, response: httpx.Response) -> PaymentReceipt | None:
            found = body["Data"]["DomesticPayment"]
            if not isinstance(found, list):
                raise ValueError("DomesticPayment is not a list")
            receipts = [self._receipt(data) for data in found]
            if any(r.reference != reference for r in receipts):
                raise UpstreamProtocolError(f"the bank answered a lookup of {reference!r} with another payment")
            return receipts[0] if receipts else None

        return await self._exchange(
            "GET", f"{PAYMENTS_PATH}?{query}", interpret, operation="payment.lookup", context=context, idempotent=True
        )

    async def payment_status(self, bank_reference: str, *, context: CallContext) -> PaymentReceipt:
        """The payment the bank numbered ``bank_reference``; ``UpstreamNotFound`` if none."""
        path = f"{PAYMENTS_PATH}/{urllib.parse.quote(bank_reference, safe='')}"
        return await self._exchange(
            "GET", path, lambda body, _: self._receipt(body["Data"]), operation="payment.status",
            context=context, idempotent=True,
        )

    # -- statements ---------------------------------------------------------------

    async def _account_id(self, account: str, context: CallContext) -> str:
        """The bank's ``AccountId`` of ``account`` (numbers never go into a URL)."""
        if account not in self._account_ids:

            def interpret(body: Any, response: httpx.Response) -> dict[str, str]:
                return {
                    str(item["Account"]["Identification"]): str(item["AccountId"]) for item in body["Data"]["Account"]
                }

            self._account_ids = await self._exchange(
                "GET", ACCOUNTS_PATH, interpret, operation="accounts.list", context=context, idempotent=True
            )
        try:
            return self._account_ids[account]
        except KeyError:
            raise UpstreamNotFound("the bank holds no such account for this client", upstream=self.name) from None

    def _entry(self, raw: dict[str, Any]) -> StatementEntry:
        direction = {"Debit": "debit", "Credit": "credit"}[raw["CreditDebitIndicator"]]
        status = {"Booked": "booked", "Pending": "pending"}[raw["Status"]]
        counterparty = raw.get("CreditorAccount" if direction == "debit" else "DebtorAccount") or {}
        code = raw.get("BankTransactionCode") or {}
        value_at = raw.get("ValueDateTime")
        return StatementEntry(
            entry_reference=str(raw["TransactionId"]),
            booked_on=_instant_date(raw["BookingDateTime"]),
            value_on=_instant_date(value_at) if value_at else None,
            amount=_amount(raw["Amount"]),
            currency="CNY",
            direction=direction,  # type: ignore[arg-type]  # one of the two by the mapping
            status=status,  # type: ignore[arg-type]
            reference=raw.get("TransactionReference") or None,
            counterparty_name=counterparty.get("Name") or None,
            counterparty_account=counterparty.get("Identification") or None,
            remittance=raw.get("TransactionInformation") or None,
            bank_transaction_code="-".join(p for p in (code.get("Code"), code.get("SubCode")) if p) or None,
        )

    async def statement(
        self, account: str, from_date: dt.date, to_date: dt.date, *, context: CallContext
    ) -> Statement:
        """Entries booked on ``account`` from ``from_date`` to ``to_date`` inclusive (pending
        ones included, marked so); ``UpstreamNotFound`` if the bank does not know the account."""
        if from_date > to_date:
            raise ValueError(f"from_date {from_date} is after to_date {to_date}")
        account_id = await self._account_id(account, context)
        query = urllib.parse.urlencode({"fromBookingDate": from_date.isoformat(), "toBookingDate": to_date.isoformat()})
        path: str | None = f"{ACCOUNTS_PATH}/{urllib.parse.quote(account_id, safe='')}/transactions?{query}"

        def interpret(body: Any, response: httpx.Response) -> tuple[Decimal, Decimal, list[StatementEntry], str | None]:
            data = body["Data"]
            balance = data["Balance"]
            entries = [self._entry(raw) for raw in data["Transaction"]]
            following = (body.get("Links") or {}).get("Next")
            if following is not None:
                parsed = urllib.parse.urlsplit(str(following))
                # Follow only within this bank's API, whatever host the link names.
                following = f"{parsed.path}?{parsed.query}" if parsed.path.startswith(ACCOUNTS_PATH) else None
                if following is None:
                    raise ValueError("Links.Next leaves the accounts API")
            return _amount(balance["OpeningBooked"]), _amount(balance["ClosingBooked"]), entries, following

        entries: list[StatementEntry] = []
        opening = closing = None
        pages = 0
        while path is not None:
            pages += 1
            if pages > MAX_STATEMENT_PAGES:
                raise UpstreamProtocolError(f"more than {MAX_STATEMENT_PAGES} statement pages", upstream=self.name)
            page_opening, closing, page, path = await self._exchange(
                "GET", path, interpret, operation="statement.page", context=context, idempotent=True
            )
            opening = page_opening if opening is None else opening
            entries.extend(page)
        return Statement(
            account=account,
            currency="CNY",
            from_date=from_date,
            to_date=to_date,
            opening_balance=opening,
            closing_balance=closing,
            entries=tuple(entries),
        )
