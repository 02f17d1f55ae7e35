"""`kubetask submit --group`, `kubetask groups ...` against a fake gateway, and the group's one progress bar."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from cli_fakes import FakeGateway, cli, error, task
from kubetask.cli import render
from kubetask.cli.main import EXIT_API, EXIT_OK, EXIT_TASK_FAILED, EXIT_USAGE

NOW = datetime(2026, 3, 28, 12, 0, 0, tzinfo=timezone.utc)
CALLBACK = {"when": "Succeeded", "taskTemplate": {"spec": {"type": "collect", "parameters": {"format": "csv"}}}}


def group(name: str = "resize-all", *, size: int = 12, finished: int = 7, total: int | None = None, phase: str = "Running",
          counts: dict[str, int] | None = None, callback: dict[str, Any] | None = CALLBACK, done: bool = False,
          reason: str | None = "Running", message: str | None = "7 of 10 members finished", **status: Any) -> dict[str, Any]:
    expected = size if total is None else total
    counted = counts if counts is not None else {"total": 10, "pending": 0, "queued": 1, "running": 2, "succeeded": 6, "failed": 1,
                                                 "cancelled": 0}
    spec: dict[str, Any] = {"size": size}
    if callback is not None:
        spec["callback"] = callback
    conditions = [{"type": "Finished", "status": "True" if done else "False", "reason": reason or "", "message": message or "",
                   "lastTransitionTime": "2026-03-28T11:00:00Z"}]
    return {"name": name, "namespace": "team-a", "uid": "u-g", "resourceVersion": "9", "creationTimestamp": "2026-03-28T10:00:00Z",
            "labels": {}, "annotations": {}, "submittedBy": "alice", "spec": spec,
            "status": {"counts": counted, "conditions": conditions, **status},
            "phase": phase, "finished": done, "reason": reason, "message": message,
            "progress": {"finished": finished, "total": expected, "percent": finished * 100 // expected if expected else 0},
            "memberSelector": f"kubetask.io/group={name}"}


def succeeded(name: str = "resize-all") -> dict[str, Any]:
    return group(name, size=3, finished=3, phase="Succeeded", done=True, reason="Succeeded", message="the callback Task resize-all-callback Succeeded",
                 counts={"total": 3, "succeeded": 3}, callbackTask=f"{name}-callback", callbackPhase="Succeeded")


def failed(name: str = "resize-all") -> dict[str, Any]:
    return group(name, size=3, finished=3, phase="Failed", done=True, reason="MembersFailed",
                 message="1 of 3 members did not succeed: the callback does not run", counts={"total": 3, "succeeded": 2, "failed": 1})


# -- rendering -----------------------------------------------------------------------------------

def test_one_bar_per_group_with_the_counts() -> None:
    assert render.group_bar(group(), 12, unicode=False) == "[#######.....] 7/12"
    assert render.group_bar(group(size=0, finished=0, total=0), 4, unicode=False) == "[....] 0/0"
    assert render.group_bar(succeeded(), 6) == "██████ 3/3"
    assert render.group_counts(group()) == "6 succeeded, 1 failed, 2 running, 1 queued"
    assert render.group_counts(group(counts={})) == "no members yet"
    assert render.group_callback(group()) == "when all Succeeded" and render.group_callback(succeeded()) == "resize-all-callback (Succeeded)"
    assert render.group_callback(group(callback=None)) == "-"


def test_group_table_and_summary() -> None:
    table = render.group_table([group(), succeeded("thumbs")], unicode=False, now=NOW)
    lines = [line.split() for line in table.splitlines()]
    assert lines[0] == ["NAME", "PROGRESS", "SUCCEEDED", "FAILED", "RUNNING", "WAITING", "PHASE", "CALLBACK", "AGE"]
    assert lines[1] == ["resize-all", "[#######.....]", "7/12", "6", "1", "2", "1", "Running", "when", "all", "Succeeded", "120m"]
    assert lines[2] == ["thumbs", "[############]", "3/3", "3", "0", "0", "0", "Succeeded", "thumbs-callback", "(Succeeded)", "120m"]
    text = render.describe_group(group(), unicode=False, now=NOW)
    assert "Phase:      Running   (7 of 10 members finished)" in text
    assert "Progress:   [##############..........] 7/12  58%" in text
    assert "Members:    6 succeeded, 1 failed, 2 running, 1 queued   (10 of 12 exist)" in text
    assert "Selector:   kubetask.io/group=resize-all" in text and "Callback:   type collect, when all Succeeded" in text
    assert "Finished" in text.split("Conditions:")[1]
    assert "task resize-all-callback Succeeded" in render.describe_group(succeeded(), now=NOW)


# -- submit --group --------------------------------------------------------------------------------

def batch_answer(names: list[str], view: dict[str, Any], status: int = 201) -> httpx.Response:
    items = [{"index": i, "status": status, "name": n, "task": task(n, labels={"kubetask.io/group": view["name"]}), "error": None}
             for i, n in enumerate(names)]
    return httpx.Response(201, json={"items": items, "group": view})


def manifests(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "tasks.yaml"
    path.write_text("---\n".join(f"kind: Task\nmetadata: {{name: t{i}}}\nspec: {{type: sim, parameters: {{n: {i}}}}}\n" for i in range(count)))
    return path


def test_submit_a_file_as_a_group_with_a_callback(tmp_path: Path) -> None:
    fake = FakeGateway().on("POST", "tasks:batch", batch_answer(["t0", "t1", "t2"], group(size=3, finished=0)))
    result = cli(fake, "submit", "-f", str(manifests(tmp_path, 3)), "--group", "resize-all", "--callback-type", "collect",
                 "--callback-param", "format=csv", "--callback-param", "limit=5", "--callback-when", "Finished")
    assert result.code == EXIT_OK, result.err
    assert result.out.splitlines() == ["task/t0 created", "task/t1 created", "task/t2 created",
                                       "taskgroup/resize-all created with 3 member Tasks; callback when all Succeeded"]
    [body] = fake.bodies()
    assert [i["name"] for i in body["items"]] == ["t0", "t1", "t2"]
    assert body["group"] == {"name": "resize-all", "callback": {"when": "Finished", "taskTemplate": {
        "spec": {"type": "collect", "parameters": {"format": "csv", "limit": 5}}}}}


def test_one_task_with_group_is_still_a_batch_and_json_shows_the_group(tmp_path: Path) -> None:
    fake = FakeGateway().on("POST", "tasks:batch", batch_answer(["sim-1"], group(size=1, finished=0, callback=None)))
    result = cli(fake, "submit", "-t", "sim", "--group", "solo", "-o", "json")
    assert result.code == EXIT_OK, result.err
    shown = json.loads(result.out)
    assert shown["group"]["name"] == "resize-all" and [t["name"] for t in shown["items"]] == ["sim-1"]
    [body] = fake.bodies()
    assert body["group"] == {"name": "solo"} and body["items"][0]["spec"]["type"] == "sim"


def test_callback_flags_need_a_group_and_a_type() -> None:
    for argv, message in ((["--callback-type", "collect"], "need --group NAME"),
                          (["--group", "g", "--callback-param", "a=1"], "need --callback-type TYPE"),
                          (["--group", "g", "--callback-when", "Finished"], "need --callback-type TYPE")):
        result = cli(FakeGateway(), "submit", "-t", "sim", *argv)
        assert result.code == EXIT_USAGE and message in result.err, result.err


def test_submit_group_watch_follows_the_group(tmp_path: Path) -> None:
    fake = FakeGateway().on("POST", "tasks:batch", batch_answer(["t0", "t1", "t2"], group(size=3, finished=0))) \
        .on("GET", "taskgroups/resize-all", httpx.Response(200, json=group(size=3, finished=1)), httpx.Response(200, json=succeeded()))
    result = cli(fake, "submit", "-f", str(manifests(tmp_path, 3)), "--group", "resize-all", "--watch")
    assert result.code == EXIT_OK, result.err
    assert result.out.splitlines()[-1].startswith("TaskGroup resize-all Succeeded: the callback Task resize-all-callback Succeeded")


def test_a_refused_group_names_the_field(tmp_path: Path) -> None:
    refused = error(422, "Invalid", "the batch's group failed; nothing was created: the group 'g' is invalid: ...",
                    [("group.callback.taskTemplate.spec.type", "TaskType 'nope' does not exist in namespace team-a")],
                    items=[{"index": 0, "status": 424, "name": "t0", "task": None, "error": {"status": 424, "reason": "NotCreated",
                                                                                               "message": "valid", "details": []}}])
    fake = FakeGateway().on("POST", "tasks:batch", refused)
    result = cli(fake, "submit", "-f", str(manifests(tmp_path, 1)), "--group", "g", "--callback-type", "nope")
    assert result.code == EXIT_API
    assert "  - group.callback.taskTemplate.spec.type: TaskType 'nope' does not exist" in result.err and "424" not in result.err


# -- groups list / get / watch -------------------------------------------------------------------

def test_list_and_get() -> None:
    fake = FakeGateway().on("GET", "taskgroups", httpx.Response(200, json={"items": [group(), succeeded("thumbs")], "continue": None})) \
        .on("GET", "taskgroups/resize-all", httpx.Response(200, json=group()))
    listed = cli(fake, "groups", "list")
    assert listed.code == EXIT_OK, listed.err
    assert [line.split()[0] for line in listed.out.splitlines()] == ["NAME", "resize-all", "thumbs"]
    assert "7/12" in listed.out.splitlines()[1]
    assert cli(fake, "groups", "list", "-o", "name").out == "resize-all\nthumbs\n"
    assert [g["name"] for g in json.loads(cli(fake, "groups", "list", "-o", "json").out)["items"]] == ["resize-all", "thumbs"]
    got = cli(fake, "groups", "get", "resize-all")
    assert got.code == EXIT_OK and "7/12  58%" in got.out and "(10 of 12 exist)" in got.out
    assert json.loads(cli(fake, "groups", "get", "resize-all", "-o", "json").out)["progress"]["total"] == 12


def test_list_follows_pages_and_says_when_there_are_none() -> None:
    pages = FakeGateway().on("GET", "taskgroups", httpx.Response(200, json={"items": [group("a")], "continue": "a"}),
                             httpx.Response(200, json={"items": [group("b")], "continue": None}))
    assert cli(pages, "groups", "list", "-o", "name").out == "a\nb\n"
    assert [r.url.params.get("continue") for r in pages.requests] == [None, "a"]
    empty = cli(FakeGateway().on("GET", "taskgroups", httpx.Response(200, json={"items": []})), "groups", "list")
    assert empty.code == EXIT_OK and empty.err == "No TaskGroups in namespace team-a.\n"


def test_watch_until_finished_exit_code_is_the_outcome() -> None:
    fake = FakeGateway().on("GET", "taskgroups/resize-all", httpx.Response(200, json=group(size=3, finished=0)),
                            httpx.Response(200, json=group(size=3, finished=0)), httpx.Response(200, json=group(size=3, finished=2)),
                            httpx.Response(200, json=succeeded()))
    result = cli(fake, "groups", "watch", "resize-all")
    assert result.code == EXIT_OK, result.err
    lines = result.out.splitlines()
    assert len(lines) == 4  # one line per change when not on a terminal (the unchanged poll prints nothing), then the outcome
    assert "0/3" in lines[0] and "2/3" in lines[1] and "3/3" in lines[2] and "callback resize-all-callback (Succeeded)" in lines[2]
    assert lines[3].startswith("TaskGroup resize-all Succeeded")
    bad = FakeGateway().on("GET", "taskgroups/resize-all", httpx.Response(200, json=failed()))
    outcome = cli(bad, "groups", "get", "resize-all", "--watch")
    assert outcome.code == EXIT_TASK_FAILED
    assert outcome.out.splitlines()[-1] == ("TaskGroup resize-all Failed (MembersFailed): 1 of 3 members did not succeed: "
                                            "the callback does not run [2 succeeded, 1 failed]")


def test_watch_a_group_that_is_deleted_or_missing() -> None:
    gone = FakeGateway().on("GET", "taskgroups/g", httpx.Response(200, json=group("g")), error(404, "NotFound", "TaskGroup 'g' not found"))
    result = cli(gone, "groups", "watch", "g")
    assert result.code == EXIT_TASK_FAILED and result.out.splitlines()[-1] == "TaskGroup g was deleted before it finished"
    missing = cli(FakeGateway(), "groups", "watch", "ghost")
    assert missing.code == EXIT_API and "404" in missing.err


def test_watch_retries_when_the_gateway_is_unreachable() -> None:
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json=succeeded())

    result = cli(FakeGateway().on("GET", "taskgroups/resize-all", flaky), "groups", "watch", "resize-all")
    assert result.code == EXIT_OK and "retrying (1/5)" in result.err
