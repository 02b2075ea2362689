import pytest
from stdnum.cn import ric

from gateway.errors import ProblemError
from gateway.validation import (
    check_account_number,
    check_amount,
    check_bank_code,
    check_currency,
    check_id_number,
)

CASES = [
    "440104199003120213",  # valid
    "33010219870715042x",  # valid, lower-case check character
    "440104199003120214",  # bad check digit
    "44010419900312021",  # too short
    "4401041990031202130",  # too long
    "44010419900332021X",  # impossible birth date
    "990104199003120213",  # no such division
    "44010A199003120213",  # not digits
    "４４０１０４１９９００３１２０２１３",  # full-width digits
]


@pytest.mark.parametrize("number", CASES)
def test_id_check_agrees_with_stdnum(number):
    """The cached check accepts and refuses exactly what stdnum's validate does."""
    try:
        expected = ric.validate(number)
    except Exception:
        expected = None
    if expected is None:
        with pytest.raises(ProblemError) as info:
            check_id_number(number, "id_number")
        assert info.value.code == "invalid_id_number" and info.value.extensions["field"] == "id_number"
    else:
        assert check_id_number(number, "id_number") == expected


@pytest.mark.parametrize("amount", ["0", "-1", "1.001", "100000000.01", "NaN", "Infinity"])
def test_bad_amounts(amount):
    from decimal import Decimal

    with pytest.raises(ProblemError):
        check_amount(Decimal(amount), "x")


# -- accounts, bank codes, currency ----------------------------------------------------

@pytest.mark.parametrize(
    "value, expected",
    [
        ("6222020200112233446", "6222020200112233446"),  # UnionPay card, Luhn-valid
        ("6222 0202 0011 2233 446", "6222020200112233446"),
        ("43050188000012345678", "43050188000012345678"),  # settlement account: form only
        ("DE89370400440532013000", "DE89370400440532013000"),  # IBAN (stdnum.iban)
        ("de89 3704 0044 0532 0130 00", "DE89370400440532013000"),
    ],
)
def test_valid_account_numbers_are_compacted(value, expected):
    assert check_account_number(value, "creditor.account") == expected


@pytest.mark.parametrize(
    "value",
    ["6222020200112233445", "DE89370400440532013001", "1234567", "1" * 31, "62220202001122334x", ""],
)
def test_malformed_account_numbers_are_refused_without_repeating_them(value):
    with pytest.raises(ProblemError) as caught:
        check_account_number(value, "creditor.account")
    assert caught.value.code == "invalid_account_number"
    assert caught.value.extensions["field"] == "creditor.account"
    assert not value or value not in (caught.value.detail or "")


@pytest.mark.parametrize("value", ["102100099996", "DEUTDEFF", "ICBKCNBJXXX"])
def test_cnaps_codes_and_bics_are_bank_codes(value):
    assert check_bank_code(value, "bank_code") == value


@pytest.mark.parametrize("value", ["10210009999", "1021000999961", "DEUT", "12345678", "ICBKCNBJ1"])
def test_other_bank_codes_are_refused(value):
    with pytest.raises(ProblemError) as caught:
        check_bank_code(value, "bank_code")
    assert caught.value.code == "invalid_bank_code"


def test_only_cny_is_a_currency():
    assert check_currency("CNY", "currency") == "CNY"
    for other in ("USD", "cny", "RMB"):
        with pytest.raises(ProblemError) as caught:
            check_currency(other, "currency")
        assert caught.value.code == "unsupported_currency"
