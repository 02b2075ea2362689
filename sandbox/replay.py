"""Replay: a validated row becomes the submissions it implies, sent through the
gateway's own services and adapters to the sandbox bureaus.

What a row implies (``plan``):

* active and contributing, no earlier region: an **enrolment** in ``region``
  (the gateway first searches every other region: an active relationship there
  ends the row as ``transfer_required``, exactly as the API would answer);
* ``previous_region`` set: a **transfer** of the relationship from there to
  ``region`` (accepted once the source bureau has taken the application; the
  gateway's poller follows its stages);
* departed: the **enrolment** from ``hire_date`` then the **termination** (leave
  declaration) at ``leave_date`` — the history recreated in the sandbox;
* active but not contributing: nothing to send (``not_replayed``).

Exactly once: every submission is made through a gateway service under an
idempotency token derived from the run id, the row and the step. The service writes
its resource (and the deterministic upstream reference) before the first upstream
call; when a run is resumed, or a call is retried, the service finds it by the token
and asks the bureau by that reference before sending anything again.

Outcomes: ``accepted``, ``rejected`` (the bureau's code and message, or the
gateway's refusal), ``transfer_required``, ``upstream_unavailable`` (after
retries). Messages never carry the person: ID numbers are masked, names are not
repeated.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from adapters import INSURANCE_TYPES, CallContext
from gateway.api.schemas import EmployerIn, EnrolmentIn, PersonIn, TerminationIn, TransferIn
from gateway.auth import Client
from gateway.encryption import mask_id_numbers_in
from gateway.errors import ProblemError
from gateway.registry import UpstreamSet

from .records import MigrationRecord
from .store import ReplayedRow

__all__ = [
    "OUTCOMES",
    "ReplayServices",
    "Replayer",
    "plan",
    "replay_token",
]

log = logging.getLogger("hr_gateway.sandbox.replay")

OUTCOMES: tuple[str, ...] = ("accepted", "rejected", "transfer_required", "upstream_unavailable", "not_replayed")

#: Problem codes that mean "nothing final happened; the same call may succeed later".
_TRANSIENT = frozenset({
    "upstream_unavailable", "upstream_timeout", "outcome_unknown", "participation_check_incomplete",
    "idempotency_key_in_use",
})
_FINAL_STATUSES = frozenset({"accepted", "rejected"})

T = TypeVar("T")


class ReplayServices(Protocol):
    """The gateway's services a replay submits through (``gateway.runtime.Gateway`` is one)."""

    enrolments: Any
    transfers: Any
    terminations: Any


def plan(record: MigrationRecord) -> tuple[str, ...]:
    """The submissions a validated record implies, in order."""
    if record.previous_region and record.previous_region != record.region:
        return ("transfer",)
    if record.employment_status == "departed":
        return ("enrolment", "termination")
    if record.contributing:
        return ("enrolment",)
    return ()


def replay_token(run_id: str, row: int, step: str) -> str:
    """The idempotency token of one submission of one row of one run (fits the
    services' 40-character token column; the same on every resume)."""
    return "mig_" + hashlib.sha256(f"{run_id}:{row}:{step}".encode()).hexdigest()[:36]


class _Final(Exception):
    """A step ended the row with this outcome (not an error of the replay itself)."""

    def __init__(self, outcome: ReplayedRow) -> None:
        self.outcome = outcome


@dataclass
class Replayer:
    services: ReplayServices
    client: Client
    upstreams: UpstreamSet
    run_id: str
    #: Calls after the first for a transient failure (the adapters retry each call too).
    retries: int = 2
    retry_delay: float = 0.5
    #: How long to wait for a bureau that decides later before calling the row unavailable.
    decision_timeout: float = 20.0
    poll_interval: float = 0.2
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def replay(self, record: MigrationRecord) -> ReplayedRow:
        """Send what the row implies; never raises for an upstream's or the gateway's answer."""
        steps = plan(record)
        action = "+".join(steps) or "none"
        if not steps:
            return ReplayedRow(record.row, action, "not_replayed", "nothing_to_submit",
                               "active but not contributing: no submission implied")
        if "enrolment" in steps and record.contribution_base is None:
            return ReplayedRow(record.row, action, "not_replayed", "no_contribution_base",
                               "an enrolment needs a contribution base")
        if "termination" in steps and record.leave_date is None:
            return ReplayedRow(record.row, action, "not_replayed", "no_leave_date",
                               "departed without a leave date: the termination cannot be dated")
        context = CallContext(request_id=f"{self.run_id}-r{record.row}", client_id=self.client.id)
        last: Any = None
        try:
            for step in steps:
                token = replay_token(self.run_id, record.row, step)
                if step == "enrolment":
                    last = await self._enrol(record, token, context, action)
                elif step == "termination":
                    last = await self._terminate(record, token, context, action)
                else:
                    last = await self._transfer(record, token, context, action)
        except _Final as final:
            return final.outcome
        except Exception as exc:
            # A failure of the gateway itself on this row: recorded, never taken for the
            # bureau's answer, and it does not stop the other rows.
            log.error("row %d of run %s: replay failed (%s)", record.row, self.run_id, type(exc).__name__, exc_info=exc)
            return ReplayedRow(record.row, action, "not_replayed", "internal_error",
                               f"the gateway failed on this row ({type(exc).__name__}); see its log")
        return ReplayedRow(record.row, action, "accepted", reference=last.reference, resource_id=last.id)

    # -- the steps ----------------------------------------------------------------

    async def _enrol(self, record: MigrationRecord, token: str, context: CallContext, action: str) -> Any:
        body = EnrolmentIn(
            employee=_person(record),
            employer=_employer(record),
            region=record.region,
            hire_date=record.hire_date,
            insurance_types=list(record.insurance_types or INSURANCE_TYPES),
            contribution_base=record.contribution_base or Decimal(0),
        )
        out = await self._call(
            record, action, lambda: self.services.enrolments.enrol(self.client, body, self.upstreams, context, token)
        )
        return await self._decided(record, action, out, lambda: self.services.enrolments.get(self.client, out.id))

    async def _terminate(self, record: MigrationRecord, token: str, context: CallContext, action: str) -> Any:
        assert record.leave_date is not None  # see ``replay``
        body = TerminationIn(
            employee=_person(record),
            employer=_employer(record),
            region=record.region,
            leave_date=record.leave_date,
            insurance_types=list(record.insurance_types or INSURANCE_TYPES),
        )
        out = await self._call(
            record, action,
            lambda: self.services.terminations.create(self.client, body, self.upstreams, context, token),
        )
        return await self._decided(record, action, out, lambda: self.services.terminations.get(self.client, out.id))

    async def _transfer(self, record: MigrationRecord, token: str, context: CallContext, action: str) -> Any:
        assert record.previous_region is not None
        body = TransferIn(
            id_number=record.id_number,
            name=record.name,
            from_region=record.previous_region,
            to_region=record.region,
            insurance_types=list(record.insurance_types or INSURANCE_TYPES),
        )
        out = await self._call(
            record, action, lambda: self.services.transfers.create(self.client, body, self.upstreams, context, token)
        )
        if out.status == "rejected":
            reason = out.reason or {}
            raise _Final(ReplayedRow(
                record.row, action, "rejected", reason.get("upstream_code") or "transfer_rejected",
                _clean(reason.get("upstream_message") or "the bureau refused the transfer"),
                out.reference, out.id,
            ))
        if out.status == "submitting":
            raise _Final(ReplayedRow(
                record.row, action, "upstream_unavailable", "not_submitted",
                f"the {record.previous_region} bureau could not be reached to submit the transfer",
                out.reference, out.id,
            ))
        return out

    # -- calling a service ----------------------------------------------------------

    async def _call(self, record: MigrationRecord, action: str, call: Callable[[], Awaitable[T]]) -> T:
        """The service's answer; a transient failure is retried with the same token (the
        service then asks the bureau before resending); a final answer ends the row."""
        attempt = 0
        while True:
            try:
                return await call()
            except ProblemError as problem:
                if problem.code in _TRANSIENT and attempt < self.retries:
                    attempt += 1
                    await self.sleep(self.retry_delay * 2 ** (attempt - 1))
                    continue
                raise _Final(_outcome_of(record.row, action, problem)) from None

    async def _decided(
        self, record: MigrationRecord, action: str, out: Any, reread: Callable[[], Awaitable[Any]]
    ) -> Any:
        """Wait (bounded) for a bureau that decides later; the gateway's poller asks it."""
        waited = 0.0
        while out.status not in _FINAL_STATUSES and waited < self.decision_timeout:
            await self.sleep(self.poll_interval)
            waited += self.poll_interval
            out = await reread()
        if out.status == "accepted":
            return out
        if out.status == "rejected":
            error = out.error or {}
            raise _Final(ReplayedRow(
                record.row, action, "rejected", error.get("upstream_code") or error.get("code"),
                _clean(error.get("upstream_message") or "the bureau refused it"), out.reference, out.id,
            ))
        raise _Final(ReplayedRow(
            record.row, action, "upstream_unavailable", "undecided",
            f"the {record.region} bureau had not decided after {self.decision_timeout:g} s", out.reference, out.id,
        ))


def _person(record: MigrationRecord) -> PersonIn:
    return PersonIn(id_number=record.id_number, name=record.name)


def _employer(record: MigrationRecord) -> EmployerIn:
    return EmployerIn(uscc=record.employer_uscc, name=(record.employer_name or "").strip() or record.employer_uscc)


def _clean(text: str | None) -> str | None:
    """A message fit for the store and reports: ID numbers masked."""
    return mask_id_numbers_in(text) if text else text


def _outcome_of(row: int, action: str, problem: ProblemError) -> ReplayedRow:
    """The row's outcome for a problem the gateway answered with."""
    ext = problem.extensions
    resource_id = next((ext[k] for k in ("enrolment_id", "termination_id", "transfer_id") if ext.get(k)), None)
    if problem.code == "transfer_required":
        conflicts = ext.get("conflicts") or []
        where = ", ".join(sorted({f"{c['region']} ({c['insurance_type']})" for c in conflicts}))
        return ReplayedRow(row, action, "transfer_required", "transfer_required",
                          f"actively insured in {where or 'another region'}: transfer first", resource_id=resource_id)
    if problem.code == "upstream_rejected":
        upstream = ext.get("upstream") or {}
        regions = ext.get("regions") or []
        if not upstream and regions:  # refused by a bureau during the participation search
            first = regions[0]
            upstream = {"code": first.get("upstream_code"), "message": f"{first.get('region')}: "
                        f"{first.get('upstream_message') or 'refused the participation search'}"}
        return ReplayedRow(row, action, "rejected", upstream.get("code") or problem.code,
                          _clean(upstream.get("message") or problem.detail), resource_id=resource_id)
    if problem.code in _TRANSIENT or problem.code == "upstream_error":
        return ReplayedRow(row, action, "upstream_unavailable", problem.code,
                          _clean(problem.title), resource_id=resource_id)
    # The gateway refused the submission before any upstream call (e.g. a hire date it
    # does not accept): final, with the gateway's own code.
    return ReplayedRow(row, action, "rejected", problem.code, _clean(problem.detail or problem.title),
                      resource_id=resource_id)
