"""The operator's own informer for Tasks and Jobs (informer.py): its index keeps exactly each
object's current entries, and its store tells the event function what changed, also across a
watch gap (a re-list), with the index already up to date when it does."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from kubetask.operator.events import Recorder, event_body
from kubetask.operator.informer import KeyedIndex, Obj, Store


def obj(uid: str, version: str, **keys: str) -> Obj:
    return {"metadata": {"uid": uid, "name": f"n-{uid}", "namespace": "ns", "resourceVersion": version}, "keys": keys}


def entries(body: Obj) -> dict[Any, Any]:
    return {key: value for key, value in body["keys"].items()}


def test_an_objects_entries_are_replaced_as_a_whole_and_empty_keys_go() -> None:
    index = KeyedIndex()
    index.put("a", {"k1": 1, "k2": 2})
    index.put("b", {"k1": 10})
    assert sorted(index) == ["k1", "k2"] and list(index["k1"]) == [1, 10]
    index.put("a", {"k1": 3, "k3": 4})  # k2 gone for a, k1 replaced in place, k3 new
    assert "k2" not in index and list(index["k1"]) == [3, 10] and list(index["k3"]) == [4]
    index.discard("b")
    index.discard("never-seen")
    assert list(index["k1"]) == [3] and index.objects() == 1
    index.discard("a")
    assert list(index) == [] and index.objects() == 0


class Recorded:
    def __init__(self, store: Store | None = None) -> None:
        self.events: list[tuple[str | None, str, bool]] = []
        self.store = store

    def __call__(self, kind: str | None, body: Obj) -> None:
        uid = body["metadata"]["uid"]
        # The index already has the change when the event function runs.
        indexed = self.store is not None and self.store.index.objects() > 0 and any(uid in str(k) for k in self.store.index)
        self.events.append((kind, uid, indexed))


def make_store() -> tuple[Store, Recorded]:
    recorded = Recorded()
    store = Store("test", entries, lambda body: {"metadata": dict(body["metadata"]), "tomb": True}, recorded)
    recorded.store = store
    return store, recorded


async def test_the_first_list_is_reported_as_listed_and_watch_events_as_they_are() -> None:
    store, recorded = make_store()
    store.list_started()
    store.list_page([obj("a", "1", key_a="x"), obj("b", "1", key_b="y")])
    assert not store.listed.is_set()
    await store.list_done()
    assert store.listed.is_set() and len(store) == 2
    assert recorded.events == [(None, "a", True), (None, "b", True)]
    store.changed("MODIFIED", obj("a", "2", key_a2="z"))
    assert "key_a" not in store.index and list(store.index["key_a2"]) == ["z"]
    store.changed("DELETED", obj("b", "3", key_b="y"))
    assert "key_b" not in store.index and len(store) == 1
    assert recorded.events[2:] == [("MODIFIED", "a", True), ("DELETED", "b", False)]


async def test_a_relist_reports_what_changed_in_the_gap_and_the_gone_as_deleted_tombstones() -> None:
    deleted: list[Obj] = []
    store, recorded = make_store()
    store.list_started()
    store.list_page([obj("a", "1", key_a="x"), obj("b", "1", key_b="y"), obj("c", "1", key_c="z")])
    await store.list_done()
    original = store.on_event

    def keep(kind: str | None, body: Obj) -> None:
        original(kind, body)
        if kind == "DELETED":
            deleted.append(body)

    store.on_event = keep
    # The gap: a unchanged, b modified, c deleted, d created.
    store.list_started()
    store.list_page([obj("a", "1", key_a="x"), obj("b", "2", key_b2="y")])
    store.list_page([obj("d", "1", key_d="w")])
    await store.list_done()
    assert recorded.events[3:] == [("MODIFIED", "b", True), ("ADDED", "d", True), ("DELETED", "c", False)]
    assert deleted[0]["tomb"] is True and deleted[0]["metadata"]["name"] == "n-c"
    assert sorted(store.index) == ["key_a", "key_b2", "key_d"] and len(store) == 3


async def test_a_failing_event_function_never_stops_the_store() -> None:
    calls: list[str] = []

    def broken(kind: str | None, body: Obj) -> None:
        calls.append(body["metadata"]["uid"])
        raise RuntimeError("a bug")

    store = Store("test", entries, lambda body: body, broken)
    store.list_started()
    store.list_page([obj("a", "1", k="1"), obj("b", "1", k="2")])
    await store.list_done()
    store.changed("MODIFIED", obj("a", "2", k="3"))
    assert calls == ["a", "b", "a"] and sorted(store.index["k"]) == ["2", "3"]


def test_an_event_names_its_object_and_keeps_long_messages_inside_the_limit() -> None:
    task = {"apiVersion": "kubetask.io/v1alpha1", "kind": "Task", "metadata": {"name": "t", "namespace": "ns", "uid": "u"}}
    body = event_body(task, "Warning", "JobCreateRefused", "x" * 5000, "op-1", datetime(2026, 12, 4, tzinfo=timezone.utc))
    assert body["involvedObject"] == {"apiVersion": "kubetask.io/v1alpha1", "kind": "Task", "name": "t", "namespace": "ns", "uid": "u"}
    assert body["metadata"] == {"namespace": "ns", "generateName": "t."}
    assert len(body["message"]) <= 1024 and "..." in body["message"]
    assert body["reason"] == "JobCreateRefused" and body["type"] == "Warning" and body["reportingInstance"] == "op-1"
    Recorder(None).post(task, type="Normal", reason="Started", message="dropped: no client")  # never raises
