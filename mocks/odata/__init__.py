"""Mock ERP for the ``odata`` protocol (docs/dialects/odata.md)."""

from mocks.odata.erp import ODataErp

__all__ = ["ODataErp"]
