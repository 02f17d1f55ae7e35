"""The operator against the local control plane: every Task behaviour end to end, through the real
Job controller, scheduler and garbage collector. Handler pods are simulated by kwok, driven by the
sim.kubetask.io annotations the operator copies onto them (see hack/localcluster.py)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from harness import OperatorProcess, wait_for
from kt import (apply_queue, apply_tasktype, condition, create_task, events_of, get_task, jobs_of, patch_spec,
                pods_of, sim, wait_phase)
from kubetask.kube import ApiError, KubeSync, tasks_path
from recorders import PhaseRecorder

pytestmark = pytest.mark.usefixtures("operator")


@pytest.fixture
def ns(kube: KubeSync, namespace: str) -> str:
    """A namespace with a TaskType `sim` and a roomy default queue."""
    apply_tasktype(kube, namespace, "sim", defaults={"resources": {"cpu": "100m", "memory": "64Mi"}},
                   limits={"cpu": "2", "memory": "1Gi", "gpu": 8, "retries": 5, "timeoutSeconds": 3600},
                   parametersSchema={"type": "object", "properties": {"count": {"type": "integer", "maximum": 10}},
                                     "additionalProperties": False})
    apply_queue(kube, namespace, "default", maxRunning=20)
    return namespace


def test_success_with_result(kube: KubeSync, ns: str, bin_dir: Path, kubeconfig: Path) -> None:
    create_task(kube, ns, "ok", sim(run_for="1s", message='{"answer": 42}'), parameters={"count": 3}, timeoutSeconds=600, retries=2)
    waited = subprocess.run([str(bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig), "-n", ns, "wait",
                             "--for=condition=Finished", "task/ok", "--timeout=60s"], capture_output=True, text=True)
    assert waited.returncode == 0, waited.stderr
    task = get_task(kube, ns, "ok")
    status = task["status"]
    assert status["phase"] == "Succeeded"
    assert status["result"] == {"answer": 42}
    assert status["attempts"] == 1
    assert condition(task, "Succeeded")["status"] == "True"
    assert condition(task, "Ready")["status"] == "True"
    assert condition(task, "Stalled")["status"] == "False"
    assert status["startTime"] <= status["completionTime"]
    [job] = jobs_of(kube, ns, "ok")
    assert job["metadata"]["name"] == status["jobName"]
    assert job["spec"]["activeDeadlineSeconds"] == 600
    assert job["spec"]["backoffLimit"] == 2
    assert job["metadata"]["ownerReferences"][0]["uid"] == task["metadata"]["uid"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert json.loads(next(e["value"] for e in container["env"] if e["name"] == "KUBETASK_PARAMETERS")) == {"count": 3}
    assert container["resources"]["limits"] == {"cpu": "100m", "memory": "64Mi"}
    assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    reasons = {e["reason"] for e in wait_for(lambda: events_of(kube, ns, "ok"), what="events")}
    assert "Succeeded" in reasons


def test_failure_after_retries_keeps_exit_code_and_message(kube: KubeSync, ns: str, bin_dir: Path, kubeconfig: Path) -> None:
    create_task(kube, ns, "flaky", sim(exit_code=3, message="disk full"), retries=1)
    waited = subprocess.run([str(bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig), "-n", ns, "wait",
                             "--for=condition=Finished", "task/flaky", "--timeout=90s"], capture_output=True, text=True)
    assert waited.returncode == 0, waited.stderr  # kubectl wait returns on failure too
    task = get_task(kube, ns, "flaky")
    status = task["status"]
    assert status["phase"] == "Failed"
    assert status["attempts"] == 2
    assert status["lastFailure"] == {"exitCode": 3, "reason": "BackoffLimitExceeded", "message": "disk full"}
    assert condition(task, "Succeeded")["status"] == "False"
    assert condition(task, "Stalled")["status"] == "True"
    assert len(pods_of(kube, ns, "flaky")) == 2


def test_non_retryable_exit_code_fails_at_once(kube: KubeSync, ns: str) -> None:
    create_task(kube, ns, "fatal", sim(exit_code=65, message='{"error": "bad input"}'), retries=5, nonRetryableExitCodes=[65])
    task = wait_phase(kube, ns, "fatal", "Failed", timeout=40)
    assert task["status"]["lastFailure"]["reason"] == "PodFailurePolicy"
    assert task["status"]["lastFailure"]["exitCode"] == 65
    assert task["status"]["attempts"] == 1
    assert len(pods_of(kube, ns, "fatal")) == 1


def test_timeout_fails_with_deadline_exceeded(kube: KubeSync, ns: str) -> None:
    create_task(kube, ns, "slow", sim(run_for="10m"), timeoutSeconds=3)
    task = wait_phase(kube, ns, "slow", "Failed", timeout=40)
    assert task["status"]["lastFailure"]["reason"] == "DeadlineExceeded"
    assert condition(task, "Finished")["reason"] == "DeadlineExceeded"


def test_gpu_task_runs_on_a_gpu_node_and_an_oversized_one_waits(kube: KubeSync, ns: str) -> None:
    create_task(kube, ns, "gpu-fits", sim(run_for="10m"), resources={"gpu": 2})
    create_task(kube, ns, "gpu-huge", sim(run_for="10m"), resources={"gpu": 8})
    wait_phase(kube, ns, "gpu-fits", "Running", reason="PodRunning")
    [pod] = pods_of(kube, ns, "gpu-fits")
    assert pod["spec"]["nodeName"].startswith("gpu-node-")
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    task = wait_phase(kube, ns, "gpu-huge", "Running", reason="Unschedulable")
    running = condition(task, "Running")
    assert running["status"] == "False"
    assert "nvidia.com/gpu" in running["message"]
    for name in ("gpu-fits", "gpu-huge"):  # give the GPUs back for the tests that follow
        patch_spec(kube, ns, name, {"cancel": True})
        wait_phase(kube, ns, name, "Cancelled")


def test_queue_limit_and_priority_order(kube: KubeSync, namespace: str) -> None:
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "one", maxRunning=1)
    create_task(kube, namespace, "first", sim(run_for="3s"), queue="one")
    wait_phase(kube, namespace, "first", "Running")
    create_task(kube, namespace, "low", sim(run_for="1s"), queue="one", priority=0)
    time.sleep(1.1)  # distinct creation seconds: "low" is older than "high"
    create_task(kube, namespace, "high", sim(run_for="1s"), queue="one", priority=10)
    queued = wait_phase(kube, namespace, "low", "Queued", reason="WaitingForCapacity")
    assert condition(queued, "Queued")["status"] == "True"
    assert not jobs_of(kube, namespace, "low") and not jobs_of(kube, namespace, "high")
    for name in ("first", "high", "low"):
        wait_phase(kube, namespace, name, "Succeeded", timeout=60)
    starts = {n: get_task(kube, namespace, n)["status"]["startTime"] for n in ("first", "high", "low")}
    assert starts["first"] <= starts["high"] <= starts["low"]
    jobs = sorted(jobs_of(kube, namespace), key=lambda j: j["status"]["startTime"])
    # maxRunning=1: each Job started only after the previous one completed.
    for earlier, later in zip(jobs, jobs[1:]):
        assert earlier["status"]["completionTime"] <= later["status"]["startTime"]
    queue = wait_for(lambda: (q := kube.get(tasks_path(namespace, "one", plural="taskqueues"))).get("status", {}).get("running") == 0 and q,
                     what="queue status")
    assert queue["status"]["pending"] == 0


def test_pause_and_resume(kube: KubeSync, namespace: str) -> None:
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "default", maxRunning=5, paused=True)
    create_task(kube, namespace, "waits", sim(run_for="1s"))
    wait_phase(kube, namespace, "waits", "Queued", reason="QueuePaused")
    queue = wait_for(lambda: (q := kube.get(tasks_path(namespace, "default", plural="taskqueues"))).get("status", {}).get("pending") == 1 and q,
                     what="queue pending count")
    assert queue["status"]["running"] == 0
    time.sleep(1)
    assert not jobs_of(kube, namespace, "waits")
    kube.patch(tasks_path(namespace, "default", plural="taskqueues"), {"spec": {"paused": False}})
    wait_phase(kube, namespace, "waits", "Succeeded")


def test_cancel_while_queued_never_creates_a_job(kube: KubeSync, namespace: str) -> None:
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "default", paused=True)
    create_task(kube, namespace, "never", sim(run_for="1s"))
    wait_phase(kube, namespace, "never", "Queued")
    patch_spec(kube, namespace, "never", {"cancel": True})
    task = wait_phase(kube, namespace, "never", "Cancelled")
    assert condition(task, "Finished")["status"] == "True"
    kube.patch(tasks_path(namespace, "default", plural="taskqueues"), {"spec": {"paused": False}})
    time.sleep(2)
    assert not jobs_of(kube, namespace, "never")
    assert get_task(kube, namespace, "never")["status"]["phase"] == "Cancelled"


def test_cancel_while_running_stops_the_pod(kube: KubeSync, ns: str) -> None:
    create_task(kube, ns, "long", sim(run_for="10m"))
    wait_phase(kube, ns, "long", "Running", reason="PodRunning")
    patch_spec(kube, ns, "long", {"cancel": True})
    task = wait_phase(kube, ns, "long", "Cancelled")
    assert task["status"]["jobName"]
    wait_for(lambda: not jobs_of(kube, ns, "long") and not pods_of(kube, ns, "long"), what="Job and pods deleted")
    with pytest.raises(ApiError) as error:  # the API server refuses to switch cancel back off
        patch_spec(kube, ns, "long", {"cancel": False})
    assert error.value.status == 422 and "cancel" in error.value.message


def test_rerun_a_failed_task_keeps_history(kube: KubeSync, ns: str) -> None:
    create_task(kube, ns, "again", sim(exit_code=3, message="nope"), retries=0)
    first = wait_phase(kube, ns, "again", "Failed", timeout=40)
    patch_spec(kube, ns, "again", {"rerun": 1})
    task = wait_for(lambda: (t := get_task(kube, ns, "again"))["status"].get("run") == 1 and t["status"]["phase"] == "Failed" and t,
                    timeout=40, what="second run failed")
    assert [h["run"] for h in task["status"]["history"]] == [0]
    assert task["status"]["history"][0]["jobName"] == first["status"]["jobName"]
    assert task["status"]["jobName"] != first["status"]["jobName"]
    assert len(jobs_of(kube, ns, "again")) == 2


def test_rerun_a_cancelled_task(kube: KubeSync, ns: str) -> None:
    create_task(kube, ns, "revive", sim(run_for="10m"))
    wait_phase(kube, ns, "revive", "Running")
    patch_spec(kube, ns, "revive", {"cancel": True})
    wait_phase(kube, ns, "revive", "Cancelled")
    patch_spec(kube, ns, "revive", {"cancel": False, "rerun": 1})
    task = wait_for(lambda: (t := get_task(kube, ns, "revive"))["status"].get("run") == 1 and t["status"]["phase"] == "Running" and t,
                    timeout=30, what="second run running")
    assert task["status"]["history"][0]["phase"] == "Cancelled"


def test_invalid_parameters_and_limits_fail_without_a_job(kube: KubeSync, ns: str) -> None:
    create_task(kube, ns, "bad-params", parameters={"count": 99})
    create_task(kube, ns, "too-big", resources={"cpu": "4"})
    bad = wait_phase(kube, ns, "bad-params", "Failed")
    assert condition(bad, "Accepted")["reason"] == "InvalidParameters"
    assert "spec.parameters.count" in condition(bad, "Accepted")["message"]
    big = wait_phase(kube, ns, "too-big", "Failed")
    assert condition(big, "Accepted")["reason"] == "ExceedsLimits"
    assert "spec.resources.cpu" in condition(big, "Accepted")["message"]
    assert not jobs_of(kube, ns)


def test_missing_type_and_queue_wait_until_created(kube: KubeSync, namespace: str) -> None:
    create_task(kube, namespace, "early", sim(run_for="1s"), type="later", queue="later-queue")
    task = wait_phase(kube, namespace, "early", "Pending", reason="UnknownTaskType")
    assert condition(task, "Accepted")["status"] == "False"
    apply_tasktype(kube, namespace, "later")
    wait_phase(kube, namespace, "early", "Queued", reason="QueueNotFound")
    apply_queue(kube, namespace, "later-queue")
    wait_phase(kube, namespace, "early", "Succeeded")


def test_operator_killed_mid_flight_loses_nothing_and_duplicates_nothing(kube: KubeSync, namespace: str, operator: OperatorProcess) -> None:
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "default", maxRunning=4)
    names = [f"burst-{i}" for i in range(16)]
    for name in names:
        create_task(kube, namespace, name, sim(run_for="1s"))
    try:
        wait_for(lambda: len(jobs_of(kube, namespace)) >= 2, what="some Jobs created")
        operator.kill()
        time.sleep(2)  # Jobs finish while nobody watches
    finally:
        operator.start()
    for name in names:
        wait_phase(kube, namespace, name, "Succeeded", timeout=90)
    jobs = jobs_of(kube, namespace)
    per_task = {}
    for job in jobs:
        per_task.setdefault(job["metadata"]["labels"]["kubetask.io/task"], []).append(job["metadata"]["name"])
    assert sorted(per_task) == sorted(names)
    assert all(len(v) == 1 for v in per_task.values()), per_task


def _writes(metrics_text: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if line.startswith("kubetask_api_writes_total{"):
            labels, value = line.rsplit(" ", 1)
            counts[labels] = float(value)
    return counts


def test_api_writes_per_task_lifecycle_stay_few(kube: KubeSync, ns: str, operator: OperatorProcess) -> None:
    """Submit → Succeeded on an idle queue: one Job create, at most three status patches (admitted,
    pod running, succeeded) and two Events (Started, Succeeded). Kopf's bookkeeping adds none."""
    time.sleep(1)
    before = _writes(operator.metrics())
    create_task(kube, ns, "counted", sim(run_for="1s", message='"ok"'))
    wait_phase(kube, ns, "counted", "Succeeded")
    wait_for(lambda: len(events_of(kube, ns, "counted")) >= 2, what="events")
    time.sleep(1)
    after = _writes(operator.metrics())
    delta = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0) and "taskqueues" not in k}
    task_writes = sum(delta.values())
    print(f"operator writes for one Task lifecycle: {delta}")
    assert delta.get('kubetask_api_writes_total{resource="jobs",verb="create"}') == 1
    assert task_writes <= 6, delta
    assert delta.get('kubetask_api_writes_total{resource="tasks/status",verb="patch"}') <= 3
    assert {e["reason"] for e in events_of(kube, ns, "counted")} == {"Started", "Succeeded"}
    assert 'kubetask_tasks{phase="Succeeded",queue="default",type="sim"}' in operator.metrics()
    task = get_task(kube, ns, "counted")
    assert not task["metadata"].get("finalizers")
    assert not [k for k in task["metadata"].get("annotations", {}) if k.startswith("kopf.") or k.startswith("kubetask.io/last")]


def test_a_pod_that_starts_within_the_settle_window_never_shows_pod_pending(kube: KubeSync, namespace: str, kubeconfig: Path,
                                                                           quiet: None, tmp_path: Path) -> None:
    """With a settle window longer than the pod takes to start, the Task goes from no phase
    straight to Running/PodRunning and Succeeded: PodPending is never written, and the run's facts
    (jobName, startTime) arrive with the first write. Every status is recorded by a watch."""
    own = OperatorProcess(kubeconfig, tmp_path, extra_env={
        "KUBETASK_STATUS_SETTLE_SECONDS": "20", "KUBETASK_LEADER_ELECTION": "false", "KUBETASK_NAMESPACES": json.dumps([namespace])})
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "default", maxRunning=10)
    own.start()
    try:
        with PhaseRecorder(kubeconfig, namespace) as phases:
            create_task(kube, namespace, "settled", sim(run_for="4s", message='"ok"'))
            running = wait_phase(kube, namespace, "settled", "Running", timeout=30)
            done = wait_phase(kube, namespace, "settled", "Succeeded", timeout=40)
            time.sleep(1)
    finally:
        own.stop()
    assert condition(running, "Ready")["reason"] == "PodRunning"
    assert running["status"]["jobName"] and running["status"]["startTime"]
    assert "PodPending" not in phases.reasons["settled"], phases.reasons
    assert [p for _, p in phases.phases["settled"]] == ["Running", "Succeeded"]
    assert done["status"]["result"] == "ok"


def test_an_operator_that_finds_only_tasks_says_why_they_wait_and_runs_them_once_their_type_exists(
        kube: KubeSync, namespace: str, kubeconfig: Path, quiet: None, tmp_path: Path) -> None:
    """Start-up waits for Kopf's indexes (TaskTypes, TaskQueues, ...) before the first decision;
    with none of those objects to index Kopf calls no handler at all, and the operator must still
    start (handlers._kopf_indexed). Its Events come from its own poster (events.py)."""
    create_task(kube, namespace, "early", sim(run_for="1s", message='"done"'))
    own = OperatorProcess(kubeconfig, tmp_path, extra_env={"KUBETASK_LEADER_ELECTION": "false", "KUBETASK_NAMESPACES": json.dumps([namespace])})
    own.start()
    try:
        waiting = wait_phase(kube, namespace, "early", "Pending", reason="UnknownTaskType", timeout=30)
        assert "sim" in condition(waiting, "Ready")["message"]
        assert not jobs_of(kube, namespace, "early")
        apply_tasktype(kube, namespace, "sim")
        apply_queue(kube, namespace, "default", maxRunning=2)
        done = wait_phase(kube, namespace, "early", "Succeeded", timeout=60)
        events = wait_for(lambda: [e for e in events_of(kube, namespace, "early") if e["reason"] == "Succeeded"] and events_of(kube, namespace, "early"),
                          what="the Succeeded Event")
    finally:
        own.stop()
    assert done["status"]["result"] == "done" and len(jobs_of(kube, namespace, "early")) == 1
    by_reason = {e["reason"]: e for e in events}
    assert {"Started", "Succeeded"} <= set(by_reason)
    assert by_reason["Started"]["involvedObject"]["uid"] == done["metadata"]["uid"]
    assert by_reason["Succeeded"]["source"]["component"] == "kubetask-operator"
