"""Faults: the operator killed repeatedly mid-burst, the API server restarted, Jobs changed behind
the operator's back, two operators at once. Nothing is lost, nothing runs twice, no status goes
backwards. Sized for the suite; `KUBETASK_SOAK_TASKS` makes the burst as large as you like."""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from harness import OperatorProcess, localcluster, wait_for
from kt import apply_queue, apply_tasktype, create_task, get_task, jobs_of, one_job_per_task, sim, wait_phase
from kubetask.kube import ApiError, KubeSync, core_path, tasks_path
from recorders import PhaseRecorder

pytestmark = pytest.mark.usefixtures("operator")
BURST = int(os.environ.get("KUBETASK_SOAK_TASKS", "200"))


def all_terminal(kube: KubeSync, namespace: str, names: list[str]) -> dict[str, int]:
    items = kube.get(tasks_path(namespace))["items"]
    phases: dict[str, int] = defaultdict(int)
    for item in items:
        phases[(item.get("status") or {}).get("phase", "none")] += 1
    return dict(phases) if phases.get("Succeeded", 0) == len(names) else {}


def test_operator_killed_repeatedly_during_a_burst(kube: KubeSync, namespace: str, operator: OperatorProcess, kubeconfig: Path) -> None:
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "default", maxRunning=40)
    names = [f"b-{i:04d}" for i in range(BURST)]
    with PhaseRecorder(kubeconfig, namespace) as recorder:
        for i, name in enumerate(names):
            create_task(kube, namespace, name, sim(run_for="1s"))
        kills = 0
        try:
            for _ in range(4):
                time.sleep(2.5)
                operator.kill()
                kills += 1
                time.sleep(0.5)
                operator.start()
        finally:
            if operator.process.poll() is not None:
                operator.start()
        phases = wait_for(lambda: all_terminal(kube, namespace, names), timeout=240, interval=1, what="every Task Succeeded")
        time.sleep(1)
    assert phases == {"Succeeded": BURST}, phases
    assert kills == 4
    one_job_per_task(kube, namespace, names)
    assert not recorder.backwards(), recorder.backwards()


def test_two_operators_at_once_create_no_duplicate_jobs(kube: KubeSync, namespace: str, kubeconfig: Path,
                                                        tmp_path: Path) -> None:
    # Leader election off for the second one: both act at once (as two processes would whose
    # Lease timing went wrong), and deterministic Job names still keep it to one Job per Task.
    second = OperatorProcess(kubeconfig, tmp_path, extra_env={"KUBETASK_LEADER_ELECTION": "false"})
    second.start()
    try:
        apply_tasktype(kube, namespace, "sim")
        apply_queue(kube, namespace, "default", maxRunning=100)
        names = [f"d-{i:03d}" for i in range(60)]
        with PhaseRecorder(kubeconfig, namespace) as recorder:
            for name in names:
                create_task(kube, namespace, name, sim(run_for="1s"))
            wait_for(lambda: all_terminal(kube, namespace, names), timeout=120, interval=1, what="every Task Succeeded")
        one_job_per_task(kube, namespace, names)
        assert not recorder.backwards()
    finally:
        second.stop()


def test_status_reconciles_to_jobs_changed_while_the_operator_was_down(kube: KubeSync, namespace: str, operator: OperatorProcess) -> None:
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "default", maxRunning=10)
    create_task(kube, namespace, "deleted-job", sim(run_for="10m"))
    create_task(kube, namespace, "finishes-alone", sim(run_for="3s", message='"done while away"'))
    wait_phase(kube, namespace, "deleted-job", "Running", reason="PodRunning")
    wait_phase(kube, namespace, "finishes-alone", "Running", reason="PodRunning")
    operator.stop()
    try:
        [job] = jobs_of(kube, namespace, "deleted-job")
        kube.delete(core_path("jobs", namespace, job["metadata"]["name"], group="batch"), body={"propagationPolicy": "Background"})
        wait_for(lambda: not jobs_of(kube, namespace, "deleted-job"), what="Job deleted by hand")
        wait_for(lambda: any(c["type"] == "Complete" for c in jobs_of(kube, namespace, "finishes-alone")[0].get("status", {}).get("conditions", [])),
                 timeout=30, what="Job completed while the operator was down")
        assert get_task(kube, namespace, "finishes-alone")["status"]["phase"] == "Running"  # nobody told it yet
    finally:
        operator.start()
    gone = wait_phase(kube, namespace, "deleted-job", "Failed")
    assert gone["status"]["lastFailure"]["reason"] == "JobDeleted"
    assert not jobs_of(kube, namespace, "deleted-job")  # not silently re-run
    done = wait_phase(kube, namespace, "finishes-alone", "Succeeded")
    assert done["status"]["result"] == "done while away"


def test_api_server_restart_mid_burst(kube: KubeSync, namespace: str, kubeconfig: Path, tmp_path: Path) -> None:
    if os.environ.get("KUBETASK_TEST_KUBECONFIG"):
        pytest.skip("restarts a component: only on the control plane this session started")
    cluster = localcluster.LocalCluster(os.environ.get("KUBETASK_TEST_CLUSTER", "kubetask-test"))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
    from gateway_harness import GatewayProcess

    gateway = GatewayProcess(kubeconfig, tmp_path, "gateway", KUBETASK_GATEWAY_DEV_NO_AUTH="true")
    gateway.start()
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "default", maxRunning=20)
    names = [f"r-{i:03d}" for i in range(40)]
    for name in names[:20]:
        create_task(kube, namespace, name, sim(run_for="2s"))
    time.sleep(1)
    pid_file = cluster.cluster_dir / "pids" / "kube-apiserver.pid"
    before = pid_file.read_text()
    cluster.restart_component("kube-apiserver", down_seconds=2)
    assert pid_file.read_text() != before  # a new kube-apiserver process

    def create_rest() -> bool:
        for name in names[20:]:
            try:
                create_task(kube, namespace, name, sim(run_for="1s"))
            except ApiError as error:
                if error.status != 409:
                    raise
        return True

    wait_for(create_rest, timeout=60, what="API server back")
    try:
        phases = wait_for(lambda: all_terminal(kube, namespace, names), timeout=180, interval=1, what="every Task Succeeded")
        assert phases == {"Succeeded": len(names)}
        one_job_per_task(kube, namespace, names)
        # The gateway recovered by itself too: ready again, and its cache follows the cluster.
        wait_for(lambda: httpx.get(f"{gateway.url}/readyz", timeout=5).status_code == 200, timeout=60, what="gateway ready again")
        last = wait_for(lambda: (r := httpx.get(f"{gateway.url}/api/v1/namespaces/{namespace}/tasks/{names[-1]}", timeout=5)).status_code == 200
                        and r.json(), timeout=60, what="gateway serving a Task created after the restart")
        assert last["phase"] == "Succeeded"
    finally:
        gateway.stop()
