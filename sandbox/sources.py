"""Reading a customer's export one row at a time: CSV, XLSX and JSON Lines.

``open_source`` checks the file (format, encoding, header, at least one data row)
and raises ``SourceError`` naming the file, row and column of anything that makes
it unreadable as a table. ``Source.rows()`` then streams it afresh on every call,
holding one row at a time, so a file far larger than memory can be validated and a
resumed run can read it again.

A defect confined to one row (a ragged row, bytes the encoding cannot decode, a
JSON line that is not an object) never stops the reading: the row is yielded with
``problem`` set and the rows after it are read as usual.

Row numbers are where a person finds the row: in a spreadsheet or CSV the header is
row 1 and the first data row is row 2 (blank lines count; a quoted cell spanning
lines is one row); in JSON Lines it is the line number.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec

from .errors import SourceError

__all__ = ["FORMATS", "Source", "SourceFormat", "SourceRow", "detect_encoding", "open_source"]

SourceFormat = Literal["csv", "xlsx", "jsonl"]

FORMATS: dict[str, SourceFormat] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}

_SAMPLE_BYTES = 256 * 1024
# Lines of the sample that may hold undecodable bytes before the declared encoding is
# taken to be wrong for the whole file (rather than a few damaged rows).
_TOLERATED_BAD_LINES = 2
_TOLERATED_BAD_SHARE = 0.05
# What ``surrogateescape`` turns undecodable bytes into.
_UNDECODABLE = re.compile("[\udc80-\udcff]")
# Columns sampled from the first JSON lines (later lines may add optional keys).
_JSONL_HEADER_LINES = 200
csv.field_size_limit(16 * 1024 * 1024)


class SourceRow(msgspec.Struct):
    """One data row: ``values`` by column (``None`` for an empty cell), or a row-level
    ``problem`` (``problem_kind`` says which: ``ragged``, ``undecodable``, ``malformed`` —
    bad CSV quoting or a JSON line that is not an object)."""

    number: int
    values: dict[str, str | None]
    problem: str | None = None
    problem_kind: str | None = None
    problem_column: str | None = None


class Source:
    """An opened, checked data file. ``rows()`` streams it from the start each time."""

    def __init__(
        self, path: Path, fmt: SourceFormat, encoding: str | None, columns: tuple[str, ...], *,
        sheet: str | None = None, delimiter: str = ",", first_row: int = 2,
    ) -> None:  # fmt: skip
        self.path = path
        self.format: SourceFormat = fmt
        self.encoding = encoding
        self.columns = columns
        self.sheet = sheet
        self.delimiter = delimiter
        self._first_row = first_row

    @property
    def file(self) -> str:
        return self.path.name

    def __repr__(self) -> str:
        return f"Source({str(self.path)!r}, format={self.format!r}, encoding={self.encoding!r}, columns={len(self.columns)})"

    def rows(self) -> Iterator[SourceRow]:
        if self.format == "csv":
            return self._csv_rows()
        if self.format == "xlsx":
            return self._xlsx_rows()
        return self._jsonl_rows()

    # -- CSV ----------------------------------------------------------------------

    def _csv_rows(self) -> Iterator[SourceRow]:
        columns = self.columns
        width = len(columns)
        with open(self.path, encoding=self.encoding, errors="surrogateescape", newline="") as stream:
            # strict: a stray quote is reported on its row instead of silently merging cells
            reader = csv.reader(stream, delimiter=self.delimiter, strict=True)
            number = 0
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    number += 1
                    yield _bad_quoting(number, exc)
                    continue
                number += 1
                if number == 1:
                    continue  # the header, checked by open_source
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue  # a blank line: counted, not a row
                yield _table_row(number, cells, columns, width, self.file)

    # -- XLSX ---------------------------------------------------------------------

    def _xlsx_rows(self) -> Iterator[SourceRow]:
        columns = self.columns
        width = len(columns)
        workbook = _open_workbook(self.path)
        try:
            sheet = workbook[self.sheet]
            for number, cells in enumerate(sheet.iter_rows(min_row=self._first_row, values_only=True), self._first_row):
                texts = [_cell_text(cell) for cell in cells]
                if not any(text is not None for text in texts):
                    continue
                yield _table_row(number, texts, columns, width, self.file)
        finally:
            workbook.close()

    # -- JSON Lines ---------------------------------------------------------------

    def _jsonl_rows(self) -> Iterator[SourceRow]:
        with open(self.path, encoding=self.encoding, errors="surrogateescape", newline=None) as stream:
            for number, line in enumerate(stream, 1):
                if not line.strip():
                    continue
                yield _json_row(number, line)


def open_source(
    path: str | Path, *, encoding: str | None = None, sheet: str | None = None, delimiter: str | None = None
) -> Source:
    """Open and check a data file; raises ``SourceError`` if it cannot be read as a table.

    ``encoding`` (CSV, JSON Lines) is used as declared; without it UTF-8 (with or
    without a BOM) is tried, then GBK and GB18030, on a sample of the file.
    ``sheet`` chooses the XLSX worksheet (required when there are several).
    ``delimiter`` defaults to a tab for ``.tsv`` and a comma otherwise.
    """
    path = Path(path)
    name = path.name
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(FORMATS))
        raise SourceError(f"unknown file type {path.suffix or '(no extension)'!r}; expected one of {known}", file=name)
    if not path.is_file():
        raise SourceError("no such file", file=name)
    if path.stat().st_size == 0:
        raise SourceError("the file is empty", file=name)
    if fmt == "xlsx":
        return _open_xlsx(path, sheet)
    resolved = _resolve_encoding(path, encoding)
    if fmt == "jsonl":
        return _open_jsonl(path, resolved)
    return _open_csv(path, resolved, delimiter or ("\t" if path.suffix.lower() == ".tsv" else ","))


# -- encodings ----------------------------------------------------------------------


def detect_encoding(sample: bytes, *, complete: bool = False) -> str | None:
    """``utf-8-sig``, ``utf-8``, ``gbk`` or ``gb18030`` if ``sample`` decodes cleanly as
    one of them (in that order), else ``None``. ``complete``: the sample is the whole
    file (otherwise a character cut at its end is not held against it)."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig" if _decodes(sample, "utf-8-sig", complete) else None
    for encoding in ("utf-8", "gbk", "gb18030"):
        if _decodes(sample, encoding, complete):
            return encoding
    return None


def _decodes(sample: bytes, encoding: str, complete: bool) -> bool:
    try:
        codecs.getincrementaldecoder(encoding)().decode(sample, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def _wrong_encoding(sample: bytes, codec: str, complete: bool) -> str | None:
    """Why the declared codec is wrong for the file as a whole, or ``None``.

    A few lines with bad bytes are row problems (reported per row); many are the wrong
    encoding. GBK-family decoders read most UTF-8 text without an error (as nonsense),
    so UTF-8 declared as GBK is recognised by the sample being valid UTF-8 instead.
    """
    if codec in ("gbk", "gb18030", "gb2312", "cp936") and not sample.isascii() and _decodes(sample, "utf-8", complete):
        return "the file is UTF-8, not GBK"
    text = codecs.getincrementaldecoder(codec)(errors="surrogateescape").decode(sample, final=complete)
    lines = text.splitlines()
    if not complete and len(lines) > 1:
        lines.pop()  # may be cut short by the sample's end
    bad = sum(1 for line in lines if _UNDECODABLE.search(line))
    if bad > max(_TOLERATED_BAD_LINES, len(lines) * _TOLERATED_BAD_SHARE):
        return f"{bad} of the first {len(lines)} lines do not decode"
    return None


def _resolve_encoding(path: Path, declared: str | None) -> str:
    with open(path, "rb") as stream:
        sample = stream.read(_SAMPLE_BYTES)
        complete = not stream.read(1)
    if declared:
        try:
            codec = codecs.lookup(declared).name
        except LookupError:
            raise SourceError(f"unknown encoding {declared!r}", file=path.name) from None
        if codec == "utf-8" and sample.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        problem = _wrong_encoding(sample, codec, complete)
        if problem is not None:
            guess = detect_encoding(sample, complete=complete)
            hint = f"; it looks like {guess}" if guess and codecs.lookup(guess).name != codec else ""
            raise SourceError(f"{problem} (declared encoding {declared!r}){hint}", file=path.name)
        return declared
    detected = detect_encoding(sample, complete=complete)
    if detected is None:
        raise SourceError(
            "the file decodes neither as UTF-8 nor as GBK/GB18030; declare its encoding in the mapping "
            "([source] encoding = \"...\")",
            file=path.name,
        )
    return detected


# -- CSV ----------------------------------------------------------------------------


def _open_csv(path: Path, encoding: str, delimiter: str) -> Source:
    name = path.name
    with open(path, encoding=encoding, errors="surrogateescape", newline="") as stream:
        reader = csv.reader(stream, delimiter=delimiter, strict=True)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise SourceError(f"the header cannot be read: {exc}", file=name, row=1) from None
        if header is None:
            raise SourceError("the file is empty", file=name)
        columns = _header(header, name, row=1)
        try:
            has_data = any(cells and any(cell.strip() for cell in cells) for cells in reader)
        except csv.Error:
            has_data = True  # a damaged row is still a row: reported when the rows are read
    if not has_data:
        raise SourceError("the file has a header but no data rows", file=name, row=2)
    return Source(path, "csv", encoding, columns, delimiter=delimiter)


def _header(cells: list[Any], file: str, *, row: int) -> tuple[str, ...]:
    names = [("" if cell is None else str(cell)).strip().lstrip("\ufeff").strip() for cell in cells]
    while names and not names[-1]:
        names.pop()  # exports often end the header with empty cells
    if not names:
        raise SourceError("the header row is empty", file=file, row=row)
    seen: dict[str, int] = {}
    for index, column in enumerate(names, 1):
        if _UNDECODABLE.search(column):
            raise SourceError(
                f"header cell {index} holds bytes the encoding cannot decode; declare the file's encoding",
                file=file, row=row,
            )  # fmt: skip
        if not column:
            raise SourceError(f"header cell {index} is empty: every column needs a name", file=file, row=row)
        if column in seen:
            raise SourceError(
                f"duplicate column name (cells {seen[column]} and {index}); column names must be unique",
                file=file, row=row, column=column,
            )  # fmt: skip
        seen[column] = index
    return tuple(names)


def _table_row(number: int, cells: list[Any], columns: tuple[str, ...], width: int, file: str) -> SourceRow:
    """One CSV or XLSX row: cells by column, or a ragged/undecodable problem."""
    count = len(cells)
    if count > width:
        extra = cells[width:]
        if any(cell is not None and cell.strip() for cell in extra):
            return SourceRow(
                number, _zip(columns, cells[:width]),
                problem=f"the row has {_last_filled(cells)} cells but the header has {width} columns",
                problem_kind="ragged",
            )  # fmt: skip
        cells = cells[:width]
    elif count < width:
        return SourceRow(
            number, _zip(columns, cells),
            problem=f"the row has {count} cells but the header has {width} columns", problem_kind="ragged",
        )  # fmt: skip
    values = _zip(columns, cells)
    for column, value in values.items():
        if value is not None and _UNDECODABLE.search(value):
            return _undecodable(number, values, column)
    return SourceRow(number, values)


def _bad_quoting(number: int, exc: csv.Error) -> SourceRow:
    reason = "a quoted cell is never closed" if "end of data" in str(exc) else f"bad quoting: {exc}"
    return SourceRow(number, {}, problem=f"the row cannot be split into cells ({reason})", problem_kind="malformed")


def _zip(columns: tuple[str, ...], cells: list[Any]) -> dict[str, str | None]:
    return {column: (cell if cell else None) for column, cell in zip(columns, cells)}


def _last_filled(cells: list[Any]) -> int:
    count = len(cells)
    while count and not (cells[count - 1] and cells[count - 1].strip()):
        count -= 1
    return count


def _undecodable(number: int, values: dict[str, str | None], column: str) -> SourceRow:
    # The undecodable bytes never leave the loader: they may be half of a name.
    clean = {key: (None if value is not None and _UNDECODABLE.search(value) else value) for key, value in values.items()}
    return SourceRow(
        number, clean, problem=f"column {column!r} holds bytes the file's encoding cannot decode",
        problem_kind="undecodable", problem_column=column,
    )  # fmt: skip


# -- XLSX ---------------------------------------------------------------------------


def _open_workbook(path: Path) -> Any:
    import openpyxl  # only XLSX sources pay for importing it

    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, XML and KeyError alike for a broken file
        raise SourceError(f"not a readable XLSX workbook: {exc.__class__.__name__}: {exc}", file=path.name) from None


def _open_xlsx(path: Path, sheet: str | None) -> Source:
    name = path.name
    workbook = _open_workbook(path)
    try:
        sheets = list(workbook.sheetnames)
        listed = ", ".join(repr(s) for s in sheets)
        if sheet is None:
            if len(sheets) != 1:
                raise SourceError(
                    f"the workbook has {len(sheets)} sheets ({listed}); choose one with [source] sheet = \"...\" "
                    "in the mapping",
                    file=name,
                )
            sheet = sheets[0]
        elif sheet not in sheets:
            raise SourceError(f"no sheet {sheet!r} in the workbook; its sheets are {listed}", file=name)
        rows = workbook[sheet].iter_rows(values_only=True)
        header_row = 0
        header: list[Any] | None = None
        for header_row, cells in enumerate(rows, 1):
            if any(_cell_text(cell) is not None for cell in cells):
                header = [_cell_text(cell) for cell in cells]
                break
        if header is None:
            raise SourceError(f"sheet {sheet!r} is empty", file=name)
        columns = _header(header, name, row=header_row)
        has_data = any(any(_cell_text(cell) is not None for cell in cells) for cells in rows)
    finally:
        workbook.close()
    if not has_data:
        raise SourceError(f"sheet {sheet!r} has a header but no data rows", file=name, row=header_row + 1)
    return Source(path, "xlsx", None, columns, sheet=sheet, first_row=header_row + 1)


def _cell_text(cell: Any) -> str | None:
    """A cell as the text a person sees: dates ISO 8601, whole numbers without ``.0``."""
    if cell is None:
        return None
    if isinstance(cell, str):
        return cell if cell.strip() else None
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, dt.datetime):
        return cell.date().isoformat() if cell.time() == dt.time() else cell.isoformat()
    if isinstance(cell, dt.date):
        return cell.isoformat()
    if isinstance(cell, float):
        return str(int(cell)) if cell.is_integer() else repr(cell)
    return str(cell)


# -- JSON Lines ---------------------------------------------------------------------


def _open_jsonl(path: Path, encoding: str) -> Source:
    columns: dict[str, None] = {}
    objects = 0
    with open(path, encoding=encoding, errors="surrogateescape", newline=None) as stream:
        for line in stream:
            if not line.strip():
                continue
            row = _json_row(0, line)
            if row.problem is None:
                objects += 1
                columns.update(dict.fromkeys(row.values))
                if objects >= _JSONL_HEADER_LINES:
                    break
    if not objects:
        raise SourceError("the file holds no JSON object lines", file=path.name)
    return Source(path, "jsonl", encoding, tuple(columns))


def _duplicate_checked(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise _DuplicateKey(duplicate)
    return obj


class _DuplicateKey(ValueError):
    pass


def _json_row(number: int, line: str) -> SourceRow:
    if _UNDECODABLE.search(line):
        return SourceRow(number, {}, problem="the line holds bytes the file's encoding cannot decode",
                         problem_kind="undecodable")  # fmt: skip
    try:
        obj = json.loads(line, object_pairs_hook=_duplicate_checked)
    except _DuplicateKey as exc:
        return SourceRow(number, {}, problem=f"key {exc.args[0]!r} appears twice in the object",
                         problem_kind="malformed", problem_column=exc.args[0])  # fmt: skip
    except ValueError as exc:
        return SourceRow(number, {}, problem=f"the line is not valid JSON ({exc.args[0].split(':')[0]})",
                         problem_kind="malformed")  # fmt: skip
    if not isinstance(obj, dict):
        return SourceRow(number, {}, problem=f"the line is a JSON {type(obj).__name__}, not an object",
                         problem_kind="malformed")  # fmt: skip
    return SourceRow(number, {str(key): _json_text(value) for key, value in obj.items()})


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)
