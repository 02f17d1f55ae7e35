"""A keyed, deduplicating, rate-limited work queue: the operator's retry and coalescing engine.

Kopf never retries `@kopf.on.event` handlers, and its retrying handler kinds (on.create/update,
timers) keep progress and diff-base annotations in every object: a write per Task per handler
run. So the event handlers only *enqueue keys* here and workers do the reconciling, with the
semantics of client-go's workqueue (which controller-runtime builds on):

- A key is queued at most once: many events for one Task while it waits collapse into one
  reconcile, and that reconcile reads the Task's latest state (level-triggered).
- A key is processed by at most one worker at a time. A key added while it is being processed is
  queued again once that run ends, so no event is lost and no two runs of one key overlap (this
  is what serializes admission per queue).
- Two lanes: a key added as `urgent` (a Job that finished: a result to record, a slot to
  refill) runs before the others, so a burst of new Tasks does not delay finished ones' status.
- A failed key is retried after a per-key exponential backoff with jitter (base doubling up to a
  cap, like `ItemExponentialFailureRateLimiter`); success forgets the failures. An `add` while a
  retry is pending runs the key at once: fresh news beats waiting.

No maintained asyncio library offers these semantics (asyncio.Queue has no keys, dedup or
per-key backoff), so it is written here, small and unit-tested.
"""

from __future__ import annotations

import asyncio
import heapq
import random
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
URGENT, NORMAL = 0, 1
# What `process` returns when it left work in flight that reports its own outcome (forget or
# retry): its key's failures are neither forgotten nor counted yet.
DEFERRED = object()


def backoff_delay(failures: int, base: float, cap: float, jitter: float) -> float:
    """Seconds to wait before retry number `failures` (1 = first retry).

    base·2^(failures-1), capped, then "equal jitter": a random point in the upper half, so retries
    of many keys that failed together (a quota refusing a burst) spread out instead of arriving in
    lockstep. `jitter` is a number in [0, 1), random in production, fixed in tests.
    """
    exponent = min(max(failures - 1, 0), 62)  # 2**62 · base is far past any cap
    delay = min(cap, base * float(2 ** exponent))
    return delay / 2 + delay / 2 * jitter


class WorkQueue(Generic[K]):
    def __init__(self, base_delay: float = 0.05, max_delay: float = 300.0,
                 jitter: Callable[[], float] = random.random) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._jitter = jitter
        # A heap of (lane, sequence, key); each entry comes with one token in _tokens. An entry
        # whose key was re-queued in a better lane is stale and skipped when popped.
        self._heap: list[tuple[int, int, K]] = []
        self._tokens: asyncio.Queue[None] = asyncio.Queue()
        self._sequence = 0
        self._dirty: dict[K, int] = {}  # queued (or to be queued again when its run ends) → its lane
        self._processing: set[K] = set()
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        return len(self._dirty) - sum(1 for key in self._processing if key in self._dirty)

    @property
    def waiting_retry(self) -> int:
        return len(self._timers)

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)

    def add(self, key: K, urgent: bool = False) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        lane = URGENT if urgent else NORMAL
        if key in self._dirty and self._dirty[key] <= lane:
            return
        self._dirty[key] = lane
        if key in self._processing:
            return  # queued again by done()
        self._push(key, lane)

    def _push(self, key: K, lane: int) -> None:
        self._sequence += 1
        heapq.heappush(self._heap, (lane, self._sequence, key))
        self._tokens.put_nowait(None)

    def add_after(self, key: K, delay: float) -> None:
        """Add the key after `delay` seconds; an earlier pending add of the same key wins."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        existing = self._timers.get(key)
        if existing is not None and existing.when() <= loop.time() + delay:
            return
        if existing is not None:
            existing.cancel()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def retry(self, key: K, at_least: float = 0.0) -> float:
        """The key failed: add it back after its backoff (or `at_least`, e.g. a Retry-After)."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = max(at_least, backoff_delay(failures, self.base_delay, self.max_delay, self._jitter()))
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """The key succeeded: its next failure starts the backoff from the beginning."""
        self._failures.pop(key, None)

    def drop(self, key: K) -> None:
        """The object is gone: no retry pending, no failures remembered (a queued run still runs,
        and finds nothing to do)."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._failures.pop(key, None)

    async def get(self) -> K:
        while True:
            await self._tokens.get()
            lane, _, key = heapq.heappop(self._heap)
            if self._dirty.get(key) != lane or key in self._processing:
                continue  # stale: the key moved to the urgent lane, or already runs
            del self._dirty[key]
            self._processing.add(key)
            return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._push(key, self._dirty[key])

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)


async def run_workers(queue: WorkQueue[K], process: Callable[[K], Awaitable[object | None]],
                      on_error: Callable[[K, BaseException], float | None], workers: int) -> None:
    """Run `workers` loops until cancelled. `process` succeeding forgets the key's failures (unless
    it returns DEFERRED: then whatever it left in flight calls `queue.forget` or `queue.retry`);
    its raising calls `on_error`, which returns the least delay before the retry (None: no retry)."""

    async def worker() -> None:
        while True:
            key = await queue.get()
            try:
                if await process(key) is not DEFERRED:
                    queue.forget(key)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # every failure is a retry: API errors, time-outs, our own bugs
                at_least = on_error(key, error)
                if at_least is not None:
                    queue.retry(key, at_least)
            finally:
                queue.done(key)

    await asyncio.gather(*(worker() for _ in range(workers)))
