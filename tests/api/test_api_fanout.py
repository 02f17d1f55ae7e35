"""The gateway and fan-out Tasks (spec.items), in process against the in-memory API: a structured
422 naming the field for every bad fan-out, and the accepted one stored as given."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from api_fakes import FakeKube, client, seed

NS = "/api/v1/namespaces/team-a"
pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def kube() -> FakeKube:
    fake = FakeKube()
    seed(fake)
    return fake


def sim(**spec: Any) -> dict[str, Any]:
    return {"spec": {"type": "sim", **spec}}


def error_fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text[:1000]
    error = response.json()["error"]
    assert error["reason"] == "Invalid" and error["message"]
    return [d["field"] for d in error["details"]]


@pytest.mark.parametrize(("body", "field"), [
    (sim(items=[{"n": 1}] * 10_000), "spec.items"),  # the example: 10,000 items over the bound of 1,000
    (sim(items=[]), "spec.items"),
    (sim(items=["a.csv"]), "spec.items[0]"),
    (sim(items=[{"blob": "x" * 200}] * 1000), "spec.items"),  # over 128 KiB serialized
    (sim(parallelism=3), "spec.parallelism"),
    (sim(items=[{"n": 1}], maxFailedItems=2), "spec.maxFailedItems"),
    (sim(items=[{"n": 1}], parallelism=0), "spec.parallelism"),
    (sim(items=[{"n": 1}, {"n": 30}]), "spec.items[1].n"),  # each item merged over the parameters meets the TaskType's schema
])
async def test_bad_fan_outs_are_422_naming_the_field(kube: FakeKube, body: dict[str, Any], field: str) -> None:
    async with client(kube, max_body_bytes=1024 * 1024) as http:  # the default body limit: 10,000 items are 80 KB
        response = await http.post(f"{NS}/tasks", json=body)
    assert field in error_fields(response)
    assert not kube.created()


async def test_a_fan_out_is_stored_as_given(kube: FakeKube) -> None:
    async with client(kube) as http:
        response = await http.post(f"{NS}/tasks", json=sim(items=[{"n": i} for i in range(5)], parallelism=2, maxFailedItems=1))
    assert response.status_code == 201, response.text
    [stored] = kube.created()
    assert stored["spec"]["items"] == [{"n": i} for i in range(5)]
    assert stored["spec"]["parallelism"] == 2 and stored["spec"]["maxFailedItems"] == 1


async def test_the_task_view_shows_status_items(kube: FakeKube) -> None:
    items = {"total": 2, "succeeded": 1, "failed": 1, "completedIndexes": "0", "failedIndexes": "1",
             "results": [{"index": 0, "result": {"rows": 3}}], "resultsOmitted": 0,
             "failures": [{"index": 1, "exitCode": 5, "reason": "Error", "message": "bad"}], "failuresOmitted": 0}
    kube.put("tasks", "team-a", "fan", {"type": "sim", "items": [{"n": 1}, {"n": 2}]},
             {"phase": "Failed", "run": 0, "items": items, "result": {"total": 2, "succeeded": 1, "failed": 1, "failedIndexes": "1"}})
    async with client(kube) as http:
        response = await http.get(f"{NS}/tasks/fan")
    assert response.status_code == 200, response.text
    assert response.json()["items"] == items
