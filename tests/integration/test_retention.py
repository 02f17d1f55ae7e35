"""Retention on the local control plane: finished Tasks are deleted when their retention has passed
(their Jobs and pods with them, by the real garbage collector), the TaskType and TaskQueue defaults
apply, GitOps-managed Tasks are kept and say so, and deletes are paced.

The session operator sweeps every second (tests/harness.py) and keeps its default retention of
7 days, so only the Tasks here that ask for a short retention are deleted."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import OperatorProcess, wait_for
from kt import absent, apply_queue, apply_tasktype, condition, create_task, get_task, jobs_of, patch_spec, pods_of, sim, wait_phase
from kubetask.kube import KubeSync, core_path, tasks_path
from kubetask.operator.status import epoch
from recorders import _Recorder

RESOURCES = {"resources": {"cpu": "100m", "memory": "64Mi"}}


class DeletionRecorder(_Recorder):
    """When (time.time()) each Task of a namespace was deleted, as the watch delivered it."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        super().__init__(kubeconfig, tasks_path(namespace))
        self.deleted: dict[str, float] = {}

    def __enter__(self) -> DeletionRecorder:
        super().__enter__()
        return self

    def record(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.deleted.setdefault(obj["metadata"]["name"], time.time())


@pytest.fixture
def ns(kube: KubeSync, namespace: str) -> str:
    apply_tasktype(kube, namespace, "sim", defaults=RESOURCES)
    apply_queue(kube, namespace, "default", maxRunning=20)
    return namespace


def gone(kube: KubeSync, namespace: str, name: str) -> bool:
    return absent(lambda: get_task(kube, namespace, name))


def create_labelled_task(kube: KubeSync, namespace: str, name: str, labels: dict[str, str], annotations: dict[str, str],
                         **spec: Any) -> dict[str, Any]:
    body = {"apiVersion": "kubetask.io/v1alpha1", "kind": "Task",
            "metadata": {"name": name, "labels": labels, "annotations": annotations}, "spec": {"type": "sim", **spec}}
    return kube.create(tasks_path(namespace), body)


@pytest.mark.usefixtures("operator")
def test_a_task_is_deleted_after_its_retention_and_its_job_goes_too(kube: KubeSync, ns: str, kubeconfig: Path) -> None:
    with DeletionRecorder(kubeconfig, ns) as recorder:
        create_task(kube, ns, "brief", sim(run_for="1s"), retentionSeconds=2)
        task = wait_phase(kube, ns, "brief", "Succeeded", timeout=60)
        job_name = task["status"]["jobName"]
        assert [j["metadata"]["name"] for j in jobs_of(kube, ns, "brief")] == [job_name]
        completed = epoch(task["status"]["completionTime"])
        assert completed is not None
        wait_for(lambda: "brief" in recorder.deleted, timeout=30, what="the Task deleted by retention")
    # completionTime has whole seconds (rounded down), and the operator counts from it.
    assert recorder.deleted["brief"] >= completed + 2, "deleted before its retention passed"
    assert recorder.deleted["brief"] <= completed + 2 + 10, "deleted late"
    # Background propagation: the garbage collector deletes the Job (ownerReference), then its pods.
    wait_for(lambda: absent(lambda: kube.get(core_path("jobs", ns, job_name, group="batch"))), timeout=60, what="the Job collected")
    wait_for(lambda: not pods_of(kube, ns, "brief"), timeout=60, what="the pods collected")


@pytest.mark.usefixtures("operator")
def test_retention_can_be_changed_on_a_live_task(kube: KubeSync, ns: str) -> None:
    create_task(kube, ns, "kept", sim(run_for="1s"), retentionSeconds=3600)
    wait_phase(kube, ns, "kept", "Succeeded", timeout=60)
    time.sleep(3)  # several sweeps: an hour has not passed
    assert not gone(kube, ns, "kept")
    patch_spec(kube, ns, "kept", {"retentionSeconds": 0})  # mutable, unlike the rest of the spec
    wait_for(lambda: gone(kube, ns, "kept"), timeout=30, what="the Task deleted once its retention was lowered")


@pytest.mark.usefixtures("operator")
def test_tasktype_and_taskqueue_defaults_apply(kube: KubeSync, ns: str) -> None:
    apply_tasktype(kube, ns, "short-lived", defaults={**RESOURCES, "retentionSeconds": 1})
    apply_queue(kube, ns, "brief", maxRunning=20, retentionSeconds=1)
    create_task(kube, ns, "by-type", sim(run_for="1s"), type="short-lived")
    create_task(kube, ns, "by-queue", sim(run_for="1s"), queue="brief")
    # The Task's own retention comes first, the TaskType's before the queue's.
    create_task(kube, ns, "own-over-type", sim(run_for="1s"), type="short-lived", retentionSeconds=3600)
    create_task(kube, ns, "own-over-queue", sim(run_for="1s"), queue="brief", retentionSeconds=3600)
    apply_tasktype(kube, ns, "long-lived", defaults={**RESOURCES, "retentionSeconds": 3600})
    create_task(kube, ns, "type-over-queue", sim(run_for="1s"), type="long-lived", queue="brief")
    create_task(kube, ns, "operator-default", sim(run_for="1s"))  # 7 days in the session operator
    survivors = ["own-over-type", "own-over-queue", "type-over-queue", "operator-default"]
    for name in survivors:
        wait_phase(kube, ns, name, "Succeeded", timeout=60)
    for name in ("by-type", "by-queue"):
        wait_for(lambda: gone(kube, ns, name), timeout=60, what=f"{name} deleted by its default retention")
    time.sleep(3)  # several more sweeps
    assert [name for name in survivors if gone(kube, ns, name)] == []


@pytest.mark.usefixtures("operator")
def test_gitops_managed_tasks_are_kept_and_say_so(kube: KubeSync, ns: str) -> None:
    create_labelled_task(kube, ns, "flux", {"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"},
                         sim(run_for="1s"), retentionSeconds=1)
    create_labelled_task(kube, ns, "argo", {}, {**sim(run_for="1s"), "argocd.argoproj.io/tracking-id": f"app:kubetask.io/Task:{ns}/argo"},
                         retentionSeconds=1)
    create_task(kube, ns, "plain", sim(run_for="1s"), retentionSeconds=1)  # shows that sweeps run meanwhile

    def noted(name: str) -> dict[str, Any] | None:
        task = get_task(kube, ns, name)
        return task if any(c["type"] == "Retained" for c in task["status"].get("conditions", [])) else None

    kept = {name: wait_for(lambda: noted(name), timeout=60, what=f"{name} says Retained") for name in ("flux", "argo")}
    wait_for(lambda: gone(kube, ns, "plain"), timeout=30, what="the plain Task deleted")
    time.sleep(5)  # five more sweeps
    for name, who, tool in (("flux", "Flux (label kustomize.toolkit.fluxcd.io/name)", "Flux"),
                            ("argo", "Argo CD (annotation argocd.argoproj.io/tracking-id)", "Argo CD")):
        task = get_task(kube, ns, name)
        assert task["metadata"]["uid"] == kept[name]["metadata"]["uid"], f"{name} was deleted (and re-created?)"
        assert task["status"]["phase"] == "Succeeded"
        retained = condition(task, "Retained")
        assert (retained["status"], retained["reason"]) == ("True", "ManagedByGitOps")
        assert retained["message"] == (f"kept past its retention: applied by {who}; deleting it would make {tool} "
                                       "apply it again and it would run again")
        assert condition(task, "Succeeded")["status"] == "True"  # the other conditions stay
        assert task["metadata"]["resourceVersion"] == kept[name]["metadata"]["resourceVersion"], "the note is written once"
        assert jobs_of(kube, ns, name)  # nothing of it was deleted


@pytest.fixture
def paced_operator(operator: OperatorProcess, kubeconfig: Path, tmp_path: Path, namespace: str) -> Iterator[OperatorProcess]:
    """The session operator stopped (it would delete at its own rate), and one deleting 2 Tasks a second."""
    operator.stop()
    own = OperatorProcess(kubeconfig, tmp_path, extra_env={
        "KUBETASK_RETENTION_DELETES_PER_SECOND": str(RATE), "KUBETASK_NAMESPACES": f'["{namespace}"]',
        "KUBETASK_LEADER_LEASE_NAME": f"kt-retention-{uuid.uuid4().hex[:8]}", "KUBETASK_LEADER_LEASE_NAMESPACE": namespace})
    try:
        own.start()
        yield own
    finally:
        own.stop()
        operator.start()


RATE = 2.0
BACKLOG = 10


def test_deletes_are_paced(kube: KubeSync, ns: str, kubeconfig: Path, paced_operator: OperatorProcess) -> None:
    names = [f"expired-{i}" for i in range(BACKLOG)]
    for name in names:
        create_task(kube, ns, name, sim(run_for="1s"), retentionSeconds=3600)
    for name in names:
        wait_phase(kube, ns, name, "Succeeded", timeout=90)
    with DeletionRecorder(kubeconfig, ns) as recorder:
        for name in names:  # the whole backlog expires at once
            patch_spec(kube, ns, name, {"retentionSeconds": 0})
        wait_for(lambda: len(recorder.deleted) == BACKLOG, timeout=60, what=f"{BACKLOG} Tasks deleted")
    times = sorted(recorder.deleted.values())
    gaps = [b - a for a, b in zip(times, times[1:])]
    # One delete every 1/RATE seconds at most; the slack is for the watch's delivery jitter.
    assert times[-1] - times[0] >= (BACKLOG - 1) / RATE - 0.5, times
    assert min(gaps) >= 0.5 / RATE, gaps
    assert times[-1] - times[0] <= (BACKLOG - 1) / RATE + 15, "paced, but not stalled"
    metrics = paced_operator.metrics().splitlines()
    for name in ('kubetask_api_writes_total{resource="tasks",verb="delete"}', "kubetask_retention_deleted_total"):
        [value] = [float(line.split()[-1]) for line in metrics if line.startswith(name + " ")]
        assert value == BACKLOG, name
