"""Retention: finished Tasks are deleted some time after they finished, and their Jobs and pods
go with them (ownerReferences, Background propagation). Without it every Task record stays in
etcd, and in the memory of every watcher (this operator, the gateway's cache), forever.

- `plan()` is the decision, pure: given the finished Tasks (Kopf's `finished_tasks` index), where
  each one's retention comes from and the time, which Tasks are due for deletion, which are due
  but managed by GitOps (kept, and their status says so once), and when the next one comes due.
- `Sweeper` carries a plan out, paced: at most `deletes_per_second` writes, so a backlog (say the
  first sweep after an upgrade, in a cluster holding months of Tasks) cannot flood the API server.

Which retention applies, first set wins: the Task's `spec.retentionSeconds`, its TaskType's
`spec.defaults.retentionSeconds`, its TaskQueue's `spec.retentionSeconds` (the queue in
`status.queue`, the one that admitted it), the operator's `KUBETASK_RETENTION_SECONDS` (7 days;
negative: keep forever).

A Task applied by Argo CD or Flux (`records.GITOPS_MARKERS`) is never deleted: the tool would
apply it again from Git, and it would run again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from prometheus_client import Counter, Gauge

from kubetask.kube import ApiError, Kube, tasks_path
from kubetask.operator import metrics
from kubetask.operator.controller import Views
from kubetask.operator.decide import settled
from kubetask.operator.records import GITOPS_MARKERS, RETAINED_CONDITION, FinishedTask, gitops_owner, summarize_finished
from kubetask.operator.status import rfc3339

log = logging.getLogger("kubetask.operator.retention")
CONCURRENCY = 8  # Tasks a sweep works on at once (their writes still paced)
# Here rather than in metrics.py: only this module sets them.
DELETED = Counter("kubetask_retention_deleted_total", "Finished Tasks deleted by retention.")
DUE = Gauge("kubetask_retention_due", "Finished Tasks past their retention and not deleted yet (the backlog; GitOps-managed ones excluded).")

RetentionLookup = Callable[[str, str], int | None]  # (namespace, name) → retentionSeconds, None when unset


@dataclass(frozen=True)
class Sources:
    """Where a Task's retention comes from when it sets none itself."""

    tasktype: RetentionLookup  # (namespace, TaskType) → its spec.defaults.retentionSeconds
    queue: RetentionLookup  # (namespace, TaskQueue) → its spec.retentionSeconds
    default_seconds: int  # the operator's; negative keeps forever


@dataclass(frozen=True)
class Plan:
    delete: tuple[FinishedTask, ...]  # due and not GitOps-managed: the longest overdue first
    retain: tuple[FinishedTask, ...]  # due but GitOps-managed, and their status does not say so yet
    next_due: float | None  # when the next Task not yet due comes due (seconds since the epoch); None: none will


def retention_of(task: FinishedTask, sources: Sources) -> int | None:
    """Seconds a finished Task is kept, or None for forever."""
    for seconds in (task.retention_seconds, sources.tasktype(task.namespace, task.type),
                    sources.queue(task.namespace, task.queue) if task.queue else None):
        if seconds is not None:
            return seconds
    return sources.default_seconds if sources.default_seconds >= 0 else None


def plan(finished: Iterable[FinishedTask], sources: Sources, now: float) -> Plan:
    due: list[tuple[float, FinishedTask]] = []
    retain: list[tuple[float, FinishedTask]] = []
    next_due: float | None = None
    for task in finished:
        if task.gitops is not None and task.retained_noted:
            continue  # kept for good, and its status already says why: nothing left to do
        seconds = retention_of(task, sources)
        if seconds is None:
            continue  # kept forever
        at = task.finished + seconds
        if at > now:
            next_due = at if next_due is None else min(next_due, at)
        elif task.gitops is not None:
            retain.append((at, task))
        else:
            due.append((at, task))
    return Plan(delete=_oldest_first(due), retain=_oldest_first(retain), next_due=next_due)


def _oldest_first(entries: list[tuple[float, FinishedTask]]) -> tuple[FinishedTask, ...]:
    """The earliest due first; then by finish time and name, so the order is deterministic."""
    ordered = sorted(entries, key=lambda entry: (entry[0], entry[1].finished, entry[1].namespace, entry[1].name))
    return tuple(task for _, task in ordered)


def batch_size(deletes_per_second: float, check_seconds: float) -> int:
    """Writes per sweep: about one sweep interval's worth at the paced rate, so the plan a sweep
    acts on is never much older than one interval (a retention raised meanwhile is seen)."""
    return max(1, math.ceil(deletes_per_second * check_seconds))


def seconds_until_next_sweep(next_due: float | None, left_over: int, now: float, check_seconds: float) -> float:
    """At most `check_seconds`; sooner when the next Task comes due sooner (after a short floor, so
    Tasks coming due one after another do not make a busy loop); at once when the sweep left due
    Tasks for the next batch (the Sweeper's pacing spaces the writes, not this)."""
    if left_over > 0:
        return 0.0
    if next_due is None:
        return check_seconds
    return min(check_seconds, max(min(1.0, check_seconds), next_due - now))


def gitops_tool(metadata: Mapping[str, Any]) -> str | None:
    """'Argo CD' or 'Flux' when one applied the object (from the one list, records.GITOPS_MARKERS)."""
    for where, key, who in GITOPS_MARKERS:
        if key in (metadata.get(where) or {}):
            return who
    return None


def retained_condition(metadata: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    owner, tool = gitops_owner(metadata), gitops_tool(metadata)
    if owner is None or tool is None:
        return None
    condition: dict[str, Any] = {
        "type": RETAINED_CONDITION, "status": "True", "reason": "ManagedByGitOps",
        "message": f"kept past its retention: applied by {owner}; deleting it would make {tool} apply it again and it would run again",
        "lastTransitionTime": rfc3339(now)}
    if metadata.get("generation") is not None:
        condition["observedGeneration"] = metadata["generation"]
    return condition


def with_condition(conditions: Iterable[Mapping[str, Any]], condition: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The conditions list-map with `condition` set (replacing one of its type, else appended)."""
    kept = [dict(c) for c in conditions if c.get("type") != condition["type"]]
    return [*kept, dict(condition)]


def sources_from(views: Views, default_seconds: int) -> Sources:
    def tasktype(namespace: str, name: str) -> int | None:
        value = ((views.tasktype(namespace, name) or {}).get("defaults") or {}).get("retentionSeconds")
        return int(value) if value is not None else None

    def queue(namespace: str, name: str) -> int | None:
        spec = views.queue(namespace, name)
        return spec.retention_seconds if spec is not None else None

    return Sources(tasktype=tasktype, queue=queue, default_seconds=default_seconds)


# ---------------------------------------------------------------------------------------------
# Effects
# ---------------------------------------------------------------------------------------------

class Sweeper:
    """Deletes due Tasks and notes the kept GitOps ones, one write at a time, paced.

    Each write is preceded by a GET of the live Task, decided again with the same pure `plan()`:
    the index may lag, and between the plan and the write a user may have raised the Task's
    retentionSeconds, asked for a rerun, or a GitOps tool may have adopted the Task. The delete
    then carries the uid and the resourceVersion it was decided on as preconditions, so a Task
    re-created under the same name, or one changed since the GET, is never deleted (409, and the
    next sweep decides again).
    """

    def __init__(self, kube: Kube, deletes_per_second: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, wall: Callable[[], float] = time.time) -> None:
        self.kube = kube
        self.interval = 1.0 / deletes_per_second
        self.clock, self.sleep, self.wall = clock, sleep, wall
        self._next_write = 0.0  # clock() before which no write starts; kept across sweeps
        # Tasks this Sweeper deleted or noted that the index still lists as due (its watch event is
        # on its way): skipped, not fetched again. Pruned every sweep to what the plan still lists.
        self._done: set[str] = set()
        self._stopped = False  # this sweep met an unwell API server: it writes no more

    async def execute(self, plan: Plan, sources: Sources, batch: int) -> int:
        """The plan's kept-GitOps notes, then its deletes, at most `batch` in all. Returns how many
        due Tasks are left for the next batch."""
        DUE.set(len(plan.delete))
        listed = [*plan.retain, *plan.delete]
        self._done &= {task.uid for task in listed}
        todo = [task for task in listed if task.uid not in self._done]
        # A few Tasks at once: each costs a GET and a DELETE, and one at a time a loaded API
        # server's latency, not the pace, would set the rate (1.5 deletes/s was seen under load).
        # The pace still spaces the writes.
        in_flight = asyncio.Semaphore(CONCURRENCY)
        self._stopped = False

        async def one(task: FinishedTask) -> None:
            async with in_flight:
                if self._stopped:
                    return
                try:
                    await self._act(task, sources)
                except ApiError as error:
                    if not 400 <= error.status < 500 or error.status == 429:
                        self._stopped = True  # no further writes this sweep
                        raise  # the API server is unwell or throttling: the sweep ends, the next one tries again
                    # Refused for this Task alone (a policy, a validation): the others must not wait behind it.
                    log.warning("task %s/%s: retention could not act: %s", task.namespace, task.name, error)

        outcomes = await asyncio.gather(*(one(task) for task in todo[:batch]), return_exceptions=True)
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            raise failures[0]
        return max(0, len(todo) - batch)

    async def _pace(self) -> None:
        # The slot is taken before sleeping, so writes started by concurrent Tasks stay spaced.
        slot = max(self._next_write, self.clock())
        self._next_write = slot + self.interval
        wait = slot - self.clock()
        if wait > 0:
            await self.sleep(wait)

    async def _act(self, task: FinishedTask, sources: Sources) -> None:
        path = tasks_path(task.namespace, task.name)
        try:
            live = await self.kube.get(path)
        except ApiError as error:
            if error.status == 404:
                return  # gone already; the index catches up
            raise
        meta = live["metadata"]
        if meta.get("uid") != task.uid or not settled(live.get("spec") or {}, live.get("status") or {}):
            return  # re-created under the same name, or a rerun was asked for
        record = summarize_finished(live)
        if record is None:
            return
        decided = plan([record], sources, self.wall())
        if not decided.delete and not decided.retain:
            return  # not due any more (its retention was raised), or its status already says why it stays
        await self._pace()  # writes are paced; the reads before them only happen for due Tasks
        if self._stopped:
            return  # another write of this sweep met an unwell API server
        try:
            if decided.delete:
                await self.kube.delete(path, body={"propagationPolicy": "Background",
                                                   "preconditions": {"uid": task.uid, "resourceVersion": meta["resourceVersion"]}})
                metrics.API_WRITES.labels("delete", "tasks").inc()
                DELETED.inc()
                self._done.add(task.uid)
                log.info("task %s/%s: deleted by retention (finished %s ago)", task.namespace, task.name,
                         _ago(self.wall() - record.finished))
            elif decided.retain:
                condition = retained_condition(meta, datetime.fromtimestamp(self.wall(), timezone.utc))
                assert condition is not None  # plan() retains only GitOps-managed Tasks
                conditions = with_condition((live.get("status") or {}).get("conditions") or [], condition)
                # A JSON merge patch replaces a list whole, so it carries the whole conditions
                # list; the resourceVersion makes it conditional on the list it was built from.
                await self.kube.patch(tasks_path(task.namespace, task.name, subresource="status"),
                                      {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": {"conditions": conditions}})
                metrics.API_WRITES.labels("patch", "tasks/status").inc()
                self._done.add(task.uid)
                log.info("task %s/%s: Retained: %s", task.namespace, task.name, condition["message"])
        except ApiError as error:
            if error.status not in (404, 409):  # gone, or changed since the GET: the next sweep decides again
                raise


def _ago(seconds: float) -> str:
    return f"{seconds / 86400:.1f}d" if seconds >= 86400 else f"{seconds:.0f}s"
