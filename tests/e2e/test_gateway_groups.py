"""TaskGroups through the gateway, end to end: gateway + operator + the local control plane.

A batch of 5 Tasks is submitted as a group with a callback, with a real ServiceAccount token: the
group is created first, its members carry its label and ownerReference, the operator counts them to
5 succeeded, the group's Finished condition becomes True (so `kubectl wait` returns) and the
callback Task exists, gets the members in its `group` parameter, and Succeeds. Refusals: a
caller without `create taskgroups` (403, nothing created), a taken name (409), a callback that
could never run (422 naming the field).
"""

from __future__ import annotations

import glob
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway_harness import GatewayProcess, TASK_RULES, service_account_token, wait_for
from kubetask.kube import KubeSync, tasks_path

pytestmark = pytest.mark.timeout(240)
GROUP_RULES = [
    *TASK_RULES,
    {"apiGroups": ["kubetask.io"], "resources": ["taskgroups"], "verbs": ["get", "list", "create"]},
]
# The callback's TaskType accepts the `group` parameter the operator adds (sim's schema does not).
COLLECT_SCHEMA = {"type": "object", "properties": {"group": {"type": "object"}, "format": {"type": "string"}},
                  "additionalProperties": False}
RUN_FOR = "sim.kubetask.io/run-for"
MESSAGE = "sim.kubetask.io/message"
CALLBACK = {"when": "Succeeded",
            "taskTemplate": {"metadata": {"labels": {"step": "collect"}, "annotations": {RUN_FOR: "1s", MESSAGE: '{"collected": true}'}},
                             "spec": {"type": "collect", "parameters": {"format": "csv"}}}}


def base(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}"


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:2000]
    error = response.json()["error"]
    assert set(error) == {"status", "reason", "message", "details"} and error["status"] == status
    return dict(error)


def kubectl() -> str:
    found = sorted(glob.glob(str(Path.home() / ".cache" / "kubetask" / "bin" / "*" / "kubectl")))
    assert found, "no kubectl in ~/.cache/kubetask/bin/*/ (hack/build-controlplane.sh builds it)"
    return found[-1]


def register_collect(kube: KubeSync, namespace: str) -> None:
    kube.create(tasks_path(namespace, plural="tasktypes"), {
        "apiVersion": "kubetask.io/v1alpha1", "kind": "TaskType", "metadata": {"name": "collect"},
        "spec": {"image": "example.invalid/collect:1", "parametersSchema": COLLECT_SCHEMA,
                 "defaults": {"resources": {"cpu": "100m", "memory": "64Mi"}}}})


def items(count: int) -> list[dict[str, Any]]:
    return [{"name": f"resize-{i}", "spec": {"type": "sim", "parameters": {"n": i}},
             "annotations": {RUN_FOR: "1s", MESSAGE: json.dumps({"image": i})}} for i in range(count)]


def test_a_batch_as_a_group_with_a_callback_runs_to_finished(gateway: GatewayProcess, kube: KubeSync, sim_namespace: str,
                                                             kubeconfig: Path) -> None:
    ns = sim_namespace
    register_collect(kube, ns)
    token = service_account_token(kube, ns, "grouper", GROUP_RULES)
    user = f"system:serviceaccount:{ns}:grouper"
    with gateway.client(token) as http:
        submitted = http.post(f"{base(ns)}/tasks:batch", json={"items": items(5), "group": {"name": "resize-all", "callback": CALLBACK}})
        assert submitted.status_code == 201, submitted.text
        answer = submitted.json()
        assert [r["status"] for r in answer["items"]] == [201] * 5
        view = answer["group"]
        assert view["name"] == "resize-all" and view["submittedBy"] == user and view["spec"]["size"] == 5
        assert view["progress"]["total"] == 5

        # The group exists before its members and owns them; every member carries its label.
        group = kube.get(tasks_path(ns, "resize-all", plural="taskgroups"))
        assert group["spec"] == {"size": 5, "callback": CALLBACK} and group["metadata"]["uid"] == view["uid"]
        members = kube.get(tasks_path(ns), labelSelector="kubetask.io/group=resize-all")["items"]
        assert sorted(t["metadata"]["name"] for t in members) == [f"resize-{i}" for i in range(5)]
        for member in members:
            assert [(o["kind"], o["name"], o["uid"]) for o in member["metadata"]["ownerReferences"]] == \
                [("TaskGroup", "resize-all", view["uid"])]

        # kubectl wait on the group's Finished condition, as for a Task.
        waited = subprocess.run([kubectl(), "--kubeconfig", str(kubeconfig), "-n", ns, "wait", "--for=condition=Finished",
                                 "taskgroup/resize-all", "--timeout=150s"], capture_output=True, text=True, timeout=170)
        assert waited.returncode == 0, f"kubectl wait: {waited.stdout} {waited.stderr}"

        done = http.get(f"{base(ns)}/taskgroups/resize-all")
        assert done.status_code == 200, done.text
        final = done.json()
        assert final["status"]["counts"]["succeeded"] == 5 and final["status"]["counts"]["total"] == 5, final["status"]
        assert final["finished"] is True and final["phase"] == "Succeeded", final
        assert final["progress"] == {"finished": 5, "total": 5, "percent": 100}
        assert final["status"]["callbackTask"] == "resize-all-callback" and final["status"]["callbackPhase"] == "Succeeded"
        conditions = {c["type"]: c["status"] for c in final["status"]["conditions"]}
        assert conditions["Finished"] == "True" and conditions["Succeeded"] == "True"

        # The callback Task: created by the operator from the template, with the members in `group`, and it Succeeded.
        callback = http.get(f"{base(ns)}/tasks/resize-all-callback")
        assert callback.status_code == 200, callback.text
        task = callback.json()
        assert task["phase"] == "Succeeded" and task["finished"] and task["result"] == {"collected": True}, task
        assert task["labels"]["step"] == "collect" and task["spec"]["type"] == "collect"
        parameters = task["spec"]["parameters"]
        assert parameters["format"] == "csv" and parameters["group"]["name"] == "resize-all"
        assert sorted(m["name"] for m in parameters["group"].get("members") or []) == [f"resize-{i}" for i in range(5)]

        listed = http.get(f"{base(ns)}/taskgroups")
        assert listed.status_code == 200 and [g["name"] for g in listed.json()["items"]] == ["resize-all"]

        # The name is taken now: 409, and nothing more is created.
        again = http.post(f"{base(ns)}/tasks:batch", json={"items": [{"spec": {"type": "sim"}}], "group": {"name": "resize-all"}})
        assert error_of(again, 409)["reason"] == "AlreadyExists"
    assert len(kube.get(tasks_path(ns))["items"]) == 6  # the 5 members and the callback


def test_group_refusals_name_the_field_and_need_their_permission(gateway: GatewayProcess, kube: KubeSync, sim_namespace: str) -> None:
    ns = sim_namespace
    register_collect(kube, ns)
    token = service_account_token(kube, ns, "grouper", GROUP_RULES)
    with gateway.client(token) as http:
        unknown = http.post(f"{base(ns)}/tasks:batch", json={"items": items(2), "group": {
            "name": "g1", "callback": {"taskTemplate": {"spec": {"type": "nope"}}}}})
        assert "group.callback.taskTemplate.spec.type" in [d["field"] for d in error_of(unknown, 422)["details"]]
        no_room = http.post(f"{base(ns)}/tasks:batch", json={"items": items(2), "group": {
            "name": "g2", "callback": {"taskTemplate": {"spec": {"type": "sim"}}}}})  # sim's schema has no room for `group`
        assert "group.callback.taskTemplate.spec.parameters" in [d["field"] for d in error_of(no_room, 422)["details"]]
        created = http.post(f"{base(ns)}/taskgroups", json={"name": "empty", "spec": {"size": 2}})
        assert created.status_code == 201, created.text
        assert created.json()["progress"] == {"finished": 0, "total": 2, "percent": 0} and created.json()["phase"] == "Pending"
    submitter = service_account_token(kube, ns, "submitter", TASK_RULES)  # may create Tasks, not TaskGroups
    with gateway.client(submitter) as http:
        denied = error_of(http.post(f"{base(ns)}/tasks:batch", json={"items": items(2), "group": {"name": "g3"}}), 403)
        assert "may not create taskgroups.kubetask.io" in str(denied["message"])
        assert "may not list taskgroups.kubetask.io" in str(error_of(http.get(f"{base(ns)}/taskgroups"), 403)["message"])
    assert kube.get(tasks_path(ns))["items"] == []
    assert [g["metadata"]["name"] for g in kube.get(tasks_path(ns, plural="taskgroups"))["items"]] == ["empty"]
