"""The bureau's in-memory registry: insured persons, their records and monthly
contributions, accepted enrolments, declarations, transfers out and in, and
confirmed payment notices.

One lock guards everything, so each operation (a query, an enrolment with its
idempotency and refusal checks, a whole declaration) is atomic even under
concurrent requests. Transfers out move on lazily: every operation first brings
each transfer to the stage the bureau's clock says it has reached, so no timers run.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from typing import Any
from xml.etree.ElementTree import Element, SubElement

from mocks.resident_id import has_valid_check_digit, mask
from mocks.xml_gbk.wire import (
    ACTIVE,
    ALREADY_ACTIVE,
    ALREADY_CONFIRMED,
    AMOUNT_NOT_POSITIVE,
    BAD_CHECK_DIGIT,
    CHANGE_BASE,
    CHANGE_LEAVE,
    CHANGE_NEW,
    DECL_ACCEPTED,
    DECL_PARTIAL,
    DECL_REJECTED,
    DECLARATION_REFUSED,
    IN_ACCEPTED,
    IN_REFUSED,
    INSURANCE_NAMES,
    INSURANCE_TYPES,
    LINE_ACCEPTED,
    LINE_REFUSED,
    MESSAGES,
    NAME_MISMATCH,
    NO_SUCH_DECLARATION,
    NOT_INSURED_HERE,
    NOT_THE_DECLARATION,
    NOTHING_TO_TRANSFER,
    PAID,
    PAID_LATE,
    STAGE_FUNDS_TRANSFERRED,
    STAGE_REJECTED,
    STAGE_REVIEWED,
    STAGE_SUBMITTED,
    SUSPENDED,
    TERMINATED,
    TRANSFERRED_OUT,
    UNPAID,
    BureauError,
    DeclarationLine,
    DeclarationRequest,
    EnrolmentRequest,
    PaymentNotice,
    TransferInRequest,
    TransferOutRequest,
    TransferQuery,
    add_leaf,
    money,
    parse_money,
)

# The bureau keeps China Standard Time (no DST), which dates decisions and transfers.
_CHINA = timezone(timedelta(hours=8))
_FEN = Decimal("0.01")
# Personal contribution rates: what a transfer carries as personal-account funds is
# Base x rate x PaidMonths (documented in docs/dialects/xml-gbk.md).
PERSONAL_RATES = {"110": Decimal("0.08"), "310": Decimal("0.02"), "210": Decimal("0.005"),
                  "410": Decimal("0"), "510": Decimal("0")}
# The unit's rates, for the months a confirmed payment notice marks paid (P001).
UNIT_RATES = {"110": Decimal("0.16"), "310": Decimal("0.08"), "210": Decimal("0.005"),
              "410": Decimal("0.002"), "510": Decimal("0.008")}


def _china_date(at: float) -> str:
    return datetime.fromtimestamp(at, _CHINA).strftime("%Y-%m-%d")


def _seed_money(value: str) -> Decimal:
    amount = parse_money(value)
    if amount is None:
        raise ValueError(f"seed amount {value!r} is not yuan with two decimal places")
    return amount


@dataclass(frozen=True)
class Record:
    """One participation record (参保记录) of a person in this region."""

    ins_type: str
    status: str
    unit_code: str
    unit_name: str
    begin_date: str
    end_date: str
    paid_months: int
    base: Decimal
    last_paid_period: str

    @classmethod
    def from_seed(cls, obj: dict[str, Any]) -> Record:
        if obj["InsType"] not in INSURANCE_TYPES:
            raise ValueError(f"seed InsType {obj['InsType']!r} is unknown")
        return cls(
            ins_type=obj["InsType"],
            status=obj["Status"],
            unit_code=obj["UnitCode"],
            unit_name=obj["UnitName"],
            begin_date=obj["BeginDate"],
            end_date=obj.get("EndDate", ""),
            paid_months=int(obj["PaidMonths"]),
            base=_seed_money(obj["Base"]),
            last_paid_period=obj.get("LastPaidPeriod", ""),
        )

    def to_xml(self, parent: Element) -> None:
        record = SubElement(parent, "Record")
        add_leaf(record, "InsType", self.ins_type)
        add_leaf(record, "Status", self.status)
        add_leaf(record, "UnitCode", self.unit_code)
        add_leaf(record, "UnitName", self.unit_name)
        add_leaf(record, "BeginDate", self.begin_date)
        add_leaf(record, "EndDate", self.end_date)
        add_leaf(record, "PaidMonths", str(self.paid_months))
        add_leaf(record, "Base", money(self.base))
        add_leaf(record, "LastPaidPeriod", self.last_paid_period)


@dataclass(frozen=True)
class Month:
    """One monthly contribution of one insurance type."""

    period: str
    ins_type: str
    pay_status: str
    employer_amount: Decimal
    personal_amount: Decimal
    paid_date: str

    @classmethod
    def from_seed(cls, obj: dict[str, Any]) -> Month:
        return cls(
            period=obj["Period"],
            ins_type=obj["InsType"],
            pay_status=obj["PayStatus"],
            employer_amount=_seed_money(obj["EmployerAmount"]),
            personal_amount=_seed_money(obj["PersonalAmount"]),
            paid_date=obj.get("PaidDate", ""),
        )

    def to_xml(self, parent: Element) -> None:
        month = SubElement(parent, "Month")
        add_leaf(month, "Period", self.period)
        add_leaf(month, "InsType", self.ins_type)
        add_leaf(month, "PayStatus", self.pay_status)
        add_leaf(month, "EmployerAmount", money(self.employer_amount))
        add_leaf(month, "PersonalAmount", money(self.personal_amount))
        add_leaf(month, "PaidDate", self.paid_date)


@dataclass(frozen=True)
class Enrolment:
    """An accepted enrolment (参保登记), kept for idempotency and ``E002``."""

    biz_no: str
    accept_no: str
    accept_date: str
    id_number: str
    unit_code: str
    unit_name: str
    begin_date: str
    insurance_types: tuple[str, ...]
    base: Decimal

    def acceptance(self) -> Element:
        """The ``Body`` of a successful ``E001`` or ``E002``."""
        body = Element("Body")
        add_leaf(body, "BizNo", self.biz_no)
        add_leaf(body, "AcceptNo", self.accept_no)
        add_leaf(body, "AcceptDate", self.accept_date)
        return body

    def masked(self) -> dict[str, Any]:
        """The enrolment for the control plane's state dump, ID number masked, no name."""
        return {
            "BizNo": self.biz_no,
            "AcceptNo": self.accept_no,
            "AcceptDate": self.accept_date,
            "IdNo": mask(self.id_number),
            "UnitCode": self.unit_code,
            "BeginDate": self.begin_date,
            "InsTypes": list(self.insurance_types),
            "Base": money(self.base),
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
    return {
        person["IdNo"]: _Person(
            names=list(person["names"]),
            records=[Record.from_seed(record) for record in person.get("records", [])],
            months=[Month.from_seed(month) for month in person.get("months", [])],
        )
        for person in seed["persons"]
    }


class Store:
    """All mutable bureau state for one region."""

    def __init__(
        self,
        region: str,
        *,
        seed: bool,
        clock: Callable[[], float],
        transfer_step: Callable[[], float],
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
        self._payments: dict[str, Payment] = {}
        self._sequence = 0
        self._declaration_sequence = 0
        self._transfer_out_sequence = 0
        self._transfer_in_sequence = 0
        self._payment_sequence = 0
        self.reset()

    def reset(self) -> None:
        """Back to the seeded (or empty) state; every acceptance sequence restarts at 1."""
        persons = _load_seed(self._region) if self._seed else {}
        with self._lock:
            self._persons = persons
            self._enrolments = {}
            self._declarations = {}
            self._transfers_out = {}
            self._transfers_in = {}
            self._payments = {}
            self._sequence = 0
            self._declaration_sequence = 0
            self._transfer_out_sequence = 0
            self._transfer_in_sequence = 0
            self._payment_sequence = 0

    def _person(self, id_number: str, name: str) -> _Person | None:
        """The person on file (caller holds the lock); unknown numbers have no name to check."""
        person = self._persons.get(id_number)
        if person is not None and not person.answers_to(name):
            raise BureauError(NAME_MISMATCH)
        return person

    def records(self, id_number: str, name: str) -> list[Record]:
        """A person's records ordered by insurance type then begin date."""
        with self._lock:
            self._advance()
            person = self._person(id_number, name)
            if person is None:
                return []
            return sorted(person.records, key=lambda r: (r.ins_type, r.begin_date))

    def months(self, id_number: str, name: str, from_period: str, to_period: str) -> list[Month]:
        """A person's contributions in the inclusive range, ordered by period then type;
        an empty ``name`` (Q002 allows it) is not checked."""
        with self._lock:
            self._advance()
            person = self._persons.get(id_number) if not name else self._person(id_number, name)
            if person is None:
                return []
            held = [m for m in person.months if from_period <= m.period <= to_period]
            return sorted(held, key=lambda m: (m.period, m.ins_type))

    def enrol(self, request: EnrolmentRequest, accept_date: str) -> Enrolment:
        """Accept an enrolment once per ``BizNo``; a repeat returns the first acceptance."""
        with self._lock:
            self._advance()
            existing = self._enrolments.get(request.biz_no)
            if existing is not None:
                return existing
            if not has_valid_check_digit(request.id_number):
                raise BureauError(BAD_CHECK_DIGIT)
            person = self._person(request.id_number, request.name)
            if person is not None:
                active = {r.ins_type for r in person.records if r.status == ACTIVE}
                clash = [t for t in request.insurance_types if t in active]
                if clash:
                    raise BureauError(ALREADY_ACTIVE, f"active InsType {', '.join(clash)}")
            else:
                person = self._persons[request.id_number] = _Person(names=[request.name.strip()])
            for ins_type in request.insurance_types:
                # A suspended record is picked up again rather than doubled (its months stay).
                suspended = _latest(person, ins_type, (SUSPENDED,))
                if suspended is not None:
                    _reactivate(person, suspended, request.unit_code, request.unit_name, request.base)
                    continue
                person.records.append(
                    Record(
                        ins_type=ins_type,
                        status=ACTIVE,
                        unit_code=request.unit_code,
                        unit_name=request.unit_name,
                        begin_date=request.begin_date,
                        end_date="",
                        paid_months=0,
                        base=request.base,
                        last_paid_period="",
                    )
                )
            self._sequence += 1
            enrolment = Enrolment(
                biz_no=request.biz_no,
                accept_no=f"{self._region}-E-{self._sequence:06d}",
                accept_date=accept_date,
                id_number=request.id_number,
                unit_code=request.unit_code,
                unit_name=request.unit_name,
                begin_date=request.begin_date,
                insurance_types=request.insurance_types,
                base=request.base,
            )
            self._enrolments[request.biz_no] = enrolment
            return enrolment

    def enrolment(self, biz_no: str) -> Enrolment | None:
        with self._lock:
            return self._enrolments.get(biz_no)

    def enrolments(self) -> list[Enrolment]:
        """All accepted enrolments, in acceptance order."""
        with self._lock:
            return list(self._enrolments.values())

    # Declarations (申报)

    def declare(self, request: DeclarationRequest) -> Declaration:
        """Decide every line of a declaration once per ``BizNo``; a repeat returns the first outcome."""
        with self._lock:
            self._advance()
            existing = self._declarations.get(request.biz_no)
            if existing is not None:
                return existing
            decided = [(line, *self._declare_line(request, line)) for line in request.lines]
            results = tuple(result for _, result, _ in decided)
            payable = tuple(
                PayableLine(line.id_number, applied_to, line.base)
                for line, result, applied_to in decided
                if result.status == LINE_ACCEPTED and line.change_type != CHANGE_LEAVE and line.base is not None
            )
            accepted = sum(1 for result in results if result.status == LINE_ACCEPTED)
            status = DECL_ACCEPTED if accepted == len(results) else DECL_REJECTED if accepted == 0 else DECL_PARTIAL
            self._declaration_sequence += 1
            declaration = Declaration(
                biz_no=request.biz_no,
                decl_no=f"{self._region}-D-{self._declaration_sequence:06d}",
                status=status,
                decide_date=_china_date(self._clock()),
                unit_code=request.unit_code,
                period=request.period,
                results=results,
                payable=payable,
            )
            self._declarations[request.biz_no] = declaration
            return declaration

    def declaration(self, biz_no: str) -> Declaration | None:
        with self._lock:
            self._advance()
            return self._declarations.get(biz_no)

    def _declare_line(self, request: DeclarationRequest, line: DeclarationLine) -> tuple[LineResult, tuple[str, ...]]:
        """Decide and apply one line: its result and the insurance types it applied to
        (what a payment notice later marks paid)."""
        if not has_valid_check_digit(line.id_number):
            return LineResult.refused(line.line_no, BAD_CHECK_DIGIT), ()
        person = self._persons.get(line.id_number)
        if person is not None and not person.answers_to(line.name):
            return LineResult.refused(line.line_no, NAME_MISMATCH), ()
        if line.change_type == CHANGE_NEW:
            if person is not None and any(
                r.status == ACTIVE and r.ins_type in line.insurance_types for r in person.records
            ):
                return LineResult.refused(line.line_no, ALREADY_ACTIVE), ()
            if person is None:
                person = self._persons[line.id_number] = _Person(names=[line.name.strip()])
            assert line.base is not None  # the wire parser requires it for a new hire
            begin_date = line.hire_date or f"{request.period[:4]}-{request.period[4:]}-01"
            for ins_type in line.insurance_types:
                earlier = _latest(person, ins_type, (SUSPENDED, TERMINATED))
                if earlier is not None:
                    _reactivate(person, earlier, request.unit_code, request.unit_name, line.base)
                    continue
                person.records.append(
                    Record(ins_type, ACTIVE, request.unit_code, request.unit_name, begin_date, "", 0, line.base, "")
                )
            return LineResult.accepted(line.line_no), line.insurance_types
        here = [
            index
            for index, record in enumerate(person.records if person is not None else [])
            if record.status == ACTIVE and record.ins_type in line.insurance_types
            and record.unit_code == request.unit_code
        ]
        if not here:
            return LineResult.refused(line.line_no, NOT_INSURED_HERE), ()
        assert person is not None
        applied_to = tuple(dict.fromkeys(person.records[index].ins_type for index in here))
        for index in here:
            record = person.records[index]
            if line.change_type == CHANGE_LEAVE:
                person.records[index] = dataclasses.replace(record, status=TERMINATED, end_date=line.leave_date)
            elif line.change_type == CHANGE_BASE:
                assert line.base is not None
                person.records[index] = dataclasses.replace(record, base=line.base)
            # CHANGE_CONTINUE: contributions simply go on; nothing on file changes.
        return LineResult.accepted(line.line_no), applied_to

    # Transfers out (转出)

    def transfer_out(self, request: TransferOutRequest) -> TransferOut:
        """Accept a transfer application once per ``BizNo`` (a repeat answers its current state)."""
        with self._lock:
            self._advance()
            existing = self._transfers_out.get(request.biz_no)
            if existing is not None:
                return existing.snapshot()
            if not has_valid_check_digit(request.id_number):
                raise BureauError(BAD_CHECK_DIGIT)
            self._person(request.id_number, request.name)
            now = self._clock()
            self._transfer_out_sequence += 1
            transfer = TransferOut(
                biz_no=request.biz_no,
                transfer_no=f"{self._region}-T-{self._transfer_out_sequence:06d}",
                id_number=request.id_number,
                to_region=request.to_region,
                insurance_types=request.insurance_types,
                submitted_at=now,
                apply_date=_china_date(now),
                stage=STAGE_SUBMITTED,
                stage_date=_china_date(now),
            )
            self._transfers_out[request.biz_no] = transfer
            return transfer.snapshot()

    def transfer_out_state(self, query: TransferQuery) -> TransferOut | None:
        with self._lock:
            self._advance()
            if query.biz_no is not None:
                transfer = self._transfers_out.get(query.biz_no)
            else:
                transfer = next((t for t in self._transfers_out.values() if t.transfer_no == query.transfer_no), None)
            return transfer.snapshot() if transfer is not None else None

    def _advance(self) -> None:
        """Bring every open transfer to the stage the clock says it has reached (lock held)."""
        now = self._clock()
        step = self._transfer_step()
        for transfer in self._transfers_out.values():  # in submission order
            reviewed_at = transfer.submitted_at + step
            if transfer.stage == STAGE_SUBMITTED and now >= reviewed_at:
                self._review(transfer, reviewed_at)
            funds_at = transfer.submitted_at + 2 * step
            if transfer.stage == STAGE_REVIEWED and now >= funds_at:
                self._transfer_funds(transfer, funds_at)

    def _review(self, transfer: TransferOut, at: float) -> None:
        person = self._persons.get(transfer.id_number)
        chosen: list[int] = []
        missing: list[str] = []
        for ins_type in transfer.insurance_types:
            index = None
            if person is not None:
                index = _latest(person, ins_type, (ACTIVE,))
                if index is None:
                    index = _latest(person, ins_type, (SUSPENDED,))
            if index is None:
                missing.append(ins_type)
            else:
                chosen.append(index)
        transfer.stage_date = _china_date(at)
        if missing:
            transfer.stage = STAGE_REJECTED
            transfer.reason_code = NOTHING_TO_TRANSFER
            names = "、".join(INSURANCE_NAMES[t] for t in missing)
            transfer.reason_msg = f"{MESSAGES[NOTHING_TO_TRANSFER]}：{names}"
            return
        transfer.stage = STAGE_REVIEWED
        transfer.record_indexes = tuple(chosen)

    def _transfer_funds(self, transfer: TransferOut, at: float) -> None:
        person = self._persons[transfer.id_number]
        day = _china_date(at)
        carried: list[CarriedFunds] = []
        for index in transfer.record_indexes:
            record = person.records[index]
            person.records[index] = dataclasses.replace(record, status=TRANSFERRED_OUT, end_date=day)
            fund = (record.base * PERSONAL_RATES[record.ins_type] * record.paid_months).quantize(_FEN, ROUND_HALF_UP)
            carried.append(CarriedFunds(record.ins_type, record.paid_months, record.begin_date, record.base, fund))
        transfer.stage = STAGE_FUNDS_TRANSFERRED
        transfer.stage_date = day
        transfer.carried = tuple(carried)

    # Transfers in (转入)

    def transfer_in(self, request: TransferInRequest) -> TransferIn:
        """Register a transfer in once per ``BizNo``; decided at once."""
        with self._lock:
            self._advance()
            existing = self._transfers_in.get(request.biz_no)
            if existing is not None:
                return existing
            if not has_valid_check_digit(request.id_number):
                raise BureauError(BAD_CHECK_DIGIT)
            person = self._persons.get(request.id_number)
            refusal = ""
            if person is not None and not person.answers_to(request.name):
                refusal = NAME_MISMATCH
            else:
                if person is None:
                    person = self._persons[request.id_number] = _Person(names=[request.name.strip()])
                for item in request.carried:
                    _carry_in(person, item.ins_type, item.paid_months, item.begin_date, item.base)
            self._transfer_in_sequence += 1
            transfer = TransferIn(
                biz_no=request.biz_no,
                accept_no=f"{self._region}-I-{self._transfer_in_sequence:06d}",
                status=IN_REFUSED if refusal else IN_ACCEPTED,
                accept_date=_china_date(self._clock()),
                reason_code=refusal,
                reason_msg=MESSAGES[refusal] if refusal else "",
                id_number=request.id_number,
                from_region=request.from_region,
                source_transfer_no=request.source_transfer_no,
            )
            self._transfers_in[request.biz_no] = transfer
            return transfer

    def transfer_in_state(self, biz_no: str) -> TransferIn | None:
        with self._lock:
            self._advance()
            return self._transfers_in.get(biz_no)

    # Payment notices (缴费到账通知)

    def notify_payment(self, notice: PaymentNotice) -> Payment:
        """Confirm a payment notice once per ``BizNo`` (a repeat answers the confirmation);
        a refusal raises its ``BureauError`` and stores nothing."""
        with self._lock:
            self._advance()
            existing = self._payments.get(notice.biz_no)
            if existing is not None:
                return existing
            declaration = self._declarations.get(notice.decl_biz_no)
            if notice.pay_amount <= 0:
                raise BureauError(AMOUNT_NOT_POSITIVE)
            if declaration is None:
                raise BureauError(NO_SUCH_DECLARATION)
            if declaration.unit_code != notice.unit_code or declaration.period != notice.period:
                raise BureauError(NOT_THE_DECLARATION)
            if declaration.status == DECL_REJECTED:
                raise BureauError(DECLARATION_REFUSED)
            if any(p.decl_biz_no == declaration.biz_no for p in self._payments.values()):
                raise BureauError(ALREADY_CONFIRMED)
            self._mark_paid(declaration, notice.pay_date)
            self._payment_sequence += 1
            payment = Payment(
                biz_no=notice.biz_no,
                confirm_no=f"{self._region}-P-{self._payment_sequence:06d}",
                decl_biz_no=declaration.biz_no,
                decl_no=declaration.decl_no,
                amount=notice.pay_amount,
                confirm_date=_china_date(self._clock()),
                unit_code=notice.unit_code,
                period=notice.period,
                pay_date=notice.pay_date,
                bank_serial_no=notice.bank_serial_no,
            )
            self._payments[notice.biz_no] = payment
            return payment

    def _mark_paid(self, declaration: Declaration, pay_date: str) -> None:
        """Every month the declaration made due becomes paid on time (lock held)."""
        for line in declaration.payable:
            person = self._persons.get(line.id_number)
            if person is None:
                continue
            for ins_type in line.insurance_types:
                month = Month(
                    period=declaration.period,
                    ins_type=ins_type,
                    pay_status=PAID,
                    employer_amount=(line.base * UNIT_RATES[ins_type]).quantize(_FEN, ROUND_HALF_UP),
                    personal_amount=(line.base * PERSONAL_RATES[ins_type]).quantize(_FEN, ROUND_HALF_UP),
                    paid_date=pay_date,
                )
                before = _put_month(person, month)
                index = _latest(person, ins_type, (ACTIVE,))
                if index is None:
                    index = _latest(person, ins_type, (SUSPENDED, TERMINATED, TRANSFERRED_OUT))
                if index is None:
                    continue
                record = person.records[index]
                newly_paid = before is None or before.pay_status not in (PAID, PAID_LATE)
                person.records[index] = dataclasses.replace(
                    record,
                    paid_months=record.paid_months + (1 if newly_paid else 0),
                    last_paid_period=max(record.last_paid_period, declaration.period),
                )

    def payment(self, biz_no: str) -> Payment | None:
        with self._lock:
            return self._payments.get(biz_no)

    def payments(self) -> list[Payment]:
        """Every confirmed payment notice, in order of confirmation."""
        with self._lock:
            return list(self._payments.values())

    # Corrections by a bureau clerk

    def set_contribution_status(
        self, id_number: str, period: str, pay_status: str, ins_type: str | None, paid_date: str | None
    ) -> list[Month]:
        """Correct the ``PayStatus`` of a person's month ``period`` (``yyyyMM``) of one type,
        or of every type held that month (``ins_type`` None); the corrected months.

        A paid or late month keeps its ``PaidDate`` unless ``paid_date`` is given, and one
        that had none is dated today; an unpaid month has none. ``LookupError`` when the
        bureau holds no such person or month."""
        if pay_status not in (PAID, PAID_LATE, UNPAID):
            raise ValueError("PayStatus must be 1, 2 or 3")
        with self._lock:
            self._advance()
            person = self._persons.get(id_number)
            if person is None:
                raise LookupError("the bureau holds no such person")
            held = [m for m in person.months if m.period == period and ins_type in (None, m.ins_type)]
            if not held:
                raise LookupError("the bureau holds no such month for this person")
            today = _china_date(self._clock())
            corrected = []
            for month in held:
                date = "" if pay_status == UNPAID else paid_date or month.paid_date or today
                new = dataclasses.replace(month, pay_status=pay_status, paid_date=date)
                _put_month(person, new)
                corrected.append(new)
            return sorted(corrected, key=lambda m: m.ins_type)

    # For the control plane and in-process tests

    def masked_state(self) -> dict[str, Any]:
        with self._lock:
            self._advance()
            return {
                "enrolments": [e.masked() for e in self._enrolments.values()],
                "declarations": [d.masked() for d in self._declarations.values()],
                "transfers_out": [t.masked() for t in self._transfers_out.values()],
                "transfers_in": [t.masked() for t in self._transfers_in.values()],
                "payments": [p.masked() for p in self._payments.values()],
            }


def _latest(person: _Person, ins_type: str, statuses: tuple[str, ...]) -> int | None:
    """The index of the person's latest record (by begin date) of ``ins_type`` in one of ``statuses``."""
    found = [i for i, r in enumerate(person.records) if r.ins_type == ins_type and r.status in statuses]
    return max(found, key=lambda i: person.records[i].begin_date) if found else None


def _put_month(person: _Person, month: Month) -> Month | None:
    """Store ``month``, replacing the person's month of that period and type; the one replaced."""
    for index, held in enumerate(person.months):
        if held.period == month.period and held.ins_type == month.ins_type:
            person.months[index] = month
            return held
    person.months.append(month)
    return None


def _reactivate(person: _Person, index: int, unit_code: str, unit_name: str, base: Decimal) -> None:
    """The record becomes active with this unit and base; begin date and months paid stay."""
    person.records[index] = dataclasses.replace(
        person.records[index], status=ACTIVE, unit_code=unit_code, unit_name=unit_name, base=base, end_date=""
    )


def _carry_in(person: _Person, ins_type: str, months: int, begin_date: str, base: Decimal | None) -> None:
    """Add carried months to the record of ``ins_type`` here, or open a suspended one."""
    index = _latest(person, ins_type, (ACTIVE,))
    if index is None:
        index = _latest(person, ins_type, (SUSPENDED, TERMINATED))
    if index is None:
        person.records.append(
            Record(ins_type, SUSPENDED, "", "", begin_date, "", months, base if base is not None else Decimal("0.00"), "")
        )
        return
    record = person.records[index]
    earliest = min((d for d in (record.begin_date, begin_date) if d), default="")
    person.records[index] = dataclasses.replace(record, paid_months=record.paid_months + months, begin_date=earliest)


@dataclass(frozen=True)
class LineResult:
    line_no: int
    status: str
    code: str
    message: str

    @classmethod
    def accepted(cls, line_no: int) -> LineResult:
        return cls(line_no, LINE_ACCEPTED, "", "")

    @classmethod
    def refused(cls, line_no: int, code: str) -> LineResult:
        return cls(line_no, LINE_REFUSED, code, MESSAGES[code])


@dataclass(frozen=True)
class PayableLine:
    """An accepted line that makes contributions due: whose, of which types, on which base."""

    id_number: str
    insurance_types: tuple[str, ...]
    base: Decimal


@dataclass(frozen=True)
class Declaration:
    """A decided declaration, kept for idempotency, ``D002`` and the payment notice
    that confirms it."""

    biz_no: str
    decl_no: str
    status: str
    decide_date: str
    unit_code: str
    period: str
    results: tuple[LineResult, ...]
    payable: tuple[PayableLine, ...] = ()

    def answer(self) -> Element:
        """The ``Body`` of a successful ``D001`` or ``D002``."""
        body = Element("Body")
        add_leaf(body, "BizNo", self.biz_no)
        add_leaf(body, "DeclNo", self.decl_no)
        add_leaf(body, "DeclStatus", self.status)
        add_leaf(body, "DecideDate", self.decide_date)
        results = SubElement(body, "Results")
        for result in self.results:
            element = SubElement(results, "Result")
            add_leaf(element, "LineNo", str(result.line_no))
            add_leaf(element, "LineStatus", result.status)
            add_leaf(element, "ErrCode", result.code)
            add_leaf(element, "ErrMsg", result.message)
        return body

    def masked(self) -> dict[str, Any]:
        return {
            "BizNo": self.biz_no,
            "DeclNo": self.decl_no,
            "DeclStatus": self.status,
            "UnitCode": self.unit_code,
            "Period": self.period,
            "Results": [{"LineNo": r.line_no, "LineStatus": r.status, "ErrCode": r.code} for r in self.results],
        }


@dataclass(frozen=True)
class CarriedFunds:
    """What a transfer out carried for one insurance type."""

    ins_type: str
    paid_months: int
    begin_date: str
    base: Decimal
    fund_amount: Decimal


@dataclass
class TransferOut:
    """A transfer out; mutable under the store's lock, handed out as snapshots."""

    biz_no: str
    transfer_no: str
    id_number: str
    to_region: str
    insurance_types: tuple[str, ...]
    submitted_at: float
    apply_date: str
    stage: str
    stage_date: str
    reason_code: str = ""
    reason_msg: str = ""
    record_indexes: tuple[int, ...] = ()
    carried: tuple[CarriedFunds, ...] = ()

    def snapshot(self) -> TransferOut:
        return dataclasses.replace(self)

    def answer(self) -> Element:
        """The ``Body`` of a successful ``T001`` or ``T002``."""
        body = Element("Body")
        add_leaf(body, "BizNo", self.biz_no)
        add_leaf(body, "TransferNo", self.transfer_no)
        add_leaf(body, "ToRegion", self.to_region)
        add_leaf(body, "Stage", self.stage)
        add_leaf(body, "ApplyDate", self.apply_date)
        add_leaf(body, "StageDate", self.stage_date)
        add_leaf(body, "ReasonCode", self.reason_code)
        add_leaf(body, "ReasonMsg", self.reason_msg)
        carried = SubElement(body, "Carried")
        for funds in self.carried:
            item = SubElement(carried, "Item")
            add_leaf(item, "InsType", funds.ins_type)
            add_leaf(item, "PaidMonths", str(funds.paid_months))
            add_leaf(item, "BeginDate", funds.begin_date)
            add_leaf(item, "Base", money(funds.base))
            add_leaf(item, "FundAmount", money(funds.fund_amount))
        return body

    def masked(self) -> dict[str, Any]:
        return {
            "BizNo": self.biz_no,
            "TransferNo": self.transfer_no,
            "IdNo": mask(self.id_number),
            "ToRegion": self.to_region,
            "InsTypes": list(self.insurance_types),
            "Stage": self.stage,
            "StageDate": self.stage_date,
            "ReasonCode": self.reason_code,
        }


@dataclass(frozen=True)
class TransferIn:
    """A decided transfer in, kept for idempotency and ``T004``."""

    biz_no: str
    accept_no: str
    status: str
    accept_date: str
    reason_code: str
    reason_msg: str
    id_number: str
    from_region: str
    source_transfer_no: str

    def answer(self) -> Element:
        """The ``Body`` of a successful ``T003`` or ``T004``."""
        body = Element("Body")
        add_leaf(body, "BizNo", self.biz_no)
        add_leaf(body, "AcceptNo", self.accept_no)
        add_leaf(body, "InStatus", self.status)
        add_leaf(body, "AcceptDate", self.accept_date)
        add_leaf(body, "ReasonCode", self.reason_code)
        add_leaf(body, "ReasonMsg", self.reason_msg)
        return body

    def masked(self) -> dict[str, Any]:
        return {
            "BizNo": self.biz_no,
            "AcceptNo": self.accept_no,
            "InStatus": self.status,
            "IdNo": mask(self.id_number),
            "FromRegion": self.from_region,
            "SourceTransferNo": self.source_transfer_no,
        }


@dataclass(frozen=True)
class Payment:
    """A confirmed payment notice, kept for idempotency and ``P002``."""

    biz_no: str
    confirm_no: str
    decl_biz_no: str
    decl_no: str
    amount: Decimal
    confirm_date: str
    unit_code: str
    period: str
    pay_date: str
    bank_serial_no: str

    def answer(self) -> Element:
        """The ``Body`` of a successful ``P001`` or ``P002``."""
        body = Element("Body")
        add_leaf(body, "BizNo", self.biz_no)
        add_leaf(body, "ConfirmNo", self.confirm_no)
        add_leaf(body, "DeclNo", self.decl_no)
        add_leaf(body, "ConfirmAmount", money(self.amount))
        add_leaf(body, "ConfirmDate", self.confirm_date)
        return body

    def masked(self) -> dict[str, Any]:
        """For the state dump (a notice carries no personal data)."""
        return {
            "BizNo": self.biz_no,
            "ConfirmNo": self.confirm_no,
            "DeclBizNo": self.decl_biz_no,
            "DeclNo": self.decl_no,
            "UnitCode": self.unit_code,
            "Period": self.period,
            "ConfirmAmount": money(self.amount),
            "PayDate": self.pay_date,
            "ConfirmDate": self.confirm_date,
            "BankSerialNo": self.bank_serial_no,
        }
