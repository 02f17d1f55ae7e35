"""The gateway's HTTP contract, in process, against the in-memory API (no cluster): error shapes,
validation, auth outcomes, idempotency, batch all-or-nothing, cancel/retry preconditions."""

from __future__ import annotations

import asyncio

from typing import Any

import httpx
import pytest

from api_fakes import ADMIN_TOKEN, FakeKube, client, seed, settle
from kubetask.api.schemas import TaskView

NS = "/api/v1/namespaces/team-a"
pytestmark = pytest.mark.timeout(30)


def assert_error(response: httpx.Response, status: int, reason: str | None = None, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text[:1000]
    body = response.json()
    assert set(body) >= {"error"}
    error = body["error"]
    assert set(error) == {"status", "reason", "message", "details"}
    assert error["status"] == status and error["message"]
    if reason:
        assert error["reason"] == reason, error
    if field:
        assert field in [d["field"] for d in error["details"]], error
    return dict(error)


@pytest.fixture
def kube() -> FakeKube:
    fake = FakeKube()
    seed(fake)
    return fake


def sim(**spec: Any) -> dict[str, Any]:
    return {"spec": {"type": "sim", **spec}}


async def test_submit_creates_task_with_submitter_and_generated_name(kube: FakeKube) -> None:
    async with client(kube) as http:
        response = await http.post(f"{NS}/tasks", json={**sim(parameters={"n": 3}), "labels": {"team": "a"},
                                                        "annotations": {"sim.kubetask.io/run-for": "1s"}})
    assert response.status_code == 201, response.text
    task = response.json()
    TaskView.model_validate(task)
    assert task["name"].startswith("sim-") and len(task["name"]) == len("sim-") + 8
    assert task["submittedBy"] == "alice" and task["phase"] == "Pending" and not task["finished"]
    assert response.headers["location"] == f"{NS}/tasks/{task['name']}"
    [stored] = kube.created()
    assert stored["metadata"]["annotations"] == {"sim.kubetask.io/run-for": "1s", "kubetask.io/submitted-by": "alice"}
    assert stored["metadata"]["labels"] == {"team": "a"}
    assert stored["spec"]["parameters"] == {"n": 3}


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"spec": {"type": "nope"}}, 422, "spec.type"),
    (sim(parameters={"n": 30}), 422, "spec.parameters.n"),
    (sim(parameters={"m": 1}), 422, "spec.parameters"),
    (sim(resources={"cpu": "4"}), 422, "spec.resources.cpu"),
    (sim(retries=5), 422, "spec.retries"),
    (sim(resources={"cpu": "lots"}), 422, "spec.resources.cpu"),
    (sim(bogus=True), 422, "spec.bogus"),
    ({**sim(), "extra": 1}, 422, "extra"),
    ({**sim(), "labels": {"kubetask.io/owner": "x"}}, 422, "labels[kubetask.io/owner]"),
    ({**sim(), "annotations": {"kubetask.io/x": "y"}}, 422, "annotations[kubetask.io/x]"),
    ({**sim(), "labels": {"bad key!": "x"}}, 422, "labels[bad key!]"),
    ({**sim(), "labels": {"ok": "bad value!"}}, 422, "labels[ok]"),
    ({**sim(), "labels": {f"k{i}": "v" for i in range(33)}}, 422, "labels"),
    ({**sim(), "name": "Not_A_Name"}, 422, "name"),
    (sim(cancel=True), 422, "spec.cancel"),
    (sim(rerun=2), 422, "spec.rerun"),
    (sim(queue="missing"), 422, "spec.queue"),
    (sim(parameters={"n": 1}, priority=5000), 422, "spec.priority"),
    (sim(parameters={"x": "y" * 40_000}), 413, "spec.parameters"),
    ({**sim(), "annotations": {f"a{i}": "x" * 60_000 for i in range(5)}}, 413, "annotations"),
    ({**sim(), "annotations": {"a": "x" * 70_000}}, 413, "annotations[a]"),
    ([1, 2], 422, "body"),
])
async def test_invalid_submissions_name_the_field(kube: FakeKube, body: Any, status: int, field: str | None) -> None:
    async with client(kube, max_body_bytes=1024 * 1024) as http:
        response = await http.post(f"{NS}/tasks", json=body)
    assert_error(response, status, field=field)
    assert kube.created() == []


async def test_malformed_json_is_400_and_oversized_body_413_before_parsing(kube: FakeKube) -> None:
    async with client(kube) as http:
        bad = await http.post(f"{NS}/tasks", content=b'{"spec":', headers={"content-type": "application/json"})
        assert_error(bad, 400, "BadRequest")
        big = await http.post(f"{NS}/tasks", content=b"x" * (64 * 1024 + 1), headers={"content-type": "application/json"})
        assert_error(big, 413, "RequestEntityTooLarge")

        async def chunks() -> Any:
            for _ in range(100):
                yield b" " * 1024

        chunked = await http.post(f"{NS}/tasks", content=chunks(), headers={"content-type": "application/json"})
        assert_error(chunked, 413)


async def test_routing_errors_share_the_shape(kube: FakeKube) -> None:
    async with client(kube) as http:
        assert_error(await http.get("/nowhere"), 404, "NotFound")
        assert_error(await http.get(f"{NS}/tasks/nothing"), 404, "NotFound")
        response = await http.delete(f"{NS}/tasks/x")
        assert_error(response, 405, "MethodNotAllowed")
        assert_error(await http.get(f"{NS}/tasks", params={"limit": 0}), 422, field="limit")
        assert_error(await http.get(f"{NS}/tasks", params={"phase": "Sleeping"}), 422, field="phase")
        assert_error(await http.get(f"{NS}/tasks", params={"labelSelector": "a in (b"}), 422, field="labelSelector")
        assert_error(await http.get(f"{NS}/tasks", params={"continue": "garbage!"}), 422, field="continue")
        assert_error(await http.get("/api/v1/namespaces/Bad_NS/tasks"), 422, field="namespace")


async def test_unauthenticated_and_forbidden(kube: FakeKube) -> None:
    kube.allow = lambda user, attrs: attrs["verb"] in ("get", "list")
    async with client(kube, token=None) as http:
        missing = assert_error(await http.get(f"{NS}/tasks"), 401, "Unauthorized")
        assert "Bearer" in missing["message"]
        bad = await http.get(f"{NS}/tasks", headers={"Authorization": "Bearer nope"})
        assert_error(bad, 401)
        assert bad.headers["www-authenticate"].startswith("Bearer")
        assert_error(await http.get(f"{NS}/tasks", headers={"Authorization": "Basic abc"}), 401)
        ok = await http.get(f"{NS}/tasks", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert ok.status_code == 200
        denied = await http.post(f"{NS}/tasks", json=sim(), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        error = assert_error(denied, 403, "Forbidden")
        assert "alice" in error["message"] and "create tasks.kubetask.io in namespace team-a" in error["message"]
    reviews = [c for c in kube.calls if c[1].endswith("subjectaccessreviews")]
    assert reviews, "each action is put to the API server"
    assert kube.created() == []


async def test_subject_access_review_carries_the_users_identity_and_attributes(kube: FakeKube) -> None:
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def allow(user: dict[str, Any], attrs: dict[str, Any]) -> bool:
        seen.append((user, attrs))
        return True

    kube.allow = allow
    kube.put("tasks", "team-a", "t1", {"type": "sim"})
    async with client(kube) as http:
        assert (await http.get(f"{NS}/tasks/t1")).status_code == 200
        assert (await http.get(f"{NS}/tasktypes")).status_code == 200
    assert seen[0] == ({"username": "alice", "groups": ["team-a"]},
                       {"namespace": "team-a", "verb": "get", "group": "kubetask.io", "resource": "tasks", "name": "t1"})
    assert seen[1][1] == {"namespace": "team-a", "verb": "list", "group": "kubetask.io", "resource": "tasktypes"}


async def test_namespaces_setting_limits_what_is_served(kube: FakeKube) -> None:
    async with client(kube, namespaces=["team-a"]) as http:
        assert (await http.get(f"{NS}/tasks")).status_code == 200
        assert_error(await http.get("/api/v1/namespaces/team-b/tasks"), 404)


async def test_idempotency_key_replays_and_rejects_reuse(kube: FakeKube) -> None:
    body = {**sim(parameters={"n": 1})}
    async with client(kube) as http:
        first = await http.post(f"{NS}/tasks", json=body, headers={"Idempotency-Key": "order-17"})
        again = await http.post(f"{NS}/tasks", json=body, headers={"Idempotency-Key": "order-17"})
        assert (first.status_code, again.status_code) == (201, 200), again.text
        assert first.json()["name"] == again.json()["name"] and again.headers["idempotent-replayed"] == "true"
        other = await http.post(f"{NS}/tasks", json=sim(parameters={"n": 2}), headers={"Idempotency-Key": "order-17"})
        assert_error(other, 409, "IdempotencyKeyReused")
        await settle(kube)
        other_type = await http.post(f"{NS}/tasks", json={"spec": {"type": "sim", "priority": 3}}, headers={"Idempotency-Key": "order-17"})
        assert_error(other_type, 409)
        assert_error(await http.post(f"{NS}/tasks", json=body, headers={"Idempotency-Key": "has space"}), 422, field="Idempotency-Key")
        fresh = await http.post(f"{NS}/tasks", json=body, headers={"Idempotency-Key": "order-18"})
        assert fresh.status_code == 201 and fresh.json()["name"] != first.json()["name"]
    assert len(kube.created()) == 2


async def test_batch_is_all_or_nothing_with_a_result_per_item(kube: FakeKube) -> None:
    async with client(kube) as http:
        bad = await http.post(f"{NS}/tasks:batch", json={"items": [sim(), sim(parameters={"n": 99}), sim()]})
        error = assert_error(bad, 422, field="items[1].spec.parameters.n")
        items = bad.json()["items"]
        assert [i["status"] for i in items] == [424, 422, 424]
        assert items[1]["error"]["details"][0]["field"] == "items[1].spec.parameters.n"
        assert "nothing was created" in error["message"]
        schema_bad = await http.post(f"{NS}/tasks:batch", json={"items": [sim(), {"spec": {"type": "sim", "oops": 1}}]})
        assert_error(schema_bad, 422, field="items[1].spec.oops")
        assert [i["status"] for i in schema_bad.json()["items"]] == [424, 422]
        duplicate = await http.post(f"{NS}/tasks:batch", json={"items": [{**sim(), "name": "x"}, {**sim(), "name": "x"}]})
        assert_error(duplicate, 409)
        assert kube.created() == []
        good = await http.post(f"{NS}/tasks:batch", json={"items": [sim(), {**sim(), "name": "named"}]})
        assert good.status_code == 201, good.text
        results = good.json()["items"]
        assert [r["status"] for r in results] == [201, 201] and results[1]["name"] == "named"
        assert_error(await http.post(f"{NS}/tasks:batch", json={"items": []}), 422, field="items")
    assert len(kube.created()) == 2


async def test_batch_idempotency_replays_every_item(kube: FakeKube) -> None:
    body = {"items": [sim(), sim(parameters={"n": 2})]}
    async with client(kube) as http:
        first = await http.post(f"{NS}/tasks:batch", json=body, headers={"Idempotency-Key": "b-1"})
        again = await http.post(f"{NS}/tasks:batch", json=body, headers={"Idempotency-Key": "b-1"})
    assert first.status_code == again.status_code == 201, again.text
    assert [r["status"] for r in again.json()["items"]] == [200, 200]
    assert [r["name"] for r in first.json()["items"]] == [r["name"] for r in again.json()["items"]]
    assert len(kube.created()) == 2


async def test_list_filters_and_pages(kube: FakeKube) -> None:
    for i in range(7):
        kube.put("tasks", "team-a", f"t{i}", {"type": "sim", "queue": "default"},
                 {"phase": "Succeeded" if i % 2 else "Running", "queue": "default"}, labels={"parity": str(i % 2)})
    async with client(kube) as http:
        await settle(kube)
        seen: list[str] = []
        params: dict[str, Any] = {"limit": 2, "phase": "Running", "labelSelector": "parity=0"}
        while True:
            page = (await http.get(f"{NS}/tasks", params=params)).json()
            seen += [t["name"] for t in page["items"]]
            if not page["continue"]:
                assert page["remainingItemCount"] == 0
                break
            assert page["remainingItemCount"] > 0
            params["continue"] = page["continue"]
        assert seen == ["t0", "t2", "t4", "t6"]
        other = await http.get(f"{NS}/tasks", params={"continue": params["continue"], "phase": "Succeeded"})
        assert_error(other, 422, field="continue")
        assert len((await http.get(f"{NS}/tasks", params={"type": "other"})).json()["items"]) == 0
        assert len((await http.get(f"{NS}/tasks", params={"labelSelector": "parity notin (0)"})).json()["items"]) == 3


async def test_cancel_and_retry_follow_the_phase(kube: FakeKube) -> None:
    kube.put("tasks", "team-a", "run", {"type": "sim", "rerun": 0}, {"phase": "Running", "run": 0})
    kube.put("tasks", "team-a", "done", {"type": "sim", "rerun": 0}, {"phase": "Succeeded", "run": 0})
    kube.put("tasks", "team-a", "bad", {"type": "sim", "rerun": 0, "cancel": True}, {"phase": "Failed", "run": 0})
    async with client(kube) as http:
        cancelled = await http.post(f"{NS}/tasks/run:cancel")
        assert cancelled.status_code == 202 and cancelled.json()["spec"]["cancel"] is True
        assert (await http.post(f"{NS}/tasks/run:cancel")).status_code == 202  # asking twice is fine
        assert_error(await http.post(f"{NS}/tasks/done:cancel"), 409, "AlreadyFinished")
        assert_error(await http.post(f"{NS}/tasks/run:retry"), 409, "NotRetryable")
        assert_error(await http.post(f"{NS}/tasks/done:retry"), 409, "NotRetryable")
        assert_error(await http.post(f"{NS}/tasks/bad:retry", json={"resourceVersion": "1"}), 409, "Conflict")
        retried = await http.post(f"{NS}/tasks/bad:retry")
        assert retried.status_code == 202, retried.text
        assert retried.json()["spec"]["rerun"] == 1 and retried.json()["spec"]["cancel"] is False
        assert not retried.json()["finished"]  # Failed, but for run 0: run 1 is pending
        assert_error(await http.post(f"{NS}/tasks/bad:retry"), 409, "RerunPending")
        assert_error(await http.post(f"{NS}/tasks/ghost:cancel"), 404)
    patches = [c[2]["body"] for c in kube.calls if c[0] == "PATCH"]
    assert all("resourceVersion" in p["metadata"] for p in patches)


async def test_get_falls_back_to_the_api_server_on_a_cache_miss(kube: FakeKube) -> None:
    async with client(kube) as http:
        kube.objects[("tasks", "team-a", "fresh")] = {"metadata": {"name": "fresh", "namespace": "team-a", "uid": "u",
                                                                   "resourceVersion": "5"}, "spec": {"type": "sim"}}
        response = await http.get(f"{NS}/tasks/fresh")
    assert response.status_code == 200 and response.json()["phase"] == "Pending"


async def test_registry_lists_types_with_schema_and_queues_with_counts(kube: FakeKube) -> None:
    async with client(kube) as http:
        types = (await http.get(f"{NS}/tasktypes")).json()["items"]
        queues = (await http.get(f"{NS}/taskqueues")).json()["items"]
        one = (await http.get(f"{NS}/taskqueues/default")).json()
    assert types[0]["name"] == "sim" and types[0]["parametersSchema"]["properties"]["n"]["maximum"] == 10
    assert (queues[0]["pending"], queues[0]["running"], queues[0]["maxRunning"]) == (1, 2, 2) == (one["pending"], one["running"], one["maxRunning"])


async def test_health_readiness_metrics_and_openapi(kube: FakeKube) -> None:
    async with client(kube, token=None) as http:
        assert (await http.get("/healthz")).json()["status"] == "ok"
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["cache:tasks"] == "ok"
        await http.get(f"{NS}/tasks")
        metrics = (await http.get("/metrics")).text
        assert 'kubetask_gateway_requests_total{method="GET",route="/api/v1/namespaces/{namespace}/tasks",status="401"} 1.0' in metrics
        assert "kubetask_gateway_request_duration_seconds_bucket" in metrics
        spec = (await http.get("/openapi.json")).json()
        assert (await http.get("/docs")).status_code == 200
    paths = spec["paths"]
    for path in ("tasks", "tasks:batch", "tasks:watch", "tasks/{name}", "tasks/{name}:watch", "tasks/{name}:cancel",
                 "tasks/{name}:retry", "tasks/{name}/log", "tasktypes", "taskqueues"):
        assert f"/api/v1/namespaces/{{namespace}}/{path}" in paths, path
    assert "Idempotency-Key" in [p["name"] for p in paths["/api/v1/namespaces/{namespace}/tasks"]["post"]["parameters"]]


async def test_a_batch_over_the_limit_is_413(kube: FakeKube) -> None:
    async with client(kube, batch_max_items=2) as http:
        response = await http.post(f"{NS}/tasks:batch", json={"items": [sim(), sim(), sim()]})
    assert_error(response, 413, field="items")
    assert kube.created() == []


async def test_a_replay_returns_the_task_even_after_its_type_is_gone(kube: FakeKube) -> None:
    body = sim(parameters={"n": 4})
    async with client(kube) as http:
        first = await http.post(f"{NS}/tasks", json=body, headers={"Idempotency-Key": "k"})
        await kube.delete("/apis/kubetask.io/v1alpha1/namespaces/team-a/tasktypes/sim")
        await settle(kube)
        again = await http.post(f"{NS}/tasks", json=body, headers={"Idempotency-Key": "k"})
        fresh = await http.post(f"{NS}/tasks", json=body, headers={"Idempotency-Key": "other"})
    assert (first.status_code, again.status_code) == (201, 200) and first.json()["uid"] == again.json()["uid"]
    assert_error(fresh, 422, field="spec.type")


async def test_dependencies_a_self_dependency_or_a_cycle_is_422_naming_spec_after(kube: FakeKube) -> None:
    async with client(kube) as http:
        own = await http.post(f"{NS}/tasks", json={**sim(parameters={"n": 1}, after=["me"]), "name": "me"})
        assert "cannot depend on itself" in assert_error(own, 422, field="spec.after")["details"][0]["message"]
        first = await http.post(f"{NS}/tasks", json={**sim(parameters={"n": 1}, after=["b"]), "name": "a"})
        assert first.status_code == 201, first.text  # b does not exist yet: it is waited for
        await asyncio.sleep(0.1)  # the gateway's cache sees a
        cycle = await http.post(f"{NS}/tasks", json={**sim(parameters={"n": 1}, after=["a"]), "name": "b"})
        assert "b → a → b" in assert_error(cycle, 422, field="spec.after")["details"][0]["message"]
        duplicate = await http.post(f"{NS}/tasks", json={**sim(parameters={"n": 1}, after=["x", "x"]), "name": "c"})
        assert_error(duplicate, 422, field="spec.after")
