"""Canonical models: money, persons, records, receipts."""

from __future__ import annotations

import datetime as dt
import typing
from decimal import Decimal

import msgspec
import pytest

from adapters.models import (
    INSURANCE_TYPES,
    Employer,
    EnrolmentReceipt,
    EnrolmentSubmission,
    InsuranceType,
    ParticipationRecord,
    ParticipationStatus,
    Person,
    money,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3604, "3604.00"),
        ("3604", "3604.00"),
        ("3604.5", "3604.50"),
        (Decimal("0.01"), "0.01"),
        (Decimal("8000.000"), "8000.00"),
        ("0", "0.00"),
        ("123456789012.34", "123456789012.34"),
    ],
)
def test_money_has_exactly_two_places(value: object, expected: str) -> None:
    amount = money(value)  # type: ignore[arg-type]
    assert isinstance(amount, Decimal)
    assert str(amount) == expected
    assert amount.as_tuple().exponent == -2


def test_insurance_types_tuple_matches_the_literal() -> None:
    assert set(INSURANCE_TYPES) == set(typing.get_args(InsuranceType))
    assert len(INSURANCE_TYPES) == 5


def test_participation_statuses() -> None:
    assert set(typing.get_args(ParticipationStatus)) == {"active", "suspended", "terminated", "transferred"}


def test_person_refuses_unknown_fields() -> None:
    assert msgspec.json.decode(b'{"id_number": "440104199003120213", "name": "x"}', type=Person) == Person(
        "440104199003120213", "x"
    )
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"id_number": "1", "name": "x", "age": 3}', type=Person)


def test_employer_refuses_unknown_fields() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"uscc": "1", "name": "x", "extra": 1}', type=Employer)


def test_participation_record_round_trips_through_json() -> None:
    record = ParticipationRecord(
        region="440100",
        insurance_type="pension",
        status="active",
        employer=Employer(uscc="91440101MA59BX4C3Y", name="广州示例科技有限公司"),
        start_date=dt.date(2023, 8, 1),
        end_date=None,
        paid_months=36,
        contribution_base=money("8000"),
        last_paid_period="2026-07",
    )
    wire = msgspec.json.encode(record)
    decoded = msgspec.json.decode(wire)
    assert decoded["start_date"] == "2023-08-01"  # ISO 8601 on the wire
    assert decoded["contribution_base"] == "8000.00"  # money as a decimal string
    assert decoded["end_date"] is None
    assert msgspec.json.decode(wire, type=ParticipationRecord) == record


def test_participation_record_refuses_a_non_canonical_insurance_type() -> None:
    wire = msgspec.json.encode(
        {
            "region": "440100",
            "insurance_type": "110",
            "status": "active",
            "employer": None,
            "start_date": None,
            "end_date": None,
            "paid_months": 0,
            "contribution_base": None,
            "last_paid_period": None,
        }
    )
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(wire, type=ParticipationRecord)


def test_enrolment_receipt_defaults_and_status_literal() -> None:
    receipt = EnrolmentReceipt(reference="HGW-1", bureau_reference="440100E000001", status="accepted")
    assert receipt.accepted_on is None
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(
            b'{"reference": "a", "bureau_reference": "b", "status": "rejected"}', type=EnrolmentReceipt
        )


def test_models_are_frozen() -> None:
    person = Person("440104199003120213", "王芳")
    with pytest.raises(AttributeError):
        person.name = "x"  # type: ignore[misc]
    submission = EnrolmentSubmission(
        reference="HGW-0123456789ABCDEF",
        region="440100",
        person=person,
        employer=Employer("91440101MA59BX4C3Y", "x"),
        hire_date=dt.date(2024, 11, 1),
        insurance_types=("pension",),
        contribution_base=money("8000"),
    )
    with pytest.raises(AttributeError):
        submission.reference = "other"  # type: ignore[misc]
