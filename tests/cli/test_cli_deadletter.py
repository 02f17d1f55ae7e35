"""`kubetask deadletter` and `kubetask deadletter rerun` against a fake gateway, and the dead-letter table."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from cli_fakes import ENV, FakeGateway, Result, cli, error
from kubetask.cli import render
from kubetask.cli.main import EXIT_API, EXIT_OK, EXIT_USAGE, run

NOW = datetime(2026, 3, 28, 12, 0, 0, tzinfo=timezone.utc)


def ts(delta_seconds: float) -> str:
    return (NOW + timedelta(seconds=delta_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def item(name: str, reason: str = "BackoffLimitExceeded", exit_code: int | None = 3, queue: str = "default",
         failed: float = -60, message: str = "disk full", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "team-a", "uid": "u", "resourceVersion": "9", "queue": queue, "type": "sim", "reason": reason,
            "exitCode": exit_code, "message": message, "invalidSpec": False, "attempts": 3, "run": 0,
            "completionTime": ts(failed), "creationTimestamp": ts(failed - 30), "labels": {}, **extra}


def outcome(name: str, kind: str = "Rerun", message: str = "run 1 requested") -> dict[str, Any]:
    return {"name": name, "outcome": kind, "message": message, "rerun": 1 if kind == "Rerun" else None,
            "resourceVersion": "12" if kind == "Rerun" else None}


def answer(*items: dict[str, Any], remaining: int = 0) -> httpx.Response:
    summary: dict[str, int] = {}
    for i in items:
        summary[i["outcome"]] = summary.get(i["outcome"], 0) + 1
    return httpx.Response(200, json={"items": list(items), "summary": summary, "remaining": remaining})


def listing(*items: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"items": list(items), "continue": None, "remainingItemCount": 0})


def cli_with_input(fake: FakeGateway, text: str, *argv: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), env=dict(ENV), stdout=out, stderr=err, transport=fake.transport(), sleep=lambda _: None, stdin=io.StringIO(text))
    return Result(code, out.getvalue(), err.getvalue())


def test_the_table() -> None:
    text = render.deadletter_table([item("retries-gone", failed=-90), item("exit-65", "PodFailurePolicy", 65, failed=-3600),
                                    item("too-slow", "DeadlineExceeded", None, queue="slow", message=""),
                                    item("chatty", message="x " * 100)], now=NOW)
    lines = [line.split() for line in text.splitlines()]
    assert lines[0] == ["NAME", "QUEUE", "TYPE", "REASON", "EXIT", "ATTEMPTS", "FAILED", "MESSAGE"]
    assert lines[1] == ["retries-gone", "default", "sim", "BackoffLimitExceeded", "3", "3", "90s", "disk", "full"]
    assert lines[2] == ["exit-65", "default", "sim", "PodFailurePolicy", "65", "3", "60m", "disk", "full"]
    assert lines[3] == ["too-slow", "slow", "sim", "DeadlineExceeded", "-", "3", "60s", "-"]
    assert text.splitlines()[4].endswith("x x…") and len(text.splitlines()[4].split("   ")[-1]) <= render.MESSAGE_WIDTH


def test_list_passes_the_filters_and_follows_pages() -> None:
    pages = [httpx.Response(200, json={"items": [item("a")], "continue": "tok", "remainingItemCount": 1}), listing(item("b"))]
    fake = FakeGateway().on("GET", "deadletter", *pages)
    result = cli(fake, "deadletter", "--queue", "default", "--type", "sim", "--reason", "PodFailurePolicy", "-l", "team=a")
    assert result.code == EXIT_OK, result.err
    assert [line.split()[0] for line in result.out.splitlines()] == ["NAME", "a", "b"]
    first, second = fake.requests
    assert dict(first.url.params) == {"queue": "default", "type": "sim", "reason": "PodFailurePolicy", "labelSelector": "team=a", "limit": "500"}
    assert second.url.params["continue"] == "tok"


def test_output_formats_and_an_empty_view() -> None:
    fake = FakeGateway().on("GET", "deadletter", listing(item("a"), item("b")))
    assert cli(fake, "deadletter", "-o", "name").out == "a\nb\n"
    assert [i["name"] for i in json.loads(cli(fake, "deadletter", "-o", "json").out)["items"]] == ["a", "b"]
    empty = FakeGateway().on("GET", "deadletter", listing())
    result = cli(empty, "deadletter")
    assert result.code == EXIT_OK and result.out == "" and result.err == "No dead-lettered Tasks in namespace team-a.\n"
    assert cli(empty, "deadletter", "-q", "gpu").err == "No dead-lettered Tasks match in namespace team-a.\n"


def test_rerun_names() -> None:
    fake = FakeGateway().on("POST", "deadletter:rerun", answer(outcome("a"), outcome("b")))
    result = cli(fake, "deadletter", "rerun", "a", "b")
    assert result.code == EXIT_OK, result.err
    assert result.out == "task/a re-run (run 1)\ntask/b re-run (run 1)\n" and result.err == "2 re-run\n"
    assert fake.bodies() == [{"names": ["a", "b"]}]


def test_rerun_names_says_why_some_were_not_rerun_and_exits_3() -> None:
    fake = FakeGateway().on("POST", "deadletter:rerun", answer(
        outcome("a"), outcome("fine", "NotDeadLettered", "Task 'fine' is not dead-lettered: it is Succeeded"),
        outcome("ghost", "NotFound", "Task 'ghost' not found in namespace team-a")))
    result = cli(fake, "deadletter", "rerun", "a", "fine", "ghost")
    assert result.code == EXIT_API
    assert result.out.splitlines() == ["task/a re-run (run 1)", "task/fine not dead-lettered: Task 'fine' is not dead-lettered: it is Succeeded",
                                       "task/ghost not found: Task 'ghost' not found in namespace team-a"]
    assert result.err == "1 re-run, 1 not dead-lettered, 1 not found\n"
    assert json.loads(cli(fake, "deadletter", "rerun", "a", "-o", "json").out)["summary"] == {"Rerun": 1, "NotDeadLettered": 1, "NotFound": 1}


def test_rerun_all_asks_first_and_sends_the_filter() -> None:
    fake = FakeGateway().on("GET", "deadletter", listing(item("a"), item("b"))).on("POST", "deadletter:rerun", answer(outcome("a"), outcome("b")))
    result = cli_with_input(fake, "y\n", "deadletter", "rerun", "--all", "--queue", "default", "--reason", "BackoffLimitExceeded")
    assert result.code == EXIT_OK, result.err
    assert result.err.startswith("Re-run 2 dead-lettered Tasks in namespace team-a (queue default, reason BackoffLimitExceeded)? [y/N] ")
    assert result.out == "task/a re-run (run 1)\ntask/b re-run (run 1)\n"
    assert fake.bodies() == [{"filter": {"queue": "default", "reason": "BackoffLimitExceeded"}}]
    assert dict(fake.requests[0].url.params) == {"queue": "default", "reason": "BackoffLimitExceeded", "limit": "500"}


@pytest.mark.parametrize("reply", ["n\n", "\n", ""])
def test_rerun_all_without_a_yes_does_nothing(reply: str) -> None:
    fake = FakeGateway().on("GET", "deadletter", listing(item("a")))
    result = cli_with_input(fake, reply, "deadletter", "rerun", "--all")
    assert result.code == EXIT_USAGE and "Re-run 1 dead-lettered Task in namespace team-a? [y/N]" in result.err
    assert "Nothing was re-run" in result.err and fake.bodies() == []


def test_rerun_all_with_yes_calls_again_until_the_bound_is_worked_off() -> None:
    fake = FakeGateway().on("GET", "deadletter", listing(item("a"), item("b"), item("c"))) \
        .on("POST", "deadletter:rerun", answer(outcome("a"), outcome("b"), remaining=1), answer(outcome("c")))
    result = cli_with_input(fake, "", "deadletter", "--type", "sim", "rerun", "--all", "--yes")  # a filter before the subcommand counts too
    assert result.code == EXIT_OK, result.err
    assert "[y/N]" not in result.err and result.err == "3 re-run\n"
    assert fake.bodies() == [{"filter": {"type": "sim"}}, {"filter": {"type": "sim"}}]


def test_rerun_all_stops_at_the_confirmed_count() -> None:
    """Tasks that fail again meanwhile match again: the loop ends after as many as were confirmed."""
    fake = FakeGateway().on("GET", "deadletter", listing(item("a"))) \
        .on("POST", "deadletter:rerun", answer(outcome("a"), remaining=5))
    result = cli_with_input(fake, "", "deadletter", "rerun", "--all", "-y")
    assert result.code == EXIT_OK and len(fake.bodies()) == 1


def test_rerun_all_with_nothing_matching() -> None:
    fake = FakeGateway().on("GET", "deadletter", listing())
    result = cli_with_input(fake, "", "deadletter", "rerun", "--all", "-q", "gpu")
    assert result.code == EXIT_OK and "No dead-lettered Tasks in namespace team-a (queue gpu); nothing to re-run." in result.err
    assert fake.bodies() == []


@pytest.mark.parametrize(("argv", "message"), [
    (["deadletter", "rerun"], "name the Tasks to re-run, or pass --all"),
    (["deadletter", "rerun", "a", "--all"], "not both"),
    (["deadletter", "rerun", "a", "--queue", "default"], "select Tasks for --all"),
    (["deadletter", "--queue", "default", "rerun", "a"], "select Tasks for --all"),
    (["deadletter", "retry"], "invalid choice"),
    (["deadletter", "--limit", "-1"], "must not be negative"),
])
def test_usage_errors_exit_2(argv: list[str], message: str) -> None:
    result = cli(FakeGateway(), *argv)
    assert result.code == EXIT_USAGE and message in result.err, result.err


def test_gateway_errors_name_the_field_and_exit_3() -> None:
    fake = FakeGateway().on("POST", "deadletter:rerun", error(422, "Invalid", "at most 100 names per call, not 150",
                                                              [("names", "at most 100 names")])) \
        .on("GET", "deadletter", error(403, "Forbidden", "user 'bob' may not list tasks.kubetask.io in namespace team-a"))
    result = cli(fake, "deadletter", "rerun", *[f"t{i}" for i in range(150)])
    assert result.code == EXIT_API and "  - names: at most 100 names" in result.err
    denied = cli(fake, "deadletter")
    assert denied.code == EXIT_API and "may not list tasks.kubetask.io" in denied.err and "RBAC decides" in denied.err
