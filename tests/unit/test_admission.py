"""admit: which waiting Tasks start now; the per-Task locks and memory around those decisions."""

from __future__ import annotations

import asyncio

from kubetask.operator.admission import Candidate, QueueState, admission_order, admit
from kubetask.operator.controller import KeyedLocks
from kubetask.operator.memory import Memory, Reservation


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
    memory = Memory()
    memory.remember_write("uid-1", {"metadata": {"resourceVersion": "120"}, "status": {"phase": "Queued"}})
    older = {"metadata": {"uid": "uid-1", "resourceVersion": "100"}, "status": {"phase": "Pending"}}
    assert memory.freshest_status(older) == {"phase": "Queued"}  # stale read guarded
    assert memory.freshest(older)["metadata"]["resourceVersion"] == "120"
    memory.observed("uid-1", "110")  # an event from before our write: still needed
    assert memory.freshest_status(older) == {"phase": "Queued"}
    assert memory.is_own_write("uid-1", "120") and not memory.is_own_write("uid-1", "121")  # its echo: not reconciled again
    assert not memory.is_own_write("uid-2", "120")
    memory.observed("uid-1", "120")  # the watch has our write now
    assert memory.freshest_status(older) == {"phase": "Pending"}  # nothing held for it
    assert memory.sizes()["written"] == 0


def test_every_reservation_of_a_deleted_task_is_released() -> None:
    memory = Memory()
    memory.reserve("uid-1", 0, Reservation("ns", "q", 1))
    memory.reserve("uid-1", 1, Reservation("ns", "q", 0))
    memory.reserve("uid-2", 0, Reservation("ns", "q", 0))
    assert len(memory.reserved_in("ns", "q")) == 3
    memory.forget_task("uid-1")
    assert [key for key, _ in memory.reserved_in("ns", "q")] == [("uid-2", 0)]
    memory.release("uid-2", 0)
    assert memory.reserved_in("ns", "q") == [] and memory.sizes()["reservations"] == 0


def test_pending_pod_facts_are_replaced_wholesale_and_changes_reported() -> None:
    from kubetask.operator.status import PodSummary
    memory = Memory()
    stuck = (PodSummary("p", "t", "Pending", unschedulable="0/5 nodes are available", job_name="j"),)
    assert memory.replace_pending_pods({("ns", "j"): stuck}) == {("ns", "j")}
    assert memory.pending_pods("ns", "j") == stuck
    assert memory.replace_pending_pods({("ns", "j"): stuck}) == set()  # nothing changed: no reconcile asked for
    assert memory.replace_pending_pods({}) == {("ns", "j")}  # it runs now (or is gone): forgotten
    assert memory.pending_pods("ns", "j") == ()


def test_a_finished_job_deleted_before_its_task_was_reconciled_keeps_its_outcome_until_settled() -> None:
    from kubetask.operator.status import JobSummary
    memory = Memory()
    done = JobSummary("j", "ns", "uid-1", "q", 0, 0, "t", finished="Complete", succeeded=1)
    memory.job_deleted(done)
    memory.job_deleted(JobSummary("k", "ns", "uid-2", "q", 0, 0, "t"))  # deleted while running: nothing to keep
    assert memory.deleted_job("uid-1", 0) == done and memory.deleted_job("uid-2", 0) is None
    memory.settled("uid-1", 0)
    assert memory.deleted_job("uid-1", 0) is None and memory.sizes()["deleted_jobs"] == 0
