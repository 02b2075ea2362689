"""Built-in bank adapters, one module per bank protocol (the payments API adds them)."""

from .openbanking import OpenBankingBankAdapter

__all__: list[str] = ["OpenBankingBankAdapter"]
