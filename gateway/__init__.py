"""hr-gateway: one REST API in front of bureaus, banks and ERPs."""

__version__ = "0.1.0"

__all__ = ["__version__"]
