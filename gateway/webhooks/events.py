"""The catalogue of webhook event types and how subscriptions match them.

An endpoint subscribes with a list of patterns: an exact type
(``transfer.completed``), every type of one resource (``transfer.*``) or
everything (``*``). Patterns are checked against the catalogue when an endpoint is
registered, so a typo is refused instead of silently matching nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["EVENT_TYPES", "UnknownEventType", "check_patterns", "matches"]

#: Every event type the gateway publishes, with what it announces.
EVENT_TYPES: dict[str, str] = {
    "enrolment.accepted": "The bureau accepted an enrolment",
    "enrolment.rejected": "The bureau rejected an enrolment",
    "declaration.submitted": "A monthly declaration was submitted to the bureau",
    "declaration.accepted": "The bureau accepted every line of a declaration",
    "declaration.partially_accepted": "The bureau accepted some lines of a declaration and rejected others",
    "declaration.rejected": "The bureau rejected a declaration",
    "transfer.submitted": "A transfer was submitted to the source bureau",
    "transfer.source_reviewed": "The source bureau reviewed and approved a transfer out",
    "transfer.funds_transferred": "The source bureau transferred the funds",
    "transfer.completed": "The target bureau completed the transfer in",
    "transfer.rejected": "A bureau rejected a transfer",
    "termination.accepted": "The bureau accepted a termination",
    "termination.rejected": "The bureau rejected a termination",
    "payment.submitted": "The bank received a payment",
    "payment.accepted": "The bank accepted a payment for execution",
    "payment.settled": "A payment's funds have moved (final)",
    "payment.rejected": "The bank rejected a payment (final), with its reason",
    "erp_approval.pending": "The ERP received an approval request; finance has not decided yet",
    "erp_approval.approved": "Finance approved a request in the ERP",
    "erp_approval.rejected": "Finance rejected a request in the ERP",
    "erp_voucher.posted": "The ERP posted a voucher",
    "erp_voucher.rejected": "The ERP refused a voucher",
    "contribution_run.step_completed": "A step of a contribution run finished",
    "contribution_run.completed": "Every step of a contribution run finished",
    "contribution_run.failed": "A contribution run stopped: a step was refused",
    "contribution_run.overdue": "A contribution run is unfinished past its payment deadline (level 1, 2, 3)",
    "reimbursement.blocked": "A reimbursement is blocked by late or unpaid contributions",
    "reimbursement.paying": "A reimbursement's contributions are in order; its payment was created",
    "reimbursement.paid": "A reimbursement's payment settled",
    "reimbursement.rejected": "A reimbursement's payment was rejected by the bank",
}

_RESOURCES = frozenset(t.partition(".")[0] for t in EVENT_TYPES)


class UnknownEventType(ValueError):
    """A subscription pattern that matches no type in the catalogue."""

    def __init__(self, pattern: str) -> None:
        super().__init__(f"unknown event type {pattern!r}")
        self.pattern = pattern


def _is_known(pattern: str) -> bool:
    if pattern == "*" or pattern in EVENT_TYPES:
        return True
    resource, dot, rest = pattern.partition(".")
    return bool(dot) and rest == "*" and resource in _RESOURCES


def check_patterns(patterns: Iterable[str]) -> list[str]:
    """The patterns, stripped, deduplicated, in their given order; raises
    ``UnknownEventType`` for the first one the catalogue does not know."""
    result: list[str] = []
    for raw in patterns:
        pattern = raw.strip()
        if not _is_known(pattern):
            raise UnknownEventType(raw)
        if pattern not in result:
            result.append(pattern)
    return result


def matches(patterns: Iterable[str], event_type: str) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False
