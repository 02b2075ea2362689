"""Canonical models: the only language spoken between the gateway and adapters.

Money is ``Decimal`` (encoded as a decimal string with two places, CNY), dates are
``datetime.date`` (ISO 8601 on the wire), periods are ``YYYY-MM`` strings and regions
six-digit administrative division codes. No upstream's formats appear here.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

import msgspec

__all__ = [
    "INSURANCE_TYPES",
    "CarriedInsurance",
    "ContributionMonth",
    "DeclarationChange",
    "DeclarationLine",
    "DeclarationLineResult",
    "DeclarationReceipt",
    "DeclarationSubmission",
    "Employer",
    "EnrolmentReceipt",
    "EnrolmentSubmission",
    "InsuranceType",
    "ParticipationRecord",
    "ParticipationStatus",
    "PaymentStatus",
    "Person",
    "TransferInReceipt",
    "TransferInSubmission",
    "TransferOutProgress",
    "TransferOutSubmission",
    "money",
]

InsuranceType = Literal["pension", "medical", "unemployment", "work_injury", "maternity"]
INSURANCE_TYPES: tuple[InsuranceType, ...] = ("pension", "medical", "unemployment", "work_injury", "maternity")

# ``transferred``: the relationship moved to another region (转出); its months are
# counted there, so totals across regions skip such records.
ParticipationStatus = Literal["active", "suspended", "terminated", "transferred"]

_CENT = Decimal("0.01")


def money(value: Decimal | int | str) -> Decimal:
    """A CNY amount with exactly two places (the canonical form of money)."""
    return Decimal(value).quantize(_CENT)


class Person(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A natural person as the bureaus know them. Both fields are PII."""

    id_number: str
    name: str


class Employer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An employing unit, identified by its Unified Social Credit Code."""

    uscc: str
    name: str


class ParticipationRecord(msgspec.Struct, frozen=True):
    """One insurance type of one person in one region."""

    region: str
    insurance_type: InsuranceType
    status: ParticipationStatus
    employer: Employer | None
    start_date: dt.date | None
    end_date: dt.date | None
    paid_months: int
    contribution_base: Decimal | None
    last_paid_period: str | None


PaymentStatus = Literal["paid", "late", "unpaid"]


class ContributionMonth(msgspec.Struct, frozen=True):
    """What a bureau holds about one month of one insurance type of one person."""

    region: str
    period: str  # YYYY-MM
    insurance_type: InsuranceType
    status: PaymentStatus
    employer_amount: Decimal | None
    personal_amount: Decimal | None
    paid_on: dt.date | None


class EnrolmentSubmission(msgspec.Struct, frozen=True):
    """Enrol one person with one employer in one region.

    ``reference`` is derived from the gateway's id for the enrolment and is sent
    upstream unchanged, so the upstream can recognise a repeated submission and the
    adapter can ask whether an ambiguous one landed.
    """

    reference: str
    region: str
    person: Person
    employer: Employer
    hire_date: dt.date
    insurance_types: tuple[InsuranceType, ...]
    contribution_base: Decimal


class EnrolmentReceipt(msgspec.Struct, frozen=True):
    """What a bureau said about an enrolment it accepted."""

    reference: str
    bureau_reference: str
    status: Literal["accepted", "pending"]
    accepted_on: dt.date | None = None


# -- declarations (monthly 申报: 增员 / 减员 / 基数调整 / 续缴) --------------------------

DeclarationChange = Literal["new", "leave", "change", "continue"]


class DeclarationLine(msgspec.Struct, frozen=True):
    """One person's line in a monthly declaration.

    ``line`` is the 1-based position in the client's request, so per-line outcomes
    can be reported against what the client sent. ``contribution_base`` is the base
    already clamped to the region's policy (``None`` for ``leave``).
    """

    line: int
    person: Person
    change: DeclarationChange
    insurance_types: tuple[InsuranceType, ...]
    contribution_base: Decimal | None
    hire_date: dt.date | None = None
    leave_date: dt.date | None = None


class DeclarationSubmission(msgspec.Struct, frozen=True):
    """A monthly declaration of one employer in one region; ``reference`` as for enrolments."""

    reference: str
    region: str
    employer: Employer
    period: str  # YYYY-MM
    lines: tuple[DeclarationLine, ...]


class DeclarationLineResult(msgspec.Struct, frozen=True):
    """The bureau's decision on one line (``line`` as submitted)."""

    line: int
    status: Literal["accepted", "rejected"]
    upstream_code: str | None = None
    upstream_message: str | None = None


class DeclarationReceipt(msgspec.Struct, frozen=True):
    """What a bureau says about a declaration: ``pending`` until it has decided every
    line; then ``accepted`` (all lines), ``rejected`` (none) or ``partially_accepted``."""

    reference: str
    bureau_reference: str | None
    status: Literal["pending", "accepted", "partially_accepted", "rejected"]
    lines: tuple[DeclarationLineResult, ...] = ()
    decided_on: dt.date | None = None


# -- transfers of the insurance relationship (转移接续) ------------------------------


class TransferOutSubmission(msgspec.Struct, frozen=True):
    """Ask the *source* bureau to transfer ``insurance_types`` of ``person`` out of
    ``region`` to ``to_region`` (the transfer application)."""

    reference: str
    region: str
    to_region: str
    person: Person
    insurance_types: tuple[InsuranceType, ...]


class CarriedInsurance(msgspec.Struct, frozen=True):
    """What moves with one insurance type: months paid, since when, and the funds."""

    insurance_type: InsuranceType
    paid_months: int
    start_date: dt.date | None
    fund_amount: Decimal


class TransferOutProgress(msgspec.Struct, frozen=True):
    """The source bureau's state of a transfer out.

    ``submitted`` → ``source_reviewed`` → ``funds_transferred`` (final at the source,
    with ``carried`` filled in) or ``rejected`` (with the bureau's reason).
    """

    reference: str
    bureau_reference: str | None
    stage: Literal["submitted", "source_reviewed", "funds_transferred", "rejected"]
    carried: tuple[CarriedInsurance, ...] = ()
    reason_code: str | None = None
    reason_message: str | None = None
    updated_on: dt.date | None = None


class TransferInSubmission(msgspec.Struct, frozen=True):
    """Register at the *target* bureau what a source bureau transferred out."""

    reference: str
    region: str
    from_region: str
    source_reference: str  # the source bureau's reference for the transfer out
    person: Person
    carried: tuple[CarriedInsurance, ...]


class TransferInReceipt(msgspec.Struct, frozen=True):
    """The target bureau's decision on a transfer in."""

    reference: str
    bureau_reference: str | None
    status: Literal["pending", "accepted", "rejected"]
    reason_code: str | None = None
    reason_message: str | None = None
