"""Loaders: CSV (UTF-8, BOM, GBK, detection), XLSX and JSON Lines; bad input named by
file, row and column; row-level defects yielded, never raised; streaming in bounded memory."""

from __future__ import annotations

import datetime as dt
import json
import tracemalloc

import openpyxl
import pytest

from sandbox.errors import SourceError
from sandbox.sources import SourceRow, detect_encoding, open_source

HEADER = "姓名,身份证号码,参保地\n"


def write(tmp_path, name, data: bytes | str, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(data.encode(encoding) if isinstance(data, str) else data)
    return path


def rows(source) -> list[SourceRow]:
    return list(source.rows())


# -- CSV ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "prefix", "detected"),
    [("utf-8", b"", "utf-8"), ("utf-8", b"\xef\xbb\xbf", "utf-8-sig"), ("gbk", b"", "gbk")],
)
def test_csv_encoding_is_detected(tmp_path, encoding, prefix, detected):
    path = write(tmp_path, "e.csv", prefix + (HEADER + "王芳,440104199003120213,广州\n").encode(encoding))
    source = open_source(path)
    assert (source.format, source.encoding, source.columns) == ("csv", detected, ("姓名", "身份证号码", "参保地"))
    assert rows(source) == [SourceRow(2, {"姓名": "王芳", "身份证号码": "440104199003120213", "参保地": "广州"})]


def test_gb18030_only_characters_are_detected_as_gb18030():
    # U+20000 exists in GB18030 but not in GBK.
    assert detect_encoding("姓名\n𠀀\n".encode("gb18030"), complete=True) == "gb18030"


def test_declared_encoding_is_used_and_a_bom_is_skipped(tmp_path):
    path = write(tmp_path, "e.csv", b"\xef\xbb\xbf" + (HEADER + "a,b,c\n").encode())
    assert open_source(path, encoding="utf-8").columns[0] == "姓名"
    gbk = write(tmp_path, "g.csv", HEADER + "王芳,1,2\n", "gbk")
    assert rows(open_source(gbk, encoding="gb18030"))[0].values["姓名"] == "王芳"


def test_a_file_decoding_in_neither_utf8_nor_gbk_names_the_file(tmp_path):
    path = write(tmp_path, "export.csv", b"ab\x80\xff,\x80\x80\n" * 5)
    with pytest.raises(SourceError, match="decodes neither") as exc:
        open_source(path)
    assert exc.value.file == "export.csv" and "export.csv" in str(exc.value)


def test_utf8_declared_as_gbk_is_refused(tmp_path):
    path = write(tmp_path, "u.csv", HEADER + "王芳,440104199003120213,广州\n")
    with pytest.raises(SourceError, match="UTF-8, not GBK"):
        open_source(path, encoding="gbk")


def test_gbk_declared_as_utf8_is_refused(tmp_path):
    path = write(tmp_path, "g.csv", HEADER + "王芳,1,广州\n李明,2,长沙\n张三,3,武汉\n", "gbk")
    with pytest.raises(SourceError, match="do not decode") as exc:
        open_source(path, encoding="utf-8")
    assert "looks like gbk" in str(exc.value)


def test_unknown_encoding_is_refused(tmp_path):
    path = write(tmp_path, "a.csv", HEADER + "a,b,c\n")
    with pytest.raises(SourceError, match="unknown encoding 'klingon'"):
        open_source(path, encoding="klingon")


def test_undecodable_bytes_in_a_row_are_a_row_problem_and_later_rows_are_read(tmp_path):
    good = (HEADER + "王芳,1,广州\n").encode("gbk")
    damaged = "李".encode("gbk") + b"\xff" + ",2,长沙\n".encode("gbk")
    data = good + damaged + "张三,3,武汉\n".encode("gbk")
    source = open_source(write(tmp_path, "g.csv", data), encoding="gbk")
    first, bad, last = rows(source)
    assert first.problem is None and last.values["姓名"] == "张三" and last.number == 4
    assert (bad.number, bad.problem_kind, bad.problem_column) == (3, "undecodable", "姓名")
    assert "姓名" in bad.problem and bad.values["姓名"] is None and bad.values["参保地"] == "长沙"


def test_row_numbers_count_the_header_blank_lines_and_not_lines_inside_quotes(tmp_path):
    path = write(tmp_path, "n.csv", 'a,b\n1,2\n\n3,"multi\nline"\n4,5\n')
    assert [(r.number, r.values["a"]) for r in rows(open_source(path))] == [(2, "1"), (4, "3"), (5, "4")]


def test_empty_cells_are_none_and_rows_can_be_read_twice(tmp_path):
    source = open_source(write(tmp_path, "a.csv", "a,b,c\n1,,3\n"))
    assert rows(source) == rows(source) == [SourceRow(2, {"a": "1", "b": None, "c": "3"})]


def test_ragged_rows_are_yielded_with_a_problem(tmp_path):
    source = open_source(write(tmp_path, "r.csv", "a,b,c\n1,2\n1,2,3,4\n1,2,3,,\n1,2,3\n"))
    short, long, trailing, fine = rows(source)
    assert (short.number, short.problem_kind) == (2, "ragged") and "2 cells" in short.problem
    assert (long.number, long.problem_kind) == (3, "ragged") and "4 cells" in long.problem
    assert trailing.problem is None and trailing.values == {"a": "1", "b": "2", "c": "3"}
    assert fine.problem is None


def test_tab_separated_files_use_tabs(tmp_path):
    source = open_source(write(tmp_path, "t.tsv", "a\tb\n1\t2\n"))
    assert rows(source)[0].values == {"a": "1", "b": "2"}


@pytest.mark.parametrize(
    ("content", "message", "row", "column"),
    [
        (b"", "empty", None, None),
        (b"a,b,c\n", "header but no data rows", 2, None),
        (b"a,b,c\n\n\n", "header but no data rows", 2, None),
        (b"a,b,a\n1,2,3\n", "duplicate column name", 1, "a"),
        (b"a,,c\n1,2,3\n", "header cell 2 is empty", 1, None),
    ],
)
def test_bad_csv_files_are_refused_naming_file_row_and_column(tmp_path, content, message, row, column):
    with pytest.raises(SourceError, match=message) as exc:
        open_source(write(tmp_path, "bad.csv", content))
    assert (exc.value.file, exc.value.row, exc.value.column) == ("bad.csv", row, column)


def test_unknown_file_types_and_missing_files_are_refused(tmp_path):
    with pytest.raises(SourceError, match="unknown file type '.pdf'"):
        open_source(write(tmp_path, "a.pdf", b"x"))
    with pytest.raises(SourceError, match="no such file"):
        open_source(tmp_path / "missing.csv")


def test_csv_streams_one_row_at_a_time(tmp_path):
    path = tmp_path / "big.csv"
    with open(path, "w", encoding="gbk", newline="") as stream:
        stream.write("序号,姓名,身份证号码,单位名称,参保地,入职日期,缴费基数\n")
        for i in range(40_000):
            stream.write(f"{i},王芳{i},4401041990031202{i % 100:02d},长沙示例制造有限公司第{i}分公司,长沙市,2024-03-01,5000.00\n")
    size = path.stat().st_size
    source = open_source(path)
    tracemalloc.start()
    try:
        count = sum(1 for _ in source.rows())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 40_000 and size > 3_000_000
    assert peak < 512 * 1024, f"peak {peak} bytes while reading a {size}-byte file"


# -- XLSX -----------------------------------------------------------------------------


def workbook(tmp_path, sheets: dict[str, list[list[object]]], name="export.xlsx"):
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, table in sheets.items():
        sheet = book.create_sheet(title)
        for row in table:
            sheet.append(row)
    path = tmp_path / name
    book.save(path)
    return path


def test_xlsx_cells_become_text_as_a_person_sees_them(tmp_path):
    path = workbook(tmp_path, {"员工": [
        ["姓名", "入职日期", "缴费基数", "工号", "在职"],
        ["王芳", dt.datetime(2024, 3, 1), 5000.5, 1001.0, True],
        [None, None, None, None, None],
        ["李明", dt.date(2024, 4, 8), 6000, 1002, False],
    ]})  # fmt: skip
    source = open_source(path)
    assert (source.format, source.sheet, source.columns) == ("xlsx", "员工", ("姓名", "入职日期", "缴费基数", "工号", "在职"))
    first, second = rows(source)
    assert first == SourceRow(2, {"姓名": "王芳", "入职日期": "2024-03-01", "缴费基数": "5000.5", "工号": "1001", "在职": "true"})
    assert second.number == 4 and second.values["入职日期"] == "2024-04-08" and second.values["在职"] == "false"


def test_xlsx_header_below_blank_rows_keeps_sheet_row_numbers(tmp_path):
    path = workbook(tmp_path, {"S": [[None], ["a", "b"], ["1", "2"], ["x", "y", "extra"]]})
    good, ragged = rows(open_source(path))
    assert good == SourceRow(3, {"a": "1", "b": "2"})
    assert (ragged.number, ragged.problem_kind) == (4, "ragged")


def test_xlsx_with_several_sheets_needs_one_chosen(tmp_path):
    path = workbook(tmp_path, {"说明": [["readme"]], "员工": [["a"], ["1"]]})
    with pytest.raises(SourceError, match="2 sheets") as exc:
        open_source(path)
    assert "'说明'" in str(exc.value) and "'员工'" in str(exc.value) and exc.value.file == "export.xlsx"
    assert rows(open_source(path, sheet="员工")) == [SourceRow(2, {"a": "1"})]
    with pytest.raises(SourceError, match="no sheet '工资'.*'说明', '员工'"):
        open_source(path, sheet="工资")


def test_xlsx_bad_input_is_refused(tmp_path):
    with pytest.raises(SourceError, match="header but no data rows") as exc:
        open_source(workbook(tmp_path, {"S": [["a", "b"]]}))
    assert exc.value.row == 2
    with pytest.raises(SourceError, match="duplicate column") as exc:
        open_source(workbook(tmp_path, {"S": [["a", "a"], [1, 2]]}, name="dup.xlsx"))
    assert exc.value.column == "a"
    with pytest.raises(SourceError, match="is empty"):
        open_source(workbook(tmp_path, {"S": []}, name="empty.xlsx"))
    with pytest.raises(SourceError, match="not a readable XLSX"):
        open_source(write(tmp_path, "broken.xlsx", b"PK\x03\x04 not really a zip"))


# -- JSON Lines -----------------------------------------------------------------------


def test_jsonl_rows_are_objects_by_line_number(tmp_path):
    lines = [
        json.dumps({"name": "王芳", "id": "440104199003120213", "base": 5000.5, "types": ["养老"]}, ensure_ascii=False),
        "",
        json.dumps({"name": "李明", "id": "430102199511080356", "extra": None, "active": True}, ensure_ascii=False),
        "[1, 2]",
        "{not json",
        '{"name": "a", "name": "b"}',
    ]
    source = open_source(write(tmp_path, "e.jsonl", "\n".join(lines) + "\n"))
    assert (source.format, source.encoding) == ("jsonl", "utf-8")
    assert source.columns == ("name", "id", "base", "types", "extra", "active")
    first, second, array, broken, duplicate = rows(source)
    assert first == SourceRow(1, {"name": "王芳", "id": "440104199003120213", "base": "5000.5", "types": '["养老"]'})
    assert second.number == 3 and second.values["extra"] is None and second.values["active"] == "true"
    assert (array.number, array.problem_kind) == (4, "malformed") and "not an object" in array.problem
    assert (broken.number, broken.problem_kind) == (5, "malformed") and "not valid JSON" in broken.problem
    assert (duplicate.problem_kind, duplicate.problem_column) == ("malformed", "name")


def test_jsonl_without_objects_is_refused(tmp_path):
    with pytest.raises(SourceError, match="empty"):
        open_source(write(tmp_path, "a.jsonl", b""))
    with pytest.raises(SourceError, match="no JSON object lines"):
        open_source(write(tmp_path, "b.jsonl", "[1]\n\n2\n"))


def test_bad_quoting_is_a_row_problem_and_reading_goes_on(tmp_path):
    source = open_source(write(tmp_path, "q.csv", 'a,b\n1,"ab"c\n2,3\n4,"never closed\n5,6\n'))
    stray, fine, unclosed = rows(source)
    assert (stray.number, stray.problem_kind) == (2, "malformed") and "bad quoting" in stray.problem
    assert fine == SourceRow(3, {"a": "2", "b": "3"})
    assert unclosed.problem_kind == "malformed" and "never closed" in unclosed.problem


def test_a_header_with_undecodable_bytes_is_refused(tmp_path):
    path = write(tmp_path, "h.csv", "姓名".encode("gbk") + b"\xff,b\n" + "王芳,1\n李明,2\n张三,3\n".encode("gbk"))
    with pytest.raises(SourceError, match="header cell 1 holds bytes") as exc:
        open_source(path, encoding="gbk")
    assert exc.value.row == 1
