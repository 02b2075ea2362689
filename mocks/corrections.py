"""The bureaus' clerk control route, ``POST /__mock__/contributions``.

Every mock bureau lets a test (or a person rehearsing in the sandbox) correct a
person's monthly contribution status, as a bureau clerk recording arrears made good.
The request is the same for every dialect, so its parsing lives here; each bureau
supplies its own ``set_contribution_status``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from mocks.resident_id import mask
from mocks.server import Request, Response

__all__ = ["correct_contributions"]


def correct_contributions(request: Request, set_status: Callable[..., Any]) -> Response:
    """``set_status`` from a JSON body ``{"id_number", "period", "status",
    "insurance_type"?, "paid_on"?}``: 200 with the corrected months, 404 if the bureau
    holds no such person or month, 400 for a malformed body."""
    try:
        body = json.loads(request.body)
        if not isinstance(body, dict) or not isinstance(body.get("id_number"), str):
            raise ValueError("the body must be a JSON object with id_number, period and status")
        if not isinstance(body.get("period"), str) or not isinstance(body.get("status"), str):
            raise ValueError("period and status must be strings")
        months = set_status(
            body["id_number"], body["period"], body["status"], body.get("insurance_type"), paid_on=body.get("paid_on")
        )
    except LookupError as exc:
        return Response.json(HTTPStatus.NOT_FOUND, {"error": str(exc)})
    except (ValueError, TypeError, RecursionError) as exc:
        return Response.json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
    return Response.json(HTTPStatus.OK, {"id_number": mask(body["id_number"]), "months": months})
