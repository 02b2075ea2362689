"""The migration toolkit's exceptions: file-level problems that stop a run before or
while its rows are read. Row-level problems are never raised; they become findings.

::

    MigrationError                 anything that stops a migration run
    ├── SourceError                the data file: unreadable, empty, header only,
    │                              duplicate columns, wrong encoding, no sheet chosen…
    └── MappingError               the mapping file: malformed TOML, unknown field,
                                   key or transform, a column the data file lacks

Each carries where the problem is (``file`` and, when known, ``row`` and ``column``
or the mapping ``key``) both as attributes and in its message, so a person can go
straight to it.
"""

from __future__ import annotations

__all__ = ["MappingError", "MigrationError", "SourceError"]


class MigrationError(Exception):
    """A problem that stops a migration run; ``str()`` is the message a person reads."""

    def __init__(self, message: str, *, file: str) -> None:
        self.message = message
        self.file = str(file)
        super().__init__(self._describe())

    def _where(self) -> list[str]:
        return []

    def _describe(self) -> str:
        where = ", ".join([self.file, *self._where()])
        return f"{where}: {self.message}"


class SourceError(MigrationError):
    """The data file cannot be read as a table (``row`` and ``column`` where known)."""

    def __init__(self, message: str, *, file: str, row: int | None = None, column: str | None = None) -> None:
        self.row = row
        self.column = column
        super().__init__(message, file=file)

    def _where(self) -> list[str]:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return where


class MappingError(MigrationError):
    """The mapping file is malformed or does not fit the data file (``key``: the
    dotted TOML key at fault, e.g. ``fields.hire_date.transforms``)."""

    def __init__(self, message: str, *, file: str, key: str | None = None) -> None:
        self.key = key
        super().__init__(message, file=file)

    def _where(self) -> list[str]:
        return [f"key {self.key!r}"] if self.key is not None else []
