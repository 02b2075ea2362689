"""Masking PII for messages, findings and reports.

Resident ID numbers keep their first and last four characters (``4401**********0213``,
as in the gateway's logs), names keep their first character, account and phone
numbers their last four digits. Other values pass unchanged, except that anything
shaped like an ID number inside them is masked (a column holding the wrong thing).
"""

from __future__ import annotations

import re

__all__ = ["PII_FIELDS", "mask_account", "mask_id", "mask_ids_in", "mask_name", "mask_value"]

#: Canonical fields whose values are PII, and how each is masked.
PII_FIELDS: dict[str, str] = {"id_number": "id", "name": "name"}

# Source columns that are not mapped can still hold PII; these name fragments decide.
_ID_HINTS = ("id_number", "身份证", "证件号", "idno", "id_no", "id number", "idcard")
_NAME_HINTS = ("姓名", "name")
_ACCOUNT_HINTS = ("account", "账号", "帐号", "卡号", "bank", "银行", "phone", "mobile", "电话", "手机")
_NOT_PERSON_NAME = ("employer", "单位", "company", "公司", "region", "file", "sheet")


def mask_id(value: str) -> str:
    """``440104199003120213`` -> ``4401**********0213``; short values are starred whole."""
    value = value.strip()
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_name(value: str) -> str:
    """``王芳`` -> ``王*``, ``Wang Fang`` -> ``W*** F***``: the first character of each word."""
    value = value.strip()
    words = value.split()
    if len(words) > 1:
        return " ".join(word[0] + "*" * (len(word) - 1) for word in words)
    if len(value) <= 1:
        return "*" * len(value)
    return value[0] + "*" * (len(value) - 1)


def mask_account(value: str) -> str:
    """Bank account, card or phone numbers keep their last four characters."""
    value = value.strip()
    if len(value) <= 4:
        return "*" * len(value)
    return "*" * (len(value) - 4) + value[-4:]


def mask_value(field: str | None, value: str | None) -> str | None:
    """Mask ``value`` as the PII ``field`` (a canonical field or a source column name) holds.

    Unknown fields whose name suggests an ID number, a person's name or an account
    number are masked too: a report must not leak what the mapping left unmapped.
    """
    if value is None or field is None:
        return value
    kind = PII_FIELDS.get(field) or _kind_of_column(field)
    if kind == "id":
        return mask_id(value)
    if kind == "name":
        return mask_name(value)
    if kind == "account":
        return mask_account(value)
    return mask_ids_in(value)


_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{4})\d{10}(\d{3}[\dXx])(?![0-9A-Za-z])")


def mask_ids_in(text: str) -> str:
    """Mask anything shaped like a resident ID number inside free text."""
    return _ID_NUMBER.sub(lambda m: m.group(1) + "*" * 10 + m.group(2), text) if len(text) >= 18 else text


def _kind_of_column(column: str) -> str | None:
    lowered = column.lower()
    if any(hint in lowered for hint in _ID_HINTS):
        return "id"
    if any(hint in lowered for hint in _ACCOUNT_HINTS):
        return "account"
    if any(hint in lowered for hint in _NAME_HINTS) and not any(n in lowered for n in _NOT_PERSON_NAME):
        return "name"
    return None
