"""The bureau's in-memory registry: persons, their records and monthly
contributions, and the asynchronous enrolment tasks.

One lock guards everything, so each operation (a query, a submission with its
``bizNo`` idempotency, the decision of due tasks) is atomic under concurrent
requests. Tasks are decided lazily: every operation first decides, in submission
order, the tasks whose processing delay has run out on the bureau's clock.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import Any

from mocks.resident_id import has_valid_check_digit, mask
from mocks.sm4_async.wire import (
    ACTIVE,
    ALREADY_ACTIVE,
    INSURANCE_TYPES,
    MESSAGES,
    NAME_MISMATCH,
    BureauError,
    EnrolmentSubmit,
    TaskQuery,
    is_money,
)

PROCESSING = "PROCESSING"
SUCCESS = "SUCCESS"
FAILED = "FAILED"
# The bureau keeps China Standard Time (no DST), which dates acceptances.
_CHINA = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class Record:
    """One participation record (参保记录), in the wire's field names."""

    xzlx: str
    cbzt: str
    dwbh: str
    dwmc: str
    cbrq: str
    zzrq: str
    jfys: int
    jfjs: str
    zhjfny: str

    @classmethod
    def from_seed(cls, obj: dict[str, Any]) -> Record:
        record = cls(**{f.name: obj.get(f.name, "") for f in dataclasses.fields(cls)})
        if record.xzlx not in INSURANCE_TYPES or record.cbzt not in ("1", "2", "3"):
            raise ValueError(f"seed record has an unknown xzlx or cbzt: {obj!r}")
        if not isinstance(record.jfys, int) or not is_money(record.jfjs):
            raise ValueError(f"seed record has a bad jfys or jfjs: {obj!r}")
        return record

    def to_wire(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Month:
    """One monthly contribution (缴费明细) of one insurance type."""

    ny: str
    xzlx: str
    jfzt: str
    dwjf: str
    grjf: str
    dzrq: str

    @classmethod
    def from_seed(cls, obj: dict[str, Any]) -> Month:
        month = cls(**{f.name: obj.get(f.name, "") for f in dataclasses.fields(cls)})
        if month.xzlx not in INSURANCE_TYPES or month.jfzt not in ("1", "2", "3"):
            raise ValueError(f"seed month has an unknown xzlx or jfzt: {obj!r}")
        if not (is_money(month.dwjf) and is_money(month.grjf)):
            raise ValueError(f"seed month has a bad amount: {obj!r}")
        if (month.jfzt == "3") != (month.dzrq == ""):
            raise ValueError(f"seed month: dzrq is empty exactly for unpaid months: {obj!r}")
        return month

    def to_wire(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Task:
    """One asynchronous enrolment submission and, once decided, its outcome."""

    ticket: str
    biz_no: str
    id_number: str
    name: str
    dwbh: str
    dwmc: str
    cbrq: str
    xzlx: tuple[str, ...]
    jfjs: str
    submitted_at: float
    state: str = PROCESSING
    accept_no: str = ""
    accept_date: str = ""
    fail_code: str = ""
    fail_msg: str = ""
    decided_at: float | None = None

    def acknowledgement(self) -> dict[str, str]:
        """The answer of ``enrolment/submit``."""
        return {"ticket": self.ticket, "bizNo": self.biz_no}

    def result(self) -> dict[str, str]:
        """The answer of ``task/result``."""
        return {
            "ticket": self.ticket,
            "bizNo": self.biz_no,
            "state": self.state,
            "acceptNo": self.accept_no,
            "acceptDate": self.accept_date,
            "failCode": self.fail_code,
            "failMsg": self.fail_msg,
        }

    def masked(self) -> dict[str, Any]:
        """The task for the control plane's state dump, without personal data."""
        return {**self.result(), "idNo": mask(self.id_number), "xzlx": list(self.xzlx), "dwbh": self.dwbh}


@dataclass
class _Person:
    names: list[str]
    slow: bool = False
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
        if not has_valid_check_digit(person["idNo"]):
            raise ValueError(f"seed idNo {mask(person['idNo'])} fails its check digit")
        persons[person["idNo"]] = _Person(
            names=list(person["names"]),
            slow=bool(person.get("slow", False)),
            records=[Record.from_seed(record) for record in person.get("records", [])],
            months=[Month.from_seed(month) for month in person.get("months", [])],
        )
    return persons


class Store:
    """All mutable bureau state for one region."""

    def __init__(self, region: str, *, seed: bool, clock: Callable[[], float], processing_delay: float) -> None:
        self._region = region
        self._seed = seed
        self._clock = clock
        self._delay = processing_delay
        self._lock = threading.Lock()
        self._persons: dict[str, _Person] = {}
        self._tasks: dict[str, Task] = {}
        self._by_biz_no: dict[str, str] = {}
        self._pending: list[str] = []
        self._ticket_sequence = 0
        self._accept_sequence = 0
        self.reset()

    def reset(self) -> None:
        """Back to the seeded (or empty) state; ticket and acceptance numbers restart at 1."""
        persons = _load_seed(self._region) if self._seed else {}
        with self._lock:
            self._persons = persons
            self._tasks = {}
            self._by_biz_no = {}
            self._pending = []
            self._ticket_sequence = 0
            self._accept_sequence = 0

    # Queries

    def is_slow(self, id_number: str) -> bool:
        with self._lock:
            person = self._persons.get(id_number)
            return person is not None and person.slow

    def records(self, id_number: str, name: str) -> list[Record]:
        """A person's records ordered by insurance type then start date."""
        with self._lock:
            self._advance(self._clock())
            person = self._person(id_number, name)
            if person is None:
                return []
            return sorted(person.records, key=lambda r: (r.xzlx, r.cbrq))

    def months(self, id_number: str, name: str, start: str, end: str) -> list[Month]:
        """A person's contributions in the inclusive range, ordered by month then type."""
        with self._lock:
            self._advance(self._clock())
            person = self._person(id_number, name)
            if person is None:
                return []
            held = [m for m in person.months if start <= m.ny <= end]
            return sorted(held, key=lambda m: (m.ny, m.xzlx))

    # Tasks

    def submit(self, submit: EnrolmentSubmit) -> Task:
        """Register a task once per ``bizNo``; a repeat returns the first task unchanged."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            existing = self._by_biz_no.get(submit.biz_no)
            if existing is not None:
                return self._tasks[existing]
            self._ticket_sequence += 1
            task = Task(
                ticket=f"T{self._region}-{self._ticket_sequence:06d}",
                biz_no=submit.biz_no,
                id_number=submit.id_number,
                name=submit.name,
                dwbh=submit.dwbh,
                dwmc=submit.dwmc,
                cbrq=submit.cbrq,
                xzlx=submit.xzlx,
                jfjs=submit.jfjs,
                submitted_at=now,
            )
            self._tasks[task.ticket] = task
            self._by_biz_no[task.biz_no] = task.ticket
            self._pending.append(task.ticket)
            return task

    def task(self, query: TaskQuery) -> Task | None:
        """The task named by ticket and/or bizNo, or None when there is none (or they disagree)."""
        with self._lock:
            self._advance(self._clock())
            ticket = query.ticket if query.ticket is not None else self._by_biz_no.get(query.biz_no or "")
            task = self._tasks.get(ticket or "")
            if task is None or (query.biz_no is not None and task.biz_no != query.biz_no):
                return None
            return task

    def tasks(self) -> list[Task]:
        """Every task in submission order, due ones decided first."""
        with self._lock:
            self._advance(self._clock())
            return list(self._tasks.values())

    def settle(self) -> list[Task]:
        """Decide every pending task now, whatever its delay; returns all tasks."""
        with self._lock:
            self._advance(self._clock(), force=True)
            return list(self._tasks.values())

    # Internals (the lock is held)

    def _person(self, id_number: str, name: str) -> _Person | None:
        person = self._persons.get(id_number)
        if person is not None and not person.answers_to(name):
            raise BureauError(NAME_MISMATCH)
        return person

    def _advance(self, now: float, *, force: bool = False) -> None:
        while self._pending:
            task = self._tasks[self._pending[0]]
            due = task.submitted_at + self._delay
            if not force and now < due:
                return
            self._pending.pop(0)
            self._tasks[task.ticket] = self._decide(task, due if not force else max(now, task.submitted_at))

    def _decide(self, task: Task, at: float) -> Task:
        person = self._persons.get(task.id_number)
        if person is not None:
            if not person.answers_to(task.name):
                return self._fail(task, NAME_MISMATCH, at)
            active = {r.xzlx for r in person.records if r.cbzt == ACTIVE}
            if any(xzlx in active for xzlx in task.xzlx):
                return self._fail(task, ALREADY_ACTIVE, at)
        else:
            person = self._persons[task.id_number] = _Person(names=[task.name.strip()])
        person.records.extend(
            Record(
                xzlx=xzlx,
                cbzt=ACTIVE,
                dwbh=task.dwbh,
                dwmc=task.dwmc,
                cbrq=task.cbrq,
                zzrq="",
                jfys=0,
                jfjs=task.jfjs,
                zhjfny="",
            )
            for xzlx in task.xzlx
        )
        self._accept_sequence += 1
        return dataclasses.replace(
            task,
            state=SUCCESS,
            accept_no=f"{self._region}-R-{self._accept_sequence:06d}",
            accept_date=datetime.fromtimestamp(at, _CHINA).strftime("%Y%m%d"),
            decided_at=at,
        )

    @staticmethod
    def _fail(task: Task, code: str, at: float) -> Task:
        return dataclasses.replace(task, state=FAILED, fail_code=code, fail_msg=MESSAGES[code], decided_at=at)
