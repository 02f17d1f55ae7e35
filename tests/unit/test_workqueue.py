"""The work queue's promises: one queued entry per key, never two runs of a key at once, a key
added during its run runs again after it, failures back off exponentially up to the cap."""

from __future__ import annotations

import asyncio

from kubetask.operator.workqueue import DEFERRED, WorkQueue, backoff_delay, run_workers


def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    assert [backoff_delay(n, 0.05, 300, jitter=1.0) for n in (1, 2, 3, 4)] == [0.05, 0.1, 0.2, 0.4]
    assert backoff_delay(1, 0.05, 300, jitter=0.0) == 0.025  # half: the least equal jitter gives
    assert backoff_delay(30, 0.05, 300, jitter=1.0) == 300  # capped (about 5 minutes)
    assert backoff_delay(10_000, 0.05, 300, jitter=0.5) == 225  # no overflow however many failures


async def test_many_adds_of_one_key_collapse_into_one_entry() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for _ in range(100):
        queue.add("task-a")
    queue.add("task-b")
    assert len(queue) == 2
    assert await queue.get() == "task-a"
    assert await queue.get() == "task-b"


async def test_a_key_added_while_it_runs_runs_again_after_never_alongside() -> None:
    queue: WorkQueue[str] = WorkQueue()
    running: set[str] = set()
    overlaps: list[str] = []
    runs: list[str] = []
    release = asyncio.Event()

    async def process(key: str) -> None:
        if key in running:
            overlaps.append(key)
        running.add(key)
        runs.append(key)
        if len(runs) == 1:
            await release.wait()
        running.discard(key)

    workers = asyncio.create_task(run_workers(queue, process, lambda key, error: 0.0, workers=4))
    queue.add("q")
    await asyncio.sleep(0.01)
    queue.add("q")  # while the first run is in progress, with three idle workers
    queue.add("q")
    await asyncio.sleep(0.01)
    assert runs == ["q"]  # not started alongside
    release.set()
    await asyncio.sleep(0.05)
    workers.cancel()
    assert runs == ["q", "q"]  # the two adds during the run became exactly one more run
    assert not overlaps


async def test_a_failing_key_is_retried_with_backoff_until_it_succeeds() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=0.01, max_delay=0.04, jitter=lambda: 1.0)
    seen: list[float] = []
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    async def process(key: str) -> None:
        seen.append(loop.time())
        if len(seen) < 5:
            raise RuntimeError("the cluster said no")
        done.set()

    errors: list[BaseException] = []
    workers = asyncio.create_task(run_workers(queue, process, lambda key, error: errors.append(error) or 0.0, workers=2))
    queue.add("t")
    await asyncio.wait_for(done.wait(), timeout=5)
    workers.cancel()
    gaps = [b - a for a, b in zip(seen, seen[1:])]
    assert len(errors) == 4 and len(seen) == 5
    for gap, expected in zip(gaps, [0.01, 0.02, 0.04, 0.04]):  # doubling, then the cap
        assert gap >= expected * 0.9
    assert queue.failures("t") == 0  # success forgot them


async def test_a_deferred_run_leaves_the_failures_to_the_work_it_left_in_flight() -> None:
    """An admission round returns DEFERRED while its Job creates run on: the backoff keeps growing
    across rounds that fail in flight, and only the work's own success forgets it."""
    queue: WorkQueue[str] = WorkQueue(base_delay=0.01, max_delay=1.0, jitter=lambda: 1.0)
    runs: list[int] = []
    done = asyncio.Event()

    async def in_flight(failures_left: int) -> None:
        await asyncio.sleep(0)
        if failures_left:
            queue.retry("q")  # what the round's callback does on a refusal
        else:
            queue.forget("q")
            done.set()

    async def process(key: str) -> object:
        runs.append(queue.failures(key))
        asyncio.create_task(in_flight(3 - len(runs)))
        return DEFERRED

    workers = asyncio.create_task(run_workers(queue, process, lambda key, error: 0.0, workers=2))
    queue.add("q")
    await asyncio.wait_for(done.wait(), timeout=5)
    workers.cancel()
    assert runs == [0, 1, 2]  # each retry counted on top of the last: the runs did not forget them
    assert queue.failures("q") == 0  # the work's success did


async def test_retry_after_is_honoured_and_fresh_news_skips_the_wait() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=0.01, max_delay=10)
    delay = queue.retry("k", at_least=5.0)
    assert delay == 5.0 and queue.waiting_retry == 1 and len(queue) == 0
    queue.add("k")  # an event for it: run now, the pending retry is dropped
    assert queue.waiting_retry == 0 and len(queue) == 1
    queue.drop("k")
    assert queue.failures("k") == 0


async def test_an_earlier_retry_is_not_pushed_later() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=0.01, max_delay=10, jitter=lambda: 1.0)
    queue.add_after("k", 0.02)
    queue.add_after("k", 5.0)
    await asyncio.sleep(0.05)
    assert len(queue) == 1


async def test_urgent_keys_run_first_and_an_upgrade_leaves_no_second_run() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for name in ("new-1", "new-2", "finished", "new-3"):
        queue.add(name)
    queue.add("finished", urgent=True)  # already queued: moves to the urgent lane
    queue.add("done-job", urgent=True)
    order = [await queue.get() for _ in range(5)]
    assert order[:2] == ["finished", "done-job"] and order[2:] == ["new-1", "new-2", "new-3"]
    assert len(queue) == 0
    for key in order:
        queue.done(key)
    queue.add("x")
    assert await asyncio.wait_for(queue.get(), 1) == "x"  # the stale entry of "finished" was skipped, not returned
