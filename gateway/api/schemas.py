"""Request and response bodies of the public API (msgspec Structs).

Requests forbid unknown fields so a misspelt field is an error, not silently
ignored. Money is a decimal string, dates ISO 8601.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from adapters import Employer, InsuranceType, ParticipationRecord

__all__ = [
    "AdapterOut",
    "Anomaly",
    "AuditEventOut",
    "EmployerIn",
    "EnrolmentIn",
    "EnrolmentOut",
    "MaskedPerson",
    "ParticipationSearchIn",
    "ParticipationSearchOut",
    "PersonIn",
    "RegionOutcome",
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
