"""The bureau's in-memory registry: insured persons, their records and monthly
contributions, and accepted enrolments.

One lock guards everything, so each operation (a query, an enrolment with its
idempotency and refusal checks) is atomic even under concurrent requests.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from typing import Any
from xml.etree.ElementTree import Element, SubElement

from mocks.resident_id import has_valid_check_digit, mask
from mocks.xml_gbk.wire import (
    ACTIVE,
    ALREADY_ACTIVE,
    BAD_CHECK_DIGIT,
    INSURANCE_TYPES,
    NAME_MISMATCH,
    BureauError,
    EnrolmentRequest,
    add_leaf,
    money,
    parse_money,
)


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

    def __init__(self, region: str, *, seed: bool) -> None:
        self._region = region
        self._seed = seed
        self._lock = threading.Lock()
        self._persons: dict[str, _Person] = {}
        self._enrolments: dict[str, Enrolment] = {}
        self._sequence = 0
        self.reset()

    def reset(self) -> None:
        """Back to the seeded (or empty) state; the acceptance sequence restarts at 1."""
        persons = _load_seed(self._region) if self._seed else {}
        with self._lock:
            self._persons = persons
            self._enrolments = {}
            self._sequence = 0

    def _person(self, id_number: str, name: str) -> _Person | None:
        """The person on file (caller holds the lock); unknown numbers have no name to check."""
        person = self._persons.get(id_number)
        if person is not None and not person.answers_to(name):
            raise BureauError(NAME_MISMATCH)
        return person

    def records(self, id_number: str, name: str) -> list[Record]:
        """A person's records ordered by insurance type then begin date."""
        with self._lock:
            person = self._person(id_number, name)
            if person is None:
                return []
            return sorted(person.records, key=lambda r: (r.ins_type, r.begin_date))

    def months(self, id_number: str, name: str, from_period: str, to_period: str) -> list[Month]:
        """A person's contributions in the inclusive range, ordered by period then type."""
        with self._lock:
            person = self._person(id_number, name)
            if person is None:
                return []
            held = [m for m in person.months if from_period <= m.period <= to_period]
            return sorted(held, key=lambda m: (m.period, m.ins_type))

    def enrol(self, request: EnrolmentRequest, accept_date: str) -> Enrolment:
        """Accept an enrolment once per ``BizNo``; a repeat returns the first acceptance."""
        with self._lock:
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
            person.records.extend(
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
                for ins_type in request.insurance_types
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
