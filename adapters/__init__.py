"""The hr-gateway adapter SDK.

An adapter translates canonical models to one upstream's dialect and back. It never
imports the gateway; the gateway finds adapters through the ``hr_gateway.adapters``
entry-point group. See docs/adapters.md.
"""

from .base import HttpAdapter
from .context import CallContext
from .errors import (
    AdapterError,
    AmbiguousOutcome,
    BusinessRejection,
    CircuitOpen,
    ConfigurationError,
    TransientError,
    UpstreamAuthenticationError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamTimeout,
)
from .exactly_once import send_at_most_once
from .models import (
    INSURANCE_TYPES,
    ContributionMonth,
    Employer,
    EnrolmentReceipt,
    EnrolmentSubmission,
    InsuranceType,
    ParticipationRecord,
    ParticipationStatus,
    PaymentStatus,
    Person,
    money,
)
from .protocols import (
    Adapter,
    AdapterConfig,
    AdapterHealth,
    AdapterKind,
    BankAdapter,
    BureauAdapter,
    Capability,
    ContributionHistory,
    ErpAdapter,
)

ENTRY_POINT_GROUP = "hr_gateway.adapters"

__all__ = [
    "ENTRY_POINT_GROUP",
    "INSURANCE_TYPES",
    "Adapter",
    "AdapterConfig",
    "AdapterError",
    "AdapterHealth",
    "AdapterKind",
    "AmbiguousOutcome",
    "BankAdapter",
    "BureauAdapter",
    "BusinessRejection",
    "CallContext",
    "Capability",
    "CircuitOpen",
    "ContributionHistory",
    "ContributionMonth",
    "ConfigurationError",
    "Employer",
    "EnrolmentReceipt",
    "EnrolmentSubmission",
    "ErpAdapter",
    "HttpAdapter",
    "InsuranceType",
    "ParticipationRecord",
    "ParticipationStatus",
    "PaymentStatus",
    "Person",
    "TransientError",
    "UpstreamAuthenticationError",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamNotFound",
    "UpstreamProtocolError",
    "UpstreamRateLimited",
    "UpstreamServerError",
    "UpstreamTimeout",
    "money",
    "send_at_most_once",
]
