"""Monthly declarations (申报): validate every line, compute it with the policy in
force for the period, send the valid lines to the region's bureau, track the
bureau's decision per line.

Validation reports each bad line with its own problems; with ``all_or_nothing``
one bad line refuses the whole declaration before anything is stored or sent.
A declaration the bureau has not decided yet is ``pending`` and is polled by
``gateway.workers`` until it is.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters import (
    INSURANCE_TYPES,
    CallContext,
    Capability,
    DeclarationLine,
    DeclarationReceipt,
    DeclarationSubmission,
    Employer,
    Person,
    UpstreamError,
)

from ..api.schemas import (
    DeclarationIn,
    DeclarationLineIn,
    DeclarationLineOut,
    DeclarationOut,
    DeclarationTotals,
    LineProblem,
    MaskedPerson,
    SideAmounts,
)
from ..auth import Client
from ..encryption import FieldCipher, mask_id_number
from ..errors import ProblemError
from ..ids import new_id, upstream_reference
from ..policy import CalculationInput, PolicyCatalogue, PolicyVersion, calculate, in_force, period_start
from ..registry import UpstreamSet
from ..store import declaration_lines, declarations
from ..validation import check_amount, check_id_number, check_region, check_uscc
from ..workers import Advance, utcnow
from .events import EventPublisher
from .upstream_outcomes import FailureKind, ask_then_send, classify

__all__ = ["DeclarationService"]

log = logging.getLogger("hr_gateway.declarations")

_ID_COLUMN = "declaration_lines.id_number"
_NAME_COLUMN = "declaration_lines.name"
_ZERO = Decimal("0.00")
FINAL_DECLARATION_STATES = frozenset({"accepted", "partially_accepted", "rejected"})


class _Checked:
    """One line after validation: its problems, and what is sent if it has none."""

    def __init__(self, number: int, given: DeclarationLineIn) -> None:
        self.number = number
        self.given = given
        self.errors: list[LineProblem] = []
        self.warnings: list[LineProblem] = []
        self.id_number = given.id_number
        self.base: Decimal | None = None
        self.clamped: str | None = None
        self.contributions: dict[str, dict[str, str]] | None = None
        self.totals: dict[str, str] | None = None

    def fail(self, exc: ProblemError) -> None:
        self.errors.append(LineProblem(exc.code, exc.detail or exc.title, exc.extensions.get("field")))


class DeclarationService:
    def __init__(
        self,
        engine: AsyncEngine,
        cipher: FieldCipher,
        events: EventPublisher,
        upstreams_for: Callable[[str], UpstreamSet | None],
        *,
        poll_seconds: float,
    ) -> None:
        self.engine = engine
        self.cipher = cipher
        self.events = events
        self.upstreams_for = upstreams_for
        self.poll_seconds = poll_seconds

    # -- validating ---------------------------------------------------------------

    async def _policy(self, environment: str, region: str, first_day: dt.date) -> PolicyVersion:
        versions = await PolicyCatalogue(self.engine, environment).versions(region)
        policy = in_force(versions, first_day)
        if policy is None:
            raise ProblemError(
                "period_not_covered",
                f"period: no contribution policy of region {region} is in force on {first_day}",
                field="period",
            )
        return policy

    @staticmethod
    def _check_line(line: _Checked, period: str, first_day: dt.date, policy: PolicyVersion) -> None:
        given, at = line.given, f"lines[{line.number - 1}]"
        try:
            line.id_number = check_id_number(given.id_number, f"{at}.id_number")
        except ProblemError as exc:
            line.fail(exc)
        last_day = first_day.replace(day=calendar.monthrange(first_day.year, first_day.month)[1])
        needs_salary = given.change != "leave"
        if needs_salary and given.salary is None:
            line.errors.append(LineProblem("missing_field", f"{at}.salary: required for a {given.change} line", f"{at}.salary"))
        if given.change == "new" and given.hire_date is None:
            line.errors.append(LineProblem("missing_field", f"{at}.hire_date: required for a new line", f"{at}.hire_date"))
        if given.change == "leave" and given.leave_date is None:
            line.errors.append(LineProblem("missing_field", f"{at}.leave_date: required for a leave line", f"{at}.leave_date"))
        if given.hire_date is not None and given.hire_date > last_day:
            line.errors.append(LineProblem(
                "hire_after_period", f"{at}.hire_date {given.hire_date} is after the period {period}", f"{at}.hire_date"))
        if given.leave_date is not None and given.leave_date > last_day:
            line.errors.append(LineProblem(
                "leave_after_period", f"{at}.leave_date {given.leave_date} is after the period {period}", f"{at}.leave_date"))
        if given.hire_date is not None and given.leave_date is not None and given.leave_date < given.hire_date:
            line.errors.append(LineProblem(
                "leave_before_hire", f"{at}.leave_date {given.leave_date} is before hire_date {given.hire_date}",
                f"{at}.leave_date"))
        salary = None
        if given.salary is not None:
            try:
                salary = check_amount(given.salary, f"{at}.salary")
            except ProblemError as exc:
                line.fail(exc)
        if line.errors or not needs_salary:
            return
        hire_date = given.hire_date if given.change == "new" else None
        calc = calculate(policy, CalculationInput(period, first_day, salary, None, hire_date))
        line.base, line.clamped = calc.base, calc.clamped
        if calc.clamped is not None:
            line.warnings.append(LineProblem(
                "base_clamped",
                f"{at}.salary {salary} is {'below the floor' if calc.clamped == 'floor' else 'above the ceiling'} "
                f"of {policy.region} ({policy.base_floor}-{policy.base_ceiling}); base {calc.base} used",
                f"{at}.salary"))
        line.contributions = {
            t: {"employer": str(getattr(calc.contributions, t).employer), "employee": str(getattr(calc.contributions, t).employee)}
            for t in INSURANCE_TYPES
        }
        line.totals = {"employer": str(calc.totals.employer), "employee": str(calc.totals.employee)}

    # -- creating -----------------------------------------------------------------

    async def create(
        self,
        client: Client,
        body: DeclarationIn,
        upstreams: UpstreamSet,
        context: CallContext,
        idempotency_token: str | None,
    ) -> DeclarationOut:
        employer = Employer(check_uscc(body.employer.uscc, "employer.uscc"), body.employer.name.strip())
        check_region(body.region, upstreams.regions(Capability.DECLARATION), "region")
        row = await self._find_by_token(client, idempotency_token) if idempotency_token else None
        resumed = row is not None
        if row is None:
            policy, lines = await self.check(client, body)
            row = await self._create(client, body, employer, policy, lines, idempotency_token)
        if row.status == "submitting":
            await self._submit(row, context.with_gateway_id(row.id), ask_first=resumed)
        out = await self.get(client, row.id)
        if out.status == "rejected" and out.error:
            raise ProblemError(
                "upstream_rejected",
                f"the {out.region} bureau refused the declaration: {out.error.get('upstream_message')}",
                upstream={"code": out.error.get("upstream_code"), "message": out.error.get("upstream_message")},
                declaration_id=out.id,
            )
        return out

    async def check(self, client: Client, body: DeclarationIn) -> tuple[PolicyVersion, list[_Checked]]:
        """Calculate and check every line; raises ``declaration_invalid`` when nothing
        could be sent (or any line is invalid under ``all_or_nothing``)."""
        first_day = period_start(body.period)
        policy = await self._policy(client.environment, body.region, first_day)
        lines = [_Checked(i + 1, given) for i, given in enumerate(body.lines)]
        for line in lines:
            self._check_line(line, body.period, first_day, policy)
        counts = Counter(line.id_number for line in lines)
        for line in lines:
            if counts[line.id_number] > 1:
                others = [str(o.number) for o in lines if o.id_number == line.id_number and o is not line]
                line.errors.append(LineProblem(
                    "duplicate_person",
                    f"lines[{line.number - 1}]: the same person is also on line(s) {', '.join(others)}",
                    f"lines[{line.number - 1}].id_number"))
        bad = [line for line in lines if line.errors]
        if bad and (body.all_or_nothing or len(bad) == len(lines)):
            raise ProblemError(
                "declaration_invalid",
                f"{len(bad)} of {len(lines)} lines are invalid"
                + ("; with all_or_nothing nothing was sent" if body.all_or_nothing else "; no line could be sent"),
                lines=[
                    {"line": line.number, "errors": [_problem(p) for p in line.errors]} for line in bad
                ],
            )
        return policy, lines

    async def _find_by_token(self, client: Client, token: str) -> Any:
        async with self.engine.connect() as conn:
            return (
                await conn.execute(
                    declarations.select().where(
                        declarations.c.client_id == client.id, declarations.c.idempotency_token == token
                    )
                )
            ).first()

    async def _create(
        self,
        client: Client,
        body: DeclarationIn,
        employer: Employer,
        policy: PolicyVersion,
        lines: list[_Checked],
        token: str | None,
    ) -> Any:
        gateway_id = new_id("dcl")
        now = utcnow()
        declared = _sum(line.totals for line in lines if not line.errors)
        async with self.engine.begin() as conn:
            await conn.execute(
                declarations.insert().values(
                    id=gateway_id,
                    client_id=client.id,
                    environment=client.environment,
                    idempotency_token=token,
                    region=body.region,
                    upstream=self.upstreams_for(client.environment).bureau_for(body.region).name,  # type: ignore[union-attr]
                    employer_uscc=employer.uscc,
                    employer_name=employer.name,
                    period=body.period,
                    policy_version=str(policy.version),
                    all_or_nothing=body.all_or_nothing,
                    status="submitting",
                    reference=upstream_reference(gateway_id),
                    totals=json.dumps({"declared": declared}),
                    # Due only if this request dies before submitting: then the poller does it.
                    next_poll_at=now + dt.timedelta(seconds=30),
                    poll_attempts=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            for line in lines:
                given = line.given
                await conn.execute(
                    declaration_lines.insert().values(
                        declaration_id=gateway_id,
                        line=line.number,
                        person_bidx=None if line.errors else self.cipher.blind_index(line.id_number),
                        id_number_enc=self.cipher.encrypt(given.id_number, _ID_COLUMN),
                        name_enc=self.cipher.encrypt(given.name.strip(), _NAME_COLUMN),
                        change=given.change,
                        salary=str(given.salary) if given.salary is not None else None,
                        contribution_base=str(line.base) if line.base is not None else None,
                        base_clamped=line.clamped,
                        hire_date=given.hire_date.isoformat() if given.hire_date else None,
                        leave_date=given.leave_date.isoformat() if given.leave_date else None,
                        amounts=json.dumps({"contributions": line.contributions, "totals": line.totals})
                        if line.contributions else None,
                        status="invalid" if line.errors else "not_sent",
                        problems=json.dumps(
                            {"errors": [_problem(p) for p in line.errors], "warnings": [_problem(p) for p in line.warnings]},
                            ensure_ascii=False,
                        ),
                    )
                )
            return (await conn.execute(declarations.select().where(declarations.c.id == gateway_id))).first()

    # -- submitting and polling ---------------------------------------------------

    async def _submission(self, row: Any) -> DeclarationSubmission:
        async with self.engine.connect() as conn:
            lines = (
                await conn.execute(
                    declaration_lines.select()
                    .where(declaration_lines.c.declaration_id == row.id, declaration_lines.c.status != "invalid")
                    .order_by(declaration_lines.c.line)
                )
            ).all()
        return DeclarationSubmission(
            reference=row.reference,
            region=row.region,
            employer=Employer(row.employer_uscc, row.employer_name),
            period=row.period,
            lines=tuple(
                DeclarationLine(
                    line=line.line,
                    person=Person(
                        self.cipher.decrypt(line.id_number_enc, _ID_COLUMN), self.cipher.decrypt(line.name_enc, _NAME_COLUMN)
                    ),
                    change=line.change,
                    insurance_types=INSURANCE_TYPES,
                    contribution_base=Decimal(line.contribution_base) if line.contribution_base else None,
                    hire_date=dt.date.fromisoformat(line.hire_date) if line.hire_date else None,
                    leave_date=dt.date.fromisoformat(line.leave_date) if line.leave_date else None,
                )
                for line in lines
            ),
        )

    async def _submit(self, row: Any, context: CallContext, *, ask_first: bool) -> bool:
        """Send (or, after an earlier attempt, first ask); False: try again later."""
        upstreams = self.upstreams_for(row.environment)
        bureau = upstreams.bureau_for(row.region, Capability.DECLARATION) if upstreams else None
        if bureau is None:
            return False
        try:
            receipt: DeclarationReceipt = await ask_then_send(
                lambda: bureau.find_declaration(row.reference, context=context),  # type: ignore[attr-defined]
                lambda: self._send(bureau, row, context),
                ask_first=ask_first,
            )
        except UpstreamError as exc:
            failure = classify(exc)
            if failure.kind is FailureKind.REJECTED:
                await self._apply(row.id, None, error=failure.as_error())
                return True
            log.warning("declaration %s: the %s bureau could not take it now: %s", row.id, row.region, failure.message)
            await self._touch(row.id, retry_in=self.poll_seconds)
            return False
        await self._apply(row.id, receipt)
        return True

    async def _send(self, bureau: Any, row: Any, context: CallContext) -> DeclarationReceipt:
        return await bureau.submit_declaration(await self._submission(row), context=context)  # type: ignore[no-any-return]

    async def advance(self, row: Any) -> Advance:
        """The poller's step for one claimed declaration."""
        if row.status in FINAL_DECLARATION_STATES:
            return Advance.done()
        context = CallContext(request_id=f"poll-{row.id}", client_id=row.client_id, gateway_id=row.id)
        if row.status == "submitting":
            ok = await self._submit(row, context, ask_first=True)
        else:
            upstreams = self.upstreams_for(row.environment)
            bureau = upstreams.bureau_for(row.region, Capability.DECLARATION) if upstreams else None
            if bureau is None:
                return Advance.back_off()
            try:
                receipt = await bureau.find_declaration(row.reference, context=context)  # type: ignore[attr-defined]
            except UpstreamError as exc:
                log.warning("declaration %s: polling the %s bureau failed: %s", row.id, row.region, classify(exc).message)
                return Advance.back_off()
            if receipt is None:
                log.error("declaration %s: the %s bureau no longer knows reference %s", row.id, row.region, row.reference)
                return Advance.back_off()
            await self._apply(row.id, receipt)
            ok = True
        if not ok:
            return Advance.back_off()
        async with self.engine.connect() as conn:
            status = (await conn.execute(select(declarations.c.status).where(declarations.c.id == row.id))).scalar_one()
        return Advance.done() if status in FINAL_DECLARATION_STATES else Advance.again_in(self.poll_seconds)

    async def _touch(self, declaration_id: str, *, retry_in: float) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                declarations.update()
                .where(declarations.c.id == declaration_id)
                .values(poll_attempts=declarations.c.poll_attempts + 1,
                        next_poll_at=utcnow() + dt.timedelta(seconds=retry_in))
            )

    async def _apply(self, declaration_id: str, receipt: DeclarationReceipt | None, *, error: dict[str, Any] | None = None) -> None:
        """Record the bureau's answer (``receipt``, or a refusal of the whole
        declaration as ``error``) and announce what changed, in one transaction."""
        now = utcnow()
        async with self.engine.begin() as conn:
            row = (await conn.execute(declarations.select().where(declarations.c.id == declaration_id))).first()
            if row is None or row.status in FINAL_DECLARATION_STATES:
                return
            was = row.status
            if receipt is None:
                status = "rejected"
                await conn.execute(
                    declaration_lines.update()
                    .where(declaration_lines.c.declaration_id == declaration_id, declaration_lines.c.status != "invalid")
                    .values(status="rejected", upstream_code=(error or {}).get("upstream_code"),
                            upstream_message=(error or {}).get("upstream_message"))
                )
            else:
                status = receipt.status
                decided = {r.line: r for r in receipt.lines}
                await conn.execute(
                    declaration_lines.update()
                    .where(declaration_lines.c.declaration_id == declaration_id, declaration_lines.c.status != "invalid")
                    .values(status="pending")
                )
                for result in decided.values():
                    await conn.execute(
                        declaration_lines.update()
                        .where(
                            declaration_lines.c.declaration_id == declaration_id,
                            declaration_lines.c.line == result.line,
                            declaration_lines.c.status != "invalid",
                        )
                        .values(status=result.status, upstream_code=result.upstream_code,
                                upstream_message=result.upstream_message)
                    )
            accepted = await self._accepted_totals(conn, declaration_id)
            totals = json.loads(row.totals)
            totals["accepted"] = accepted
            await conn.execute(
                declarations.update()
                .where(declarations.c.id == declaration_id)
                .values(
                    status=status,
                    bureau_reference=receipt.bureau_reference if receipt else row.bureau_reference,
                    totals=json.dumps(totals),
                    # Undecided: ask the bureau again after one poll interval.
                    next_poll_at=None if status in FINAL_DECLARATION_STATES else utcnow() + dt.timedelta(seconds=self.poll_seconds),
                    error=json.dumps(error, ensure_ascii=False) if error else None,
                    updated_at=now,
                )
            )
            announce = []
            if was == "submitting" and receipt is not None:
                announce.append("declaration.submitted")
            if status in FINAL_DECLARATION_STATES:
                announce.append(f"declaration.{status}")
            if announce:
                data = await self._event_data(conn, declaration_id)
                for event in announce:
                    await self.events.publish(conn, client_id=row.client_id, environment=row.environment, type=event, data=data)
        if announce:
            self.events.notify()

    @staticmethod
    async def _accepted_totals(conn: AsyncConnection, declaration_id: str) -> dict[str, str]:
        rows = (
            await conn.execute(
                select(declaration_lines.c.amounts).where(
                    declaration_lines.c.declaration_id == declaration_id, declaration_lines.c.status == "accepted"
                )
            )
        ).all()
        return _sum(json.loads(r.amounts)["totals"] if r.amounts else None for r in rows)

    async def _event_data(self, conn: AsyncConnection, declaration_id: str) -> dict[str, Any]:
        """What a webhook carries: the declaration without its lines (a declaration
        may have a thousand), plus the lines the bureau rejected (masked)."""
        row = (await conn.execute(declarations.select().where(declarations.c.id == declaration_id))).first()
        out = await self._out(conn, row)
        return {
            "declaration": {
                "id": out.id, "status": out.status, "region": out.region, "period": out.period,
                "employer": {"uscc": out.employer.uscc, "name": out.employer.name},
                "reference": out.reference, "bureau_reference": out.bureau_reference,
                "totals": {
                    "lines": out.totals.lines, "by_status": out.totals.by_status,
                    "declared": {"employer": str(out.totals.declared.employer), "employee": str(out.totals.declared.employee)},
                    "accepted": {"employer": str(out.totals.accepted.employer), "employee": str(out.totals.accepted.employee)},
                },
            },
            "rejected_lines": [
                {"line": line.line, "person": {"id_number_masked": line.person.id_number_masked}, "upstream": line.upstream}
                for line in out.lines if line.status == "rejected"
            ],
        }

    # -- reading ------------------------------------------------------------------

    async def get(self, client: Client, declaration_id: str) -> DeclarationOut:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    declarations.select().where(
                        declarations.c.id == declaration_id, declarations.c.client_id == client.id
                    )
                )
            ).first()
            if row is None:
                raise ProblemError("not_found", "no declaration with this id for this client")
            return await self._out(conn, row)

    async def _out(self, conn: AsyncConnection, row: Any) -> DeclarationOut:
        lines = (
            await conn.execute(
                declaration_lines.select()
                .where(declaration_lines.c.declaration_id == row.id)
                .order_by(declaration_lines.c.line)
            )
        ).all()
        outs = [self._line_out(line) for line in lines]
        totals = json.loads(row.totals)
        return DeclarationOut(
            id=row.id,
            status=row.status,
            region=row.region,
            employer=Employer(row.employer_uscc, row.employer_name),
            period=row.period,
            policy_version=int(row.policy_version),
            all_or_nothing=bool(row.all_or_nothing),
            reference=row.reference,
            bureau_reference=row.bureau_reference,
            totals=DeclarationTotals(
                lines=len(outs),
                by_status=dict(sorted(Counter(o.status for o in outs).items())),
                declared=_sides(totals.get("declared")),
                accepted=_sides(totals.get("accepted")),
            ),
            lines=outs,
            error=json.loads(row.error) if row.error else None,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def _line_out(self, line: Any) -> DeclarationLineOut:
        problems = json.loads(line.problems) if line.problems else {"errors": [], "warnings": []}
        amounts = json.loads(line.amounts) if line.amounts else None
        return DeclarationLineOut(
            line=line.line,
            person=MaskedPerson(mask_id_number(self.cipher.decrypt(line.id_number_enc, _ID_COLUMN))),
            change=line.change,
            status=line.status,
            salary=Decimal(line.salary) if line.salary else None,
            contribution_base=Decimal(line.contribution_base) if line.contribution_base else None,
            base_clamped=line.base_clamped,
            hire_date=dt.date.fromisoformat(line.hire_date) if line.hire_date else None,
            leave_date=dt.date.fromisoformat(line.leave_date) if line.leave_date else None,
            contributions={t: _sides(v) for t, v in amounts["contributions"].items()} if amounts else None,
            totals=_sides(amounts["totals"]) if amounts else None,
            errors=[LineProblem(**p) for p in problems["errors"]],
            warnings=[LineProblem(**p) for p in problems["warnings"]],
            upstream={"code": line.upstream_code, "message": line.upstream_message}
            if line.upstream_code or line.upstream_message else None,
        )


def _problem(p: LineProblem) -> dict[str, Any]:
    return {"code": p.code, "detail": p.detail, "field": p.field}


def _sum(totals: Any) -> dict[str, str]:
    employer = employee = _ZERO
    for t in totals:
        if t:
            employer += Decimal(t["employer"])
            employee += Decimal(t["employee"])
    return {"employer": str(employer), "employee": str(employee)}


def _sides(value: dict[str, str] | None) -> Any:
    if not value:
        return SideAmounts(_ZERO, _ZERO)
    return SideAmounts(Decimal(value["employer"]), Decimal(value["employee"]))
