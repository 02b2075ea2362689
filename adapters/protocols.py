"""What an adapter is: one protocol per domain, with declared capabilities.

A vendor implements one of these protocols in one class (usually by subclassing
``adapters.base.HttpAdapter``) and registers it under the entry-point group
``hr_gateway.adapters``. The gateway only ever talks to these protocols.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import msgspec

from .context import CallContext
from .http import CallObserver, UpstreamPolicy
from .models import (
    ContributionMonth,
    DeclarationReceipt,
    DeclarationSubmission,
    EnrolmentReceipt,
    EnrolmentSubmission,
    ParticipationRecord,
    Person,
    TransferInReceipt,
    TransferInSubmission,
    TransferOutProgress,
    TransferOutSubmission,
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
    "Declarations",
    "ErpAdapter",
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
class BankAdapter(Adapter, Protocol):
    """A bank; its canonical operations arrive with the payments API."""


@runtime_checkable
class ErpAdapter(Adapter, Protocol):
    """An ERP; its canonical operations arrive with the ERP API."""
