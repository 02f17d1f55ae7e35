"""End to end: the chart's operator and gateway, from the kubetask image, with real handler images.

Two places, the same tests:
- on the local control plane's real node (`make test`; KUBETASK_TEST_REAL_NODE=1 or a running
  real node): hack/build-realnode.sh built the kubetask image and the handler images with buildah
  from the repository's Dockerfiles and loaded them into the node's containerd. The module stops
  the session's operator (it watches every namespace), installs the chart with helm, its operator
  and gateway pods and the example TaskTypes pinned to the real node, and uninstalls it at the end.
  The operator and gateway talk to kube-apiserver from inside their pods (in-cluster config, the
  `kubernetes` Service's address); `kubectl port-forward` reaches them through the kubelet.
- on kind (`make kind-e2e`, hack/kind-e2e.sh, needs Docker), which installs the chart itself and
  sets KUBETASK_KIND_E2E, KUBETASK_E2E_NAMESPACE and KUBETASK_E2E_RELEASE_NAMESPACE.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/chart: chart_helpers
from chart_helpers import CHART  # noqa: E402
from chart_helpers import chart_bin, helm  # noqa: E402,F401  (fixtures)
from kubetask.kube import ApiError, KubeSync, core_path, tasks_path  # noqa: E402

pytestmark = [pytest.mark.timeout(300), pytest.mark.realnode]
KIND_E2E = bool(os.environ.get("KUBETASK_KIND_E2E"))
REAL_NODE = {"nodeSelector": {"kubetask.io/node-kind": "real"},
             "tolerations": [{"key": "kubetask.io/real-node", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]}


@dataclass
class Release:
    namespace: str  # where the Tasks go (the chart's watchNamespaces)
    release_namespace: str
    kubectl: str
    kubeconfig: Path


def _namespace(kube: KubeSync, name: str) -> None:
    kube.create(core_path("namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": name, "labels": {"pod-security.kubernetes.io/enforce": "restricted", "kubetask.io/test": "true"}}})


def _pods_report(kubectl: str, kubeconfig: Path, namespace: str) -> str:
    """What the pods of a failed install say: their status and the operator's and gateway's logs."""
    out = []
    for args in (["get", "pods", "-o", "wide"], ["get", "events", "--sort-by=.lastTimestamp"],
                 ["logs", "deploy/kubetask-operator", "--tail=40"], ["logs", "deploy/kubetask-gateway", "--tail=40"]):
        done = subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "-n", namespace, *args], capture_output=True, text=True)
        out.append(f"$ kubectl {' '.join(args)}\n{done.stdout}{done.stderr}")
    return "\n".join(out)


@pytest.fixture(scope="module")
def release(request: pytest.FixtureRequest, kube: KubeSync, kubeconfig: Path) -> Iterator[Release]:
    if KIND_E2E:
        yield Release(os.environ.get("KUBETASK_E2E_NAMESPACE", "kubetask-e2e"),
                      os.environ.get("KUBETASK_E2E_RELEASE_NAMESPACE", "kubetask"),
                      os.environ.get("KUBETASK_E2E_KUBECTL", "kubectl"), kubeconfig)
        return
    request.getfixturevalue("real_node")  # skips where there is none
    run_helm: Callable[..., subprocess.CompletedProcess[str]] = request.getfixturevalue("helm")
    kubectl = str(Path(request.getfixturevalue("bin_dir")) / "kubectl")
    session_operator = request.getfixturevalue("operator")
    suffix = uuid.uuid4().hex[:6]
    released = Release(f"kt-chart-tasks-{suffix}", f"kt-chart-{suffix}", kubectl, kubeconfig)
    values: dict[str, Any] = {
        # The images are in the node's containerd (hack/build-realnode.sh); there is nowhere to pull from.
        "image.pullPolicy": "Never",
        "operator.nodeSelector": REAL_NODE["nodeSelector"], "operator.tolerations": REAL_NODE["tolerations"],
        "gateway.nodeSelector": REAL_NODE["nodeSelector"], "gateway.tolerations": REAL_NODE["tolerations"],
        "watchNamespaces": [released.namespace],
        # The local cluster has the CRDs and policies already (hack/localcluster.py installs them).
        "crds.enabled": False,
        "exampleTaskTypes.enabled": True, "exampleTaskTypes.names": ["echo", "flaky", "progress"],
        "exampleTaskTypes.nodeSelector": REAL_NODE["nodeSelector"], "exampleTaskTypes.tolerations": REAL_NODE["tolerations"],
        "handlerRbac.enabled": True,
    }
    for ns in (released.release_namespace, released.namespace):
        _namespace(kube, ns)
    session_operator.stop()
    try:
        args = ["upgrade", "--install", "kubetask", str(CHART), "-n", released.release_namespace,
                "--wait", "--timeout", "240s"]
        for key, value in values.items():
            args += ["--set-json", f"{key}={json.dumps(value)}"]
        done = run_helm(*args, kubeconfig=kubeconfig, check=False, timeout=300)
        if done.returncode != 0:
            pytest.fail(f"helm install failed:\n{done.stderr}\n{_pods_report(kubectl, kubeconfig, released.release_namespace)}")
        yield released
    finally:
        run_helm("uninstall", "kubetask", "-n", released.release_namespace, "--wait", kubeconfig=kubeconfig, check=False)
        for ns in (released.namespace, released.release_namespace):
            try:
                kube.delete(core_path("namespaces", name=ns))
            except ApiError:
                pass
        session_operator.start()


def submit(kube: KubeSync, release: Release, type_: str, parameters: dict[str, Any], **spec: Any) -> str:
    name = f"{type_}-{uuid.uuid4().hex[:6]}"
    kube.create(tasks_path(release.namespace), {"apiVersion": "kubetask.io/v1alpha1", "kind": "Task", "metadata": {"name": name},
                                                "spec": {"type": type_, "parameters": parameters, **spec}})
    return name


def wait_phase(kube: KubeSync, release: Release, name: str, phases: set[str], timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    task: dict[str, Any] = {}
    while time.monotonic() < deadline:
        task = kube.get(tasks_path(release.namespace, name))
        if (task.get("status") or {}).get("phase") in phases:
            return task
        time.sleep(1)
    raise AssertionError(f"Task {name} not in {phases} after {timeout}s: {task.get('status')}\n"
                         f"{_pods_report(release.kubectl, release.kubeconfig, release.release_namespace)}")


@contextmanager
def port_forward(release: Release, target: str, port: int) -> Iterator[str]:
    """`kubectl port-forward`: API server → kubelet → the container runtime's stream into the pod."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        local = s.getsockname()[1]
    process = subprocess.Popen([release.kubectl, "--kubeconfig", str(release.kubeconfig), "-n", release.release_namespace,
                                "port-forward", target, f"{local}:{port}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{local}"
        for _ in range(100):
            try:
                httpx.get(base, timeout=1)
                break
            except httpx.HTTPError:
                assert process.poll() is None, f"kubectl port-forward {target} ended: {process.stdout.read() if process.stdout else ''}"
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_chart_runs_from_the_kubetask_image(kube: KubeSync, release: Release) -> None:
    pods = kube.get(core_path("pods", release.release_namespace))["items"]
    components = {p["metadata"]["labels"].get("app.kubernetes.io/component") for p in pods}
    assert {"operator", "gateway"} <= components, components
    for pod in pods:
        assert pod["status"]["phase"] == "Running", (pod["metadata"]["name"], pod["status"])
        [status] = pod["status"]["containerStatuses"]
        assert status["ready"] and status["image"].split("/")[-1].startswith("kubetask:"), status
        if not KIND_E2E:  # in a real container, on the real node
            assert status["containerID"].startswith("containerd://")
            node = kube.get(core_path("nodes", name=pod["spec"]["nodeName"]))
            assert node["metadata"]["labels"].get("kubetask.io/node-kind") == "real"


def test_echo_returns_its_result(kube: KubeSync, release: Release) -> None:
    name = submit(kube, release, "echo", {"message": "hello, kubetask", "upper": True})
    task = wait_phase(kube, release, name, {"Succeeded", "Failed"})
    assert task["status"]["phase"] == "Succeeded", task["status"]
    # (The test written for kind, never run before, expected result.message: the echo handler
    # returns {"echo": parameters, "task": name, "run": n}.)
    assert task["status"]["result"]["echo"] == {"message": "HELLO, KUBETASK"}
    assert task["status"]["result"]["task"] == name


def test_non_retryable_failure_fails_at_once(kube: KubeSync, release: Release) -> None:
    name = submit(kube, release, "flaky", {"mode": "fatal"})
    task = wait_phase(kube, release, name, {"Succeeded", "Failed"})
    assert task["status"]["phase"] == "Failed"
    assert task["status"]["lastFailure"]["exitCode"] == 65
    assert task["status"]["attempts"] == 1


def test_progress_is_reported_with_the_handler_rbac(kube: KubeSync, release: Release) -> None:
    name = submit(kube, release, "progress", {"steps": 4, "sleepSeconds": 0.5})
    task = wait_phase(kube, release, name, {"Succeeded", "Failed"})
    assert task["status"]["phase"] == "Succeeded", task["status"]
    assert task["status"]["progress"]["percent"] == 100


def test_cancel_a_running_task(kube: KubeSync, release: Release) -> None:
    name = submit(kube, release, "progress", {"steps": 600, "sleepSeconds": 1})
    wait_phase(kube, release, name, {"Running"})
    kube.patch(tasks_path(release.namespace, name), {"spec": {"cancel": True}})
    assert wait_phase(kube, release, name, {"Cancelled", "Failed", "Succeeded"})["status"]["phase"] == "Cancelled"


def test_operator_metrics(kube: KubeSync, release: Release) -> None:
    with port_forward(release, "deploy/kubetask-operator", 8080) as base:
        text = httpx.get(f"{base}/metrics", timeout=10).text
    assert "kubetask_tasks" in text and "kubetask_api_writes_total" in text


def test_gateway_answers_and_authenticates(release: Release) -> None:
    with port_forward(release, "svc/kubetask-gateway", 8000) as base:
        assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200
        assert httpx.get(f"{base}/api/v1/namespaces/{release.namespace}/tasks", timeout=10).status_code == 401


def test_kubectl_exec_in_the_operator_pod(release: Release) -> None:
    """`kubectl exec` (API server → kubelet → the runtime's stream): the image's Python, its user."""
    done = subprocess.run([release.kubectl, "--kubeconfig", str(release.kubeconfig), "-n", release.release_namespace, "exec",
                           "deploy/kubetask-operator", "--", "python", "-c",
                           "import os, sys, kubetask.operator; print(sys.version_info[:2], os.getuid())"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    version, uid = done.stdout.strip().rsplit(" ", 1)
    assert uid == "65532" and version.startswith("(3, 1"), done.stdout
