"""The bank's books: the client's accounts and their entries, the creditor accounts it
knows, and the payments it was given, with the rules that accept or reject them.

One lock guards everything, so an upload (its duplicate checks included) is atomic
under concurrent requests. Payments advance on the bank's clock lazily: every
operation first applies the steps that have come due, in the order they came due.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from typing import Any

from mocks.iso20022.messages import (
    CHINA,
    USAGE_RULE,
    BankError,
    CreditTransfer,
    StatementLine,
    StatementRequest,
    TransactionStatus,
)

RECEIVED = "RCVD"
ACCEPTED = "ACSP"
SETTLED = "ACSC"
REJECTED = "RJCT"

OPEN = "open"
CLOSED = "closed"
BLOCKED = "blocked"
HOLD = "hold"
ACCOUNT_STATES = frozenset({OPEN, CLOSED, BLOCKED, HOLD})

# Reason code -> AddtlInf (Chinese and English, never names or account numbers).
REASONS = {
    "AM01": "金额为零 zero amount",
    "AM02": "超过单笔限额 amount above the single-payment limit",
    "AM03": "币种不支持 currency not allowed",
    "AM04": "余额不足 insufficient funds",
    "AM05": "疑似重复支付 duplicate payment",
    "AM12": "金额无效 invalid amount",
    "AC01": "收款账户不存在 creditor account does not exist",
    "AC02": "付款账户无效 invalid debtor account",
    "AC03": "收款账号格式错误 invalid creditor account number",
    "AC04": "账户已销户 account closed",
    "AC06": "账户已冻结 account blocked",
    "BE01": "户名与账号不符 name does not match the account",
    "RC01": "付款行行号错误 debtor agent is not this bank",
    "RC10": "收款行行号无效 unknown creditor agent",
    "RR04": "监管原因 regulatory reason",
    "CUTA": "已过截止时间 cut-off time passed",
    "DU01": "报文标识重复 duplicate message identification",
    "DU04": "端到端标识重复 duplicate end-to-end identification",
}

MAX_DAYS_AHEAD = 30


def business_day(at: float) -> dt.date:
    return dt.datetime.fromtimestamp(at, CHINA).date()


def normalised_name(name: str) -> str:
    return "".join(name.split()).casefold()


def mask_account(account: str) -> str:
    return account[:4] + "*" * max(0, len(account) - 8) + account[-4:] if len(account) > 8 else "****"


def mask_name(name: str) -> str:
    return name[:1] + "*" * (len(name) - 1)


@dataclass
class Account:
    """One of the client's accounts. ``base`` is the balance before every entry."""

    number: str
    name: str
    bank_code: str
    base: Decimal
    state: str = OPEN


@dataclass
class Creditor:
    """A payee account the bank knows (its own customers' or in a directory)."""

    number: str
    names: tuple[str, ...]
    bank_code: str
    state: str = OPEN


@dataclass(frozen=True)
class Entry:
    """One booked movement on a client account."""

    account: str
    seq: int
    amount: Decimal
    direction: str  # CRDT / DBIT
    booked_on: dt.date
    bank_reference: str
    domain: str
    end_to_end_id: str | None
    debtor_name: str
    debtor_account: str
    creditor_name: str
    creditor_account: str
    remittance: str | None


@dataclass
class Payment:
    """A payment the bank recorded, with where it stands."""

    transfer: CreditTransfer
    bank_reference: str
    received_at: float
    received_on: dt.date
    status: str = RECEIVED
    reason: str | None = None
    accepted_at: float | None = None
    settled_on: dt.date | None = None
    history: list[str] = field(default_factory=list)

    @property
    def end_to_end_id(self) -> str:
        return self.transfer.end_to_end_id

    @property
    def amount(self) -> Decimal:
        return self.transfer.amount

    def status_of(self) -> TransactionStatus:
        t = self.transfer
        return TransactionStatus(
            msg_id=t.msg_id,
            pmt_inf_id=t.pmt_inf_id,
            instr_id=t.instr_id,
            end_to_end_id=t.end_to_end_id,
            status=self.status,
            reason=self.reason,
            reason_info=REASONS.get(self.reason) if self.reason else None,
            bank_reference=self.bank_reference,
            amount_text=t.amount_text,
            currency=t.currency,
            requested_on=t.requested_on,
            accepted_at=self.accepted_at,
            settled_on=self.settled_on,
        )

    def masked(self) -> dict[str, Any]:
        t = self.transfer
        return {
            "end_to_end_id": t.end_to_end_id,
            "msg_id": t.msg_id,
            "bank_reference": self.bank_reference,
            "status": self.status,
            "history": list(self.history),
            "reason": self.reason,
            "amount": format(t.amount, "f"),
            "currency": t.currency,
            "debtor_account": mask_account(t.debtor_account),
            "creditor_account": mask_account(t.creditor_account),
            "creditor_name": mask_name(t.creditor_name),
            "creditor_agent": t.creditor_agent.code,
            "requested_on": t.requested_on.isoformat(),
            "settled_on": self.settled_on.isoformat() if self.settled_on else None,
        }


class UnknownAccount(Exception):
    """A statement asked for an account that is not the client's."""


class Duplicate(Exception):
    """An upload the bank already has (``DU01``/``DU04``); nothing is recorded."""

    def __init__(self, code: str, msg_id: str) -> None:
        super().__init__(code)
        self.code = code
        self.msg_id = msg_id


def _seed() -> dict[str, Any]:
    with resources.files("mocks.iso20022").joinpath("seeds/bank_a.json").open(encoding="utf-8") as handle:
        return json.load(handle)


class Ledger:
    """The bank's state. ``step`` gives the seconds one processing step takes."""

    def __init__(self, *, clock: Callable[[], float], step: Callable[[], float]) -> None:
        self._clock = clock
        self._step = step
        self._lock = threading.RLock()
        seed = _seed()
        self.bic: str = seed["bank"]["bic"]
        self.branches: frozenset[str] = frozenset(seed["bank"]["branches"])
        self.limit = Decimal(seed["single_payment_limit"])
        self._directory = frozenset(seed["directory"]["cnaps"]) | frozenset(seed["directory"]["bic"])
        self._seed_data = seed
        self.reset()

    # -- state --------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            seed = self._seed_data
            self._seq = 0
            self._entries: list[Entry] = []
            self._accounts: dict[str, Account] = {}
            for raw in seed["accounts"]:
                self._accounts[raw["account"]] = Account(
                    raw["account"], raw["name"], raw["bank_code"], Decimal(raw["balance"])
                )
            for raw in seed["entries"]:
                self._book_seeded(raw)
            for account in self._accounts.values():  # the seed's balance is the one after its entries
                account.base -= sum((self._signed(e) for e in self._entries if e.account == account.number), Decimal(0))
            self._creditors = {
                raw["account"]: Creditor(raw["account"], tuple(raw["names"]), raw["bank_code"], raw["state"])
                for raw in seed["creditors"]
            }
            self._payments: dict[str, Payment] = {}
            self._msg_ids: set[str] = set()
            self._due: list[tuple[float, int, str]] = []
            self._report_seq = 0

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def next_report_id(self, prefix: str) -> str:
        with self._lock:
            self._report_seq += 1
            return f"SBA-{prefix}-{self._report_seq:012d}"

    def _book_seeded(self, raw: dict[str, Any]) -> None:
        account = self._accounts[raw["account"]]
        booked_on = dt.date.fromisoformat(raw["booked_on"])
        ours = (account.name, account.number)
        theirs = (raw["counterparty_name"], raw["counterparty_account"])
        debtor, creditor = (ours, theirs) if raw["direction"] == "DBIT" else (theirs, ours)
        seq = self._next()
        self._entries.append(
            Entry(
                account=account.number, seq=seq, amount=Decimal(raw["amount"]), direction=raw["direction"],
                booked_on=booked_on, bank_reference=f"SBA{booked_on:%Y%m%d}{seq:08d}", domain=raw["code"],
                end_to_end_id=raw.get("end_to_end_id"), debtor_name=debtor[0], debtor_account=debtor[1],
                creditor_name=creditor[0], creditor_account=creditor[1], remittance=raw.get("remittance"),
            )
        )

    @staticmethod
    def _signed(entry: Entry) -> Decimal:
        return entry.amount if entry.direction == "CRDT" else -entry.amount

    def _balance_until(self, number: str, day: dt.date | None) -> Decimal:
        """The booked balance at the end of ``day`` (``None``: now)."""
        account = self._accounts[number]
        return account.base + sum(
            (self._signed(e) for e in self._entries if e.account == number and (day is None or e.booked_on <= day)),
            Decimal(0),
        )

    # -- steering -----------------------------------------------------------------------

    def balance(self, number: str) -> Decimal:
        with self._lock:
            self._advance()
            return self._balance_until(number, None)

    def set_balance(self, number: str, amount: Decimal) -> None:
        with self._lock:
            self._advance()
            account = self._accounts[number]
            account.base += amount - self._balance_until(number, None)

    def set_state(self, number: str, state: str) -> None:
        """Open, close, block or hold a client account or a creditor account; an account the
        bank did not know becomes a known creditor account (at another bank) in that state."""
        if state not in ACCOUNT_STATES:
            raise ValueError(f"unknown account state {state!r}")
        with self._lock:
            if number in self._accounts:
                self._accounts[number].state = state
            elif number in self._creditors:
                self._creditors[number].state = state
            else:
                self._creditors[number] = Creditor(number, (), "", state)

    def payments(self) -> list[Payment]:
        with self._lock:
            self._advance()
            return list(self._payments.values())

    def payment(self, end_to_end_id: str) -> Payment | None:
        with self._lock:
            self._advance()
            return self._payments.get(end_to_end_id)

    def entries(self, number: str) -> list[Entry]:
        with self._lock:
            self._advance()
            return [e for e in self._entries if e.account == number]

    def settle(self) -> None:
        """Take every payment through its remaining steps now, whatever the clock says."""
        with self._lock:
            self._advance(until=float("inf"))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            self._advance()
            return {
                "accounts": [
                    {
                        "account": mask_account(a.number),
                        "name": mask_name(a.name),
                        "bank_code": a.bank_code,
                        "state": a.state,
                        "balance": format(self._balance_until(a.number, None), "f"),
                        "entries": sum(1 for e in self._entries if e.account == a.number),
                    }
                    for a in self._accounts.values()
                ],
                "payments": [p.masked() for p in self._payments.values()],
            }

    # -- uploads ------------------------------------------------------------------------

    def _is_ours(self, code: str) -> bool:
        return code in self.branches or code in (self.bic, self.bic + "XXX")

    def _upload_rejection(self, t: CreditTransfer, today: dt.date) -> str | None:
        """The reason code of the first check at upload that fails, if any."""
        if t.currency != "CNY":
            return "AM03"
        if t.amount == 0:
            return "AM01"
        if t.amount != t.amount.quantize(Decimal("0.01")):
            return "AM12"
        if t.amount > self.limit:
            return "AM02"
        if not self._is_ours(t.debtor_agent.code):
            return "RC01"
        debtor = self._accounts.get(t.debtor_account)
        if debtor is None:
            return "AC02"
        if debtor.state == CLOSED:
            return "AC04"
        if debtor.state == BLOCKED:
            return "AC06"
        creditor_agent = t.creditor_agent.code
        if not (self._is_ours(creditor_agent) or creditor_agent in self._directory):
            return "RC10"
        if not (t.creditor_account.isdigit() and 8 <= len(t.creditor_account) <= 32):
            return "AC03"
        if (
            self._is_ours(creditor_agent)
            and t.creditor_account not in self._creditors
            and t.creditor_account not in self._accounts
        ):
            return "AC01"
        if t.requested_on < today - dt.timedelta(days=1):
            return "CUTA"
        for other in self._payments.values():
            o = other.transfer
            if (
                other.status != REJECTED
                and other.received_on == today
                and (o.debtor_account, o.creditor_account, o.amount, o.remittance)
                == (t.debtor_account, t.creditor_account, t.amount, t.remittance)
            ):
                return "AM05"
        return None

    def receive(self, transfer: CreditTransfer) -> Payment:
        """Record an upload (received or rejected at once), or raise ``Duplicate``."""
        with self._lock:
            self._advance()
            if transfer.msg_id in self._msg_ids:
                raise Duplicate("DU01", transfer.msg_id)
            if transfer.end_to_end_id in self._payments:
                raise Duplicate("DU04", transfer.msg_id)
            now = self._clock()
            today = business_day(now)
            if transfer.requested_on > today + dt.timedelta(days=MAX_DAYS_AHEAD):
                raise BankError(USAGE_RULE, f"ReqdExctnDt is at most {MAX_DAYS_AHEAD} days ahead")
            seq = self._next()
            payment = Payment(
                transfer=transfer, bank_reference=f"SBA{today:%Y%m%d}{seq:08d}", received_at=now, received_on=today,
                history=[RECEIVED],
            )
            reason = self._upload_rejection(transfer, today)
            if reason is not None:
                self._reject(payment, reason)
            else:
                heapq.heappush(self._due, (now + self._step(), seq, transfer.end_to_end_id))
            self._msg_ids.add(transfer.msg_id)
            self._payments[transfer.end_to_end_id] = payment
            return dataclasses.replace(payment, history=list(payment.history))

    @staticmethod
    def _reject(payment: Payment, reason: str) -> None:
        payment.status = REJECTED
        payment.reason = reason
        payment.history.append(REJECTED)

    # -- the processing clock -------------------------------------------------------------

    def _advance(self, until: float | None = None) -> None:
        limit = self._clock() if until is None else until
        while self._due and self._due[0][0] <= limit:
            due_at, _, end_to_end_id = heapq.heappop(self._due)
            payment = self._payments[end_to_end_id]
            # A step forced by settle() happens "now", not in the future.
            at = min(due_at, self._clock())
            if payment.status == RECEIVED:
                self._check(payment, at)
            elif payment.status == ACCEPTED:
                self._book(payment, at)

    def _available(self, number: str) -> Decimal:
        reserved = sum(
            (p.amount for p in self._payments.values() if p.status == ACCEPTED and p.transfer.debtor_account == number),
            Decimal(0),
        )
        return self._balance_until(number, None) - reserved

    def _check(self, payment: Payment, at: float) -> None:
        t = payment.transfer
        creditor = self._creditors.get(t.creditor_account)
        reason: str | None = None
        if creditor is not None and creditor.state == CLOSED:
            reason = "AC04"
        elif creditor is not None and creditor.state == BLOCKED:
            reason = "AC06"
        elif creditor is not None and creditor.names and normalised_name(t.creditor_name) not in {
            normalised_name(n) for n in creditor.names
        }:
            reason = "BE01"
        elif creditor is not None and creditor.state == HOLD:
            reason = "RR04"
        elif self._available(t.debtor_account) < t.amount:
            reason = "AM04"
        if reason is not None:
            self._reject(payment, reason)
            return
        payment.status = ACCEPTED
        payment.accepted_at = at
        payment.history.append(ACCEPTED)
        heapq.heappush(self._due, (at + self._step(), self._next(), payment.end_to_end_id))

    def _book(self, payment: Payment, at: float) -> None:
        t = payment.transfer
        day = business_day(at)
        payment.status = SETTLED
        payment.settled_on = day
        payment.history.append(SETTLED)
        for number, direction, domain in (
            (t.debtor_account, "DBIT", "PMNT/ICDT/DMCT"),
            (t.creditor_account, "CRDT", "PMNT/RCDT/DMCT"),
        ):
            if number not in self._accounts:
                continue
            self._entries.append(
                Entry(
                    account=number, seq=self._next(), amount=t.amount, direction=direction, booked_on=day,
                    bank_reference=payment.bank_reference, domain=domain, end_to_end_id=t.end_to_end_id,
                    debtor_name=t.debtor_name, debtor_account=t.debtor_account, creditor_name=t.creditor_name,
                    creditor_account=t.creditor_account, remittance=t.remittance,
                )
            )

    # -- statements -----------------------------------------------------------------------

    def statement(self, request: StatementRequest) -> tuple[Account, Decimal, Decimal, list[StatementLine]]:
        """Owner, opening and closing balances and the lines of a statement."""
        with self._lock:
            self._advance()
            account = self._accounts.get(request.account)
            if account is None:
                raise UnknownAccount(request.account)
            opening = self._balance_until(account.number, request.from_date - dt.timedelta(days=1))
            closing = self._balance_until(account.number, request.to_date)
            booked = [
                e for e in self._entries
                if e.account == account.number and request.from_date <= e.booked_on <= request.to_date
            ]
            booked.sort(key=lambda e: (e.booked_on, e.seq))
            lines = [
                StatementLine(
                    entry_no=0, amount=e.amount, direction=e.direction, status="BOOK", booked_on=e.booked_on,
                    value_on=e.booked_on, bank_reference=e.bank_reference, domain=e.domain,
                    end_to_end_id=e.end_to_end_id, debtor_name=e.debtor_name, debtor_account=e.debtor_account,
                    creditor_name=e.creditor_name, creditor_account=e.creditor_account, remittance=e.remittance,
                )
                for e in booked
            ]
            today = business_day(self._clock())
            for p in self._payments.values():
                t = p.transfer
                if p.status != ACCEPTED or t.debtor_account != account.number:
                    continue
                if not request.from_date <= today <= request.to_date:
                    continue
                lines.append(
                    StatementLine(
                        entry_no=0, amount=t.amount, direction="DBIT", status="PDNG", booked_on=today,
                        value_on=today, bank_reference=p.bank_reference, domain="PMNT/ICDT/DMCT",
                        end_to_end_id=t.end_to_end_id, debtor_name=t.debtor_name, debtor_account=t.debtor_account,
                        creditor_name=t.creditor_name, creditor_account=t.creditor_account, remittance=t.remittance,
                    )
                )
            numbered = [dataclasses.replace(line, entry_no=n) for n, line in enumerate(lines, start=1)]
            return account, opening, closing, numbered
