"""JWE compact serialization for request and response bodies.

Accepted: ``enc`` ``A256GCM`` with ``alg`` ``dir`` (the client's own 256-bit key,
named by ``kid``) or ``alg`` ``RSA-OAEP-256`` (to the gateway's key in its JWKS).
Responses are always ``dir`` + ``A256GCM`` under the client's key. Compression
(``zip``) and critical extensions (``crit``) are refused.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey, RSAKey

__all__ = ["JOSE_CONTENT_TYPE", "JweError", "decrypt_body", "encrypt_body", "public_jwks"]

JOSE_CONTENT_TYPE = "application/jose"
ENC = "A256GCM"
ASYMMETRIC_ALG = "RSA-OAEP-256"
_ALLOWED_HEADER = frozenset({"alg", "enc", "kid", "cty", "typ"})
_MAX_HEADER_CHARS = 4096


class JweError(ValueError):
    """The body is not a JWE this gateway can decrypt; the message says why."""


def _protected_header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 5:
        raise JweError("not a JWE compact serialization (expected five dot-separated parts)")
    if len(parts[0]) > _MAX_HEADER_CHARS:
        raise JweError("the protected header is too large")
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise JweError("the protected header is not base64url JSON") from exc
    if not isinstance(header, dict):
        raise JweError("the protected header is not a JSON object")
    return header


def decrypt_body(token: bytes, *, client_kid: str, client_key: OctKey, gateway_key: RSAKey) -> bytes:
    try:
        text = token.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise JweError("a JWE compact serialization is ASCII") from exc
    header = _protected_header(text)
    extra = set(header) - _ALLOWED_HEADER
    if extra:
        raise JweError(f"unsupported header parameters: {', '.join(sorted(extra))}")
    if header.get("enc") != ENC:
        raise JweError(f"enc must be {ENC}")
    alg = header.get("alg")
    kid = header.get("kid")
    key: OctKey | RSAKey
    if alg == "dir":
        if kid != client_kid:
            raise JweError("unknown kid: alg dir must name this API key's JWE key id")
        key = client_key
    elif alg == ASYMMETRIC_ALG:
        if kid is not None and kid != gateway_key.kid:
            raise JweError("unknown kid: not a key in the gateway's JWKS")
        key = gateway_key
    else:
        raise JweError(f"alg must be dir or {ASYMMETRIC_ALG}")
    try:
        return jwe.decrypt_compact(text, key, algorithms=[alg, ENC]).plaintext or b""
    except (JoseError, ValueError, TypeError) as exc:
        raise JweError("decryption failed (tampered, truncated or encrypted under another key)") from exc


def encrypt_body(plaintext: bytes, *, client_kid: str, client_key: OctKey, content_type: str) -> bytes:
    header = {"alg": "dir", "enc": ENC, "kid": client_kid, "cty": content_type}
    return jwe.encrypt_compact(header, plaintext, client_key).encode("ascii")


def public_jwks(private_jwk: dict[str, Any]) -> dict[str, Any]:
    key = RSAKey.import_key(private_jwk)
    return {"keys": [key.as_dict(private=False)]}
