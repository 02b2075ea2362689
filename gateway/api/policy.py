"""Contribution policy endpoints: regions, the version in force, calculations, and
adding a version (admin).

Reads and calculations are queries (no upstream effect, no Idempotency-Key); adding
a version is an effect and goes through the Idempotency-Key machinery like every
other effectful POST.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import QueryParameter

from ..errors import ProblemError
from ..idempotency import IDEMPOTENCY_TOKEN
from ..policy import (
    Calculation,
    PolicyCatalogue,
    PolicyTerms,
    PolicyVersion,
    RegionName,
    calculate,
    check_input,
    china_today,
    in_force,
    region_name,
    shipped_regions,
)
from ..policy.model import EARLIEST, LATEST
from ..validation import check_date
from .dependencies import ApiCall
from .schemas import RegionCode
from .social_security import IDEMPOTENCY_HEADER

__all__ = ["CalculationIn", "PolicyController", "PolicySpan", "RegionOut"]

_CODE = re.compile(r"[0-9]{6}")


class CalculationIn(msgspec.Struct, forbid_unknown_fields=True):
    region: RegionCode
    period: Annotated[str, msgspec.Meta(description="The month, YYYY-MM; the version in force on its first day applies")]
    salary: Annotated[
        Decimal | None, msgspec.Meta(description="Monthly salary, CNY; clamped to the region's base range")
    ] = None
    base: Annotated[
        Decimal | None, msgspec.Meta(description="Contribution base, CNY, used as it is (must lie within the range)")
    ] = None
    hire_date: Annotated[
        dt.date | None, msgspec.Meta(description="Hired during the period: the region's proration rule applies")
    ] = None


class PolicySpan(msgspec.Struct):
    versions: int
    effective_from: dt.date
    in_force_until: dt.date | None
    sample_data: bool


class RegionOut(msgspec.Struct):
    code: str
    name: RegionName | None
    bureau: bool
    policies: PolicySpan | None


class PolicyController(Controller):
    path = "/v1/social-security"
    tags = ["contribution policy"]

    @get("/regions", opt={"scope": "social_security:read"}, summary="Regions with a policy or a bureau")
    async def list_regions(self, call: ApiCall) -> list[RegionOut]:
        """Every region with policy versions or a bureau for the key's environment, with the span its versions
        cover (`in_force_until` null: open-ended) and whether any of them is sample data."""
        by_region = await _catalogue(call).all_versions()
        bureaus = set(call.upstreams.regions())
        return [
            RegionOut(code, region_name(code), code in bureaus, _span(by_region.get(code, [])))
            for code in sorted(set(by_region) | bureaus)
        ]

    @get("/regions/{code:str}/policy", opt={"scope": "social_security:read"}, summary="The policy version in force")
    async def policy_on(
        self,
        code: str,
        call: ApiCall,
        on: Annotated[dt.date | None, QueryParameter(description="The date (YYYY-MM-DD); default today in China")] = None,
    ) -> PolicyVersion:
        """404 `no_policy` when no version of the region is in force on the date."""
        code = _check_code(code)
        day = check_date(on, "on", earliest=EARLIEST, latest=LATEST) if on is not None else china_today()
        versions = await _catalogue(call).versions(code)
        policy = in_force(versions, day)
        if policy is None:
            raise ProblemError(
                "no_policy",
                f"region {code} has no policy versions" if not versions
                else f"no version of region {code} is in force on {day}",
                region=code,
                on=day.isoformat(),
            )
        return policy

    @post(
        "/contribution-calculations",
        opt={"scope": "social_security:read"},
        status_code=200,
        summary="Calculate a month's contributions",
    )
    async def calculate(self, data: CalculationIn, call: ApiCall) -> Calculation:
        """Base = salary clamped to the region's floor and ceiling (or `base` as given), times each rate, times
        the month's share, rounded per amount by the version's rule. A query: nothing is stored."""
        given = check_input(data.period, salary=data.salary, base=data.base, hire_date=data.hire_date)
        catalogue = _catalogue(call)
        versions = await catalogue.versions(data.region)
        if not versions:
            raise ProblemError(
                "unknown_policy_region",
                f"region: the gateway has no contribution policy for {data.region}",
                field="region",
                known_regions=sorted(await catalogue.all_versions()),
            )
        policy = in_force(versions, given.first_day)
        if policy is None:
            raise ProblemError(
                "period_not_covered",
                f"period: no version of region {data.region} is in force on {given.first_day}",
                field="period",
                covered=_covered(versions),
            )
        return calculate(policy, given)

    @post(
        "/regions/{code:str}/policies",
        opt={"scope": "admin", "idempotent": True},
        status_code=201,
        summary="Add a policy version (admin)",
    )
    async def add_policy(
        self,
        code: str,
        data: PolicyTerms,
        idempotency_key: IDEMPOTENCY_HEADER,
        call: ApiCall,
        request: Request,
    ) -> PolicyVersion:
        """In force from `effective_from` at once, on every replica, for the key's environment. It must start after
        the region's latest version (422 `policy_overlap`); it ends earlier versions the day before it starts."""
        code = _check_code(code)
        catalogue = _catalogue(call)
        if code not in shipped_regions() and code not in call.upstreams.regions() and not await catalogue.versions(code):
            raise ProblemError(
                "unknown_policy_region",
                f"region {code} has neither shipped policy data nor a bureau for this key's environment",
                field="region",
            )
        return await catalogue.add(
            code, data, client_id=call.client.id, idempotency_token=request.scope.get(IDEMPOTENCY_TOKEN)
        )


def _catalogue(call: ApiCall) -> PolicyCatalogue:
    return PolicyCatalogue(call.gateway.engine, call.client.environment)


def _check_code(code: str) -> str:
    if not _CODE.fullmatch(code):
        raise ProblemError("invalid_field", "code: a 6-digit administrative division code, e.g. 430100", field="code")
    return code


def _span(versions: list[PolicyVersion]) -> PolicySpan | None:
    used = [v for v in versions if v.in_force_until is None or v.in_force_until >= v.effective_from]
    if not used:
        return None
    last = max(used, key=lambda v: (v.effective_from, v.version))
    return PolicySpan(len(versions), used[0].effective_from, last.in_force_until, any(v.sample_data for v in used))


def _covered(versions: list[PolicyVersion]) -> list[dict[str, str | int | None]]:
    return [
        {
            "version": v.version,
            "effective_from": v.effective_from.isoformat(),
            "in_force_until": v.in_force_until.isoformat() if v.in_force_until else None,
        }
        for v in versions
        if v.in_force_until is None or v.in_force_until >= v.effective_from
    ]
