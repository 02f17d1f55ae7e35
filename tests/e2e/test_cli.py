"""The `kubetask` command line end to end: the installed console script as a subprocess, against
the gateway + operator on the local control plane, with a real ServiceAccount token."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from gateway_harness import Cli, GatewayProcess
from harness import wait_for
from kubetask.kube import KubeSync, tasks_path

pytestmark = pytest.mark.timeout(120)
RUN_FOR = "sim.kubetask.io/run-for"
EXIT_CODE = "sim.kubetask.io/exit-code"
MESSAGE = "sim.kubetask.io/message"


@pytest.fixture
def kt(gateway: GatewayProcess, token: str, tmp_path: Path) -> Cli:
    return Cli(gateway, token, tmp_path)


def test_submit_watch_list_get_retry_logs(kt: Cli, sim_namespace: str) -> None:
    ok = kt("submit", "--type", "sim", "--param", "n=7", "--label", "app=cli", "--name", "ok-1", "-o", "name",
            "--annotation", f"{RUN_FOR}=1s", "--annotation", f'{MESSAGE}={{"answer": 42}}')
    assert ok.returncode == 0 and ok.stdout == "ok-1\n", ok.stderr
    bad = kt("submit", "-t", "sim", "--name", "bad-1", "--retries", "0", "-a", f"{EXIT_CODE}=3", "-a", f"{MESSAGE}=disk full")
    assert bad.returncode == 0 and bad.stdout == "task/bad-1 created\n", bad.stderr

    watched = kt("watch", "ok-1")
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert watched.stdout.splitlines()[-1].startswith("Task ok-1 Succeeded in ") and '"answer": 42' in watched.stdout
    failed = kt("watch", "bad-1")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Task bad-1 Failed" in failed.stdout and "exit code 3: disk full" in failed.stdout

    table = kt("list").stdout.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "QUEUE", "PHASE", "PROGRESS", "AGE"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["ok-1"][1:5] == ["sim", "default", "Succeeded", "100%"] and rows["bad-1"][1:5] == ["sim", "default", "Failed", "-"]
    assert kt("list", "--phase", "failed", "-o", "name").stdout == "bad-1\n"
    assert kt("list", "-l", "app=cli", "-o", "name").stdout == "ok-1\n"

    task = kt.task("ok-1")
    assert task["result"] == {"answer": 42} and task["namespace"] == sim_namespace  # the namespace came from the token
    described = kt("get", "bad-1").stdout
    assert "Last failure: BackoffLimitExceeded, exit code 3: disk full" in described and "Stalled" in described

    retried = kt("retry", "bad-1", "--watch")
    assert retried.returncode == 1 and retried.stdout.startswith("task/bad-1 run 1 requested\n"), retried.stdout + retried.stderr
    assert kt.task("bad-1")["run"] == 1 and kt.task("bad-1")["history"][0]["phase"] == "Failed"

    logs = kt("logs", "ok-1")  # kwok keeps no container logs: the gateway says so, and so does the CLI
    assert logs.returncode == 3 and "(502 LogsUnavailable)" in logs.stderr and "kwok" in logs.stderr


def test_watch_shows_progress_then_cancel(kt: Cli, kube: KubeSync, sim_namespace: str, tmp_path: Path) -> None:
    manifest = tmp_path / "task.yaml"
    manifest.write_text(f"""\
apiVersion: kubetask.io/v1alpha1
kind: Task
metadata:
  name: long-1
  annotations: {{"{RUN_FOR}": "10m"}}
spec:
  type: sim
  parameters: {{n: 3}}
""")
    created = kt("submit", "-f", str(manifest))
    assert created.returncode == 0 and created.stdout == "task/long-1 created\n", created.stderr
    watcher = kt.start("watch", "long-1")
    try:
        wait_for(lambda: kt.task("long-1")["phase"] == "Running", timeout=30, what="long-1 Running")
        kube.patch(tasks_path(sim_namespace, "long-1", subresource="status"),
                   {"status": {"progress": {"percent": 40, "message": "step 4 of 10",
                                            "updatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}})
        wait_for(lambda: (kt.task("long-1").get("progress") or {}).get("percent") == 40, timeout=15, what="progress in the gateway")
        cancelled = kt("cancel", "long-1")
        assert cancelled.returncode == 0 and cancelled.stdout == "task/long-1 cancellation requested (it was Running)\n", cancelled.stderr
        out, err = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    assert watcher.returncode == 1, out + err
    assert "40%  Running  step 4 of 10" in out and out.splitlines()[-1].startswith("Task long-1 Cancelled")
    again = kt("cancel", "long-1")
    assert again.returncode == 3 and "(409 AlreadyFinished)" in again.stderr


def test_queues_types_and_errors(kt: Cli, sim_namespace: str) -> None:
    queues = kt("queues")
    assert queues.returncode == 0 and queues.stdout.splitlines()[1].split()[:5] == ["default", "active", "0", "0", "10"]
    types = kt("types")
    assert types.returncode == 0 and types.stdout.splitlines()[1].split()[:4] == ["sim", "example.invalid/handler:1", "-", "n:integer"]

    unknown = kt("submit", "--type", "nope")
    assert unknown.returncode == 3 and unknown.stdout == ""
    assert "(422 Invalid)" in unknown.stderr and f"  - spec.type: TaskType 'nope' does not exist in namespace {sim_namespace}" in unknown.stderr
    invalid = kt("submit", "--type", "sim", "--param", "n=1000", "--cpu", "8")
    assert invalid.returncode == 3
    assert "  - spec.parameters.n: 1000 is greater than the maximum of 100" in invalid.stderr and "  - spec.resources.cpu: " in invalid.stderr

    anonymous = kt("list", "-n", sim_namespace, env={"KUBETASK_TOKEN": ""})
    assert anonymous.returncode == 3 and "(401 Unauthorized)" in anonymous.stderr and "hint: pass a Kubernetes token" in anonymous.stderr
    elsewhere = kt("list", "-n", "default")
    assert elsewhere.returncode == 3 and "(403 Forbidden)" in elsewhere.stderr and "may not list tasks.kubetask.io in namespace default" in elsewhere.stderr
    unreachable = kt("list", "--gateway", "http://127.0.0.1:9")
    assert unreachable.returncode == 4 and "cannot reach the gateway" in unreachable.stderr
    assert kt("list").stderr == f"No Tasks in namespace {sim_namespace}.\n"
