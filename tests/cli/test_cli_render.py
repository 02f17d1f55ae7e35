"""The CLI's text output: ages, tables, progress bars, one Task, errors."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from cli_fakes import task
from kubetask.cli import render
from kubetask.cli.client import ApiError

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def ts(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (59, "59s"), (119, "119s"), (120, "2m"), (200, "3m20s"), (599, "9m59s"), (600, "10m"), (179 * 60, "179m"),
    (3 * 3600, "3h"), (3 * 3600 + 1200, "3h20m"), (20 * 3600, "20h"), (50 * 3600, "2d2h"), (3 * 86400, "3d"),
    (45 * 86400, "45d"), (800 * 86400, "2y70d"), (-5, "0s"),
])
def test_human_durations_read_like_kubectl(seconds: float, text: str) -> None:
    assert render.human_duration(seconds) == text


def test_age_of_a_timestamp() -> None:
    assert render.age(ts(200), NOW) == "3m20s"
    assert render.age(None, NOW) == render.age("garbage", NOW) == "<unknown>"
    assert render.age("2024-05-01T11:59:00+00:00", NOW) == "60s"


def test_table_pads_columns_and_never_pads_the_last() -> None:
    text = render.table(("NAME", "PHASE", "AGE"), [["a", "Running", "5s"], ["longer-name", "Succeeded", "10m"]])
    assert text.splitlines() == [
        "NAME          PHASE       AGE",
        "a             Running     5s",
        "longer-name   Succeeded   10m",
    ]


def test_table_measures_wide_characters() -> None:
    text = render.table(("NAME", "X"), [["日本", "1"], ["ab", "2"]])
    first, second = text.splitlines()[1:]
    # two wide characters take four columns: both values start in display column 7
    assert render.width(first[:first.index("1")]) == render.width(second[:second.index("2")]) == 7


def test_task_table_shows_phase_progress_and_age() -> None:
    tasks = [task("a", "Running", progress={"percent": 42, "message": "x"}, creationTimestamp=ts(30)),
             task("b", "Succeeded", creationTimestamp=ts(7200)),
             task("c", "Failed", finished=False, queue=None, creationTimestamp=ts(5))]  # a rerun was requested
    lines = render.task_table(tasks, now=NOW).splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "QUEUE", "PHASE", "PROGRESS", "AGE"]
    assert lines[1].split() == ["a", "sim", "default", "Running", "42%", "30s"]
    assert lines[2].split() == ["b", "sim", "default", "Succeeded", "100%", "120m"]
    assert lines[3].split() == ["c", "sim", "-", "Failed", "(rerun)", "-", "5s"]


def test_phase_colors_only_when_asked() -> None:
    plain = render.task_table([task("a", "Failed")], color=False, now=NOW)
    colored = render.task_table([task("a", "Failed")], color=True, now=NOW)
    assert "\x1b[" not in plain
    assert "\x1b[31mFailed\x1b[0m" in colored
    assert colored.replace("\x1b[31m", "").replace("\x1b[0m", "") == plain  # colors do not move the columns


@pytest.mark.parametrize(("percent", "bar"), [
    (None, "░░░░░░░░░░"), (0, "░░░░░░░░░░"), (50, "█████░░░░░"), (100, "██████████"), (55, "█████▌░░░░"), (250, "██████████"),
])
def test_unicode_progress_bar(percent: int | None, bar: str) -> None:
    assert render.progress_bar(percent, 10) == bar
    assert render.width(bar) == 10


def test_ascii_progress_bar() -> None:
    assert render.progress_bar(30, 10, unicode=False) == "[###.......]"
    assert render.progress_bar(None, 4, unicode=False) == "[....]"


def test_watch_line_shows_percent_message_and_elapsed_time() -> None:
    running = task("resize-1", "Running", progress={"percent": 60, "message": "copying"}, startTime=ts(12))
    line = render.watch_line(running, now=NOW)
    assert line.startswith("resize-1  ██████████████▍░░░░░░░░░  60%  Running  copying  (12s)")
    assert render.watch_line(task("p", "Pending"), now=NOW).endswith("   Pending")
    done = task("s", "Succeeded", startTime=ts(3), completionTime=ts(1))
    assert "100%  Succeeded  (2.0s)" in render.watch_line(done, now=NOW)
    rerun = task("r", "Failed", finished=False, startTime=ts(100))
    assert render.watch_line(rerun, now=NOW).endswith("Pending (rerun requested)")  # the old run's times are not shown


def test_watch_line_never_wraps() -> None:
    long = task("x", "Running", progress={"percent": 1, "message": "m" * 300}, startTime=ts(1))
    line = render.watch_line(long, now=NOW, columns=80)
    assert render.width(line) <= 79 and line.endswith("…")


def test_outcome_lines() -> None:
    ok = task("a", "Succeeded", result={"url": "s3://x"}, startTime=ts(3), completionTime=ts(1))
    assert render.outcome(ok) == 'Task a Succeeded in 2.0s; result: {"url": "s3://x"}'
    failed = task("b", "Failed", lastFailure={"exitCode": 3, "reason": "BackoffLimitExceeded", "message": "disk full"})
    assert render.outcome(failed) == "Task b Failed: BackoffLimitExceeded, exit code 3: disk full"
    assert render.outcome(task("c", "Cancelled")) == "Task c Cancelled"
    unknown = task("d", "Failed", conditions=[{"type": "Finished", "status": "True", "reason": "DeadlineExceeded", "message": "too slow"}])
    assert render.failure_text(unknown) == "DeadlineExceeded: too slow"


def test_describe_shows_what_a_person_needs() -> None:
    t = task("resize-1", "Failed", submittedBy="system:serviceaccount:a:ci", startTime=ts(20), completionTime=ts(10), jobName="resize-1-abc-r1",
             run=1, attempts=2, labels={"team": "a"}, lastFailure={"exitCode": 3, "reason": "BackoffLimitExceeded", "message": "disk full"},
             conditions=[{"type": "Finished", "status": "True", "reason": "BackoffLimitExceeded", "message": "no retries left",
                          "lastTransitionTime": ts(10)}],
             history=[{"run": 0, "phase": "Failed", "reason": "BackoffLimitExceeded", "attempts": 1, "jobName": "j0",
                       "completionTime": ts(100)}],
             progress={"percent": 30, "message": "step 3"})
    t["spec"].update(rerun=1, resources={"cpu": "500m"})
    text = render.describe(t, now=NOW)
    for expected in ("Name:         resize-1", "Phase:        Failed   run 1, 2 attempts", "Submitted by: system:serviceaccount:a:ci",
                     "Duration:     10s", "Parameters:   {\"n\": 1}", "Resources:    cpu=500m", "Labels:       team=a",
                     "Last failure: BackoffLimitExceeded, exit code 3: disk full", "30%  step 3", "Conditions:", "History:",
                     "  0     Failed   BackoffLimitExceeded   1          j0"):
        assert expected in text, expected


def test_schema_summary_and_type_table() -> None:
    schema = {"type": "object", "required": ["width"], "properties": {"width": {"type": "integer"}, "mode": {"type": ["string", "null"]}}}
    assert render.schema_summary(schema) == "*width:integer, mode:string|null"
    assert render.schema_summary(None) == "(any)"
    assert render.schema_summary({"type": "object", "additionalProperties": False}) == "(none)"
    table = render.type_table([{"name": "resize", "image": "img:1", "parametersSchema": schema, "defaults": {"queue": "fast"},
                                "creationTimestamp": ts(60)}], now=NOW)
    assert table.splitlines()[1].split()[:4] == ["resize", "img:1", "fast", "*width:integer,"]


def test_queue_table() -> None:
    text = render.queue_table([{"name": "default", "paused": False, "pending": 3, "running": 2, "maxRunning": 4, "creationTimestamp": ts(5)},
                               {"name": "gpu", "paused": True, "pending": 0, "running": 1, "maxRunning": 2, "maxGpus": 8, "runningGpus": 4,
                                "rateLimit": {"starts": 10, "per": "1m"}, "throttled": 3, "deadLetter": 7}],
                              now=NOW)
    lines = [line.split() for line in text.splitlines()]
    assert lines[0] == ["NAME", "STATE", "PENDING", "RUNNING", "MAX-RUNNING", "GPUS", "RATE", "THROTTLED", "DEAD-LETTER", "AGE"]
    assert lines[1] == ["default", "active", "3", "2", "4", "-", "-", "0", "0", "5s"]
    assert lines[2] == ["gpu", "paused", "0", "1", "2", "4/8", "10/1m", "3", "7", "<unknown>"]


def test_errors_name_every_field() -> None:
    error = ApiError(422, "Invalid", "the Task (resize) is invalid: 2 problems",
                     [("spec.parameters.width", "0 is less than the minimum of 1"), ("spec.resources.cpu", "above the limit 2")])
    assert render.api_error(error).splitlines() == [
        "error: the Task (resize) is invalid: 2 problems (422 Invalid)",
        "  - spec.parameters.width: 0 is less than the minimum of 1",
        "  - spec.resources.cpu: above the limit 2",
    ]


def test_error_hints() -> None:
    assert "--token, KUBETASK_TOKEN or `token:` in /cfg" in render.api_error(ApiError(401, "Unauthorized", "no credentials"), "/cfg")
    assert "RBAC" in render.api_error(ApiError(403, "Forbidden", "user x may not create tasks"))
    assert "try again in 5s" in render.api_error(ApiError(503, "ServiceUnavailable", "busy", retry_after="5"))


def test_batch_errors_show_items_whose_fields_are_not_listed() -> None:
    error = ApiError(409, "AlreadyExists", "1 of 2 items failed", [], items=[
        {"index": 0, "status": 424, "name": "a", "error": {"reason": "NotCreated", "message": "not created"}},
        {"index": 1, "status": 409, "name": "b", "error": {"reason": "AlreadyExists", "message": "tasks \"b\" already exists", "details": []}}])
    lines = render.api_error(error).splitlines()
    assert lines[1] == '  - item 1 (b): 409 AlreadyExists: tasks "b" already exists' and len(lines) == 2


def test_dump_formats() -> None:
    assert render.dump({"a": [1, "é"]}, "json") == '{\n  "a": [\n    1,\n    "é"\n  ]\n}'
    assert render.dump({"a": [1, "é"]}, "yaml") == "a:\n- 1\n- é"
