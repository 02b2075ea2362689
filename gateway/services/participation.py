"""Participation search: ask every bureau at once, merge what comes back.

A slow or failing region never fails the search: each region reports its own
outcome (``ok``, ``unavailable``, ``timeout``, ``rejected``) and the search as a whole
answers within the configured deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass

from adapters import (
    BureauAdapter,
    BusinessRejection,
    CallContext,
    Capability,
    ParticipationRecord,
    Person,
    UpstreamError,
    UpstreamTimeout,
)

from ..registry import UpstreamSet

__all__ = ["RegionResult", "SearchResult", "search_participation"]

log = logging.getLogger("hr_gateway.participation")


@dataclass(frozen=True, slots=True)
class RegionResult:
    region: str
    upstream: str
    outcome: str
    records: list[ParticipationRecord]
    latency_ms: float
    error: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class SearchResult:
    regions: list[RegionResult]

    @property
    def complete(self) -> bool:
        return all(r.outcome == "ok" for r in self.regions)

    @property
    def records(self) -> list[ParticipationRecord]:
        return [rec for r in self.regions for rec in r.records]

    def active(self) -> list[ParticipationRecord]:
        return [rec for rec in self.records if rec.status == "active"]

    def paid_months(self) -> dict[str, int]:
        totals: dict[str, int] = defaultdict(int)
        for rec in self.records:
            # A transferred-out record's months now belong to the region it moved to.
            if rec.status != "transferred":
                totals[rec.insurance_type] += rec.paid_months
        return dict(sorted(totals.items()))

    def multiple_active(self) -> dict[str, list[str]]:
        """Insurance types active in more than one region at once (an anomaly)."""
        by_type: dict[str, set[str]] = defaultdict(set)
        for rec in self.active():
            by_type[rec.insurance_type].add(rec.region)
        return {t: sorted(regions) for t, regions in sorted(by_type.items()) if len(regions) > 1}


def _failure(exc: BaseException) -> tuple[str, dict[str, str]]:
    if isinstance(exc, UpstreamTimeout):
        return "timeout", {"code": "upstream_timeout", "detail": exc.message}
    if isinstance(exc, BusinessRejection):
        return "rejected", {
            "code": "upstream_rejected",
            "detail": exc.message,
            "upstream_code": exc.upstream_code,
            "upstream_message": exc.upstream_message,
        }
    if isinstance(exc, UpstreamError):
        return "unavailable", {"code": "upstream_unavailable", "detail": exc.message}
    return "unavailable", {"code": "upstream_unavailable", "detail": "the adapter failed unexpectedly"}


async def _ask(bureau: BureauAdapter, region: str, person: Person, context: CallContext) -> RegionResult:
    started = time.monotonic()
    try:
        records = await bureau.search_participation(person, context=context)
    except Exception as exc:  # one region's failure is that region's outcome
        if not isinstance(exc, UpstreamError):
            log.exception("adapter %s failed unexpectedly", bureau.name)
        outcome, error = _failure(exc)
        return RegionResult(region, bureau.name, outcome, [], (time.monotonic() - started) * 1000, error)
    records = [r for r in records if r.region in ("", region)]
    return RegionResult(region, bureau.name, "ok", records, (time.monotonic() - started) * 1000)


async def search_participation(
    upstreams: UpstreamSet, person: Person, regions: list[str], context: CallContext, *, deadline: float
) -> SearchResult:
    """Search ``regions`` concurrently, answering within ``deadline`` seconds."""
    started = time.monotonic()
    context = CallContext(context.request_id, context.client_id, context.gateway_id, started + deadline)
    tasks: dict[asyncio.Task[RegionResult], tuple[str, BureauAdapter]] = {}
    for region in regions:
        bureau = upstreams.bureau_for(region, Capability.PARTICIPATION_SEARCH)
        assert bureau is not None, "regions are checked before searching"
        region_context = CallContext(context.request_id, context.client_id, None, context.deadline, {"region": region})
        tasks[asyncio.create_task(_ask(bureau, region, person, region_context))] = (region, bureau)
    done, pending = await asyncio.wait(tasks, timeout=deadline) if tasks else (set(), set())
    results: list[RegionResult] = [t.result() for t in done]
    for task in pending:
        task.cancel()
        region, bureau = tasks[task]
        results.append(
            RegionResult(region, bureau.name, "timeout", [], deadline * 1000,
                         {"code": "upstream_timeout", "detail": f"no answer within the search deadline of {deadline:g}s"})
        )
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    return SearchResult(sorted(results, key=lambda r: r.region))
