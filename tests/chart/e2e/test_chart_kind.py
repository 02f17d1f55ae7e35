"""End to end on kind: the chart-installed operator and gateway with real handler images.

Run by `make kind-e2e` (hack/kind-e2e.sh), which builds and loads the images, installs the chart
with the example TaskTypes (echo, flaky, progress) and the handler RBAC in KUBETASK_E2E_NAMESPACE,
and points KUBETASK_TEST_KUBECONFIG at the kind cluster. Skipped anywhere else: on the local
control plane pods are simulated and the operator runs as a test process (tests/e2e does that).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from kubetask.kube import KubeSync, tasks_path

if not os.environ.get("KUBETASK_KIND_E2E"):
    pytest.skip("needs the kind cluster of `make kind-e2e` (Docker)", allow_module_level=True)
pytestmark = pytest.mark.timeout(300)
NS = os.environ.get("KUBETASK_E2E_NAMESPACE", "kubetask-e2e")
RELEASE_NS = os.environ.get("KUBETASK_E2E_RELEASE_NAMESPACE", "kubetask")
KUBECTL = os.environ.get("KUBETASK_E2E_KUBECTL", "kubectl")


def submit(kube: KubeSync, type_: str, parameters: dict[str, Any], **spec: Any) -> str:
    name = f"{type_}-{uuid.uuid4().hex[:6]}"
    kube.create(tasks_path(NS), {"apiVersion": "kubetask.io/v1alpha1", "kind": "Task", "metadata": {"name": name},
                                 "spec": {"type": type_, "parameters": parameters, **spec}})
    return name


def wait_phase(kube: KubeSync, name: str, phases: set[str], timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    task: dict[str, Any] = {}
    while time.monotonic() < deadline:
        task = kube.get(tasks_path(NS, name))
        if (task.get("status") or {}).get("phase") in phases:
            return task
        time.sleep(1)
    raise AssertionError(f"Task {name} not in {phases} after {timeout}s: {task.get('status')}")


@contextmanager
def port_forward(kubeconfig: str, target: str, port: int) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        local = s.getsockname()[1]
    process = subprocess.Popen([KUBECTL, "--kubeconfig", kubeconfig, "-n", RELEASE_NS, "port-forward", target, f"{local}:{port}"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{local}"
        for _ in range(100):
            try:
                httpx.get(base, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_echo_returns_its_result(kube: KubeSync) -> None:
    name = submit(kube, "echo", {"message": "hello, kubetask", "upper": True})
    task = wait_phase(kube, name, {"Succeeded", "Failed"})
    assert task["status"]["phase"] == "Succeeded", task["status"]
    assert task["status"]["result"]["message"] == "HELLO, KUBETASK"


def test_non_retryable_failure_fails_at_once(kube: KubeSync) -> None:
    name = submit(kube, "flaky", {"mode": "fatal"})
    task = wait_phase(kube, name, {"Succeeded", "Failed"})
    assert task["status"]["phase"] == "Failed"
    assert task["status"]["lastFailure"]["exitCode"] == 65
    assert task["status"]["attempts"] == 1


def test_progress_is_reported_with_the_handler_rbac(kube: KubeSync) -> None:
    name = submit(kube, "progress", {"steps": 4, "sleepSeconds": 0.5})
    task = wait_phase(kube, name, {"Succeeded", "Failed"})
    assert task["status"]["phase"] == "Succeeded", task["status"]
    assert task["status"]["progress"]["percent"] == 100


def test_cancel_a_running_task(kube: KubeSync) -> None:
    name = submit(kube, "progress", {"steps": 600, "sleepSeconds": 1})
    wait_phase(kube, name, {"Running"})
    kube.patch(tasks_path(NS, name), {"spec": {"cancel": True}})
    assert wait_phase(kube, name, {"Cancelled", "Failed", "Succeeded"})["status"]["phase"] == "Cancelled"


def test_operator_metrics(kubeconfig: Any, kube: KubeSync) -> None:
    with port_forward(str(kubeconfig), "deploy/kubetask-operator", 8080) as base:
        text = httpx.get(f"{base}/metrics", timeout=10).text
    assert "kubetask_tasks" in text and "kubetask_api_writes_total" in text


def test_gateway_answers_and_authenticates(kubeconfig: Any) -> None:
    with port_forward(str(kubeconfig), "svc/kubetask-gateway", 8000) as base:
        assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200
        assert httpx.get(f"{base}/api/v1/namespaces/{NS}/tasks", timeout=10).status_code == 401
