"""Mock ISO 20022 bank, Sandbox Bank A (docs/dialects/iso20022.md)."""

from mocks.iso20022.bank import Iso20022Bank

__all__ = ["Iso20022Bank"]
