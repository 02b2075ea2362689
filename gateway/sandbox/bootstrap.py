"""The sandbox client created on first start.

Its key reaches only mock upstreams, so the gateway keeps a copy in
``<data_dir>/sandbox-client.json`` (mode 0600) and prints it on every start: an
implementation engineer restarting the sandbox should not lose their key. Live
keys are never written anywhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..auth import SCOPES, ClientStore

__all__ = ["SandboxClientFile", "ensure_sandbox_client"]


@dataclass(frozen=True)
class SandboxClientFile:
    path: Path
    data: dict[str, Any]
    created: bool


async def ensure_sandbox_client(clients: ClientStore, data_dir: Path) -> SandboxClientFile:
    path = data_dir / "sandbox-client.json"
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        existing = await clients.get(data.get("client_id", ""))
        if existing is not None and existing.revoked_at is None:
            return SandboxClientFile(path, data, created=False)
    issued = await clients.create("sandbox", frozenset(SCOPES), sandbox=True)
    data = issued.as_dict()
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
    return SandboxClientFile(path, data, created=True)
