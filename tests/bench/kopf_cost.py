"""Kopf's own cost per listed Task, in one process, with no cluster.

A restart with 10,000 Tasks is CPU-bound in Kopf's per-object machinery (docs/benchmarks.md).
This drives that machinery exactly as the operator runs it: Kopf's real watcher (its
per-object streams and workers, the start-up index barrier with kubetask's ToggleSet fix),
its processing of each event (memories, loggers, indexing, cause detection, handler
invocation), with the operator's own registry, handlers and settings. Only the watch stream
itself is replaced, by a generator of N finished Tasks as a listing yields them, so the
figure is Kopf's and kubetask's work, not the API server's or the JSON decoding's.

Two variants, in the same process and run, so each is read against the other:

- `operator`: the operator's registry as it is (every Task index and the Task event handler);
- `floor`: Kopf with the Task indexes removed and an empty Task event handler: what Kopf costs
  per object for one handler, whatever the handler does;
- `direct`: no Kopf at all: the operator's `tasks` index function called on each listed Task and
  its entries stored as Kopf stores them (key → uid → value). What the same indexing costs off
  Kopf's per-object path: the lower bound of an informer of kubetask's own (it leaves out the
  event handler's work for a finished Task, which returns early).

    python tests/bench/kopf_cost.py [--tasks 10000] [--rounds 3]

It reaches into Kopf's reactor (`kopf._core`, private): a measuring tool for the Kopf version
pyproject.toml pins, not part of the operator.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
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
from kubetask.operator.controller import Controller

TASKS = references.Resource(group="kubetask.io", version="v1alpha1", plural="tasks", kind="Task", singular="task",
                            namespaced=True, verbs=["list", "watch", "patch"])


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


def registry_for(variant: str) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    for handler in handlers.registry._indexing.get_all_handlers():
        if variant == "operator" or handler.id not in ("tasks", "schedule_tasks"):
            registry._indexing.append(handler)
    for watcher in handlers.registry._watching.get_all_handlers():
        if variant == "floor" and watcher.id == "task_event":
            async def counted(**_: Any) -> None:
                metrics.EVENTS.labels("task").inc()
            watcher = dataclasses.replace(watcher, fn=counted)
        registry._watching.append(watcher)
    return registry


async def one_round(variant: str, n: int) -> float:
    """CPU seconds per listed Task for Kopf to index and handle n finished Tasks."""
    settings = kopf.OperatorSettings()
    settings.posting.level = logging.INFO  # as handlers.configure sets them
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kubetask.io")
    settings.persistence.diffbase_storage = handlers.UnusedDiffBase()
    registry = registry_for(variant)
    handlers.State.controller = Controller(None, handlers.State.settings)  # type: ignore[arg-type]  # finished Tasks never reach the API
    handlers.State.views = None  # views over this round's indexes, made by the first handler call
    handlers._start_background = lambda kwargs, views: None  # no workers: finished Tasks never reach them
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


async def direct_round(n: int) -> float:
    """CPU seconds per listed Task for the `tasks` index function alone, stored as Kopf stores it."""
    listed = [finished_task(i) for i in range(n)]
    index: dict[Any, dict[str, Any]] = {}
    cpu = time.process_time()
    for body in listed:
        uid, namespace = body["metadata"]["uid"], body["metadata"]["namespace"]
        for key, value in (await handlers.tasks(body=body, namespace=namespace, uid=uid)).items():  # type: ignore[arg-type]
            index.setdefault(key, {})[uid] = value
    return (time.process_time() - cpu) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("kopf").setLevel(logging.WARNING)
    kopf_fixes.apply()
    results: dict[str, list[float]] = {"operator": [], "floor": [], "direct": []}
    for _ in range(args.rounds):  # alternating: the machine's noise falls on all alike
        for variant in results:
            results[variant].append(asyncio.run(direct_round(args.tasks) if variant == "direct" else one_round(variant, args.tasks)))
    for variant, per_task in results.items():
        print(f"{variant:9} {statistics.median(per_task) * 1e3:.3f} ms of CPU per listed Task "
              f"(median of {args.rounds}: {', '.join(f'{x * 1e3:.3f}' for x in per_task)}; {args.tasks} Tasks)")


if __name__ == "__main__":
    main()
