"""PII at rest: AES-256-GCM field encryption and keyed blind indexes.

A ciphertext is ``<kid>.<base64url(nonce || ciphertext+tag)>``. The column it belongs
to is bound in as associated data, so a value copied into another column does not
decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .keyring import Keyring

__all__ = [
    "KEYRING_REFRESH_SECONDS",
    "FieldCipher",
    "mask_account_number",
    "mask_id_number",
    "mask_id_numbers_in",
    "mask_name",
    "normalize_id_number",
]


def normalize_id_number(value: str) -> str:
    return value.strip().upper()


def mask_id_number(value: str) -> str:
    """``440104199003120213`` -> ``4401**********0213`` (what logs may show)."""
    value = value.strip()
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_account_number(value: str) -> str:
    """``6222021001122334458`` -> ``************4458``: the last four, as banks print them."""
    value = value.strip()
    return "*" * max(len(value) - 4, 4) + value[-4:] if len(value) > 4 else "*" * len(value)


def mask_name(value: str) -> str:
    """``王芳`` -> ``王*``, ``Wang Fang`` -> ``W********``: the first character only."""
    value = value.strip()
    return value[:1] + "*" * (len(value) - 1) if value else value


_ID_PATTERN = re.compile(r"(?<![0-9A-Za-z])(\d{4})\d{10}(\d{3}[\dXx])(?![0-9A-Za-z])")


def mask_id_numbers_in(text: str) -> str:
    return _ID_PATTERN.sub(lambda m: m.group(1) + "*" * 10 + m.group(2), text)


#: How often a running gateway looks at the keyring file for a rotation.
KEYRING_REFRESH_SECONDS = 10.0


class FieldCipher:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._checked = time.monotonic()

    def encrypt(self, plaintext: str | bytes, column: str) -> str:
        if time.monotonic() - self._checked > KEYRING_REFRESH_SECONDS:
            # `hr-gateway keys rotate` in another process: start using the new key.
            self._checked = time.monotonic()
            self.keyring.reload_if_changed()
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        kid = self.keyring.active
        nonce = os.urandom(12)
        sealed = AESGCM(self.keyring.data_keys[kid]).encrypt(nonce, data, column.encode())
        return f"{kid}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt_bytes(self, token: str, column: str) -> bytes:
        kid, _, body = token.partition(".")
        key = self.keyring.data_keys.get(kid)
        if key is None and self.keyring.path is not None:
            # Rotated by `hr-gateway keys rotate` in another process: pick up the new keyring.
            self.keyring.reload()
            key = self.keyring.data_keys.get(kid)
        if key is None:
            raise ValueError(f"no data key {kid!r} in the keyring")
        raw = base64.urlsafe_b64decode(body)
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], column.encode())
        except InvalidTag as exc:
            raise ValueError(f"ciphertext in {column} failed authentication") from exc

    def decrypt(self, token: str, column: str) -> str:
        return self.decrypt_bytes(token, column).decode()

    def blind_index(self, id_number: str) -> str:
        return hmac.new(
            self.keyring.blind_index_key, normalize_id_number(id_number).encode(), hashlib.sha256
        ).hexdigest()
