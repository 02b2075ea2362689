"""Background work that outlives a request: claiming, polling, advancing."""

from .leases import claim_due, release, utcnow
from .poller import Advance, Job, Poller

__all__ = ["Advance", "Job", "Poller", "claim_due", "release", "utcnow"]
