"""Mock ERP for the ``kingdee`` protocol (docs/dialects/kingdee.md)."""

from mocks.kingdee.erp import KingdeeErp

__all__ = ["KingdeeErp"]
