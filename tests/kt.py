"""Helpers for tests that drive kubetask resources on the local control plane."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from harness import localcluster, wait_for
from kubetask.kube import ApiError, Connection, KubeSync, core_path, tasks_path

TERMINAL = ("Succeeded", "Failed", "Cancelled")


def ca_file(connection: Connection, folder: Path) -> Path:
    """The cluster's CA as a file, for a process of its own (a handler): kubetask keeps it in memory."""
    assert connection.tls.ca is not None, "the test cluster is served over TLS with its own CA"
    path = folder / "ca.crt"
    path.write_bytes(connection.tls.ca)
    return path


def apply_tasktype(kube: KubeSync, namespace: str, name: str = "sim", **spec: Any) -> dict[str, Any]:
    body = {"apiVersion": "kubetask.io/v1alpha1", "kind": "TaskType", "metadata": {"name": name},
            "spec": {"image": "ghcr.io/kubetask/handler-echo:0.1.0", **spec}}
    return kube.create(tasks_path(namespace, plural="tasktypes"), body)


def apply_queue(kube: KubeSync, namespace: str, name: str = "default", **spec: Any) -> dict[str, Any]:
    body = {"apiVersion": "kubetask.io/v1alpha1", "kind": "TaskQueue", "metadata": {"name": name}, "spec": spec}
    return kube.create(tasks_path(namespace, plural="taskqueues"), body)


def sim(run_for: str | None = None, exit_code: int | None = None, message: str | None = None) -> dict[str, str]:
    """Annotations that tell kwok how the Task's simulated container behaves."""
    annotations = {}
    if run_for:
        annotations[localcluster.SIM_RUN_FOR] = run_for
    if exit_code is not None:
        annotations[localcluster.SIM_EXIT_CODE] = str(exit_code)
    if message is not None:
        annotations[localcluster.SIM_MESSAGE] = message
    return annotations


def create_task(kube: KubeSync, namespace: str, name: str, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    spec.setdefault("type", "sim")
    body = {"apiVersion": "kubetask.io/v1alpha1", "kind": "Task",
            "metadata": {"name": name, "annotations": annotations or {}}, "spec": spec}
    return kube.create(tasks_path(namespace), body)


def get_task(kube: KubeSync, namespace: str, name: str) -> dict[str, Any]:
    return kube.get(tasks_path(namespace, name))


def condition(task: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in task.get("status", {}).get("conditions", []) if c["type"] == type_)


def wait_phase(kube: KubeSync, namespace: str, name: str, phase: str | tuple[str, ...], timeout: float = 60,
               reason: str | None = None) -> dict[str, Any]:
    phases = (phase,) if isinstance(phase, str) else phase

    def probe() -> dict[str, Any] | None:
        task = get_task(kube, namespace, name)
        status = task.get("status", {})
        if status.get("phase") not in phases:
            return None
        if reason is not None and not any(c["reason"] == reason for c in status.get("conditions", [])):
            return None
        return task

    return wait_for(probe, timeout=timeout, what=f"Task {name} phase {phases} reason {reason}")


def jobs_of(kube: KubeSync, namespace: str, task: str | None = None) -> list[dict[str, Any]]:
    selector = "app.kubernetes.io/managed-by=kubetask" + (f",kubetask.io/task={task}" if task else "")
    return list(kube.get(core_path("jobs", namespace, group="batch"), labelSelector=selector)["items"])


def one_job_per_task(kube: KubeSync, namespace: str, names: list[str]) -> None:
    """Every Task in `names` has exactly one Job, and no Job belongs to another Task."""
    per_task: dict[str, list[str]] = defaultdict(list)
    for job in jobs_of(kube, namespace):
        per_task[job["metadata"]["labels"]["kubetask.io/task"]].append(job["metadata"]["name"])
    assert sorted(per_task) == sorted(names)
    duplicates = {k: v for k, v in per_task.items() if len(v) != 1}
    assert not duplicates, duplicates


def pods_of(kube: KubeSync, namespace: str, task: str) -> list[dict[str, Any]]:
    return list(kube.get(core_path("pods", namespace), labelSelector=f"kubetask.io/task={task}")["items"])


def patch_spec(kube: KubeSync, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return kube.patch(tasks_path(namespace, name), {"spec": spec})


def events_of(kube: KubeSync, namespace: str, name: str) -> list[dict[str, Any]]:
    return list(kube.get(core_path("events", namespace), fieldSelector=f"involvedObject.name={name},involvedObject.kind=Task")["items"])


def absent(probe: Any) -> bool:
    try:
        probe()
        return False
    except ApiError as error:
        return error.status == 404
