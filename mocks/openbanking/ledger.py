"""The bank's books: client accounts and balances, known creditor accounts, payments
moving through their statuses on an accelerated clock, and booked transactions.

A payment is checked one step after it was created and settled one step after that
(no earlier than the start of its requested execution date). Nothing runs in the
background: every read first catches the books up with the clock, processing due
checks and settlements in time order, so earlier payments reserve funds first.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from mocks.openbanking import seeds
from mocks.openbanking.wire import CHINA, KEY_REUSED, BankError, Initiation, Party, amount_text, china_date, instant

IDEMPOTENCY_RETENTION_SECONDS = 24 * 3600

PENDING = "Pending"
IN_PROCESS = "AcceptedSettlementInProcess"
COMPLETED = "AcceptedSettlementCompleted"
REJECTED = "Rejected"

REASONS = {
    "AC01": "Creditor account number does not exist",
    "AC02": "Debtor account is not an account of this client",
    "AC04": "Account is closed",
    "AC06": "Account is blocked",
    "AM02": "Amount is above the per-payment limit",
    "AM04": "Insufficient funds on the debtor account",
    "AM05": "Duplicate payment: EndToEndIdentification already used",
    "BE01": "Creditor name does not match the account holder",
    "MS03": "Declined by the bank",
    "RC01": "Creditor agent is not a known domestic bank",
    "RR04": "Held by regulatory screening",
    "TM01": "Received after the cut-off for the requested execution date",
}


def mask_account(number: str) -> str:
    return number[:4] + "*" * (len(number) - 8) + number[-4:] if len(number) > 8 else "*" * len(number)


def mask_name(name: str | None) -> str | None:
    return None if name is None else name[:1] + "*" * (len(name) - 1)


@dataclass
class Account:
    """One of the client's accounts at this bank."""

    account_id: str
    number: str
    name: str
    base_balance: Decimal
    """The booked balance before every booked entry (``set_balance`` moves it)."""
    status: str = "open"


@dataclass
class Creditor:
    """A creditor account the bank knows; ``name`` None skips the name check."""

    name: str | None
    status: str  # open, closed, blocked, missing, screened, declined


@dataclass(frozen=True)
class Entry:
    """A booked movement on a client account."""

    transaction_id: str
    account: str
    payment_id: str
    direction: str  # Debit or Credit
    amount: Decimal
    booked_at: float
    reference: str
    remittance: str
    counterparty: Party


@dataclass
class Payment:
    payment_id: str
    idempotency_key: str
    fingerprint: str
    initiation: Initiation
    created_at: float
    status: str = PENDING
    status_at: float = 0.0
    accepted_at: float | None = None
    settled_at: float | None = None
    reason_code: str | None = None
    reason_message: str | None = None
    answer: bytes = b""
    """The 201 answer as first sent, replayed for the same key and body."""

    @property
    def reference(self) -> str:
        return self.initiation.end_to_end_id

    def resource(self) -> dict[str, Any]:
        """The ``Data`` of the payment resource, in its current status."""
        data: dict[str, Any] = {
            "DomesticPaymentId": self.payment_id,
            "Status": self.status,
            "CreationDateTime": instant(self.created_at),
            "StatusUpdateDateTime": instant(self.status_at or self.created_at),
            "Initiation": self.initiation.raw,
        }
        if self.reason_code is not None:
            data["StatusReason"] = [{"Code": self.reason_code, "Message": self.reason_message or ""}]
        if self.settled_at is not None:
            data["SettlementDate"] = china_date(self.settled_at).isoformat()
        return data

    def masked(self) -> dict[str, Any]:
        init = self.initiation
        return {
            "payment_id": self.payment_id,
            "end_to_end_id": init.end_to_end_id,
            "status": self.status,
            "amount": amount_text(init.amount),
            "debtor_account": mask_account(init.debtor.account),
            "creditor_account": mask_account(init.creditor.account),
            "creditor_name": mask_name(init.creditor.name),
            "reason_code": self.reason_code,
        }


@dataclass
class Statement:
    account: Account
    opening: Decimal
    closing: Decimal
    transactions: list[dict[str, Any]] = field(default_factory=list)


def _day_start(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(), CHINA).timestamp()


class Ledger:
    def __init__(
        self,
        *,
        clock: Callable[[], float],
        step: Callable[[], float],
        cut_off_passed: Callable[[], bool],
        seed: bool = True,
    ) -> None:
        self._clock = clock
        self._step = step
        self._cut_off_passed = cut_off_passed
        self._seed = seed
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._accounts: dict[str, Account] = {}
            self._creditors: dict[str, Creditor] = {}
            self._payments: list[Payment] = []
            self._by_id: dict[str, Payment] = {}
            self._by_key: dict[str, Payment] = {}
            self._entries: list[Entry] = []
            if self._seed:
                for seed in seeds.DEBTOR_ACCOUNTS:
                    self.add_account(seed.account, seed.name, seed.balance)
                for creditor in seeds.CREDITOR_ACCOUNTS:
                    self._creditors[creditor.account] = Creditor(creditor.name, creditor.status)

    # -- accounts ------------------------------------------------------------------

    def add_account(self, number: str, name: str, balance: Decimal) -> Account:
        with self._lock:
            account = Account(f"ACC-{len(self._accounts) + 1:04d}", number, name, Decimal(balance))
            self._accounts[number] = account
            return account

    def accounts(self) -> list[Account]:
        with self._lock:
            return list(self._accounts.values())

    def account_by_id(self, account_id: str) -> Account | None:
        with self._lock:
            return next((a for a in self._accounts.values() if a.account_id == account_id), None)

    def set_status(self, number: str, status: str) -> None:
        """Close, block or reopen a client account or a creditor account; an account the
        bank did not know becomes a known creditor account (no name on file)."""
        with self._lock:
            self._advance()
            if number in self._accounts:
                self._accounts[number].status = status
            else:
                self._creditors.setdefault(number, Creditor(None, "open")).status = status

    def add_creditor(self, number: str, name: str | None, status: str = "open") -> None:
        with self._lock:
            self._creditors[number] = Creditor(name, status)

    def booked_balance(self, number: str) -> Decimal:
        with self._lock:
            self._advance()
            return self._booked(self._accounts[number], None)

    def available_balance(self, number: str) -> Decimal:
        with self._lock:
            self._advance()
            return self._available(self._accounts[number])

    def set_balance(self, number: str, amount: Decimal) -> None:
        """Make the booked balance ``amount`` now (without a statement entry)."""
        with self._lock:
            self._advance()
            account = self._accounts[number]
            account.base_balance += Decimal(amount) - self._booked(account, None)

    def _booked(self, account: Account, before: float | None) -> Decimal:
        return account.base_balance + sum(
            (
                e.amount if e.direction == "Credit" else -e.amount
                for e in self._entries
                if e.account == account.number and (before is None or e.booked_at < before)
            ),
            Decimal("0.00"),
        )

    def _available(self, account: Account) -> Decimal:
        reserved = sum(
            (p.initiation.amount for p in self._payments if p.status == IN_PROCESS and p.initiation.debtor.account == account.number),
            Decimal("0.00"),
        )
        return self._booked(account, None) - reserved

    # -- payments ------------------------------------------------------------------

    def initiate(
        self,
        key: str,
        fingerprint: str,
        parse: Callable[[], Initiation],
        render: Callable[[Payment], bytes],
    ) -> tuple[Payment, bool]:
        """The payment created with idempotency ``key`` (and True: a replay), or a new one
        from ``parse()``; the same key with another body fingerprint is refused."""
        with self._lock:
            self._advance()
            now = self._clock()
            existing = self._by_key.get(key)
            if existing is not None and now - existing.created_at <= IDEMPOTENCY_RETENTION_SECONDS:
                if existing.fingerprint != fingerprint:
                    raise BankError(KEY_REUSED)
                return existing, True
            payment = Payment(
                payment_id=f"OBP-{len(self._payments) + 1:06d}",
                idempotency_key=key,
                fingerprint=fingerprint,
                initiation=parse(),
                created_at=now,
                status_at=now,
            )
            payment.answer = render(payment)
            self._payments.append(payment)
            self._by_id[payment.payment_id] = payment
            self._by_key[key] = payment
            return payment, False

    def payment(self, payment_id: str) -> Payment | None:
        with self._lock:
            self._advance()
            return self._by_id.get(payment_id)

    def find(self, end_to_end_id: str) -> list[Payment]:
        with self._lock:
            self._advance()
            return [p for p in self._payments if p.reference == end_to_end_id]

    def payments(self) -> list[Payment]:
        """Snapshots of every payment, oldest first."""
        with self._lock:
            self._advance()
            return [dataclasses.replace(p) for p in self._payments]

    # -- the clock -----------------------------------------------------------------

    def _check_due(self, payment: Payment) -> float:
        return payment.created_at + self._step()

    def _settle_due(self, payment: Payment) -> float:
        due = payment.created_at + 2 * self._step()
        requested = payment.initiation.requested_date
        return max(due, _day_start(requested)) if requested is not None else due

    def _advance(self) -> None:
        """Process every check and settlement due by now, earliest first."""
        now = self._clock()
        while True:
            due: list[tuple[float, int, Payment]] = []
            for index, p in enumerate(self._payments):
                if p.status == PENDING:
                    due.append((self._check_due(p), index, p))
                elif p.status == IN_PROCESS:
                    due.append((self._settle_due(p), index, p))
            due = [d for d in due if d[0] <= now]
            if not due:
                return
            at, _, payment = min(due, key=lambda d: (d[0], d[1]))
            if payment.status == PENDING:
                self._check(payment, at)
            else:
                self._settle(payment, at)

    def _check(self, payment: Payment, at: float) -> None:
        reason = self._rejection(payment, at)
        payment.status_at = at
        if reason is None:
            payment.status = IN_PROCESS
            payment.accepted_at = at
        else:
            payment.status = REJECTED
            payment.reason_code = reason
            payment.reason_message = REASONS[reason]

    def _rejection(self, payment: Payment, at: float) -> str | None:
        init = payment.initiation
        debtor = self._accounts.get(init.debtor.account)
        if debtor is None:
            return "AC02"
        if debtor.status == "closed":
            return "AC04"
        if debtor.status == "blocked":
            return "AC06"
        earlier = self._payments[: self._payments.index(payment)]
        if any(p.reference == init.end_to_end_id and p.status != REJECTED for p in earlier):
            return "AM05"
        today = china_date(at)
        requested = init.requested_date or today
        if requested < today or (requested == today and self._cut_off_passed()):
            return "TM01"
        if init.agent_scheme == "CN.CNAPS" and init.agent_id[:3] not in seeds.CNAPS_BANK_CLASSES:
            return "RC01"
        if init.agent_scheme == "BICFI" and init.agent_id[4:6] != "CN":
            return "RC01"
        reason = self._creditor_rejection(init.creditor)
        if reason is not None:
            return reason
        if init.amount > seeds.PAYMENT_LIMIT:
            return "AM02"
        if self._available(debtor) < init.amount:
            return "AM04"
        return None

    def _creditor_rejection(self, creditor: Party) -> str | None:
        client_account = self._accounts.get(creditor.account)
        if client_account is not None:
            known = Creditor(client_account.name, client_account.status)
        else:
            known = self._creditors.get(creditor.account)
        if known is None:
            return None
        reason = {"missing": "AC01", "closed": "AC04", "blocked": "AC06"}.get(known.status)
        if reason is not None:
            return reason
        if known.name is not None and known.name != creditor.name:
            return "BE01"
        return {"screened": "RR04", "declined": "MS03"}.get(known.status)

    def _settle(self, payment: Payment, at: float) -> None:
        payment.status = COMPLETED
        payment.status_at = at
        payment.settled_at = at
        init = payment.initiation
        self._entries.append(
            Entry(
                f"OBT-{len(self._entries) + 1:06d}", init.debtor.account, payment.payment_id, "Debit",
                init.amount, at, init.end_to_end_id, init.remittance, init.creditor,
            )
        )
        if init.creditor.account in self._accounts:
            self._entries.append(
                Entry(
                    f"OBT-{len(self._entries) + 1:06d}", init.creditor.account, payment.payment_id, "Credit",
                    init.amount, at, init.end_to_end_id, init.remittance, init.debtor,
                )
            )

    # -- statements ----------------------------------------------------------------

    def statement(self, account: Account, from_date: dt.date, to_date: dt.date) -> Statement:
        with self._lock:
            self._advance()
            start, end = _day_start(from_date), _day_start(to_date + dt.timedelta(days=1))
            rows: list[tuple[float, str, dict[str, Any]]] = []
            for e in self._entries:
                if e.account == account.number and start <= e.booked_at < end:
                    rows.append((e.booked_at, e.transaction_id, _transaction(e.transaction_id, "Booked", e)))
            for p in self._payments:
                at = p.accepted_at
                if p.status == IN_PROCESS and p.initiation.debtor.account == account.number and at is not None:
                    if start <= at < end:
                        init = p.initiation
                        pending = Entry(
                            f"{p.payment_id}-P", account.number, p.payment_id, "Debit", init.amount, at,
                            init.end_to_end_id, init.remittance, init.creditor,
                        )
                        rows.append((at, pending.transaction_id, _transaction(pending.transaction_id, "Pending", pending)))
            rows.sort(key=lambda r: (r[0], r[1]))
            return Statement(
                account=account,
                opening=self._booked(account, start),
                closing=self._booked(account, end),
                transactions=[row[2] for row in rows],
            )

    def snapshot(self) -> dict[str, Any]:
        """The books with account numbers and names masked."""
        with self._lock:
            self._advance()
            return {
                "accounts": [
                    {
                        "account_id": a.account_id,
                        "account": mask_account(a.number),
                        "status": a.status,
                        "booked_balance": amount_text(self._booked(a, None)),
                        "available_balance": amount_text(self._available(a)),
                    }
                    for a in self._accounts.values()
                ],
                "payments": [p.masked() for p in self._payments],
                "entries": len(self._entries),
            }


def _transaction(transaction_id: str, status: str, entry: Entry) -> dict[str, Any]:
    party = {"SchemeName": "CN.BankAccount", "Identification": entry.counterparty.account, "Name": entry.counterparty.name}
    debit = entry.direction == "Debit"
    return {
        "TransactionId": transaction_id,
        "TransactionReference": entry.reference,
        "Status": status,
        "CreditDebitIndicator": entry.direction,
        "Amount": {"Amount": amount_text(entry.amount), "Currency": "CNY"},
        "BookingDateTime": instant(entry.booked_at),
        "ValueDateTime": instant(entry.booked_at),
        "TransactionInformation": entry.remittance,
        "BankTransactionCode": {"Code": "ICDT" if debit else "RCDT", "SubCode": "DMCT"},
        ("CreditorAccount" if debit else "DebtorAccount"): party,
    }
