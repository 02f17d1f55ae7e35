"""The handler contract in real containers: the example images on a real node.

`hack/localcluster.py up --real-node` adds `real-node-0`, a real kubelet on containerd, beside the
kwok nodes, with the images hack/build-realnode.sh builds from the repository's Dockerfiles. Here
every Task goes through the real operator, Job controller, scheduler and kubelet, and its TaskType
sends it to a node labelled `kubetask.io/node-kind=real` (nodeSelector + toleration of the local
node's taint). Each contract test runs twice: submitted with `kubectl apply`, and through the
gateway's REST API with a ServiceAccount token.

Opt-in: the tests run when the cluster under test has a Ready node with that label, and are skipped
with the reason otherwise. KUBETASK_TEST_REAL_NODE=1 starts `real-node-0` on the local cluster under
test (root; the first build takes minutes, docs/real-node.md). `make kind-e2e` runs the same tests
on kind (hack/kind-e2e.sh labels its node; KUBETASK_KIND_E2E=1: the chart's operator is the one
under test, and kubectl is KUBETASK_E2E_KUBECTL).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import pytest
import yaml

from harness import REPO, wait_for
from kt import apply_queue, get_task, pods_of, wait_phase
from kubetask.kube import ApiError, KubeSync, core_path

EXAMPLES = REPO / "handlers-images" / "examples"
RBAC = REPO / "handlers-images" / "rbac" / "handler-rbac.yaml"
NODE_KIND = "kubetask.io/node-kind"
NODE_SELECTOR = {NODE_KIND: "real"}
TOLERATION = {"key": "kubetask.io/real-node", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
KIND_E2E = bool(os.environ.get("KUBETASK_KIND_E2E"))

pytestmark = [pytest.mark.usefixtures("the_operator"), pytest.mark.realnode]


@pytest.fixture(scope="module")
def the_operator(request: pytest.FixtureRequest) -> None:
    """The session's operator process; under `make kind-e2e`, the chart's, already running."""
    if not KIND_E2E:
        request.getfixturevalue("operator")


@pytest.fixture(scope="module")
def kubectl_binary(request: pytest.FixtureRequest) -> Path:
    if os.environ.get("KUBETASK_E2E_KUBECTL"):
        return Path(os.environ["KUBETASK_E2E_KUBECTL"])
    return Path(request.getfixturevalue("bin_dir")) / "kubectl"


class Kubectl:
    def __init__(self, binary: Path, kubeconfig: Path, namespace: str) -> None:
        self.base = [str(binary), "--kubeconfig", str(kubeconfig), "-n", namespace]

    def __call__(self, *args: str, input: str | None = None) -> str:
        done = subprocess.run([*self.base, *args], input=input, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout

    def apply(self, *docs: dict[str, Any]) -> None:
        # JSON, not YAML: kubectl reads YAML 1.1, where a key like `n` would become false.
        self("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(docs)}))


def on_real_node(path: Path, **changes: Any) -> dict[str, Any]:
    """An example TaskType, sent to the real node (and changed as a test needs)."""
    tasktype: dict[str, Any] = yaml.safe_load(path.read_text())
    tasktype["spec"].update(nodeSelector=NODE_SELECTOR, tolerations=[TOLERATION])
    name = changes.pop("name", None)
    if name:
        tasktype["metadata"]["name"] = name
    tasktype["spec"].update(changes)
    return tasktype


def task(name: str, type_: str, parameters: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kubetask.io/v1alpha1", "kind": "Task", "metadata": {"name": name},
            "spec": {"type": type_, "parameters": parameters, **spec}}


@pytest.fixture
def kubectl(real_node: list[str], kubectl_binary: Path, kubeconfig: Path, kube: KubeSync, namespace: str) -> Kubectl:
    ctl = Kubectl(kubectl_binary, kubeconfig, namespace)
    ctl("apply", "-f", str(RBAC))
    apply_queue(kube, namespace, "default", maxRunning=10)
    ctl.apply(*(on_real_node(EXAMPLES / name / "tasktype.yaml") for name in ("echo", "flaky", "progress")))
    return ctl


def the_pod(kube: KubeSync, namespace: str, name: str) -> dict[str, Any]:
    pods = pods_of(kube, namespace, name)
    assert pods, f"Task {name} has no pod"
    return sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"])[-1]


def terminated(pod: dict[str, Any]) -> dict[str, Any]:
    return dict(pod["status"]["containerStatuses"][0]["state"]["terminated"])


def ran_for_real(kube: KubeSync, pod: dict[str, Any]) -> None:
    node = kube.get(core_path("nodes", name=pod["spec"]["nodeName"]))
    assert node["metadata"]["labels"].get(NODE_KIND) == "real", pod["spec"]["nodeName"]
    assert pod["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")


class LogFollower:
    """`kubectl logs -f` of a Task's newest pod, read by a thread: what the handler prints reaches
    the test through the API server and the kubelet, to the container's end (SIGTERM included)."""

    def __init__(self, kubectl: Kubectl, kube: KubeSync, namespace: str, task_name: str) -> None:
        pod = the_pod(kube, namespace, task_name)["metadata"]["name"]
        self.process = subprocess.Popen([*kubectl.base, "logs", "-f", pod, "-c", "handler"],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.seen = ""
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self.lock:
                self.seen += line

    def until(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if text in self.seen:
                    return self.seen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} not in the container log within {timeout}s; log:\n{self.seen}")

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


class Gateway:
    """The gateway as a real process, limited to the test's namespace, and a ServiceAccount token
    that may submit Tasks and read their pods' logs there (tests/e2e/gateway_harness.py)."""

    def __init__(self, kube: KubeSync, kubeconfig: Path, namespace: str, tmp_path: Path) -> None:
        sys.path.insert(0, str(REPO / "tests" / "e2e"))
        from gateway_harness import TASK_RULES, GatewayProcess, service_account_token

        self.namespace = namespace
        self.token = service_account_token(kube, namespace, "real-submitter", TASK_RULES)
        self.process = GatewayProcess(kubeconfig, tmp_path, "real-node-gateway", KUBETASK_GATEWAY_NAMESPACES=f'["{namespace}"]')

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        with self.process.client(self.token) as http:
            response = http.post(f"/api/v1/namespaces/{self.namespace}/{path}", json=body)
        assert response.status_code in (200, 201, 202), response.text
        return dict(response.json())


@pytest.fixture
def gateway(kube: KubeSync, kubeconfig: Path, namespace: str, tmp_path: Path, kubectl: Kubectl) -> Iterator[Gateway]:
    running = Gateway(kube, kubeconfig, namespace, tmp_path)
    running.process.start()
    try:
        yield running
    finally:
        running.process.stop()


class Submitter(Protocol):
    how: str

    def submit(self, name: str, spec: dict[str, Any]) -> None: ...

    def cancel(self, name: str) -> None: ...


class ByKubectl:
    how = "kubectl"

    def __init__(self, kubectl: Kubectl) -> None:
        self.kubectl = kubectl

    def submit(self, name: str, spec: dict[str, Any]) -> None:
        self.kubectl.apply({"apiVersion": "kubetask.io/v1alpha1", "kind": "Task", "metadata": {"name": name}, "spec": spec})

    def cancel(self, name: str) -> None:
        self.kubectl("patch", "task", name, "--type", "merge", "-p", '{"spec": {"cancel": true}}')


class ByGateway:
    how = "gateway"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def submit(self, name: str, spec: dict[str, Any]) -> None:
        self.gateway.post("tasks", {"name": name, "spec": spec})

    def cancel(self, name: str) -> None:
        self.gateway.post(f"tasks/{name}:cancel")


@pytest.fixture(params=["kubectl", "gateway"])
def submitter(request: pytest.FixtureRequest, kubectl: Kubectl) -> Submitter:
    """Each contract test twice: `kubectl apply` / `kubectl patch`, and the gateway's REST API."""
    if request.param == "kubectl":
        return ByKubectl(kubectl)
    return ByGateway(request.getfixturevalue("gateway"))


def spec(type_: str, parameters: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"type": type_, "parameters": parameters, **more}


def test_echo_result_from_the_termination_message(kube: KubeSync, namespace: str, submitter: Submitter) -> None:
    example = yaml.safe_load((EXAMPLES / "echo" / "example-task.yaml").read_text())
    submitter.submit("echo-example", example["spec"])
    done = wait_phase(kube, namespace, "echo-example", "Succeeded", timeout=120)
    assert done["status"]["result"] == {"echo": {"message": "HELLO, KUBETASK", "tags": ["DEMO", "ECHO"]},
                                        "task": "echo-example", "run": 0}
    pod = the_pod(kube, namespace, "echo-example")
    ran_for_real(kube, pod)
    assert terminated(pod)["exitCode"] == 0 and terminated(pod)["reason"] == "Completed"
    if submitter.how == "gateway":  # the gateway's TokenReview named the submitter
        submitted_by = done["metadata"]["annotations"].get("kubetask.io/submitted-by")
        assert submitted_by == f"system:serviceaccount:{namespace}:real-submitter", done["metadata"]


def test_parameters_are_read_from_the_downward_api_file(kube: KubeSync, namespace: str, kubectl: Kubectl,
                                                       submitter: Submitter) -> None:
    # The variable is unset before the SDK starts: the parameters can only come from the file
    # the kubelet projects from the pod's annotation (/etc/kubetask/parameters.json).
    kubectl.apply(on_real_node(EXAMPLES / "echo" / "tasktype.yaml", name="echo-file", command=[
        "/bin/sh", "-c", "unset KUBETASK_PARAMETERS; exec python -m kubetask_sdk /opt/kubetask/handler/handler.py"]))
    parameters = {"message": "from the file", "tags": ["a", "b"], "data": {"n": 1, "nested": {"ok": True}}}
    submitter.submit("from-file", spec("echo-file", parameters))
    done = wait_phase(kube, namespace, "from-file", "Succeeded", timeout=120)
    assert done["status"]["result"]["echo"] == parameters
    ran_for_real(kube, the_pod(kube, namespace, "from-file"))


def test_non_retryable_exit_code_fails_without_a_retry(kube: KubeSync, namespace: str, submitter: Submitter) -> None:
    submitter.submit("fatal", spec("flaky", {"mode": "fatal", "message": "the input is corrupt"}, retries=2))
    done = wait_phase(kube, namespace, "fatal", "Failed", timeout=120, reason="PodFailurePolicy")
    status = done["status"]
    assert status["attempts"] == 1
    assert status["lastFailure"]["exitCode"] == 65
    assert json.loads(status["lastFailure"]["message"]) == {"error": "the input is corrupt", "type": "NonRetryableError"}
    pods = pods_of(kube, namespace, "fatal")
    assert len(pods) == 1, "a non-retryable exit code must not be retried"
    ran_for_real(kube, pods[0])
    assert terminated(pods[0])["exitCode"] == 65


def test_retryable_failure_succeeds_on_a_retry(kube: KubeSync, namespace: str, submitter: Submitter) -> None:
    # The first attempt fails (exit 1) before failUntil; the Job controller retries 10 s later,
    # after it, and that attempt succeeds.
    until = (datetime.now(timezone.utc) + timedelta(seconds=6)).isoformat()
    submitter.submit("flaky-retry", spec("flaky", {"mode": "retryable", "failUntil": until}, retries=2))
    done = wait_phase(kube, namespace, "flaky-retry", "Succeeded", timeout=150)
    assert done["status"]["attempts"] == 2
    assert done["status"]["result"] == {"mode": "retryable", "run": 0, "ok": True, "failedUntil": until}
    first, second = sorted(pods_of(kube, namespace, "flaky-retry"), key=lambda p: p["metadata"]["creationTimestamp"])
    for pod in (first, second):
        ran_for_real(kube, pod)
    assert terminated(first)["exitCode"] == 1
    assert json.loads(terminated(first)["message"])["type"] == "FlakyError"
    assert terminated(second)["exitCode"] == 0


def test_timeout_ends_a_handler_that_runs_forever(kube: KubeSync, namespace: str, kubectl: Kubectl, submitter: Submitter) -> None:
    submitter.submit("forever", spec("progress", {"steps": 1000, "sleepSeconds": 60}, timeoutSeconds=8, retries=0))
    wait_phase(kube, namespace, "forever", "Running", timeout=120, reason="PodRunning")
    log = LogFollower(kubectl, kube, namespace, "forever")
    try:
        started = time.monotonic()
        done = wait_phase(kube, namespace, "forever", "Failed", timeout=60, reason="DeadlineExceeded")
        assert time.monotonic() - started < 40
        assert done["status"]["lastFailure"]["reason"] == "DeadlineExceeded"
        # The Job controller deleted the pod at the deadline: the kubelet sent SIGTERM, and the
        # handler's shutdown hook ran.
        seen = log.until("progress: shutting down after 0 step(s)", timeout=30)
        assert "SIGTERM received: running" in seen, seen
    finally:
        log.close()


def test_cancel_sends_sigterm_and_the_cleanup_hook_runs(kube: KubeSync, namespace: str, kubectl: Kubectl, submitter: Submitter) -> None:
    submitter.submit("cancel-me", spec("progress", {"steps": 1000, "sleepSeconds": 1}, retries=0))
    wait_phase(kube, namespace, "cancel-me", "Running", timeout=120, reason="PodRunning")
    log = LogFollower(kubectl, kube, namespace, "cancel-me")
    try:
        log.until("running progress", timeout=30)
        time.sleep(2.5)  # a few steps done
        cancelled_at = time.monotonic()
        submitter.cancel("cancel-me")
        wait_phase(kube, namespace, "cancel-me", "Cancelled", timeout=60)
        seen = log.until("progress: shutting down after", timeout=30)
    finally:
        log.close()
    # SIGTERM reached the handler: the SDK says so, the hook ran, well before the 30 s grace
    # period would have ended in SIGKILL.
    assert "SIGTERM received: running" in seen, seen
    assert time.monotonic() - cancelled_at < 25
    steps = int(seen.split("progress: shutting down after ", 1)[1].split(" ", 1)[0])
    assert steps >= 1


def test_memory_limit_ends_in_oomkilled(kube: KubeSync, namespace: str, kubectl: Kubectl, submitter: Submitter) -> None:
    # 256 MiB written (bytes * n touches every page) under a 64Mi limit: the kernel's OOM killer.
    kubectl.apply(on_real_node(EXAMPLES / "echo" / "tasktype.yaml", name="hog", command=[
        "python", "-c", "import time; hog = b'x' * (256 << 20); time.sleep(5)"]))
    submitter.submit("hog", spec("hog", {"message": "x"}, resources={"memory": "64Mi"}, retries=0))
    done = wait_phase(kube, namespace, "hog", "Failed", timeout=120)
    pod = the_pod(kube, namespace, "hog")
    ran_for_real(kube, pod)
    assert terminated(pod)["reason"] == "OOMKilled"
    assert terminated(pod)["exitCode"] == 137
    assert done["status"]["lastFailure"]["exitCode"] == 137
    assert done["status"]["lastFailure"]["reason"] == "OOMKilled"


def test_cpu_burn_runs_under_a_real_cpu_limit(kube: KubeSync, namespace: str, kubectl: Kubectl) -> None:
    kubectl.apply(on_real_node(EXAMPLES / "cpu-burn" / "tasktype.yaml"))
    kubectl.apply(task("burn", "cpu-burn", {"algorithm": "sha256", "seconds": 1}, resources={"cpu": "500m"}))
    done = wait_phase(kube, namespace, "burn", "Succeeded", timeout=120)
    result = done["status"]["result"]
    assert result["algorithm"] == "sha256" and result["iterations"] > 0 and result["elapsedSeconds"] >= 1
    pod = the_pod(kube, namespace, "burn")
    ran_for_real(kube, pod)
    assert pod["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "500m"


def test_progress_reported_from_inside_the_pod(kube: KubeSync, namespace: str, kubectl: Kubectl, submitter: Submitter) -> None:
    """The SDK's progress reports reach the API server from the container: on the local node
    through the pod's one route, to the `kubernetes` Service's address, relayed on the node
    (hack/realnode.py); with the pod's own projected ServiceAccount token (kubetask-handler) and
    the cluster's CA to verify the server."""
    submitter.submit("reporting", spec("progress", {"steps": 4, "sleepSeconds": 1}, retries=0))
    percents: list[int] = []

    def finished() -> dict[str, Any] | None:
        current = get_task(kube, namespace, "reporting")
        progress = (current.get("status") or {}).get("progress") or {}
        if "percent" in progress and progress["percent"] not in percents[-1:]:
            percents.append(progress["percent"])
        return current if (current.get("status") or {}).get("phase") in ("Succeeded", "Failed") else None

    done = wait_for(finished, timeout=120, interval=0.2, what="the Task to finish")
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert done["status"]["progress"]["percent"] == 100 and done["status"]["progress"]["message"] == "step 4/4"
    assert len(percents) >= 2 and percents == sorted(percents), percents  # several reports, in order
    pod = the_pod(kube, namespace, "reporting")
    ran_for_real(kube, pod)
    log = kubectl("logs", pod["metadata"]["name"], "-c", "handler")
    assert "warning" not in log, log  # no "progress reports are off" nor a failed request


def test_logs_through_the_api_server_reach_kubectl_the_cli_the_gateway_and_the_dashboard(
        kube: KubeSync, namespace: str, kubectl: Kubectl, gateway: Gateway, tmp_path: Path) -> None:
    """The handler's own output, read the way users read it: each of these asks the API server,
    which dials the kubelet at the node's address (hack/realnode.py) with its client certificate."""
    from browser_harness import Browser, find_chromium
    from gateway_harness import Cli

    kubectl.apply(task("talk", "progress", {"steps": 3, "sleepSeconds": 0.2}, retries=0))
    wait_phase(kube, namespace, "talk", "Succeeded", timeout=120)
    pod = the_pod(kube, namespace, "talk")
    ran_for_real(kube, pod)
    said = f"kubetask-sdk: running progress for task {namespace}/talk (run 0)"

    assert said in kubectl("logs", pod["metadata"]["name"], "-c", "handler")

    with gateway.process.client(gateway.token) as http:
        log = http.get(f"/api/v1/namespaces/{namespace}/tasks/talk/log")
        assert log.status_code == 200, log.text
        assert said in log.text and log.headers["X-Kubetask-Pod"] == pod["metadata"]["name"]

    cli = Cli(gateway.process, gateway.token, tmp_path)("logs", "talk")
    assert cli.returncode == 0 and said in cli.stdout, cli.stdout + cli.stderr

    with tempfile.TemporaryDirectory(prefix="kubetask-chromium-", ignore_cleanup_errors=True) as workdir:
        browser = Browser(find_chromium(), Path(workdir))
        try:
            browser.open(f"{gateway.process.url}/ui/")
            browser.wait("!document.querySelector('#login').hidden", "the login box")
            browser.type("#login-token", gateway.token)
            browser.click("#login-submit")
            browser.wait("document.querySelector('#login').hidden", "signed in")
            browser.evaluate("location.hash = '#/tasks/talk'")
            browser.wait(f"document.querySelector('#task-logs').textContent.includes({json.dumps(said)})",
                         "the handler's log in the dashboard's log panel")
            assert not browser.evaluate("document.querySelector('#logs-notice .notice')"), browser.text("#logs-notice")
            browser.screenshot("task-logs-real-node")
        finally:
            browser.close()


def test_the_gateway_follows_a_running_handlers_log(kube: KubeSync, namespace: str, gateway: Gateway) -> None:
    """`follow=true` streams the log while the handler runs, through a cancel's SIGTERM, to its end."""
    by_gateway = ByGateway(gateway)
    by_gateway.submit("chatty", spec("progress", {"steps": 1000, "sleepSeconds": 1}, retries=0))
    wait_phase(kube, namespace, "chatty", "Running", timeout=120, reason="PodRunning")
    seen, cancelled = "", False
    with gateway.process.client(gateway.token) as http:
        with http.stream("GET", f"/api/v1/namespaces/{namespace}/tasks/chatty/log", params={"follow": "true"},
                         timeout=60) as stream:
            assert stream.status_code == 200
            for chunk in stream.iter_text():
                seen += chunk
                if "running progress" in seen and not cancelled:  # the stream is live: now cancel
                    by_gateway.cancel("chatty")
                    cancelled = True
                if "progress: shutting down after" in seen:
                    break
    assert "SIGTERM received: running" in seen, seen
    wait_phase(kube, namespace, "chatty", "Cancelled", timeout=60)
