"""The gateway's secret keys, kept in one JSON file (mode 0600).

- ``data_keys``: AES-256 keys by key id; ``active`` encrypts, every key decrypts.
  ``hr-gateway keys rotate`` adds a key, makes it active and re-encrypts.
- ``blind_index_key``: HMAC key for searchable blind indexes of ID numbers.
- ``jwe_private_jwk``: the gateway's RSA key for clients that encrypt to its JWKS.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joserfc.jwk import RSAKey

__all__ = ["Keyring", "KeyringError"]


class KeyringError(RuntimeError):
    """The keyring file is missing, unreadable or inconsistent."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _new_kid(prefix: str) -> str:
    return f"{prefix}-{dt.datetime.now(dt.timezone.utc):%Y%m%d}-{secrets.token_hex(3)}"


@dataclass
class Keyring:
    data_keys: dict[str, bytes]
    active: str
    blind_index_key: bytes
    jwe_private_jwk: dict[str, Any]
    path: Path | None = field(default=None, compare=False)
    _mtime: float = field(default=0.0, compare=False, repr=False)

    @classmethod
    def generate(cls) -> Keyring:
        kid = _new_kid("dk")
        rsa = RSAKey.generate_key(2048, parameters={"kid": _new_kid("gw"), "alg": "RSA-OAEP-256", "use": "enc"})
        return cls(
            data_keys={kid: secrets.token_bytes(32)},
            active=kid,
            blind_index_key=secrets.token_bytes(32),
            jwe_private_jwk=rsa.as_dict(private=True),
        )

    @classmethod
    def load(cls, path: Path) -> Keyring:
        if not path.exists():
            raise KeyringError(f"no keyring at {path}: create it once with `hr-gateway keys init` and share it with every replica")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            keyring = cls(
                data_keys={kid: _unb64(v) for kid, v in raw["data_keys"].items()},
                active=raw["active"],
                blind_index_key=_unb64(raw["blind_index_key"]),
                jwe_private_jwk=raw["jwe_private_jwk"],
                path=path,
                _mtime=path.stat().st_mtime,
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyringError(f"cannot read keyring {path}: {exc}") from exc
        if keyring.active not in keyring.data_keys or any(len(k) != 32 for k in keyring.data_keys.values()):
            raise KeyringError(f"keyring {path} is inconsistent (active key missing or not 256-bit)")
        return keyring

    @classmethod
    def load_or_create(cls, path: Path) -> Keyring:
        if path.exists():
            return cls.load(path)
        keyring = cls.generate()
        keyring.save(path)
        return keyring

    def save(self, path: Path | None = None) -> None:
        path = path or self.path
        if path is None:
            raise KeyringError("keyring has no file to save to")
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "data_keys": {kid: _b64(k) for kid, k in self.data_keys.items()},
            "active": self.active,
            "blind_index_key": _b64(self.blind_index_key),
            "jwe_private_jwk": self.jwe_private_jwk,
        }
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
        os.replace(tmp, path)
        self.path = path
        self._mtime = path.stat().st_mtime

    def reload(self) -> None:
        """Re-read the file (after a rotation by another process)."""
        if self.path is None:
            return
        fresh = Keyring.load(self.path)
        self.data_keys, self.active, self._mtime = fresh.data_keys, fresh.active, fresh._mtime

    def reload_if_changed(self) -> bool:
        """Re-read the file if it changed on disk; returns whether it did."""
        if self.path is None:
            return False
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return False
        if mtime == self._mtime:
            return False
        self.reload()
        return True

    def add_data_key(self) -> str:
        """Add a fresh AES-256 key and make it the active one; returns its id."""
        kid = _new_kid("dk")
        self.data_keys[kid] = secrets.token_bytes(32)
        self.active = kid
        return kid
