"""Sandbox mode: mock upstreams for ``hgw_test_`` keys, and the first sandbox client."""

from .bootstrap import SandboxClientFile, ensure_sandbox_client
from .mocks import SANDBOX_BUREAUS, SandboxMocks

__all__ = ["SANDBOX_BUREAUS", "SandboxClientFile", "SandboxMocks", "ensure_sandbox_client"]
