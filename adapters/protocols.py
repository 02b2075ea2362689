"""What an adapter is: one protocol per domain, with declared capabilities.

A vendor implements one of these protocols in one class (usually by subclassing
``adapters.base.HttpAdapter``) and registers it under the entry-point group
``hr_gateway.adapters``. The gateway only ever talks to these protocols.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import msgspec

from .context import CallContext
from .http import CallObserver, UpstreamPolicy
from .models import (
    ApprovalReceipt,
    ApprovalSubmission,
    BudgetPosition,
    ContributionMonth,
    ContributionPaymentNotice,
    ContributionPaymentReceipt,
    DeclarationReceipt,
    DeclarationSubmission,
    EnrolmentReceipt,
    EnrolmentSubmission,
    ParticipationRecord,
    PaymentReceipt,
    PaymentSubmission,
    Person,
    Statement,
    TransferInReceipt,
    TransferInSubmission,
    TransferOutProgress,
    TransferOutSubmission,
    VoucherReceipt,
    VoucherSubmission,
)

__all__ = [
    "Adapter",
    "AdapterConfig",
    "AdapterHealth",
    "AdapterKind",
    "BankAdapter",
    "BureauAdapter",
    "Capability",
    "ContributionHistory",
    "ContributionPayments",
    "Declarations",
    "ErpAdapter",
    "Statements",
    "TransfersIn",
    "TransfersOut",
]

AdapterKind = Literal["social_security", "bank", "erp"]


class Capability(enum.StrEnum):
    """Operations an adapter may declare; the gateway routes only what is declared."""

    # social_security
    PARTICIPATION_SEARCH = "participation_search"
    ENROLMENT = "enrolment"
    ENROLMENT_LOOKUP = "enrolment_lookup"
    CONTRIBUTION_HISTORY = "contribution_history"
    DECLARATION = "declaration"
    TRANSFER_OUT = "transfer_out"
    TRANSFER_IN = "transfer_in"
    CONTRIBUTION_PAYMENT = "contribution_payment"
    # bank
    PAYMENT_INITIATION = "payment_initiation"
    PAYMENT_STATUS = "payment_status"
    STATEMENTS = "statements"
    # erp
    APPROVAL = "approval"
    VOUCHER = "voucher"
    BUDGET_QUERY = "budget_query"


class AdapterConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How one adapter instance is set up (from the gateway's configuration)."""

    name: str
    base_url: str
    regions: tuple[str, ...] = ()
    credentials: dict[str, str] = msgspec.field(default_factory=dict)
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    environment: Literal["sandbox", "live"] = "live"


class AdapterHealth(msgspec.Struct, frozen=True):
    circuit: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    last_error: str | None
    last_error_at: float | None


@runtime_checkable
class Adapter(Protocol):
    """Common to every adapter, whatever its domain."""

    kind: ClassVar[AdapterKind]
    dialect: ClassVar[str]
    version: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]
    policy: ClassVar[UpstreamPolicy]

    config: AdapterConfig

    @classmethod
    def from_config(cls, config: AdapterConfig, *, observer: CallObserver | None = None) -> Adapter: ...

    @property
    def name(self) -> str: ...

    def health(self) -> AdapterHealth: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class BureauAdapter(Adapter, Protocol):
    """A social-insurance bureau serving one or more regions."""

    async def search_participation(self, person: Person, *, context: CallContext) -> list[ParticipationRecord]:
        """All records the bureau holds for ``person`` (an empty list if none)."""
        ...

    async def submit_enrolment(self, submission: EnrolmentSubmission, *, context: CallContext) -> EnrolmentReceipt:
        """Enrol; safe to call again with the same ``submission.reference``."""
        ...

    async def find_enrolment(self, reference: str, *, context: CallContext) -> EnrolmentReceipt | None:
        """The bureau's record of an enrolment we submitted, or ``None`` if it never landed."""
        ...


@runtime_checkable
class ContributionHistory(Protocol):
    """Optional for bureaus (``Capability.CONTRIBUTION_HISTORY``): monthly payment records."""

    async def contribution_history(
        self, person: Person, from_period: str, to_period: str, *, context: CallContext
    ) -> list[ContributionMonth]:
        """Months ``from_period``..``to_period`` (``YYYY-MM``, inclusive) the bureau holds."""
        ...


@runtime_checkable
class Declarations(Protocol):
    """Optional for bureaus (``Capability.DECLARATION``): monthly declarations.

    A bureau may decide at once or later; ``pending`` receipts are polled with
    ``find_declaration`` until decided.
    """

    async def submit_declaration(self, submission: DeclarationSubmission, *, context: CallContext) -> DeclarationReceipt:
        """Declare; safe to call again with the same ``submission.reference``."""
        ...

    async def find_declaration(self, reference: str, *, context: CallContext) -> DeclarationReceipt | None:
        """The bureau's state of declaration ``reference``, or ``None`` if it never landed."""
        ...


@runtime_checkable
class TransfersOut(Protocol):
    """Optional for bureaus (``Capability.TRANSFER_OUT``): the source side of a transfer."""

    async def submit_transfer_out(
        self, submission: TransferOutSubmission, *, context: CallContext
    ) -> TransferOutProgress:
        """Submit the transfer application; safe to call again with the same reference."""
        ...

    async def transfer_out_status(self, reference: str, *, context: CallContext) -> TransferOutProgress | None:
        """Where transfer ``reference`` stands at the source, or ``None`` if it never landed."""
        ...


@runtime_checkable
class TransfersIn(Protocol):
    """Optional for bureaus (``Capability.TRANSFER_IN``): the target side of a transfer."""

    async def submit_transfer_in(self, submission: TransferInSubmission, *, context: CallContext) -> TransferInReceipt:
        """Register the carried insurance; safe to call again with the same reference."""
        ...

    async def find_transfer_in(self, reference: str, *, context: CallContext) -> TransferInReceipt | None:
        """The target bureau's state of transfer-in ``reference``, or ``None`` if it never landed."""
        ...


@runtime_checkable
class ContributionPayments(Protocol):
    """Optional for bureaus (``Capability.CONTRIBUTION_PAYMENT``): payment confirmation.

    After the employer's bank has paid what a declaration made due, the bureau is
    told and confirms the funds (marking the declared months paid) or refuses.
    """

    async def notify_contribution_payment(
        self, notice: ContributionPaymentNotice, *, context: CallContext
    ) -> ContributionPaymentReceipt:
        """Send the notice; safe to call again with the same ``notice.reference``."""
        ...

    async def find_contribution_payment(
        self, reference: str, *, context: CallContext
    ) -> ContributionPaymentReceipt | None:
        """The bureau's state of notice ``reference``, or ``None`` if it never landed."""
        ...


@runtime_checkable
class BankAdapter(Adapter, Protocol):
    """A bank (``Capability.PAYMENT_INITIATION`` and ``PAYMENT_STATUS``).

    ``initiate_payment`` takes effect at most once per ``submission.reference``:
    after an ambiguous send the adapter asks ``find_payment`` before sending again
    (``adapters.exactly_once.send_at_most_once``). The debtor accounts an instance
    may pay from are listed in its configuration (``options.accounts``).
    """

    async def initiate_payment(self, submission: PaymentSubmission, *, context: CallContext) -> PaymentReceipt:
        """Initiate the credit transfer; safe to call again with the same reference."""
        ...

    async def find_payment(self, reference: str, *, context: CallContext) -> PaymentReceipt | None:
        """The bank's state of payment ``reference``, or ``None`` if it never landed."""
        ...


@runtime_checkable
class Statements(Protocol):
    """Optional for banks (``Capability.STATEMENTS``): booked entries for reconciliation."""

    async def statement(
        self, account: str, from_date: dt.date, to_date: dt.date, *, context: CallContext
    ) -> Statement:
        """Entries booked on ``account`` from ``from_date`` to ``to_date`` inclusive.

        Raises ``UpstreamNotFound`` if the bank does not know the account.
        """
        ...


@runtime_checkable
class ErpAdapter(Adapter, Protocol):
    """An ERP (``Capability.APPROVAL``, ``VOUCHER`` and ``BUDGET_QUERY``).

    Writes take effect at most once per reference, as for banks. Approvals are
    decided by people in the ERP; ``pending`` receipts are polled with
    ``find_approval``.
    """

    async def budget(self, cost_center: str, period: str, *, context: CallContext) -> BudgetPosition:
        """The cost centre's budget for ``period``; ``UpstreamNotFound`` if it has none."""
        ...

    async def submit_approval(self, submission: ApprovalSubmission, *, context: CallContext) -> ApprovalReceipt:
        """Ask for approval; safe to call again with the same reference."""
        ...

    async def find_approval(self, reference: str, *, context: CallContext) -> ApprovalReceipt | None:
        """The ERP's state of approval ``reference``, or ``None`` if it never landed."""
        ...

    async def post_voucher(self, submission: VoucherSubmission, *, context: CallContext) -> VoucherReceipt:
        """Post the voucher; safe to call again with the same reference."""
        ...

    async def find_voucher(self, reference: str, *, context: CallContext) -> VoucherReceipt | None:
        """The ERP's state of voucher ``reference``, or ``None`` if it never landed."""
        ...
