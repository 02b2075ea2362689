"""Mock bank for the ``openbanking`` protocol (docs/dialects/openbanking.md)."""

from mocks.openbanking.bank import SANDBOX_SIGNING_KEY, OpenBankingBank, sandbox_credentials

__all__ = ["SANDBOX_SIGNING_KEY", "OpenBankingBank", "sandbox_credentials"]
