"""The commands against a fake gateway (httpx.MockTransport): requests sent, output, exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import pytest

from cli_fakes import BASE, ENV, FakeGateway, cli, error, jwt, sse, task
from kubetask.cli.main import EXIT_API, EXIT_OK, EXIT_TASK_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, build_parser, run


# -- parsing -------------------------------------------------------------------------------------

def test_global_options_work_before_and_after_the_command() -> None:
    parser = build_parser()
    before = parser.parse_args(["-n", "a", "--gateway", "http://x", "list"])
    after = parser.parse_args(["list", "-n", "b", "--token", "t"])
    assert (before.namespace, before.gateway, before.command) == ("a", "http://x", "list")
    assert (after.namespace, after.token, after.gateway) == ("b", "t", None)


def test_submit_flags_parse_to_types() -> None:
    args = build_parser().parse_args(["submit", "--type", "resize", "-p", "n=1", "--param", "m=2", "--priority", "-5", "--gpu", "1",
                                      "--timeout", "1h30m", "--ttl", "90", "--retries", "2", "--non-retryable-exit-codes", "2,3", "-w"])
    assert (args.task_type, args.param, args.priority, args.gpu, args.timeout, args.ttl, args.retries, args.non_retryable_exit_codes, args.watch) == \
        ("resize", ["n=1", "m=2"], -5, 1, 5400, 90, 2, [2, 3], True)
    assert build_parser().parse_args(["list", "--phase", "failed"]).phase == "Failed"


@pytest.mark.parametrize("argv", [[], ["nope"], ["get"], ["submit", "--gpu", "-1"], ["submit", "--timeout", "soon"],
                                  ["list", "--phase", "Done"], ["list", "-o", "csv"]])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    result = cli(None, *argv)
    assert result.code == EXIT_USAGE and "usage: kubetask" in result.err and "error:" in result.err


def test_help_and_version() -> None:
    assert cli(None, "--version").code == EXIT_OK
    assert cli(None, "submit", "--help").code == EXIT_OK


def test_a_broken_config_file_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("gateway: [\n")
    result = cli(None, "list", env={"KUBETASK_CONFIG": str(config)})
    assert result.code == EXIT_USAGE and "not valid YAML" in result.err


# -- submit --------------------------------------------------------------------------------------

def test_submit_from_flags_sends_the_gateway_shape() -> None:
    fake = FakeGateway().on("POST", "tasks", httpx.Response(201, json=task("resize-1")))
    result = cli(fake, "submit", "--type", "resize", "--param", "width=640", "--param", 'opts={"fast": true}', "--queue", "gpu",
                 "--priority", "10", "--cpu", "500m", "--memory", "256Mi", "--gpu", "1", "--timeout", "10m", "--retries", "2",
                 "--ttl", "1h", "--non-retryable-exit-codes", "2", "--label", "team=a", "--annotation", "note=rush job",
                 "--name", "resize-1", "--idempotency-key", "order-1")
    assert result.code == EXIT_OK, result.err
    assert result.out == "task/resize-1 created\n"
    [request] = fake.requests
    assert request.headers["Authorization"] == "Bearer secret-token" and request.headers["Idempotency-Key"] == "order-1"
    assert json.loads(request.content) == {
        "name": "resize-1", "labels": {"team": "a"}, "annotations": {"note": "rush job"},
        "spec": {"type": "resize", "parameters": {"width": 640, "opts": {"fast": True}}, "queue": "gpu", "priority": 10,
                 "timeoutSeconds": 600, "retries": 2, "ttlSecondsAfterFinished": 3600, "nonRetryableExitCodes": [2],
                 "resources": {"cpu": "500m", "memory": "256Mi", "gpu": 1}}}


def test_submit_replay_and_output_formats() -> None:
    fake = FakeGateway().on("POST", "tasks", httpx.Response(200, json=task("sim-x")))
    assert "unchanged (Idempotency-Key replay" in cli(fake, "submit", "-t", "sim", "--idempotency-key", "k").out
    assert cli(fake, "submit", "-t", "sim", "-o", "name").out == "sim-x\n"
    assert json.loads(cli(fake, "submit", "-t", "sim", "-o", "json").out)["name"] == "sim-x"


def test_submit_a_file_of_several_tasks_is_one_batch(tmp_path: Path) -> None:
    path = tmp_path / "tasks.yaml"
    path.write_text("kind: Task\nmetadata: {name: a, namespace: team-a}\nspec: {type: sim}\n---\n"
                    "kind: Task\nmetadata: {name: b, namespace: team-a}\nspec: {type: sim}\n")
    items = [{"index": 0, "status": 201, "name": "a", "task": task("a"), "error": None},
             {"index": 1, "status": 201, "name": "b", "task": task("b"), "error": None}]
    fake = FakeGateway().on("POST", "tasks:batch", httpx.Response(201, json={"items": items}))
    result = cli(fake, "submit", "-f", str(path), "--label", "run=7")
    assert result.code == EXIT_OK and result.out == "task/a created\ntask/b created\n"
    [body] = fake.bodies()
    assert [i["name"] for i in body["items"]] == ["a", "b"] and all(i["labels"] == {"run": "7"} for i in body["items"])


def test_submit_a_manifest_in_another_namespace(tmp_path: Path) -> None:
    path = tmp_path / "task.yaml"
    path.write_text("kind: Task\nmetadata: {name: a, namespace: team-b}\nspec: {type: sim}\n")
    fake = FakeGateway().on("POST", "/api/v1/namespaces/team-b/tasks", httpx.Response(201, json=task("a")))
    assert cli(fake, "submit", "-f", str(path)).code == EXIT_OK  # KUBETASK_NAMESPACE=team-a yields to the manifest
    conflict = cli(fake, "submit", "-f", str(path), "-n", "team-c")
    assert conflict.code == EXIT_USAGE and "does not match --namespace 'team-c'" in conflict.err


def test_submit_without_a_type_is_a_usage_error() -> None:
    result = cli(FakeGateway(), "submit", "--param", "n=1")
    assert result.code == EXIT_USAGE and "--type" in result.err


def test_invalid_submission_prints_each_field_and_exits_3() -> None:
    fake = FakeGateway().on("POST", "tasks", error(422, "Invalid", "the Task (sim) is invalid: spec.type: TaskType 'nope' does not exist",
                                                   [("spec.type", "TaskType 'nope' does not exist in namespace team-a")]))
    result = cli(fake, "submit", "--type", "nope")
    assert result.code == EXIT_API and result.out == ""
    assert "(422 Invalid)" in result.err and "  - spec.type: TaskType 'nope' does not exist in namespace team-a" in result.err


# -- reading -------------------------------------------------------------------------------------

def test_list_follows_pages_and_passes_filters() -> None:
    fake = FakeGateway().on("GET", "tasks",
                            httpx.Response(200, json={"items": [task("a", "Failed")], "continue": "tok", "remainingItemCount": 1}),
                            httpx.Response(200, json={"items": [task("b", "Failed")], "continue": None, "remainingItemCount": 0}))
    result = cli(fake, "list", "--type", "sim", "--phase", "Failed", "-l", "team=a", "-q", "default")
    assert result.code == EXIT_OK
    lines = result.out.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "QUEUE", "PHASE", "PROGRESS", "AGE"] and [line.split()[0] for line in lines[1:]] == ["a", "b"]
    first, second = fake.requests
    assert dict(first.url.params) == {"type": "sim", "queue": "default", "phase": "Failed", "labelSelector": "team=a", "limit": "500"}
    assert second.url.params["continue"] == "tok"


def test_list_empty_and_names() -> None:
    fake = FakeGateway().on("GET", "tasks", httpx.Response(200, json={"items": [], "continue": None}))
    result = cli(fake, "list", "--phase", "Running")
    assert result.code == EXIT_OK and result.out == "" and "No Tasks match in namespace team-a" in result.err
    fake = FakeGateway().on("GET", "tasks", httpx.Response(200, json={"items": [task("a"), task("b")], "continue": None}))
    assert cli(fake, "list", "-o", "name").out == "a\nb\n"
    assert cli(fake, "list", "--limit", "1").code == EXIT_OK
    assert fake.requests[-1].url.params["limit"] == "1"


def test_get_human_and_machine_output() -> None:
    fake = FakeGateway().on("GET", "tasks/sim-abc", httpx.Response(200, json=task("sim-abc", "Succeeded", result={"ok": 1})))
    human = cli(fake, "get", "sim-abc")
    assert human.code == EXIT_OK and "Name:" in human.out and 'Result:       {"ok": 1}' in human.out
    assert "result:\n  ok: 1" in cli(fake, "get", "sim-abc", "-o", "yaml").out
    missing = cli(FakeGateway().on("GET", "tasks/x", error(404, "NotFound", "Task 'x' not found in namespace team-a")), "get", "x")
    assert missing.code == EXIT_API and missing.err == "error: Task 'x' not found in namespace team-a (404 NotFound)\n"


def test_queues_and_types() -> None:
    fake = (FakeGateway()
            .on("GET", "taskqueues", httpx.Response(200, json={"items": [{"name": "default", "maxRunning": 4, "pending": 2, "running": 1}]}))
            .on("GET", "tasktypes", httpx.Response(200, json={"items": [{"name": "sim", "image": "img:1", "parametersSchema": None}]}))
            .on("GET", "tasktypes/sim", httpx.Response(200, json={"name": "sim", "image": "img:1"})))
    queues = cli(fake, "queues").out.splitlines()
    assert queues[1].split()[:5] == ["default", "active", "2", "1", "4"]
    assert cli(fake, "types").out.splitlines()[1].split()[:2] == ["sim", "img:1"]
    assert cli(fake, "types", "sim").out == "name: sim\nimage: img:1\n"


def test_logs_write_the_bytes_as_they_come() -> None:
    fake = FakeGateway().on("GET", "tasks/a/log", httpx.Response(200, content=b"line 1\nline 2\n", headers={"content-type": "text/plain"}))
    result = cli(fake, "logs", "a", "-f", "--tail", "5", "--run", "1", "--timestamps")
    assert result.code == EXIT_OK and result.out == "line 1\nline 2\n"
    assert dict(fake.requests[0].url.params) == {"follow": "true", "tailLines": "5", "run": "1", "timestamps": "true"}


def test_logs_unavailable_is_explained() -> None:
    fake = FakeGateway().on("GET", "tasks/a/log", error(502, "LogsUnavailable", "the cluster did not serve the log of pod a-1: kwok keeps no logs"))
    result = cli(fake, "logs", "a")
    assert result.code == EXIT_API and "kwok keeps no logs (502 LogsUnavailable)" in result.err


# -- watch ---------------------------------------------------------------------------------------

def test_watch_succeeded_exits_0_and_prints_each_change() -> None:
    fake = FakeGateway().on("GET", "tasks/a:watch", sse(
        ("status", task("a", "Pending")),
        ("status", task("a", "Running", startTime="2024-05-01T10:00:00Z", progress={"percent": 50, "message": "half"})),
        ("status", task("a", "Succeeded", startTime="2024-05-01T10:00:00Z", completionTime="2024-05-01T10:00:04Z", result="done"))))
    result = cli(fake, "watch", "a")
    assert result.code == EXIT_OK, result.err
    lines = result.out.splitlines()
    assert len(lines) == 4 and "Pending" in lines[0] and "50%  Running  half" in lines[1] and "100%  Succeeded" in lines[2]
    assert lines[3] == "Task a Succeeded in 4.0s; result: done"
    assert fake.requests[0].headers["Accept"] == "text/event-stream"


@pytest.mark.parametrize("phase", ["Failed", "Cancelled"])
def test_watch_failed_or_cancelled_exits_1(phase: str) -> None:
    fake = FakeGateway().on("GET", "tasks/a:watch", sse(("status", task("a", "Running")), ("status", task("a", phase))))
    result = cli(fake, "watch", "a")
    assert result.code == EXIT_TASK_FAILED and f"Task a {phase}" in result.out


def test_watch_resumes_when_the_stream_ends_early() -> None:
    fake = FakeGateway().on("GET", "tasks/a:watch",
                            sse(("status", task("a", "Running"))),  # the stream's lifetime ran out
                            sse(("error", {"status": 503, "message": "fell behind"})),
                            httpx.Response(200, content=b"", headers={"content-type": "text/event-stream"}),
                            sse(("status", task("a", "Running")), ("status", task("a", "Succeeded"))))
    result = cli(fake, "watch", "a")
    assert result.code == EXIT_OK and len(fake.requests) == 4
    assert [line.split()[-1] for line in result.out.splitlines()[:-1]] == ["Running", "Succeeded"]  # no repeated lines


def test_watch_ignores_the_previous_runs_outcome_after_a_retry() -> None:
    pending_rerun = task("a", "Failed", finished=False)
    fake = FakeGateway().on("GET", "tasks/a:watch", sse(("status", pending_rerun), ("status", task("a", "Running", run=1)),
                                                        ("status", task("a", "Succeeded", run=1))))
    result = cli(fake, "watch", "a")
    assert result.code == EXIT_OK and "Pending (rerun requested)" in result.out.splitlines()[0]


def test_watch_a_deleted_task_exits_1() -> None:
    fake = FakeGateway().on("GET", "tasks/a:watch", sse(("status", task("a", "Running")), ("deleted", task("a", "Running"))))
    result = cli(fake, "watch", "a")
    assert result.code == EXIT_TASK_FAILED and "was deleted" in result.out


def test_watch_gives_up_after_repeated_connection_failures() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    fake = FakeGateway().on("GET", "tasks/a:watch", refuse)
    result = cli(fake, "watch", "a")
    assert result.code == EXIT_UNREACHABLE and result.err.count("reconnecting") == 5 and "cannot reach the gateway" in result.err


def test_submit_watch_and_retry_watch() -> None:
    fake = (FakeGateway().on("POST", "tasks", httpx.Response(201, json=task("a")))
            .on("GET", "tasks/a:watch", sse(("status", task("a", "Failed", lastFailure={"exitCode": 2, "reason": "PodFailurePolicy"}))))
            .on("POST", "tasks/a:retry", httpx.Response(202, json=task("a", "Failed", finished=False, spec={"type": "sim", "rerun": 1}))))
    submitted = cli(fake, "submit", "-t", "sim", "--watch")
    assert submitted.code == EXIT_TASK_FAILED and "PodFailurePolicy, exit code 2" in submitted.out
    retried = cli(fake, "retry", "a", "--resource-version", "10")
    assert retried.code == EXIT_OK and retried.out == "task/a run 1 requested\n"
    assert fake.bodies()[-1] == {"resourceVersion": "10"}


# -- cancel, retry, errors -----------------------------------------------------------------------

def test_cancel_and_already_finished() -> None:
    fake = FakeGateway().on("POST", "tasks/a:cancel", httpx.Response(202, json=task("a", "Running", spec={"type": "sim", "cancel": True})),
                            error(409, "AlreadyFinished", "Task 'a' already finished (Cancelled)"))
    assert cli(fake, "cancel", "a").out == "task/a cancellation requested (it was Running)\n"
    again = cli(fake, "cancel", "a")
    assert again.code == EXIT_API and "(409 AlreadyFinished)" in again.err


def test_unauthorized_and_forbidden_give_hints() -> None:
    fake = FakeGateway().on("GET", "tasks", error(401, "Unauthorized", "no credentials"))
    result = cli(fake, "list", env={"KUBETASK_TOKEN": ""})
    assert result.code == EXIT_API and "hint: pass a Kubernetes token" in result.err
    assert "Authorization" not in fake.requests[0].headers


def test_an_unreachable_gateway_exits_4() -> None:
    result = cli(None, "list", "--gateway", "http://127.0.0.1:9")
    assert result.code == EXIT_UNREACHABLE and "cannot reach the gateway at http://127.0.0.1:9: could not connect" in result.err


def test_a_non_gateway_answer_is_described() -> None:
    fake = FakeGateway().on("GET", "tasks", httpx.Response(502, text="<html>Bad Gateway</html>"))
    result = cli(fake, "list")
    assert result.code == EXIT_API and "unexpected answer from http://gw.test" in result.err and "Bad Gateway" in result.err


def test_namespace_comes_from_the_token_when_unset() -> None:
    token = jwt({"kubernetes.io": {"namespace": "from-token"}})
    fake = FakeGateway().on("GET", "/api/v1/namespaces/from-token/tasks", httpx.Response(200, json={"items": [], "continue": None}))
    result = cli(fake, "list", env={"KUBETASK_NAMESPACE": "", "KUBETASK_TOKEN": token})
    assert result.code == EXIT_OK and fake.requests[0].url.path == "/api/v1/namespaces/from-token/tasks"


def test_config_command_masks_the_token() -> None:
    result = cli(None, "config", env={"KUBETASK_TOKEN": "abcdefghijklmnopqrstuvwxyz"})
    assert "abcdef…wxyz (26 characters)" in result.out and "abcdefghijklmnop" not in result.out
    assert "env KUBETASK_GATEWAY_URL" in result.out


def test_names_are_escaped_in_paths() -> None:
    fake = FakeGateway().on("GET", f"{BASE}/tasks/a%2Fb", httpx.Response(200, json=task("a/b")))
    cli(fake, "get", "a/b")
    assert fake.requests[0].url.raw_path.decode().endswith("/tasks/a%2Fb")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("no_color", [False, True])
def test_watch_on_a_terminal_redraws_one_line(no_color: bool) -> None:
    fake = FakeGateway().on("GET", "tasks/a:watch", sse(("status", task("a", "Running", progress={"percent": 10})),
                                                        ("status", task("a", "Running", progress={"percent": 90})),
                                                        ("status", task("a", "Succeeded"))))
    out = Terminal()
    env = {**ENV, **({"NO_COLOR": "1"} if no_color else {})}
    code = run(["watch", "a"], env=env, stdout=out, stderr=io.StringIO(), transport=fake.transport(), sleep=lambda _: None)
    text = out.getvalue()
    assert code == EXIT_OK
    assert text.count("\r") == 3 and text.count("\x1b[K") == 3 and text.count("\n") == 2  # one redrawn line, then the outcome
    assert " 10%" in text and " 90%" in text and "100%" in text
    assert ("\x1b[32m" in text) is (not no_color)


def test_list_watch_prints_a_row_per_change_until_interrupted() -> None:
    def interrupt(request: httpx.Request) -> httpx.Response:
        raise KeyboardInterrupt

    fake = (FakeGateway().on("GET", "tasks", httpx.Response(200, json={"items": [task("a", "Running")], "continue": None}))
            .on("GET", "tasks:watch", sse(("added", task("a", "Running")),  # already in the table: not repeated
                                          ("added", task("b", "Pending", resourceVersion="11")),
                                          ("modified", task("a", "Succeeded", resourceVersion="12")),
                                          ("deleted", task("b", "Pending", resourceVersion="13"))), interrupt))
    result = cli(fake, "list", "--watch", "--type", "sim")
    assert result.code == 130 and "interrupted" in result.err
    rows = [line.split()[:4] for line in result.out.splitlines()]
    assert rows == [["NAME", "TYPE", "QUEUE", "PHASE"], ["a", "sim", "default", "Running"], ["b", "sim", "default", "Pending"],
                    ["a", "sim", "default", "Succeeded"], ["b", "sim", "default", "(gone)"]]
    assert fake.requests[1].url.params["type"] == "sim"


def test_a_missing_ca_file_is_a_configuration_error() -> None:
    result = cli(None, "list", "--ca-file", "/nonexistent/ca.pem")
    assert result.code == EXIT_USAGE and "cannot use the CA file /nonexistent/ca.pem" in result.err


def test_submit_after_sends_the_dependencies() -> None:
    fake = FakeGateway().on("POST", "tasks", httpx.Response(201, json=task("report")))
    result = cli(fake, "submit", "--type", "report", "--name", "report", "--after", "extract, transform", "--run-anyway",
                 "--webhook", "ops")
    assert result.code == EXIT_OK, result.err
    body = json.loads(fake.requests[0].content)
    assert body["spec"]["after"] == ["extract", "transform"] and body["spec"]["dependencyPolicy"] == "Finished"
    assert body["spec"]["webhook"] == "ops"
    assert cli(None, "submit", "--type", "x", "--run-anyway").code == EXIT_USAGE  # only with --after
    assert cli(None, "submit", "--type", "x", "--after", ",").code == EXIT_USAGE


def test_submit_items_fans_out(tmp_path: Path) -> None:
    items = tmp_path / "items.yaml"
    items.write_text("- {file: a.png}\n- {file: b.png}\n")
    fake = FakeGateway().on("POST", "tasks", httpx.Response(201, json=task("thumbs")))
    result = cli(fake, "submit", "--type", "thumb", "--name", "thumbs", "--items", str(items), "--parallelism", "2")
    assert result.code == EXIT_OK, result.err
    spec = json.loads(fake.requests[0].content)["spec"]
    assert spec["items"] == [{"file": "a.png"}, {"file": "b.png"}] and spec["parallelism"] == 2
    items.write_text("- a.png\n")
    assert cli(None, "submit", "--type", "thumb", "--items", str(items)).code == EXIT_USAGE  # objects, one per item
    assert cli(None, "submit", "--type", "thumb", "--parallelism", "2").code == EXIT_USAGE  # only with --items
