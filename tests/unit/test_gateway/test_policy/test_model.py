"""Validation of a policy version's terms (shared by shipped files and admin adds)."""

from __future__ import annotations

import copy

import msgspec
import pytest

from gateway.errors import ProblemError
from gateway.policy import PolicyTerms, check_terms

TERMS = {
    "effective_from": "2027-01-01",
    "effective_to": None,
    "base_floor": "3800.00",
    "base_ceiling": "19000.00",
    "rates": {
        "pension": {"employer": "0.15", "employee": "0.08"},
        "medical": {"employer": "0.08", "employee": "0.02"},
        "unemployment": {"employer": "0.007", "employee": "0.003"},
        "work_injury": {"employer": "0.004", "employee": "0"},
        "maternity": {"employer": "0", "employee": "0"},
    },
    "rounding": {"places": 2, "mode": "half_up"},
    "proration": {"cutoff_day": 15, "on_or_before": "1", "after": "0.5"},
    "source": "test notice",
}


def terms(**changes):
    doc = copy.deepcopy(TERMS)
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = doc
        for p in parents:
            target = target[p]
        target[last] = value
    return msgspec.convert(doc, PolicyTerms)


def test_valid_terms_pass_with_money_at_two_places():
    checked = check_terms(terms(base_floor="3800", base_ceiling="19000.0"))
    assert (str(checked.base_floor), str(checked.base_ceiling)) == ("3800.00", "19000.00")
    assert checked.sample_data is False


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"effective_from": "1999-12-31"}, "effective_from"),
        ({"effective_from": "2101-01-01"}, "effective_from"),
        ({"effective_to": "2101-01-01"}, "effective_to"),
        ({"effective_to": "2026-12-31"}, "effective_to"),
        ({"base_floor": "20000.00"}, "base_floor"),
        ({"base_floor": "0"}, "base_floor"),
        ({"base_floor": "-1"}, "base_floor"),
        ({"base_floor": "3800.001"}, "base_floor"),
        ({"base_ceiling": "Infinity"}, "base_ceiling"),
        ({"rates__pension__employer": "1.01"}, "rates.pension.employer"),
        ({"rates__pension__employer": "-0.01"}, "rates.pension.employer"),
        ({"rates__medical__employee": "0.00001"}, "rates.medical.employee"),
        ({"rates__maternity__employer": "NaN"}, "rates.maternity.employer"),
        ({"proration__after": "1.5"}, "proration.after"),
        ({"proration__on_or_before": "0.33333"}, "proration.on_or_before"),
    ],
)
def test_impossible_figures_are_refused(changes, field):
    with pytest.raises(ProblemError) as info:
        check_terms(terms(**changes))
    assert info.value.code == "invalid_policy" and info.value.extensions["field"] == field
    assert info.value.status == 422


def test_four_decimal_places_and_trailing_zeros_are_fine():
    checked = check_terms(terms(rates__work_injury__employer="0.0014", rates__pension__employer="0.160000"))
    assert str(checked.rates.work_injury.employer) == "0.0014"


def test_a_one_day_version_is_fine():
    check_terms(terms(effective_to="2027-01-01"))


@pytest.mark.parametrize(
    "doc_change",
    [
        lambda d: d["rates"].pop("maternity"),
        lambda d: d["rates"].update(dental={"employer": "0", "employee": "0"}),
        lambda d: d["rounding"].update(mode="bankers"),
        lambda d: d["rounding"].update(places=3),
        lambda d: d["proration"].update(cutoff_day=0),
        lambda d: d.update(source=" "),
    ],
)
def test_shape_errors_are_decoding_errors(doc_change):
    doc = copy.deepcopy(TERMS)
    doc_change(doc)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(doc, PolicyTerms)
