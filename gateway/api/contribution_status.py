"""Contribution status checks: before a hospitalisation claim is paid, were the last
months' contributions paid on time in every region?

A query (no upstream effect, no Idempotency-Key); a POST only because the ID number
is PII and must never be in a URL.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Literal

import msgspec
from litestar import Controller, post

from adapters import InsuranceType, Person

from ..encryption import mask_id_number
from ..errors import ProblemError
from ..policy import china_today
from ..services.contribution_status import Decision, check_contribution_status, month_of
from ..validation import check_id_number
from .dependencies import ApiCall
from .schemas import IdNumber, MaskedPerson, Name, RegionOutcome

__all__ = [
    "ContributionStatusCheckIn",
    "ContributionStatusCheckOut",
    "ContributionStatusController",
]

_PERIOD = re.compile(r"(20[0-9]{2}|2100)-(0[1-9]|1[0-2])")


class ContributionStatusCheckIn(msgspec.Struct, forbid_unknown_fields=True):
    id_number: IdNumber
    name: Annotated[
        Name | None,
        msgspec.Meta(description="Full name as the bureaus know it (PII); optional: without it the ID number alone is asked"),
    ] = None
    months: Annotated[int, msgspec.Meta(ge=1, le=12, description="How many months to check, 1-12")] = 3
    until: Annotated[
        str | None,
        msgspec.Meta(description=(
            "The last month to check, YYYY-MM (not after the current month in China); default: the latest month "
            "any bureau has on record for the person within the last 36 complete months"
        )),
    ] = None


class ContributionStatusEntryOut(msgspec.Struct):
    insurance_type: InsuranceType
    status: Literal["paid", "late", "unpaid"]
    region: str | None
    employer_amount: Decimal | None
    personal_amount: Decimal | None
    paid_on: dt.date | None


class ContributionStatusMonthOut(msgspec.Struct):
    period: str
    contributions: list[ContributionStatusEntryOut]


class ContributionStatusReasonOut(msgspec.Struct):
    code: Literal["late", "unpaid", "no_contributions", "status_unknown"]
    period: str | None
    insurance_type: InsuranceType | None
    region: str | None
    message: str


class ContributionStatusWindowOut(msgspec.Struct):
    from_: str = msgspec.field(name="from")
    to: str


class ContributionStatusCheckOut(msgspec.Struct):
    person: MaskedPerson
    window: ContributionStatusWindowOut | None
    months: list[ContributionStatusMonthOut]
    eligible_for_reimbursement: bool
    reasons: list[ContributionStatusReasonOut]
    complete: bool
    regions: list[RegionOutcome]


def _check_until(value: str, today: dt.date) -> str:
    current = month_of(today)
    if not _PERIOD.fullmatch(value) or value > current:
        raise ProblemError(
            "invalid_period",
            f"until: a month as YYYY-MM from 2000-01 up to the current month ({current}), e.g. \"2024-10\"",
            field="until",
        )
    return value


def _months_out(decision: Decision) -> list[ContributionStatusMonthOut]:
    if decision.window is None:
        return []
    by_period: dict[str, list[ContributionStatusEntryOut]] = {p: [] for p in decision.window.periods}
    for m in decision.months:
        by_period[m.period].append(
            ContributionStatusEntryOut(m.insurance_type, m.status, m.region, m.employer_amount, m.personal_amount, m.paid_on)
        )
    return [ContributionStatusMonthOut(period, contributions) for period, contributions in by_period.items()]


class ContributionStatusController(Controller):
    path = "/v1/social-security"
    tags = ["social security"]

    @post(
        "/contribution-status-checks",
        opt={"scope": "social_security:read"},
        status_code=200,
        summary="Check that a person's recent contributions were paid on time in every region",
    )
    async def check(self, data: ContributionStatusCheckIn, call: ApiCall) -> ContributionStatusCheckOut:
        """Asks every region whose bureau keeps contribution history at once. Per month and insurance type the
        status is `paid`, `late` or `unpaid`; the person is eligible for reimbursement only if every region
        answered and every month of every insurance type on record in the window is `paid`. A region that fails
        is reported in `regions` and makes the answer incomplete (`status_unknown`); it never fails the check."""
        id_number = check_id_number(data.id_number, "id_number")
        today = china_today()
        until = _check_until(data.until, today) if data.until is not None else None
        decision, fetched = await check_contribution_status(
            call.upstreams, Person(id_number, (data.name or "").strip()), data.months, until, call.context,
            today=today, deadline=call.gateway.settings.search_deadline,
        )
        window = decision.window
        return ContributionStatusCheckOut(
            person=MaskedPerson(mask_id_number(id_number)),
            window=ContributionStatusWindowOut(window.first, window.last) if window is not None else None,
            months=_months_out(decision),
            eligible_for_reimbursement=decision.eligible,
            reasons=[
                ContributionStatusReasonOut(r.code, r.period, r.insurance_type, r.region, r.message)
                for r in decision.reasons
            ],
            complete=decision.complete,
            regions=[
                RegionOutcome(r.region, r.upstream, r.outcome, len(r.months), round(r.latency_ms, 1), r.error)
                for r in fetched.regions
            ],
        )
