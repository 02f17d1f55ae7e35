"""The pure schedule rules: next run times across time zones and daylight-saving changes, and
the plan (catch-up, missed runs, deadlines, Forbid/Replace, suspend, history limits)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from kubetask.operator.records import ScheduledTask
from kubetask.operator.schedule import history_to_delete, latest_due, plan
from kubetask.resources.cron import next_time, parse_schedule, run_times
from kubetask.resources.models import TaskScheduleSpec
from kubetask.resources.scheduling import scheduled_task_name

UTC = timezone.utc


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# (schedule, time zone, after, the next runs as local wall-clock times with their UTC offsets)
# Europe/Berlin springs forward 2026-03-29 02:00 -> 03:00 and falls back 2026-10-25 03:00 -> 02:00;
# America/New_York springs forward 2026-03-08 02:00 -> 03:00 and falls back 2026-11-01 02:00 -> 01:00.
DST_TABLE = [
    # The skipped hour: a daily 02:30 run happens at the first moment after the gap, once.
    ("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00+01:00",
     ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]),
    # The repeated hour: a daily 02:30 run happens once, not twice.
    ("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00+02:00",
     ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]),
    # An hourly run happens every real hour: 02:00 twice on the day the clocks go back...
    ("0 * * * *", "Europe/Berlin", "2026-10-25T00:30:00+02:00",
     ["2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"]),
    # ...and the hour that does not exist is not run on the day they go forward.
    ("0 * * * *", "Europe/Berlin", "2026-03-29T00:30:00+01:00",
     ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"]),
    ("30 1 * * *", "America/New_York", "2026-10-31T12:00:00-04:00",
     ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]),
    ("30 2 * * *", "America/New_York", "2026-03-07T12:00:00-05:00",
     ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]),
    # No zone: UTC, which has no daylight saving.
    ("@daily", None, "2026-10-24T12:00:00+00:00", ["2026-10-25T00:00:00+00:00", "2026-10-26T00:00:00+00:00"]),
    ("*/15 9-10 * * MON-FRI", "UTC", "2026-12-04T10:40:00+00:00",  # a Friday
     ["2026-12-04T10:45:00+00:00", "2026-12-07T09:00:00+00:00"]),
]


@pytest.mark.parametrize(("expression", "zone", "after", "expected"), DST_TABLE)
def test_next_run_times_across_daylight_saving(expression: str, zone: str | None, after: str, expected: list[str]) -> None:
    runs = run_times(expression, zone, at(after))
    got = [next(runs) for _ in expected]
    assert got == [at(e) for e in expected]
    assert [g.utcoffset() for g in got] == [timedelta(0)] * len(got)  # always handed out in UTC


@pytest.mark.parametrize(("macro", "fields"), [("@hourly", "0 * * * *"), ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"),
                                               ("@weekly", "0 0 * * 0"), ("@monthly", "0 0 1 * *"), ("@yearly", "0 0 1 1 *")])
def test_macros(macro: str, fields: str) -> None:
    assert parse_schedule(macro) == fields


@pytest.mark.parametrize(("bad", "words"), [("61 * * * *", "minute 0-59"), ("* * * *", "five cron fields"), ("0 24 * * *", "hour 0-23"),
                                            ("0 0 30 2 *", "never fire"), ("*/0 * * * *", "five cron fields"),
                                            ("0 0 * * * *", "five cron fields"), ("@every 5m", "five cron fields")])
def test_bad_schedules_are_refused_with_a_reason(bad: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_schedule(bad)
    with pytest.raises(ValueError, match=words):
        TaskScheduleSpec.model_validate({"schedule": bad, "taskTemplate": {"spec": {"type": "t"}}})


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="IANA time zone"):
        TaskScheduleSpec.model_validate({"schedule": "@daily", "timeZone": "Mars/Olympus", "taskTemplate": {"spec": {"type": "t"}}})


def test_latest_due_counts_the_outage_and_returns_the_newest() -> None:
    newest, count = latest_due("*/10 * * * *", None, at("2026-01-01T00:00:00+00:00"), at("2026-01-01T01:05:00+00:00"))
    assert newest == at("2026-01-01T01:00:00+00:00") and count == 6
    assert latest_due("*/10 * * * *", None, at("2026-01-01T01:00:00+00:00"), at("2026-01-01T01:05:00+00:00")) == (None, 0)
    # A run exactly at `now` is due.
    assert latest_due("0 * * * *", None, at("2026-01-01T00:30:00+00:00"), at("2026-01-01T01:00:00+00:00"))[0] == at("2026-01-01T01:00:00+00:00")


def schedule(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "nightly", "namespace": "ns", "uid": "u1", "generation": 1,
                         "creationTimestamp": "2026-01-01T00:00:00Z", "resourceVersion": "1"},
            "spec": {"schedule": "0 * * * *", "taskTemplate": {"spec": {"type": "t"}}, **spec},
            "status": status or {}}


def task(name: str, phase: str = "Running", finished: bool = False, completed: str | None = None) -> ScheduledTask:
    return ScheduledTask(name=name, uid=f"uid-{name}", phase=phase, finished=finished, scheduled=None,
                         completed=at(completed).timestamp() if completed else None, created="2026-01-01T00:00:00Z")


def ready(decided: Any) -> dict[str, Any]:
    return next(c for c in decided.status["conditions"] if c["type"] == "Ready")


def test_a_fresh_schedule_waits_for_its_first_time() -> None:
    decided = plan(schedule(), [], at("2026-01-01T00:30:00+00:00"))
    assert decided.create is None
    assert decided.status["nextScheduleTime"] == "2026-01-01T01:00:00Z"
    assert decided.requeue_after == pytest.approx(1800)
    assert ready(decided)["reason"] == "Scheduled"


def test_a_due_run_is_created_once_and_recorded() -> None:
    now = at("2026-01-01T01:00:01+00:00")
    decided = plan(schedule(), [], now)
    assert decided.create == at("2026-01-01T01:00:00+00:00")
    assert decided.status["lastScheduleTime"] == "2026-01-01T01:00:00Z" and decided.status["missedRuns"] == 0
    # Planned again on the status it wrote: nothing more to create.
    again = plan(schedule(decided.status), [task(scheduled_task_name("nightly", decided.create))], now)
    assert again.create is None
    assert again.status["activeCount"] == 1


def test_after_an_outage_one_catch_up_run_and_the_rest_counted() -> None:
    status = {"lastScheduleTime": "2026-01-01T01:00:00Z", "missedRuns": 2}
    decided = plan(schedule(status), [], at("2026-01-01T05:10:00+00:00"))
    assert decided.create == at("2026-01-01T05:00:00+00:00")  # the newest of 02:00..05:00
    assert decided.status["missedRuns"] == 2 + 3


def test_past_the_starting_deadline_the_run_is_skipped_and_counted() -> None:
    status = {"lastScheduleTime": "2026-01-01T01:00:00Z"}
    late = plan(schedule(status, startingDeadlineSeconds=300), [], at("2026-01-01T02:06:00+00:00"))
    assert late.create is None and late.status["missedRuns"] == 1 and late.skipped
    assert late.status["lastScheduleTime"] == "2026-01-01T02:00:00Z"  # not tried again
    assert ready(late)["reason"] == "MissedDeadline"
    in_time = plan(schedule(status, startingDeadlineSeconds=300), [], at("2026-01-01T02:04:00+00:00"))
    assert in_time.create == at("2026-01-01T02:00:00+00:00")


def test_forbid_skips_while_a_run_is_unfinished_replace_cancels_it() -> None:
    status = {"lastScheduleTime": "2026-01-01T01:00:00Z"}
    running = [task("nightly-29454540")]
    now = at("2026-01-01T02:00:30+00:00")
    forbid = plan(schedule(status, concurrencyPolicy="Forbid"), running, now)
    assert forbid.create is None and forbid.status["missedRuns"] == 1 and ready(forbid)["reason"] == "ForbidSkipped"
    replace = plan(schedule(status, concurrencyPolicy="Replace"), running, now)
    assert replace.create == at("2026-01-01T02:00:00+00:00") and replace.cancel == ("nightly-29454540",)
    allow = plan(schedule(status), running, now)
    assert allow.create is not None and allow.cancel == ()
    # Forbid does not count this very run's own Task as "in the way" (created, status not yet written).
    own = [task(scheduled_task_name("nightly", at("2026-01-01T02:00:00+00:00")))]
    assert plan(schedule(status, concurrencyPolicy="Forbid"), own, now).create == at("2026-01-01T02:00:00+00:00")


def test_suspended_creates_nothing_and_resume_does_not_make_up() -> None:
    status = {"lastScheduleTime": "2026-01-01T01:00:00Z"}
    suspended = plan(schedule(status, suspend=True), [], at("2026-01-01T04:30:00+00:00"))
    assert suspended.create is None and suspended.status["nextScheduleTime"] is None and suspended.requeue_after is None
    assert {c["type"]: c["status"] for c in suspended.status["conditions"]} == {"Ready": "True", "Suspended": "True"}
    resumed = plan(schedule(suspended.status), [], at("2026-01-01T04:40:00+00:00"))
    assert resumed.create is None and resumed.status["missedRuns"] == 0
    assert next(c for c in resumed.status["conditions"] if c["type"] == "Suspended")["reason"] == "Resumed"
    later = plan(schedule(resumed.status), [], at("2026-01-01T05:00:05+00:00"))
    assert later.create == at("2026-01-01T05:00:00+00:00")


def test_an_invalid_schedule_is_not_ready() -> None:
    decided = plan(schedule(schedule="0 0 30 2 *"), [], at("2026-01-01T00:30:00+00:00"))
    assert decided.create is None and decided.requeue_after is None
    assert ready(decided)["status"] == "False" and ready(decided)["reason"] == "InvalidSchedule"


def test_history_limits_keep_the_newest() -> None:
    tasks = [task("s1", "Succeeded", True, "2026-01-01T01:00:00+00:00"), task("s2", "Succeeded", True, "2026-01-01T02:00:00+00:00"),
             task("s3", "Succeeded", True, "2026-01-01T03:00:00+00:00"), task("f1", "Failed", True, "2026-01-01T01:30:00+00:00"),
             task("c1", "Cancelled", True, "2026-01-01T02:30:00+00:00"), task("r1")]
    assert sorted(history_to_delete(tasks, 2, 1)) == [("f1", "uid-f1"), ("s1", "uid-s1")]
    assert sorted(n for n, _ in history_to_delete(tasks, 0, 0)) == ["c1", "f1", "s1", "s2", "s3"]  # never the running one


def test_last_successful_time_never_goes_back() -> None:
    status = {"lastScheduleTime": "2026-01-01T03:00:00Z", "lastSuccessfulTime": "2026-01-01T03:05:00Z"}
    older = [task("s1", "Succeeded", True, "2026-01-01T02:05:00+00:00")]  # the newer one was pruned
    assert plan(schedule(status), older, at("2026-01-01T03:30:00+00:00")).status["lastSuccessfulTime"] == "2026-01-01T03:05:00Z"


def test_next_time_helper() -> None:
    assert next_time("@hourly", None, at("2026-01-01T00:00:00+00:00")) == at("2026-01-01T01:00:00+00:00")
