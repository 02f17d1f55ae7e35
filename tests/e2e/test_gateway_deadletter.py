"""The dead-letter view end to end: gateway + operator + the local control plane, the CLI as a subprocess.

Tasks fail for good in each way kubetask knows (a non-retryable exit code, retries exhausted, the
deadline, and parameters the TaskType refuses); they are listed newest first with reason and exit
code, a Task that succeeded is not, the TaskQueue's status.deadLetter and the operator's
kubetask_queue_dead_letter gauge count them, and a bulk re-run by filter raises spec.rerun so they
run again (and, failing again, come back as run 1). Real RBAC and the gateway's 422s are checked too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway_harness import GatewayProcess, service_account_token
from harness import OperatorProcess, wait_for
from kt import create_task, sim
from kubetask.kube import KubeSync, tasks_path

pytestmark = pytest.mark.timeout(240)
KUBETASK = Path(sys.executable).parent / "kubetask"
READ_ONLY = [{"apiGroups": ["kubetask.io"], "resources": ["tasks"], "verbs": ["get", "list", "watch"]}]
RUNTIME = {"kind": "runtime"}


def base(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}"


def submit(http: httpx.Client, namespace: str, name: str, annotations: dict[str, str], **spec: Any) -> None:
    response = http.post(f"{base(namespace)}/tasks", json={"name": name, "labels": RUNTIME, "annotations": annotations,
                                                           "spec": {"type": "sim", "parameters": {"n": 1}, **spec}})
    assert response.status_code == 201, response.text


def finished(http: httpx.Client, namespace: str, name: str, run: int = 0) -> dict[str, Any] | None:
    task = http.get(f"{base(namespace)}/tasks/{name}").json()
    return task if task.get("finished") and task.get("run") == run else None


def dead_letter_count(kube: KubeSync, namespace: str) -> int:
    return int((kube.get(tasks_path(namespace, "default", plural="taskqueues")).get("status") or {}).get("deadLetter", -1))


def gauge(operator: OperatorProcess, namespace: str) -> float | None:
    found = re.search(rf'^kubetask_queue_dead_letter{{namespace="{namespace}",queue="default"}} (\S+)$', operator.metrics(), re.M)
    return float(found.group(1)) if found else None


def kubetask(gateway: GatewayProcess, token: str, namespace: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBETASK_GATEWAY_URL": gateway.url, "KUBETASK_TOKEN": token, "KUBETASK_NAMESPACE": namespace,
           "KUBETASK_CONFIG": "/nonexistent/kubetask.yaml", "NO_COLOR": "1"}
    return subprocess.run([str(KUBETASK), *argv], env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_failed_tasks_are_listed_counted_and_rerun_by_filter(gateway: GatewayProcess, operator: OperatorProcess, kube: KubeSync,
                                                             sim_namespace: str, token: str) -> None:
    ns = sim_namespace
    with gateway.client(token) as http:
        # Refused before it ran (created with kubectl, past the gateway's check): the sim type allows n <= 100.
        create_task(kube, ns, "bad-params", parameters={"n": 1000})
        wait_for(lambda: finished(http, ns, "bad-params"), timeout=30, what="bad-params to fail")
        time.sleep(1.1)  # completion times have whole seconds: keep the order below unambiguous
        submit(http, ns, "exit-65", sim(exit_code=65, message="bad input file"), nonRetryableExitCodes=[65], retries=2)
        submit(http, ns, "retries-gone", sim(exit_code=3, message="disk full"), retries=1)  # two attempts, ~10 s of Job backoff
        submit(http, ns, "too-slow", sim(run_for="10m"), timeoutSeconds=4)
        submit(http, ns, "fine", sim(run_for="1s"))
        for name in ("exit-65", "retries-gone", "too-slow", "fine"):
            wait_for(lambda: finished(http, ns, name), timeout=90, interval=0.5, what=f"{name} to finish")
        assert finished(http, ns, "fine")["phase"] == "Succeeded"  # type: ignore[index]

        # Newest first, with reason and exit code; the succeeded one is not there.
        listed = http.get(f"{base(ns)}/deadletter")
        assert listed.status_code == 200, listed.text
        items = listed.json()["items"]
        assert [i["name"] for i in items] == ["retries-gone", "too-slow", "exit-65", "bad-params"], items
        times = [i["completionTime"] for i in items]
        assert times == sorted(times, reverse=True) and len(set(times)) == 4
        by_name = {i["name"]: i for i in items}
        assert (by_name["exit-65"]["reason"], by_name["exit-65"]["exitCode"], by_name["exit-65"]["attempts"]) == ("PodFailurePolicy", 65, 1)
        assert "bad input file" in by_name["exit-65"]["message"]
        assert (by_name["retries-gone"]["reason"], by_name["retries-gone"]["exitCode"], by_name["retries-gone"]["attempts"]) == \
            ("BackoffLimitExceeded", 3, 2)
        assert by_name["too-slow"]["reason"] == "DeadlineExceeded"
        assert by_name["bad-params"]["reason"] == "InvalidParameters" and by_name["bad-params"]["invalidSpec"] is True
        assert by_name["bad-params"]["exitCode"] is None and "spec.parameters.n" in by_name["bad-params"]["message"]
        assert {i["queue"] for i in items} == {"default"} and {i["type"] for i in items} == {"sim"}
        assert not any(i["invalidSpec"] for i in items if i["name"] != "bad-params")

        # Filters, and pages in the same order.
        only = http.get(f"{base(ns)}/deadletter", params={"reason": "PodFailurePolicy"}).json()["items"]
        assert [i["name"] for i in only] == ["exit-65"]
        runtime = http.get(f"{base(ns)}/deadletter", params={"labelSelector": "kind=runtime", "queue": "default"}).json()["items"]
        assert [i["name"] for i in runtime] == ["retries-gone", "too-slow", "exit-65"]
        page = http.get(f"{base(ns)}/deadletter", params={"limit": 3}).json()
        assert [i["name"] for i in page["items"]] == ["retries-gone", "too-slow", "exit-65"] and page["remainingItemCount"] == 1
        rest = http.get(f"{base(ns)}/deadletter", params={"limit": 3, "continue": page["continue"]}).json()
        assert [i["name"] for i in rest["items"]] == ["bad-params"] and rest["continue"] is None

        # The operator counts them in the queue's status and its gauge; the gateway shows the count.
        wait_for(lambda: dead_letter_count(kube, ns) == 4, timeout=20, what="status.deadLetter 4")
        wait_for(lambda: gauge(operator, ns) == 4.0, timeout=20, what="kubetask_queue_dead_letter 4")
        wait_for(lambda: http.get(f"{base(ns)}/taskqueues/default").json()["deadLetter"] == 4, timeout=20, what="the gateway's queue view")

        # The CLI's table.
        table = kubetask(gateway, token, ns, "deadletter", "--queue", "default")
        assert table.returncode == 0, table.stderr
        rows = [line.split() for line in table.stdout.splitlines()]
        assert rows[0][:6] == ["NAME", "QUEUE", "TYPE", "REASON", "EXIT", "ATTEMPTS"]
        assert [r[0] for r in rows[1:]] == ["retries-gone", "too-slow", "exit-65", "bad-params"]
        assert rows[3][:6] == ["exit-65", "default", "sim", "PodFailurePolicy", "65", "1"]

        # Bad input: 422 naming the field, from the real gateway.
        both = http.post(f"{base(ns)}/deadletter:rerun", json={"names": ["exit-65"], "filter": {}})
        assert both.status_code == 422 and {d["field"] for d in both.json()["error"]["details"]} == {"names", "filter"}, both.text
        bad = http.post(f"{base(ns)}/deadletter:rerun", json={"filter": {"labelSelector": "kind in (runtime"}})
        assert bad.status_code == 422 and [d["field"] for d in bad.json()["error"]["details"]] == ["filter.labelSelector"], bad.text

        # Bulk re-run by filter: the three runtime failures get run 1; the invalid one is left alone.
        versions = {i["name"]: i["resourceVersion"] for i in runtime}
        response = http.post(f"{base(ns)}/deadletter:rerun", json={"filter": {"labelSelector": "kind=runtime"}})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert [(i["name"], i["outcome"], i["rerun"]) for i in answer["items"]] == \
            [("retries-gone", "Rerun", 1), ("too-slow", "Rerun", 1), ("exit-65", "Rerun", 1)]
        assert answer["summary"] == {"Rerun": 3} and answer["remaining"] == 0
        for name in versions:
            stored = kube.get(tasks_path(ns, name))
            assert stored["spec"]["rerun"] == 1 and stored["spec"]["cancel"] is False
            assert stored["metadata"]["resourceVersion"] != versions[name]
        assert kube.get(tasks_path(ns, "bad-params"))["spec"].get("rerun", 0) == 0
        # retries-gone needs ~10 s to fail again: meanwhile it is no dead letter, and the count says so.
        wait_for(lambda: dead_letter_count(kube, ns) <= 3, timeout=20, what="status.deadLetter to drop")

        # They run again (new Jobs; the first run in history) and, failing again, are dead letters of run 1.
        for name in versions:
            again = wait_for(lambda: finished(http, ns, name, run=1), timeout=90, interval=0.5, what=f"{name} to run again")
            assert again["phase"] == "Failed" and [h["run"] for h in again["history"]] == [0], again
            assert again["jobName"].endswith("-r1")
        runs = {i["name"]: i["run"] for i in http.get(f"{base(ns)}/deadletter").json()["items"]}
        assert runs == {"retries-gone": 1, "too-slow": 1, "exit-65": 1, "bad-params": 0}
        wait_for(lambda: dead_letter_count(kube, ns) == 4, timeout=20, what="status.deadLetter 4 again")

        # The CLI: by names (each outcome said, exit 3 when not all were re-run), and --all with a filter.
        named = kubetask(gateway, token, ns, "deadletter", "rerun", "fine", "ghost")
        assert named.returncode == 3, (named.stdout, named.stderr)
        assert "task/fine not dead-lettered" in named.stdout and "task/ghost not found" in named.stdout
        refused = kubetask(gateway, token, ns, "deadletter", "rerun", "--all", "--reason", "InvalidParameters")
        assert refused.returncode == 2 and "Re-run 1 dead-lettered Task" in refused.stderr and "Nothing was re-run" in refused.stderr
        assert kube.get(tasks_path(ns, "bad-params"))["spec"].get("rerun", 0) == 0
        confirmed = kubetask(gateway, token, ns, "deadletter", "rerun", "--all", "--reason", "InvalidParameters", "--yes")
        assert confirmed.returncode == 0, confirmed.stderr
        assert confirmed.stdout == "task/bad-params re-run (run 1)\n"
        assert kube.get(tasks_path(ns, "bad-params"))["spec"]["rerun"] == 1


def test_dead_letters_are_authorized_by_the_cluster(gateway: GatewayProcess, kube: KubeSync, sim_namespace: str,
                                                    other_namespace: str) -> None:
    ns = sim_namespace
    reader = service_account_token(kube, ns, "reader", READ_ONLY)
    create_task(kube, ns, "bad-params", parameters={"n": 1000})
    with gateway.client(reader) as http:
        wait_for(lambda: http.get(f"{base(ns)}/deadletter").json()["items"], timeout=30, what="the dead letter")
        denied = http.post(f"{base(ns)}/deadletter:rerun", json={"names": ["bad-params"]})
        assert denied.status_code == 403, denied.text
        assert f"system:serviceaccount:{ns}:reader" in denied.json()["error"]["message"] and "patch tasks" in denied.json()["error"]["message"]
        elsewhere = http.get(f"{base(other_namespace)}/deadletter")
        assert elsewhere.status_code == 403 and "list tasks" in elsewhere.json()["error"]["message"], elsewhere.text
    assert kube.get(tasks_path(ns, "bad-params"))["spec"].get("rerun", 0) == 0
