"""Executes TaskSchedule plans (schedule.py decides): cancel, create, prune history, write status,
and come back when the next run is due. One schedule at a time per key (the work queue's rule);
every failure raises, and the work queue retries with backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any


from kubetask.kube import ApiError, Kube, tasks_path
from kubetask.operator.objects import get_or_none, reconcile_fresh_on_conflict, write_status
from kubetask.operator import metrics
from kubetask.operator.controller import ScheduleKey, Views, now
from kubetask.operator.events import Recorder
from kubetask.operator.schedule import SchedulePlan, plan
from kubetask.operator.status import condition, rfc3339, status_changed
from kubetask.resources.scheduling import task_for_run

log = logging.getLogger("kubetask.operator.schedule")
# Come back a little after a run's time, never before: a run at 12:00:00 is due at 12:00:00.
WAKE_MARGIN_SECONDS = 0.2


class ScheduleController:
    def __init__(self, kube: Kube, enqueue_after: Callable[[ScheduleKey, float], None],
                 clock: Callable[[], datetime] = now, events: Recorder | None = None) -> None:
        self.kube = kube
        self.events = events if events is not None else Recorder(None)
        self.enqueue_after = enqueue_after
        self.clock = clock  # injectable: the unit tests drive time

    async def reconcile(self, key: ScheduleKey, views: Views) -> None:
        await reconcile_fresh_on_conflict(views.schedule(key.namespace, key.name), lambda body: self._execute(body, views),
                                          lambda: get_or_none(self.kube, key.namespace, key.name, "taskschedules"))

    async def _execute(self, schedule: dict[str, Any], views: Views) -> None:
        meta = schedule["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        moment = self.clock()
        decided = plan(schedule, list(views.schedule_tasks(namespace, name)), moment)
        for task_name in decided.cancel:
            await self._cancel(namespace, task_name)
        if decided.create is not None:
            try:
                await self._create(schedule, decided.create)
            except ApiError as error:
                await self._write_refused(schedule, decided, error, moment)
                raise
        if decided.skipped:
            self.events.post(schedule, type="Warning", reason="RunSkipped", message=decided.skipped)
        for task_name, uid in decided.delete:
            await self._delete(namespace, task_name, uid)
        if decided.status is not None:
            if status_changed(schedule.get("status") or {}, decided.status):
                await self._write_status(schedule, decided.status)
            metrics.SCHEDULE_MISSED.labels(namespace, name).set(decided.status["missedRuns"])
        if decided.requeue_after is not None:
            self.enqueue_after(ScheduleKey(namespace, name), decided.requeue_after + WAKE_MARGIN_SECONDS)

    async def _create(self, schedule: dict[str, Any], when: datetime) -> None:
        task = task_for_run(schedule, when)
        meta = schedule["metadata"]
        try:
            await self.kube.create(tasks_path(meta["namespace"]), task)
        except ApiError as error:
            if error.status == 409:
                return  # this run's Task exists: it was created before (the name is the run's)
            raise
        metrics.API_WRITES.labels("create", "tasks").inc()
        metrics.SCHEDULED_RUNS.labels(meta["namespace"], meta["name"]).inc()
        log.info("schedule %s/%s: created Task %s for %s", meta["namespace"], meta["name"], task["metadata"]["name"], rfc3339(when))
        self.events.post(schedule, type="Normal", reason="TaskCreated",
                         message=f"created Task {task['metadata']['name']} for the run of {rfc3339(when)}")

    async def _cancel(self, namespace: str, task_name: str) -> None:
        try:
            await self.kube.patch(tasks_path(namespace, task_name), {"spec": {"cancel": True}})
            metrics.API_WRITES.labels("patch", "tasks").inc()
        except ApiError as error:
            if error.status != 404:
                raise

    async def _delete(self, namespace: str, task_name: str, uid: str) -> None:
        try:
            # The uid precondition: a newer Task of the same name is never deleted by mistake.
            await self.kube.delete(tasks_path(namespace, task_name),
                                   body={"propagationPolicy": "Background", "preconditions": {"uid": uid}})
            metrics.API_WRITES.labels("delete", "tasks").inc()
        except ApiError as error:
            if error.status not in (404, 409):
                raise

    async def _write_status(self, schedule: dict[str, Any], status: dict[str, Any]) -> None:
        # Conditional on the resourceVersion: a 409 plans again on a fresh read (reconcile).
        await write_status(self.kube, "taskschedules", schedule, status)

    async def _write_refused(self, schedule: dict[str, Any], decided: SchedulePlan, error: ApiError, moment: datetime) -> None:
        """The Task create was refused (quota, admission, ...): say so on the schedule. The run is
        not recorded as created, so the retry creates it (or counts it missed past its deadline)."""
        previous = schedule.get("status") or {}
        old = {c["type"]: c for c in previous.get("conditions") or []}
        generation = schedule["metadata"].get("generation")
        ready = condition(old, "Ready", "False", "TaskCreateRefused",
                          f"creating the Task for {rfc3339(decided.create or moment)} was refused ({error.status}): {error.message}"[:1024],
                          generation, rfc3339(moment))
        conditions = [ready, *[c for t, c in old.items() if t != "Ready"]]
        try:
            await self._write_status(schedule, {**previous, "conditions": conditions})
        except ApiError as write_error:
            log.warning("schedule %s: writing the refusal failed: %s", schedule["metadata"]["name"], write_error)
