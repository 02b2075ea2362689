"""Checks on canonical input that need more than a type: ID numbers, USCCs,
regions, amounts and dates. Each failure is a ``ProblemError`` naming the field."""

from __future__ import annotations

import datetime as dt
import functools
import re
from decimal import Decimal, InvalidOperation

from stdnum import bic, iban, luhn
from stdnum.cn import ric, uscc
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength, ValidationError

from .errors import ProblemError

__all__ = [
    "check_account_number",
    "check_amount",
    "check_bank_code",
    "check_currency",
    "check_date",
    "check_id_number",
    "check_region",
    "check_uscc",
]

_REGION = re.compile(r"\d{6}")


@functools.lru_cache(maxsize=16_384)
def _birth_place_valid(division: str, year: str) -> bool:
    """Whether the 6-digit division code existed in that birth year (stdnum's database).

    The lookup is the costly part of ``ric.validate`` and depends only on these two
    parts of the number, so it is cached (every request validates an ID number).
    """
    try:
        ric.get_birth_place(f"{division}{year}0101000" + "0")
    except ValidationError:
        return False
    return True


def check_id_number(value: str, field: str) -> str:
    """``stdnum.cn.ric.validate``, step by step, with the birth-place lookup cached."""
    try:
        number = ric.compact(value)
        if len(number) != 18:
            raise InvalidLength()
        if not number[:-1].isdigit() or not number[:-1].isascii():
            raise InvalidFormat()
        if number[-1] != ric.calc_check_digit(number):
            raise InvalidChecksum()
        ric.get_birth_date(number)
        if not _birth_place_valid(number[:6], number[6:10]):
            raise InvalidComponent()
    except ValidationError as exc:
        raise ProblemError("invalid_id_number", f"{field}: {exc}", field=field) from None
    return number


def check_uscc(value: str, field: str) -> str:
    try:
        return uscc.validate(value)
    except ValidationError as exc:
        raise ProblemError("invalid_uscc", f"{field}: {exc}", field=field) from None


def check_region(value: str, known: list[str], field: str) -> str:
    if not _REGION.fullmatch(value) or value not in known:
        raise ProblemError(
            "unknown_region",
            f"{field}: no bureau serves region {value!r} for this key",
            field=field,
            known_regions=known,
        )
    return value


def check_amount(value: Decimal, field: str, *, positive: bool = True, maximum: Decimal = Decimal("100000000")) -> Decimal:
    try:
        exponent = value.as_tuple().exponent
        ok = value.is_finite() and isinstance(exponent, int) and exponent >= -2
        ok = ok and (value > 0 if positive else value >= 0) and value <= maximum
    except (InvalidOperation, TypeError):
        ok = False
    if not ok:
        raise ProblemError(
            "invalid_amount",
            f"{field}: a CNY amount as a decimal string with at most two places, greater than 0 and at most {maximum}",
            field=field,
        )
    return value.quantize(Decimal("0.01"))


def check_date(value: dt.date, field: str, *, earliest: dt.date, latest: dt.date) -> dt.date:
    if not earliest <= value <= latest:
        raise ProblemError("invalid_date", f"{field}: must be between {earliest} and {latest}", field=field)
    return value


_DIGITS = re.compile(r"[0-9]+")


def check_account_number(value: str, field: str) -> str:
    """An IBAN (``stdnum.iban``), a UnionPay card number (16–19 digits starting 62,
    Luhn-checked with ``stdnum.luhn``) or a domestic settlement account number (8–30
    digits: Chinese banks publish no check digit for these, so only the form is
    checked). Spaces are removed; the message never repeats the number."""
    compact = value.replace(" ", "").upper()
    if compact[:2].isalpha():
        if iban.is_valid(compact):
            return compact
        raise ProblemError("invalid_account_number", f"{field}: not a valid IBAN", field=field)
    if not _DIGITS.fullmatch(compact) or not 8 <= len(compact) <= 30:
        raise ProblemError(
            "invalid_account_number", f"{field}: an account number is 8 to 30 digits, or an IBAN", field=field
        )
    if compact.startswith("62") and 16 <= len(compact) <= 19 and not luhn.is_valid(compact):
        raise ProblemError("invalid_account_number", f"{field}: the card number's check digit is wrong", field=field)
    return compact


def check_bank_code(value: str, field: str) -> str:
    """A 12-digit CNAPS bank code (大额支付系统行号) or a BIC (``stdnum.bic``)."""
    compact = value.replace(" ", "").upper()
    if (len(compact) == 12 and compact.isdigit()) or (not compact.isdigit() and bic.is_valid(compact)):
        return compact
    raise ProblemError("invalid_bank_code", f"{field}: neither a 12-digit CNAPS code nor a valid BIC", field=field)


def check_currency(value: str, field: str) -> str:
    if value != "CNY":
        raise ProblemError("unsupported_currency", f"{field}: only CNY is supported, got {value!r}", field=field)
    return value
