"""Built-in ERP adapters, one module per ERP protocol (the ERP API adds them)."""

from .odata import ODataErpAdapter

__all__ = ["ODataErpAdapter"]
