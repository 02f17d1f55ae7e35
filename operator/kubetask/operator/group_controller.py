"""Executes TaskGroup plans (group.py decides): count the members, create the callback once the
group is complete, write the status. One group at a time per key; failures raise and the work
queue retries them with backoff."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any


from kubetask.kube import ApiError, Kube, tasks_path
from kubetask.operator import metrics
from kubetask.operator.controller import GroupKey, Views, now
from kubetask.operator.events import Recorder
from kubetask.operator.group import callback_task, plan
from kubetask.operator.objects import get_or_none, reconcile_fresh_on_conflict, write_status
from kubetask.operator.status import status_changed
from kubetask.resources.grouping import LABEL_GROUP

log = logging.getLogger("kubetask.operator.group")


class GroupController:
    def __init__(self, kube: Kube, clock: Callable[[], datetime] = now, events: Recorder | None = None) -> None:
        self.kube = kube
        self.events = events if events is not None else Recorder(None)
        self.clock = clock

    async def reconcile(self, key: GroupKey, views: Views) -> None:
        await reconcile_fresh_on_conflict(views.group(key.namespace, key.name), lambda body: self._execute(body, views),
                                          lambda: get_or_none(self.kube, key.namespace, key.name, "taskgroups"))

    async def _execute(self, group: dict[str, Any], views: Views) -> None:
        meta = group["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        decided = plan(group, list(views.group_members(namespace, name)), views.group_callback(namespace, name), self.clock())
        if decided.create_callback:
            await self._create_callback(group)
        if status_changed(group.get("status") or {}, decided.status):
            await write_status(self.kube, "taskgroups", group, decided.status)

    async def _create_callback(self, group: dict[str, Any]) -> None:
        meta = group["metadata"]
        # The members' results, read once (the index holds no results): one LIST by the label.
        listed = await self.kube.get(tasks_path(meta["namespace"]), labelSelector=f"{LABEL_GROUP}={meta['name']}")
        task = callback_task(group, list(listed.get("items", [])))
        try:
            await self.kube.create(tasks_path(meta["namespace"]), task)
        except ApiError as error:
            if error.status == 409:
                return  # created before: the name is the group's
            raise
        metrics.API_WRITES.labels("create", "tasks").inc()
        log.info("group %s/%s: complete; created the callback Task %s", meta["namespace"], meta["name"], task["metadata"]["name"])
        self.events.post(group, type="Normal", reason="CallbackCreated",
                         message=f"every member finished; created the callback Task {task['metadata']['name']}")
