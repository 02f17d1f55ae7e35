"""A watch-backed, in-memory copy of Tasks, TaskTypes and TaskQueues (client-go's informer, small).

Each `Informer` lists its scope (one namespace, or the cluster) in pages, then watches from the
list's resourceVersion. A watch that ends normally is resumed from the last resourceVersion seen
(bookmarks keep it fresh); 410 Gone, or any error, means a fresh list, whose difference to what the
cache held is published as ordinary events, so subscribers (the event streams) miss nothing but
the intermediate states of a gap. Reads therefore lag the cluster by the watch delay (typically
milliseconds; longer while a watch is being re-established).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any


from kubetask.api.metrics import GatewayMetrics
from kubetask.kube import tasks_path
from kubetask.listwatch import Lister, ListWatch

log = logging.getLogger("kubetask.gateway.cache")
Obj = dict[str, Any]
Event = tuple[str, Obj]  # ("ADDED" | "MODIFIED" | "DELETED", object)


Watcher = Lister  # what the cache needs of `kubetask.kube.Kube` (kubetask.listwatch)


class StreamOverflow(Exception):
    """A subscriber fell too far behind; its stream ends and the client reconnects."""


class Subscription:
    """Events for one namespace (and optionally one name), queued for one stream."""

    def __init__(self, cache: ResourceCache, namespace: str, name: str | None, maxsize: int) -> None:
        self.cache, self.namespace, self.name = cache, namespace, name
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.overflowed = False

    def matches(self, namespace: str, name: str) -> bool:
        return namespace == self.namespace and (self.name is None or name == self.name)

    def offer(self, event: Event) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True

    async def next(self, timeout: float) -> Event | None:
        """The next event, or None after `timeout` seconds without one."""
        if self.overflowed and self.queue.empty():
            raise StreamOverflow()
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            if self.overflowed:
                raise StreamOverflow() from None
            return None

    def close(self) -> None:
        self.cache._subscriptions.discard(self)


def _slim(obj: Obj) -> Obj:
    meta = obj.get("metadata") or {}
    if "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return obj


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


class ResourceCache:
    """Objects of one kubetask resource by namespace and name, kept current by list + watch."""

    def __init__(self, kube: Watcher, plural: str, namespaces: list[str], metrics: GatewayMetrics | None = None,
                 watch_timeout_seconds: int = 300, subscriber_queue: int = 1000) -> None:
        self.kube = kube
        self.plural = plural
        self.metrics = metrics
        self.watch_timeout_seconds = watch_timeout_seconds
        self.subscriber_queue = subscriber_queue
        self._objects: dict[str, dict[str, Obj]] = {}
        self._sorted: dict[str, list[str]] = {}
        self._subscriptions: set[Subscription] = set()
        self.informers = [Informer(self, ns) for ns in namespaces] if namespaces else [Informer(self, None)]
        self._tasks: list[asyncio.Task[None]] = []

    # -- reads ---------------------------------------------------------------------------------
    def get(self, namespace: str, name: str) -> Obj | None:
        return self._objects.get(namespace, {}).get(name)

    def names(self, namespace: str) -> list[str]:
        """Names in the namespace, sorted (kept until the namespace changes)."""
        names = self._sorted.get(namespace)
        if names is None:
            names = sorted(self._objects.get(namespace, {}))
            self._sorted[namespace] = names
        return names

    def items(self, namespace: str) -> list[Obj]:
        objects = self._objects.get(namespace, {})
        return [objects[n] for n in self.names(namespace) if n in objects]

    def __len__(self) -> int:
        return sum(len(v) for v in self._objects.values())

    @property
    def synced(self) -> bool:
        return all(i.synced for i in self.informers)

    @property
    def healthy(self) -> bool:
        return all(i.synced and i.healthy for i in self.informers)

    def problems(self) -> list[str]:
        found = [f"{self.plural} in {i.scope}: {i.last_error or 'not listed yet'}" for i in self.informers if not (i.synced and i.healthy)]
        # The flags above are only as current as the loop that sets them: a loop that ended (it never
        # should, but a bug or a BaseException can end it) leaves them frozen at their last value.
        for task in self._tasks:
            if task.done():
                found.append(f"{self.plural}: the informer {task.get_name()} stopped: {_ending(task)}")
        return found

    # -- subscriptions ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def subscribe(self, namespace: str, name: str | None = None) -> Iterator[Subscription]:
        subscription = Subscription(self, namespace, name, self.subscriber_queue)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            subscription.close()

    def _publish(self, kind: str, obj: Obj) -> None:
        namespace, name = _key(obj)
        for subscription in list(self._subscriptions):
            if subscription.matches(namespace, name):
                subscription.offer((kind, obj))

    # -- writes (from the informers) ---------------------------------------------------------------
    def apply(self, kind: str, obj: Obj) -> None:
        obj = _slim(obj)
        namespace, name = _key(obj)
        bucket = self._objects.setdefault(namespace, {})
        if kind == "DELETED":
            if bucket.pop(name, None) is not None:
                self._sorted.pop(namespace, None)
        else:
            if name not in bucket:
                self._sorted.pop(namespace, None)
            bucket[name] = obj
        self._count()
        self._publish(kind, obj)

    def replace(self, namespace: str | None, objects: list[Obj]) -> None:
        """A fresh list of one scope: store it and publish how it differs from what was held."""
        fresh: dict[tuple[str, str], Obj] = {_key(o): _slim(o) for o in objects}
        held = {(ns, n): o for ns, bucket in self._objects.items() if namespace is None or ns == namespace
                for n, o in bucket.items()}
        for key, obj in held.items():
            if key not in fresh:
                self.apply("DELETED", obj)
        for key, obj in fresh.items():
            old = held.get(key)
            if old is None:
                self.apply("ADDED", obj)
            elif (old.get("metadata") or {}).get("resourceVersion") != (obj.get("metadata") or {}).get("resourceVersion"):
                self.apply("MODIFIED", obj)

    def _count(self) -> None:
        if self.metrics is not None:
            self.metrics.cache_objects.labels(self.plural).set(len(self))

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [asyncio.create_task(i.run(), name=f"cache-{self.plural}-{i.scope}") for i in self.informers]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []


def _ending(task: asyncio.Task[None]) -> str:
    if task.cancelled():
        return "cancelled"
    error = task.exception()
    return f"{type(error).__name__}: {error}" if error is not None else "returned"


class Informer:
    """One scope (a namespace, or the cluster) of a ResourceCache, kept by a ListWatch."""

    def __init__(self, cache: ResourceCache, namespace: str | None) -> None:
        self.cache = cache
        self.namespace = namespace
        self.scope = f"namespace {namespace}" if namespace else "all namespaces"
        self._listed: list[Obj] = []
        self.loop = ListWatch(cache.kube, tasks_path(namespace, plural=cache.plural), self, name=f"{cache.plural} cache ({self.scope})",
                              watch_timeout_seconds=cache.watch_timeout_seconds, on_restart=self._restart)

    @property
    def synced(self) -> bool:
        return self.loop.synced

    @property
    def healthy(self) -> bool:
        return self.loop.healthy

    @property
    def last_error(self) -> str:
        return self.loop.last_error

    def _restart(self, reason: str) -> None:
        if self.cache.metrics is not None:
            self.cache.metrics.watch_restarts.labels(self.cache.plural, reason).inc()

    async def run(self) -> None:
        await self.loop.run()

    # -- the ListWatch's sink ----------------------------------------------------------------
    def list_started(self) -> None:
        self._listed = []

    def list_page(self, items: list[Obj]) -> None:
        self._listed.extend(items)

    async def list_done(self) -> None:
        listed, self._listed = self._listed, []
        self.cache.replace(self.namespace, listed)

    def changed(self, kind: str, obj: Obj) -> None:
        self.cache.apply(kind, obj)
