"""The running gateway: every long-lived object, created in the app's lifespan.

Engines, HTTP clients and background tasks belong to the event loop that serves the
app, so they are built in ``start()`` (called from the Litestar lifespan), never at
import time or in test fixtures.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from joserfc.jwk import RSAKey
from sqlalchemy.ext.asyncio import AsyncEngine

from .audit import AuditLog
from .auth import ClientStore
from .config import Settings, UpstreamSettings
from .encryption import FieldCipher, Keyring
from .idempotency import IdempotencyStore
from .registry import Upstreams, build_upstream_set
from .sandbox import SandboxMocks
from .services import (
    ApprovalService,
    BudgetService,
    ContributionRunService,
    DeclarationService,
    EnrolmentService,
    PaymentService,
    ReimbursementService,
    StatementService,
    TerminationService,
    TransferService,
    VoucherService,
)
from .store import (
    contribution_runs,
    create_engine,
    declarations,
    enrolments,
    erp_approvals,
    erp_vouchers,
    payments,
    reimbursements,
    terminations,
    transfers,
    upgrade,
)
from .webhooks import Dispatcher, RetrySchedule, WebhookService
from .workers import Job, Poller

__all__ = ["Gateway"]

log = logging.getLogger("hr_gateway")


@dataclass
class Gateway:
    settings: Settings
    #: Sandbox upstreams to use instead of starting the bundled mocks (tests, benchmarks).
    sandbox_upstreams: Sequence[UpstreamSettings] | None = None

    engine: AsyncEngine = field(init=False)
    keyring: Keyring = field(init=False)
    cipher: FieldCipher = field(init=False)
    clients: ClientStore = field(init=False)
    idempotency: IdempotencyStore = field(init=False)
    audit: AuditLog = field(init=False)
    upstreams: Upstreams = field(init=False)
    jwe_gateway_key: RSAKey = field(init=False)
    mocks: SandboxMocks | None = field(init=False, default=None)
    webhooks: WebhookService = field(init=False)
    enrolments: EnrolmentService = field(init=False)
    declarations: DeclarationService = field(init=False)
    terminations: TerminationService = field(init=False)
    transfers: TransferService = field(init=False)
    payments: PaymentService = field(init=False)
    statements: StatementService = field(init=False)
    approvals: ApprovalService = field(init=False)
    vouchers: VoucherService = field(init=False)
    budgets: BudgetService = field(init=False)
    contribution_runs: ContributionRunService = field(init=False)
    reimbursements: ReimbursementService = field(init=False)
    poller: Poller = field(init=False)
    webhook_dispatcher: Dispatcher = field(init=False)
    _tasks: list[asyncio.Task[None]] = field(init=False, default_factory=list)
    _stopping: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    async def start(self) -> None:
        """Build everything; if any step fails, undo the steps that succeeded."""
        try:
            await self._start()
        except BaseException:
            await self.stop(clean=False)
            raise

    async def _start(self) -> None:
        s = self.settings
        # Sandbox data is disposable; a live keyring must be created on purpose and
        # shared by every replica, never invented by one of them.
        self.keyring = Keyring.load_or_create(s.keyring_file) if s.mode == "sandbox" else Keyring.load(s.keyring_file)
        self.cipher = FieldCipher(self.keyring)
        self.jwe_gateway_key = RSAKey.import_key(self.keyring.jwe_private_jwk)
        self.engine = create_engine(s.database_url)
        await upgrade(self.engine)
        self.clients = ClientStore(self.engine, self.cipher, cache_seconds=s.api_key_cache_seconds)
        self.idempotency = IdempotencyStore(
            self.engine,
            self.cipher,
            retention=dt.timedelta(hours=s.idempotency_retention_hours),
            lease=dt.timedelta(seconds=s.idempotency_lease_seconds),
        )
        self.audit = AuditLog(self.engine, flush_seconds=s.audit_flush_seconds)
        self.audit.start()

        def observer_for(environment: str, upstream: UpstreamSettings):  # type: ignore[no-untyped-def]
            return self.audit.observer(environment, upstream.name, upstream.regions)

        self.upstreams = Upstreams()
        if s.upstreams:
            self.upstreams.live = build_upstream_set("live", s.upstreams, observer_for)
        if s.sandbox:
            sandbox = self.sandbox_upstreams
            if sandbox is None:
                self.mocks = SandboxMocks().start()
                sandbox = self.mocks.upstreams
            self.upstreams.sandbox = build_upstream_set("sandbox", sandbox, observer_for)
        self._tasks.append(asyncio.create_task(self._purge_idempotency(), name="idempotency-purge"))
        self.webhook_dispatcher = Dispatcher(
            self.engine,
            self.cipher,
            schedule=RetrySchedule.of(s.webhook_retry_schedule, s.webhook_max_attempts, s.webhook_retry_jitter),
            concurrency=s.webhook_concurrency,
            poll_seconds=s.webhook_poll_seconds,
            timeout=s.webhook_timeout_seconds,
            allow_private_urls=s.webhook_allow_private_urls,
        )
        self.webhooks = WebhookService(
            self.engine, self.cipher, allow_private_urls=s.webhook_allow_private_urls,
            notify=self.webhook_dispatcher.notify,
        )
        # Ends at shutdown after the deliveries under way are recorded (never mid-write).
        self._tasks.append(asyncio.create_task(self.webhook_dispatcher.run(self._stopping), name="webhook-dispatcher"))

        # Slow work with the bureaus: created by requests, then advanced by the poller.
        slow_work = dict(events=self.webhooks, upstreams_for=self.upstreams.get, poll_seconds=s.upstream_poll_seconds)
        self.enrolments = EnrolmentService(
            self.engine, self.cipher, search_deadline=s.search_deadline, **slow_work  # type: ignore[arg-type]
        )
        self.declarations = DeclarationService(self.engine, self.cipher, **slow_work)  # type: ignore[arg-type]
        self.terminations = TerminationService(self.engine, self.cipher, **slow_work)  # type: ignore[arg-type]
        self.transfers = TransferService(
            self.engine, self.cipher, search_deadline=s.search_deadline, **slow_work  # type: ignore[arg-type]
        )
        # Banks and ERPs, and the workflows over them.
        self.payments = PaymentService(self.engine, self.cipher, **slow_work)  # type: ignore[arg-type]
        self.statements = StatementService(self.engine, self.cipher)
        self.approvals = ApprovalService(self.engine, self.cipher, **slow_work)  # type: ignore[arg-type]
        self.vouchers = VoucherService(self.engine, self.cipher, **slow_work)  # type: ignore[arg-type]
        self.budgets = BudgetService()
        self.reimbursements = ReimbursementService(
            self.engine, self.cipher, payments=self.payments, search_deadline=s.search_deadline, **slow_work  # type: ignore[arg-type]
        )
        self.contribution_runs = ContributionRunService(
            self.engine, self.cipher, declarations=self.declarations, approvals=self.approvals,
            payments=self.payments, vouchers=self.vouchers, escalation_delays=s.escalation_delays_seconds,
            wake=lambda: self.poller.notify(),
            **slow_work,  # type: ignore[arg-type]
        )
        self.poller = Poller(
            self.engine,
            [
                Job("enrolment", enrolments, self.enrolments.advance),
                Job("declaration", declarations, self.declarations.advance),
                Job("termination", terminations, self.terminations.advance),
                Job("transfer", transfers, self.transfers.advance),
                Job("payment", payments, self.payments.advance),
                Job("erp_approval", erp_approvals, self.approvals.advance),
                Job("erp_voucher", erp_vouchers, self.vouchers.advance),
                Job("contribution_run", contribution_runs, self.contribution_runs.advance),
                Job("reimbursement", reimbursements, self.reimbursements.advance),
            ],
            interval=s.worker_interval_seconds,
        )
        self.poller.start()

    async def stop(self, *, clean: bool = True) -> None:
        """Stop what was started, each step even if an earlier one failed."""
        # Background loops end at their next wait; none is cancelled mid-write.
        self._stopping.set()
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("poller", lambda: self.poller.stop()),
            ("background tasks", lambda: asyncio.gather(*self._tasks)),
            ("audit log", lambda: self.audit.stop()),
            ("upstream clients", lambda: self.upstreams.aclose()),
            ("mock upstreams", lambda: asyncio.to_thread(self.mocks.stop) if self.mocks else asyncio.sleep(0)),
            ("database", lambda: self.engine.dispose()),
        ]
        failed = []
        for name, step in steps:
            needed = {"poller": "poller", "audit log": "audit", "upstream clients": "upstreams", "database": "engine"}.get(name)
            if needed is not None and not hasattr(self, needed):
                continue  # never started
            try:
                await step()
            except Exception:
                failed.append(name)
                log.exception("stopping the %s failed", name)
        self._tasks.clear()
        if clean and not failed:
            log.info("hr-gateway stopped cleanly (audit flushed, connections closed)")

    async def _purge_idempotency(self) -> None:
        while not self._stopping.is_set():
            try:
                removed = await self.idempotency.purge_expired()
                if removed:
                    log.info("purged %d expired idempotency records", removed)
            except Exception:
                log.exception("idempotency purge failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 300)
