"""The REST gateway end to end: gateway + operator + the local control plane (kwok-simulated pods).

Callers authenticate with real ServiceAccount tokens (TokenRequest) and the cluster's RBAC decides
(TokenReview + SubjectAccessReview). Pods are driven by sim.kubetask.io annotations, which the
gateway accepts as ordinary user annotations and the operator copies onto the handler pod.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from gateway_harness import (
    GatewayProcess, read_events, register, service_account_token, wait_for,
)
from kubetask.kube import Connection, KubeSync, tasks_path

pytestmark = pytest.mark.timeout(120)
RUN_FOR = "sim.kubetask.io/run-for"
EXIT_CODE = "sim.kubetask.io/exit-code"
MESSAGE = "sim.kubetask.io/message"
ORDER = ["Pending", "Queued", "Running", "Succeeded", "Failed", "Cancelled"]


def base(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}"


def submit(http: httpx.Client, namespace: str, annotations: dict[str, str] | None = None, expect: int = 201, **body: Any) -> dict[str, Any]:
    spec = {"type": "sim", **body.pop("spec", {})}
    response = http.post(f"{base(namespace)}/tasks", json={"spec": spec, "annotations": annotations or {}, **body})
    assert response.status_code == expect, response.text[:2000]
    return dict(response.json())


def get(http: httpx.Client, namespace: str, name: str) -> dict[str, Any]:
    response = http.get(f"{base(namespace)}/tasks/{name}")
    assert response.status_code == 200, response.text[:2000]
    return dict(response.json())


def wait_phase(http: httpx.Client, namespace: str, name: str, *phases: str, timeout: float = 60, finished: bool | None = None) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        task = get(http, namespace, name)
        if task["phase"] in phases and (finished is None or task["finished"] is finished):
            return task
        return None

    return dict(wait_for(probe, timeout=timeout, interval=0.25, what=f"Task {name} in {phases}"))


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:2000]
    error = response.json()["error"]
    assert set(error) == {"status", "reason", "message", "details"} and error["status"] == status
    return dict(error)


def test_submit_runs_to_success_with_a_result(gateway: GatewayProcess, kube: KubeSync, sim_namespace: str, token: str) -> None:
    ns = sim_namespace
    with gateway.client(token) as http:
        created = submit(http, ns, {RUN_FOR: "1s", MESSAGE: '{"answer": 42}'}, spec={"parameters": {"n": 7}}, labels={"app": "demo"})
        name = created["name"]
        assert name.startswith("sim-") and created["phase"] == "Pending"
        done = wait_phase(http, ns, name, "Succeeded", "Failed", "Cancelled")
        assert done["phase"] == "Succeeded", done
        assert done["finished"] and done["result"] == {"answer": 42}
        assert done["attempts"] == 1 and done["startTime"] and done["completionTime"] and done["jobName"]
        assert done["submittedBy"] == f"system:serviceaccount:{ns}:submitter"
        conditions = {c["type"]: c["status"] for c in done["conditions"]}
        assert conditions["Succeeded"] == conditions["Finished"] == "True"
        stored = kube.get(tasks_path(ns, name))  # the API server holds what the gateway said
        assert stored["metadata"]["annotations"]["kubetask.io/submitted-by"] == done["submittedBy"]
        assert stored["metadata"]["labels"] == {"app": "demo"} and stored["spec"]["parameters"] == {"n": 7}

        listed = http.get(f"{base(ns)}/tasks", params={"phase": "Succeeded", "labelSelector": "app=demo"}).json()
        assert [t["name"] for t in listed["items"]] == [name]

        # kwok simulates containers without logs: a clear, structured answer instead of an empty body.
        log = http.get(f"{base(ns)}/tasks/{name}/log")
        error = error_of(log, 502)
        assert error["reason"] == "LogsUnavailable" and "kwok" in error["message"]


def test_invalid_submissions_are_rejected_before_anything_is_created(gateway: GatewayProcess, kube: KubeSync, sim_namespace: str,
                                                                     token: str) -> None:
    ns = sim_namespace
    with gateway.client(token) as http:
        cases = [({"spec": {"type": "nope"}}, 422, "spec.type"),
                 ({"spec": {"type": "sim", "parameters": {"n": 1000}}}, 422, "spec.parameters.n"),
                 ({"spec": {"type": "sim", "resources": {"cpu": "8"}}}, 422, "spec.resources.cpu"),
                 ({"spec": {"type": "sim", "typo": 1}}, 422, "spec.typo"),
                 ({"spec": {"type": "sim"}, "labels": {"kubetask.io/run": "7"}}, 422, "labels[kubetask.io/run]"),
                 ({"spec": {"type": "sim", "parameters": {"blob": "x" * 40_000}}}, 413, "spec.parameters")]
        for body, status, field in cases:
            error = error_of(http.post(f"{base(ns)}/tasks", json=body), status)
            assert field in [d["field"] for d in error["details"]], error
        error_of(http.post(f"{base(ns)}/tasks", content=b"{" * 10, headers={"content-type": "application/json"}), 400)
        error_of(http.post(f"{base(ns)}/tasks", content=b" " * (1024 * 1024 + 1), headers={"content-type": "application/json"}), 413)
    assert kube.get(tasks_path(ns))["items"] == []


def test_failure_reason_then_retry_runs_again(gateway: GatewayProcess, sim_namespace: str, token: str) -> None:
    ns = sim_namespace
    with gateway.client(token) as http:
        name = submit(http, ns, {EXIT_CODE: "3", MESSAGE: "disk full"}, spec={"retries": 0})["name"]
        failed = wait_phase(http, ns, name, "Failed", "Succeeded")
        assert failed["phase"] == "Failed" and failed["finished"]
        assert failed["lastFailure"]["exitCode"] == 3 and failed["lastFailure"]["reason"]
        assert "disk full" in failed["lastFailure"]["message"]
        assert {c["type"]: c["status"] for c in failed["conditions"]}["Stalled"] == "True"

        error_of(http.post(f"{base(ns)}/tasks/{name}:cancel"), 409)  # already finished
        stale = http.post(f"{base(ns)}/tasks/{name}:retry", json={"resourceVersion": "1"})
        assert error_of(stale, 409)["reason"] == "Conflict"
        retried = http.post(f"{base(ns)}/tasks/{name}:retry", json={"resourceVersion": failed["resourceVersion"]})
        assert retried.status_code == 202, retried.text
        assert retried.json()["spec"]["rerun"] == 1 and not retried.json()["finished"]
        assert error_of(http.post(f"{base(ns)}/tasks/{name}:retry"), 409)["reason"] in ("RerunPending", "NotRetryable")

        # The same simulated failure happens again; the first run is kept in the history.
        again = wait_phase(http, ns, name, "Failed", "Succeeded", finished=True)
        assert again["run"] == 1 and again["phase"] == "Failed"
        assert [(h["run"], h["phase"]) for h in again["history"]] == [(0, "Failed")]


def test_cancel_a_running_task_then_retry_it(gateway: GatewayProcess, sim_namespace: str, token: str) -> None:
    ns = sim_namespace
    with gateway.client(token) as http:
        name = submit(http, ns, {RUN_FOR: "10m"})["name"]
        wait_phase(http, ns, name, "Running")
        error_of(http.post(f"{base(ns)}/tasks/{name}:retry"), 409)  # running: nothing to retry
        response = http.post(f"{base(ns)}/tasks/{name}:cancel")
        assert response.status_code == 202 and response.json()["spec"]["cancel"] is True
        cancelled = wait_phase(http, ns, name, "Cancelled")
        assert cancelled["finished"] and get(http, ns, name)["name"] == name  # the record stays
        assert error_of(http.post(f"{base(ns)}/tasks/{name}:cancel"), 409)["reason"] == "AlreadyFinished"

        assert http.post(f"{base(ns)}/tasks/{name}:retry").status_code == 202
        rerun = wait_phase(http, ns, name, "Running", finished=False)
        assert rerun["run"] == 1 and rerun["history"][0]["phase"] == "Cancelled"
        assert http.post(f"{base(ns)}/tasks/{name}:cancel").status_code == 202
        wait_phase(http, ns, name, "Cancelled", finished=True)


def test_idempotent_resubmission_returns_the_same_task(gateway: GatewayProcess, kube: KubeSync, sim_namespace: str, token: str) -> None:
    ns = sim_namespace
    body = {"spec": {"type": "sim", "parameters": {"n": 1}}, "annotations": {RUN_FOR: "1s"}}
    with gateway.client(token) as http:
        first = http.post(f"{base(ns)}/tasks", json=body, headers={"Idempotency-Key": "invoice-2024-0042"})
        second = http.post(f"{base(ns)}/tasks", json=body, headers={"Idempotency-Key": "invoice-2024-0042"})
        assert (first.status_code, second.status_code) == (201, 200), second.text
        assert first.json()["name"] == second.json()["name"] and first.json()["uid"] == second.json()["uid"]
        changed = http.post(f"{base(ns)}/tasks", json={**body, "spec": {"type": "sim", "parameters": {"n": 2}}},
                            headers={"Idempotency-Key": "invoice-2024-0042"})
        assert error_of(changed, 409)["reason"] == "IdempotencyKeyReused"
    assert len(kube.get(tasks_path(ns))["items"]) == 1


def test_batch_with_one_invalid_item_creates_nothing(gateway: GatewayProcess, kube: KubeSync, sim_namespace: str, token: str) -> None:
    ns = sim_namespace
    good = {"spec": {"type": "sim", "parameters": {"n": 1}}, "annotations": {RUN_FOR: "1s"}}
    with gateway.client(token) as http:
        bad = http.post(f"{base(ns)}/tasks:batch", json={"items": [good, {"spec": {"type": "sim", "parameters": {"n": -1}}}, good]})
        error = error_of(bad, 422)
        assert "items[1].spec.parameters.n" in [d["field"] for d in error["details"]]
        assert [i["status"] for i in bad.json()["items"]] == [424, 422, 424]
        assert kube.get(tasks_path(ns))["items"] == []
        taken = submit(http, ns, {RUN_FOR: "1s"}, name="taken")
        conflict = http.post(f"{base(ns)}/tasks:batch", json={"items": [good, {**good, "name": taken["name"]}]})
        error_of(conflict, 409)  # caught by the API server's dry run: still nothing created
        assert [i["status"] for i in conflict.json()["items"]] == [424, 409]
        assert len(kube.get(tasks_path(ns))["items"]) == 1
        ok = http.post(f"{base(ns)}/tasks:batch", json={"items": [good, {**good, "name": "second"}]})
        assert ok.status_code == 201, ok.text
        assert [i["status"] for i in ok.json()["items"]] == [201, 201] and ok.json()["items"][1]["name"] == "second"
    assert len(kube.get(tasks_path(ns))["items"]) == 3


def raw_watch(connection: Connection, namespace: str, name: str, out: list[dict[str, Any]], opened: threading.Event,
              stop: threading.Event) -> None:
    """Every write to the Task, straight from the API server (the reference the SSE stream is held to)."""
    with httpx.Client(base_url=connection.server, verify=connection.ssl_context(), timeout=httpx.Timeout(5, read=None)) as client:
        params = {"watch": "true", "fieldSelector": f"metadata.name={name}", "timeoutSeconds": "90"}
        with client.stream("GET", tasks_path(namespace), params=params, headers=connection.headers()) as response:
            opened.set()
            for line in response.iter_lines():
                if line:
                    out.append(json.loads(line))
                    status = out[-1]["object"].get("status") or {}
                    if status.get("phase") in ("Succeeded", "Failed", "Cancelled") or stop.is_set():
                        return


def test_event_streams_receive_every_transition(gateway: GatewayProcess, kube: KubeSync, sim_namespace: str, token: str) -> None:
    ns = sim_namespace
    name = "streamed"
    raw: list[dict[str, Any]] = []
    stop, raw_open, list_open = threading.Event(), threading.Event(), threading.Event()
    watcher = threading.Thread(target=raw_watch, args=(kube.connection, ns, name, raw, raw_open, stop), daemon=True)
    watcher.start()
    listed: list[tuple[str, dict[str, Any]]] = []

    def follow_list() -> None:
        with gateway.client(token, timeout=90) as http, http.stream("GET", f"{base(ns)}/tasks:watch", params={"labelSelector": "stream=yes"}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            list_open.set()
            listed.extend(read_events(response, until=lambda ev: ev[-1][1]["finished"]))

    lister = threading.Thread(target=follow_list, daemon=True)
    lister.start()
    assert raw_open.wait(30) and list_open.wait(30)  # both watches are open before the Task exists
    time.sleep(0.2)
    with gateway.client(token, timeout=90) as http:
        submit(http, ns, {RUN_FOR: "2s", MESSAGE: '"done"'}, name=name, labels={"stream": "yes"})
        with http.stream("GET", f"{base(ns)}/tasks/{name}:watch") as response:
            assert response.status_code == 200
            single = read_events(response)  # ends by itself once the Task is finished
    lister.join(60)
    stop.set()
    watcher.join(30)

    assert single and single[-1][0] == "status" and single[-1][1]["phase"] == "Succeeded" and single[-1][1]["result"] == "done"
    phases = [data["phase"] for _, data in listed]
    assert listed[0][0] == "added" and all(kind == "modified" for kind, _ in listed[1:])
    assert phases[0] == "Pending" and phases[-1] == "Succeeded" and "Running" in phases
    assert phases == sorted(phases, key=ORDER.index)
    # Every visible state the API server went through reached the stream, in order, once.
    def visible(obj: dict[str, Any]) -> str:
        meta = obj["metadata"]
        return json.dumps([obj.get("status") or {}, obj["spec"], meta.get("labels"), meta.get("annotations"), meta.get("generation")],
                          sort_keys=True)

    expected: list[str] = []
    for event in raw:
        state = visible(event["object"])
        if not expected or expected[-1] != state:
            expected.append(state)
    assert raw and raw[0]["type"] == "ADDED"
    assert len(listed) == len(expected), (len(listed), len(expected), phases)
    versions = [int(d["resourceVersion"]) for _, d in listed]
    assert versions == sorted(versions)
    single_phases = [d["phase"] for _, d in single]
    assert single_phases == sorted(single_phases, key=ORDER.index) and len(single) <= len(listed)


def test_tokens_are_checked_by_the_cluster(gateway: GatewayProcess, kube: KubeSync, sim_namespace: str, other_namespace: str,
                                           token: str) -> None:
    ns = sim_namespace
    register(kube, other_namespace)
    reader = service_account_token(kube, ns, "reader", [{"apiGroups": ["kubetask.io"], "resources": ["tasks"], "verbs": ["get", "list", "watch"]}])
    nobody = service_account_token(kube, ns, "nobody")
    with gateway.client() as anonymous:
        missing = error_of(anonymous.get(f"{base(ns)}/tasks"), 401)
        assert "Bearer" in missing["message"]
        error_of(anonymous.get(f"{base(ns)}/tasks", headers={"Authorization": "Bearer not-a-token"}), 401)
        error_of(anonymous.post(f"{base(ns)}/tasks", json={"spec": {"type": "sim"}}), 401)
    with gateway.client(reader) as http:
        assert http.get(f"{base(ns)}/tasks").status_code == 200
        denied = error_of(http.post(f"{base(ns)}/tasks", json={"spec": {"type": "sim"}}), 403)
        assert f"system:serviceaccount:{ns}:reader" in denied["message"]
        assert "create tasks.kubetask.io" in denied["message"] and ns in denied["message"]
        error_of(http.get(f"{base(ns)}/tasktypes"), 403)  # tasks only, not tasktypes
    with gateway.client(nobody) as http:
        error_of(http.get(f"{base(ns)}/tasks"), 403)
    with gateway.client(token) as http:
        # Allowed in its own namespace, denied in another one, whatever it asks.
        assert http.get(f"{base(ns)}/tasks").status_code == 200
        assert http.get(f"{base(ns)}/tasktypes").json()["items"][0]["parametersSchema"]["properties"]["n"]["maximum"] == 100
        elsewhere = error_of(http.post(f"{base(other_namespace)}/tasks", json={"spec": {"type": "sim"}}), 403)
        assert other_namespace in elsewhere["message"]
        error_of(http.get(f"{base(other_namespace)}/tasks"), 403)
        error_of(http.get(f"{base(other_namespace)}/tasks:watch"), 403)
    assert kube.get(tasks_path(ns))["items"] == [] and kube.get(tasks_path(other_namespace))["items"] == []


def test_queue_counts_and_a_queued_task(gateway: GatewayProcess, kube: KubeSync, sim_namespace: str, token: str) -> None:
    ns = sim_namespace
    kube.patch(tasks_path(ns, "default", plural="taskqueues"), {"spec": {"paused": True}})
    with gateway.client(token) as http:
        name = submit(http, ns, {RUN_FOR: "1s"})["name"]
        queued = wait_phase(http, ns, name, "Queued")
        assert queued["queue"] == "default"

        def pending() -> dict[str, Any] | None:
            [queue] = http.get(f"{base(ns)}/taskqueues").json()["items"]
            return queue if queue["pending"] == 1 else None

        queue = wait_for(pending, timeout=30, what="TaskQueue status pending=1")
        assert queue["paused"] and queue["running"] == 0
        assert error_of(http.get(f"{base(ns)}/tasks/{name}/log"), 404)["reason"] == "NoPod"
        assert http.post(f"{base(ns)}/tasks/{name}:cancel").status_code == 202
        cancelled = wait_phase(http, ns, name, "Cancelled")
        assert cancelled["attempts"] == 0 and not cancelled["jobName"]


def test_health_readiness_and_metrics(gateway: GatewayProcess) -> None:
    with gateway.client() as http:
        assert http.get("/healthz").json() == {"status": "ok", "checks": {}}
        ready = http.get("/readyz").json()
        assert ready["status"] == "ok" and set(ready["checks"]) == {"apiserver", "cache:tasks", "cache:tasktypes", "cache:taskqueues"}
        metrics = http.get("/metrics").text
        assert "kubetask_gateway_requests_total" in metrics and "kubetask_gateway_cache_objects" in metrics
        assert 'route="/api/v1/namespaces/{namespace}/tasks"' in metrics
        spec = http.get("/openapi.json").json()
        assert spec["info"]["title"] == "kubetask gateway" and http.get("/docs").status_code == 200
