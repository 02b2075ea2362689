"""Encryption: JWE request/response bodies, PII field encryption, the keyring."""

from .jwe import JOSE_CONTENT_TYPE, JweError, decrypt_body, encrypt_body, public_jwks
from .keyring import Keyring, KeyringError
from .pii import (
    FieldCipher,
    mask_account_number,
    mask_id_number,
    mask_id_numbers_in,
    mask_name,
    normalize_id_number,
)

__all__ = [
    "JOSE_CONTENT_TYPE",
    "FieldCipher",
    "JweError",
    "Keyring",
    "KeyringError",
    "decrypt_body",
    "encrypt_body",
    "mask_account_number",
    "mask_id_number",
    "mask_id_numbers_in",
    "mask_name",
    "normalize_id_number",
    "public_jwks",
]
