import random

import pytest

from gateway.webhooks import DEFAULT_SCHEDULE, RetrySchedule


def test_default_schedule_grows_and_repeats_its_last_step():
    schedule = RetrySchedule(jitter=0)
    assert DEFAULT_SCHEDULE == (5, 30, 120, 600, 3600, 21600)
    assert [schedule.delay_after(n) for n in range(1, 9)] == [5, 30, 120, 600, 3600, 21600, 21600, 21600]


def test_gives_up_after_max_attempts():
    schedule = RetrySchedule((1.0, 2.0), max_attempts=3, jitter=0)
    assert schedule.delay_after(2) == 2.0
    assert schedule.delay_after(3) is None
    assert schedule.delay_after(4) is None


def test_jitter_only_lengthens_and_stays_bounded():
    schedule = RetrySchedule((10.0,), max_attempts=100, jitter=0.2)
    rng = random.Random(7)
    delays = [schedule.delay_after(1, rng) for _ in range(200)]
    assert all(10.0 <= d <= 12.0 for d in delays)
    assert len(set(delays)) > 100  # spread, so retries of many failed deliveries do not line up


@pytest.mark.parametrize("kwargs", [{"delays": ()}, {"delays": (-1.0,)}, {"max_attempts": 0}, {"jitter": 2.0}])
def test_bad_schedules_are_refused(kwargs):
    with pytest.raises(ValueError):
        RetrySchedule(**kwargs)
