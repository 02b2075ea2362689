"""The bureau's in-memory registry: insured persons, their records, enrolments.

One lock guards everything, so each operation (a query, an enrolment with its
idempotency and duplicate checks) is atomic even under concurrent requests.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from mocks.json_hmac.wire import ALREADY_ACTIVE, NAME_MISMATCH, BureauError, EnrolmentSubmit
from mocks.resident_id import mask

ACTIVE = "1"


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


@dataclass
class _Person:
    names: list[str]
    records: list[Record] = field(default_factory=list)

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
        person["idCardNo"]: _Person(
            names=list(person["names"]),
            records=[Record.from_wire(record) for record in person["records"]],
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

    def records(self, id_number: str, name: str) -> list[Record]:
        """A person's records ordered by insurance type then start date.

        Unknown ID numbers have no records and no name to check against.
        """
        with self._lock:
            person = self._persons.get(id_number)
            if person is None:
                return []
            if not person.answers_to(name):
                raise BureauError(NAME_MISMATCH)
            return sorted(person.records, key=lambda r: (r.insurance_type, r.start_date))

    def enrol(self, submit: EnrolmentSubmit, accepted_at: str) -> Enrolment:
        """Accept an enrolment once per ``bizNo``; a repeat returns the first acceptance."""
        with self._lock:
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
            person.records.extend(
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
                for insurance_type in submit.insurance_types
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
            return self._enrolments.get(biz_no)

    def enrolments(self) -> list[Enrolment]:
        """All accepted enrolments, in acceptance order."""
        with self._lock:
            return list(self._enrolments.values())
