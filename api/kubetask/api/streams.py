"""Server-sent events: one Task's changes until it finishes, or a filtered list's changes.

Wire format (text/event-stream), one event per change of what the client sees:

    id: <resourceVersion>
    event: status            (one Task; `deleted` if it goes away; `error` before an abnormal end)
    data: <the Task, as GET returns it>

List streams send `added`, `modified` and `deleted`, starting with an `added` per current match.
Idle streams carry a `: keepalive` comment every few seconds so proxies keep them open.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from kubetask.api.cache import Event, ResourceCache, StreamOverflow, Subscription
from kubetask.api.errors import GatewayError, error_info
from kubetask.api.metrics import GatewayMetrics
from kubetask.api.schemas import finished, task_view

KEEPALIVE = b": keepalive\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MEDIA_TYPE = "text/event-stream"


class StreamSlots:
    """Caps on open event streams, per identity and in total.

    Each stream holds a subscription queue (up to 1000 events) and an open connection for up to
    `sse_max_seconds`; without a cap one token could open thousands (1,500 were measured: RSS
    64 → 135 MB, not returned after they closed). Beyond a cap the answer is 429 with Retry-After,
    before any subscription exists."""

    def __init__(self, per_identity: int, total: int, retry_after_seconds: int) -> None:
        self.per_identity, self.total, self.retry_after = per_identity, total, retry_after_seconds
        self.open: dict[str, int] = {}

    def __len__(self) -> int:
        return sum(self.open.values())

    def acquire(self, identity: str) -> Callable[[], None]:
        """Take a slot or raise 429; the returned release may be called any number of times."""
        if len(self) >= self.total:
            raise self._refused(f"the gateway has {self.total} event streams open, its limit (sse_max_streams)")
        if self.open.get(identity, 0) >= self.per_identity:
            raise self._refused(f"{identity!r} has {self.per_identity} event streams open, the limit per identity "
                                "(sse_max_streams_per_identity); close one first")
        self.open[identity] = self.open.get(identity, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self.open.get(identity, 0) - 1
            if left > 0:
                self.open[identity] = left
            else:
                self.open.pop(identity, None)

        return release

    def _refused(self, message: str) -> GatewayError:
        return GatewayError(429, f"too many event streams: {message}", reason="TooManyStreams",
                            headers={"Retry-After": str(self.retry_after)})


async def holding(slot: Callable[[], None], events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`events`, releasing `slot` when the stream ends, however it ends."""
    try:
        async for chunk in events:
            yield chunk
    finally:
        slot()


def sse(data: Any, event: str | None = None, id: str | None = None, retry_ms: int | None = None) -> bytes:
    """One event. `data` is sent as compact JSON (a single line); strings with newlines become several data lines."""
    lines: list[str] = []
    if id:
        lines.append(f"id: {_one_line(id)}")
    if event:
        lines.append(f"event: {_one_line(event)}")
    if retry_ms is not None:
        lines.append(f"retry: {int(retry_ms)}")
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False) if not isinstance(data, str) else data
    lines += [f"data: {line}" for line in text.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


def _signature(view: dict[str, Any]) -> str:
    """What a client can see change (the resourceVersion alone changing is not a change)."""
    return json.dumps({k: v for k, v in view.items() if k != "resourceVersion"}, sort_keys=True, default=str)


def _version(task: dict[str, Any]) -> str | None:
    version = (task.get("metadata") or {}).get("resourceVersion")
    return str(version) if version else None


async def _changes(subscription: Subscription, deadline: float, keepalive: float) -> AsyncIterator[Event | bytes]:
    """The subscription's (kind, task) changes until `deadline`, a keep-alive comment in each quiet
    gap, and an `error` event to end with if the stream fell behind."""
    while time.monotonic() < deadline:
        try:
            event = await subscription.next(min(keepalive, max(0.1, deadline - time.monotonic())))
        except StreamOverflow:
            yield sse(error_info(503, "the stream fell behind; reconnect to continue"), "error")
            return
        yield KEEPALIVE if event is None else event


async def task_events(cache: ResourceCache, namespace: str, name: str, first: dict[str, Any], *,
                      keepalive: float, max_seconds: float, metrics: GatewayMetrics | None = None) -> AsyncIterator[bytes]:
    """Events of one Task: its current state, then each change; the stream ends once the current run is finished."""
    deadline = time.monotonic() + max_seconds
    if metrics is not None:
        metrics.streams.labels("task").inc()
    try:
        with cache.subscribe(namespace, name) as subscription:
            current = cache.get(namespace, name) or first  # read after subscribing: nothing falls between
            view = task_view(current)
            yield sse(view, "status", _version(current), retry_ms=2000)
            last = _signature(view)
            if finished(current):
                return
            async for change in _changes(subscription, deadline, keepalive):
                if isinstance(change, bytes):
                    yield change
                    continue
                kind, task = change
                view = task_view(task)
                if kind == "DELETED":
                    yield sse(view, "deleted", _version(task))
                    return
                signature = _signature(view)
                if signature != last:
                    last = signature
                    yield sse(view, "status", _version(task))
                if finished(task):
                    return
    finally:
        if metrics is not None:
            metrics.streams.labels("task").dec()


async def list_events(cache: ResourceCache, namespace: str, matches: Callable[[dict[str, Any]], bool], *,
                      keepalive: float, max_seconds: float, metrics: GatewayMetrics | None = None) -> AsyncIterator[bytes]:
    """Events of the Tasks matching a filter: `added` for each current one, then every change.

    A Task that stops matching (say its phase filter) is reported `deleted` from the stream's view,
    as a Kubernetes watch with a selector does."""
    deadline = time.monotonic() + max_seconds
    if metrics is not None:
        metrics.streams.labels("list").inc()
    try:
        with cache.subscribe(namespace) as subscription:
            shown: dict[str, str] = {}
            for task in cache.items(namespace):
                if matches(task):
                    view = task_view(task)
                    shown[view["name"]] = _signature(view)
                    yield sse(view, "added", _version(task), retry_ms=2000)
            async for change in _changes(subscription, deadline, keepalive):
                if isinstance(change, bytes):
                    yield change
                    continue
                kind, task = change
                view = task_view(task)
                name = view["name"]
                if kind != "DELETED" and matches(task):
                    signature = _signature(view)
                    if name not in shown:
                        shown[name] = signature
                        yield sse(view, "added", _version(task))
                    elif shown[name] != signature:
                        shown[name] = signature
                        yield sse(view, "modified", _version(task))
                elif name in shown:
                    del shown[name]
                    yield sse(view, "deleted", _version(task))
    finally:
        if metrics is not None:
            metrics.streams.labels("list").dec()
