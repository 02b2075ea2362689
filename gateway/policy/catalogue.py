"""The versioned policy catalogue: shipped versions plus those added at run time.

**Which version applies on a date.** A region's versions are ordered by
``effective_from`` (then by version number). On date D the version that applies is
the *latest-starting* one with ``effective_from <= D``, provided D is not after its
own ``effective_to``. A version starting on S therefore ends every earlier one at
S - 1 for lookups, whatever that one's ``effective_to`` says, and an earlier version
never comes back after a later one ends. (A province cutting employer pension from
16% to 15% from S is a new version from S; nothing else changes.)

**No rewriting history.** A new version must start after the start of the region's
latest version, or on the same day if that version is not in force yet (correcting
a scheduled version before it takes effect). Versions are numbered 1..n per region;
added versions continue the shipped numbering.

**In force at once, on every replica.** Added versions are read from the database
on every lookup, not cached, so a version added through any replica is used by the
next calculation on all of them without a restart. Added versions belong to the
environment of the key that added them (a sandbox admin never changes live
calculations); shipped versions apply to every environment.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import ProblemError
from ..ids import new_id
from ..store.tables import audit_events, policy_versions
from .model import PolicyTerms, PolicyVersion, check_terms
from .shipped import shipped_regions

__all__ = ["CHINA_TZ", "PolicyCatalogue", "china_today", "in_force", "resolve"]

log = logging.getLogger("hr_gateway.policy")

#: Policy dates are dates in China (UTC+8 all year, no daylight saving).
CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "CST")
_ADD_ATTEMPTS = 5


def china_today() -> dt.date:
    return dt.datetime.now(CHINA_TZ).date()


def resolve(versions: Iterable[PolicyVersion]) -> list[PolicyVersion]:
    """Order a region's versions and set each one's ``in_force_until`` (the precedence rule)."""
    ordered = sorted(versions, key=lambda v: (v.effective_from, v.version))
    resolved = []
    for i, version in enumerate(ordered):
        until = version.effective_to
        if i + 1 < len(ordered):
            cut = ordered[i + 1].effective_from - dt.timedelta(days=1)
            until = cut if until is None else min(until, cut)
        resolved.append(msgspec.structs.replace(version, in_force_until=until))
    return resolved


def in_force(versions: Sequence[PolicyVersion], on: dt.date) -> PolicyVersion | None:
    """The version that applies on ``on``, from ``resolve``'d versions."""
    for version in reversed(versions):
        if version.effective_from <= on:
            if version.in_force_until is None or on <= version.in_force_until:
                return version
            return None
    return None


class PolicyCatalogue:
    """One environment's view of the catalogue. Cheap to build: one per request."""

    def __init__(self, engine: AsyncEngine, environment: str) -> None:
        self.engine = engine
        self.environment = environment

    # -- reading ------------------------------------------------------------------

    async def versions(self, region: str) -> list[PolicyVersion]:
        """Every version of a region, resolved; empty if the region has none."""
        shipped = shipped_regions().get(region)
        added = await self._added(policy_versions.c.region == region)
        return resolve([*(shipped.versions if shipped else ()), *added])

    async def policy_for(self, region: str, on: dt.date) -> PolicyVersion | None:
        return in_force(await self.versions(region), on)

    async def all_versions(self) -> dict[str, list[PolicyVersion]]:
        """Every region with at least one version, resolved (the region list)."""
        by_region: dict[str, list[PolicyVersion]] = {code: list(r.versions) for code, r in shipped_regions().items()}
        for version in await self._added():
            by_region.setdefault(version.region, []).append(version)
        return {code: resolve(versions) for code, versions in sorted(by_region.items())}

    async def _added(self, *where: Any) -> list[PolicyVersion]:
        query = sa.select(policy_versions).where(policy_versions.c.environment == self.environment, *where)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_from_row(row) for row in rows]

    # -- adding -------------------------------------------------------------------

    async def add(
        self, region: str, terms: PolicyTerms, *, client_id: str, idempotency_token: str | None = None
    ) -> PolicyVersion:
        """Validate and store a new version; returns it resolved against the others.

        ``idempotency_token`` identifies the Idempotency-Key use: a retry carrying it
        (after an answer was lost) gets the version it already added, not a second one.
        """
        terms = check_terms(terms)
        for _ in range(_ADD_ATTEMPTS):
            if idempotency_token is not None:
                earlier = await self._by_token(idempotency_token)
                if earlier is not None:
                    return earlier
            versions = await self.versions(region)
            self._refuse_overlap(versions, terms)
            number = max((v.version for v in versions), default=0) + 1
            try:
                return await self._insert(region, number, terms, client_id, idempotency_token)
            except IntegrityError:
                # Another replica numbered the same version first (or the same token
                # landed): read again and decide afresh.
                log.info("policy version %s/%s taken concurrently; retrying", region, number)
        raise ProblemError("policy_conflict", f"region {region}: versions are being added concurrently; retry")

    @staticmethod
    def _refuse_overlap(versions: Sequence[PolicyVersion], terms: PolicyTerms) -> None:
        if not versions:
            return
        latest = max(versions, key=lambda v: (v.effective_from, v.version))
        start = terms.effective_from
        if start > latest.effective_from or (start == latest.effective_from and start > china_today()):
            return
        if start == latest.effective_from:
            why = f"is the start of version {latest.version}, which is already in force"
        else:
            why = f"is before the start ({latest.effective_from}) of the latest version {latest.version}"
        raise ProblemError(
            "policy_overlap",
            f"effective_from {start} {why}; a new version must start after it "
            "(versions already in force are never rewritten)",
            field="effective_from",
            latest_version={
                "version": latest.version,
                "effective_from": latest.effective_from.isoformat(),
                "effective_to": latest.effective_to.isoformat() if latest.effective_to else None,
            },
        )

    async def _insert(
        self, region: str, number: int, terms: PolicyTerms, client_id: str, token: str | None
    ) -> PolicyVersion:
        row_id = new_id("pol")
        async with self.engine.begin() as conn:
            await conn.execute(
                policy_versions.insert().values(
                    id=row_id,
                    environment=self.environment,
                    region=region,
                    version=number,
                    effective_from=terms.effective_from,
                    effective_to=terms.effective_to,
                    document=msgspec.json.encode(terms).decode(),
                    created_by=client_id,
                    created_at=dt.datetime.now(dt.timezone.utc),
                    idempotency_token=token,
                )
            )
            # Audited in the same transaction: a version in force is never unaccounted for.
            await conn.execute(
                audit_events.insert().values(
                    at=dt.datetime.now(dt.timezone.utc),
                    client_id=client_id,
                    environment=self.environment,
                    operation="policy.add",
                    upstream="gateway",
                    region=region,
                    gateway_id=row_id,
                    upstream_code=f"v{number}",
                    outcome=f"added version {number} effective {terms.effective_from.isoformat()}",
                    attempts=0,
                    latency_ms=0.0,
                )
            )
        return await self._stored(policy_versions.c.id == row_id)  # type: ignore[return-value]

    async def _by_token(self, token: str) -> PolicyVersion | None:
        return await self._stored(policy_versions.c.idempotency_token == token)

    async def _stored(self, *where: Any) -> PolicyVersion | None:
        found = await self._added(*where)
        if not found:
            return None
        region = found[0].region
        return next(v for v in await self.versions(region) if v.version == found[0].version)


def _from_row(row: Any) -> PolicyVersion:
    terms = msgspec.json.decode(row.document, type=PolicyTerms)
    fields = {f: getattr(terms, f) for f in PolicyTerms.__struct_fields__}
    return PolicyVersion(
        **fields,
        region=row.region,
        version=row.version,
        origin="added",
        created_by=row.created_by,
        created_at=row.created_at,
    )
