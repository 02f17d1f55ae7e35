"""Kubernetes Events the operator posts about Tasks, TaskGroups and TaskSchedules (what `kubectl
describe` shows under Events).

Posted in the background, in order, by one task with its own API client, so a reconcile never
waits for one; a failed post is logged and dropped (an Event is a report, never a decision), as
Kopf's poster does. Ours rather than `kopf.event()`: Kopf's poster takes only Events raised
inside a Kopf handler's context, and the work on Tasks and Jobs runs outside any
(informer.py). The body is the one Kopf posts (core/v1 Event, message cut to 1024 characters).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from kubetask.kube import ApiError, Kube, TransportError, core_path
from kubetask.operator import metrics

log = logging.getLogger("kubetask.operator.events")
MAX_MESSAGE = 1024
COMPONENT = "kubetask-operator"


def event_body(obj: Mapping[str, Any], type: str, reason: str, message: str, instance: str, at: datetime) -> dict[str, Any]:
    meta = obj["metadata"]
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE // 2 - 1] + "..." + message[-(MAX_MESSAGE // 2 - 2):]
    when = at.isoformat()
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"namespace": meta["namespace"], "generateName": f"{meta['name'][:200]}."},
        "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta["name"],
                           "namespace": meta["namespace"], "uid": meta.get("uid")},
        "type": type, "reason": reason, "message": message, "action": reason,
        "reportingComponent": COMPONENT, "reportingInstance": instance, "source": {"component": COMPONENT},
        "firstTimestamp": when, "lastTimestamp": when, "eventTime": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "count": 1,
    }


class Recorder:
    def __init__(self, kube: Kube | None, instance: str = "kubetask-operator", backlog: int = 10_000) -> None:
        self.kube = kube  # None: Events are dropped (unit tests, benches without a cluster)
        self.instance = instance[:128]
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(backlog)

    def post(self, obj: Mapping[str, Any], *, type: str, reason: str, message: str) -> None:
        """Queue one Event; never blocks, never raises (a full backlog drops it, with a log line)."""
        if self.kube is None:
            return
        try:
            self._queue.put_nowait(event_body(obj, type, reason, message, self.instance, datetime.now(timezone.utc)))
        except asyncio.QueueFull:
            log.warning("event backlog full: dropped %s %s for %s", type, reason, obj["metadata"].get("name"))
        except Exception:  # our own bug: loud, never in the caller's way
            log.exception("could not make an Event for %s", (obj.get("metadata") or {}).get("name"))

    async def run(self) -> None:
        while True:
            body = await self._queue.get()
            try:
                assert self.kube is not None
                await self.kube.create(core_path("events", body["metadata"]["namespace"]), body)
                metrics.API_WRITES.labels("create", "events").inc()
            except asyncio.CancelledError:
                raise
            except (ApiError, TransportError, OSError, asyncio.TimeoutError) as error:
                log.warning("posting Event %s for %s failed (dropped): %s", body["reason"], body["involvedObject"]["name"], error)
            except Exception:
                log.exception("posting Event %s failed (dropped)", body["reason"])

    def __len__(self) -> int:
        return self._queue.qsize()
