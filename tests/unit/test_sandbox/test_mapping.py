"""The TOML mapping: fields, transforms, date/money/code readers, constants and defaults;
level-1 findings per row and field (column, masked value); bad mappings named by key."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from sandbox.errors import MappingError
from sandbox.mapping import load_mapping, parse_mapping
from sandbox.sources import SourceRow

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "migration" / "mapping.toml"

MINIMAL = """
[fields]
id_number = { column = "身份证号", transforms = ["trim", "upper"] }
name = { column = "姓名", transforms = ["trim"] }
gender = "性别"
birth_date = { column = "出生日期", formats = ["%Y%m%d", "%Y-%m-%d", "%Y/%m/%d", "%Y年%m月%d日"] }
employer_uscc = { value = "91430100MA4L16JQ9D" }
region = "参保地"
previous_region = "原参保地"
hire_date = { column = "入职日期", formats = ["%Y%m%d", "%Y/%m/%d"] }
leave_date = { column = "离职日期", formats = ["%Y%m%d"] }
employment_status = { column = "状态", default = "在职" }
contributing = "缴费"
insurance_types = { column = "险种" }
contribution_base = { column = "基数(分)", unit = "fen" }
period = { value = "2024-06" }
"""

ROW = {
    "身份证号": " 43010219951108035x ",
    "姓名": " 李明 ",
    "性别": "男",
    "出生日期": "1995年11月8日",
    "参保地": "长沙",
    "原参保地": None,
    "入职日期": "2024/4/8",
    "离职日期": None,
    "状态": None,
    "缴费": "是",
    "险种": "养老、医疗，工伤",
    "基数(分)": "600050",
}


def mapping(text=MINIMAL, **kwargs):
    return parse_mapping(text, file="m.toml", **kwargs)


def apply(values=None, text=MINIMAL, number=2, **changes):
    return mapping(text).apply(SourceRow(number, {**(values or ROW), **changes}))


def test_a_row_maps_to_the_canonical_record():
    record, findings = apply()
    assert findings == []
    assert record.row == 2
    assert (record.id_number, record.name, record.gender) == ("43010219951108035X", "李明", "male")
    assert (record.birth_date, record.hire_date, record.leave_date) == (dt.date(1995, 11, 8), dt.date(2024, 4, 8), None)
    assert (record.employer_uscc, record.employer_name, record.region, record.previous_region) == (
        "91430100MA4L16JQ9D", None, "430100", None,
    )  # fmt: skip
    assert (record.employment_status, record.contributing) == ("active", True)  # the default
    assert record.insurance_types == ("pension", "medical", "work_injury")
    assert record.contribution_base == Decimal("6000.50") and record.period == "2024-06"


def test_the_example_mapping_loads():
    loaded = load_mapping(EXAMPLE)
    assert loaded.source_encoding == "gbk" and loaded.sheet is None and loaded.file == "mapping.toml"
    assert loaded.field_for_column("身份证号码") == "id_number" and "所属期" in loaded.columns


@pytest.mark.parametrize(
    ("column", "text", "field", "expected"),
    [
        ("参保地", "广州市", "region", "440100"),
        ("参保地", "Shenzhen", "region", "440300"),
        ("参保地", "武汉", "region", "420100"),
        ("参保地", "杭州市", "region", "330100"),
        ("参保地", "510100", "region", "510100"),  # codes pass through
        ("原参保地", "广州", "previous_region", "440100"),
        ("性别", "F", "gender", "female"),
        ("性别", "女性", "gender", "female"),
        ("状态", "离职", "employment_status", "departed"),
        ("缴费", "否", "contributing", False),
        ("缴费", "Y", "contributing", True),
        ("险种", "五险", "insurance_types", ("pension", "medical", "unemployment", "work_injury", "maternity")),
        ("险种", "医疗保险;养老保险", "insurance_types", ("pension", "medical")),
        ("入职日期", "20240408", "hire_date", dt.date(2024, 4, 8)),
        ("入职日期", "2024-04-08", "hire_date", dt.date(2024, 4, 8)),  # ISO (XLSX dates) always read
        ("出生日期", "1995/11/08", "birth_date", dt.date(1995, 11, 8)),
        ("基数(分)", "360400", "contribution_base", Decimal("3604.00")),
    ],
)
def test_readers(column, text, field, expected):
    record, findings = apply(**{column: text})
    assert findings == [] and getattr(record, field) == expected


def test_money_in_yuan_and_period_formats():
    text = MINIMAL.replace('{ column = "基数(分)", unit = "fen" }', '{ column = "基数(分)" }').replace(
        'period = { value = "2024-06" }', 'period = { column = "所属期", formats = ["%Y%m", "%Y-%m"] }'
    )
    record, _ = apply(text=text, **{"基数(分)": "¥5,000.5元", "所属期": "202406"})
    assert record.contribution_base == Decimal("5000.50") and record.period == "2024-06"
    _, findings = apply(text=text, **{"基数(分)": "5000.555", "所属期": "2024-13"})
    assert {(f.field, f.rule) for f in findings} == {("contribution_base", "unparseable_value"), ("period", "unparseable_value")}


def test_inline_codes_extend_the_built_in_table():
    text = MINIMAL.replace('gender = "性别"', 'gender = { column = "性别", codes = { "先生" = "male" } }')
    assert apply(text=text, 性别="先生")[0].gender == "male"
    assert apply(text=text, 性别="女")[0].gender == "female"


def test_transforms_in_order():
    text = MINIMAL.replace('transforms = ["trim", "upper"]', 'transforms = ["excel_text", "halfwidth", "remove_spaces", "upper"]')
    record, _ = apply(text=text, 身份证号='="４３０１０２ 19951108035x"')
    assert record.id_number == "43010219951108035X"


# -- level 1 findings -------------------------------------------------------------------


def test_required_field_missing_names_field_and_column():
    record, findings = apply(姓名="   ")
    assert record is None
    [finding] = findings
    assert (finding.row, finding.level, finding.rule, finding.field, finding.column) == (2, 1, "required_field_missing", "name", "姓名")


def test_unparseable_values_carry_the_masked_value():
    _, findings = apply(身份证号=None, 入职日期="2024-02-30", 出生日期="yesterday", **{"基数(分)": "60.5"})
    by_field = {f.field: f for f in findings}
    assert by_field["id_number"].rule == "required_field_missing"
    assert by_field["hire_date"].rule == "unparseable_value" and by_field["hire_date"].value == "2024-02-30"
    assert by_field["birth_date"].column == "出生日期" and "formats" in by_field["birth_date"].message
    assert "whole number" in by_field["contribution_base"].message


def test_id_numbers_never_reach_findings_unmasked():
    # Misplaced columns happen: an ID number in the region column is masked all the same.
    _, [finding] = apply(参保地="440104199003120213")
    assert finding.rule == "unknown_code" and finding.value == "4401**********0213"
    assert "440104199003120213" not in finding.message and "4401**********0213" in finding.message


def test_unknown_codes():
    _, findings = apply(性别="未知", 险种="养老、大病医疗", 参保地="北京", 状态="退休返聘")
    assert {(f.field, f.rule) for f in findings} == {
        ("gender", "unknown_code"), ("insurance_types", "unknown_code"), ("region", "unknown_code"),
        ("employment_status", "unknown_code"),
    }  # fmt: skip
    assert "'大病医疗' is not an insurance type" in next(f for f in findings if f.field == "insurance_types").message


def test_row_problems_become_findings():
    m = mapping()
    for kind, rule in (("ragged", "ragged_row"), ("undecodable", "undecodable_row"), ("malformed", "malformed_row")):
        record, [finding] = m.apply(SourceRow(7, {}, problem="what went wrong", problem_kind=kind, problem_column="姓名"))
        assert record is None and (finding.row, finding.rule, finding.column, finding.message) == (7, rule, "姓名", "what went wrong")


def test_a_json_line_without_a_mapped_key_is_a_missing_column():
    values = {k: v for k, v in ROW.items() if k != "入职日期"}
    _, [finding] = mapping().apply(SourceRow(3, values))
    assert (finding.rule, finding.field, finding.column) == ("missing_column", "hire_date", "入职日期")


def test_check_columns_names_every_missing_column():
    m = mapping()
    m.check_columns(ROW)
    with pytest.raises(MappingError) as exc:
        m.check_columns([c for c in ROW if c not in ("姓名", "险种")])
    assert "'姓名'" in str(exc.value) and "'险种'" in str(exc.value) and exc.value.key == "fields.name.column"


def test_mask_source_masks_pii_columns():
    masked = mapping().mask_source({**ROW, "手机号码": "13812345678", "单位名称": "长沙示例制造有限公司"})
    assert masked["身份证号"] == "4301**********035x"
    assert masked["姓名"] == "李*" and masked["手机号码"] == "*******5678" and masked["单位名称"] == "长沙示例制造有限公司"


# -- bad mappings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        (('transforms = ["trim"]', 'transforms = ["trim", "titlecase"]'), "fields.name.transforms[1]", "unknown transform 'titlecase'"),
        (('gender = "性别"', 'gender = "性别"\nnickname = "昵称"'), "fields.nickname", "unknown canonical field"),
        (('region = "参保地"', 'region = { column = "参保地", unit = "fen" }'), "fields.region.unit", "unknown key"),
        (('name = { column = "姓名", transforms = ["trim"] }', ""), "fields.name", "required field is not mapped"),
        (('period = { value = "2024-06" }', 'period = { value = "2024-06", column = "x" }'), "fields.period", "exactly one"),
        (('period = { value = "2024-06" }', 'period = { value = "June" }'), "fields.period.value", "cannot be read"),
        (('"%Y/%m/%d", "%Y年%m月%d日"', '"%Y/%m"'), "fields.birth_date.formats[2]", "not a date format"),
        (('unit = "fen"', 'unit = "jiao"'), "fields.contribution_base.unit", "yuan"),
        (('gender = "性别"', 'gender = { column = "性别", codes = { "M." = "man" } }'), "fields.gender.codes.M.", "male, female"),
        (('[fields]', '[source]\nencoding = "klingon"\n[fields]'), "source.encoding", "unknown encoding"),
        (('[fields]', '[source]\nsheets = "x"\n[fields]'), "source.sheets", "unknown key"),
        (('[fields]', '[output]\n[fields]'), "output", "unknown key"),
        (('employment_status = { column = "状态", default = "在职" }', 'employment_status = { column = "状态", default = "?" }'),
         "fields.employment_status.default", "cannot be read"),
    ],
)
def test_bad_mappings_name_the_key(change, key, message):
    with pytest.raises(MappingError, match=message) as exc:
        mapping(MINIMAL.replace(*change, 1))
    assert exc.value.key == key and exc.value.file == "m.toml"
    assert f"key {key!r}" in str(exc.value)


def test_invalid_toml_and_unreadable_files(tmp_path):
    with pytest.raises(MappingError, match="not valid TOML"):
        mapping("[fields\n")
    with pytest.raises(MappingError, match="needs a \\[fields\\] table"):
        mapping("description = 'x'\n")
    with pytest.raises(MappingError, match="cannot read") as exc:
        load_mapping(tmp_path / "nope.toml")
    assert exc.value.file == "nope.toml"
    path = tmp_path / "gbk.toml"
    path.write_bytes(MINIMAL.encode("gbk"))
    with pytest.raises(MappingError, match="not UTF-8"):
        load_mapping(path)
