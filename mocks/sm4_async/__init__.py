"""Mock bureau for the ``sm4-async`` protocol (docs/dialects/sm4-async.md)."""

from mocks.sm4_async.bureau import Sm4AsyncBureau, sandbox_mac_key, sandbox_sm4_key
from mocks.sm4_async.store import Task, Transfer

__all__ = ["Sm4AsyncBureau", "Task", "Transfer", "sandbox_mac_key", "sandbox_sm4_key"]
