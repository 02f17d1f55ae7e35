"""The watch-backed cache and the server-sent event streams built on it (in-memory API, no cluster)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from api_fakes import FakeKube
from kubetask.api.cache import ResourceCache
from kubetask.api.streams import KEEPALIVE, list_events, sse, task_events

pytestmark = pytest.mark.timeout(30)


def parse(chunk: bytes) -> tuple[str | None, dict[str, Any] | None]:
    """(event name, data) of one SSE frame; (None, None) for a comment."""
    text = chunk.decode()
    assert text.endswith("\n\n")
    event, data = None, None
    for line in text.strip("\n").split("\n"):
        if line.startswith(":"):
            continue
        field, _, value = line.partition(": ")
        if field == "event":
            event = value
        elif field == "data":
            data = json.loads(value)
    return event, data


def test_sse_frames() -> None:
    assert sse({"a": 1}, "status", "42") == b'id: 42\nevent: status\ndata: {"a":1}\n\n'
    assert sse("line1\nline2", "log") == b"event: log\ndata: line1\ndata: line2\n\n"
    assert sse({"x": "é"}, retry_ms=1500) == 'retry: 1500\ndata: {"x":"é"}\n\n'.encode()
    assert sse({}, "evil\nevent: other") == b"event: evil event: other\ndata: {}\n\n"
    assert KEEPALIVE == b": keepalive\n\n"


async def started(kube: FakeKube, plural: str = "tasks", namespaces: list[str] | None = None) -> ResourceCache:
    cache = ResourceCache(kube, plural, namespaces or [])
    cache.start()
    for _ in range(100):
        if cache.synced and kube.watchers:
            break
        await asyncio.sleep(0.01)
    assert cache.synced
    return cache


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_cache_lists_then_follows_the_watch() -> None:
    kube = FakeKube()
    kube.put("tasks", "a", "one", {"type": "t"})
    cache = await started(kube)
    try:
        assert cache.get("a", "one") is not None and len(cache) == 1
        kube.put("tasks", "a", "two", {"type": "t"})
        kube.put("tasks", "b", "three", {"type": "t"})
        await settle()
        assert cache.names("a") == ["one", "two"] and [o["metadata"]["name"] for o in cache.items("b")] == ["three"]
        await kube.delete("/apis/kubetask.io/v1alpha1/namespaces/a/tasks/one")
        await settle()
        assert cache.names("a") == ["two"]
    finally:
        await cache.stop()


async def test_cache_relists_after_410_and_publishes_the_difference() -> None:
    kube = FakeKube()
    kube.put("tasks", "a", "stays", {"type": "t"})
    kube.put("tasks", "a", "goes", {"type": "t"})
    cache = await started(kube, namespaces=["a"])
    try:
        with cache.subscribe("a") as subscription:
            # Changes the watch never delivers, then 410 Gone: the relist must notice them.
            watchers = list(kube.watchers)
            kube.watchers.clear()
            kube.objects.pop(("tasks", "a", "goes"))
            kube.put("tasks", "a", "new", {"type": "t"})
            kube.set_status("a", "stays", {"phase": "Running"})
            for _, _, queue in watchers:
                queue.put_nowait({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}})
            events = [await subscription.next(5) for _ in range(3)]
        seen = {(kind, obj["metadata"]["name"]) for kind, obj in [e for e in events if e]}
        assert seen == {("DELETED", "goes"), ("ADDED", "new"), ("MODIFIED", "stays")}
        assert cache.names("a") == ["new", "stays"] and cache.get("a", "stays")["status"]["phase"] == "Running"  # type: ignore[index]
    finally:
        await cache.stop()


async def test_cache_reports_unhealthy_while_the_api_fails() -> None:
    kube = FakeKube()
    failing = True
    original = kube.get

    async def get(path: str, **params: Any) -> dict[str, Any]:
        if failing:
            from kubetask.kube import ApiError
            raise ApiError(503, "ServiceUnavailable", "etcd is sad")
        return dict(await original(path, **params))

    kube.get = get
    cache = ResourceCache(kube, "tasks", [])
    cache.start()
    try:
        await asyncio.sleep(0.05)
        assert not cache.synced and "etcd is sad" in cache.problems()[0]
        failing = False
        for _ in range(200):
            if cache.healthy:
                break
            await asyncio.sleep(0.02)
        assert cache.healthy and cache.problems() == []
    finally:
        await cache.stop()


async def test_task_stream_sends_each_change_and_ends_when_finished() -> None:
    kube = FakeKube()
    first = kube.put("tasks", "a", "t", {"type": "t"})
    cache = await started(kube)
    frames: list[bytes] = []

    async def consume() -> None:
        async for frame in task_events(cache, "a", "t", first, keepalive=0.05, max_seconds=10):
            frames.append(frame)

    consumer = asyncio.create_task(consume())
    try:
        await asyncio.sleep(0.01)
        kube.set_status("a", "t", {"phase": "Queued"})
        await asyncio.sleep(0.01)
        kube.set_status("a", "t", {"phase": "Queued"})  # a write that changes nothing visible: no event
        await asyncio.sleep(0.12)  # idle: keepalives
        kube.set_status("a", "t", {"phase": "Running", "attempts": 1})
        kube.set_status("a", "t", {"phase": "Running", "attempts": 1, "progress": {"percent": 50, "message": "half"}})
        kube.set_status("a", "t", {"phase": "Succeeded", "run": 0, "result": {"answer": 42}})
        await asyncio.wait_for(consumer, 5)
    finally:
        await cache.stop()
    events = [parse(f) for f in frames]
    shown = [(name, data["phase"]) for name, data in events if name]  # type: ignore[index]
    assert shown == [("status", "Pending"), ("status", "Queued"), ("status", "Running"), ("status", "Running"), ("status", "Succeeded")]
    assert events[-1][1]["result"] == {"answer": 42} and events[-1][1]["finished"]  # type: ignore[index]
    assert KEEPALIVE in frames


async def test_task_stream_of_a_finished_task_ends_at_once_and_a_pending_rerun_keeps_it_open() -> None:
    kube = FakeKube()
    done = kube.put("tasks", "a", "done", {"type": "t"}, {"phase": "Failed", "run": 0})
    rerun = kube.put("tasks", "a", "rerun", {"type": "t", "rerun": 1}, {"phase": "Failed", "run": 0})
    cache = await started(kube)
    try:
        assert len([f async for f in task_events(cache, "a", "done", done, keepalive=1, max_seconds=5)]) == 1
        frames = []
        async for frame in task_events(cache, "a", "rerun", rerun, keepalive=0.05, max_seconds=0.3):
            frames.append(frame)
        assert parse(frames[0])[1]["finished"] is False  # type: ignore[index]
        assert len(frames) > 1  # kept open (keepalives) until max_seconds
    finally:
        await cache.stop()


async def test_list_stream_filters_and_reports_leaving_the_filter_as_deleted() -> None:
    kube = FakeKube()
    kube.put("tasks", "a", "x", {"type": "t"}, {"phase": "Running"})
    kube.put("tasks", "a", "y", {"type": "other"}, {"phase": "Running"})
    cache = await started(kube)
    frames: list[bytes] = []

    def running_t(task: dict[str, Any]) -> bool:
        return bool(task["spec"]["type"] == "t" and (task.get("status") or {}).get("phase") == "Running")

    async def consume() -> None:
        async for frame in list_events(cache, "a", running_t, keepalive=1, max_seconds=0.5):
            frames.append(frame)

    consumer = asyncio.create_task(consume())
    try:
        await asyncio.sleep(0.01)
        kube.put("tasks", "a", "z", {"type": "t"}, {"phase": "Running"})
        kube.set_status("a", "x", {"phase": "Succeeded"})
        kube.put("tasks", "b", "elsewhere", {"type": "t"}, {"phase": "Running"})
        await asyncio.wait_for(consumer, 5)
    finally:
        await cache.stop()
    events = [(name, data["name"]) for name, data in map(parse, frames) if name]  # type: ignore[index]
    assert events == [("added", "x"), ("added", "z"), ("deleted", "x")]


async def test_a_slow_subscriber_is_cut_off_with_an_error_event() -> None:
    kube = FakeKube()
    first = kube.put("tasks", "a", "t", {"type": "t"})
    cache = await started(kube)
    cache.subscriber_queue = 2
    try:
        stream = task_events(cache, "a", "t", first, keepalive=1, max_seconds=5)
        assert parse(await stream.__anext__())[0] == "status"
        for i in range(5):
            kube.set_status("a", "t", {"phase": "Running", "attempts": i})
        await settle()
        frames = [f async for f in stream]
    finally:
        await cache.stop()
    assert parse(frames[-1])[0] == "error"
