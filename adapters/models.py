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
    "ContributionMonth",
    "Employer",
    "EnrolmentReceipt",
    "EnrolmentSubmission",
    "InsuranceType",
    "ParticipationRecord",
    "ParticipationStatus",
    "PaymentStatus",
    "Person",
    "money",
]

InsuranceType = Literal["pension", "medical", "unemployment", "work_injury", "maternity"]
INSURANCE_TYPES: tuple[InsuranceType, ...] = ("pension", "medical", "unemployment", "work_injury", "maternity")

ParticipationStatus = Literal["active", "suspended", "terminated"]

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
