"""Chinese resident ID numbers (GB 11643-1999), shared by the mocks.

Implemented here rather than taken from a library so the mocks stay
standard-library only and check the adapters independently.
"""

from __future__ import annotations

import re

_SHAPE = re.compile(r"[0-9]{17}[0-9X]")
# ISO 7064 MOD 11-2: the weight of position i (0-based, left to right) is 2^(17-i) mod 11.
_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
# Check character indexed by (weighted sum mod 11), i.e. (12 - sum mod 11) mod 11 with 10 -> X.
_CHECK_CHARS = "10X98765432"


def is_well_formed(id_number: str) -> bool:
    """Eighteen characters: seventeen digits and a digit or ``X``."""
    return _SHAPE.fullmatch(id_number) is not None


def check_char(first17: str) -> str:
    """The check character for the first seventeen digits."""
    return _CHECK_CHARS[sum(int(digit) * weight for digit, weight in zip(first17, _WEIGHTS)) % 11]


def has_valid_check_digit(id_number: str) -> bool:
    """Whether a well-formed ID number's last character matches its check digit."""
    return is_well_formed(id_number) and check_char(id_number[:17]) == id_number[17]


def mask(id_number: str) -> str:
    """Keep the first and last four characters, e.g. ``4401**********0213``."""
    return id_number[:4] + "*" * (len(id_number) - 8) + id_number[-4:]
