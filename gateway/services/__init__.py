"""Domain services: what the API does, independent of HTTP."""

from .accounts import StatementService
from .contribution_runs import ContributionRunService
from .declarations import DeclarationService
from .enrolments import EnrolmentService
from .erp import ApprovalService, BudgetService, VoucherService
from .participation import RegionResult, SearchResult, search_participation
from .payments import PaymentService
from .reimbursements import ReimbursementService
from .terminations import TerminationService
from .transfers import TransferService

__all__ = [
    "ApprovalService",
    "BudgetService",
    "ContributionRunService",
    "DeclarationService",
    "EnrolmentService",
    "PaymentService",
    "RegionResult",
    "ReimbursementService",
    "SearchResult",
    "StatementService",
    "TerminationService",
    "TransferService",
    "VoucherService",
    "search_participation",
]
