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


# -- payments and accounts ----------------------------------------------------------

UpstreamName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=100, description="An adapter instance name, as listed by GET /v1/adapters")
]
AccountNumber = Annotated[
    str, msgspec.Meta(min_length=1, max_length=40, description="A bank account or card number, or an IBAN (PII)")
]
BankCode = Annotated[str, msgspec.Meta(min_length=1, max_length=11, description="A 12-digit CNAPS code or a BIC")]
PaymentPurpose = Literal["reimbursement", "social_security_contribution", "other"]


class AccountPartyIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    account: AccountNumber
    bank_code: Annotated[str, msgspec.Meta(min_length=1, max_length=12, description="A 12-digit CNAPS code or a BIC")]


class PaymentIn(msgspec.Struct, forbid_unknown_fields=True):
    bank: UpstreamName
    debtor_account: AccountNumber
    creditor: AccountPartyIn
    amount: Amount
    currency: Annotated[str, msgspec.Meta(min_length=1, max_length=3, description="Only CNY")]
    purpose: PaymentPurpose
    reference: Annotated[str, msgspec.Meta(min_length=1, max_length=140, description="Shown to the creditor")]


class MaskedAccountParty(msgspec.Struct):
    name_masked: str
    account_masked: str
    bank_code: str


class PaymentRejection(msgspec.Struct):
    reason: str
    upstream_code: str | None
    upstream_message: str | None


class PaymentOut(msgspec.Struct):
    id: str
    status: Literal["pending", "submitted", "accepted", "settled", "rejected"]
    bank: str
    debtor: MaskedAccountParty
    creditor: MaskedAccountParty
    amount: Decimal
    currency: str
    purpose: PaymentPurpose
    reference: str
    upstream_reference: str
    bank_reference: str | None
    rejection: PaymentRejection | None
    settled_on: dt.date | None
    origin: dict[str, str] | None
    timeline: list[TimelineEntry]
    created_at: dt.datetime
    updated_at: dt.datetime


class AccountOut(msgspec.Struct):
    id: str
    bank: str
    name: str
    account_masked: str
    bank_code: str
    currency: str
    statements: bool


class StatementEntryOut(msgspec.Struct):
    entry_reference: str
    booked_on: dt.date
    value_on: dt.date | None
    amount: Decimal
    currency: str
    direction: Literal["credit", "debit"]
    status: Literal["booked", "pending"]
    reference: str | None
    payment_id: str | None
    counterparty_name_masked: str | None
    counterparty_account_masked: str | None
    remittance: str | None
    bank_transaction_code: str | None


class StatementOut(msgspec.Struct):
    account_id: str
    bank: str
    currency: str
    from_date: dt.date
    to_date: dt.date
    opening_balance: Decimal | None
    closing_balance: Decimal | None
    entries: list[StatementEntryOut]
    reconciled: int
    unreconciled: int


# -- ERP ------------------------------------------------------------------------------

CostCenter = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.\-]+$")]


class AttachmentIn(msgspec.Struct, forbid_unknown_fields=True):
    kind: Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[a-z_]+$")]
    sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the document")]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None


class ApprovalIn(msgspec.Struct, forbid_unknown_fields=True):
    erp: UpstreamName
    kind: Annotated[str, msgspec.Meta(min_length=1, max_length=60, pattern=r"^[a-z_]+$")]
    amount: Amount
    cost_center: CostCenter
    period: Period
    reference: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    description: Annotated[str, msgspec.Meta(max_length=500)] = ""
    attachments: Annotated[list[AttachmentIn], msgspec.Meta(max_length=20)] = []


class BudgetComparison(msgspec.Struct):
    budget: Decimal
    committed: Decimal
    requested: Decimal
    remaining: Decimal


class ApprovalOut(msgspec.Struct):
    id: str
    status: Literal["submitting", "pending", "approved", "rejected"]
    erp: str
    kind: str
    amount: Decimal
    cost_center: str
    period: str
    reference: str
    upstream_reference: str
    document_number: str | None
    budget: BudgetComparison | None
    decided_on: dt.date | None
    rejection: dict[str, str | None] | None
    attachments: list[AttachmentIn]
    origin: dict[str, str] | None
    timeline: list[TimelineEntry]
    created_at: dt.datetime
    updated_at: dt.datetime


class VoucherLineIn(msgspec.Struct, forbid_unknown_fields=True):
    account: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    debit: Amount = Decimal("0")
    credit: Amount = Decimal("0")
    cost_center: CostCenter | None = None
    description: Annotated[str, msgspec.Meta(max_length=200)] = ""


class VoucherIn(msgspec.Struct, forbid_unknown_fields=True):
    erp: UpstreamName
    date: dt.date
    lines: Annotated[list[VoucherLineIn], msgspec.Meta(min_length=2, max_length=500)]
    reference: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    description: Annotated[str, msgspec.Meta(max_length=500)] = ""
    attachments: Annotated[list[AttachmentIn], msgspec.Meta(max_length=20)] = []


class VoucherOut(msgspec.Struct):
    id: str
    status: Literal["submitting", "pending", "posted", "rejected"]
    erp: str
    date: dt.date
    lines: list[VoucherLineIn]
    total: Decimal
    reference: str
    upstream_reference: str
    document_number: str | None
    posted_on: dt.date | None
    rejection: dict[str, str | None] | None
    attachments: list[AttachmentIn]
    origin: dict[str, str] | None
    created_at: dt.datetime
    updated_at: dt.datetime


class BudgetOut(msgspec.Struct):
    erp: str
    cost_center: str
    period: str
    currency: str
    budget: Decimal
    committed: Decimal
    remaining: Decimal


# -- contribution runs and reimbursements ---------------------------------------------


class ContributionRunIn(msgspec.Struct, forbid_unknown_fields=True):
    employer: EmployerIn
    region: RegionCode
    period: Period
    lines: Annotated[list[DeclarationLineIn], msgspec.Meta(min_length=1, max_length=1000)]
    erp: UpstreamName
    bank: UpstreamName
    debtor_account: AccountNumber
    payment_deadline: Annotated[
        dt.datetime, msgspec.Meta(description="When the bureau must have the money (ISO 8601 with offset)")
    ]
    cost_center: CostCenter | None = None


class RunStepOut(msgspec.Struct):
    step: Literal["declaration", "approval", "payment", "confirmation", "voucher"]
    status: Literal["pending", "in_progress", "completed", "failed"]
    resource: dict[str, str] | None
    started_at: dt.datetime | None
    completed_at: dt.datetime | None
    detail: dict[str, object] | None


class DeadlineOut(msgspec.Struct):
    at: dt.datetime
    seconds_remaining: int
    overdue: bool


class ContributionRunOut(msgspec.Struct):
    id: str
    status: Literal["running", "completed", "failed"]
    employer: Employer
    region: str
    period: str
    erp: str
    bank: str
    cost_center: str
    amount: Decimal | None
    current_step: str | None
    steps: list[RunStepOut]
    deadline: DeadlineOut
    escalation_level: int
    failure: dict[str, object] | None
    created_at: dt.datetime
    updated_at: dt.datetime


class ReimbursementIn(msgspec.Struct, forbid_unknown_fields=True):
    employee: PersonIn
    amount: Amount
    payout_account: AccountPartyIn
    documents: Annotated[list[AttachmentIn], msgspec.Meta(min_length=1, max_length=50)]
    bank: UpstreamName | None = None
    debtor_account: AccountNumber | None = None
    until: Annotated[
        Period | None, msgspec.Meta(description="The last month of the 3-month check (default: the latest on record)")
    ] = None


class BlockedMonth(msgspec.Struct):
    period: str
    insurance_type: str
    status: str
    reason: str


class ReimbursementOut(msgspec.Struct):
    id: str
    status: Literal["checking", "blocked", "paying", "paid", "rejected"]
    employee: MaskedPerson
    amount: Decimal
    payout_account: MaskedAccountParty
    documents: list[AttachmentIn]
    bank: str
    check: dict[str, object] | None
    blocked: list[BlockedMonth]
    payment_id: str | None
    rejection: dict[str, str | None] | None
    timeline: list[TimelineEntry]
    created_at: dt.datetime
    updated_at: dt.datetime
