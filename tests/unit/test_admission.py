"""admit: which waiting Tasks start now; the per-Task locks and memory around those decisions."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from kubetask.operator.admission import Candidate, QueueState, admission_order, admit
from kubetask.operator.config import OperatorSettings
from kubetask.operator.controller import Controller, KeyedLocks


def c(name: str, priority: int = 0, created: str = "2026-11-24T10:00:00Z", gpu: int = 0) -> Candidate:
    return Candidate(uid=name, name=name, priority=priority, created=created, gpu=gpu)


def names(cands: list[Candidate]) -> list[str]:
    return [x.name for x in cands]


def test_priority_first_then_first_come_first_served() -> None:
    waiting = [c("old-low", 0, "2026-11-24T10:00:00Z"), c("new-high", 5, "2026-11-24T10:00:09Z"),
               c("mid-high", 5, "2026-11-24T10:00:05Z"), c("negative", -3, "2026-11-24T09:00:00Z")]
    assert names(admission_order(waiting)) == ["mid-high", "new-high", "old-low", "negative"]


def test_concurrency_limit_counts_running_work() -> None:
    waiting = [c("a"), c("b", created="2026-11-24T10:00:01Z"), c("c", created="2026-11-24T10:00:02Z")]
    assert names(admit(waiting, QueueState(max_running=3, running=1))) == ["a", "b"]
    assert admit(waiting, QueueState(max_running=3, running=3)) == []
    assert admit(waiting, QueueState(max_running=0, running=0)) == []


def test_paused_queue_admits_nothing() -> None:
    assert admit([c("a")], QueueState(max_running=10, running=0, paused=True)) == []


def test_gpu_budget_is_strict_order() -> None:
    waiting = [c("big", 10, gpu=4), c("small", 0, gpu=1)]
    # 3 GPUs left: the big Task waits, and the small one does not overtake it (no starvation).
    assert admit(waiting, QueueState(max_running=10, running=1, max_gpus=4, running_gpus=1)) == []
    assert names(admit(waiting, QueueState(max_running=10, running=0, max_gpus=5))) == ["big", "small"]
    assert names(admit([c("cpu-only")], QueueState(max_running=10, running=0, max_gpus=0))) == ["cpu-only"]


async def test_keyed_locks_exclude_per_key_and_forget_released_keys() -> None:
    locks, inside, overlaps = KeyedLocks(), set[str](), list[bool]()

    async def work(key: str) -> None:
        async with locks.hold(key):
            overlaps.append(key in inside)
            inside.add(key)
            await asyncio.sleep(0.001)
            inside.discard(key)

    await asyncio.gather(*(work(f"task-{i % 5}") for i in range(50)))
    assert len(overlaps) == 50 and not any(overlaps)  # never two holders of one key at once
    assert len(locks) == 0  # nothing kept once every holder left


def test_a_remembered_status_write_is_forgotten_once_the_watch_catches_up() -> None:
    controller = Controller(cast(Any, None), OperatorSettings())
    controller._remember("uid-1", {"metadata": {"resourceVersion": "120"}, "status": {"phase": "Queued"}})  # noqa: SLF001
    older = {"metadata": {"uid": "uid-1", "resourceVersion": "100"}, "status": {"phase": "Pending"}}
    assert controller._freshest_status(older) == {"phase": "Queued"}  # noqa: SLF001  (stale read guarded)
    controller.observed("uid-1", "110")  # an event from before our write: still needed
    assert controller._freshest_status(older) == {"phase": "Queued"}  # noqa: SLF001
    controller.observed("uid-1", "120")  # the watch has our write now
    assert controller._freshest_status(older) == {"phase": "Pending"}  # noqa: SLF001  (nothing held for it)
