"""The gateway's TaskGroup endpoints, in process, against the in-memory API (no cluster): a batch
submitted as a group (the group first, then its members, all or nothing), the callback checked like
a submission with 422s naming its fields, 409s, idempotent retries and the 207 window; list, get and
create of groups with their progress; and the RBAC check of each."""

from __future__ import annotations

from typing import Any

import pytest

from api_fakes import FakeKube, client, seed, settle
from test_api_http import assert_error
from kubetask.api import groups
from kubetask.api.schemas import TaskGroupView, TaskView
from kubetask.kube import ApiError
from kubetask.resources.grouping import LABEL_GROUP

NS = "/api/v1/namespaces/team-a"
GROUPS_PATH = "/apis/kubetask.io/v1alpha1/namespaces/team-a/taskgroups"
TASKS_PATH = "/apis/kubetask.io/v1alpha1/namespaces/team-a/tasks"
pytestmark = pytest.mark.timeout(30)
# The callback's TaskType must accept the `group` parameter the operator adds; `sim` (additionalProperties: false) does not.
COLLECT_SCHEMA = {"type": "object", "properties": {"group": {"type": "object"}, "format": {"type": "string", "enum": ["csv", "json"]}},
                  "additionalProperties": False}
CALLBACK = {"when": "Succeeded", "taskTemplate": {"metadata": {"labels": {"step": "collect"}},
                                                  "spec": {"type": "collect", "parameters": {"format": "csv"}}}}


@pytest.fixture
def kube() -> FakeKube:
    fake = FakeKube()
    seed(fake)
    fake.put("tasktypes", "team-a", "collect", {"image": "example.invalid/collect:1", "parametersSchema": COLLECT_SCHEMA})
    return fake


def sim(**spec: Any) -> dict[str, Any]:
    return {"spec": {"type": "sim", **spec}}


def batch(count: int = 3, **group: Any) -> dict[str, Any]:
    return {"items": [sim(parameters={"n": i}) for i in range(count)], "group": {"name": "resize-all", **group}}


def counts(**values: int) -> dict[str, int]:
    return {"total": 0, "pending": 0, "queued": 0, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0, **values}


def condition(kind: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": "2026-01-01T00:00:00Z"}


# -- a batch as a group ------------------------------------------------------------------------

async def test_a_batch_with_a_group_creates_the_group_then_its_members(kube: FakeKube) -> None:
    async with client(kube) as http:
        response = await http.post(f"{NS}/tasks:batch", json=batch(3, callback=CALLBACK))
    assert response.status_code == 201, response.text
    answer = response.json()
    view = answer["group"]
    TaskGroupView.model_validate(view)
    assert view["name"] == "resize-all" and view["submittedBy"] == "alice" and view["phase"] == "Pending"
    assert view["progress"] == {"finished": 0, "total": 3, "percent": 0} and view["memberSelector"] == f"{LABEL_GROUP}=resize-all"
    [stored] = kube.created("taskgroups")
    assert stored["spec"] == {"size": 3, "callback": CALLBACK}
    assert stored["metadata"]["annotations"] == {"kubetask.io/submitted-by": "alice"}
    tasks = kube.created("tasks")
    assert len(tasks) == 3 and [r["status"] for r in answer["items"]] == [201, 201, 201]
    for task in tasks:
        meta = task["metadata"]
        assert meta["labels"][LABEL_GROUP] == "resize-all"
        assert meta["ownerReferences"] == [{"apiVersion": "kubetask.io/v1alpha1", "kind": "TaskGroup", "name": "resize-all",
                                            "uid": stored["metadata"]["uid"]}]
    for result in answer["items"]:
        TaskView.model_validate(result["task"])
        assert result["task"]["labels"][LABEL_GROUP] == "resize-all"
    # Everything was dry-run before anything was created, and the group was created before its members.
    writes = [(c[1], c[2].get("dryRun")) for c in kube.calls if c[0] == "POST" and "/v1alpha1/" in c[1]]
    assert writes[:4] == [(GROUPS_PATH, "All")] + [(TASKS_PATH, "All")] * 3
    assert writes[4:] == [(GROUPS_PATH, None)] + [(TASKS_PATH, None)] * 3


async def test_a_batch_without_a_group_answers_as_before(kube: FakeKube) -> None:
    async with client(kube) as http:
        response = await http.post(f"{NS}/tasks:batch", json={"items": [sim(), sim()]})
    assert response.status_code == 201 and set(response.json()) == {"items"}
    assert kube.created("taskgroups") == [] and all(LABEL_GROUP not in t["metadata"]["labels"] for t in kube.created("tasks"))


@pytest.mark.parametrize(("group", "field"), [
    ({"callback": {"taskTemplate": {"spec": {"type": "nope"}}}}, "group.callback.taskTemplate.spec.type"),
    ({"callback": {"taskTemplate": {"spec": {"type": "collect", "parameters": {"format": "xml"}}}}},
     "group.callback.taskTemplate.spec.parameters.format"),
    ({"callback": {"taskTemplate": {"spec": {"type": "collect", "queue": "missing"}}}}, "group.callback.taskTemplate.spec.queue"),
    ({"callback": {"taskTemplate": {"spec": {"type": "collect", "resources": {"cpu": "-1"}}}}},
     "group.callback.taskTemplate.spec.resources.cpu"),
    ({"callback": {"taskTemplate": {"metadata": {"labels": {"kubetask.io/x": "y"}}, "spec": {"type": "collect"}}}},
     "group.callback.taskTemplate.metadata.labels[kubetask.io/x]"),
    ({"callback": {"taskTemplate": {"spec": {"type": "collect", "parameters": {"group": {}}}}}},
     "group.callback.taskTemplate.spec.parameters.group"),
    ({"callback": {"taskTemplate": {"spec": {"type": "sim"}}}}, "group.callback.taskTemplate.spec.parameters"),  # no room for `group`
    ({"callback": {"when": "Sometimes", "taskTemplate": {"spec": {"type": "collect"}}}}, "group.callback.when"),
    ({"callback": {"taskTemplate": {"spec": {"type": "collect", "typo": 1}}}}, "group.callback.taskTemplate.spec.typo"),
    ({"callback": {"when": "Finished"}}, "group.callback.taskTemplate"),
    ({"name": "x" * 55}, "group.name"),
    ({"name": "Not_A_Name"}, "group.name"),
    ({"size": 3}, "group.size"),  # the size is the batch's: not the caller's to give
])
async def test_an_invalid_group_names_the_field_and_creates_nothing(kube: FakeKube, group: dict[str, Any], field: str) -> None:
    async with client(kube) as http:
        response = await http.post(f"{NS}/tasks:batch", json=batch(2, **group))
    error = assert_error(response, 422, "Invalid", field=field)
    assert "nothing was created" in error["message"] or response.json().get("items") is None
    assert kube.created("tasks") == [] and kube.created("taskgroups") == []
    if "items" in response.json():
        assert [i["status"] for i in response.json()["items"]] == [424, 424]


async def test_the_group_parameter_problem_says_why(kube: FakeKube) -> None:
    async with client(kube) as http:
        response = await http.post(f"{NS}/tasks:batch", json=batch(1, callback={"taskTemplate": {"spec": {"type": "sim"}}}))
    error = assert_error(response, 422, field="group.callback.taskTemplate.spec.parameters")
    [detail] = [d for d in error["details"] if d["field"] == "group.callback.taskTemplate.spec.parameters"]
    assert "'group' was unexpected" in detail["message"] and "the callback's TaskType must accept it" in detail["message"]


async def test_an_invalid_item_creates_no_group(kube: FakeKube) -> None:
    body = {**batch(2, callback=CALLBACK), "items": [sim(parameters={"n": 1}), sim(parameters={"n": 99})]}
    async with client(kube) as http:
        response = await http.post(f"{NS}/tasks:batch", json=body)
    assert_error(response, 422, field="items[1].spec.parameters.n")
    assert [i["status"] for i in response.json()["items"]] == [424, 422]
    assert kube.created("taskgroups") == [] and kube.created("tasks") == []
    assert not [c for c in kube.calls if c[0] == "POST" and c[1] == GROUPS_PATH and not c[2].get("dryRun")]


async def test_an_existing_group_name_is_409_and_nothing_is_created(kube: FakeKube) -> None:
    kube.put("taskgroups", "team-a", "resize-all", {"size": 1})
    async with client(kube) as http:
        response = await http.post(f"{NS}/tasks:batch", json=batch(2))
    error = assert_error(response, 409, "AlreadyExists", field="group.name")
    assert "TaskGroup 'resize-all' already exists" in error["message"] and "nothing was created" in error["message"]
    assert [i["status"] for i in response.json()["items"]] == [424, 424]
    assert kube.created("tasks") == [] and len(kube.created("taskgroups")) == 1


async def test_the_callbacks_name_cannot_be_taken(kube: FakeKube) -> None:
    kube.put("tasks", "team-a", "other-callback", {"type": "sim"})
    async with client(kube) as http:
        await settle(kube)
        taken = await http.post(f"{NS}/tasks:batch", json={**batch(1, callback=CALLBACK), "group": {"name": "other", "callback": CALLBACK}})
        item = await http.post(f"{NS}/tasks:batch", json={"items": [{**sim(), "name": "resize-all-callback"}],
                                                          "group": {"name": "resize-all", "callback": CALLBACK}})
        no_callback = await http.post(f"{NS}/tasks:batch", json={"items": [sim()], "group": {"name": "other"}})
    assert_error(taken, 409, field="group.name")
    assert_error(item, 422, field="items[0].name")
    assert no_callback.status_code == 201, no_callback.text  # without a callback nothing will take that name
    assert [g["metadata"]["name"] for g in kube.created("taskgroups")] == ["other"]


async def test_the_api_servers_refusal_of_the_group_names_group_fields(kube: FakeKube) -> None:
    create = kube.create

    async def refusing(path: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        if path == GROUPS_PATH:
            raise ApiError(422, "Invalid", 'TaskGroup.kubetask.io "resize-all" is invalid: spec.callback.taskTemplate.spec.type: Invalid value',
                           {"details": {"causes": [{"field": "spec.callback.taskTemplate.spec.type", "message": "Invalid value"}]}})
        return await create(path, body, **params)

    kube.create = refusing  # type: ignore[method-assign]
    async with client(kube) as http:
        response = await http.post(f"{NS}/tasks:batch", json=batch(2, callback=CALLBACK))
    assert "the API server rejected it" in assert_error(response, 422, field="group.callback.taskTemplate.spec.type")["message"]
    assert kube.created("tasks") == []


async def test_a_retry_with_the_idempotency_key_replays_the_group_and_its_members(kube: FakeKube) -> None:
    body = batch(2, callback=CALLBACK)
    async with client(kube) as http:
        first = await http.post(f"{NS}/tasks:batch", json=body, headers={"Idempotency-Key": "nightly-7"})
        await settle(kube)
        again = await http.post(f"{NS}/tasks:batch", json=body, headers={"Idempotency-Key": "nightly-7"})
        other = await http.post(f"{NS}/tasks:batch", json=batch(3), headers={"Idempotency-Key": "nightly-8"})
    assert first.status_code == again.status_code == 201, again.text
    assert [r["status"] for r in again.json()["items"]] == [200, 200]
    assert again.json()["group"]["uid"] == first.json()["group"]["uid"]
    assert len(kube.created("tasks")) == 2 and len(kube.created("taskgroups")) == 1
    assert_error(other, 409, "AlreadyExists", field="group.name")  # another request under the same name


async def test_items_that_fail_after_the_dry_run_leave_the_group_waiting_and_a_retry_completes_it(kube: FakeKube) -> None:
    create = kube.create
    failing = {"on": True}

    async def flaky(path: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        if failing["on"] and path == TASKS_PATH and not params.get("dryRun") and body["spec"]["parameters"] == {"n": 1}:
            raise ApiError(503, "ServiceUnavailable", "etcd leader changed")
        return await create(path, body, **params)

    kube.create = flaky  # type: ignore[method-assign]
    body = batch(3)
    async with client(kube) as http:
        partial = await http.post(f"{NS}/tasks:batch", json=body, headers={"Idempotency-Key": "k-1"})
        assert partial.status_code == 207, partial.text
        assert [r["status"] for r in partial.json()["items"]] == [201, 503, 201]
        [group] = kube.created("taskgroups")
        assert group["spec"]["size"] == 3  # still waits for the missing member: no Finished, no callback, for a partial batch
        assert partial.json()["group"]["progress"]["total"] == 3
        failing["on"] = False
        await settle(kube)
        retried = await http.post(f"{NS}/tasks:batch", json=body, headers={"Idempotency-Key": "k-1"})
    assert retried.status_code == 201, retried.text
    assert [r["status"] for r in retried.json()["items"]] == [200, 201, 200]
    assert len(kube.created("taskgroups")) == 1 and len(kube.created("tasks")) == 3
    assert {t["metadata"]["labels"][LABEL_GROUP] for t in kube.created("tasks")} == {"resize-all"}


async def test_a_group_batch_needs_create_on_taskgroups_too(kube: FakeKube) -> None:
    asked: list[dict[str, Any]] = []

    def allow(user: dict[str, Any], attrs: dict[str, Any]) -> bool:
        asked.append(attrs)
        return attrs["resource"] != "taskgroups"

    kube.allow = allow
    async with client(kube) as http:
        denied = await http.post(f"{NS}/tasks:batch", json=batch(2))
    error = assert_error(denied, 403, "Forbidden")
    assert "alice" in error["message"] and "create taskgroups.kubetask.io in namespace team-a" in error["message"]
    assert asked == [{"namespace": "team-a", "verb": "create", "group": "kubetask.io", "resource": "tasks"},
                     {"namespace": "team-a", "verb": "create", "group": "kubetask.io", "resource": "taskgroups"}]
    assert kube.created("tasks") == [] and kube.created("taskgroups") == []


# -- reading -------------------------------------------------------------------------------------

def put_group(kube: FakeKube, name: str, spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return kube.put("taskgroups", "team-a", name, spec, status,
                    annotations={"kubetask.io/submitted-by": "alice"}, labels={"app": "resize"})


async def test_list_and_get_show_counts_progress_and_the_callback(kube: FakeKube) -> None:
    put_group(kube, "running", {"size": 12, "callback": CALLBACK},
              {"counts": counts(total=10, running=2, queued=1, succeeded=6, failed=1),
               "conditions": [condition("Finished", "False", "Running", "7 of 10 members finished")]})
    put_group(kube, "done", {"size": 2, "callback": CALLBACK},
              {"counts": counts(total=2, succeeded=2), "callbackTask": "done-callback", "callbackPhase": "Succeeded",
               "completionTime": "2026-01-01T00:10:00Z",
               "conditions": [condition("Finished", "True", "Succeeded"), condition("Succeeded", "True", "Succeeded")]})
    put_group(kube, "broken", {"size": 1}, {"counts": counts(total=1, failed=1),
                                            "conditions": [condition("Finished", "True", "MembersFailed"), condition("Succeeded", "False", "MembersFailed")]})
    put_group(kube, "fresh", {})
    kube.put("taskgroups", "team-b", "elsewhere", {})
    async with client(kube) as http:
        listed = await http.get(f"{NS}/taskgroups")
        one = await http.get(f"{NS}/taskgroups/running")
        missing = await http.get(f"{NS}/taskgroups/ghost")
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [g["name"] for g in items] == ["broken", "done", "fresh", "running"] and listed.json()["continue"] is None
    for item in items:
        TaskGroupView.model_validate(item)
    by_name = {g["name"]: g for g in items}
    running = one.json()
    assert one.status_code == 200 and running == by_name["running"]
    assert running["progress"] == {"finished": 7, "total": 12, "percent": 58}  # 12 expected, 10 exist yet
    assert running["phase"] == "Running" and running["finished"] is False and running["reason"] == "Running"
    assert running["status"]["counts"]["succeeded"] == 6 and running["submittedBy"] == "alice" and running["labels"] == {"app": "resize"}
    done = by_name["done"]
    assert (done["phase"], done["finished"], done["progress"]["percent"]) == ("Succeeded", True, 100)
    assert done["status"]["callbackTask"] == "done-callback" and done["status"]["callbackPhase"] == "Succeeded"
    assert (by_name["broken"]["phase"], by_name["broken"]["reason"]) == ("Failed", "MembersFailed")
    fresh = by_name["fresh"]
    assert (fresh["phase"], fresh["status"], fresh["progress"]) == ("Pending", {}, {"finished": 0, "total": 0, "percent": 0})
    assert_error(missing, 404, "NotFound")
    assert "TaskGroup 'ghost' not found" in missing.json()["error"]["message"]


async def test_groups_are_read_live_and_paged_by_the_api_server(kube: FakeKube) -> None:
    async with client(kube) as http:
        for i in range(5):
            put_group(kube, f"g{i}", {"size": 1})  # no watch on groups: the next read sees them
        first = await http.get(f"{NS}/taskgroups", params={"limit": 2})
        token = first.json()["continue"]
        second = await http.get(f"{NS}/taskgroups", params={"limit": 2, "continue": token})
        last = await http.get(f"{NS}/taskgroups", params={"limit": 2, "continue": second.json()["continue"]})
        assert (await http.get(f"{NS}/taskgroups/g4")).status_code == 200
    assert [g["name"] for g in first.json()["items"]] == ["g0", "g1"] and token
    assert [g["name"] for g in second.json()["items"]] == ["g2", "g3"]
    assert [g["name"] for g in last.json()["items"]] == ["g4"] and last.json()["continue"] is None
    assert ("GET", GROUPS_PATH, {"limit": 2}) in kube.calls and ("GET", GROUPS_PATH, {"limit": 2, "continue": token}) in kube.calls
    assert ("GET", f"{GROUPS_PATH}/g4", {}) in kube.calls
    assert not [c for c in kube.calls if "taskgroups" in c[1] and c[2].get("watch")]


async def test_a_refused_continue_token_names_the_field_and_a_missing_crd_says_so(kube: FakeKube) -> None:
    get = kube.get

    async def api_server(path: str, **params: Any) -> dict[str, Any]:
        if path == GROUPS_PATH and params.get("continue") == "stale":
            raise ApiError(410, "Expired", "The provided continue parameter is too old")
        if path.endswith("/namespaces/no-crd/taskgroups"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return await get(path, **params)

    kube.get = api_server  # type: ignore[method-assign]
    async with client(kube) as http:
        stale = await http.get(f"{NS}/taskgroups", params={"continue": "stale"})
        no_crd = await http.get("/api/v1/namespaces/no-crd/taskgroups")
    assert_error(stale, 422, field="continue")
    assert "taskgroups.kubetask.io CRD" in assert_error(no_crd, 404)["message"]


def test_progress_counts_the_expected_members() -> None:
    def of(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, int]:
        return groups.progress({"spec": spec, "status": status or {}})

    assert of({"size": 12}, {"counts": counts(total=3, succeeded=2, cancelled=1)}) == {"finished": 3, "total": 12, "percent": 25}
    assert of({}, {"counts": counts(total=4, succeeded=1, failed=1, running=2)}) == {"finished": 2, "total": 4, "percent": 50}
    assert of({"size": 2}, {"counts": counts(total=3, succeeded=3)}) == {"finished": 3, "total": 3, "percent": 100}  # more joined by label
    assert of({"size": 5}) == {"finished": 0, "total": 5, "percent": 0}
    assert of({"size": "x"}, {"counts": {"succeeded": -1, "failed": "2"}}) == {"finished": 0, "total": 0, "percent": 0}  # never fails


# -- creating an empty group ---------------------------------------------------------------------

async def test_create_an_empty_group(kube: FakeKube) -> None:
    async with client(kube) as http:
        response = await http.post(f"{NS}/taskgroups", json={"name": "nightly", "labels": {"app": "etl"},
                                                             "spec": {"size": 4, "callback": CALLBACK}})
        bare = await http.post(f"{NS}/taskgroups", json={"name": "bare"})
        again = await http.post(f"{NS}/taskgroups", json={"name": "bare"})
    assert response.status_code == 201, response.text
    view = response.json()
    TaskGroupView.model_validate(view)
    assert response.headers["location"] == f"{NS}/taskgroups/nightly"
    assert view["progress"] == {"finished": 0, "total": 4, "percent": 0} and view["submittedBy"] == "alice"
    stored = {g["metadata"]["name"]: g for g in kube.created("taskgroups")}
    assert stored["nightly"]["spec"] == {"size": 4, "callback": CALLBACK}
    assert stored["nightly"]["metadata"]["labels"] == {"app": "etl"}
    assert bare.status_code == 201 and stored["bare"]["spec"] == {}
    assert "already exists" in assert_error(again, 409, "AlreadyExists")["message"]


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "g", "spec": {"callback": {"taskTemplate": {"spec": {"type": "nope"}}}}}, "spec.callback.taskTemplate.spec.type"),
    ({"name": "g", "spec": {"callback": {"taskTemplate": {"spec": {"type": "sim"}}}}}, "spec.callback.taskTemplate.spec.parameters"),
    ({"name": "g", "spec": {"size": 0}}, "spec.size"),
    ({"name": "g", "spec": {"size": 10_001}}, "spec.size"),
    ({"name": "g", "labels": {"kubetask.io/group": "x"}}, "labels[kubetask.io/group]"),
    ({"name": "x" * 55}, "name"),
    ({"spec": {}}, "name"),
    ({"name": "g", "spec": {"bogus": 1}}, "spec.bogus"),
])
async def test_an_invalid_group_is_refused_naming_the_field(kube: FakeKube, body: dict[str, Any], field: str) -> None:
    async with client(kube) as http:
        assert_error(await http.post(f"{NS}/taskgroups", json=body), 422, "Invalid", field=field)
    assert kube.created("taskgroups") == []


# -- RBAC ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "denied", "action"), [
    ("GET", "taskgroups", ("list", "taskgroups"), "list taskgroups.kubetask.io in namespace team-a"),
    ("GET", "taskgroups/g", ("get", "taskgroups"), "get taskgroups.kubetask.io 'g'"),
    ("POST", "taskgroups", ("create", "taskgroups"), "create taskgroups.kubetask.io in namespace team-a"),
    ("POST", "tasks:batch", ("create", "taskgroups"), "create taskgroups.kubetask.io in namespace team-a"),
    ("POST", "tasks:batch", ("create", "tasks"), "create tasks.kubetask.io in namespace team-a"),
])
async def test_each_action_needs_its_permission(kube: FakeKube, method: str, path: str, denied: tuple[str, str], action: str) -> None:
    put_group(kube, "g", {"size": 1})
    kube.allow = lambda user, attrs: (attrs["verb"], attrs["resource"]) != denied
    body = {"name": "other"} if path == "taskgroups" and method == "POST" else batch(1) if path == "tasks:batch" else None
    async with client(kube) as http:
        response = await http.request(method, f"{NS}/{path}", json=body)
    error = assert_error(response, 403, "Forbidden")
    assert "alice" in error["message"] and action in error["message"], error["message"]
    assert kube.created("tasks") == [] and len(kube.created("taskgroups")) == 1


async def test_openapi_describes_the_group_endpoints(kube: FakeKube) -> None:
    async with client(kube, token=None) as http:
        document = (await http.get("/openapi.json")).json()
    paths = document["paths"]
    prefix = "/api/v1/namespaces/{namespace}/"
    assert set(paths[prefix + "taskgroups"]) == {"get", "post"}
    assert set(paths[prefix + "taskgroups/{name}"]) == {"get"}  # no delete: the gateway deletes nothing
    assert "group" in document["components"]["schemas"]["BatchRequest"]["properties"]
    assert "group" in document["components"]["schemas"]["BatchResponse"]["properties"]
