"""A queue's rate limit as a sliding window over recorded start times (admission.RateWindow)."""

from __future__ import annotations

import pytest

from kubetask.operator.admission import RateWindow
from kubetask.operator.controller import rate_window
from kubetask.resources.models import RateLimit, TaskQueueSpec


def test_allowance_counts_starts_inside_the_window_only() -> None:
    limit = RateWindow(starts=10, per=60)
    assert limit.allowance([], 1000) == 10
    assert limit.allowance([990.0] * 4, 1000) == 6
    assert limit.allowance([990.0] * 10, 1000) == 0
    assert limit.allowance([940.0] * 10, 1000) == 10  # exactly one window old: aged out
    assert limit.allowance([941.0] * 10 + [999.0] * 3, 1000) == 0  # more than the limit (a manual start, say)


def test_never_more_than_starts_in_any_window_when_starting_at_the_allowance() -> None:
    """Drive a queue of 35 waiting Tasks through the limit, one decision per second."""
    limit = RateWindow(starts=10, per=60)
    starts: list[float] = []
    waiting = 35
    for second in range(0, 240):
        now = float(second)
        take = min(waiting, limit.allowance(starts, now))
        starts += [now] * take
        waiting -= take
    assert waiting == 0
    assert starts[:10] == [0.0] * 10 and starts[10:20] == [60.0] * 10 and starts[20:30] == [120.0] * 10
    for start in starts:  # any window [t, t+60) holds at most 10 starts
        assert sum(1 for s in starts if start <= s < start + 60) <= 10


def test_estimates_name_when_each_held_task_can_start() -> None:
    limit = RateWindow(starts=3, per=60)
    recent = [10.0, 20.0, 30.0]
    assert limit.estimates(recent, 40.0, 7) == [70.0, 80.0, 90.0, 130.0, 140.0, 150.0, 190.0]
    # Stable: after the first held Task starts at its estimate, the others' estimates stay.
    later = limit.estimates([20.0, 30.0, 70.0], 70.0, 6)
    assert later == [80.0, 90.0, 130.0, 140.0, 150.0, 190.0]


def test_rate_window_from_the_spec() -> None:
    window = rate_window({"starts": 10, "per": "1m30s"})
    assert window == RateWindow(10, 90.0, "1m30s") and window.describe() == "10 starts per 1m30s"
    assert rate_window(None) is None


@pytest.mark.parametrize("per", ["0s", "-1m", "1d", "", "m"])
def test_zero_negative_or_malformed_windows_are_refused(per: str) -> None:
    with pytest.raises(ValueError):
        RateLimit(starts=1, per=per)


def test_zero_starts_refused() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        TaskQueueSpec.model_validate({"rateLimit": {"starts": 0, "per": "1m"}})
