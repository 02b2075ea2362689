"""The sandbox bank's seeded world: the sandbox employers' corporate accounts and the
creditor accounts that steer each outcome (listed in docs/dialects/openbanking.md)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

#: This bank's own CNAPS code and BIC (sandbox bank B).
BANK_CNAPS = "313100000013"
BANK_BIC = "HGWBCNBJXXX"


@dataclass(frozen=True)
class SeedAccount:
    account: str
    name: str
    balance: Decimal


#: The client's (the sandbox employers') accounts, payable from.
DEBTOR_ACCOUNTS: tuple[SeedAccount, ...] = (
    SeedAccount("31310001000000000101", "长沙示例制造有限公司", Decimal("5000000.00")),
    SeedAccount("31310001000000000202", "广州示例科技有限公司", Decimal("5000000.00")),
    SeedAccount("31310001000000000303", "武汉示例软件有限公司", Decimal("5000000.00")),
    # Almost empty: any payment above 100.00 from it is rejected AM04.
    SeedAccount("31310001000000000909", "长沙示例制造有限公司", Decimal("100.00")),
)


@dataclass(frozen=True)
class SeedCreditor:
    account: str
    name: str | None
    """The holder's name on file (a payment naming another holder is rejected BE01);
    None for an account that does not exist."""
    status: str  # "open", "closed", "blocked", "missing", "screened", "declined"


#: Creditor accounts the bank knows (employees' salary cards at other banks). Any other
#: creditor account passes the account checks.
CREDITOR_ACCOUNTS: tuple[SeedCreditor, ...] = (
    SeedCreditor("6222020200112233453", "李明", "open"),
    SeedCreditor("6222020200112233446", "王芳", "open"),
    SeedCreditor("6222000000000000012", "张三", "closed"),  # AC04
    SeedCreditor("6222000000000000020", "陈静", "blocked"),  # AC06
    SeedCreditor("6222000000000000046", None, "missing"),  # AC01
    SeedCreditor("6222000000000000053", "赵磊", "screened"),  # RR04
    SeedCreditor("6222000000000000061", "刘洋", "declined"),  # MS03
)

#: The first three digits of CNAPS codes of domestic bank classes (the CNAPS directory's
#: bank class codes); a code starting otherwise is rejected RC01.
CNAPS_BANK_CLASSES = frozenset(
    {
        "102", "103", "104", "105", "201", "202", "203", "301", "302", "303", "304", "305", "306",
        "307", "308", "309", "310", "313", "314", "315", "316", "317", "318", "319", "320", "401",
        "402", "403",
        # The sandbox's own clearing class: the banks where the sandbox bureaus collect.
        "999",
    }
)

#: Largest amount of one payment; above it a payment is rejected AM02.
PAYMENT_LIMIT = Decimal("1000000.00")
