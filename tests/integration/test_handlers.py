"""The example handlers and the SDK against the local control plane.

kwok cannot run container images, so each example's real handler code runs here as a process with
the environment the operator gives a pod; its exit code and termination message then drive the
simulated pod (sim.kubetask.io annotations), and the Task goes through the real operator, Job
controller and scheduler. Progress goes from the SDK to the real API server with a real
ServiceAccount token bound to the least-privilege handler Role."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import REPO, localcluster, wait_for
from kt import apply_queue, ca_file, get_task, wait_phase
from kubetask.kube import ApiError, Connection, KubeSync, core_path, tasks_path

pytestmark = pytest.mark.usefixtures("operator")
EXAMPLES = REPO / "handlers-images" / "examples"
RBAC = REPO / "handlers-images" / "rbac" / "handler-rbac.yaml"


def apply_file(kube: KubeSync, namespace: str, path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc:
            continue
        group_version = doc["apiVersion"]
        plural = doc["kind"].lower() + "s"
        if group_version == "v1":
            target = core_path(plural, namespace)
        elif "/" in group_version and group_version.startswith("kubetask.io"):
            target = tasks_path(namespace, plural=plural)
        else:
            group, version = group_version.split("/")
            target = core_path(plural, namespace, group=group, version=version)
        kube.create(target, doc, fieldValidation="Strict")


def run_handler(example: str, parameters: dict[str, Any], tmp_path: Path, **env: str) -> tuple[int, str]:
    """The example's handler.py as a real process, with the pod's environment."""
    result = tmp_path / f"{example}-result"
    environ = {**os.environ, "KUBETASK_TASK_NAME": example, "KUBETASK_TASK_NAMESPACE": "local", "KUBETASK_TASK_TYPE": example,
               "KUBETASK_RUN": "0", "KUBETASK_PARAMETERS": json.dumps(parameters), "KUBETASK_RESULT_FILE": str(result),
               "PYTHONPATH": str(REPO / "handlers-images" / "sdk"), **env}
    done = subprocess.run([sys.executable, str(EXAMPLES / example / "handler.py")], env=environ, capture_output=True,
                          text=True, timeout=120)
    return done.returncode, result.read_text() if result.exists() else ""


@pytest.fixture
def examples_ns(kube: KubeSync, namespace: str) -> str:
    apply_file(kube, namespace, RBAC)
    apply_queue(kube, namespace, "default", maxRunning=10)
    for tasktype in sorted(EXAMPLES.glob("*/tasktype.yaml")):
        apply_file(kube, namespace, tasktype)
    return namespace


def test_every_example_tasktype_is_accepted_by_the_api_server(kube: KubeSync, examples_ns: str) -> None:
    names = {t["metadata"]["name"] for t in kube.get(tasks_path(examples_ns, plural="tasktypes"))["items"]}
    assert names == {p.parent.name for p in EXAMPLES.glob("*/tasktype.yaml")}


CASES = [  # (example, parameters, expected phase, expected reason)
    ("echo", None, "Succeeded", "Succeeded"),
    ("flaky", {"mode": "ok"}, "Succeeded", "Succeeded"),
    ("flaky", {"mode": "retryable", "message": "network blip"}, "Failed", "BackoffLimitExceeded"),
    ("flaky", {"mode": "fatal", "message": "the input file is corrupt"}, "Failed", "PodFailurePolicy"),
    ("cpu-burn", {"algorithm": "primes", "seconds": 0.2}, "Succeeded", "Succeeded"),
    ("progress", {"steps": 2, "sleepSeconds": 0.05}, "Succeeded", "Succeeded"),
    ("gpu-matmul", None, "Failed", "PodFailurePolicy"),  # no torch/GPU here: the handler says so, non-retryable
]


@pytest.mark.parametrize("example,parameters,phase,reason", CASES, ids=[f"{c[0]}-{c[2]}-{c[3]}" for c in CASES])
def test_each_example_runs_through_the_operator(kube: KubeSync, examples_ns: str, tmp_path: Path, example: str,
                                                parameters: dict[str, Any] | None, phase: str, reason: str) -> None:
    task = yaml.safe_load((EXAMPLES / example / "example-task.yaml").read_text())
    if parameters is not None:
        task["spec"]["parameters"] = parameters
    task["spec"]["retries"] = 0  # the Job controller backs off 10 s per retry; one try proves the path
    exit_code, message = run_handler(example, task["spec"]["parameters"], tmp_path)
    assert (exit_code == 0) == (phase == "Succeeded"), (exit_code, message)
    annotations = {localcluster.SIM_RUN_FOR: "1s", localcluster.SIM_MESSAGE: message}
    if exit_code:
        annotations[localcluster.SIM_EXIT_CODE] = str(exit_code)
    task["metadata"] = {"name": f"{example}-{phase.lower()}", "annotations": annotations}
    kube.create(tasks_path(examples_ns), task, fieldValidation="Strict")
    done = wait_phase(kube, examples_ns, task["metadata"]["name"], ("Succeeded", "Failed"), timeout=60)
    status = done["status"]
    assert status["phase"] == phase, status
    if phase == "Succeeded":
        assert status["result"] == json.loads(message)  # the handler's return value, end to end
    else:
        assert status["lastFailure"]["reason"] == reason
        assert status["lastFailure"]["exitCode"] == exit_code
        assert json.loads(status["lastFailure"]["message"])["error"]  # the SDK's error JSON, end to end


def _token(kube: KubeSync, namespace: str) -> str:
    request = kube.create(core_path("serviceaccounts", namespace, "kubetask-handler") + "/token", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 600}})
    return str(request["status"]["token"])


def test_sdk_progress_reaches_task_status_with_least_privilege(kube: KubeSync, examples_ns: str, kubeconfig: Path,
                                                               tmp_path: Path) -> None:
    conn = Connection.from_kubeconfig(kubeconfig)
    kube.patch(tasks_path(examples_ns, "default", plural="taskqueues"), {"spec": {"paused": True}})  # the Task stays put
    kube.create(tasks_path(examples_ns), {"apiVersion": "kubetask.io/v1alpha1", "kind": "Task", "metadata": {"name": "reports"},
                                          "spec": {"type": "progress", "parameters": {"steps": 4, "sleepSeconds": 0.6}}})
    token_file = tmp_path / "token"
    token_file.write_text(_token(kube, examples_ns))
    environ = {**os.environ, "KUBETASK_TASK_NAME": "reports", "KUBETASK_TASK_NAMESPACE": examples_ns, "KUBETASK_TASK_TYPE": "progress",
               "KUBETASK_RUN": "0", "KUBETASK_PARAMETERS": json.dumps({"steps": 4, "sleepSeconds": 0.6}),
               "KUBETASK_RESULT_FILE": str(tmp_path / "result"), "KUBETASK_API_URL": conn.server,
               "KUBETASK_TOKEN_FILE": str(token_file), "KUBETASK_CA_FILE": str(ca_file(conn, tmp_path)),
               "PYTHONPATH": str(REPO / "handlers-images" / "sdk")}
    started = time.time()
    handler = subprocess.Popen([sys.executable, str(EXAMPLES / "progress" / "handler.py")], env=environ,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[int] = []

    def progressed() -> bool:
        progress = (get_task(kube, examples_ns, "reports").get("status") or {}).get("progress") or {}
        if progress.get("percent") is not None and (not seen or seen[-1] != progress["percent"]):
            seen.append(progress["percent"])
        return bool(seen) and seen[-1] == 100

    wait_for(progressed, timeout=30, interval=0.1, what="progress 100% in the Task's status")
    _, stderr = handler.communicate(timeout=30)
    assert handler.returncode == 0, stderr
    assert len(seen) >= 2 and seen == sorted(seen), seen  # several reports, never backwards
    progress = get_task(kube, examples_ns, "reports")["status"]["progress"]
    assert progress["message"]
    updated = time.mktime(time.strptime(progress["updatedAt"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert updated >= started - 2

    # The same token cannot touch another namespace's Task, nor the Task's spec.
    other = f"{examples_ns}-other"
    kube.create(core_path("namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    try:
        kube.create(tasks_path(other), {"apiVersion": "kubetask.io/v1alpha1", "kind": "Task", "metadata": {"name": "victim"},
                                        "spec": {"type": "echo"}})
        handler_client = KubeSync(conn.with_token(token_file.read_text()))
        with pytest.raises(ApiError) as denied:
            handler_client.patch(tasks_path(other, "victim", subresource="status"), {"status": {"progress": {"percent": 1}}})
        assert denied.value.status == 403
        with pytest.raises(ApiError) as spec_denied:
            handler_client.patch(tasks_path(examples_ns, "reports"), {"spec": {"cancel": True}})
        assert spec_denied.value.status == 403
        assert "progress" not in (kube.get(tasks_path(other, "victim")).get("status") or {})
    finally:
        kube.delete(core_path("namespaces", name=other))
