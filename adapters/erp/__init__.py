"""Built-in ERP adapters, one module per ERP protocol (the ERP API adds them)."""

from .kingdee import KingdeeErpAdapter
from .odata import ODataErpAdapter

__all__ = ["KingdeeErpAdapter", "ODataErpAdapter"]
