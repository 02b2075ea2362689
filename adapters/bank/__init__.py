"""Built-in bank adapters, one module per bank protocol (the payments API adds them)."""

from .iso20022 import Iso20022BankAdapter
from .openbanking import OpenBankingBankAdapter

__all__: list[str] = ["Iso20022BankAdapter", "OpenBankingBankAdapter"]
