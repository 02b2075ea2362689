"""Replay of one row: what a record implies, the tokens it is sent under, and how
the gateway's answers become row outcomes (with fake services, no network)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import msgspec

from gateway.errors import ProblemError
from sandbox.records import MigrationRecord
from sandbox.replay import Replayer, plan, replay_token

WANG_FANG = "440104199003120213"


def record(**changes: Any) -> MigrationRecord:
    values: dict[str, Any] = dict(
        row=7, id_number=WANG_FANG, name="Wang Fang", gender="female", birth_date=dt.date(1990, 3, 12),
        employer_uscc="91430100MA4L16JQ9D", employer_name="Changsha Example Co.", region="430100",
        hire_date=dt.date(2024, 3, 1), leave_date=None, employment_status="active", contributing=True,
        insurance_types=("pension", "medical"), contribution_base=Decimal("8000"), period="2024-06",
        previous_region=None,
    )
    values.update(changes)
    return MigrationRecord(**values)


def out(status: str, **extra: Any) -> SimpleNamespace:
    return SimpleNamespace(id=extra.pop("id", "res_1"), status=status, reference=extra.pop("reference", "HGW-1"),
                           error=extra.pop("error", None), reason=extra.pop("reason", None), **extra)


class Service:
    """Answers each call with the next scripted answer (an object, or a ProblemError to raise)."""

    def __init__(self, *answers: Any, reads: tuple[Any, ...] = ()) -> None:
        self.answers = list(answers)
        self.reads = list(reads)
        self.calls: list[tuple[Any, str | None]] = []

    async def _answer(self, body: Any, token: str | None) -> Any:
        self.calls.append((body, token))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def enrol(self, client: Any, body: Any, upstreams: Any, context: Any, token: str | None) -> Any:
        return await self._answer(body, token)

    async def create(self, client: Any, body: Any, upstreams: Any, context: Any, token: str | None) -> Any:
        return await self._answer(body, token)

    async def get(self, client: Any, resource_id: str) -> Any:
        return self.reads.pop(0)


def replayer(enrolments: Service | None = None, terminations: Service | None = None,
             transfers: Service | None = None, **kw: Any) -> Replayer:
    services = SimpleNamespace(enrolments=enrolments, terminations=terminations, transfers=transfers)

    async def no_sleep(_: float) -> None:
        return None

    return Replayer(services, SimpleNamespace(id="cli_1"), SimpleNamespace(), "mig_run", sleep=no_sleep,  # type: ignore[arg-type]
                    **kw)


def test_what_a_record_implies() -> None:
    assert plan(record()) == ("enrolment",)
    assert plan(record(previous_region="440100")) == ("transfer",)
    assert plan(record(previous_region="430100")) == ("enrolment",)  # the same region: nothing to transfer
    assert plan(record(employment_status="departed", contributing=False, leave_date=dt.date(2024, 5, 31))) == (
        "enrolment", "termination")
    assert plan(record(contributing=False)) == ()


def test_tokens_are_deterministic_per_run_row_and_step() -> None:
    token = replay_token("mig_a", 7, "enrolment")
    assert token == replay_token("mig_a", 7, "enrolment") and len(token) <= 40
    assert len({token, replay_token("mig_b", 7, "enrolment"), replay_token("mig_a", 8, "enrolment"),
                replay_token("mig_a", 7, "termination")}) == 4


async def test_an_accepted_enrolment_and_its_submission() -> None:
    enrolments = Service(out("accepted", id="enr_1", reference="HGW-ENR1"))
    result = await replayer(enrolments).replay(record())
    assert (result.row, result.action, result.outcome, result.reference, result.resource_id) == (
        7, "enrolment", "accepted", "HGW-ENR1", "enr_1")
    [(body, token)] = enrolments.calls
    assert token == replay_token("mig_run", 7, "enrolment")
    assert body.region == "430100" and body.insurance_types == ["pension", "medical"]
    assert body.contribution_base == Decimal("8000") and body.employee.id_number == WANG_FANG


async def test_transfer_required_names_regions_not_the_person() -> None:
    conflict = ProblemError("transfer_required", f"{WANG_FANG[:4]}********** is insured in 440100", conflicts=[
        {"region": "440100", "insurance_type": "pension"}, {"region": "440100", "insurance_type": "medical"}])
    result = await replayer(Service(conflict)).replay(record())
    assert result.outcome == "transfer_required" and result.code == "transfer_required"
    assert result.message == "actively insured in 440100 (medical), 440100 (pension): transfer first"


async def test_a_bureau_refusal_keeps_its_code_and_message_masked() -> None:
    refusal = ProblemError("upstream_rejected", "refused", upstream={
        "code": "61001", "message": f"name does not match {WANG_FANG}"}, enrolment_id="enr_9")
    result = await replayer(Service(refusal)).replay(record())
    assert (result.outcome, result.code, result.resource_id) == ("rejected", "61001", "enr_9")
    assert WANG_FANG not in result.message and "4401**********0213" in result.message


async def test_transient_failures_are_retried_under_the_same_token_then_unavailable() -> None:
    busy = ProblemError("upstream_unavailable", "503")
    enrolments = Service(busy, busy, out("accepted"))
    assert (await replayer(enrolments).replay(record())).outcome == "accepted"
    assert len({token for _, token in enrolments.calls}) == 1 and len(enrolments.calls) == 3

    enrolments = Service(busy, ProblemError("outcome_unknown"), busy)
    result = await replayer(enrolments, retries=2).replay(record())
    assert (result.outcome, result.code) == ("upstream_unavailable", "upstream_unavailable")
    assert len(enrolments.calls) == 3


async def test_a_gateway_refusal_is_final_and_a_crash_is_not_taken_for_an_answer() -> None:
    result = await replayer(Service(ProblemError("invalid_date", "hire_date: before 1990"))).replay(record())
    assert (result.outcome, result.code, result.message) == ("rejected", "invalid_date", "hire_date: before 1990")
    result = await replayer(Service(RuntimeError("bug"))).replay(record())
    assert (result.outcome, result.code) == ("not_replayed", "internal_error")


async def test_a_departure_is_enrolled_then_terminated_and_waits_for_the_decision() -> None:
    enrolments = Service(out("accepted", id="enr_1"))
    terminations = Service(out("pending", id="ter_1", reference="HGW-TER1"),
                           reads=(out("pending", id="ter_1"), out("accepted", id="ter_1", reference="HGW-TER1")))
    departed = record(employment_status="departed", contributing=False, leave_date=dt.date(2024, 5, 31))
    result = await replayer(enrolments, terminations).replay(departed)
    assert (result.action, result.outcome, result.reference) == ("enrolment+termination", "accepted", "HGW-TER1")
    assert terminations.calls[0][1] == replay_token("mig_run", 7, "termination")
    assert terminations.calls[0][0].leave_date == dt.date(2024, 5, 31)

    # A bureau that never decides: unavailable, with the resource kept for a later look.
    terminations = Service(out("pending", id="ter_2"), reads=tuple(out("pending", id="ter_2") for _ in range(100)))
    result = await replayer(Service(out("accepted")), terminations, decision_timeout=1.0).replay(departed)
    assert (result.outcome, result.code, result.resource_id) == ("upstream_unavailable", "undecided", "ter_2")


async def test_rows_that_imply_nothing_sendable_are_not_replayed() -> None:
    assert (await replayer().replay(record(contributing=False))).code == "nothing_to_submit"
    assert (await replayer().replay(record(contribution_base=None))).code == "no_contribution_base"
    departed = record(employment_status="departed", contributing=False, leave_date=None)
    assert (await replayer().replay(departed)).code == "no_leave_date"


async def test_a_transfer_is_accepted_once_the_source_took_it() -> None:
    transfers = Service(out("submitted", id="trf_1", reference="HGW-TRF1"))
    result = await replayer(transfers=transfers).replay(record(previous_region="440100"))
    assert (result.action, result.outcome, result.resource_id) == ("transfer", "accepted", "trf_1")
    body = transfers.calls[0][0]
    assert (body.from_region, body.to_region) == ("440100", "430100")
    refused = Service(out("rejected", reason={"upstream_code": "2301", "upstream_message": "no active pension"}))
    result = await replayer(transfers=refused).replay(record(previous_region="440100"))
    assert (result.outcome, result.code, result.message) == ("rejected", "2301", "no active pension")
    assert msgspec.json.encode(result.message)
