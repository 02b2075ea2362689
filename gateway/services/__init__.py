"""Domain services: what the API does, independent of HTTP."""

from .declarations import DeclarationService
from .enrolments import EnrolmentService
from .participation import RegionResult, SearchResult, search_participation
from .terminations import TerminationService
from .transfers import TransferService

__all__ = [
    "DeclarationService",
    "EnrolmentService",
    "RegionResult",
    "SearchResult",
    "TerminationService",
    "TransferService",
    "search_participation",
]
