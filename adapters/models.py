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
    "AccountParty",
    "ApprovalReceipt",
    "ApprovalSubmission",
    "Attachment",
    "BankPaymentStatus",
    "BudgetPosition",
    "CarriedInsurance",
    "ContributionMonth",
    "ContributionPaymentNotice",
    "ContributionPaymentReceipt",
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
    "PaymentPurpose",
    "PaymentReceipt",
    "PaymentRejectionReason",
    "PaymentStatus",
    "PaymentSubmission",
    "Person",
    "Statement",
    "StatementEntry",
    "TransferInReceipt",
    "TransferInSubmission",
    "TransferOutProgress",
    "TransferOutSubmission",
    "VoucherLine",
    "VoucherReceipt",
    "VoucherSubmission",
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


# -- contribution payments (缴费到账确认) ---------------------------------------------


class ContributionPaymentNotice(msgspec.Struct, frozen=True):
    """Tell a bureau that an employer paid what declaration ``declaration_reference``
    made due for ``period``; the bureau confirms (marks the months paid) or refuses.

    ``reference`` is the gateway's deterministic reference for this notice;
    ``payment_reference`` is the reference the bank payment carried.
    """

    reference: str
    region: str
    employer: Employer
    period: str  # YYYY-MM
    declaration_reference: str
    amount: Decimal
    paid_on: dt.date
    payment_reference: str


class ContributionPaymentReceipt(msgspec.Struct, frozen=True):
    """The bureau's answer to a payment notice: ``pending`` until it has checked the
    funds, then ``confirmed`` or ``rejected`` (with its reason)."""

    reference: str
    bureau_reference: str | None
    status: Literal["pending", "confirmed", "rejected"]
    confirmed_amount: Decimal | None = None
    reason_code: str | None = None
    reason_message: str | None = None
    confirmed_on: dt.date | None = None


# -- banks -------------------------------------------------------------------------

PaymentPurpose = Literal["reimbursement", "social_security_contribution", "other"]
BankPaymentStatus = Literal["submitted", "accepted", "settled", "rejected"]
#: Why a bank refused a payment, whatever its own code was (the upstream's code and
#: message travel along in ``PaymentReceipt``).
PaymentRejectionReason = Literal[
    "invalid_account",
    "account_closed",
    "account_blocked",
    "creditor_name_mismatch",
    "insufficient_funds",
    "invalid_amount",
    "duplicate_payment",
    "invalid_bank_code",
    "regulatory",
    "cut_off_passed",
    "other",
]


class AccountParty(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One side of a credit transfer: holder name, account number and the bank's code
    (a 12-digit CNAPS code or a BIC). The name and the account number are PII."""

    name: str
    account: str
    bank_code: str


class PaymentSubmission(msgspec.Struct, frozen=True, kw_only=True):
    """One credit transfer in CNY.

    ``reference`` is derived from the gateway's payment id, at most 35 characters
    (it travels as the end-to-end identification), and is sent unchanged on every
    attempt so the bank can be asked whether an ambiguous send landed.
    ``remittance`` is the client's own reference, shown to the creditor.
    """

    reference: str
    debtor: AccountParty
    creditor: AccountParty
    amount: Decimal
    currency: Literal["CNY"] = "CNY"
    purpose: PaymentPurpose
    remittance: str
    requested_on: dt.date


class PaymentReceipt(msgspec.Struct, frozen=True):
    """What the bank says about a payment we initiated.

    ``submitted``: received, not yet checked; ``accepted``: checked and will be
    executed; ``settled``: the funds have moved (final); ``rejected`` (final) with
    ``reason`` mapped to the canonical reasons and the bank's own code and message.
    """

    reference: str
    bank_reference: str | None
    status: BankPaymentStatus
    reason: PaymentRejectionReason | None = None
    upstream_code: str | None = None
    upstream_message: str | None = None
    settled_on: dt.date | None = None


class StatementEntry(msgspec.Struct, frozen=True):
    """One booked movement on an account (a camt.053 ``Ntry``, normalised).

    ``amount`` is positive; ``direction`` says which way it went. ``reference`` is the
    end-to-end reference the payment carried (a gateway payment's ``reference`` for
    payments the gateway made), so entries reconcile against payments.
    """

    entry_reference: str
    booked_on: dt.date
    value_on: dt.date | None
    amount: Decimal
    currency: str
    direction: Literal["credit", "debit"]
    status: Literal["booked", "pending"]
    reference: str | None = None
    counterparty_name: str | None = None
    counterparty_account: str | None = None
    remittance: str | None = None
    bank_transaction_code: str | None = None


class Statement(msgspec.Struct, frozen=True):
    """An account's statement for ``from_date``..``to_date`` (inclusive)."""

    account: str
    currency: str
    from_date: dt.date
    to_date: dt.date
    opening_balance: Decimal | None
    closing_balance: Decimal | None
    entries: tuple[StatementEntry, ...] = ()


# -- ERPs --------------------------------------------------------------------------


class Attachment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A document referred to by its SHA-256 digest (the bytes travel separately)."""

    kind: str
    sha256: str
    name: str | None = None


class BudgetPosition(msgspec.Struct, frozen=True):
    """A cost centre's budget for a period and what is already committed against it."""

    cost_center: str
    period: str  # YYYY-MM
    budget: Decimal
    committed: Decimal
    currency: str = "CNY"


class ApprovalSubmission(msgspec.Struct, frozen=True, kw_only=True):
    """Ask finance to approve spending ``amount`` on ``cost_center`` in ``period``.

    ``kind`` is what the money is for (``social_security_contribution``,
    ``reimbursement``, ``other`` or an ERP-specific expense type the operator uses);
    ``reference`` as for payments.
    """

    reference: str
    kind: str
    amount: Decimal
    cost_center: str
    period: str  # YYYY-MM
    description: str = ""
    attachments: tuple[Attachment, ...] = ()


class ApprovalReceipt(msgspec.Struct, frozen=True):
    """The ERP's state of an approval request: ``pending`` until someone decides."""

    reference: str
    document_number: str | None
    status: Literal["pending", "approved", "rejected"]
    budget: BudgetPosition | None = None
    decided_on: dt.date | None = None
    reason_code: str | None = None
    reason_message: str | None = None


class VoucherLine(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One line of a journal voucher; exactly one of ``debit`` and ``credit`` is non-zero."""

    account: str
    debit: Decimal
    credit: Decimal
    cost_center: str | None = None
    description: str = ""


class VoucherSubmission(msgspec.Struct, frozen=True, kw_only=True):
    """A balanced journal voucher to post; ``reference`` as for payments."""

    reference: str
    date: dt.date
    lines: tuple[VoucherLine, ...]
    description: str = ""
    attachments: tuple[Attachment, ...] = ()


class VoucherReceipt(msgspec.Struct, frozen=True):
    """The ERP's state of a voucher: ``posted`` with its document number, ``pending``
    while its workflow is under way, or ``rejected`` with the ERP's reason."""

    reference: str
    document_number: str | None
    status: Literal["pending", "posted", "rejected"]
    posted_on: dt.date | None = None
    reason_code: str | None = None
    reason_message: str | None = None
