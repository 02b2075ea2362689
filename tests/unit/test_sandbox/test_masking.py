"""PII masking for findings, samples and reports."""

from __future__ import annotations

import pytest

from sandbox.masking import mask_account, mask_id, mask_ids_in, mask_name, mask_value


def test_mask_id_keeps_the_first_and_last_four():
    assert mask_id("440104199003120213") == "4401**********0213"
    assert mask_id(" 43010219951108035X ") == "4301**********035X"
    assert mask_id("1234567") == "*******"


@pytest.mark.parametrize(
    ("name", "masked"),
    [("王芳", "王*"), ("欧阳娜娜", "欧***"), ("Wang Fang", "W*** F***"), ("李", "*"), ("", "")],
)
def test_mask_name_keeps_first_characters(name, masked):
    assert mask_name(name) == masked


def test_mask_account_keeps_the_last_four():
    assert mask_account("6222021234567890123") == "*" * 15 + "0123"
    assert mask_account("123") == "***"


@pytest.mark.parametrize(
    ("field", "value", "masked"),
    [
        ("id_number", "440104199003120213", "4401**********0213"),
        ("name", "王芳", "王*"),
        ("身份证号码", "440104199003120213", "4401**********0213"),
        ("姓名", "王芳", "王*"),
        ("employee_name", "Wang Fang", "W*** F***"),
        ("手机号码", "13812345678", "*******5678"),
        ("银行账号", "6222021234567890123", "*" * 15 + "0123"),
        ("employer_name", "长沙示例制造有限公司", "长沙示例制造有限公司"),
        ("单位名称", "长沙示例制造有限公司", "长沙示例制造有限公司"),
        ("region", "430100", "430100"),
        ("备注", "原身份证440104199003120213作废", "原身份证4401**********0213作废"),
        ("region", None, None),
        (None, "x", "x"),
    ],
)
def test_mask_value_by_field_or_column_name(field, value, masked):
    assert mask_value(field, value) == masked


def test_mask_ids_in_leaves_other_numbers():
    assert mask_ids_in("base 5000.00, phone 13812345678, order 12345678901234567890") == (
        "base 5000.00, phone 13812345678, order 12345678901234567890"
    )
