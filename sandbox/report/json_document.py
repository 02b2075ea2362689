"""The migration report as JSON: exactly the report dict, UTF-8, indented for reading."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = ["render_json"]

_encoder = msgspec.json.Encoder()
# Lone surrogates stand for bytes a file's encoding could not decode; UTF-8 cannot carry them.
_SURROGATES = re.compile("[\ud800-\udfff]")


def render_json(report: Mapping[str, Any]) -> bytes:
    """The report dict encoded as JSON (keys in the dict's order, non-ASCII text kept as is).

    Dates, datetimes and decimals that reach here are written as ISO 8601 and decimal
    strings (msgspec's defaults), so the document never depends on float rounding. Text
    holding undecodable bytes is written with U+FFFD in their place.
    """
    try:
        body = _encoder.encode(report)
    except UnicodeEncodeError:
        body = _encoder.encode(_replace_surrogates(report))
    return msgspec.json.format(body, indent=2) + b"\n"


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATES.sub("\ufffd", value)
    if isinstance(value, Mapping):
        return {_replace_surrogates(key): _replace_surrogates(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_replace_surrogates(item) for item in value]
    return value
