import pytest
from stdnum.cn import ric

from gateway.errors import ProblemError
from gateway.validation import check_amount, check_id_number

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
