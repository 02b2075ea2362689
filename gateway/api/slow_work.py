"""Slow work with the bureaus: declarations, transfers and terminations.

Each POST validates, records the work, makes the first submission and answers 202
with the resource; the gateway then keeps ``status`` (and a transfer's
``timeline``) current by polling the bureau, and announces every change by webhook.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import HeaderParameter

from ..documents import build_transfer_application, render_pdf
from ..errors import ProblemError
from ..idempotency import IDEMPOTENCY_TOKEN
from .dependencies import ApiCall
from .schemas import DeclarationIn, DeclarationOut, TerminationIn, TerminationOut, TransferIn, TransferOut
from .social_security import IDEMPOTENCY_HEADER

__all__ = ["DeclarationsController", "TerminationsController", "TransfersController"]

# Application dates are printed as the bureaus keep them: China Standard Time.
_CHINA = dt.timezone(dt.timedelta(hours=8))


class DeclarationsController(Controller):
    path = "/v1/social-security/declarations"
    tags = ["social security"]

    @post(
        "/",
        opt={"scope": "social_security:submit", "idempotent": True},
        status_code=202,
        summary="Declare a month's changes of an employer's insured employees",
    )
    async def declare(
        self, data: DeclarationIn, idempotency_key: IDEMPOTENCY_HEADER, call: ApiCall, request: Request
    ) -> DeclarationOut:
        """Every line is validated and computed with the policy in force for the period; invalid lines are
        reported line by line (and, with `all_or_nothing`, nothing is sent: 422 `declaration_invalid`). The valid
        lines go to the region's bureau; `status` and each line's `status` follow the bureau's decision."""
        return await call.gateway.declarations.create(
            call.client, data, call.upstreams, call.context, request.scope.get(IDEMPOTENCY_TOKEN)
        )

    @get("/{declaration_id:str}", opt={"scope": "social_security:read"}, summary="A declaration, line by line")
    async def get_declaration(self, declaration_id: str, call: ApiCall) -> DeclarationOut:
        return await call.gateway.declarations.get(call.client, declaration_id)


class TransfersController(Controller):
    path = "/v1/social-security/transfers"
    tags = ["social security"]

    @post(
        "/",
        opt={"scope": "social_security:submit", "idempotent": True},
        status_code=202,
        summary="Transfer a person's insurance relationship to another region",
    )
    async def transfer(
        self, data: TransferIn, idempotency_key: IDEMPOTENCY_HEADER, call: ApiCall, request: Request
    ) -> TransferOut:
        """Builds the transfer application and submits it to the source bureau. The gateway then follows it
        through `submitted -> source_reviewed -> funds_transferred -> completed` (the carried months and funds
        registered at the target bureau), or `rejected` with the bureau's reason; each step is in `timeline`
        and sent as a webhook."""
        return await call.gateway.transfers.create(
            call.client, data, call.upstreams, call.context, request.scope.get(IDEMPOTENCY_TOKEN)
        )

    @get("/{transfer_id:str}", opt={"scope": "social_security:read"}, summary="A transfer and its timeline")
    async def get_transfer(self, transfer_id: str, call: ApiCall) -> TransferOut:
        return await call.gateway.transfers.get(call.client, transfer_id)

    @get(
        "/{transfer_id:str}/application",
        opt={"scope": "social_security:read"},
        summary="The transfer application form (JSON, or a printable PDF)",
    )
    async def application(
        self,
        transfer_id: str,
        call: ApiCall,
        accept: Annotated[str | None, HeaderParameter(name="Accept", required=False)] = None,
    ) -> Response[bytes]:
        """The Basic Pension Insurance Relationship Transfer Application (基本养老保险关系转移接续申请表), with the
        applicant's full details: JSON by default, a printable A4 PDF with `Accept: application/pdf`."""
        wanted = _negotiate(accept)
        row, person, records = await call.gateway.transfers.person_of(call.client, transfer_id)
        form = build_transfer_application(
            application_no=row.id,
            applied_on=row.created_at.astimezone(_CHINA).date(),
            id_number=person.id_number,
            name=person.name,
            from_region=row.from_region,
            to_region=row.to_region,
            insurance_types=row.insurance_types.split(),
            source_records=records,
        )
        if wanted == "application/pdf":
            return Response(
                render_pdf(form),
                media_type="application/pdf",
                headers={"Content-Disposition": f'inline; filename="{row.id}-application.pdf"', "Cache-Control": "no-store"},
            )
        return Response(msgspec.json.encode(form), media_type="application/json", headers={"Cache-Control": "no-store"})


class TerminationsController(Controller):
    path = "/v1/social-security/terminations"
    tags = ["social security"]

    @post(
        "/",
        opt={"scope": "social_security:submit", "idempotent": True},
        status_code=202,
        summary="Stop an employee's contributions from a leave date",
    )
    async def terminate(
        self, data: TerminationIn, idempotency_key: IDEMPOTENCY_HEADER, call: ApiCall, request: Request
    ) -> TerminationOut:
        """Sent to the region's bureau as a one-line leave declaration (减员) for the month of `leave_date`;
        `insurance_types` defaults to all five."""
        return await call.gateway.terminations.create(
            call.client, data, call.upstreams, call.context, request.scope.get(IDEMPOTENCY_TOKEN)
        )

    @get("/{termination_id:str}", opt={"scope": "social_security:read"}, summary="A termination")
    async def get_termination(self, termination_id: str, call: ApiCall) -> TerminationOut:
        return await call.gateway.terminations.get(call.client, termination_id)


def _negotiate(accept: str | None) -> str:
    """application/json unless the client prefers application/pdf; 406 if it accepts neither."""
    if not accept:
        return "application/json"
    ranked = []
    for i, part in enumerate(accept.split(",")):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranked.append((-q, i, media.strip().lower()))
    for negative_q, _, media in sorted(ranked):
        if negative_q == 0:
            break
        if media in ("application/pdf", "application/json"):
            return media
        # JSON, which the encryption middleware turns into JWE for application/jose.
        if media in ("*/*", "application/*", "application/jose"):
            return "application/json"
    raise ProblemError("not_acceptable", "this resource is available as application/json or application/pdf")
