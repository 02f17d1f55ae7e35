"""The gateway's TaskSchedule endpoints, in process, against the in-memory API (no cluster): views with
next runs, creation and its 422s, trigger now, suspend and resume, and the RBAC check of each."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from api_fakes import FakeKube, client, seed
from test_api_http import assert_error
from kubetask.api.schemas import TaskScheduleView, TaskView, next_runs
from kubetask.kube import ApiError
from kubetask.resources.scheduling import ANNOTATION_TRIGGER, LABEL_SCHEDULE

NS = "/api/v1/namespaces/team-a"
pytestmark = pytest.mark.timeout(30)
TEMPLATE = {"metadata": {"labels": {"team": "a"}, "annotations": {"sim.kubetask.io/run-for": "1s"}},
            "spec": {"type": "sim", "parameters": {"n": 3}}}


@pytest.fixture
def kube() -> FakeKube:
    fake = FakeKube()
    seed(fake)
    return fake


def schedule_spec(**overrides: Any) -> dict[str, Any]:
    return {"schedule": "0 3 * * *", "timeZone": "Europe/Berlin", "taskTemplate": TEMPLATE, **overrides}


def put_schedule(kube: FakeKube, name: str = "nightly", status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return kube.put("taskschedules", "team-a", name, schedule_spec(**spec), status)


# -- next runs (pure) --------------------------------------------------------------------------

def test_next_runs_are_the_schedules_times_in_its_zone() -> None:
    now = datetime(2026, 3, 28, 12, 0, tzinfo=timezone.utc)  # the night before Berlin's clocks go forward
    runs, message = next_runs(schedule_spec(), now)
    assert message is None and len(runs) == 5
    assert runs[:2] == ["2026-03-29T01:00:00Z", "2026-03-30T01:00:00Z"]  # 03:00 CEST is 01:00 UTC
    berlin = [datetime.fromisoformat(r.replace("Z", "+00:00")).astimezone(ZoneInfo("Europe/Berlin")) for r in runs]
    assert {(t.hour, t.minute) for t in berlin} == {(3, 0)}
    assert next_runs(schedule_spec(schedule="@hourly", timeZone=None), now)[0][0] == "2026-03-28T13:00:00Z"


@pytest.mark.parametrize(("spec", "expected"), [
    (schedule_spec(suspend=True), "suspended"),
    (schedule_spec(schedule="0 0 30 2 *"), "the schedule is invalid"),  # the CRD's pattern admits it; it never fires
    (schedule_spec(timeZone="Mars/Olympus"), "the schedule is invalid"),
    ({"taskTemplate": TEMPLATE}, "spec.schedule is missing"),
])
def test_no_next_runs_say_why(spec: dict[str, Any], expected: str) -> None:
    runs, message = next_runs(spec, datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert runs == [] and message is not None and message.startswith(expected)


# -- reading -----------------------------------------------------------------------------------

async def test_list_and_get_show_spec_status_and_next_runs(kube: FakeKube) -> None:
    put_schedule(kube, "nightly", {"activeCount": 1, "active": [{"name": "nightly-29000000", "uid": "u"}], "missedRuns": 2,
                                   "lastScheduleTime": "2026-01-01T02:00:00Z",
                                   "conditions": [{"type": "Ready", "status": "True", "reason": "Scheduled", "message": "",
                                                   "lastTransitionTime": "2026-01-01T02:00:00Z"}]})
    put_schedule(kube, "paused", suspend=True)
    put_schedule(kube, "broken", schedule="0 0 30 2 *")
    kube.put("taskschedules", "team-b", "elsewhere", schedule_spec())
    async with client(kube) as http:
        listed = await http.get(f"{NS}/taskschedules")
        one = await http.get(f"{NS}/taskschedules/nightly")
        missing = await http.get(f"{NS}/taskschedules/ghost")
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [s["name"] for s in items] == ["broken", "nightly", "paused"]
    by_name = {s["name"]: s for s in items}
    for view in items:
        TaskScheduleView.model_validate(view)
    nightly = one.json()
    assert one.status_code == 200 and nightly == {**by_name["nightly"], "nextRuns": nightly["nextRuns"]}
    assert nightly["spec"]["schedule"] == "0 3 * * *" and nightly["status"]["missedRuns"] == 2
    assert len(nightly["nextRuns"]) == 5 and nightly["nextRunsMessage"] is None
    assert all(r > datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") for r in nightly["nextRuns"])
    assert by_name["paused"]["nextRuns"] == [] and by_name["paused"]["nextRunsMessage"].startswith("suspended")
    assert by_name["broken"]["nextRuns"] == [] and "Bad day-of-month" in by_name["broken"]["nextRunsMessage"]
    assert by_name["paused"]["status"] == {}
    assert_error(missing, 404, "NotFound")
    assert "TaskSchedule 'ghost' not found" in missing.json()["error"]["message"]


async def test_schedules_are_read_from_the_api_server_not_a_cache(kube: FakeKube) -> None:
    async with client(kube) as http:
        put_schedule(kube, "fresh")  # no watch on schedules: the next read sees it
        response = await http.get(f"{NS}/taskschedules/fresh")
    assert response.status_code == 200
    assert ("GET", "/apis/kubetask.io/v1alpha1/namespaces/team-a/taskschedules/fresh", {}) in kube.calls
    assert not [c for c in kube.calls if c[0] == "GET" and "taskschedules" in c[1] and c[2].get("watch")]


# -- creating ----------------------------------------------------------------------------------

async def test_create_stores_the_schedule_with_its_creator(kube: FakeKube) -> None:
    async with client(kube) as http:
        response = await http.post(f"{NS}/taskschedules", json={"name": "nightly", "labels": {"app": "reports"},
                                                                "spec": schedule_spec(concurrencyPolicy="Forbid")})
    assert response.status_code == 201, response.text
    view = response.json()
    TaskScheduleView.model_validate(view)
    assert response.headers["location"] == f"{NS}/taskschedules/nightly"
    assert view["submittedBy"] == "alice" and len(view["nextRuns"]) == 5
    [stored] = kube.created("taskschedules")
    assert stored["metadata"]["labels"] == {"app": "reports"}
    assert stored["metadata"]["annotations"] == {"kubetask.io/submitted-by": "alice"}
    assert stored["spec"]["concurrencyPolicy"] == "Forbid" and stored["spec"]["timeZone"] == "Europe/Berlin"
    assert stored["spec"]["successfulHistoryLimit"] == 3 and stored["spec"]["suspend"] is False  # the model's defaults, explicit


@pytest.mark.parametrize(("spec", "field"), [
    (schedule_spec(schedule="61 * * * *"), "spec.schedule"),
    (schedule_spec(schedule="0 0 30 2 *"), "spec.schedule"),
    (schedule_spec(schedule="every day"), "spec.schedule"),
    (schedule_spec(timeZone="Mars/Olympus"), "spec.timeZone"),
    (schedule_spec(timeZone="America"), "spec.timeZone"),  # a zone directory: not a 500
    (schedule_spec(failedHistoryLimit=-1), "spec.failedHistoryLimit"),
    (schedule_spec(successfulHistoryLimit=-3), "spec.successfulHistoryLimit"),
    (schedule_spec(concurrencyPolicy="Sometimes"), "spec.concurrencyPolicy"),
    (schedule_spec(startingDeadlineSeconds=0), "spec.startingDeadlineSeconds"),
    (schedule_spec(taskTemplate={"spec": {"type": "sim", "cancel": True}}), "spec.taskTemplate.spec.cancel"),
    (schedule_spec(taskTemplate={"spec": {"type": "nope"}}), "spec.taskTemplate.spec.type"),
    (schedule_spec(taskTemplate={"spec": {"type": "sim", "parameters": {"n": 30}}}), "spec.taskTemplate.spec.parameters.n"),
    (schedule_spec(taskTemplate={"spec": {"type": "sim", "queue": "missing"}}), "spec.taskTemplate.spec.queue"),
    (schedule_spec(taskTemplate={"metadata": {"labels": {"kubetask.io/schedule": "x"}}, "spec": {"type": "sim"}}),
     "spec.taskTemplate.metadata.labels[kubetask.io/schedule]"),
    (schedule_spec(bogus=1), "spec.bogus"),
])
async def test_invalid_schedules_name_the_field(kube: FakeKube, spec: dict[str, Any], field: str) -> None:
    async with client(kube) as http:
        response = await http.post(f"{NS}/taskschedules", json={"name": "nightly", "spec": spec})
    assert_error(response, 422, "Invalid", field=field)
    assert kube.created("taskschedules") == []


@pytest.mark.parametrize(("body", "field"), [
    ({"spec": schedule_spec()}, "name"),
    ({"name": "x" * 53, "spec": schedule_spec()}, "name"),
    ({"name": "Not_A_Name", "spec": schedule_spec()}, "name"),
    ({"name": "ok", "labels": {"kubetask.io/x": "y"}, "spec": schedule_spec()}, "labels[kubetask.io/x]"),
    ({"name": "ok"}, "spec"),
])
async def test_invalid_schedule_metadata_names_the_field(kube: FakeKube, body: dict[str, Any], field: str) -> None:
    async with client(kube) as http:
        assert_error(await http.post(f"{NS}/taskschedules", json=body), 422, field=field)


async def test_the_api_servers_refusals_are_forwarded(kube: FakeKube) -> None:
    put_schedule(kube, "taken")
    create = kube.create

    async def refusing(path: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        if path.endswith("/taskschedules") and body["metadata"]["name"] == "refused":
            raise ApiError(422, "Invalid", 'TaskSchedule.kubetask.io "refused" is invalid: spec.schedule: Invalid value',
                           {"details": {"causes": [{"field": "spec.schedule", "message": "Invalid value: schedule must be ..."}]}})
        return await create(path, body, **params)

    kube.create = refusing  # type: ignore[method-assign]
    async with client(kube) as http:
        conflict = await http.post(f"{NS}/taskschedules", json={"name": "taken", "spec": schedule_spec()})
        refused = await http.post(f"{NS}/taskschedules", json={"name": "refused", "spec": schedule_spec()})
    assert "already exists" in assert_error(conflict, 409, "AlreadyExists")["message"]
    assert "the API server rejected it" in assert_error(refused, 422, "Invalid", field="spec.schedule")["message"]


# -- trigger, suspend, resume ------------------------------------------------------------------

async def test_trigger_creates_a_task_from_the_template_as_the_caller(kube: FakeKube) -> None:
    schedule = put_schedule(kube, "nightly", suspend=True)  # suspend stops the clock, not a person
    async with client(kube) as http:
        response = await http.post(f"{NS}/taskschedules/nightly:trigger")
        again = await http.post(f"{NS}/taskschedules/nightly:trigger")
        missing = await http.post(f"{NS}/taskschedules/ghost:trigger")
    assert response.status_code == 201, response.text
    task = response.json()
    TaskView.model_validate(task)
    assert task["name"].startswith("nightly-m") and task["submittedBy"] == "alice" and task["phase"] == "Pending"
    assert response.headers["location"] == f"{NS}/tasks/{task['name']}"
    stored = next(t for t in kube.created("tasks") if t["metadata"]["name"] == task["name"])
    meta = stored["metadata"]
    assert meta["labels"] == {"team": "a", LABEL_SCHEDULE: "nightly"}
    assert meta["annotations"]["kubetask.io/submitted-by"] == "alice" and meta["annotations"][ANNOTATION_TRIGGER] == "manual"
    assert meta["annotations"]["sim.kubetask.io/run-for"] == "1s"
    assert meta["ownerReferences"] == [{"apiVersion": "kubetask.io/v1alpha1", "kind": "TaskSchedule", "name": "nightly",
                                        "uid": schedule["metadata"]["uid"], "controller": True}]
    assert stored["spec"] == {"type": "sim", "parameters": {"n": 3}}
    if again.status_code != 201:  # the same second: a double click is refused, not doubled
        assert_error(again, 409, "AlreadyExists")
    assert_error(missing, 404)


async def test_trigger_checks_the_template_like_a_submission(kube: FakeKube) -> None:
    put_schedule(kube, "stale", taskTemplate={"spec": {"type": "sim", "parameters": {"n": 30}}})  # valid once; the type tightened
    async with client(kube) as http:
        response = await http.post(f"{NS}/taskschedules/stale:trigger")
    assert_error(response, 422, field="spec.taskTemplate.spec.parameters.n")
    assert kube.created("tasks") == []


async def test_suspend_and_resume_patch_the_spec(kube: FakeKube) -> None:
    put_schedule(kube, "nightly")
    async with client(kube) as http:
        suspended = await http.post(f"{NS}/taskschedules/nightly:suspend")
        assert suspended.status_code == 200, suspended.text
        assert suspended.json()["spec"]["suspend"] is True and suspended.json()["nextRuns"] == []
        assert (await http.get(f"{NS}/taskschedules/nightly")).json()["nextRuns"] == []
        assert (await http.post(f"{NS}/taskschedules/nightly:suspend")).status_code == 200  # again: still suspended
        resumed = await http.post(f"{NS}/taskschedules/nightly:resume")
        assert resumed.status_code == 200 and resumed.json()["spec"]["suspend"] is False and len(resumed.json()["nextRuns"]) == 5
        assert_error(await http.post(f"{NS}/taskschedules/ghost:resume"), 404)
    patches = [c[2]["body"] for c in kube.calls if c[0] == "PATCH" and c[1].endswith("/taskschedules/nightly")]
    assert patches == [{"spec": {"suspend": True}}, {"spec": {"suspend": True}}, {"spec": {"suspend": False}}]


# -- RBAC --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "denied", "action"), [
    ("GET", "taskschedules", ("list", "taskschedules"), "list taskschedules.kubetask.io in namespace team-a"),
    ("GET", "taskschedules/nightly", ("get", "taskschedules"), "get taskschedules.kubetask.io 'nightly'"),
    ("POST", "taskschedules", ("create", "taskschedules"), "create taskschedules.kubetask.io in namespace team-a"),
    ("POST", "taskschedules/nightly:suspend", ("patch", "taskschedules"), "patch taskschedules.kubetask.io 'nightly'"),
    ("POST", "taskschedules/nightly:resume", ("patch", "taskschedules"), "patch taskschedules.kubetask.io 'nightly'"),
    ("POST", "taskschedules/nightly:trigger", ("get", "taskschedules"), "get taskschedules.kubetask.io 'nightly'"),
    ("POST", "taskschedules/nightly:trigger", ("create", "tasks"), "create tasks.kubetask.io in namespace team-a"),
])
async def test_each_action_needs_its_permission(kube: FakeKube, method: str, path: str, denied: tuple[str, str], action: str) -> None:
    put_schedule(kube, "nightly")
    kube.allow = lambda user, attrs: (attrs["verb"], attrs["resource"]) != denied
    body = {"name": "other", "spec": schedule_spec()} if path == "taskschedules" and method == "POST" else None
    async with client(kube) as http:
        response = await http.request(method, f"{NS}/{path}", json=body)
    error = assert_error(response, 403, "Forbidden")
    assert "alice" in error["message"] and action in error["message"], error["message"]
    assert len(kube.created("tasks")) == 0 and len(kube.created("taskschedules")) == 1
    assert [c for c in kube.calls if c[0] == "PATCH"] == []


async def test_trigger_asks_for_both_permissions(kube: FakeKube) -> None:
    put_schedule(kube, "nightly")
    asked: list[dict[str, Any]] = []

    def allow(user: dict[str, Any], attrs: dict[str, Any]) -> bool:
        asked.append(attrs)
        return True

    kube.allow = allow
    async with client(kube) as http:
        assert (await http.post(f"{NS}/taskschedules/nightly:trigger")).status_code == 201
    assert asked == [{"namespace": "team-a", "verb": "get", "group": "kubetask.io", "resource": "taskschedules", "name": "nightly"},
                     {"namespace": "team-a", "verb": "create", "group": "kubetask.io", "resource": "tasks"}]


async def test_queue_views_show_the_rate_limit_and_throttling(kube: FakeKube) -> None:
    kube.put("taskqueues", "team-a", "limited", {"maxRunning": 5, "rateLimit": {"starts": 10, "per": "1m"}, "retentionSeconds": 3600},
             {"pending": 4, "running": 1, "throttled": 3, "nextStartTime": "2026-01-01T00:00:30Z"})
    async with client(kube) as http:
        queue = (await http.get(f"{NS}/taskqueues/limited")).json()
        plain = (await http.get(f"{NS}/taskqueues/default")).json()
    assert (queue["rateLimit"], queue["retentionSeconds"], queue["throttled"], queue["nextStartTime"]) == \
        ({"starts": 10, "per": "1m"}, 3600, 3, "2026-01-01T00:00:30Z")
    assert (plain["rateLimit"], plain["throttled"], plain["nextStartTime"]) == (None, 0, None)


async def test_openapi_describes_the_schedule_endpoints(kube: FakeKube) -> None:
    async with client(kube, token=None) as http:
        paths = (await http.get("/openapi.json")).json()["paths"]
    prefix = "/api/v1/namespaces/{namespace}/"
    assert set(paths[prefix + "taskschedules"]) == {"get", "post"}
    for verb in ("trigger", "suspend", "resume"):
        assert set(paths[f"{prefix}taskschedules/{{name}}:{verb}"]) == {"post"}
    assert set(paths[prefix + "taskschedules/{name}"]) == {"get"}  # no delete: the gateway deletes nothing
