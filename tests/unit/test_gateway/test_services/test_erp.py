"""Voucher lines: one side each, debits equal credits, amounts as CNY."""

from decimal import Decimal

import pytest

from gateway.api.schemas import VoucherLineIn
from gateway.errors import ProblemError
from gateway.services.erp import check_voucher_lines


def line(account, debit="0", credit="0", cost_center=None):
    return VoucherLineIn(account, Decimal(debit), Decimal(credit), cost_center)


def test_a_balanced_voucher_becomes_canonical_lines_and_its_total():
    lines, total = check_voucher_lines(
        [line("660201", debit="700.00", cost_center="CC-HR-CS"), line("660201", debit="300.50"),
         line("100201", credit="1000.50")]
    )
    assert total == Decimal("1000.50")
    assert [(ln.account, ln.debit, ln.credit, ln.cost_center) for ln in lines] == [
        ("660201", Decimal("700.00"), Decimal("0.00"), "CC-HR-CS"),
        ("660201", Decimal("300.50"), Decimal("0.00"), None),
        ("100201", Decimal("0.00"), Decimal("1000.50"), None),
    ]


@pytest.mark.parametrize(
    "lines, code",
    [
        ([line("660201", debit="100.00"), line("100201", credit="99.99")], "voucher_unbalanced"),
        ([line("660201", debit="100.00", credit="100.00"), line("100201")], "invalid_voucher_line"),
        ([line("660201"), line("100201")], "invalid_voucher_line"),
        ([line("660201", debit="1.001"), line("100201", credit="1.001")], "invalid_amount"),
        ([line("660201", debit="-1.00"), line("100201", credit="-1.00")], "invalid_amount"),
    ],
)
def test_unbalanced_or_malformed_vouchers_are_refused(lines, code):
    with pytest.raises(ProblemError) as caught:
        check_voucher_lines(lines)
    assert caught.value.code == code
