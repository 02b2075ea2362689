"""The sm4-async envelope primitives: SM4-CBC with PKCS#7 and HMAC-SM3.

``data`` is ``base64(iv ‖ SM4-CBC(key, iv, PKCS#7(plaintext)))`` with a fresh
16-byte IV; signatures are lower-case hex HMAC-SM3 over ``key=value`` pairs in
ASCII key order joined by ``&``, values exactly as sent.
"""

from __future__ import annotations

import base64
import binascii
import hmac as std_hmac
import os
import re
from collections.abc import Mapping

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.hmac import HMAC

BLOCK_BYTES = 16
_HEX_KEY = re.compile(r"[0-9a-fA-F]{32}")


class UndecryptableError(ValueError):
    """``data`` is not base64 of ``iv ‖ ciphertext`` that decrypts and unpads."""


def parse_sm4_key(text: str) -> bytes:
    """The 16 key bytes from 32 hexadecimal characters."""
    if not isinstance(text, str) or not _HEX_KEY.fullmatch(text):
        raise ValueError("sm4_key must be 32 hexadecimal characters (128 bits)")
    return bytes.fromhex(text)


def encrypt(key: bytes, plaintext: bytes, iv: bytes | None = None) -> str:
    """``base64(iv ‖ SM4-CBC(key, iv, PKCS#7(plaintext)))``, a fresh random IV by default."""
    iv = os.urandom(BLOCK_BYTES) if iv is None else iv
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.SM4(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(padded) + encryptor.finalize()).decode("ascii")


def decrypt(key: bytes, data: str) -> bytes:
    """The plaintext of ``data``; ``UndecryptableError`` says which step failed."""
    try:
        raw = base64.b64decode(data.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise UndecryptableError("data is not standard padded base64") from None
    ciphertext = raw[BLOCK_BYTES:]
    if len(raw) <= BLOCK_BYTES or len(ciphertext) % BLOCK_BYTES:
        raise UndecryptableError("ciphertext after the IV is not a positive multiple of 16 bytes")
    decryptor = Cipher(algorithms.SM4(key), modes.CBC(raw[:BLOCK_BYTES])).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise UndecryptableError("wrong PKCS#7 padding") from None


def string_to_sign(fields: Mapping[str, str]) -> str:
    """``k1=v1&k2=v2…`` with keys in ASCII order and values as sent."""
    return "&".join(f"{key}={fields[key]}" for key in sorted(fields))


def mac(mac_key: str, text: str) -> str:
    """Lower-case hex HMAC-SM3 of ``text`` (UTF-8), keyed with ``mac_key``'s UTF-8 bytes."""
    signer = HMAC(mac_key.encode("utf-8"), hashes.SM3())
    signer.update(text.encode("utf-8"))
    return signer.finalize().hex()


def sign(mac_key: str, fields: Mapping[str, str]) -> str:
    return mac(mac_key, string_to_sign(fields))


def same_signature(expected: str, given: str) -> bool:
    """Constant-time comparison of two signatures as text."""
    return std_hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))
