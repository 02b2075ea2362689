import pytest

from gateway.webhooks import EVENT_TYPES, UnknownEventType, check_patterns, matches


def test_catalogue_has_every_documented_type():
    assert {"enrolment.accepted", "declaration.partially_accepted", "transfer.funds_transferred",
            "termination.rejected", "payment.settled", "erp_approval.approved", "erp_voucher.posted",
            "contribution_run.overdue", "reimbursement.blocked", "reimbursement.paid"} <= set(EVENT_TYPES)
    assert len(EVENT_TYPES) == 30


def test_every_event_type_is_documented():
    from pathlib import Path

    guide = (Path(__file__).parents[4] / "docs" / "webhooks.md").read_text(encoding="utf-8")
    assert [t for t in EVENT_TYPES if f"`{t}`" not in guide] == []


@pytest.mark.parametrize(
    "patterns, event_type, expected",
    [
        (["transfer.completed"], "transfer.completed", True),
        (["transfer.completed"], "transfer.rejected", False),
        (["transfer.*"], "transfer.source_reviewed", True),
        (["transfer.*"], "termination.accepted", False),
        (["*"], "declaration.rejected", True),
        (["enrolment.*", "declaration.accepted"], "declaration.accepted", True),
        ([], "enrolment.accepted", False),
    ],
)
def test_matching(patterns, event_type, expected):
    assert matches(patterns, event_type) is expected


def test_check_patterns_normalises_and_deduplicates():
    assert check_patterns([" transfer.* ", "transfer.*", "*"]) == ["transfer.*", "*"]


@pytest.mark.parametrize("bad", ["transfer.done", "salary.*", "transfer.", "transfers.*", "**", "", "enrolment.accepted.*"])
def test_unknown_patterns_are_named(bad):
    with pytest.raises(UnknownEventType) as info:
        check_patterns(["transfer.completed", bad])
    assert info.value.pattern == bad
