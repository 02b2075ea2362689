"""Built-in bank adapters, one module per bank protocol (the payments API adds them)."""

__all__: list[str] = []
