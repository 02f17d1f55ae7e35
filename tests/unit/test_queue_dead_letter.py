"""TaskQueue status.deadLetter and the kubetask_queue_dead_letter gauge, from the finished-Task index
(Controller.publish_queue_status with a fake API; the real one is tests/e2e/test_gateway_deadletter.py)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from kubetask.kube import Kube
from kubetask.operator import metrics
from kubetask.operator.config import OperatorSettings
from kubetask.operator.controller import Controller, QueueSpec, Views
from kubetask.operator.records import FinishedTask

pytestmark = pytest.mark.timeout(10)


class FakeKube:
    def __init__(self) -> None:
        self.patches: list[tuple[str, Any]] = []

    async def patch(self, path: str, body: Any, *args: Any, **params: Any) -> dict[str, Any]:
        self.patches.append((path, body))
        return {}


def record(name: str, phase: str, queue: str = "default", namespace: str = "team-a") -> FinishedTask:
    return FinishedTask(namespace=namespace, name=name, uid=f"u-{name}", type="sim", queue=queue, phase=phase, started=1.0,
                        finished=2.0, retention_seconds=None, gitops=None, retained_noted=False, schedule=None)


def views(finished: list[FinishedTask], queues: dict[tuple[str, str], QueueSpec], calls: list[int]) -> Views:
    def finished_tasks() -> list[FinishedTask]:
        calls.append(1)
        return list(finished)

    return Views(tasks=lambda ns: [], task_by_uid=lambda uid: None, all_task_uids=lambda: [], jobs_of_task=lambda uid: [],
                 running_jobs=lambda ns, q: [], all_running_jobs=lambda: [], tasktype=lambda ns, name: None,
                 queue=lambda ns, name: queues.get((ns, name)), all_queues=lambda: list(queues), finished_tasks=finished_tasks)


def queue(status: dict[str, Any] | None = None) -> QueueSpec:
    return QueueSpec(max_running=2, max_gpus=None, paused=False, generation=1, status=status or {})


async def test_failed_tasks_are_counted_per_queue_once_per_round() -> None:
    finished = [record("a", "Failed"), record("b", "Failed"), record("c", "Succeeded"), record("d", "Cancelled"),
                record("e", "Failed", queue="gpu"), record("f", "Failed", namespace="team-b")]
    queues = {("team-a", "default"): queue(), ("team-a", "gpu"): queue(), ("team-a", "idle"): queue(), ("team-b", "default"): queue()}
    calls: list[int] = []
    kube = FakeKube()
    controller = Controller(cast(Kube, kube), OperatorSettings(queue_status_interval=60))
    for namespace, name in sorted(queues):
        await controller.publish_queue_status(namespace, name, views(finished, queues, calls))
    written = {path.split("/")[-2]: body["status"]["deadLetter"] for path, body in kube.patches if "/team-a/" in path}
    assert written == {"default": 2, "gpu": 1, "idle": 0}
    assert [body["status"]["deadLetter"] for path, body in kube.patches if "/team-b/" in path] == [1]
    assert len(calls) == 1  # one pass over the finished index for the whole round, not one per queue
    assert metrics.QUEUE_DEAD_LETTER.labels("team-a", "default")._value.get() == 2
    assert metrics.QUEUE_DEAD_LETTER.labels("team-a", "idle")._value.get() == 0


async def test_an_unchanged_count_writes_nothing_and_a_new_round_counts_again() -> None:
    finished = [record("a", "Failed")]
    calls: list[int] = []
    kube = FakeKube()
    controller = Controller(cast(Kube, kube), OperatorSettings(queue_status_interval=0))  # every publish is a new round
    current = {("team-a", "default"): queue({"pending": 0, "running": 0, "runningGpus": 0, "throttled": 0, "nextStartTime": None,
                                             "deadLetter": 1, "observedGeneration": 1})}
    await controller.publish_queue_status("team-a", "default", views(finished, current, calls))
    assert kube.patches == []
    finished.append(record("b", "Failed"))
    await controller.publish_queue_status("team-a", "default", views(finished, current, calls))
    assert [body["status"]["deadLetter"] for _, body in kube.patches] == [2] and len(calls) == 2
