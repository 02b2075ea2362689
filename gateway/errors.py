"""Problem details (RFC 9457) and the catalogue of stable error codes.

Every error the API returns is ``application/problem+json`` with a machine ``code``
from ``CATALOGUE``. A *refusal* means the request was turned away before anything
was done (bad input, auth); an *outcome* is a result of work that was done (an
upstream's rejection, a conflict found by a search). Refusals are never stored
against an Idempotency-Key. Outcomes below 500 are stored and replayed; a 5xx
outcome leaves the key open, so a retry with it resumes the same work.

Hierarchy::

    ProblemError            carries status, code, title, detail and extension members
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

__all__ = ["CATALOGUE", "PROBLEM_CONTENT_TYPE", "ProblemError", "ProblemType", "problem_body"]

PROBLEM_CONTENT_TYPE = "application/problem+json"
_TYPE_BASE = "https://hr-gateway.dev/problems/"


@dataclass(frozen=True, slots=True)
class ProblemType:
    status: int
    title: str
    refusal: bool = True


CATALOGUE: dict[str, ProblemType] = {
    # request shape
    "malformed_json": ProblemType(400, "The request body is not valid JSON"),
    "invalid_field": ProblemType(400, "A field has the wrong type or value"),
    "missing_field": ProblemType(400, "A required field is missing"),
    "unknown_field": ProblemType(400, "The request contains a field this endpoint does not accept"),
    "unsupported_media_type": ProblemType(415, "The request body's content type is not accepted"),
    "payload_too_large": ProblemType(413, "The request body is larger than the gateway accepts"),
    "invalid_jwe": ProblemType(400, "The encrypted request body could not be decrypted"),
    "not_found": ProblemType(404, "No such resource"),
    "method_not_allowed": ProblemType(405, "Method not allowed on this resource"),
    # auth
    "missing_api_key": ProblemType(401, "An API key is required"),
    "invalid_api_key": ProblemType(401, "The API key is not valid"),
    "revoked_api_key": ProblemType(401, "The API key has been revoked"),
    "insufficient_scope": ProblemType(403, "The API key lacks a scope this operation needs"),
    "environment_unavailable": ProblemType(403, "This gateway serves no upstreams for the key's environment"),
    # idempotency
    "idempotency_key_missing": ProblemType(400, "This operation requires an Idempotency-Key header"),
    "invalid_idempotency_key": ProblemType(400, "The Idempotency-Key header is malformed"),
    "idempotency_key_reused": ProblemType(422, "The Idempotency-Key was already used with a different request"),
    "idempotency_key_in_use": ProblemType(409, "A request with this Idempotency-Key is still being processed"),
    # domain validation
    "invalid_id_number": ProblemType(422, "The resident ID number is not valid"),
    "invalid_uscc": ProblemType(422, "The Unified Social Credit Code is not valid"),
    "unknown_region": ProblemType(422, "No bureau serves this region"),
    "invalid_date": ProblemType(422, "A date is out of the accepted range"),
    "invalid_amount": ProblemType(422, "An amount is not a valid CNY amount"),
    # contribution policy and calculations
    "unknown_policy_region": ProblemType(422, "The gateway has no contribution policy for this region"),
    "no_policy": ProblemType(404, "No policy version of this region is in force on this date"),
    "invalid_period": ProblemType(422, "The period is not a month written YYYY-MM"),
    "period_not_covered": ProblemType(422, "No policy version of this region is in force in this period"),
    "salary_or_base_required": ProblemType(422, "Send exactly one of salary and base"),
    "base_out_of_range": ProblemType(422, "The contribution base is outside the region's floor and ceiling"),
    "hire_after_period": ProblemType(422, "The hire date is after the period"),
    "invalid_policy": ProblemType(422, "The policy version's figures or dates are not valid"),
    "policy_overlap": ProblemType(422, "The policy version does not start after the region's latest version"),
    "policy_conflict": ProblemType(409, "Policy versions of this region are being added concurrently"),
    "declaration_invalid": ProblemType(422, "Lines of the declaration are invalid; see lines"),
    "same_region": ProblemType(422, "A transfer needs two different regions"),
    "transfer_in_progress": ProblemType(409, "A transfer of this person out of this region is already in progress"),
    "not_acceptable": ProblemType(406, "The resource is not available in a requested media type"),
    # payments, ERP documents, contribution runs, reimbursements
    "unknown_bank": ProblemType(422, "No bank adapter instance has this name for this key's environment"),
    "unknown_erp": ProblemType(422, "No ERP adapter instance has this name for this key's environment"),
    "unknown_debtor_account": ProblemType(422, "The account is not one the gateway may pay from at this bank"),
    "invalid_account_number": ProblemType(422, "The account number is not a valid IBAN, card or account number"),
    "invalid_bank_code": ProblemType(422, "The bank code is not a valid CNAPS code or BIC"),
    "unsupported_currency": ProblemType(422, "Only CNY is supported"),
    "voucher_unbalanced": ProblemType(422, "The voucher's debits do not equal its credits"),
    "invalid_voucher_line": ProblemType(422, "A voucher line must have exactly one of debit and credit above zero"),
    "cost_center_required": ProblemType(422, "No cost centre was given and the ERP has none for this employer"),
    "capability_unsupported": ProblemType(422, "The upstream cannot do what this request needs"),
    "contribution_run_in_progress": ProblemType(
        409, "A contribution run for this employer, region and period is already running"
    ),
    "reimbursement_not_blocked": ProblemType(409, "Only a blocked reimbursement can be checked again"),
    "invalid_date_range": ProblemType(422, "The date range is empty, reversed or too long"),
    # webhooks
    "invalid_webhook_url": ProblemType(422, "The webhook URL is not an absolute http(s) URL the gateway can use"),
    "webhook_url_not_allowed": ProblemType(422, "The webhook URL is not allowed in this environment"),
    "unknown_event_type": ProblemType(422, "An event type or pattern is not in the catalogue"),
    "no_event_types": ProblemType(422, "A webhook endpoint must subscribe to at least one event type"),
    "too_many_webhook_endpoints": ProblemType(422, "The client has as many webhook endpoints as allowed"),
    # outcomes of work
    "transfer_required": ProblemType(409, "The person is actively insured in another region", refusal=False),
    "participation_check_incomplete": ProblemType(
        503, "Not every region could be searched, so the enrolment cannot be checked", refusal=False
    ),
    "upstream_rejected": ProblemType(422, "The upstream refused the request", refusal=False),
    "upstream_unavailable": ProblemType(503, "The upstream is unavailable", refusal=False),
    "upstream_timeout": ProblemType(504, "The upstream did not answer in time", refusal=False),
    "upstream_error": ProblemType(502, "The upstream answered in a way the gateway cannot use", refusal=False),
    "outcome_unknown": ProblemType(
        503, "The upstream may or may not have applied the request; retry with the same Idempotency-Key",
        refusal=False,
    ),
    "internal_error": ProblemType(500, "The gateway failed unexpectedly", refusal=False),
    "not_ready": ProblemType(503, "The gateway is not ready", refusal=False),
}


class ProblemError(Exception):
    """Raise to answer with a problem document; ``code`` must be in ``CATALOGUE``."""

    def __init__(self, code: str, detail: str | None = None, *, headers: dict[str, str] | None = None, **extensions: Any) -> None:
        problem_type = CATALOGUE[code]
        super().__init__(detail or problem_type.title)
        self.code = code
        self.status = problem_type.status
        self.title = problem_type.title
        self.refusal = problem_type.refusal
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": _TYPE_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "code": self.code,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update({k: v for k, v in self.extensions.items() if v is not None})
        return body


def problem_body(error: ProblemError, instance: str | None = None) -> bytes:
    return msgspec.json.encode(error.to_dict(instance))
