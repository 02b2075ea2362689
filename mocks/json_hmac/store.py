"""The bureau's in-memory registry: insured persons, their records and monthly
contributions, enrolments, declarations, transfers and payment notices.

One lock guards everything, so each operation (a query, an enrolment with its
idempotency and duplicate checks, a declaration) is atomic even under concurrent
requests. Transfers out advance on the bureau's clock, lazily: every operation
first applies the stage changes that have come due, in the order they came due.
"""

from __future__ import annotations

import calendar
import dataclasses
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from typing import Any

from mocks.json_hmac import wire
from mocks.json_hmac.wire import (
    ALREADY_ACTIVE,
    ALREADY_CONFIRMED,
    AMOUNT_NOT_POSITIVE,
    BAD_CHECK_DIGIT,
    DECLARATION_NOT_ACCEPTED,
    NAME_MISMATCH,
    NO_RECORD_TO_TRANSFER,
    NO_SUCH_DECLARATION,
    NOT_INSURED_HERE,
    NOT_THE_DECLARATION,
    OK,
    BureauError,
    ContributionQuery,
    DeclarationDetail,
    DeclarationSubmit,
    EnrolmentSubmit,
    PaymentNotice,
    TransferInSubmit,
    TransferOutSubmit,
)
from mocks.resident_id import has_valid_check_digit, mask

ACTIVE = "1"
SUSPENDED = "2"
TERMINATED = "3"
TRANSFERRED_OUT = "4"

PAID_ON_TIME = "1"
PAID_LATE = "2"
UNPAID = "3"
PAY_STATUSES = frozenset({PAID_ON_TIME, PAID_LATE, UNPAID})

# Transfer-out stages (the wire's words).
SUBMITTED = "SUBMITTED"
SOURCE_REVIEWED = "SOURCE_REVIEWED"
FUNDS_TRANSFERRED = "FUNDS_TRANSFERRED"
REJECTED = "REJECTED"
_FINAL_STAGES = frozenset({FUNDS_TRANSFERRED, REJECTED})

# Fixed (unit, personal) rates the bureau derives un-itemised months and transfer funds with.
RATES: dict[str, tuple[Decimal, Decimal]] = {
    "110": (Decimal("0.16"), Decimal("0.08")),
    "310": (Decimal("0.08"), Decimal("0.02")),
    "210": (Decimal("0.005"), Decimal("0.005")),
    "410": (Decimal("0.002"), Decimal("0")),
    "510": (Decimal("0.008"), Decimal("0")),
}

# The bureau keeps China Standard Time (no DST), which dates its decisions.
_CHINA = timezone(timedelta(hours=8))


def china_date(at: float) -> str:
    return datetime.fromtimestamp(at, _CHINA).strftime("%Y%m%d")


def contribution(base_amount: int, rate: Decimal) -> int:
    """``base_amount`` fen x ``rate``, rounded half up to the fen."""
    return int((Decimal(base_amount) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _month_index(period: str) -> int:
    return int(period[:4]) * 12 + int(period[4:]) - 1


def _period_of(index: int) -> str:
    return f"{index // 12:04d}{index % 12 + 1:02d}"


@dataclass(frozen=True)
class Record:
    """One participation record (参保记录) of a person in this region."""

    insurance_type: str
    status: str
    unit_code: str
    unit_name: str
    start_date: str
    end_date: str
    paid_months: int
    base_amount: int
    last_paid_period: str

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Record:
        return cls(
            insurance_type=obj["insuranceType"],
            status=obj["status"],
            unit_code=obj["unitCode"],
            unit_name=obj["unitName"],
            start_date=obj["startDate"],
            end_date=obj.get("endDate", ""),
            paid_months=obj["paidMonths"],
            base_amount=obj["baseAmount"],
            last_paid_period=obj["lastPaidPeriod"],
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "insuranceType": self.insurance_type,
            "status": self.status,
            "unitCode": self.unit_code,
            "unitName": self.unit_name,
            "startDate": self.start_date,
            "endDate": self.end_date,
            "paidMonths": self.paid_months,
            "baseAmount": self.base_amount,
            "lastPaidPeriod": self.last_paid_period,
        }


@dataclass(frozen=True)
class Enrolment:
    """An accepted enrolment (参保登记), kept for idempotency and enrolment/query."""

    biz_no: str
    accept_no: str
    accepted_at: str
    id_number: str
    insurance_types: tuple[str, ...]
    unit_code: str
    start_date: str
    base_amount: int

    def acceptance(self) -> dict[str, str]:
        """The ``data`` of a successful submit or enrolment/query."""
        return {"bizNo": self.biz_no, "acceptNo": self.accept_no, "status": "ACCEPTED", "acceptedAt": self.accepted_at}

    def masked(self) -> dict[str, Any]:
        """The enrolment for the control plane's state dump, ID number masked."""
        return {
            **self.acceptance(),
            "idCardNo": mask(self.id_number),
            "insuranceTypes": list(self.insurance_types),
            "unitCode": self.unit_code,
            "startDate": self.start_date,
            "baseAmount": self.base_amount,
        }


@dataclass(frozen=True)
class Month:
    """One month of one insurance type (缴费明细)."""

    period: str
    insurance_type: str
    pay_status: str
    unit_amount: int
    personal_amount: int
    paid_date: str

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Month:
        return cls(
            period=obj["period"],
            insurance_type=obj["insuranceType"],
            pay_status=obj["payStatus"],
            unit_amount=obj["unitAmount"],
            personal_amount=obj["personalAmount"],
            paid_date=obj.get("paidDate", ""),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "insuranceType": self.insurance_type,
            "payStatus": self.pay_status,
            "unitAmount": self.unit_amount,
            "personalAmount": self.personal_amount,
            "paidDate": self.paid_date,
        }


def derived_months(record: Record) -> list[Month]:
    """The months of a record the bureau holds only as totals: ``paidMonths`` consecutive
    months ending at ``lastPaidPeriod``, each paid on time on the 15th of the next month."""
    if record.paid_months <= 0 or not record.last_paid_period or record.insurance_type not in RATES:
        return []
    unit_rate, personal_rate = RATES[record.insurance_type]
    last = _month_index(record.last_paid_period)
    return [
        Month(
            period=_period_of(index),
            insurance_type=record.insurance_type,
            pay_status=PAID_ON_TIME,
            unit_amount=contribution(record.base_amount, unit_rate),
            personal_amount=contribution(record.base_amount, personal_rate),
            paid_date=_period_of(index + 1) + "15",
        )
        for index in range(last - record.paid_months + 1, last + 1)
    ]


@dataclass(frozen=True)
class PayableLine:
    """An accepted line that makes contributions due: whose, of which types, on which base."""

    id_number: str
    insurance_types: tuple[str, ...]
    base_amount: int


@dataclass(frozen=True)
class Declaration:
    """A declaration as decided, kept for idempotency, declaration/query and the
    payment notices that confirm it."""

    biz_no: str
    unit_code: str
    answer: dict[str, Any]
    id_numbers: tuple[str, ...]
    period: str = ""
    payable: tuple[PayableLine, ...] = ()

    def masked(self) -> dict[str, Any]:
        return {**self.answer, "unitCode": self.unit_code, "idCardNos": [mask(i) for i in self.id_numbers]}


@dataclass(frozen=True)
class PaymentConfirmation:
    """A payment notice as decided (confirmed or rejected), kept for idempotency and the query."""

    notice: PaymentNotice
    answer: dict[str, Any]

    @property
    def confirmed(self) -> bool:
        return self.answer["status"] == "CONFIRMED"

    def masked(self) -> dict[str, Any]:
        """For the state dump (a notice carries no personal data)."""
        return {
            **self.answer,
            "unitCode": self.notice.unit_code,
            "payAmount": self.notice.pay_amount,
            "paidDate": self.notice.paid_date,
            "bankSerialNo": self.notice.bank_serial_no,
        }


@dataclass
class TransferOut:
    """A transfer-out application and where it stands."""

    biz_no: str
    transfer_no: str
    id_number: str
    target_region: str
    insurance_types: tuple[str, ...]
    submitted_at: float
    accepted_at: str
    stage: str = SUBMITTED
    updated_at: str = ""
    reason_code: str = ""
    reason_msg: str = ""
    carried: list[dict[str, Any]] = field(default_factory=list)

    def next_due(self, step: float) -> float | None:
        """When the next stage change is due, or None once final."""
        if self.stage == SUBMITTED:
            return self.submitted_at + step
        if self.stage == SOURCE_REVIEWED:
            return self.submitted_at + 2 * step
        return None

    def answer(self) -> dict[str, Any]:
        return {
            "bizNo": self.biz_no,
            "transferNo": self.transfer_no,
            "targetRegion": self.target_region,
            "stage": self.stage,
            "acceptedAt": self.accepted_at,
            "updatedAt": self.updated_at or self.accepted_at,
            "reasonCode": self.reason_code,
            "reasonMsg": self.reason_msg,
            "carried": [dict(item) for item in self.carried],
        }

    def masked(self) -> dict[str, Any]:
        return {**self.answer(), "idCardNo": mask(self.id_number), "insuranceTypes": list(self.insurance_types)}


@dataclass(frozen=True)
class TransferIn:
    """A transfer in as decided."""

    biz_no: str
    id_number: str
    source_region: str
    source_transfer_no: str
    answer: dict[str, Any]

    def masked(self) -> dict[str, Any]:
        return {
            **self.answer,
            "idCardNo": mask(self.id_number),
            "sourceRegion": self.source_region,
            "sourceTransferNo": self.source_transfer_no,
        }


@dataclass
class _Person:
    names: list[str]
    records: list[Record] = field(default_factory=list)
    months: list[Month] = field(default_factory=list)

    def answers_to(self, name: str) -> bool:
        """Trimmed, case-insensitive (for Latin letters) match against any name on file."""
        wanted = name.strip().casefold()
        return any(wanted == known.strip().casefold() for known in self.names)


def _load_seed(region: str) -> dict[str, _Person]:
    """Persons from ``seeds/<region>.json``; a region without a seed file starts empty."""
    seed_file = resources.files(__package__).joinpath("seeds", f"{region}.json")
    if not seed_file.is_file():
        return {}
    seed = json.loads(seed_file.read_text(encoding="utf-8"))
    if seed.get("region") != region:
        raise ValueError(f"seed file for {region} declares region {seed.get('region')!r}")
    persons: dict[str, _Person] = {}
    for person in seed["persons"]:
        records = [Record.from_wire(record) for record in person["records"]]
        if "months" in person:
            months = [Month.from_wire(month) for month in person["months"]]
        else:  # Historic data held as totals only: the bureau derives the months.
            months = [month for record in records for month in derived_months(record)]
        persons[person["idCardNo"]] = _Person(names=list(person["names"]), records=records, months=months)
    return persons


def _replace_record(person: _Person, old: Record, **changes: Any) -> Record:
    """Swap ``old`` (by identity) for a changed copy in the person's record list."""
    new = dataclasses.replace(old, **changes)
    index = next(i for i, record in enumerate(person.records) if record is old)
    person.records[index] = new
    return new


def _put_month(person: _Person, month: Month) -> Month | None:
    """Store ``month``, replacing the person's month of that period and type; the one replaced."""
    for index, held in enumerate(person.months):
        if held.period == month.period and held.insurance_type == month.insurance_type:
            person.months[index] = month
            return held
    person.months.append(month)
    return None


def _latest(records: list[Record]) -> Record | None:
    """The active record if there is one, else the most recently started."""
    if not records:
        return None
    active = [r for r in records if r.status == ACTIVE]
    return active[0] if active else max(records, key=lambda r: r.start_date)


def _last_day(period: str) -> str:
    year, month = int(period[:4]), int(period[4:])
    return f"{period}{calendar.monthrange(year, month)[1]:02d}"


class Store:
    """All mutable bureau state for one region."""

    def __init__(
        self,
        region: str,
        *,
        seed: bool,
        clock: Callable[[], float] = lambda: 0.0,
        transfer_step: Callable[[], float] = lambda: 2.0,
    ) -> None:
        self._region = region
        self._seed = seed
        self._clock = clock
        self._transfer_step = transfer_step
        self._lock = threading.Lock()
        self._persons: dict[str, _Person] = {}
        self._enrolments: dict[str, Enrolment] = {}
        self._declarations: dict[str, Declaration] = {}
        self._transfers_out: dict[str, TransferOut] = {}
        self._transfers_in: dict[str, TransferIn] = {}
        self._payments: dict[str, PaymentConfirmation] = {}
        self._confirmed_by: dict[str, str] = {}  # declaration bizNo -> the notice that confirmed it
        self._sequence = 0
        self._sequences: dict[str, int] = {}
        self.reset()

    def reset(self) -> None:
        """Back to the seeded (or empty) state; every sequence restarts at 1."""
        persons = _load_seed(self._region) if self._seed else {}
        with self._lock:
            self._persons = persons
            self._enrolments = {}
            self._declarations = {}
            self._transfers_out = {}
            self._transfers_in = {}
            self._payments = {}
            self._confirmed_by = {}
            self._sequence = 0
            self._sequences = {}

    def records(self, id_number: str, name: str) -> list[Record]:
        """A person's records ordered by insurance type then start date.

        Unknown ID numbers have no records and no name to check against.
        """
        with self._lock:
            self._advance()
            person = self._persons.get(id_number)
            if person is None:
                return []
            if not person.answers_to(name):
                raise BureauError(NAME_MISMATCH)
            return sorted(person.records, key=lambda r: (r.insurance_type, r.start_date))

    def enrol(self, submit: EnrolmentSubmit, accepted_at: str) -> Enrolment:
        """Accept an enrolment once per ``bizNo``; a repeat returns the first acceptance."""
        with self._lock:
            self._advance()
            existing = self._enrolments.get(submit.biz_no)
            if existing is not None:
                return existing
            person = self._persons.get(submit.id_number)
            if person is not None:
                if not person.answers_to(submit.name):
                    raise BureauError(NAME_MISMATCH)
                active = {r.insurance_type for r in person.records if r.status == ACTIVE}
                clash = [t for t in submit.insurance_types if t in active]
                if clash:
                    raise BureauError(ALREADY_ACTIVE, f"active insuranceType {', '.join(clash)}")
            else:
                person = self._persons[submit.id_number] = _Person(names=[submit.name.strip()])
            for insurance_type in submit.insurance_types:
                suspended = [
                    r for r in person.records if r.insurance_type == insurance_type and r.status == SUSPENDED
                ]
                if suspended:  # e.g. transferred in without an employer: one record, months kept
                    _replace_record(
                        person,
                        max(suspended, key=lambda r: r.start_date),
                        status=ACTIVE,
                        unit_code=submit.unit_code,
                        unit_name=submit.unit_name,
                        end_date="",
                        base_amount=submit.base_amount,
                    )
                    continue
                person.records.append(
                    Record(
                        insurance_type=insurance_type,
                        status=ACTIVE,
                        unit_code=submit.unit_code,
                        unit_name=submit.unit_name,
                        start_date=submit.start_date,
                        end_date="",
                        paid_months=0,
                        base_amount=submit.base_amount,
                        last_paid_period="",
                    )
                )
            self._sequence += 1
            enrolment = Enrolment(
                biz_no=submit.biz_no,
                accept_no=f"{self._region}E{self._sequence:06d}",
                accepted_at=accepted_at,
                id_number=submit.id_number,
                insurance_types=submit.insurance_types,
                unit_code=submit.unit_code,
                start_date=submit.start_date,
                base_amount=submit.base_amount,
            )
            self._enrolments[submit.biz_no] = enrolment
            return enrolment

    def enrolment(self, biz_no: str) -> Enrolment | None:
        with self._lock:
            self._advance()
            return self._enrolments.get(biz_no)

    def enrolments(self) -> list[Enrolment]:
        """All accepted enrolments, in acceptance order."""
        with self._lock:
            return list(self._enrolments.values())

    # -- declarations -----------------------------------------------------------------

    def declare(self, submit: DeclarationSubmit) -> dict[str, Any]:
        """Decide every line of a declaration once per ``bizNo``; a repeat returns the stored answer."""
        with self._lock:
            self._advance()
            existing = self._declarations.get(submit.biz_no)
            if existing is not None:
                return existing.answer
            results = []
            payable: list[PayableLine] = []
            for detail in submit.details:
                code, applied_to = self._declare_line(submit, detail)
                if code == OK and detail.change_type != wire.CHANGE_LEAVE and detail.base_amount is not None:
                    payable.append(PayableLine(detail.id_number, applied_to, detail.base_amount))
                results.append(
                    {
                        "lineNo": detail.line_no,
                        "status": "ACCEPTED" if code == OK else "REJECTED",
                        "code": code,
                        "msg": wire.message(code),
                    }
                )
            accepted = sum(result["code"] == OK for result in results)
            status = "ACCEPTED" if accepted == len(results) else "REJECTED" if accepted == 0 else "PARTIAL"
            answer = {
                "bizNo": submit.biz_no,
                "declareNo": self._next_number("D"),
                "period": submit.period,
                "status": status,
                "declaredAt": china_date(self._clock()),
                "details": results,
            }
            self._declarations[submit.biz_no] = Declaration(
                biz_no=submit.biz_no,
                unit_code=submit.unit_code,
                answer=answer,
                id_numbers=tuple(detail.id_number for detail in submit.details),
                period=submit.period,
                payable=tuple(payable),
            )
            return answer

    def declaration(self, biz_no: str) -> dict[str, Any] | None:
        with self._lock:
            self._advance()
            found = self._declarations.get(biz_no)
            return found.answer if found is not None else None

    def _declare_line(self, submit: DeclarationSubmit, detail: DeclarationDetail) -> tuple[str, tuple[str, ...]]:
        """Apply one line: its result code (``0000`` when accepted) and the insurance
        types it applied to (what a payment notice later marks paid)."""
        if not has_valid_check_digit(detail.id_number):
            return BAD_CHECK_DIGIT, ()
        person = self._persons.get(detail.id_number)
        if person is not None and not person.answers_to(detail.name):
            return NAME_MISMATCH, ()
        listed = set(detail.insurance_types)
        if detail.change_type == wire.CHANGE_NEW:
            if person is not None and any(r.status == ACTIVE and r.insurance_type in listed for r in person.records):
                return ALREADY_ACTIVE, ()
            if person is None:
                person = self._persons[detail.id_number] = _Person(names=[detail.name.strip()])
            assert detail.base_amount is not None  # the parser requires it for 01
            for insurance_type in detail.insurance_types:
                dormant = [
                    r
                    for r in person.records
                    if r.insurance_type == insurance_type and r.status in (SUSPENDED, TERMINATED)
                ]
                if dormant:
                    _replace_record(
                        person,
                        max(dormant, key=lambda r: r.start_date),
                        status=ACTIVE,
                        unit_code=submit.unit_code,
                        unit_name=submit.unit_name,
                        end_date="",
                        base_amount=detail.base_amount,
                    )
                else:
                    person.records.append(
                        Record(
                            insurance_type=insurance_type,
                            status=ACTIVE,
                            unit_code=submit.unit_code,
                            unit_name=submit.unit_name,
                            start_date=detail.hire_date or submit.period + "01",
                            end_date="",
                            paid_months=0,
                            base_amount=detail.base_amount,
                            last_paid_period="",
                        )
                    )
            return OK, detail.insurance_types
        here = [
            r
            for r in (person.records if person is not None else [])
            if r.status == ACTIVE and r.insurance_type in listed and r.unit_code == submit.unit_code
        ]
        if person is None or not here:
            return NOT_INSURED_HERE, ()
        applied_to = tuple(dict.fromkeys(r.insurance_type for r in here))
        for record in here:
            if detail.change_type == wire.CHANGE_LEAVE:
                end_date = detail.leave_date or _last_day(submit.period)
                _replace_record(person, record, status=TERMINATED, end_date=end_date)
            elif detail.change_type == wire.CHANGE_BASE:
                assert detail.base_amount is not None
                _replace_record(person, record, base_amount=detail.base_amount)
        return OK, applied_to

    # -- transfers out ------------------------------------------------------------------

    def transfer_out(self, submit: TransferOutSubmit) -> dict[str, Any]:
        """Accept a transfer-out application once per ``bizNo``; review and funds follow on the clock."""
        with self._lock:
            self._advance()
            existing = self._transfers_out.get(submit.biz_no)
            if existing is not None:
                return existing.answer()
            person = self._persons.get(submit.id_number)
            if person is not None and not person.answers_to(submit.name):
                raise BureauError(NAME_MISMATCH)
            now = self._clock()
            transfer = TransferOut(
                biz_no=submit.biz_no,
                transfer_no=self._next_number("T"),
                id_number=submit.id_number,
                target_region=submit.target_region,
                insurance_types=submit.insurance_types,
                submitted_at=now,
                accepted_at=china_date(now),
            )
            self._transfers_out[submit.biz_no] = transfer
            return transfer.answer()

    def transfer_out_status(self, biz_no: str | None, transfer_no: str | None) -> dict[str, Any] | None:
        with self._lock:
            self._advance()
            if biz_no is not None:
                found = self._transfers_out.get(biz_no)
            else:
                found = next((t for t in self._transfers_out.values() if t.transfer_no == transfer_no), None)
            return found.answer() if found is not None else None

    def _advance(self) -> None:
        """Apply every transfer stage change due by now, earliest first (the lock is held)."""
        now = self._clock()
        step = self._transfer_step()
        while True:
            due = [(t.next_due(step), n, t) for n, t in enumerate(self._transfers_out.values())]
            ready = [(at, n, t) for at, n, t in due if at is not None and at <= now]
            if not ready:
                return
            at, _, transfer = min(ready, key=lambda item: (item[0], item[1]))
            assert at is not None
            if transfer.stage == SUBMITTED:
                self._review(transfer, at)
            else:
                self._transfer_funds(transfer, at)

    def _transferable(self, transfer: TransferOut) -> dict[str, Record] | None:
        """The record moving for each requested type, or None if one type has none."""
        person = self._persons.get(transfer.id_number)
        chosen: dict[str, Record] = {}
        for insurance_type in transfer.insurance_types:
            candidates = [
                r
                for r in (person.records if person is not None else [])
                if r.insurance_type == insurance_type and r.status in (ACTIVE, SUSPENDED)
            ]
            record = _latest(candidates)
            if record is None:
                return None
            chosen[insurance_type] = record
        return chosen

    def _reject(self, transfer: TransferOut, at: float) -> None:
        transfer.stage = REJECTED
        transfer.reason_code = NO_RECORD_TO_TRANSFER
        transfer.reason_msg = wire.message(NO_RECORD_TO_TRANSFER)
        transfer.updated_at = china_date(at)

    def _review(self, transfer: TransferOut, at: float) -> None:
        if self._transferable(transfer) is None:
            self._reject(transfer, at)
            return
        transfer.stage = SOURCE_REVIEWED
        transfer.updated_at = china_date(at)

    def _transfer_funds(self, transfer: TransferOut, at: float) -> None:
        chosen = self._transferable(transfer)
        if chosen is None:  # a record stopped between review and funds
            self._reject(transfer, at)
            return
        person = self._persons[transfer.id_number]
        day = china_date(at)
        carried = []
        for insurance_type, record in chosen.items():
            _replace_record(person, record, status=TRANSFERRED_OUT, end_date=day)
            personal_rate = RATES[insurance_type][1]
            carried.append(
                {
                    "insuranceType": insurance_type,
                    "paidMonths": record.paid_months,
                    "startDate": record.start_date,
                    "fundAmount": contribution(record.base_amount, personal_rate) * record.paid_months,
                }
            )
        transfer.stage = FUNDS_TRANSFERRED
        transfer.updated_at = day
        transfer.carried = carried

    # -- transfers in -------------------------------------------------------------------

    def transfer_in(self, submit: TransferInSubmit) -> dict[str, Any]:
        """Register carried insurance once per ``bizNo``; a repeat returns the stored answer."""
        with self._lock:
            self._advance()
            existing = self._transfers_in.get(submit.biz_no)
            if existing is not None:
                return existing.answer
            answer: dict[str, Any] = {
                "bizNo": submit.biz_no,
                "transferInNo": self._next_number("I"),
                "status": "ACCEPTED",
                "acceptedAt": china_date(self._clock()),
                "reasonCode": "",
                "reasonMsg": "",
            }
            person = self._persons.get(submit.id_number)
            if person is not None and not person.answers_to(submit.name):
                answer.update(status="REJECTED", reasonCode=NAME_MISMATCH, reasonMsg=wire.message(NAME_MISMATCH))
            else:
                if person is None:
                    person = self._persons[submit.id_number] = _Person(names=[submit.name.strip()])
                for item in submit.carried:
                    self._carry_in(person, item)
            self._transfers_in[submit.biz_no] = TransferIn(
                biz_no=submit.biz_no,
                id_number=submit.id_number,
                source_region=submit.source_region,
                source_transfer_no=submit.source_transfer_no,
                answer=answer,
            )
            return answer

    @staticmethod
    def _carry_in(person: _Person, item: wire.CarriedItem) -> None:
        existing = _latest(
            [r for r in person.records if r.insurance_type == item.insurance_type and r.status != TRANSFERRED_OUT]
        )
        if existing is not None:
            starts = [d for d in (existing.start_date, item.start_date) if d]
            _replace_record(
                person,
                existing,
                paid_months=existing.paid_months + item.paid_months,
                start_date=min(starts) if starts else "",
            )
            return
        person.records.append(
            Record(
                insurance_type=item.insurance_type,
                status=SUSPENDED,
                unit_code="",
                unit_name="",
                start_date=item.start_date,
                end_date="",
                paid_months=item.paid_months,
                base_amount=item.base_amount,
                last_paid_period="",
            )
        )

    def transfer_in_status(self, biz_no: str) -> dict[str, Any] | None:
        with self._lock:
            self._advance()
            found = self._transfers_in.get(biz_no)
            return found.answer if found is not None else None

    # -- contribution history -----------------------------------------------------------

    def months(self, query: ContributionQuery) -> list[Month]:
        """A person's months in the inclusive range, ordered by period then type."""
        with self._lock:
            self._advance()
            person = self._persons.get(query.id_number)
            if person is None:
                return []
            if query.name is not None and not person.answers_to(query.name):
                raise BureauError(NAME_MISMATCH)
            return sorted(
                (m for m in person.months if query.start_period <= m.period <= query.end_period),
                key=lambda m: (m.period, m.insurance_type),
            )

    # -- payment confirmation -----------------------------------------------------------

    def notify_payment(self, notice: PaymentNotice, decided_at: str) -> dict[str, Any]:
        """Confirm or refuse a payment notice once per ``bizNo``; a repeat returns the stored answer."""
        with self._lock:
            self._advance()
            existing = self._payments.get(notice.biz_no)
            if existing is not None:
                return existing.answer
            declaration = self._declarations.get(notice.declare_biz_no)
            reason = self._payment_refusal(notice, declaration)
            answer: dict[str, Any] = {
                "bizNo": notice.biz_no,
                "confirmNo": self._next_number("P"),
                "declareBizNo": notice.declare_biz_no,
                "period": notice.period,
                "status": "REJECTED" if reason else "CONFIRMED",
                "confirmedAmount": 0 if reason else notice.pay_amount,
                "confirmedAt": decided_at,
                "reasonCode": reason,
                "reasonMsg": wire.message(reason) if reason else "",
            }
            if not reason:
                assert declaration is not None
                self._mark_paid(declaration, notice.paid_date)
                self._confirmed_by[declaration.biz_no] = notice.biz_no
            self._payments[notice.biz_no] = PaymentConfirmation(notice, answer)
            return answer

    def _payment_refusal(self, notice: PaymentNotice, declaration: Declaration | None) -> str:
        """Why the notice is refused (``""``: it is not), checked in the documented order."""
        if notice.pay_amount <= 0:
            return AMOUNT_NOT_POSITIVE
        if declaration is None:
            return NO_SUCH_DECLARATION
        if declaration.unit_code != notice.unit_code or declaration.period != notice.period:
            return NOT_THE_DECLARATION
        if declaration.answer["status"] == "REJECTED":
            return DECLARATION_NOT_ACCEPTED
        if declaration.biz_no in self._confirmed_by:
            return ALREADY_CONFIRMED
        return ""

    def _mark_paid(self, declaration: Declaration, paid_date: str) -> None:
        """Every month the declaration made due becomes paid on time (the lock is held)."""
        for line in declaration.payable:
            person = self._persons.get(line.id_number)
            if person is None:
                continue
            for insurance_type in line.insurance_types:
                unit_rate, personal_rate = RATES[insurance_type]
                paid = Month(
                    period=declaration.period,
                    insurance_type=insurance_type,
                    pay_status=PAID_ON_TIME,
                    unit_amount=contribution(line.base_amount, unit_rate),
                    personal_amount=contribution(line.base_amount, personal_rate),
                    paid_date=paid_date,
                )
                before = _put_month(person, paid)
                record = _latest([r for r in person.records if r.insurance_type == insurance_type])
                if record is None:
                    continue
                already_paid = before is not None and before.pay_status in (PAID_ON_TIME, PAID_LATE)
                _replace_record(
                    person,
                    record,
                    paid_months=record.paid_months + (0 if already_paid else 1),
                    last_paid_period=max(record.last_paid_period, declaration.period),
                )

    def payment(self, biz_no: str) -> dict[str, Any] | None:
        with self._lock:
            self._advance()
            found = self._payments.get(biz_no)
            return found.answer if found is not None else None

    def payments(self) -> list[PaymentConfirmation]:
        """Every payment notice as decided, in order of arrival."""
        with self._lock:
            return list(self._payments.values())

    # -- corrections by a bureau clerk --------------------------------------------------

    def set_contribution_status(
        self, id_number: str, period: str, pay_status: str, insurance_type: str | None, paid_date: str | None
    ) -> list[Month]:
        """Correct the ``payStatus`` of a person's month ``period`` (``yyyyMM``) of one type,
        or of every type held that month (``insurance_type`` None); the corrected months.

        A paid or late month keeps its ``paidDate`` unless ``paid_date`` is given, and one
        that had none is dated today; an unpaid month has none. ``LookupError`` when the
        bureau holds no such person or month."""
        if pay_status not in PAY_STATUSES:
            raise ValueError(f"payStatus must be one of {sorted(PAY_STATUSES)}")
        with self._lock:
            self._advance()
            person = self._persons.get(id_number)
            if person is None:
                raise LookupError("the bureau holds no such person")
            held = [
                m
                for m in person.months
                if m.period == period and (insurance_type is None or m.insurance_type == insurance_type)
            ]
            if not held:
                raise LookupError("the bureau holds no such month for this person")
            today = china_date(self._clock())
            corrected = []
            for month in held:
                if pay_status == UNPAID:
                    date = ""
                else:
                    date = paid_date or month.paid_date or today
                new = dataclasses.replace(month, pay_status=pay_status, paid_date=date)
                _put_month(person, new)
                corrected.append(new)
            return sorted(corrected, key=lambda m: m.insurance_type)

    # -- control plane ------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Declarations and transfers for the state dump, ID numbers masked."""
        with self._lock:
            self._advance()
            return {
                "declarations": [d.masked() for d in self._declarations.values()],
                "transfersOut": [t.masked() for t in self._transfers_out.values()],
                "transfersIn": [t.masked() for t in self._transfers_in.values()],
                "payments": [p.masked() for p in self._payments.values()],
            }

    def _next_number(self, kind: str) -> str:
        """The region code, ``kind`` and the next six-digit number of that kind."""
        self._sequences[kind] = self._sequences.get(kind, 0) + 1
        return f"{self._region}{kind}{self._sequences[kind]:06d}"
