"""Social-insurance endpoints: participation searches and enrolments."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, get, post
from litestar.params import HeaderParameter

from adapters import Capability, Person

from ..encryption import mask_id_number
from ..idempotency import IDEMPOTENCY_TOKEN
from ..services import search_participation
from ..validation import check_id_number, check_region
from .dependencies import ApiCall
from .schemas import (
    Anomaly,
    EnrolmentIn,
    EnrolmentOut,
    MaskedPerson,
    ParticipationSearchIn,
    ParticipationSearchOut,
    RegionOutcome,
)

__all__ = ["IDEMPOTENCY_HEADER", "SocialSecurityController"]

IDEMPOTENCY_HEADER = Annotated[
    str,
    HeaderParameter(
        name="Idempotency-Key",
        description=(
            "Required. A unique key per intended operation (a UUID). A retry with the same key and body replays the "
            "first response (Idempotent-Replayed: true) for 24 hours by default; with another body it is refused (422); "
            "while the first is still running, 409 with Retry-After."
        ),
        min_length=1,
        max_length=257,
    ),
]


class SocialSecurityController(Controller):
    path = "/v1/social-security"
    tags = ["social security"]

    @post(
        "/participation-searches",
        opt={"scope": "social_security:read"},
        status_code=200,
        summary="Search a person's participation in every region",
    )
    async def search(
        self, data: ParticipationSearchIn, call: ApiCall
    ) -> ParticipationSearchOut:
        """Fans out to every region with a bureau (or those listed) at once. A region that fails or is too slow
        is reported in `regions` with its outcome; it never fails the search."""
        id_number = check_id_number(data.id_number, "id_number")
        upstreams = call.upstreams
        known = upstreams.regions(Capability.PARTICIPATION_SEARCH)
        regions = [check_region(r, known, f"regions[{i}]") for i, r in enumerate(data.regions)] if data.regions else known
        result = await search_participation(
            upstreams, Person(id_number, data.name.strip()), sorted(set(regions)), call.context,
            deadline=call.gateway.settings.search_deadline,
        )
        multiple = result.multiple_active()
        return ParticipationSearchOut(
            person=MaskedPerson(mask_id_number(id_number)),
            complete=result.complete,
            records=result.records,
            active_regions=sorted({r.region for r in result.active()}),
            paid_months=result.paid_months(),
            anomalies=[
                Anomaly("multiple_active", t, regions, f"{t} is active in {len(regions)} regions at once")  # type: ignore[arg-type]
                for t, regions in multiple.items()
            ],
            regions=[
                RegionOutcome(r.region, r.upstream, r.outcome, len(r.records), round(r.latency_ms, 1), r.error)  # type: ignore[arg-type]
                for r in result.regions
            ],
        )

    @post(
        "/enrolments",
        opt={"scope": "social_security:submit", "idempotent": True},
        status_code=201,
        summary="Enrol an employee with a region's bureau",
    )
    async def enrol(
        self,
        data: EnrolmentIn,
        idempotency_key: IDEMPOTENCY_HEADER,
        call: ApiCall,
        request: Request,
    ) -> EnrolmentOut:
        """Refused with 409 `transfer_required` when the person is actively insured in another region for a
        requested insurance type; otherwise submitted to the region's bureau exactly once."""
        return await call.gateway.enrolments.enrol(
            call.client, data, call.upstreams, call.context, request.scope.get(IDEMPOTENCY_TOKEN)
        )

    @get("/enrolments/{enrolment_id:str}", opt={"scope": "social_security:read"}, summary="An enrolment")
    async def get_enrolment(self, enrolment_id: str, call: ApiCall) -> EnrolmentOut:
        return await call.gateway.enrolments.get(call.client, enrolment_id)

