"""`kubetask schedules ...` against a fake gateway, and the schedule table and summary."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from cli_fakes import FakeGateway, cli, error, sse, task
from kubetask.cli import render
from kubetask.cli.main import EXIT_API, EXIT_OK, EXIT_USAGE

NOW = datetime(2026, 3, 28, 12, 0, 0, tzinfo=timezone.utc)


def ts(delta_seconds: float) -> str:
    return (NOW + timedelta(seconds=delta_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule(name: str = "nightly", suspend: bool = False, **extra: Any) -> dict[str, Any]:
    runs = [] if suspend else [ts(13 * 3600 + 86400 * i) for i in range(5)]
    return {"name": name, "namespace": "team-a", "uid": "u-s", "resourceVersion": "7", "creationTimestamp": ts(-3 * 86400),
            "labels": {}, "annotations": {}, "submittedBy": "alice",
            "spec": {"schedule": "0 3 * * *", "timeZone": "Europe/Berlin", "suspend": suspend, "concurrencyPolicy": "Forbid",
                     "successfulHistoryLimit": 3, "failedHistoryLimit": 1,
                     "taskTemplate": {"spec": {"type": "sim", "queue": "default", "parameters": {"n": 3}}}},
            "status": {"lastScheduleTime": ts(-11 * 3600), "activeCount": 1, "active": [{"name": "nightly-29580000", "uid": "t"}],
                       "missedRuns": 2, "conditions": [{"type": "Ready", "status": "True", "reason": "Scheduled", "message": "",
                                                        "lastTransitionTime": ts(-11 * 3600)}]},
            "nextRuns": runs, "nextRunsMessage": "suspended: no Tasks are created until it is resumed" if suspend else None, **extra}


def test_schedule_table_and_summary() -> None:
    table = render.schedule_table([schedule(), schedule("paused", suspend=True, status={})], now=NOW)
    lines = [line.split() for line in table.splitlines()]
    assert lines[0] == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPENDED", "ACTIVE", "LAST", "NEXT", "MISSED", "READY", "AGE"]
    assert lines[1] == ["nightly", "0", "3", "*", "*", "*", "Europe/Berlin", "no", "1", "11h", "in", "13h", "2", "Scheduled", "3d"]
    assert lines[2] == ["paused", "0", "3", "*", "*", "*", "Europe/Berlin", "yes", "0", "-", "-", "0", "-", "3d"]
    text = render.describe_schedule(schedule(), now=NOW)
    assert "Schedule:     0 3 * * *   (Europe/Berlin)" in text
    assert "Active:       1: nightly-29580000" in text and "Missed runs:  2" in text and "Concurrency:  Forbid" in text
    assert 'Task:         type sim, queue default, parameters {"n": 3}' in text
    assert f"  {ts(13 * 3600)}  in 13h" in text and "Sun 2026-03-29 03:00 CEST" in text  # the first run after the DST change
    assert "Scheduled" in text.split("Conditions:")[1]
    assert "Next runs:    none: suspended" in render.describe_schedule(schedule(suspend=True), now=NOW)


def test_list_and_get() -> None:
    fake = FakeGateway().on("GET", "taskschedules", httpx.Response(200, json={"items": [schedule(), schedule("weekly")]})) \
        .on("GET", "taskschedules/nightly", httpx.Response(200, json=schedule()))
    listed = cli(fake, "schedules", "list")
    assert listed.code == EXIT_OK, listed.err
    assert [line.split()[0] for line in listed.out.splitlines()] == ["NAME", "nightly", "weekly"]
    assert cli(fake, "schedules", "list", "-o", "name").out == "nightly\nweekly\n"
    assert [s["name"] for s in json.loads(cli(fake, "schedules", "list", "-o", "json").out)["items"]] == ["nightly", "weekly"]
    got = cli(fake, "schedules", "get", "nightly")
    assert got.code == EXIT_OK and "Next runs:" in got.out and got.out.count(" 03:00 CEST") == 5
    assert json.loads(cli(fake, "schedules", "get", "nightly", "-o", "json").out)["nextRuns"] == schedule()["nextRuns"]
    assert [r.url.path for r in fake.requests][-1] == "/api/v1/namespaces/team-a/taskschedules/nightly"


def test_an_empty_list_says_so() -> None:
    fake = FakeGateway().on("GET", "taskschedules", httpx.Response(200, json={"items": []}))
    result = cli(fake, "schedules", "list")
    assert result.code == EXIT_OK and result.out == "" and result.err == "No TaskSchedules in namespace team-a.\n"


def test_trigger_prints_the_task_and_can_follow_it() -> None:
    created = task("nightly-mabc123", labels={"kubetask.io/schedule": "nightly"})
    fake = FakeGateway().on("POST", "taskschedules/nightly:trigger", httpx.Response(201, json=created)) \
        .on("GET", "tasks/nightly-mabc123:watch", sse(("status", task("nightly-mabc123", "Succeeded", result={"ok": True}))))
    result = cli(fake, "schedules", "trigger", "nightly")
    assert result.code == EXIT_OK and result.out == "task/nightly-mabc123 created from taskschedule/nightly\n"
    assert fake.requests[0].method == "POST" and fake.requests[0].content == b""
    assert cli(fake, "schedules", "trigger", "nightly", "-o", "name").out == "nightly-mabc123\n"
    watched = cli(fake, "schedules", "trigger", "nightly", "--watch")
    assert watched.code == EXIT_OK and "Task nightly-mabc123 Succeeded" in watched.out


def test_suspend_and_resume() -> None:
    fake = FakeGateway().on("POST", "taskschedules/nightly:suspend", httpx.Response(200, json=schedule(suspend=True))) \
        .on("POST", "taskschedules/nightly:resume", httpx.Response(200, json=schedule()))
    assert cli(fake, "schedules", "suspend", "nightly").out == "taskschedule/nightly suspended\n"
    assert cli(fake, "schedules", "resume", "nightly").out == f"taskschedule/nightly resumed; next run {ts(13 * 3600)}\n"
    assert json.loads(cli(fake, "schedules", "suspend", "nightly", "-o", "json").out)["spec"]["suspend"] is True
    assert [r.url.path.rsplit("/", 1)[1] for r in fake.requests] == ["nightly:suspend", "nightly:resume", "nightly:suspend"]


def test_gateway_errors_name_the_permission_and_exit_3() -> None:
    fake = FakeGateway().on("POST", "taskschedules/nightly:trigger", error(
        403, "Forbidden", "user 'bob' may not create tasks.kubetask.io in namespace team-a"))
    result = cli(fake, "schedules", "trigger", "nightly")
    assert result.code == EXIT_API and "may not create tasks.kubetask.io" in result.err and "RBAC decides" in result.err


@pytest.mark.parametrize("argv", [["schedules"], ["schedules", "nope"], ["schedules", "get"], ["schedules", "list", "-o", "wide"]])
def test_schedule_usage_errors_exit_2(argv: list[str]) -> None:
    result = cli(None, *argv)
    assert result.code == EXIT_USAGE and "usage: kubetask" in result.err


def test_global_options_work_after_the_subcommand() -> None:
    fake = FakeGateway().on("GET", "/api/v1/namespaces/team-b/taskschedules", httpx.Response(200, json={"items": [schedule()]}))
    assert cli(fake, "schedules", "list", "-n", "team-b").code == EXIT_OK
    assert cli(fake, "-n", "team-b", "schedules", "list").code == EXIT_OK
