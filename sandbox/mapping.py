"""The column mapping (TOML) and level 1 of validation: source row -> ``MigrationRecord``.

A mapping names, for each canonical field, where its value comes from (a ``column``
of the data file or a constant ``value``), an optional ``default`` for empty cells,
text ``transforms`` applied in order, and how the text is read (date ``formats``,
money ``unit``, extra ``codes`` for code tables, the ``separator`` of a multi-valued
column). The format is documented with an example in ``examples/migration/README.md``.

``load_mapping`` refuses anything it does not understand (an unknown field, key,
transform or code value) with a ``MappingError`` naming the key, so a typo never
silently drops a column. ``Mapping.check_columns`` compares the mapping with the
data file's header before any row is read. ``Mapping.apply`` maps one row and
returns level-1 findings (per field, with the column and the masked value).
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from adapters.models import INSURANCE_TYPES

from .errors import MappingError
from .findings import Finding
from .masking import mask_value
from .records import CANONICAL_FIELDS, MigrationRecord
from .sources import SourceRow

__all__ = [
    "CODE_TABLES",
    "FIELD_KINDS",
    "REQUIRED_FIELDS",
    "TRANSFORMS",
    "FieldSpec",
    "Mapping",
    "load_mapping",
    "parse_mapping",
]

#: How each canonical field's text is read.
FIELD_KINDS: dict[str, str] = {
    "id_number": "text",
    "name": "text",
    "gender": "code",
    "birth_date": "date",
    "employer_uscc": "text",
    "employer_name": "text",
    "region": "region",
    "hire_date": "date",
    "leave_date": "date",
    "employment_status": "code",
    "contributing": "code",
    "insurance_types": "codes",
    "contribution_base": "money",
    "period": "period",
    "previous_region": "region",
}
assert set(FIELD_KINDS) == set(CANONICAL_FIELDS)

#: Fields every mapping must fill and every row must have a value for.
REQUIRED_FIELDS: frozenset[str] = frozenset(
    {"id_number", "name", "employer_uscc", "region", "hire_date", "employment_status", "contributing",
     "insurance_types", "period"}
)  # fmt: skip

_FIELD_KEYS = {"column", "value", "default", "transforms"}
_KIND_KEYS: dict[str, set[str]] = {
    "text": set(),
    "code": {"codes"},
    "codes": {"codes", "separator"},
    "region": {"codes"},
    "date": {"formats"},
    "period": {"formats"},
    "money": {"unit"},
}
_SOURCE_KEYS = {"encoding", "sheet", "delimiter"}
_TOP_KEYS = {"source", "fields", "description"}


# -- text transforms ------------------------------------------------------------------

_SPACES = re.compile(r"\s+")
_EXCEL_TEXT = re.compile(r'^=?"(.*)"$|^\'(.*)$', re.S)


def _halfwidth(text: str) -> str:
    """Full-width ASCII (``１２３ＡＢ``) and the ideographic space as their ASCII forms."""
    return unicodedata.normalize("NFKC", text) if any("\uff01" <= c <= "\uff5e" or c == "\u3000" for c in text) else text


def _excel_text(text: str) -> str:
    """``="440104..."`` and ``'440104...``: how spreadsheets keep long numbers as text."""
    match = _EXCEL_TEXT.match(text.strip())
    if match is None:
        return text
    return match.group(1) if match.group(1) is not None else match.group(2)


TRANSFORMS: dict[str, Callable[[str], str]] = {
    "trim": str.strip,
    "upper": str.upper,
    "lower": str.lower,
    "remove_spaces": lambda text: _SPACES.sub("", text),
    "halfwidth": _halfwidth,
    "excel_text": _excel_text,
}


# -- built-in code tables ---------------------------------------------------------------


def _table(entries: dict[Any, Iterable[str]]) -> dict[str, Any]:
    return {text.casefold(): value for value, texts in entries.items() for text in texts}


def _region_table() -> dict[str, str]:
    # The five sandbox regions always; any other shipped region by its names as well.
    table = _table({
        "440100": ("广州", "广州市", "Guangzhou"),
        "440300": ("深圳", "深圳市", "Shenzhen"),
        "420100": ("武汉", "武汉市", "Wuhan"),
        "430100": ("长沙", "长沙市", "Changsha"),
        "330100": ("杭州", "杭州市", "Hangzhou"),
    })  # fmt: skip
    from gateway.policy import shipped_regions

    for code, region in shipped_regions().items():
        for name in (region.name.zh, region.name.en):
            if name:
                table.setdefault(name.casefold(), code)
                table.setdefault(name.removesuffix("市").casefold(), code)
    return table


_ALL_TYPES = tuple(INSURANCE_TYPES)

#: Built-in code tables by field (keys compared case-insensitively); ``codes`` in a
#: mapping adds entries to them or overrides them.
CODE_TABLES: dict[str, dict[str, Any]] = {
    "gender": _table({
        "male": ("男", "男性", "m", "male", "1"),
        "female": ("女", "女性", "f", "female", "2"),
    }),
    "employment_status": _table({
        "active": ("在职", "在岗", "正常", "在册", "active", "employed"),
        "departed": ("离职", "已离职", "离岗", "减员", "departed", "left", "terminated"),
    }),
    "contributing": _table({
        True: ("是", "y", "yes", "true", "1", "缴费", "正常缴费", "参保缴费", "在保"),
        False: ("否", "n", "no", "false", "0", "停缴", "暂停缴费", "未缴费", "停保"),
    }),
    "insurance_types": _table({
        ("pension",): ("养老", "养老保险", "基本养老保险", "企业职工基本养老保险", "pension", "110"),
        ("medical",): ("医疗", "医疗保险", "基本医疗保险", "职工基本医疗保险", "medical", "310"),
        ("unemployment",): ("失业", "失业保险", "unemployment", "210"),
        ("work_injury",): ("工伤", "工伤保险", "work_injury", "410"),
        ("maternity",): ("生育", "生育保险", "maternity", "510"),
        _ALL_TYPES: ("五险", "全部", "all"),
    }),
}  # fmt: skip
CODE_TABLES["region"] = CODE_TABLES["previous_region"] = _region_table()

_REGION_CODE = re.compile(r"\d{6}")
_DEFAULT_SEPARATOR = re.compile(r"[,，、;；/|+\s]+")


class _Unparseable(Exception):
    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


# -- parsers: text -> canonical value ---------------------------------------------------


class _DateReader:
    """Several candidate formats, tried in order. ``%Y``/``%m``/``%d`` formats are
    matched with a regular expression (strptime is the slow part of a large file);
    anything else goes to ``strptime``."""

    def __init__(self, formats: list[str], *, period: bool) -> None:
        self.formats = formats
        self.period = period
        self._readers = [self._compile(fmt) for fmt in formats]

    @staticmethod
    def _compile(fmt: str) -> Callable[[str], dt.date | None]:
        tokens = re.findall(r"%.|[^%]+", fmt)
        if all(t in ("%Y", "%m", "%d") or not t.startswith("%") for t in tokens) and "%Y" in tokens and "%m" in tokens:
            parts, groups = [], []
            for i, token in enumerate(tokens):
                if token.startswith("%"):
                    groups.append(token[1])
                    if token == "%Y":
                        parts.append(r"(\d{4})")
                    else:
                        before = i == 0 or not tokens[i - 1].startswith("%")
                        after = i + 1 == len(tokens) or not tokens[i + 1].startswith("%")
                        parts.append(r"(\d{1,2})" if before and after else r"(\d{2})")
                else:
                    parts.append(re.escape(token))
            pattern = re.compile("".join(parts))

            def read(text: str) -> dt.date | None:
                match = pattern.fullmatch(text)
                if match is None:
                    return None
                found = dict(zip(groups, map(int, match.groups())))
                return dt.date(found["Y"], found["m"], found.get("d", 1))

            return read

        def read_strptime(text: str) -> dt.date | None:
            try:
                return dt.datetime.strptime(text, fmt).date()
            except ValueError:
                return None

        return read_strptime

    def __call__(self, text: str) -> Any:
        text = text.strip()
        for read in self._readers:
            try:
                value = read(text)
            except ValueError:  # matched the shape, but e.g. month 13
                raise _Unparseable("unparseable_value", "not a real date") from None
            if value is not None:
                return f"{value.year:04d}-{value.month:02d}" if self.period else value
        what = "period" if self.period else "date"
        raise _Unparseable("unparseable_value", f"not a {what} in any of the formats {', '.join(self.formats)}")


_MONEY_NOISE = re.compile(r"[\s,，¥￥]|元$|CNY$", re.I)


class _MoneyReader:
    def __init__(self, unit: str) -> None:
        self.unit = unit

    def __call__(self, text: str) -> Decimal:
        cleaned = _MONEY_NOISE.sub("", text)
        try:
            amount = Decimal(cleaned)
        except InvalidOperation:
            raise _Unparseable("unparseable_value", f"not an amount in {self.unit}") from None
        if not amount.is_finite() or amount < 0:
            raise _Unparseable("unparseable_value", "not a non-negative amount")
        if self.unit == "fen":
            if amount != amount.to_integral_value():
                raise _Unparseable("unparseable_value", "an amount in fen must be a whole number")
            return (amount / 100).quantize(Decimal("0.01"))
        if amount != amount.quantize(Decimal("0.01")):
            raise _Unparseable("unparseable_value", "an amount in yuan has at most 2 decimal places")
        return amount.quantize(Decimal("0.01"))


class _CodeReader:
    def __init__(self, table: dict[str, Any], *, region: bool = False) -> None:
        self.table = table
        self.region = region

    def __call__(self, text: str) -> Any:
        key = text.strip()
        value = self.table.get(key.casefold())
        if value is not None:
            return value
        if self.region and _REGION_CODE.fullmatch(key):
            return key
        raise _Unparseable("unknown_code", "not in the field's code table")


class _MultiCodeReader:
    def __init__(self, table: dict[str, Any], separator: str | None) -> None:
        self.table = table
        self.split = (lambda text: text.split(separator)) if separator else _DEFAULT_SEPARATOR.split

    def __call__(self, text: str) -> tuple[str, ...]:
        found: list[str] = []
        for part in self.split(text):
            part = part.strip()
            if not part:
                continue
            value = self.table.get(part.casefold())
            if value is None:
                raise _Unparseable("unknown_code", f"{part!r} is not an insurance type in the code table")
            found.extend(t for t in value if t not in found)
        if not found:
            raise _Unparseable("required_field_missing", "no insurance type listed")
        # Canonical order, whatever the export's order.
        return tuple(t for t in INSURANCE_TYPES if t in found)


# -- the mapping ----------------------------------------------------------------------


class FieldSpec:
    """Where one canonical field comes from and how its text is read."""

    __slots__ = ("column", "default", "field", "key", "kind", "read", "required", "transforms", "value")

    def __init__(
        self, field: str, *, column: str | None, value: str | None, default: str | None,
        transforms: tuple[Callable[[str], str], ...], read: Callable[[str], Any] | None,
    ) -> None:  # fmt: skip
        self.field = field
        self.key = f"fields.{field}"
        self.kind = FIELD_KINDS[field]
        self.required = field in REQUIRED_FIELDS
        self.column = column
        self.value = value
        self.default = default
        self.transforms = transforms
        self.read = read


class Mapping:
    """A loaded mapping: ``source_encoding``, ``sheet``, ``delimiter`` and one ``FieldSpec`` per
    mapped field. Unmapped optional fields are ``None`` in every record."""

    def __init__(
        self, file: str, fields: dict[str, FieldSpec], *, source_encoding: str | None = None,
        sheet: str | None = None, delimiter: str | None = None, description: str | None = None,
    ) -> None:  # fmt: skip
        self.file = file
        self.fields = fields
        self.source_encoding = source_encoding
        self.sheet = sheet
        self.delimiter = delimiter
        self.description = description
        self._specs = tuple(fields.values())
        self._unmapped = {f: (() if FIELD_KINDS[f] == "codes" else None) for f in CANONICAL_FIELDS if f not in fields}
        self._field_by_column = {spec.column: spec.field for spec in self._specs if spec.column is not None}

    # -- columns ------------------------------------------------------------------

    @property
    def columns(self) -> tuple[str, ...]:
        """The data-file columns the mapping reads, in field order."""
        return tuple(spec.column for spec in self._specs if spec.column is not None)

    @property
    def field_columns(self) -> dict[str, str]:
        """The source column of each field read from one (constants have none)."""
        return {spec.field: spec.column for spec in self._specs if spec.column is not None}

    def field_for_column(self, column: str) -> str | None:
        """The canonical field a column fills (``None`` if it is not mapped)."""
        return self._field_by_column.get(column)

    def check_columns(self, columns: Iterable[str]) -> None:
        """Raise ``MappingError`` naming every mapped column the data file lacks."""
        present = set(columns)
        missing = [spec for spec in self._specs if spec.column is not None and spec.column not in present]
        if missing:
            listed = ", ".join(f"{spec.column!r} ({spec.key}.column)" for spec in missing)
            raise MappingError(f"the data file has no column {listed}", file=self.file, key=missing[0].key + ".column")

    def mask_source(self, values: dict[str, str | None]) -> dict[str, str | None]:
        """A source row's values with PII masked (by the field a column fills, or by its name)."""
        return {column: mask_value(self._field_by_column.get(column, column), value) for column, value in values.items()}

    # -- level 1 ------------------------------------------------------------------

    def apply(self, row: SourceRow) -> tuple[MigrationRecord | None, list[Finding]]:
        """Map one row; ``(record, [])`` if every field parses, else ``(None, findings)``."""
        number = row.number
        if row.problem is not None:
            rule = {"ragged": "ragged_row", "undecodable": "undecodable_row"}.get(row.problem_kind or "", "malformed_row")
            return None, [Finding(number, 1, rule, row.problem, column=row.problem_column)]
        values = row.values
        findings: list[Finding] = []
        parsed: dict[str, Any] = dict(self._unmapped)
        for spec in self._specs:
            column = spec.column
            if column is None:
                text = spec.value
            else:
                text = values.get(column)
                if text is not None:
                    for transform in spec.transforms:
                        text = transform(text)
                    if not text.strip():
                        text = None
                if text is None:
                    text = spec.default
                    if text is None and spec.required and column not in values:
                        findings.append(Finding(
                            number, 1, "missing_column", f"{spec.field}: the row has no {column!r}",
                            field=spec.field, column=column,
                        ))  # fmt: skip
                        continue
            if text is None:
                if spec.required:
                    findings.append(Finding(
                        number, 1, "required_field_missing", f"{spec.field} is required but {column!r} is empty",
                        field=spec.field, column=column,
                    ))  # fmt: skip
                else:
                    parsed[spec.field] = None
                continue
            if spec.read is None:
                parsed[spec.field] = text
                continue
            try:
                parsed[spec.field] = spec.read(text)
            except _Unparseable as exc:
                shown = mask_value(spec.field, text)
                source = f"{column!r}" if column is not None else "the constant value"
                findings.append(Finding(
                    number, 1, exc.rule, f"{spec.field}: {shown!r} in {source}: {exc.message}",
                    field=spec.field, column=column, value=shown,
                ))  # fmt: skip
        if findings:
            return None, findings
        return MigrationRecord(row=number, **parsed), findings


# -- loading ----------------------------------------------------------------------------


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file; ``MappingError`` names the file and key at fault."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MappingError(f"cannot read the mapping: {exc.strerror}", file=path.name) from None
    return parse_mapping(data, file=path.name)


def parse_mapping(data: bytes | str, *, file: str = "mapping.toml") -> Mapping:
    """A mapping from TOML text (e.g. an uploaded file); ``file`` names it in errors."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise MappingError("the mapping is not UTF-8 text (TOML files are UTF-8)", file=file) from None
    try:
        doc = tomllib.loads(data)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"not valid TOML: {exc}", file=file) from None
    return _build(doc, file)


def _build(doc: dict[str, Any], file: str) -> Mapping:
    def fail(message: str, key: str) -> MappingError:
        return MappingError(message, file=file, key=key)

    for key in doc:
        if key not in _TOP_KEYS:
            raise fail(f"unknown key; a mapping has {', '.join(sorted(_TOP_KEYS))}", key)
    description = doc.get("description")
    if description is not None and not isinstance(description, str):
        raise fail("must be a string", "description")

    source = doc.get("source", {})
    if not isinstance(source, dict):
        raise fail("must be a table", "source")
    for key, value in source.items():
        if key not in _SOURCE_KEYS:
            raise fail(f"unknown key; [source] has {', '.join(sorted(_SOURCE_KEYS))}", f"source.{key}")
        if not isinstance(value, str) or not value:
            raise fail("must be a non-empty string", f"source.{key}")
    encoding = source.get("encoding")
    if encoding is not None:
        import codecs

        try:
            codecs.lookup(encoding)
        except LookupError:
            raise fail(f"unknown encoding {encoding!r}", "source.encoding") from None
    delimiter = source.get("delimiter")
    if delimiter is not None and len(delimiter) != 1:
        raise fail("must be one character", "source.delimiter")

    fields_doc = doc.get("fields")
    if not isinstance(fields_doc, dict) or not fields_doc:
        raise fail("the mapping needs a [fields] table mapping columns to canonical fields", "fields")
    fields: dict[str, FieldSpec] = {}
    for name in CANONICAL_FIELDS:  # canonical order, whatever the file's order
        if name in fields_doc:
            fields[name] = _field(name, fields_doc[name], fail)
    for name in fields_doc:
        if name not in FIELD_KINDS:
            raise fail(f"unknown canonical field; the fields are {', '.join(CANONICAL_FIELDS)}", f"fields.{name}")
    for name in sorted(REQUIRED_FIELDS - set(fields)):
        raise fail("required field is not mapped (give a column or a constant value)", f"fields.{name}")
    return Mapping(
        file, fields, source_encoding=encoding, sheet=source.get("sheet"), delimiter=delimiter, description=description
    )


def _field(name: str, entry: Any, fail: Callable[[str, str], MappingError]) -> FieldSpec:
    key = f"fields.{name}"
    if isinstance(entry, str):
        entry = {"column": entry}  # shorthand: fields.name = "姓名"
    if not isinstance(entry, dict):
        raise fail("must be a column name or a table", key)
    kind = FIELD_KINDS[name]
    allowed = _FIELD_KEYS | _KIND_KEYS[kind]
    for option in entry:
        if option not in allowed:
            raise fail(f"unknown key for a {kind} field; allowed: {', '.join(sorted(allowed))}", f"{key}.{option}")
    for option in ("column", "value", "default", "separator", "unit"):
        if option in entry and (not isinstance(entry[option], str) or not entry[option]):
            raise fail("must be a non-empty string", f"{key}.{option}")
    column, value = entry.get("column"), entry.get("value")
    if (column is None) == (value is None):
        raise fail("give exactly one of column (a data-file column) or value (a constant)", key)

    transforms = entry.get("transforms", [])
    if isinstance(transforms, str):
        transforms = [transforms]
    if not isinstance(transforms, list):
        raise fail("must be a list of transform names", f"{key}.transforms")
    steps = []
    for i, transform in enumerate(transforms):
        if not isinstance(transform, str) or transform not in TRANSFORMS:
            raise fail(
                f"unknown transform {transform!r}; the transforms are {', '.join(TRANSFORMS)}", f"{key}.transforms[{i}]"
            )
        steps.append(TRANSFORMS[transform])

    read = _reader(name, kind, entry, key, fail)
    spec = FieldSpec(name, column=column, value=value, default=entry.get("default"), transforms=tuple(steps), read=read)
    # A constant or default that cannot be read is the mapping's fault, not every row's.
    for option in ("value", "default"):
        text = entry.get(option)
        if text is not None and read is not None:
            try:
                read(text)
            except _Unparseable as exc:
                raise fail(f"{text!r} cannot be read as {name}: {exc.message}", f"{key}.{option}") from None
    return spec


def _reader(
    name: str, kind: str, entry: dict[str, Any], key: str, fail: Callable[[str, str], MappingError]
) -> Callable[[str], Any] | None:
    if kind == "text":
        return None
    if kind in ("date", "period"):
        formats = entry.get("formats")
        if formats is None:
            formats = ["%Y-%m", "%Y%m", "%Y/%m"] if kind == "period" else ["%Y-%m-%d"]
        if isinstance(formats, str):
            formats = [formats]
        if not isinstance(formats, list) or not formats:
            raise fail("must be a list of strptime formats, e.g. [\"%Y%m%d\", \"%Y-%m-%d\"]", f"{key}.formats")
        for i, fmt in enumerate(formats):
            if not isinstance(fmt, str) or not _round_trips(fmt, period=kind == "period"):
                raise fail(f"{fmt!r} is not a date format with a year, month{'' if kind == 'period' else ' and day'}",
                           f"{key}.formats[{i}]")  # fmt: skip
        if kind == "date" and "%Y-%m-%d" not in formats:
            formats = [*formats, "%Y-%m-%d"]  # how XLSX date cells arrive
        return _DateReader(list(formats), period=kind == "period")
    if kind == "money":
        unit = entry.get("unit", "yuan")
        if unit not in ("yuan", "fen"):
            raise fail("must be \"yuan\" or \"fen\"", f"{key}.unit")
        return _MoneyReader(unit)
    table = dict(CODE_TABLES[name])
    extra = entry.get("codes", {})
    if not isinstance(extra, dict):
        raise fail("must be a table of source text = canonical value", f"{key}.codes")
    for text, target in extra.items():
        table[text.casefold()] = _code_target(name, target, f"{key}.codes.{text}", fail)
    if kind == "codes":
        return _MultiCodeReader(table, entry.get("separator"))
    return _CodeReader(table, region=kind == "region")


def _code_target(name: str, target: Any, key: str, fail: Callable[[str, str], MappingError]) -> Any:
    if name == "contributing":
        if isinstance(target, bool):
            return target
        raise fail("must be true or false", key)
    if name in ("region", "previous_region"):
        if isinstance(target, str) and _REGION_CODE.fullmatch(target):
            return target
        raise fail("must be a six-digit region code", key)
    if name == "insurance_types":
        targets = [target] if isinstance(target, str) else target
        if isinstance(targets, list) and targets and all(t in INSURANCE_TYPES for t in targets):
            return tuple(targets)
        raise fail(f"must be an insurance type or a list of them ({', '.join(INSURANCE_TYPES)})", key)
    allowed = {"gender": ("male", "female"), "employment_status": ("active", "departed")}[name]
    if target in allowed:
        return target
    raise fail(f"must be one of {', '.join(allowed)}", key)


def _round_trips(fmt: str, *, period: bool) -> bool:
    needed = ("%Y", "%m") if period else ("%Y", "%m", "%d")
    if not all(directive in fmt for directive in needed):
        return False
    sample = dt.date(2024, 11, 23)
    try:
        return dt.datetime.strptime(sample.strftime(fmt), fmt).date().replace(day=1 if period else 23) == sample.replace(
            day=1 if period else 23
        )
    except ValueError:
        return False
