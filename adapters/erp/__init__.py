"""Built-in ERP adapters, one module per ERP protocol (the ERP API adds them)."""

__all__: list[str] = []
