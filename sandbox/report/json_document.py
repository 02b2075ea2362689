"""The migration report as JSON: exactly the report dict, UTF-8, indented for reading."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = ["render_json"]

_encoder = msgspec.json.Encoder()


def render_json(report: Mapping[str, Any]) -> bytes:
    """The report dict encoded as JSON (keys in the dict's order, non-ASCII text kept as is).

    Dates, datetimes and decimals that reach here are written as ISO 8601 and decimal
    strings (msgspec's defaults), so the document never depends on float rounding.
    """
    return msgspec.json.format(_encoder.encode(report), indent=2) + b"\n"
