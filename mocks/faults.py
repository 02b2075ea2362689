"""Fault injection shared by every mock upstream.

Faults describe *what* goes wrong (slowness, errors, throttling, lost
connections); each mock decides *how* an error looks on its own wire format, so
nothing here knows about envelopes or status codes beyond plain numbers.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

ANY_ROUTE = "*"
# A route without a slash names an operation inside the request rather than a path,
# e.g. the TransCode ``E001`` of xml-gbk, where every call goes to the same path.
_OPERATION = re.compile(r"[A-Za-z0-9_.-]+")


class FaultKind(StrEnum):
    """What a fault does to a matching request."""

    LATENCY = "latency"
    """Sleep ``latency_ms`` and then answer normally; combines with other faults."""
    ERROR = "error"
    """Answer HTTP ``status`` with the dialect's bureau-failure error."""
    RATE_LIMIT = "rate_limit"
    """Answer the dialect's busy status (429, or 503 where the dialect says so) with
    ``Retry-After: retry_after`` and the dialect's throttle error."""
    DROP = "drop"
    """Close the connection without a response, before processing the request."""
    DROP_AFTER = "drop_after"
    """Process the request (state changes happen), then close without a response."""


# The parameters each kind understands, besides ``times`` and ``match_id_number``.
_KIND_PARAMETERS: dict[FaultKind, frozenset[str]] = {
    FaultKind.LATENCY: frozenset({"latency_ms"}),
    FaultKind.ERROR: frozenset({"status"}),
    FaultKind.RATE_LIMIT: frozenset({"retry_after"}),
    FaultKind.DROP: frozenset(),
    FaultKind.DROP_AFTER: frozenset(),
}
_COMMON_PARAMETERS = frozenset({"times", "match_id_number"})

# Short names accepted on the command line, mapped to Fault field names.
_SPEC_KEYS = {
    "ms": "latency_ms",
    "latency_ms": "latency_ms",
    "status": "status",
    "retry_after": "retry_after",
    "times": "times",
    "match": "match_id_number",
    "match_id_number": "match_id_number",
}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Fault:
    """One injected fault; immutable, the remaining count lives in the FaultBook.

    ``route`` is ``*`` (every business request), a path starting with ``/``, or an
    operation name such as ``E001`` that matches requests whose dialect reports that
    operation (see ``RequestKeys.operation``). ``kind`` may be given as its string
    value (``"drop"``); it is stored as a FaultKind.
    """

    route: str
    kind: FaultKind
    latency_ms: int = 0
    status: int = 503
    retry_after: int = 1
    times: int | None = None
    match_id_number: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.route, str) or not (
            self.route == ANY_ROUTE or self.route.startswith("/") or _OPERATION.fullmatch(self.route)
        ):
            raise ValueError(
                "fault route must be '*', a path starting with '/' or an operation name"
                f" such as 'E001', got {self.route!r}"
            )
        try:
            object.__setattr__(self, "kind", FaultKind(self.kind))
        except ValueError:
            known = ", ".join(kind.value for kind in FaultKind)
            raise ValueError(f"unknown fault kind {self.kind!r} (known: {known})") from None
        if not _is_int(self.latency_ms) or self.latency_ms < 0:
            raise ValueError(f"latency_ms must be a non-negative integer, got {self.latency_ms!r}")
        if self.kind is FaultKind.LATENCY and self.latency_ms == 0:
            raise ValueError("a latency fault needs a positive latency (ms=...)")
        if not _is_int(self.status) or not 400 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP error status 400-599, got {self.status!r}")
        if not _is_int(self.retry_after) or self.retry_after < 0:
            raise ValueError(f"retry_after must be a non-negative integer, got {self.retry_after!r}")
        if self.times is not None and (not _is_int(self.times) or self.times < 1):
            raise ValueError(f"times must be a positive integer or null, got {self.times!r}")
        if self.match_id_number is not None and (
            not isinstance(self.match_id_number, str) or not self.match_id_number
        ):
            raise ValueError(f"match_id_number must be a non-empty string, got {self.match_id_number!r}")

    @property
    def is_outcome(self) -> bool:
        """True when the fault decides the response (everything but latency)."""
        return self.kind is not FaultKind.LATENCY

    def matches(self, route: str, id_number: str | None, operation: str | None = None) -> bool:
        """Whether this fault applies to a request on ``route`` (a path), naming
        ``operation`` if the dialect has operations, about ``id_number``."""
        if self.route != ANY_ROUTE and self.route != route and (operation is None or self.route != operation):
            return False
        return self.match_id_number is None or self.match_id_number == id_number

    @classmethod
    def from_json(cls, obj: object) -> Fault:
        """Build a fault from a decoded JSON object (the control plane's form)."""
        if not isinstance(obj, Mapping):
            raise ValueError("a fault must be a JSON object")
        for required in ("route", "kind"):
            if required not in obj:
                raise ValueError(f"a fault needs {required!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(map(str, unknown))}")
        return cls(**obj)

    def to_json(self) -> dict[str, Any]:
        """The fault as a JSON-ready object, inverse of :meth:`from_json`."""
        data = dataclasses.asdict(self)
        data["kind"] = self.kind.value
        return data


def parse_fault(text: str) -> Fault:
    """Parse the command-line form ``ROUTE:KIND[:k=v,k=v]``.

    Examples: ``/api/v1/insured/query:latency:ms=500``, ``*:error:status=503,times=3``,
    ``*:error:match=440104199003120213``. Parameters that the kind does not use are
    refused, so a typo never silently turns into a default.
    """
    parts = text.strip().split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError(f"fault spec {text!r} is not ROUTE:KIND[:k=v,...]")
    route, kind_text = parts[0], parts[1]
    try:
        kind = FaultKind(kind_text)
    except ValueError:
        known = ", ".join(k.value for k in FaultKind)
        raise ValueError(f"fault spec {text!r}: unknown kind {kind_text!r} (known: {known})") from None
    allowed = _KIND_PARAMETERS[kind] | _COMMON_PARAMETERS
    params: dict[str, Any] = {}
    for item in (parts[2].split(",") if len(parts) == 3 and parts[2] else []):
        key, sep, value = item.partition("=")
        field_name = _SPEC_KEYS.get(key.strip())
        if not sep or field_name is None:
            raise ValueError(f"fault spec {text!r}: bad parameter {item!r}")
        if field_name not in allowed:
            raise ValueError(f"fault spec {text!r}: {key.strip()!r} does not apply to {kind.value}")
        value = value.strip()
        if field_name == "match_id_number":
            params[field_name] = value
            continue
        try:
            params[field_name] = int(value)
        except ValueError:
            raise ValueError(f"fault spec {text!r}: {key.strip()} must be an integer, got {value!r}") from None
    try:
        return Fault(route=route, kind=kind, **params)
    except ValueError as exc:
        raise ValueError(f"fault spec {text!r}: {exc}") from None


class FaultBook:
    """The active faults of one mock server, safe to use from handler threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[tuple[Fault, int | None]] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._entries.append((fault, fault.times))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def take(self, route: str, id_number: str | None, operation: str | None = None) -> list[Fault]:
        """Return the faults that fire for this request and use up one of their times.

        Every matching latency fault fires; of the faults that decide the outcome,
        only the earliest added one fires (a request can be answered only once), so a
        shadowed fault keeps its remaining count.
        """
        fired: list[Fault] = []
        remaining: list[tuple[Fault, int | None]] = []
        outcome_taken = False
        with self._lock:
            for fault, left in self._entries:
                fires = fault.matches(route, id_number, operation) and not (fault.is_outcome and outcome_taken)
                if fires:
                    fired.append(fault)
                    outcome_taken = outcome_taken or fault.is_outcome
                    if left is not None:
                        left -= 1
                if left is None or left > 0:
                    remaining.append((fault, left))
            self._entries = remaining
        return fired
