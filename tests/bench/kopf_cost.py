"""Kopf's own cost per listed Task against the operator's informer, in one process, no cluster.

A restart with 10,000 Tasks was CPU-bound in Kopf's per-object machinery (docs/benchmarks.md,
docs/operator.md "A restart with many Tasks"), which is why Tasks and Jobs now come through
kubetask's own informer (operator/kubetask/operator/informer.py). This measures both paths on
the same N finished Tasks, as a listing yields them, so the figure is Kopf's or kubetask's work,
not the API server's or the JSON decoding's:

- `floor`: Kopf's real watcher (its per-object streams and workers, the start-up index barrier
  with kubetask's ToggleSet fix) and its processing of each event (memories, loggers, cause
  detection, handler invocation) for one empty Task event handler and no index: what Kopf costs
  per object whatever the handler does, the least Tasks cost on Kopf's path;
- `operator`: what the operator does with a listed Task now: its informer's Store, fed the
  listing in pages of 500, runs the `tasks` index function (task_entries) and the Task event
  function (task_changed) on each.

    python tests/bench/kopf_cost.py [--tasks 10000] [--rounds 3]

It reaches into Kopf's reactor (`kopf._core`, private): a measuring tool for the Kopf version
pyproject.toml pins, not part of the operator.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import kopf
from kopf._cogs.aiokits import aiotoggles
from kopf._cogs.clients import watching
from kopf._cogs.structs import references
from kopf._core.actions import lifecycles
from kopf._core.engines import indexing
from kopf._core.reactor import inventory, processing, queueing

from kubetask.operator import handlers, kopf_fixes, metrics
from kubetask.operator.config import OperatorSettings
from kubetask.operator.controller import Controller

TASKS = references.Resource(group="kubetask.io", version="v1alpha1", plural="tasks", kind="Task", singular="task",
                            namespaced=True, verbs=["list", "watch", "patch"])
TASKS_SELECTOR = ("kubetask.io", "v1alpha1", "tasks")


def finished_task(i: int) -> dict[str, Any]:
    """A Task as the bench's scale phase leaves it (created cancelled), with realistic metadata."""
    return {
        "apiVersion": "kubetask.io/v1alpha1", "kind": "Task",
        "metadata": {"name": f"t-{i}", "namespace": "bench", "uid": str(uuid.uuid4()), "resourceVersion": str(1000 + i),
                     "generation": 1, "creationTimestamp": "2026-12-03T10:00:00Z", "labels": {"app": "bench"},
                     "managedFields": [{"manager": "kubetask", "operation": "Update", "apiVersion": "kubetask.io/v1alpha1",
                                        "time": "2026-12-03T10:00:05Z", "fieldsType": "FieldsV1", "subresource": "status",
                                        "fieldsV1": {"f:status": {"f:phase": {}, "f:conditions": {}}}}]},
        "spec": {"type": "echo", "parameters": {"message": "hello"}, "cancel": True},
        "status": {"phase": "Cancelled", "run": 0, "queue": "default", "observedGeneration": 1,
                   "completionTime": "2026-12-03T10:00:05Z",
                   "conditions": [{"type": "Accepted", "status": "True", "reason": "Valid", "message": "",
                                   "lastTransitionTime": "2026-12-03T10:00:01Z", "observedGeneration": 1},
                                  {"type": "Ready", "status": "False", "reason": "Cancelled", "message": "cancelled before it started",
                                   "lastTransitionTime": "2026-12-03T10:00:05Z", "observedGeneration": 1}]},
    }


def floor_registry() -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.event(*TASKS_SELECTOR, registry=registry)
    async def counted(**_: Any) -> None:
        metrics.EVENTS.labels("task").inc()

    return registry


async def floor_round(n: int) -> float:
    """CPU seconds per listed Task for Kopf to handle n finished Tasks with one empty handler."""
    settings = kopf.OperatorSettings()
    settings.posting.level = logging.INFO  # as handlers.configure sets them
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kubetask.io")
    settings.persistence.diffbase_storage = handlers.UnusedDiffBase()
    registry = floor_registry()
    indexers = indexing.OperatorIndexers()
    indexers.ensure(registry._indexing.get_all_handlers())
    listed = [finished_task(i) for i in range(n)]

    async def listing(**_: Any) -> AsyncIterator[Any]:
        for body in listed:
            yield {"type": None, "object": body}
        yield watching.Bookmark.LISTED
        await asyncio.Event().wait()

    queueing.watching.infinite_watch = listing  # type: ignore[assignment]
    operator_indexed = aiotoggles.ToggleSet(all)
    processor = functools.partial(processing.process_resource_event, lifecycle=lifecycles.all_at_once, registry=registry,
                                  settings=settings, indexers=indexers, memories=inventory.ResourceMemories(), memobase=kopf.Memo(),
                                  operator_paused=aiotoggles.ToggleSet(any), event_queue=asyncio.Queue(), resource=TASKS)
    counter = metrics.EVENTS.labels("task")
    before = counter._value.get()
    cpu = time.process_time()
    watcher = asyncio.create_task(queueing.watcher(namespace="bench", settings=settings, resource=TASKS, processor=processor,
                                                   operator_indexed=operator_indexed,
                                                   resource_indexed=await operator_indexed.make_toggle(name="tasks")))
    while counter._value.get() - before < n:
        await asyncio.sleep(0.02)
    spent = time.process_time() - cpu
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    return spent / n


async def operator_round(n: int) -> float:
    """CPU seconds per listed Task for the operator's informer Store: index and event function."""
    handlers.State.settings = OperatorSettings()
    handlers.State.controller = Controller(None, handlers.State.settings)  # type: ignore[arg-type]  # finished Tasks never reach the API
    handlers.make_stores([])
    kopf_indexes: dict[str, Any] = {name: {} for name in ("tasktypes", "taskqueues", "taskschedules", "taskgroups")}
    handlers.State.views = handlers.build_views(kopf_indexes, handlers.State.task_index, handlers.State.job_index)
    handlers.State.deliverer = None
    store = handlers.State.task_stores[0]
    listed = [finished_task(i) for i in range(n)]
    cpu = time.process_time()
    store.list_started()
    for start in range(0, n, 500):
        store.list_page(listed[start:start + 500])
    await store.list_done()
    spent = time.process_time() - cpu
    assert len(store) == n and len(handlers.State.task_index[("finished",)]) == n
    return spent / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("kopf").setLevel(logging.WARNING)
    kopf_fixes.apply()
    results: dict[str, list[float]] = {"operator": [], "floor": []}
    for _ in range(args.rounds):  # alternating: the machine's noise falls on both alike
        results["floor"].append(asyncio.run(floor_round(args.tasks)))
        results["operator"].append(asyncio.run(operator_round(args.tasks)))
    for variant, per_task in results.items():
        print(f"{variant:9} {statistics.median(per_task) * 1e3:.3f} ms of CPU per listed Task "
              f"(median of {args.rounds}: {', '.join(f'{x * 1e3:.3f}' for x in per_task)}; {args.tasks} Tasks)")


if __name__ == "__main__":
    main()
