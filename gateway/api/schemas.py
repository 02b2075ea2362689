"""Request and response bodies of the public API (msgspec Structs).

Requests forbid unknown fields so a misspelt field is an error, not silently
ignored. Money is a decimal string, dates ISO 8601.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from adapters import CarriedInsurance, DeclarationChange, Employer, InsuranceType, ParticipationRecord

__all__ = [
    "AdapterOut",
    "Anomaly",
    "AuditEventOut",
    "DeclarationIn",
    "DeclarationLineIn",
    "DeclarationLineOut",
    "DeclarationOut",
    "EmployerIn",
    "EnrolmentIn",
    "EnrolmentOut",
    "MaskedPerson",
    "ParticipationSearchIn",
    "ParticipationSearchOut",
    "PersonIn",
    "RegionOutcome",
    "TerminationIn",
    "TerminationOut",
    "TimelineEntry",
    "TransferIn",
    "TransferOut",
]

IdNumber = Annotated[str, msgspec.Meta(min_length=18, max_length=18, description="18-character resident ID number (PII)")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"\S", description="Full name (PII)")]
RegionCode = Annotated[str, msgspec.Meta(pattern=r"^\d{6}$", description="6-digit administrative division code")]


class PersonIn(msgspec.Struct, forbid_unknown_fields=True):
    id_number: IdNumber
    name: Name


class EmployerIn(msgspec.Struct, forbid_unknown_fields=True):
    uscc: Annotated[str, msgspec.Meta(min_length=18, max_length=18, description="Unified Social Credit Code")]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")]


class ParticipationSearchIn(msgspec.Struct, forbid_unknown_fields=True):
    id_number: IdNumber
    name: Name
    regions: Annotated[list[RegionCode], msgspec.Meta(max_length=50)] | None = None


class RegionOutcome(msgspec.Struct):
    region: str
    upstream: str
    outcome: Literal["ok", "unavailable", "timeout", "rejected"]
    records: int
    latency_ms: float
    error: dict[str, str] | None = None


class MaskedPerson(msgspec.Struct):
    id_number_masked: str


class Anomaly(msgspec.Struct):
    kind: Literal["multiple_active"]
    insurance_type: InsuranceType
    regions: list[str]
    detail: str


class ParticipationSearchOut(msgspec.Struct):
    person: MaskedPerson
    complete: bool
    records: list[ParticipationRecord]
    active_regions: list[str]
    paid_months: dict[str, int]
    anomalies: list[Anomaly]
    regions: list[RegionOutcome]


class EnrolmentIn(msgspec.Struct, forbid_unknown_fields=True):
    employee: PersonIn
    employer: EmployerIn
    region: RegionCode
    hire_date: dt.date
    insurance_types: Annotated[list[InsuranceType], msgspec.Meta(min_length=1, max_length=5)]
    contribution_base: Annotated[Decimal, msgspec.Meta(description="Monthly contribution base, CNY, e.g. \"8000.00\"")]


class EnrolmentOut(msgspec.Struct):
    id: str
    status: Literal["submitting", "accepted", "rejected", "outcome_unknown"]
    region: str
    employee: MaskedPerson
    employer: Employer
    hire_date: dt.date
    insurance_types: list[InsuranceType]
    contribution_base: Decimal
    reference: str
    bureau_reference: str | None
    error: dict[str, str | None] | None
    created_at: dt.datetime
    updated_at: dt.datetime


class AdapterHealthOut(msgspec.Struct):
    circuit: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    last_error: str | None
    last_error_at: dt.datetime | None


class AdapterOut(msgspec.Struct):
    name: str
    kind: Literal["social_security", "bank", "erp"]
    dialect: str
    environment: Literal["sandbox", "live"]
    regions: list[str]
    capabilities: list[str]
    version: str
    health: AdapterHealthOut


class AuditEventOut(msgspec.Struct):
    id: int
    at: dt.datetime
    client_id: str | None
    environment: str | None
    operation: str
    upstream: str
    region: str | None
    gateway_id: str | None
    request_id: str | None
    upstream_status: int | None
    upstream_code: str | None
    outcome: str
    attempts: int
    latency_ms: float


Period = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}$", description="A month, YYYY-MM", examples=["2024-08"])]
Amount = Annotated[Decimal, msgspec.Meta(description="CNY, a decimal string with at most two places, e.g. \"8000.00\"")]
InsuranceTypes = Annotated[list[InsuranceType], msgspec.Meta(min_length=1, max_length=5)]


# -- declarations -------------------------------------------------------------------


class DeclarationLineIn(msgspec.Struct, forbid_unknown_fields=True):
    id_number: IdNumber
    name: Name
    change: Annotated[
        DeclarationChange,
        msgspec.Meta(description="new (增员), leave (减员), change (基数调整) or continue (续缴)"),
    ]
    salary: Amount | None = None
    hire_date: dt.date | None = None
    leave_date: dt.date | None = None


class DeclarationIn(msgspec.Struct, forbid_unknown_fields=True):
    employer: EmployerIn
    region: RegionCode
    period: Period
    lines: Annotated[list[DeclarationLineIn], msgspec.Meta(min_length=1, max_length=1000)]
    all_or_nothing: Annotated[
        bool, msgspec.Meta(description="Send nothing if any line is invalid (default: send the valid lines)")
    ] = False


class LineProblem(msgspec.Struct):
    code: str
    detail: str
    field: str | None = None


class SideAmounts(msgspec.Struct):
    employer: Decimal
    employee: Decimal


class DeclarationLineOut(msgspec.Struct):
    line: int
    person: MaskedPerson
    change: DeclarationChange
    status: Literal["invalid", "not_sent", "pending", "accepted", "rejected"]
    salary: Decimal | None
    contribution_base: Decimal | None
    base_clamped: Literal["floor", "ceiling"] | None
    hire_date: dt.date | None
    leave_date: dt.date | None
    contributions: dict[str, SideAmounts] | None
    totals: SideAmounts | None
    errors: list[LineProblem]
    warnings: list[LineProblem]
    upstream: dict[str, str | None] | None


class DeclarationTotals(msgspec.Struct):
    lines: int
    by_status: dict[str, int]
    declared: SideAmounts
    accepted: SideAmounts


class DeclarationOut(msgspec.Struct):
    id: str
    status: Literal["submitting", "pending", "accepted", "partially_accepted", "rejected"]
    region: str
    employer: Employer
    period: str
    policy_version: int
    all_or_nothing: bool
    reference: str
    bureau_reference: str | None
    totals: DeclarationTotals
    lines: list[DeclarationLineOut]
    error: dict[str, str | None] | None
    created_at: dt.datetime
    updated_at: dt.datetime


# -- transfers ----------------------------------------------------------------------


class TransferIn(msgspec.Struct, forbid_unknown_fields=True):
    id_number: IdNumber
    name: Name
    from_region: RegionCode
    to_region: RegionCode
    insurance_types: InsuranceTypes


class TimelineEntry(msgspec.Struct):
    stage: str
    at: dt.datetime
    detail: dict[str, object] | None = None


class TransferOut(msgspec.Struct):
    id: str
    status: Literal["submitting", "submitted", "source_reviewed", "funds_transferred", "completed", "rejected"]
    person: MaskedPerson
    from_region: str
    to_region: str
    insurance_types: list[InsuranceType]
    reference: str
    bureau_reference: str | None
    target_bureau_reference: str | None
    carried: list[CarriedInsurance]
    reason: dict[str, str | None] | None
    timeline: list[TimelineEntry]
    application: str
    created_at: dt.datetime
    updated_at: dt.datetime


# -- terminations -------------------------------------------------------------------


class TerminationIn(msgspec.Struct, forbid_unknown_fields=True):
    employee: PersonIn
    employer: EmployerIn
    region: RegionCode
    leave_date: Annotated[dt.date, msgspec.Meta(description="The last day employed; contributions stop from here")]
    insurance_types: InsuranceTypes | None = None
    reason: Annotated[str, msgspec.Meta(max_length=40, pattern=r"^[a-z_]+$")] | None = None


class TerminationOut(msgspec.Struct):
    id: str
    status: Literal["submitting", "pending", "accepted", "rejected"]
    region: str
    employee: MaskedPerson
    employer: Employer
    leave_date: dt.date
    insurance_types: list[InsuranceType]
    reason: str | None
    reference: str
    bureau_reference: str | None
    error: dict[str, str | None] | None
    created_at: dt.datetime
    updated_at: dt.datetime
