"""TaskSchedules through the gateway, end to end: gateway + operator + the local control plane.

A schedule is created through the gateway with a real ServiceAccount token, triggered by hand (the
Task carries the schedule's label and owner, and runs to Succeeded), suspended and resumed; a
malformed schedule is refused 422 naming spec.schedule, by the gateway and by the API server's own
CEL rule. Nothing here waits for a cron-fired run: the schedule fires at 03:00 Berlin time only.
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import httpx
import pytest

from gateway_harness import GatewayProcess, TASK_RULES, service_account_token, wait_for
from kubetask.kube import ApiError, KubeSync, tasks_path

pytestmark = pytest.mark.timeout(120)
SCHEDULE_RULES = [
    {"apiGroups": ["kubetask.io"], "resources": ["taskschedules"], "verbs": ["get", "list", "create", "patch"]},
    *TASK_RULES,
]
READ_ONLY = [{"apiGroups": ["kubetask.io"], "resources": ["taskschedules"], "verbs": ["get", "list"]}]
TEMPLATE = {"metadata": {"labels": {"report": "nightly"},
                         "annotations": {"sim.kubetask.io/run-for": "1s", "sim.kubetask.io/message": '{"rows": 12}'}},
            "spec": {"type": "sim", "parameters": {"n": 4}}}


def base(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}"


def error_of(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text[:2000]
    error = response.json()["error"]
    assert set(error) == {"status", "reason", "message", "details"} and error["status"] == status
    return dict(error)


def test_schedule_create_trigger_suspend_resume(gateway: GatewayProcess, kube: KubeSync, sim_namespace: str) -> None:
    ns = sim_namespace
    token = service_account_token(kube, ns, "scheduler", SCHEDULE_RULES)
    user = f"system:serviceaccount:{ns}:scheduler"
    with gateway.client(token) as http:
        created = http.post(f"{base(ns)}/taskschedules", json={
            "name": "nightly", "labels": {"app": "reports"},
            "spec": {"schedule": "0 3 * * *", "timeZone": "Europe/Berlin", "concurrencyPolicy": "Forbid", "taskTemplate": TEMPLATE}})
        assert created.status_code == 201, created.text
        view = created.json()
        assert view["submittedBy"] == user and view["spec"]["schedule"] == "0 3 * * *" and len(view["nextRuns"]) == 5
        berlin = [datetime.fromisoformat(r.replace("Z", "+00:00")).astimezone(ZoneInfo("Europe/Berlin")) for r in view["nextRuns"]]
        assert {(t.hour, t.minute) for t in berlin} == {(3, 0)} and berlin[0] > datetime.now(timezone.utc)
        stored = kube.get(tasks_path(ns, "nightly", plural="taskschedules"))
        assert stored["metadata"]["annotations"]["kubetask.io/submitted-by"] == user
        assert stored["metadata"]["uid"] == view["uid"]

        # The API server's own refusal, forwarded: the name is taken.
        again = http.post(f"{base(ns)}/taskschedules", json={"name": "nightly", "spec": {"schedule": "@daily", "taskTemplate": TEMPLATE}})
        assert error_of(again, 409)["reason"] == "AlreadyExists"

        listed = http.get(f"{base(ns)}/taskschedules")
        assert listed.status_code == 200 and [s["name"] for s in listed.json()["items"]] == ["nightly"]

        # Trigger now: a Task from the template, owned by the schedule, recorded as the caller's, that runs.
        triggered = http.post(f"{base(ns)}/taskschedules/nightly:trigger")
        assert triggered.status_code == 201, triggered.text
        name = triggered.json()["name"]
        assert name.startswith("nightly-m") and triggered.json()["submittedBy"] == user
        task = kube.get(tasks_path(ns, name))
        meta = task["metadata"]
        assert meta["labels"] == {"report": "nightly", "kubetask.io/schedule": "nightly"}
        assert meta["annotations"]["kubetask.io/trigger"] == "manual" and meta["annotations"]["kubetask.io/submitted-by"] == user
        assert [(o["kind"], o["name"], o["uid"]) for o in meta["ownerReferences"]] == [("TaskSchedule", "nightly", view["uid"])]
        assert task["spec"]["parameters"] == {"n": 4}

        def finished() -> dict[str, object] | None:
            answer = http.get(f"{base(ns)}/tasks/{name}").json()
            return answer if answer.get("finished") else None

        done = wait_for(finished, timeout=60, interval=0.5, what=f"the triggered Task {name} to finish")
        assert done["phase"] == "Succeeded" and done["result"] == {"rows": 12}, done

        # Suspend and resume: spec.suspend, and no next runs meanwhile.
        suspended = http.post(f"{base(ns)}/taskschedules/nightly:suspend")
        assert suspended.status_code == 200, suspended.text
        assert suspended.json()["spec"]["suspend"] is True and suspended.json()["nextRuns"] == []
        assert kube.get(tasks_path(ns, "nightly", plural="taskschedules"))["spec"]["suspend"] is True
        assert http.get(f"{base(ns)}/taskschedules/nightly").json()["nextRuns"] == []
        resumed = http.post(f"{base(ns)}/taskschedules/nightly:resume")
        assert resumed.status_code == 200 and resumed.json()["spec"]["suspend"] is False and len(resumed.json()["nextRuns"]) == 5
        assert kube.get(tasks_path(ns, "nightly", plural="taskschedules"))["spec"]["suspend"] is False

        assert error_of(http.post(f"{base(ns)}/taskschedules/ghost:trigger"), 404)["reason"] == "NotFound"


def test_a_malformed_schedule_is_refused_naming_the_field(gateway: GatewayProcess, kube: KubeSync, sim_namespace: str) -> None:
    ns = sim_namespace
    token = service_account_token(kube, ns, "scheduler", SCHEDULE_RULES)
    with gateway.client(token) as http:
        refused = http.post(f"{base(ns)}/taskschedules", json={"name": "bad", "spec": {"schedule": "61 * * * *", "taskTemplate": TEMPLATE}})
        error = error_of(refused, 422)
        assert [d["field"] for d in error["details"]] == ["spec.schedule"], error  # type: ignore[union-attr]
        zone = http.post(f"{base(ns)}/taskschedules", json={"name": "bad", "spec": {"schedule": "@daily", "timeZone": "Mars/Olympus",
                                                                                     "taskTemplate": TEMPLATE}})
        assert [d["field"] for d in error_of(zone, 422)["details"]] == ["spec.timeZone"]  # type: ignore[union-attr]
    # The API server refuses it on its own (CEL), naming the field, for clients that skip the gateway.
    with pytest.raises(ApiError) as refusal:
        kube.create(tasks_path(ns, plural="taskschedules"), {
            "apiVersion": "kubetask.io/v1alpha1", "kind": "TaskSchedule", "metadata": {"name": "bad"},
            "spec": {"schedule": "61 * * * *", "taskTemplate": TEMPLATE}})
    assert refusal.value.status == 422
    causes = (refusal.value.body.get("details") or {}).get("causes") or []
    assert "spec.schedule" in [str(c.get("field", "")).removeprefix(".") for c in causes], refusal.value.body
    assert kube.get(tasks_path(ns, plural="taskschedules"))["items"] == []


def test_each_schedule_action_is_authorized_by_the_cluster(gateway: GatewayProcess, kube: KubeSync, sim_namespace: str) -> None:
    ns = sim_namespace
    kube.create(tasks_path(ns, plural="taskschedules"), {
        "apiVersion": "kubetask.io/v1alpha1", "kind": "TaskSchedule", "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 3 * * *", "taskTemplate": TEMPLATE}})
    reader = service_account_token(kube, ns, "reader", READ_ONLY)
    with gateway.client(reader) as http:
        assert http.get(f"{base(ns)}/taskschedules/nightly").status_code == 200
        denied = error_of(http.post(f"{base(ns)}/taskschedules/nightly:trigger"), 403)
        assert "may not create tasks.kubetask.io" in str(denied["message"])  # get taskschedules alone is not enough
        assert "may not patch taskschedules.kubetask.io" in str(error_of(http.post(f"{base(ns)}/taskschedules/nightly:suspend"), 403)["message"])
    submitter = service_account_token(kube, ns, "submitter", TASK_RULES)  # may create Tasks, not read schedules
    with gateway.client(submitter) as http:
        assert "may not get taskschedules.kubetask.io" in str(error_of(http.post(f"{base(ns)}/taskschedules/nightly:trigger"), 403)["message"])
        assert "may not list taskschedules.kubetask.io" in str(error_of(http.get(f"{base(ns)}/taskschedules"), 403)["message"])
    assert [t["metadata"]["name"] for t in kube.get(tasks_path(ns))["items"]] == []
