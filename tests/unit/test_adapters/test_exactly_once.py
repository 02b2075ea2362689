import pytest

from adapters import AmbiguousOutcome, UpstreamConnectError, UpstreamServerError, send_at_most_once


def script(*outcomes):
    """An async callable returning (or raising) the given outcomes in turn, counting calls."""
    calls = []

    async def call():
        calls.append(1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    call.calls = calls
    return call


async def run(send, landed, rounds=3):
    return await send_at_most_once(send, landed, reference="enrolment R1", upstream="u", rounds=rounds)


async def test_an_answered_send_is_the_answer():
    send, landed = script("receipt"), script()
    assert await run(send, landed) == "receipt" and len(landed.calls) == 0


async def test_a_lost_send_that_landed_is_not_sent_again():
    send, landed = script(AmbiguousOutcome("lost")), script("found")
    assert await run(send, landed) == "found"
    assert len(send.calls) == 1


async def test_a_lost_send_that_did_not_land_is_sent_again():
    send, landed = script(AmbiguousOutcome("lost"), "receipt"), script(None)
    assert await run(send, landed) == "receipt"
    assert len(send.calls) == 2 and len(landed.calls) == 1


async def test_lost_every_round_and_never_landed_is_a_plain_failure():
    send, landed = script(*[AmbiguousOutcome("lost")] * 3), script(None, None, None)
    with pytest.raises(UpstreamServerError, match="lost 3 times"):
        await run(send, landed)


async def test_when_the_upstream_cannot_be_asked_the_outcome_stays_ambiguous():
    send, landed = script(AmbiguousOutcome("lost")), script(UpstreamConnectError("down"))
    with pytest.raises(AmbiguousOutcome, match="R1 may or may not have landed") as info:
        await run(send, landed)
    assert isinstance(info.value.__cause__, UpstreamConnectError)
    assert len(send.calls) == 1
