"""Turn every exception into an RFC 9457 problem document; never leak a trace."""

from __future__ import annotations

import logging
import re

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.exceptions.http_exceptions import MethodNotAllowedException

from ..errors import PROBLEM_CONTENT_TYPE, ProblemError
from .asgi import REFUSED

__all__ = ["exception_handlers"]

log = logging.getLogger("hr_gateway.errors")

_LOCATION = re.compile(r" - at `\$\.?(?P<path>[^`]*)`")


def _problem(request: Request, error: ProblemError) -> Response[bytes]:
    request.scope[REFUSED] = error.refusal  # type: ignore[literal-required]
    return Response(
        content=error.to_dict(request.url.path),
        status_code=error.status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=error.headers,
    )


def _from_validation(exc: ValidationException) -> ProblemError:
    """Classify Litestar's (msgspec's) decoding messages into stable codes."""
    items = [i for i in (exc.extra if isinstance(exc.extra, list) else []) if isinstance(i, dict) and i.get("message")]
    text = str(items[0]["message"]) if items else str(exc.detail)
    key = str(items[0].get("key")) if items and items[0].get("key") not in (None, "data") else None
    found = _LOCATION.search(text)
    field = found.group("path").replace("[", ".").replace("]", "") if found else key
    clean = _LOCATION.sub("", text)
    lowered = text.lower()
    if "malformed" in lowered or "truncated" in lowered or "invalid json" in lowered or "decode" in lowered:
        return ProblemError("malformed_json", "the body is not valid JSON")
    if "unknown field" in lowered:
        unknown = re.search(r"unknown field `([^`]*)`", text)
        name = unknown.group(1) if unknown else None
        full = f"{field}.{name}" if field and name else name
        return ProblemError("unknown_field", f"unknown field {full!r}", field=full)
    if "missing required field" in lowered:
        missing = re.search(r"required field `([^`]*)`", text)
        name = missing.group(1) if missing else None
        full = f"{field}.{name}" if field and name else name
        return ProblemError("missing_field", f"missing required field {full!r}", field=full)
    return ProblemError("invalid_field", f"{field}: {clean}" if field else clean, field=field)


def _problem_handler(request: Request, exc: ProblemError) -> Response[bytes]:
    return _problem(request, exc)


def _validation_handler(request: Request, exc: ValidationException) -> Response[bytes]:
    return _problem(request, _from_validation(exc))


def _http_handler(request: Request, exc: HTTPException) -> Response[bytes]:
    if isinstance(exc, NotFoundException):
        return _problem(request, ProblemError("not_found", "no such resource"))
    if isinstance(exc, MethodNotAllowedException):
        return _problem(request, ProblemError("method_not_allowed", str(exc.detail)))
    if exc.status_code == 415:
        return _problem(request, ProblemError("unsupported_media_type", "send application/json or application/jose"))
    if exc.status_code == 413:
        return _problem(request, ProblemError("payload_too_large"))
    detail = str(exc.detail)
    if exc.status_code == 400 and any(w in detail.lower() for w in ("malformed", "truncated", "decode")):
        return _problem(request, ProblemError("malformed_json", f"the body is not valid JSON: {detail}"))
    if exc.status_code < 500:
        return _problem(request, ProblemError("invalid_field", detail))
    log.error("HTTP %s while handling %s %s", exc.status_code, request.method, request.url.path)
    return _problem(request, ProblemError("internal_error"))


def _recursion_handler(request: Request, exc: RecursionError) -> Response[bytes]:
    return _problem(request, ProblemError("malformed_json", "the body is nested too deeply"))


def _internal_handler(request: Request, exc: Exception) -> Response[bytes]:
    log.error("unhandled %s while handling %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
    return _problem(request, ProblemError("internal_error", "the gateway failed; the request id identifies it in the logs"))


exception_handlers = {
    ProblemError: _problem_handler,
    ValidationException: _validation_handler,
    HTTPException: _http_handler,
    RecursionError: _recursion_handler,
    Exception: _internal_handler,
}
