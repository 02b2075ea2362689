"""The bureau's in-memory registry: persons, their records and monthly
contributions, the asynchronous tasks (enrolments, declarations, transfers in,
payment notices) and the transfers out.

One lock guards everything, so each operation (a query, a submission with its
``bizNo`` idempotency, the decision of due tasks) is atomic under concurrent
requests. Everything on the bureau's clock happens lazily: every operation first
plays, in time order, the task decisions whose processing delay has run out and the
transfer stages whose step has passed.
"""

from __future__ import annotations

import calendar
import dataclasses
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from typing import Any

from mocks.resident_id import has_valid_check_digit, mask
from mocks.sm4_async.wire import (
    ACTIVE,
    ALREADY_ACTIVE,
    ALREADY_CONFIRMED,
    AMOUNT_NOT_POSITIVE,
    BAD_CHECK_DIGIT,
    BASE_CHANGE,
    CHANGED_BEFORE_TRANSFER,
    DECLARATION,
    DECLARATION_NOT_ACCEPTED,
    ENROLMENT,
    INSURANCE_TYPES,
    LEAVE,
    MALFORMED,
    MESSAGES,
    NAME_MISMATCH,
    NEW,
    NO_SUCH_DECLARATION,
    NOT_INSURED_HERE,
    NOT_THE_DECLARATION,
    NOTHING_TO_TRANSFER,
    PAYMENT,
    REASONS,
    RECORD_STATUSES,
    SUSPENDED,
    TERMINATED,
    TRANSFER_IN,
    TRANSFERRED_OUT,
    BureauError,
    Carried,
    DeclarationLine,
    DeclarationSubmit,
    EnrolmentSubmit,
    PaymentSubmit,
    TaskQuery,
    TransferInSubmit,
    TransferOutSubmit,
    TransferQuery,
    is_money,
)

PROCESSING = "PROCESSING"
SUCCESS = "SUCCESS"
PARTIAL = "PARTIAL"
FAILED = "FAILED"

# Transfer-out stages (zyjd).
SUBMITTED = "01"
REVIEWED = "02"
FUNDS_TRANSFERRED = "03"
REJECTED = "09"
# The personal contribution rate per insurance type: the fund a transfer carries is
# base x rate x months (work injury and maternity have no personal part).
PERSONAL_RATES = {"110": Decimal("0.08"), "210": Decimal("0.005"), "310": Decimal("0.02"),
                  "410": Decimal("0"), "510": Decimal("0")}  # fmt: skip
# The unit's rates, for the months a confirmed payment notice marks paid.
UNIT_RATES = {"110": Decimal("0.16"), "210": Decimal("0.005"), "310": Decimal("0.08"),
              "410": Decimal("0.002"), "510": Decimal("0.008")}  # fmt: skip
PAID, PAID_LATE, UNPAID = "1", "2", "3"
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
        if record.xzlx not in INSURANCE_TYPES or record.cbzt not in RECORD_STATUSES:
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
class LineResult:
    """The decision on one declaration line (an ``mx`` item of ``task/result``)."""

    hh: int
    fail_code: str = ""  # "" when accepted

    def to_wire(self) -> dict[str, Any]:
        return {
            "hh": self.hh,
            "jg": "2" if self.fail_code else "1",
            "failCode": self.fail_code,
            "failMsg": MESSAGES[self.fail_code] if self.fail_code else "",
        }


@dataclass(frozen=True)
class PayableLine:
    """An accepted declaration line that makes contributions due: whose, of which types,
    on which base."""

    id_number: str
    xzlx: tuple[str, ...]
    jfjs: str


@dataclass(frozen=True)
class Task:
    """One asynchronous submission (``ywlx``: enrolment, declaration, transfer in or
    payment notice) and, once decided, its outcome. Enrolment fields are empty on the
    other kinds."""

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
    ywlx: str = ENROLMENT
    sbny: str = ""
    lines: tuple[DeclarationLine, ...] = ()
    zcdq: str = ""
    zcbh: str = ""
    carried: tuple[Carried, ...] = ()
    sblsh: str = ""  # a payment notice: the declaration's bizNo, amount, date and bank reference
    jkje: str = ""
    jkrq: str = ""
    yhlsh: str = ""
    payable: tuple[PayableLine, ...] = ()  # a decided declaration: what its payment marks paid
    state: str = PROCESSING
    accept_no: str = ""
    accept_date: str = ""
    fail_code: str = ""
    fail_msg: str = ""
    line_results: tuple[LineResult, ...] = ()
    decided_at: float | None = None

    def acknowledgement(self) -> dict[str, str]:
        """The answer of a submit service."""
        return {"ticket": self.ticket, "bizNo": self.biz_no}

    def result(self) -> dict[str, Any]:
        """The answer of ``task/result``."""
        answer: dict[str, Any] = {
            "ticket": self.ticket,
            "bizNo": self.biz_no,
            "ywlx": self.ywlx,
            "state": self.state,
            "acceptNo": self.accept_no,
            "acceptDate": self.accept_date,
            "failCode": self.fail_code,
            "failMsg": self.fail_msg,
        }
        if self.ywlx == DECLARATION:
            answer["mx"] = [line.to_wire() for line in self.line_results]
        if self.ywlx == PAYMENT:
            answer["qrje"] = self.jkje if self.state == SUCCESS else ""
        return answer

    def masked(self) -> dict[str, Any]:
        """The task for the control plane's state dump, without personal data."""
        if self.ywlx == DECLARATION:
            return {**self.result(), "dwbh": self.dwbh, "sbny": self.sbny, "lines": len(self.lines)}
        if self.ywlx == PAYMENT:
            return {**self.result(), "dwbh": self.dwbh, "sbny": self.sbny, "sblsh": self.sblsh, "jkje": self.jkje,
                    "jkrq": self.jkrq, "yhlsh": self.yhlsh}  # fmt: skip
        return {**self.result(), "idNo": mask(self.id_number), "xzlx": list(self.xzlx or (c.xzlx for c in self.carried)),
                "dwbh": self.dwbh}  # fmt: skip


@dataclass(frozen=True)
class Transfer:
    """One transfer out (转出) and the stage it has reached."""

    zybh: str
    biz_no: str
    id_number: str
    name: str
    zrdq: str
    xzlx: tuple[str, ...]
    submitted_at: float
    sqrq: str
    stage: str = SUBMITTED
    gxrq: str = ""
    bhdm: str = ""
    record_indices: tuple[int, ...] = ()  # the reviewed records, in the person's list
    carried: tuple[Carried, ...] = ()

    @property
    def moving(self) -> bool:
        return self.stage in (SUBMITTED, REVIEWED)

    def due(self, step: float) -> float:
        """When the next stage happens on the bureau's clock."""
        return self.submitted_at + step * (1 if self.stage == SUBMITTED else 2)

    def to_wire(self) -> dict[str, Any]:
        """The answer of ``transfer-out/submit`` and ``transfer-out/query``."""
        return {
            "zybh": self.zybh,
            "bizNo": self.biz_no,
            "zrdq": self.zrdq,
            "zyjd": self.stage,
            "sqrq": self.sqrq,
            "gxrq": self.gxrq,
            "bhdm": self.bhdm,
            "bhyy": REASONS[self.bhdm] if self.bhdm else "",
            "xz": [item.to_wire() for item in self.carried],
        }

    def masked(self) -> dict[str, Any]:
        return {**self.to_wire(), "idNo": mask(self.id_number), "xzlx": list(self.xzlx)}


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

    def __init__(
        self,
        region: str,
        *,
        seed: bool,
        clock: Callable[[], float],
        processing_delay: float,
        transfer_step: float = 2.0,
    ) -> None:
        self._region = region
        self._seed = seed
        self._clock = clock
        self._delay = processing_delay
        #: Seconds of the bureau's clock per transfer-out stage; tests may change it.
        self.transfer_step = transfer_step
        self._lock = threading.Lock()
        self._persons: dict[str, _Person] = {}
        self._tasks: dict[str, Task] = {}
        self._by_biz_no: dict[str, str] = {}
        self._pending: list[str] = []
        self._transfers: dict[str, Transfer] = {}
        self._transfer_by_biz_no: dict[str, str] = {}
        self._ticket_sequence = 0
        self._accept_sequence = 0
        self._transfer_sequence = 0
        self.reset()

    def reset(self) -> None:
        """Back to the seeded (or empty) state; every number sequence restarts at 1."""
        persons = _load_seed(self._region) if self._seed else {}
        with self._lock:
            self._persons = persons
            self._tasks = {}
            self._by_biz_no = {}
            self._pending = []
            self._transfers = {}
            self._transfer_by_biz_no = {}
            self._ticket_sequence = 0
            self._accept_sequence = 0
            self._transfer_sequence = 0

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

    def months(self, id_number: str, name: str | None, start: str, end: str) -> list[Month]:
        """A person's contributions in the inclusive range, ordered by month then type
        (``name`` None: the ID number alone identifies the person)."""
        with self._lock:
            self._advance(self._clock())
            person = self._person(id_number, name)
            if person is None:
                return []
            held = [m for m in person.months if start <= m.ny <= end]
            return sorted(held, key=lambda m: (m.ny, m.xzlx))

    # Tasks

    def submit(self, submit: EnrolmentSubmit) -> Task:
        """Register an enrolment once per ``bizNo``; a repeat returns the first task unchanged."""
        return self._register(
            submit.biz_no,
            ENROLMENT,
            lambda ticket, now: Task(
                ticket=ticket,
                biz_no=submit.biz_no,
                id_number=submit.id_number,
                name=submit.name,
                dwbh=submit.dwbh,
                dwmc=submit.dwmc,
                cbrq=submit.cbrq,
                xzlx=submit.xzlx,
                jfjs=submit.jfjs,
                submitted_at=now,
            ),
        )

    def submit_declaration(self, submit: DeclarationSubmit) -> Task:
        """Register a declaration once per ``bizNo``; its lines are decided with the task."""
        return self._register(
            submit.biz_no,
            DECLARATION,
            lambda ticket, now: Task(
                ticket=ticket, biz_no=submit.biz_no, id_number="", name="", dwbh=submit.dwbh,
                dwmc=submit.dwmc, cbrq="", xzlx=(), jfjs="", submitted_at=now, ywlx=DECLARATION,
                sbny=submit.sbny, lines=submit.lines,
            ),  # fmt: skip
        )

    def submit_transfer_in(self, submit: TransferInSubmit) -> Task:
        """Register a transfer in once per ``bizNo``."""
        return self._register(
            submit.biz_no,
            TRANSFER_IN,
            lambda ticket, now: Task(
                ticket=ticket, biz_no=submit.biz_no, id_number=submit.id_number, name=submit.name,
                dwbh="", dwmc="", cbrq="", xzlx=(), jfjs="", submitted_at=now, ywlx=TRANSFER_IN,
                zcdq=submit.zcdq, zcbh=submit.zcbh, carried=submit.carried,
            ),  # fmt: skip
        )

    def submit_payment(self, submit: PaymentSubmit) -> Task:
        """Register a payment notice once per ``bizNo``; it is checked when the task is decided."""
        return self._register(
            submit.biz_no,
            PAYMENT,
            lambda ticket, now: Task(
                ticket=ticket, biz_no=submit.biz_no, id_number="", name="", dwbh=submit.dwbh,
                dwmc=submit.dwmc, cbrq="", xzlx=(), jfjs="", submitted_at=now, ywlx=PAYMENT,
                sbny=submit.sbny, sblsh=submit.sblsh, jkje=submit.jkje, jkrq=submit.jkrq, yhlsh=submit.yhlsh,
            ),  # fmt: skip
        )

    def payments(self) -> list[Task]:
        """Every payment notice task in submission order, due ones decided first."""
        with self._lock:
            self._advance(self._clock())
            return [task for task in self._tasks.values() if task.ywlx == PAYMENT]

    def set_contribution_status(
        self, id_number: str, ny: str, jfzt: str, xzlx: str | None, dzrq: str | None
    ) -> list[Month]:
        """Correct the ``jfzt`` of a person's month ``ny`` of one type, or of every type held
        that month (``xzlx`` None); the corrected months.

        A paid or late month keeps its ``dzrq`` unless ``dzrq`` is given, and one that had
        none is dated today; an unpaid month has none. ``LookupError`` when the bureau
        holds no such person or month."""
        if jfzt not in (PAID, PAID_LATE, UNPAID):
            raise ValueError("jfzt must be 1, 2 or 3")
        with self._lock:
            now = self._clock()
            self._advance(now)
            person = self._persons.get(id_number)
            if person is None:
                raise LookupError("the bureau holds no such person")
            held = [m for m in person.months if m.ny == ny and xzlx in (None, m.xzlx)]
            if not held:
                raise LookupError("the bureau holds no such month for this person")
            corrected = []
            for month in held:
                date = "" if jfzt == UNPAID else dzrq or month.dzrq or self._day(now)
                new = dataclasses.replace(month, jfzt=jfzt, dzrq=date)
                _put_month(person, new)
                corrected.append(new)
            return sorted(corrected, key=lambda m: m.xzlx)

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

    # Transfers out

    def submit_transfer_out(self, submit: TransferOutSubmit) -> Transfer:
        """Register a transfer out once per ``bizNo`` (a repeat answers its current state);
        a known ID number with another name is refused at once."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            existing = self._transfer_by_biz_no.get(submit.biz_no)
            if existing is not None:
                return self._transfers[existing]
            if submit.biz_no in self._by_biz_no:
                raise BureauError(MALFORMED, "bizNo already used by another submission")
            if submit.zrdq == self._region:
                raise BureauError(MALFORMED, "zrdq must be another region than this bureau's")
            self._person(submit.id_number, submit.name)
            self._transfer_sequence += 1
            day = self._day(now)
            transfer = Transfer(
                zybh=f"ZC{self._region}-{self._transfer_sequence:06d}",
                biz_no=submit.biz_no,
                id_number=submit.id_number,
                name=submit.name,
                zrdq=submit.zrdq,
                xzlx=submit.xzlx,
                submitted_at=now,
                sqrq=day,
                gxrq=day,
            )
            self._transfers[transfer.zybh] = transfer
            self._transfer_by_biz_no[transfer.biz_no] = transfer.zybh
            return transfer

    def transfer(self, query: TransferQuery) -> Transfer | None:
        """The transfer named by bizNo and/or zybh, or None (none, or they disagree)."""
        with self._lock:
            self._advance(self._clock())
            zybh = query.zybh if query.zybh is not None else self._transfer_by_biz_no.get(query.biz_no or "")
            transfer = self._transfers.get(zybh or "")
            if transfer is None or (query.biz_no is not None and transfer.biz_no != query.biz_no):
                return None
            return transfer

    def transfers(self) -> list[Transfer]:
        with self._lock:
            self._advance(self._clock())
            return list(self._transfers.values())

    # Internals (the lock is held)

    def _register(self, biz_no: str, ywlx: str, build: Callable[[str, float], Task]) -> Task:
        with self._lock:
            now = self._clock()
            self._advance(now)
            existing = self._by_biz_no.get(biz_no)
            if existing is not None:
                task = self._tasks[existing]
                if task.ywlx != ywlx:
                    raise BureauError(MALFORMED, "bizNo already used by another kind of submission")
                return task
            if biz_no in self._transfer_by_biz_no:
                raise BureauError(MALFORMED, "bizNo already used by a transfer out")
            self._ticket_sequence += 1
            task = build(f"T{self._region}-{self._ticket_sequence:06d}", now)
            self._tasks[task.ticket] = task
            self._by_biz_no[task.biz_no] = task.ticket
            self._pending.append(task.ticket)
            return task

    def _person(self, id_number: str, name: str | None) -> _Person | None:
        person = self._persons.get(id_number)
        if person is not None and name is not None and not person.answers_to(name):
            raise BureauError(NAME_MISMATCH)
        return person

    @staticmethod
    def _day(at: float) -> str:
        return datetime.fromtimestamp(at, _CHINA).strftime("%Y%m%d")

    def _advance(self, now: float, *, force: bool = False) -> None:
        """Play everything due by ``now`` in time order (a task decision before a transfer
        stage at the same instant); ``force`` then decides every remaining task."""
        step = self.transfer_step
        while True:
            task_due = self._tasks[self._pending[0]].submitted_at + self._delay if self._pending else math.inf
            moving = [t for t in self._transfers.values() if t.moving]
            transfer = min(moving, key=lambda t: (t.due(step), t.zybh), default=None)
            transfer_due = transfer.due(step) if transfer is not None else math.inf
            if task_due <= transfer_due and task_due <= now:
                task = self._tasks[self._pending.pop(0)]
                self._tasks[task.ticket] = self._decide(task, task_due)
            elif transfer is not None and transfer_due <= now:
                self._transfers[transfer.zybh] = self._move(transfer, transfer_due)
            else:
                break
        while force and self._pending:
            task = self._tasks[self._pending.pop(0)]
            self._tasks[task.ticket] = self._decide(task, max(now, task.submitted_at))

    def _decide(self, task: Task, at: float) -> Task:
        if task.ywlx == DECLARATION:
            return self._decide_declaration(task, at)
        if task.ywlx == TRANSFER_IN:
            return self._decide_transfer_in(task, at)
        if task.ywlx == PAYMENT:
            return self._decide_payment(task, at)
        return self._decide_enrolment(task, at)

    def _accept(self, task: Task, at: float, **changes: Any) -> Task:
        self._accept_sequence += 1
        return dataclasses.replace(
            task,
            state=SUCCESS,
            accept_no=f"{self._region}-R-{self._accept_sequence:06d}",
            accept_date=self._day(at),
            decided_at=at,
            **changes,
        )

    def _decide_enrolment(self, task: Task, at: float) -> Task:
        person = self._persons.get(task.id_number)
        if person is not None:
            if not person.answers_to(task.name):
                return self._fail(task, NAME_MISMATCH, at)
            active = {r.xzlx for r in person.records if r.cbzt == ACTIVE}
            if any(xzlx in active for xzlx in task.xzlx):
                return self._fail(task, ALREADY_ACTIVE, at)
        else:
            person = self._persons[task.id_number] = _Person(names=[task.name.strip()])
        for xzlx in task.xzlx:
            # A suspended record (e.g. one transferred in) is reactivated, keeping its months.
            self._activate(person, xzlx, (SUSPENDED,), task.dwbh, task.dwmc, task.jfjs, task.cbrq)
        return self._accept(task, at)

    def _activate(
        self, person: _Person, xzlx: str, reusable: tuple[str, ...], dwbh: str, dwmc: str, jfjs: str, cbrq: str
    ) -> None:
        """Reactivate the most recent record of ``xzlx`` in a ``reusable`` status (suspended
        preferred), or else add a new active record starting ``cbrq``."""
        candidates = [i for i, r in enumerate(person.records) if r.xzlx == xzlx and r.cbzt in reusable]
        if candidates:
            index = max(candidates, key=lambda i: (person.records[i].cbzt == SUSPENDED, person.records[i].cbrq, i))
            person.records[index] = dataclasses.replace(
                person.records[index], cbzt=ACTIVE, dwbh=dwbh, dwmc=dwmc, jfjs=jfjs, zzrq=""
            )
            return
        person.records.append(
            Record(xzlx=xzlx, cbzt=ACTIVE, dwbh=dwbh, dwmc=dwmc, cbrq=cbrq, zzrq="", jfys=0, jfjs=jfjs, zhjfny="")
        )

    def _decide_declaration(self, task: Task, at: float) -> Task:
        decided_lines = [(line, *self._apply_line(task, line)) for line in task.lines]
        results = tuple(LineResult(line.hh, code) for line, code, _ in decided_lines)
        payable = tuple(
            PayableLine(line.id_number, applied_to, line.jfjs)
            for line, code, applied_to in decided_lines
            if not code and line.bdlx != LEAVE and line.jfjs
        )
        accepted = sum(1 for result in results if not result.fail_code)
        if accepted == 0:
            return dataclasses.replace(
                task, state=FAILED, accept_date=self._day(at), line_results=results, decided_at=at
            )
        decided = self._accept(task, at, line_results=results, payable=payable)
        return decided if accepted == len(results) else dataclasses.replace(decided, state=PARTIAL)

    def _apply_line(self, task: Task, line: DeclarationLine) -> tuple[str, tuple[str, ...]]:
        """Apply one declaration line: ``""`` when accepted, else its failure code, and the
        insurance types it applied to (what a payment notice later marks paid)."""
        if not has_valid_check_digit(line.id_number):
            return BAD_CHECK_DIGIT, ()
        person = self._persons.get(line.id_number)
        if person is not None and not person.answers_to(line.name):
            return NAME_MISMATCH, ()
        if line.bdlx == NEW:
            if person is not None and any(r.cbzt == ACTIVE and r.xzlx in line.xzlx for r in person.records):
                return ALREADY_ACTIVE, ()
            if person is None:
                person = self._persons[line.id_number] = _Person(names=[line.name.strip()])
            start = line.rzrq or task.sbny + "01"
            for xzlx in line.xzlx:
                self._activate(person, xzlx, (SUSPENDED, TERMINATED), task.dwbh, task.dwmc, line.jfjs, start)
            return "", line.xzlx
        records = [] if person is None else person.records
        here = [i for i, r in enumerate(records) if r.cbzt == ACTIVE and r.dwbh == task.dwbh and r.xzlx in line.xzlx]
        if not here:
            return NOT_INSURED_HERE, ()
        applied_to = tuple(dict.fromkeys(records[i].xzlx for i in here))
        if line.bdlx == LEAVE:
            year, month = int(task.sbny[:4]), int(task.sbny[4:])
            end = line.lzrq or f"{task.sbny}{calendar.monthrange(year, month)[1]:02d}"
            for i in here:
                records[i] = dataclasses.replace(records[i], cbzt=TERMINATED, zzrq=end)
        elif line.bdlx == BASE_CHANGE:
            for i in here:
                records[i] = dataclasses.replace(records[i], jfjs=line.jfjs)
        return "", applied_to  # continue (续缴): nothing changes

    def _decide_payment(self, task: Task, at: float) -> Task:
        reason = self._payment_refusal(task)
        if reason:
            return dataclasses.replace(self._fail(task, reason, at), accept_date=self._day(at))
        declaration = self._tasks[self._by_biz_no[task.sblsh]]
        for line in declaration.payable:
            person = self._persons.get(line.id_number)
            if person is None:
                continue
            for xzlx in line.xzlx:
                self._mark_paid(person, declaration.sbny, xzlx, line.jfjs, task.jkrq)
        return self._accept(task, at)

    def _payment_refusal(self, task: Task) -> str:
        """Why a payment notice fails (``""``: it does not), checked in the documented order."""
        if Decimal(task.jkje) <= 0:
            return AMOUNT_NOT_POSITIVE
        ticket = self._by_biz_no.get(task.sblsh)
        declaration = self._tasks.get(ticket or "")
        if declaration is None or declaration.ywlx != DECLARATION:
            return NO_SUCH_DECLARATION
        if declaration.dwbh != task.dwbh or declaration.sbny != task.sbny:
            return NOT_THE_DECLARATION
        if declaration.state not in (SUCCESS, PARTIAL):
            return DECLARATION_NOT_ACCEPTED
        if any(t.ywlx == PAYMENT and t.state == SUCCESS and t.sblsh == task.sblsh for t in self._tasks.values()):
            return ALREADY_CONFIRMED
        return ""

    @staticmethod
    def _mark_paid(person: _Person, ny: str, xzlx: str, jfjs: str, dzrq: str) -> None:
        base = Decimal(jfjs)
        month = Month(
            ny=ny,
            xzlx=xzlx,
            jfzt=PAID,
            dwjf=f"{(base * UNIT_RATES[xzlx]).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):.2f}",
            grjf=f"{(base * PERSONAL_RATES[xzlx]).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):.2f}",
            dzrq=dzrq,
        )
        before = _put_month(person, month)
        held = [i for i, r in enumerate(person.records) if r.xzlx == xzlx]
        if not held:
            return
        index = max(held, key=lambda i: (person.records[i].cbzt == ACTIVE, person.records[i].cbrq, i))
        record = person.records[index]
        newly_paid = before is None or before.jfzt not in (PAID, PAID_LATE)
        person.records[index] = dataclasses.replace(
            record, jfys=record.jfys + (1 if newly_paid else 0), zhjfny=max(record.zhjfny, ny)
        )

    def _decide_transfer_in(self, task: Task, at: float) -> Task:
        person = self._persons.get(task.id_number)
        if person is not None and not person.answers_to(task.name):
            return self._fail(task, NAME_MISMATCH, at)
        if person is None:
            person = self._persons[task.id_number] = _Person(names=[task.name.strip()])
        for item in task.carried:
            held = [i for i, r in enumerate(person.records) if r.xzlx == item.xzlx and r.cbzt != TRANSFERRED_OUT]
            if held:
                index = max(held, key=lambda i: (person.records[i].cbzt == ACTIVE, person.records[i].cbrq, i))
                record = person.records[index]
                starts = [d for d in (record.cbrq, item.cbrq) if d]
                person.records[index] = dataclasses.replace(
                    record, jfys=record.jfys + item.jfys, cbrq=min(starts) if starts else ""
                )
            else:
                person.records.append(
                    Record(xzlx=item.xzlx, cbzt=SUSPENDED, dwbh="", dwmc="", cbrq=item.cbrq, zzrq="",
                           jfys=item.jfys, jfjs=item.jfjs or "0.00", zhjfny="")  # fmt: skip
                )
        return self._accept(task, at)

    def _move(self, transfer: Transfer, at: float) -> Transfer:
        """The next stage of a transfer out: the review, then the fund transfer."""
        day = self._day(at)
        person = self._persons.get(transfer.id_number)
        records = [] if person is None else person.records
        if transfer.stage == SUBMITTED:
            chosen: list[int] = []
            for xzlx in transfer.xzlx:
                held = [i for i, r in enumerate(records) if r.xzlx == xzlx and r.cbzt in (ACTIVE, SUSPENDED)]
                if not held:
                    return dataclasses.replace(transfer, stage=REJECTED, bhdm=NOTHING_TO_TRANSFER, gxrq=day)
                chosen.append(max(held, key=lambda i: (records[i].cbzt == ACTIVE, records[i].cbrq, i)))
            return dataclasses.replace(transfer, stage=REVIEWED, gxrq=day, record_indices=tuple(chosen))
        if any(records[i].cbzt not in (ACTIVE, SUSPENDED) for i in transfer.record_indices):
            return dataclasses.replace(transfer, stage=REJECTED, bhdm=CHANGED_BEFORE_TRANSFER, gxrq=day)
        carried = []
        for i in transfer.record_indices:
            record = records[i]
            fund = (Decimal(record.jfjs) * PERSONAL_RATES[record.xzlx] * record.jfys).quantize(
                Decimal("0.01"), rounding=ROUND_HALF_UP
            )
            carried.append(Carried(xzlx=record.xzlx, jfys=record.jfys, cbrq=record.cbrq, zyjj=f"{fund:.2f}", jfjs=record.jfjs))
            records[i] = dataclasses.replace(record, cbzt=TRANSFERRED_OUT, zzrq=day)
        return dataclasses.replace(transfer, stage=FUNDS_TRANSFERRED, gxrq=day, carried=tuple(carried))

    @staticmethod
    def _fail(task: Task, code: str, at: float) -> Task:
        return dataclasses.replace(task, state=FAILED, fail_code=code, fail_msg=MESSAGES[code], decided_at=at)


def _put_month(person: _Person, month: Month) -> Month | None:
    """Store ``month``, replacing the person's month of that ``ny`` and ``xzlx``; the one replaced."""
    for index, held in enumerate(person.months):
        if held.ny == month.ny and held.xzlx == month.xzlx:
            person.months[index] = month
            return held
    person.months.append(month)
    return None
