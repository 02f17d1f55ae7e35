"""The gateway refuses a submission naming a TaskWebhook that does not exist or whose Ready
condition says it cannot deliver (a missing Secret, a refused url), with a 422 naming spec.webhook.
It reads the TaskWebhook, never the Secret (it has no access to Secrets)."""

from __future__ import annotations

from typing import Any

import pytest

from api_fakes import FakeKube, client, seed
from kubetask.api import submit

NS = "/api/v1/namespaces/team-a"
pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def kube() -> FakeKube:
    fake = FakeKube()
    seed(fake)
    return fake


def ready(status: str, reason: str, message: str = "", generation: int = 1) -> dict[str, Any]:
    return {"conditions": [{"type": "Ready", "status": status, "reason": reason, "message": message,
                            "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": generation}]}


def put_webhook(kube: FakeKube, name: str, status: dict[str, Any] | None) -> None:
    kube.put("taskwebhooks", "team-a", name, {"url": "https://hooks.example.com/", "secretRef": {"name": "hook-key"}}, status)


async def submit_with(kube: FakeKube, webhook: str) -> Any:
    async with client(kube) as http:
        return await http.post(f"{NS}/tasks", json={"spec": {"type": "sim", "webhook": webhook}})


async def test_a_missing_webhook_is_422_naming_the_field(kube: FakeKube) -> None:
    response = await submit_with(kube, "nope")
    assert response.status_code == 422, response.text
    [detail] = response.json()["error"]["details"]
    assert detail == {"field": "spec.webhook", "message": "TaskWebhook 'nope' does not exist in namespace team-a"}
    assert kube.created() == []


async def test_a_webhook_whose_secret_is_missing_is_422_with_the_operators_reason(kube: FakeKube) -> None:
    put_webhook(kube, "hooks", ready("False", "SecretNotFound", "Secret 'hook-key' does not exist; deliveries wait for it"))
    response = await submit_with(kube, "hooks")
    assert response.status_code == 422, response.text
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == "spec.webhook"
    assert "not ready (SecretNotFound)" in detail["message"] and "hook-key" in detail["message"]
    assert not any("secrets" in path for _, path, _ in kube.calls), "the gateway never reads Secrets"


async def test_a_ready_or_not_yet_checked_webhook_is_accepted(kube: FakeKube) -> None:
    put_webhook(kube, "hooks", ready("True", "Ready"))
    assert (await submit_with(kube, "hooks")).status_code == 201
    put_webhook(kube, "fresh", None)  # the operator has not looked at it yet
    assert (await submit_with(kube, "fresh")).status_code == 201
    put_webhook(kube, "fixed", ready("False", "DestinationRefused", "10.0.0.1 is a private address", generation=0))
    assert (await submit_with(kube, "fixed")).status_code == 201, "a verdict about an older generation is not held against it"


def test_webhook_problem_is_pure() -> None:
    assert submit.webhook_problem("h", None, "ns") is not None
    assert submit.webhook_problem("h", {"metadata": {"generation": 2}, "status": ready("False", "SecretKeyMissing", generation=2)}, "ns")
    assert submit.webhook_problem("h", {"metadata": {"generation": 2}, "status": ready("True", "Ready", generation=2)}, "ns") is None
