"""The versioned policy catalogue and contribution calculations.

``model``: a policy version as data; ``shipped``: the versions in ``data/``;
``catalogue``: shipped plus added versions and which one applies on a date;
``calculator``: base, share of the month and amounts under one version.
"""

from .calculator import Calculation, CalculationInput, calculate, check_input, period_start
from .catalogue import PolicyCatalogue, china_today, in_force, resolve
from .model import PolicyTerms, PolicyVersion, Proration, Rates, Rounding, SideRates, check_terms
from .shipped import PolicyDataError, RegionName, region_name, shipped_regions

__all__ = [
    "Calculation",
    "CalculationInput",
    "PolicyCatalogue",
    "PolicyDataError",
    "PolicyTerms",
    "PolicyVersion",
    "Proration",
    "Rates",
    "RegionName",
    "Rounding",
    "SideRates",
    "calculate",
    "check_input",
    "check_terms",
    "china_today",
    "in_force",
    "period_start",
    "region_name",
    "resolve",
    "shipped_regions",
]
