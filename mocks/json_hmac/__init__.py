"""Mock bureau for the ``json-hmac`` protocol (docs/dialects/json-hmac.md)."""

from mocks.json_hmac.bureau import JsonHmacBureau

__all__ = ["JsonHmacBureau"]
