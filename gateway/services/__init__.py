"""Domain services: what the API does, independent of HTTP."""

from .enrolments import EnrolmentService
from .ids import new_id, upstream_reference
from .participation import RegionResult, SearchResult, search_participation

__all__ = ["EnrolmentService", "RegionResult", "SearchResult", "new_id", "search_participation", "upstream_reference"]
