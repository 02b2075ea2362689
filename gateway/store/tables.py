"""The gateway's tables (SQLAlchemy Core). Columns ending in ``_enc`` hold
AES-256-GCM ciphertext from ``gateway.encryption``; ``*_bidx`` columns hold keyed
blind indexes. No column holds PII in plaintext."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

__all__ = [
    "audit_events",
    "clients",
    "contribution_run_steps",
    "contribution_runs",
    "declaration_lines",
    "declarations",
    "enrolments",
    "erp_approvals",
    "erp_vouchers",
    "idempotency_records",
    "metadata",
    "payments",
    "policy_versions",
    "reimbursements",
    "terminations",
    "timeline_events",
    "transfer_events",
    "transfers",
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_endpoints",
    "webhook_events",
    "work_lease_columns",
]


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC on the way in and out, on SQLite (naive storage) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if getattr(dialect, "name", "") == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

def work_lease_columns() -> list[Column[object]]:
    """Columns of a row that a background worker polls: when it is next due, and who
    holds it until when. A worker claims a row with one conditional UPDATE (never
    SELECT … FOR UPDATE, which SQLite lacks), so two replicas never work one row at once."""
    return [
        Column("next_poll_at", UtcDateTime, nullable=True, index=True),
        Column("locked_until", UtcDateTime, nullable=True),
        Column("lease_holder", String(40), nullable=True),
        Column("poll_attempts", Integer, nullable=False, default=0),
    ]


clients = Table(
    "clients",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("environment", String(10), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("key_prefix", String(24), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("jwe_kid", String(40), nullable=False, unique=True),
    Column("jwe_key_enc", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
)

idempotency_records = Table(
    "idempotency_records",
    metadata,
    Column("client_id", String(40), ForeignKey("clients.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    # Identifies this use of the key: work done under it (an enrolment…) links to the
    # token, so a key reused after its record expired starts afresh.
    Column("token", String(40), nullable=False, unique=True),
    # Who holds the lease now (changes when a retry takes over after a crash): only
    # the holder may renew, release or complete the record.
    Column("holder", String(40), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("method", String(10), nullable=False),
    Column("path", String(500), nullable=False),
    Column("state", String(12), nullable=False),  # in_flight | completed
    Column("locked_until", UtcDateTime, nullable=True),
    Column("response_status", Integer, nullable=True),
    Column("response_headers", Text, nullable=True),
    Column("response_body_enc", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
)

enrolments = Table(
    "enrolments",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("client_id", String(40), ForeignKey("clients.id"), nullable=False, index=True),
    Column("environment", String(10), nullable=False),
    Column("idempotency_token", String(40), nullable=True, unique=True),
    Column("region", String(6), nullable=False),
    Column("upstream", String(100), nullable=False),
    Column("person_bidx", String(64), nullable=False, index=True),
    Column("id_number_enc", Text, nullable=False),
    Column("name_enc", Text, nullable=False),
    Column("employer_uscc", String(18), nullable=False),
    Column("employer_name", String(200), nullable=False),
    Column("hire_date", String(10), nullable=False),
    Column("insurance_types", String(200), nullable=False),
    Column("contribution_base", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("reference", String(40), nullable=False, unique=True),
    Column("bureau_reference", String(64), nullable=True),
    Column("error", Text, nullable=True),
    # Set while a bureau that decides later (a pending receipt) is being followed.
    *work_lease_columns(),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False, index=True),
    Column("client_id", String(40), nullable=True, index=True),
    Column("environment", String(10), nullable=True),
    Column("operation", String(100), nullable=False),
    Column("upstream", String(100), nullable=False),
    Column("region", String(6), nullable=True),
    Column("gateway_id", String(40), nullable=True, index=True),
    Column("request_id", String(128), nullable=True),
    Column("upstream_status", Integer, nullable=True),
    Column("upstream_code", String(40), nullable=True),
    Column("outcome", String(60), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("latency_ms", Float, nullable=False),
)

# Contribution-policy versions added by administrators at run time (the shipped ones
# live in gateway/policy/data). Per environment: a sandbox admin never changes what
# live calculations use. ``document`` is the version's terms as JSON; the columns
# beside it are what lookups filter on.
policy_versions = Table(
    "policy_versions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("environment", String(10), nullable=False),
    Column("region", String(6), nullable=False),
    Column("version", Integer, nullable=False),
    Column("effective_from", Date, nullable=False),
    Column("effective_to", Date, nullable=True),
    Column("document", Text, nullable=False),
    Column("created_by", String(40), ForeignKey("clients.id"), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # The Idempotency-Key use that added it: a retry after a lost answer finds this row.
    Column("idempotency_token", String(40), nullable=True, unique=True),
    # Two replicas numbering a region's next version at once: one of them must lose.
    UniqueConstraint("environment", "region", "version"),
)


# A monthly declaration of one employer to one region's bureau. Lines are in
# ``declaration_lines``; ``totals`` is JSON of the accepted/declared amounts.
declarations = Table(
    "declarations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("client_id", String(40), ForeignKey("clients.id"), nullable=False, index=True),
    Column("environment", String(10), nullable=False),
    Column("idempotency_token", String(40), nullable=True, unique=True),
    Column("region", String(6), nullable=False),
    Column("upstream", String(100), nullable=False),
    Column("employer_uscc", String(18), nullable=False),
    Column("employer_name", String(200), nullable=False),
    Column("period", String(7), nullable=False),
    Column("policy_version", String(40), nullable=False),
    Column("all_or_nothing", Boolean, nullable=False),
    Column("status", String(24), nullable=False),
    Column("reference", String(40), nullable=False, unique=True),
    Column("bureau_reference", String(64), nullable=True),
    Column("totals", Text, nullable=False),
    Column("error", Text, nullable=True),
    *work_lease_columns(),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

declaration_lines = Table(
    "declaration_lines",
    metadata,
    Column("declaration_id", String(40), ForeignKey("declarations.id"), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("person_bidx", String(64), nullable=True, index=True),
    Column("id_number_enc", Text, nullable=False),
    Column("name_enc", Text, nullable=False),
    Column("change", String(10), nullable=False),
    Column("salary", String(20), nullable=True),
    Column("contribution_base", String(20), nullable=True),
    Column("base_clamped", String(10), nullable=True),  # floor | ceiling | None
    Column("hire_date", String(10), nullable=True),
    Column("leave_date", String(10), nullable=True),
    Column("amounts", Text, nullable=True),  # JSON: per insurance type and side, prorated
    Column("status", String(12), nullable=False),  # invalid | pending | accepted | rejected
    Column("problems", Text, nullable=True),  # JSON: validation errors and warnings
    Column("upstream_code", String(40), nullable=True),
    Column("upstream_message", Text, nullable=True),
)

# A transfer of the insurance relationship from one region to another: the transfer
# out at the source bureau, then the transfer in at the target bureau.
transfers = Table(
    "transfers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("client_id", String(40), ForeignKey("clients.id"), nullable=False, index=True),
    Column("environment", String(10), nullable=False),
    Column("idempotency_token", String(40), nullable=True, unique=True),
    Column("from_region", String(6), nullable=False),
    Column("to_region", String(6), nullable=False),
    Column("source_upstream", String(100), nullable=False),
    Column("target_upstream", String(100), nullable=False),
    Column("person_bidx", String(64), nullable=False, index=True),
    Column("id_number_enc", Text, nullable=False),
    Column("name_enc", Text, nullable=False),
    Column("insurance_types", String(200), nullable=False),
    Column("status", String(24), nullable=False),
    Column("reference", String(40), nullable=False, unique=True),
    Column("bureau_reference", String(64), nullable=True),
    Column("target_reference", String(40), nullable=False, unique=True),
    Column("target_bureau_reference", String(64), nullable=True),
    Column("source_records", Text, nullable=True),  # JSON: what the source held when applied (no PII)
    Column("carried", Text, nullable=True),  # JSON: months, start date, funds per type
    Column("reason", Text, nullable=True),  # JSON: the bureau's code and message
    *work_lease_columns(),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

transfer_events = Table(
    "transfer_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("transfer_id", String(40), ForeignKey("transfers.id"), nullable=False, index=True),
    Column("stage", String(24), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("detail", Text, nullable=True),  # JSON
    UniqueConstraint("transfer_id", "stage"),
)

# Stopping contributions from a leave date (sent to the bureau as a one-line
# ``leave`` declaration).
terminations = Table(
    "terminations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("client_id", String(40), ForeignKey("clients.id"), nullable=False, index=True),
    Column("environment", String(10), nullable=False),
    Column("idempotency_token", String(40), nullable=True, unique=True),
    Column("region", String(6), nullable=False),
    Column("upstream", String(100), nullable=False),
    Column("person_bidx", String(64), nullable=False, index=True),
    Column("id_number_enc", Text, nullable=False),
    Column("name_enc", Text, nullable=False),
    Column("employer_uscc", String(18), nullable=False),
    Column("employer_name", String(200), nullable=False),
    Column("leave_date", String(10), nullable=False),
    Column("insurance_types", String(200), nullable=False),
    Column("reason", String(40), nullable=True),
    Column("status", String(24), nullable=False),
    Column("reference", String(40), nullable=False, unique=True),
    Column("bureau_reference", String(64), nullable=True),
    Column("error", Text, nullable=True),
    *work_lease_columns(),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Webhooks: endpoints registered by clients; events written, with one delivery per
# subscribed endpoint, in the same transaction as the change they announce (an
# outbox); deliveries retried with backoff until delivered or given up; every attempt kept.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("client_id", String(40), ForeignKey("clients.id"), nullable=False, index=True),
    Column("environment", String(10), nullable=False),
    Column("url", String(2000), nullable=False),
    Column("events", Text, nullable=False),  # space-separated event types or patterns
    Column("description", String(200), nullable=True),
    Column("secret_enc", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("deleted_at", UtcDateTime, nullable=True),
)

webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("client_id", String(40), ForeignKey("clients.id"), nullable=False, index=True),
    Column("environment", String(10), nullable=False),
    Column("type", String(60), nullable=False),
    Column("payload", Text, nullable=False),  # the JSON body delivered (no plaintext PII)
    Column("created_at", UtcDateTime, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("event_id", String(40), ForeignKey("webhook_events.id"), nullable=False, index=True),
    Column("endpoint_id", String(40), ForeignKey("webhook_endpoints.id"), nullable=False, index=True),
    Column("status", String(12), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=True, index=True),
    Column("locked_until", UtcDateTime, nullable=True),
    Column("lease_holder", String(40), nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("delivered_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("event_id", "endpoint_id"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(40), ForeignKey("webhook_deliveries.id"), nullable=False, index=True),
    Column("at", UtcDateTime, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("latency_ms", Float, nullable=False),
)

# -- payments, ERP documents, contribution runs, reimbursements -----------------------
# Money is kept as its canonical decimal string ("3604.00"): exact on SQLite and
# PostgreSQL alike. ``origin``/``origin_id`` say which workflow created a row (a
# contribution run, a reimbursement) when a client did not create it directly.

payments = Table(
    "payments",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("client_id", String(40), ForeignKey("clients.id"), nullable=False, index=True),
    Column("environment", String(10), nullable=False),
    Column("idempotency_token", String(40), nullable=True, unique=True),
    Column("bank", String(100), nullable=False),
    Column("debtor_enc", Text, nullable=False),  # JSON: name, account, bank_code
    Column("creditor_enc", Text, nullable=False),  # JSON: name, account, bank_code
    Column("amount", String(24), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("purpose", String(40), nullable=False),
    Column("remittance_enc", Text, nullable=False),  # the client's reference, shown to the creditor
    Column("status", String(24), nullable=False),
    Column("reference", String(35), nullable=False, unique=True),
    Column("bank_reference", String(64), nullable=True),
    Column("reason", Text, nullable=True),  # JSON: canonical reason, the bank's code and message
    Column("settled_on", String(10), nullable=True),
    Column("error", Text, nullable=True),
    Column("origin", String(24), nullable=False, default="api"),
    Column("origin_id", String(40), nullable=True, index=True),
    *work_lease_columns(),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

erp_approvals = Table(
    "erp_approvals",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("client_id", String(40), ForeignKey("clients.id"), nullable=False, index=True),
    Column("environment", String(10), nullable=False),
    Column("idempotency_token", String(40), nullable=True, unique=True),
    Column("erp", String(100), nullable=False),
    Column("kind", String(60), nullable=False),
    Column("amount", String(24), nullable=False),
    Column("cost_center", String(40), nullable=False),
    Column("period", String(7), nullable=False),
    Column("client_reference", String(100), nullable=False),
    Column("description", Text, nullable=True),
    Column("attachments", Text, nullable=False),  # JSON: kind, sha256, name
    Column("budget", Text, nullable=True),  # JSON: budget, committed, requested, remaining
    Column("status", String(24), nullable=False),
    Column("reference", String(40), nullable=False, unique=True),
    Column("document_number", String(64), nullable=True),
    Column("decided_on", String(10), nullable=True),
    Column("reason", Text, nullable=True),  # JSON: the ERP's code and message
    Column("error", Text, nullable=True),
    Column("origin", String(24), nullable=False, default="api"),
    Column("origin_id", String(40), nullable=True, index=True),
    *work_lease_columns(),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

erp_vouchers = Table(
    "erp_vouchers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("client_id", String(40), ForeignKey("clients.id"), nullable=False, index=True),
    Column("environment", String(10), nullable=False),
    Column("idempotency_token", String(40), nullable=True, unique=True),
    Column("erp", String(100), nullable=False),
    Column("voucher_date", String(10), nullable=False),
    Column("lines", Text, nullable=False),  # JSON: account, debit, credit, cost_center, description
    Column("total", String(24), nullable=False),
    Column("client_reference", String(100), nullable=False),
    Column("description", Text, nullable=True),
    Column("attachments", Text, nullable=False),
    Column("status", String(24), nullable=False),
    Column("reference", String(40), nullable=False, unique=True),
    Column("document_number", String(64), nullable=True),
    Column("posted_on", String(10), nullable=True),
    Column("reason", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("origin", String(24), nullable=False, default="api"),
    Column("origin_id", String(40), nullable=True, index=True),
    *work_lease_columns(),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# The monthly contribution run: declaration -> approval -> payment -> bureau
# confirmation -> voucher. Each step's row is written before its upstream call and
# points at the resource that carries it, so a restarted gateway resumes a run at the
# first unfinished step and never repeats a finished one.
contribution_runs = Table(
    "contribution_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("client_id", String(40), ForeignKey("clients.id"), nullable=False, index=True),
    Column("environment", String(10), nullable=False),
    Column("idempotency_token", String(40), nullable=True, unique=True),
    Column("employer_uscc", String(18), nullable=False),
    Column("employer_name", String(200), nullable=False),
    Column("region", String(6), nullable=False),
    Column("period", String(7), nullable=False),
    Column("erp", String(100), nullable=False),
    Column("bank", String(100), nullable=False),
    Column("debtor_account_enc", Text, nullable=False),
    Column("payee_enc", Text, nullable=False),  # JSON: the bureau's collection account
    Column("cost_center", String(40), nullable=False),
    Column("accounts", Text, nullable=False),  # JSON: G/L accounts the voucher uses
    Column("lines_enc", Text, nullable=False),  # JSON: the declaration lines as the client sent them
    Column("payment_deadline", UtcDateTime, nullable=False),
    Column("amount", String(24), nullable=True),  # what the declaration made due
    Column("status", String(24), nullable=False),
    Column("current_step", String(24), nullable=True),
    Column("escalation_level", Integer, nullable=False, default=0),
    Column("reason", Text, nullable=True),  # JSON: why the run stopped (step, code, message)
    *work_lease_columns(),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

contribution_run_steps = Table(
    "contribution_run_steps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(40), ForeignKey("contribution_runs.id"), nullable=False, index=True),
    Column("step", String(24), nullable=False),
    Column("position", Integer, nullable=False),
    Column("status", String(24), nullable=False),  # pending, in_progress, completed, failed
    Column("resource_kind", String(40), nullable=True),
    Column("resource_id", String(40), nullable=True),
    Column("reference", String(40), nullable=True),
    Column("started_at", UtcDateTime, nullable=True),
    Column("completed_at", UtcDateTime, nullable=True),
    Column("detail", Text, nullable=True),  # JSON (no PII)
    UniqueConstraint("run_id", "step"),
)

reimbursements = Table(
    "reimbursements",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("client_id", String(40), ForeignKey("clients.id"), nullable=False, index=True),
    Column("environment", String(10), nullable=False),
    Column("idempotency_token", String(40), nullable=True, unique=True),
    Column("person_bidx", String(64), nullable=False, index=True),
    Column("id_number_enc", Text, nullable=False),
    Column("name_enc", Text, nullable=False),
    Column("amount", String(24), nullable=False),
    Column("payout_enc", Text, nullable=False),  # JSON: name, account, bank_code
    Column("documents", Text, nullable=False),  # JSON: kind, sha256
    Column("bank", String(100), nullable=False),
    Column("debtor_account_enc", Text, nullable=False),
    Column("until_period", String(7), nullable=True),
    Column("status", String(24), nullable=False),
    Column("eligibility", Text, nullable=True),  # JSON: the last contribution-status check (no PII)
    Column("payment_id", String(40), nullable=True),
    Column("reason", Text, nullable=True),
    *work_lease_columns(),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# The status history of payments, ERP approvals and vouchers, contribution runs and
# reimbursements: one row per status a resource reached, with when.
timeline_events = Table(
    "timeline_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("resource_kind", String(24), nullable=False),
    Column("resource_id", String(40), nullable=False),
    Column("status", String(40), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("detail", Text, nullable=True),  # JSON (no PII)
    Index("ix_timeline_events_resource", "resource_kind", "resource_id"),
)
