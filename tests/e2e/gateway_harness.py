"""Gateway test helpers: the gateway as a real process, namespaces with a registered type and queue,
callers with real ServiceAccount tokens, and a server-sent-events reader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from harness import free_port, wait_for
from kubetask.kube import KubeSync, core_path, tasks_path


SIM_SCHEMA = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 100}},
              "additionalProperties": False}
TASK_RULES = [
    {"apiGroups": ["kubetask.io"], "resources": ["tasks"], "verbs": ["create", "get", "list", "watch", "patch"]},
    {"apiGroups": ["kubetask.io"], "resources": ["tasktypes", "taskqueues"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
]


class GatewayProcess:
    """`kubetask-gateway` as a subprocess with the admin kubeconfig as its own identity."""

    def __init__(self, kubeconfig: Path, log_dir: Path, name: str, **env: str) -> None:
        self.kubeconfig, self.log_dir, self.name, self.env = kubeconfig, log_dir, name, env
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = free_port()
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "KUBETASK_GATEWAY_HOST": "127.0.0.1",
               "KUBETASK_GATEWAY_PORT": str(self.port), "KUBETASK_GATEWAY_AUTH_CACHE_SECONDS": "2",
               "KUBETASK_GATEWAY_SSE_KEEPALIVE_SECONDS": "2", **self.env}
        log = open(self.log_dir / f"{self.name}.log", "w")
        self.process = subprocess.Popen([sys.executable, "-m", "kubetask.api.main"], env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: self._ready(), timeout=30, what=f"gateway {self.name} ready")

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"gateway exited with {self.process.returncode}; see {self.log_dir / self.name}.log")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def client(self, token: str | None = None, timeout: float = 30) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)


def register(kube: KubeSync, namespace: str, *, paused: bool = False, max_running: int = 10) -> None:
    """TaskType `sim` (parameters {n: 0..100}, at most 2 CPUs and 2 retries) and TaskQueue `default`."""
    kube.create(tasks_path(namespace, plural="tasktypes"), {
        "apiVersion": "kubetask.io/v1alpha1", "kind": "TaskType", "metadata": {"name": "sim"},
        "spec": {"image": "example.invalid/handler:1", "parametersSchema": SIM_SCHEMA,
                 "limits": {"cpu": "2", "retries": 2}, "defaults": {"resources": {"cpu": "100m", "memory": "64Mi"}}}})
    kube.create(tasks_path(namespace, plural="taskqueues"), {
        "apiVersion": "kubetask.io/v1alpha1", "kind": "TaskQueue", "metadata": {"name": "default"},
        "spec": {"maxRunning": max_running, "paused": paused}})


def grant(kube: KubeSync, namespace: str, account_namespace: str, account: str, rules: list[dict[str, Any]], role: str) -> None:
    """A Role with `rules` in `namespace`, bound to ServiceAccount account_namespace/account."""
    kube.create(core_path("roles", namespace, group="rbac.authorization.k8s.io"), {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": role}, "rules": rules})
    kube.create(core_path("rolebindings", namespace, group="rbac.authorization.k8s.io"), {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": account_namespace}]})


def may(kube: KubeSync, user: str, namespace: str, verb: str, resource: str = "tasks", group: str = "kubetask.io") -> bool:
    review = kube.create("/apis/authorization.k8s.io/v1/subjectaccessreviews", {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": ["system:serviceaccounts", "system:authenticated"],
                 "resourceAttributes": {"namespace": namespace, "verb": verb, "group": group, "resource": resource}}})
    return bool(review["status"].get("allowed"))


def service_account_token(kube: KubeSync, namespace: str, account: str, rules: list[dict[str, Any]] | None = None) -> str:
    """A real token (TokenRequest) of a new ServiceAccount, with `rules` granted in its own namespace.
    Waits until the API server's authorizer sees the binding, so the gateway's first review is final."""
    kube.create(core_path("serviceaccounts", namespace), {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}})
    if rules:
        grant(kube, namespace, namespace, account, rules, f"{account}-role")
        first = rules[0]
        user = f"system:serviceaccount:{namespace}:{account}"
        wait_for(lambda: may(kube, user, namespace, first["verbs"][0], first["resources"][0], first["apiGroups"][0]),
                 timeout=20, what="RBAC to take effect")
    request = kube.create(core_path("serviceaccounts", namespace, account) + "/token", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})
    return str(request["status"]["token"])


def read_events(response: httpx.Response, until: Any = None, timeout: float = 60) -> list[tuple[str, dict[str, Any]]]:
    """Parse a text/event-stream response into (event, data) pairs; stop at the end or when until(events) is true."""
    import json

    events: list[tuple[str, dict[str, Any]]] = []
    event, data = "message", ""
    deadline = time.monotonic() + timeout
    for line in response.iter_lines():
        if time.monotonic() > deadline:
            raise AssertionError(f"stream still open after {timeout}s; events so far: {[(e, d.get('phase')) for e, d in events]}")
        if line.startswith(":"):
            continue
        if line == "":
            if data:
                events.append((event, json.loads(data)))
                if until is not None and until(events):
                    break
            event, data = "message", ""
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data += value
    return events


KUBETASK = Path(sys.executable).parent / "kubetask"


class Cli:
    """Runs `kubetask` with its settings from a config file (gateway) and the environment (token);
    the namespace is left to the token (a ServiceAccount token names its own)."""

    def __init__(self, gateway: GatewayProcess, token: str, tmp_path: Path) -> None:
        assert KUBETASK.exists(), f"{KUBETASK} is missing: pip install -e . installs the console script"
        config = tmp_path / "config.yaml"
        config.write_text(f"gateway: {gateway.url}\n")
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("KUBETASK_")},
                    "KUBETASK_CONFIG": str(config), "KUBETASK_TOKEN": token, "NO_COLOR": "1"}

    def __call__(self, *argv: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(KUBETASK), *argv], env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout)

    def start(self, *argv: str) -> subprocess.Popen[str]:
        return subprocess.Popen([str(KUBETASK), *argv], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def task(self, name: str) -> dict[str, Any]:
        done = self("get", name, "-o", "json")
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))
