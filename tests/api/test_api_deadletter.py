"""The gateway's dead-letter endpoints, in process, against the in-memory API (no cluster): what is
listed and in which order, the filters and pages, bulk re-run by names and by filter with each
outcome, the per-call bound, the 422s naming the field, and the RBAC check of each."""

from __future__ import annotations

from typing import Any

import pytest

from api_fakes import FakeKube, client, seed, settle
from test_api_http import assert_error
from kubetask.api.app import openapi
from kubetask.api.schemas import DeadLetterItem, DeadLetterRerunResponse, TaskQueueView
from kubetask.kube import ApiError

NS = "/api/v1/namespaces/team-a"
pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def kube() -> FakeKube:
    fake = FakeKube()
    seed(fake)
    return fake


def put_task(kube: FakeKube, name: str, phase: str, completed: str | None = None, *, reason: str = "BackoffLimitExceeded",
             exit_code: int | None = 3, message: str = "disk full", queue: str = "default", type_: str = "sim",
             labels: dict[str, str] | None = None, run: int = 0, rerun: int = 0, namespace: str = "team-a") -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "run": run, "queue": queue, "attempts": 3 if exit_code is not None else 0}
    if phase in ("Succeeded", "Failed", "Cancelled"):
        status["completionTime"] = completed or "2026-01-01T00:10:00Z"
    if phase == "Failed":
        status["conditions"] = [{"type": "Ready", "status": "False", "reason": reason, "message": f"{reason}: it failed",
                                 "lastTransitionTime": status["completionTime"]}]
        status["lastFailure"] = {"reason": reason, "message": message, **({"exitCode": exit_code} if exit_code is not None else {})}
    spec: dict[str, Any] = {"type": type_, "queue": queue, **({"rerun": rerun} if rerun else {})}
    return kube.put("tasks", namespace, name, spec, status, labels=labels or {})


def dead_letters(kube: FakeKube) -> None:
    """Three dead letters (a non-retryable exit code, retries exhausted, a deadline) and Tasks that are not."""
    put_task(kube, "exit-65", "Failed", "2026-01-01T00:03:00Z", reason="PodFailurePolicy", exit_code=65, labels={"team": "a"})
    put_task(kube, "retries-gone", "Failed", "2026-01-01T00:05:00Z", exit_code=3, labels={"team": "b"})
    put_task(kube, "too-slow", "Failed", "2026-01-01T00:04:00Z", reason="DeadlineExceeded", exit_code=None, queue="slow",
             type_="report", message="")
    put_task(kube, "fine", "Succeeded", "2026-01-01T00:06:00Z")
    put_task(kube, "stopped", "Cancelled", "2026-01-01T00:06:00Z")
    put_task(kube, "busy", "Running")
    put_task(kube, "rerun-pending", "Failed", "2026-01-01T00:07:00Z", rerun=1)  # re-run requested: not dead-lettered
    put_task(kube, "elsewhere", "Failed", "2026-01-01T00:08:00Z", namespace="team-b")


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]


# -- listing -------------------------------------------------------------------------------------

async def test_lists_only_tasks_whose_current_run_failed_newest_first(kube: FakeKube) -> None:
    dead_letters(kube)
    async with client(kube) as http:
        listed = await http.get(f"{NS}/deadletter")
    assert names(listed) == ["retries-gone", "too-slow", "exit-65"]
    body = listed.json()
    assert body["continue"] is None and body["remainingItemCount"] == 0
    items = {item["name"]: item for item in body["items"]}
    for item in body["items"]:
        DeadLetterItem.model_validate(item)
    assert items["exit-65"] == {**items["exit-65"], "reason": "PodFailurePolicy", "exitCode": 65, "message": "disk full",
                                 "queue": "default", "type": "sim", "attempts": 3, "run": 0, "invalidSpec": False,
                                 "completionTime": "2026-01-01T00:03:00Z", "labels": {"team": "a"}}
    assert items["too-slow"]["reason"] == "DeadlineExceeded" and items["too-slow"]["exitCode"] is None
    assert items["too-slow"]["message"] == "DeadlineExceeded: it failed"  # no lastFailure message: the condition's
    assert items["too-slow"]["queue"] == "slow" and items["too-slow"]["type"] == "report"


async def test_an_invalid_spec_failure_is_dead_lettered_and_flagged(kube: FakeKube) -> None:
    put_task(kube, "bad-params", "Failed", reason="InvalidParameters", exit_code=None, message="spec.parameters.n: 11 > 10")
    async with client(kube) as http:
        [item] = (await http.get(f"{NS}/deadletter")).json()["items"]
        only = await http.get(f"{NS}/deadletter", params={"reason": "InvalidParameters"})
    assert item["name"] == "bad-params" and item["invalidSpec"] is True and item["exitCode"] is None
    assert item["reason"] == "InvalidParameters" and "11 > 10" in item["message"]
    assert names(only) == ["bad-params"]


@pytest.mark.parametrize(("params", "expected"), [
    ({"queue": "default"}, ["retries-gone", "exit-65"]),
    ({"queue": "slow"}, ["too-slow"]),
    ({"type": "report"}, ["too-slow"]),
    ({"reason": "PodFailurePolicy"}, ["exit-65"]),
    ({"reason": "BackoffLimitExceeded", "queue": "default"}, ["retries-gone"]),
    ({"labelSelector": "team in (a,b),team!=b"}, ["exit-65"]),
    ({"labelSelector": "!team"}, ["too-slow"]),
    ({"queue": "nowhere"}, []),
])
async def test_filters(kube: FakeKube, params: dict[str, str], expected: list[str]) -> None:
    dead_letters(kube)
    async with client(kube) as http:
        assert names(await http.get(f"{NS}/deadletter", params=params)) == expected


async def test_pages_follow_the_order_and_tokens_are_bound_to_filters(kube: FakeKube) -> None:
    dead_letters(kube)
    put_task(kube, "same-time", "Failed", "2026-01-01T00:05:00Z")  # ties are ordered by name
    async with client(kube) as http:
        first = await http.get(f"{NS}/deadletter", params={"limit": 2})
        assert names(first) == ["retries-gone", "same-time"] and first.json()["remainingItemCount"] == 2
        token = first.json()["continue"]
        put_task(kube, "newer", "Failed", "2026-01-01T00:09:00Z")  # arrives while paging: before the cursor, not repeated
        await settle(kube)
        second = await http.get(f"{NS}/deadletter", params={"limit": 2, "continue": token})
        assert names(second) == ["too-slow", "exit-65"] and second.json()["continue"] is None
        other = await http.get(f"{NS}/deadletter", params={"limit": 2, "continue": token, "queue": "default"})
        garbage = await http.get(f"{NS}/deadletter", params={"continue": "not-a-token"})
        tasks_token = (await http.get(f"{NS}/tasks", params={"limit": 1})).json()["continue"]
        foreign = await http.get(f"{NS}/deadletter", params={"continue": tasks_token})
    assert_error(other, 422, "Invalid", field="continue")
    assert_error(garbage, 422, "Invalid", field="continue")
    assert_error(foreign, 422, "Invalid", field="continue")


@pytest.mark.parametrize(("params", "field"), [
    ({"labelSelector": "team in (a"}, "labelSelector"),
    ({"reason": "not a reason"}, "reason"),
    ({"reason": ""}, "reason"),
    ({"queue": "Bad_Queue"}, "queue"),
    ({"type": "x" * 300}, "type"),
    ({"limit": 0}, "limit"),
])
async def test_bad_query_parameters_are_422_naming_them(kube: FakeKube, params: dict[str, Any], field: str) -> None:
    async with client(kube) as http:
        assert_error(await http.get(f"{NS}/deadletter", params=params), 422, "Invalid", field=field)


# -- re-run --------------------------------------------------------------------------------------

def patches(kube: FakeKube) -> list[tuple[str, Any]]:
    return [(path.rsplit("/", 1)[-1], call["body"]) for method, path, call in kube.calls if method == "PATCH"]


async def test_rerun_by_names_reports_each_outcome(kube: FakeKube) -> None:
    dead_letters(kube)
    version = kube.objects[("tasks", "team-a", "exit-65")]["metadata"]["resourceVersion"]
    async with client(kube) as http:
        response = await http.post(f"{NS}/deadletter:rerun", json={"names": ["exit-65", "fine", "rerun-pending", "ghost", "stopped"]})
        await settle(kube)
        after = await http.get(f"{NS}/deadletter")
    assert response.status_code == 200, response.text
    body = DeadLetterRerunResponse.model_validate(response.json())
    outcomes = {item.name: item for item in body.items}
    assert [item.name for item in body.items] == ["exit-65", "fine", "rerun-pending", "ghost", "stopped"]
    assert outcomes["exit-65"].outcome == "Rerun" and outcomes["exit-65"].rerun == 1
    assert outcomes["exit-65"].resource_version == kube.objects[("tasks", "team-a", "exit-65")]["metadata"]["resourceVersion"]
    assert outcomes["fine"].outcome == "NotDeadLettered" and "Succeeded" in outcomes["fine"].message
    assert outcomes["stopped"].outcome == "NotDeadLettered" and "Cancelled" in outcomes["stopped"].message
    assert outcomes["rerun-pending"].outcome == "NotDeadLettered" and "already requested" in outcomes["rerun-pending"].message
    assert outcomes["ghost"].outcome == "NotFound"
    assert body.summary == {"Rerun": 1, "NotDeadLettered": 3, "NotFound": 1} and body.remaining == 0
    # Exactly the single retry's write: rerun + 1, cancel off, on the resourceVersion it was decided on.
    assert patches(kube) == [("exit-65", {"metadata": {"resourceVersion": version}, "spec": {"rerun": 1, "cancel": False}})]
    assert names(after) == ["retries-gone", "too-slow"]  # a re-run Task leaves the dead-letter view at once


async def test_rerun_by_filter_takes_the_newest_matching_up_to_the_bound(kube: FakeKube) -> None:
    dead_letters(kube)
    async with client(kube, rerun_max_items=1) as http:
        first = await http.post(f"{NS}/deadletter:rerun", json={"filter": {"queue": "default"}})
        await settle(kube)
        second = await http.post(f"{NS}/deadletter:rerun", json={"filter": {"queue": "default"}})
        await settle(kube)
        third = await http.post(f"{NS}/deadletter:rerun", json={"filter": {"queue": "default"}})
    assert first.status_code == 200, first.text
    assert [(i["name"], i["outcome"]) for i in first.json()["items"]] == [("retries-gone", "Rerun")] and first.json()["remaining"] == 1
    assert [(i["name"], i["outcome"]) for i in second.json()["items"]] == [("exit-65", "Rerun")] and second.json()["remaining"] == 0
    assert third.json() == {"items": [], "summary": {}, "remaining": 0}
    assert kube.objects[("tasks", "team-a", "too-slow")]["spec"].get("rerun") is None  # another queue: untouched


@pytest.mark.parametrize(("filter_", "expected"), [
    ({}, ["retries-gone", "too-slow", "exit-65"]),  # an empty filter: every dead letter of the namespace
    ({"reason": "DeadlineExceeded"}, ["too-slow"]),
    ({"type": "sim", "labelSelector": "team=a"}, ["exit-65"]),
])
async def test_rerun_filters(kube: FakeKube, filter_: dict[str, str], expected: list[str]) -> None:
    dead_letters(kube)
    async with client(kube) as http:
        response = await http.post(f"{NS}/deadletter:rerun", json={"filter": filter_})
    assert [i["name"] for i in response.json()["items"]] == expected
    assert {i["outcome"] for i in response.json()["items"]} == {"Rerun"}
    assert sorted(name for name, _ in patches(kube)) == sorted(expected)


async def test_a_task_that_changed_since_it_was_cached_is_decided_again(kube: FakeKube, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache's resourceVersion is the precondition; a 409 means a fresh read and a new decision."""
    dead_letters(kube)
    real = kube.patch
    refused: list[str] = []

    async def patch_once_stale(path: str, body: Any, content_type: str = "", **params: Any) -> dict[str, Any]:
        if not refused:
            refused.append(path)
            raise ApiError(409, "Conflict", "the object has been modified")
        return await real(path, body, content_type, **params)

    monkeypatch.setattr(kube, "patch", patch_once_stale)
    async with client(kube) as http:
        response = await http.post(f"{NS}/deadletter:rerun", json={"filter": {"reason": "PodFailurePolicy"}})
    assert [(i["name"], i["outcome"]) for i in response.json()["items"]] == [("exit-65", "Rerun")]
    assert ("GET", "/apis/kubetask.io/v1alpha1/namespaces/team-a/tasks/exit-65", {}) in kube.calls


async def test_a_task_that_keeps_changing_is_a_conflict(kube: FakeKube, monkeypatch: pytest.MonkeyPatch) -> None:
    dead_letters(kube)

    async def always_conflict(path: str, body: Any, content_type: str = "", **params: Any) -> dict[str, Any]:
        raise ApiError(409, "Conflict", "the object has been modified")

    monkeypatch.setattr(kube, "patch", always_conflict)
    async with client(kube) as http:
        response = await http.post(f"{NS}/deadletter:rerun", json={"names": ["exit-65"]})
    [item] = response.json()["items"]
    assert item["outcome"] == "Conflict" and "kept changing" in item["message"] and item["rerun"] is None
    assert response.json()["summary"] == {"Conflict": 1}


async def test_an_api_server_failure_is_that_items_error(kube: FakeKube, monkeypatch: pytest.MonkeyPatch) -> None:
    dead_letters(kube)

    async def unavailable(path: str, body: Any, content_type: str = "", **params: Any) -> dict[str, Any]:
        raise ApiError(503, "ServiceUnavailable", "etcd is sad")

    monkeypatch.setattr(kube, "patch", unavailable)
    async with client(kube) as http:
        response = await http.post(f"{NS}/deadletter:rerun", json={"names": ["exit-65"]})
    [item] = response.json()["items"]
    assert response.status_code == 200 and item["outcome"] == "Error" and "etcd is sad" in item["message"]


@pytest.mark.parametrize(("body", "field"), [
    ({}, "names"),
    ({"names": ["exit-65"], "filter": {}}, "filter"),
    ({"names": []}, "names"),
    ({"names": ["a", "b", "c"]}, "names"),  # over the bound (2 here)
    ({"names": ["a", "a"]}, "names[1]"),
    ({"names": ["Not_A_Name"]}, "names[0]"),
    ({"filter": {"typo": 1}}, "filter.typo"),
    ({"filter": {"label_selector": "a=b"}}, "filter.label_selector"),
    ({"filter": {"labelSelector": "a in (b"}}, "filter.labelSelector"),
    ({"filter": {"reason": "no spaces"}}, "filter.reason"),
    ({"filter": {"queue": "UPPER"}}, "filter.queue"),
    ({"filter": "default"}, "filter"),
    ({"names": "exit-65"}, "names"),
    ({"all": True}, "all"),
])
async def test_bad_rerun_bodies_are_422_naming_the_field(kube: FakeKube, body: dict[str, Any], field: str) -> None:
    dead_letters(kube)
    async with client(kube, rerun_max_items=2) as http:
        response = await http.post(f"{NS}/deadletter:rerun", json=body)
    assert_error(response, 422, "Invalid", field=field)
    assert patches(kube) == []


async def test_rerun_needs_a_json_body(kube: FakeKube) -> None:
    async with client(kube) as http:
        response = await http.post(f"{NS}/deadletter:rerun", content=b"{", headers={"Content-Type": "application/json"})
    assert_error(response, 400, "BadRequest")


# -- RBAC ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "body", "denied", "action"), [
    ("GET", "deadletter", None, ("list", "tasks"), "list tasks"),
    ("POST", "deadletter:rerun", {"names": ["exit-65"]}, ("patch", "tasks"), "patch tasks"),
    ("POST", "deadletter:rerun", {"filter": {}}, ("patch", "tasks"), "patch tasks"),
    ("POST", "deadletter:rerun", {"filter": {}}, ("list", "tasks"), "list tasks"),  # a filter reveals names, as a list does
])
async def test_each_action_needs_its_permission(kube: FakeKube, method: str, path: str, body: Any, denied: tuple[str, str],
                                                action: str) -> None:
    dead_letters(kube)
    kube.allow = lambda user, attrs: (attrs["verb"], attrs["resource"]) != denied
    async with client(kube) as http:
        response = await http.request(method, f"{NS}/{path}", json=body)
    error = assert_error(response, 403, "Forbidden")
    assert "alice" in error["message"] and action in error["message"] and "team-a" in error["message"], error["message"]
    assert patches(kube) == []


async def test_rerun_by_names_needs_only_patch(kube: FakeKube) -> None:
    dead_letters(kube)
    asked: list[tuple[str, str]] = []

    def allow(user: dict[str, Any], attrs: dict[str, Any]) -> bool:
        asked.append((attrs["verb"], attrs["resource"]))
        return attrs["verb"] == "patch"

    kube.allow = allow
    async with client(kube) as http:
        response = await http.post(f"{NS}/deadletter:rerun", json={"names": ["exit-65"]})
    assert response.status_code == 200 and response.json()["summary"] == {"Rerun": 1}
    assert asked == [("patch", "tasks")]


async def test_no_token_is_401(kube: FakeKube) -> None:
    async with client(kube, token=None) as http:
        assert_error(await http.get(f"{NS}/deadletter"), 401, "Unauthorized")
        assert_error(await http.post(f"{NS}/deadletter:rerun", json={"filter": {}}), 401, "Unauthorized")


# -- the queue's count and the API description -------------------------------------------------

async def test_queue_view_carries_the_operators_dead_letter_count(kube: FakeKube) -> None:
    kube.put("taskqueues", "team-a", "default", {"maxRunning": 2}, {"pending": 0, "running": 0, "deadLetter": 4})
    async with client(kube) as http:
        queue = (await http.get(f"{NS}/taskqueues/default")).json()
    assert TaskQueueView.model_validate(queue).dead_letter == 4 and queue["deadLetter"] == 4


def test_openapi_describes_both_endpoints() -> None:
    document = openapi()
    paths = document["paths"]
    listing = paths["/api/v1/namespaces/{namespace}/deadletter"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"namespace", "queue", "type", "reason", "labelSelector", "limit", "continue"}
    assert listing["tags"] == ["deadletter"] and {"200", "401", "403", "422"} <= set(listing["responses"])
    rerun = paths["/api/v1/namespaces/{namespace}/deadletter:rerun"]["post"]
    assert rerun["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/DeadLetterRerunRequest")
    request = document["components"]["schemas"]["DeadLetterRerunRequest"]
    assert set(request["properties"]) == {"names", "filter"} and request["additionalProperties"] is False
    outcome = document["components"]["schemas"]["RerunOutcome"]["properties"]["outcome"]
    assert set(outcome["enum"]) == {"Rerun", "Conflict", "NotDeadLettered", "NotFound", "Error"}
