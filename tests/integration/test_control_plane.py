"""Proof that the local control plane is real: the Job controller, scheduler, kwok-simulated pods
and the garbage collector behave as in a cluster. Pods are driven by the sim.kubetask.io
annotations (see hack/localcluster.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import RESTRICTED_CONTAINER_SECURITY, localcluster, wait_for
from kubetask.kube import ApiError, KubeSync, core_path

JOBS = "jobs"


def job(name: str, annotations: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0, **spec,
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {"restartPolicy": "Never", "containers": [{
                    "name": "main", "image": "example.invalid/handler:1",
                    "securityContext": RESTRICTED_CONTAINER_SECURITY,
                }]},
            },
        },
    }


def job_condition(kube: KubeSync, namespace: str, name: str) -> dict[str, Any] | None:
    status = kube.get(core_path(JOBS, namespace, name, group="batch")).get("status", {})
    return next((c for c in status.get("conditions", []) if c["type"] in ("Complete", "Failed") and c["status"] == "True"), None)


def pods_of(kube: KubeSync, namespace: str, job_name: str) -> list[dict[str, Any]]:
    return list(kube.get(core_path("pods", namespace), labelSelector=f"job-name={job_name}")["items"])


def test_successful_pod_termination_message_is_readable(kube: KubeSync, namespace: str) -> None:
    kube.create(core_path(JOBS, namespace, group="batch"), job("ok", {
        localcluster.SIM_RUN_FOR: "1s", localcluster.SIM_MESSAGE: '{"answer": 42}'}))
    condition = wait_for(lambda: job_condition(kube, namespace, "ok"), timeout=30, what="Job finished")
    assert condition["type"] == "Complete"
    [pod] = pods_of(kube, namespace, "ok")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0
    assert terminated["message"] == '{"answer": 42}'


def test_failing_pod_is_retried_up_to_backoff_limit(kube: KubeSync, namespace: str) -> None:
    kube.create(core_path(JOBS, namespace, group="batch"), job("fails", {
        localcluster.SIM_EXIT_CODE: "3", localcluster.SIM_MESSAGE: "disk full"}, backoffLimit=1))
    condition = wait_for(lambda: job_condition(kube, namespace, "fails"), timeout=60, what="Job failed")
    assert (condition["type"], condition["reason"]) == ("Failed", "BackoffLimitExceeded")
    pods = pods_of(kube, namespace, "fails")
    assert len(pods) == 2  # the first try and one retry
    for pod in pods:
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (terminated["exitCode"], terminated["message"]) == (3, "disk full")


def test_active_deadline_ends_a_long_running_pod(kube: KubeSync, namespace: str) -> None:
    kube.create(core_path(JOBS, namespace, group="batch"), job("slow", {localcluster.SIM_RUN_FOR: "10m"},
                                                             activeDeadlineSeconds=3))
    condition = wait_for(lambda: job_condition(kube, namespace, "slow"), timeout=40, what="Job deadline")
    assert (condition["type"], condition["reason"]) == ("Failed", "DeadlineExceeded")
    wait_for(lambda: not pods_of(kube, namespace, "slow") or all(
        p["metadata"].get("deletionTimestamp") for p in pods_of(kube, namespace, "slow")), what="pod terminated")


def test_pod_failure_policy_fails_the_job_without_retry(kube: KubeSync, namespace: str) -> None:
    policy = {"rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
    ]}
    kube.create(core_path(JOBS, namespace, group="batch"), job("fatal", {localcluster.SIM_EXIT_CODE: "42"},
                                                             backoffLimit=5, podFailurePolicy=policy))
    condition = wait_for(lambda: job_condition(kube, namespace, "fatal"), timeout=30, what="Job failed")
    assert (condition["type"], condition["reason"]) == ("Failed", "PodFailurePolicy")
    assert len(pods_of(kube, namespace, "fatal")) == 1  # backoffLimit 5, yet no retry


def _gpu_pod(name: str, gpus: int) -> dict[str, Any]:
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "annotations": {localcluster.SIM_RUN_FOR: "10m"}},
            "spec": {"restartPolicy": "Never", "containers": [{
                "name": "main", "image": "example.invalid/gpu:1", "resources": resources,
                "securityContext": RESTRICTED_CONTAINER_SECURITY}]}}


def test_gpu_requests_meet_the_real_scheduler(kube: KubeSync, namespace: str) -> None:
    kube.create(core_path("pods", namespace), _gpu_pod("fits", 2))
    kube.create(core_path("pods", namespace), _gpu_pod("too-big", localcluster.GPUS_PER_NODE + 1))
    fits = wait_for(lambda: (p := kube.get(core_path("pods", namespace, "fits")))["status"].get("phase") == "Running" and p,
                    what="GPU pod running")
    assert fits["spec"]["nodeName"].startswith("gpu-node-")

    def unschedulable() -> dict[str, Any] | None:
        pod = kube.get(core_path("pods", namespace, "too-big"))
        return next((c for c in pod["status"].get("conditions", []) if c["type"] == "PodScheduled" and c["status"] == "False"), None)

    condition = wait_for(unschedulable, what="PodScheduled=False")
    assert condition["reason"] == "Unschedulable"
    assert "nvidia.com/gpu" in condition["message"]
    assert kube.get(core_path("pods", namespace, "too-big"))["status"]["phase"] == "Pending"


def test_deleting_the_owner_garbage_collects_the_job(kube: KubeSync, namespace: str) -> None:
    owner = kube.create(core_path("configmaps", namespace), {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}})
    owned = job("owned", {localcluster.SIM_RUN_FOR: "10m"})
    owned["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                                             "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
    kube.create(core_path(JOBS, namespace, group="batch"), owned)
    wait_for(lambda: pods_of(kube, namespace, "owned"), what="owned Job's pod")
    kube.delete(core_path("configmaps", namespace, "owner"))

    def job_gone() -> bool:
        try:
            kube.get(core_path(JOBS, namespace, "owned", group="batch"))
            return False
        except ApiError as error:
            return error.status == 404

    wait_for(job_gone, timeout=60, what="garbage collection of the Job")


def test_down_stops_every_process_of_the_cluster(bin_dir: Path) -> None:
    """A second cluster goes up and down: none of its processes outlive `down` (kwokctl's own
    delete left etcd and kube-apiserver running; they then competed with the next cluster)."""
    cluster = localcluster.LocalCluster("kubetask-test-down")
    cluster.down(quiet=True)
    cluster.up()
    running = cluster._processes()  # noqa: SLF001
    assert len(running) >= 5, running  # etcd, apiserver, controller-manager, scheduler, kwok
    cluster.down(quiet=True)
    assert cluster._processes() == []  # noqa: SLF001
    assert not cluster.cluster_dir.exists()
