"""kubetask's own informer for Tasks and Jobs: the two kinds with an event per Task.

Kopf stays the framework: it runs the operator's lifecycle, its credentials, the liveness probe,
and the indexes and events of the low-volume kinds (TaskTypes, TaskQueues, TaskSchedules,
TaskGroups, TaskWebhooks). Tasks and Jobs come through here instead, because Kopf's per-object
machinery alone costs more than the issue's budget (issue #13; docs/operator.md, "A restart
with many Tasks"): 0.57-0.65 ms per listed object at Kopf's one-handler floor, 5.7 s for 10,000
Tasks, while the same indexing off that path is 0.016 ms. A restart also held a Kopf worker per
listed object at Kopf's index barrier (about 20 KB each, and the fragmentation they leave).

A `Store` is a ListWatch's sink (kubetask.listwatch): it keeps one `KeyedIndex`, filled by the
kind's index function (the same function the views read the result of), and calls the kind's
event function after indexing. It holds no bodies: for each object only its resourceVersion and
a tombstone (what the event function needs when the object goes while no watch was looking).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping, ValuesView
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("kubetask.operator.informer")
Obj = dict[str, Any]
IndexFunction = Callable[[Obj], dict[Any, Any]]
EventFunction = Callable[[str | None, Obj], None]  # kind None: listed at start, as Kopf calls it


class KeyedIndex:
    """key → {uid: value}, read as the views read a `kopf.Index`: `key in index`, `index[key]` (the
    values), `list(index)` (the keys). An object's entries are replaced as a whole when it changes,
    in place where a key stays (so an object keeps its position under that key), and a key with
    no values left is gone."""

    def __init__(self) -> None:
        self._values: dict[Any, dict[str, Any]] = {}
        self._keys_of: dict[str, tuple[Any, ...]] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __getitem__(self, key: Any) -> ValuesView[Any]:
        return self._values[key].values()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def objects(self) -> int:
        return len(self._keys_of)

    def put(self, uid: str, entries: Mapping[Any, Any]) -> None:
        for key in self._keys_of.get(uid, ()):
            if key not in entries:
                self._drop(key, uid)
        for key, value in entries.items():
            self._values.setdefault(key, {})[uid] = value
        self._keys_of[uid] = tuple(entries)

    def discard(self, uid: str) -> None:
        for key in self._keys_of.pop(uid, ()):
            self._drop(key, uid)

    def _drop(self, key: Any, uid: str) -> None:
        values = self._values.get(key)
        if values is not None:
            values.pop(uid, None)
            if not values:
                del self._values[key]


@dataclass
class Seen:
    version: str
    tombstone: Obj


@dataclass
class Store:
    """One kind's objects, as index entries, kept by a ListWatch. `on_event` is called after the
    index has the change; it must not raise (a watch cannot retry it), so callers keep it to
    enqueueing work. A list's objects are indexed page by page and handed on at once; a list
    after a gap also reports, as DELETED, what it no longer has."""

    name: str
    index_entries: IndexFunction
    tombstone: Callable[[Obj], Obj]
    on_event: EventFunction
    index: KeyedIndex = field(default_factory=KeyedIndex)
    listed: asyncio.Event = field(default_factory=asyncio.Event)  # set once the first list is done
    _seen: dict[str, Seen] = field(default_factory=dict)
    _listing: set[str] = field(default_factory=set)
    _lists: int = 0

    # -- the ListWatch's sink --------------------------------------------------------------
    def list_started(self) -> None:
        self._listing = set()

    def list_page(self, items: list[Obj]) -> None:
        first = self._lists == 0
        for obj in items:
            uid = obj["metadata"]["uid"]
            self._listing.add(uid)
            before = self._seen.get(uid)
            version = str(obj["metadata"].get("resourceVersion") or "")
            if before is not None and before.version == version:
                continue  # unchanged across the gap
            self._index(obj)
            self._tell(None if first else ("ADDED" if before is None else "MODIFIED"), obj)

    async def list_done(self) -> None:
        for uid in [uid for uid in self._seen if uid not in self._listing]:
            self._gone(uid, self._seen[uid].tombstone)
        self._listing = set()
        self._lists += 1
        self.listed.set()

    def changed(self, kind: str, obj: Obj) -> None:
        uid = obj["metadata"]["uid"]
        if kind == "DELETED":
            self._gone(uid, obj)
            return
        self._index(obj)
        self._tell(kind, obj)

    # -- inside ------------------------------------------------------------------------------
    def _index(self, obj: Obj) -> None:
        meta = obj["metadata"]
        self.index.put(meta["uid"], self.index_entries(obj))
        self._seen[meta["uid"]] = Seen(str(meta.get("resourceVersion") or ""), self.tombstone(obj))

    def _gone(self, uid: str, last: Obj) -> None:
        if self._seen.pop(uid, None) is None:
            return  # never seen (or already gone): nothing indexed, nothing to tell
        self.index.discard(uid)
        self._tell("DELETED", last)

    def _tell(self, kind: str | None, obj: Obj) -> None:
        try:
            self.on_event(kind, obj)
        except Exception:  # our own bug: loud; the index has the change, and the resync looks again
            log.exception("%s: handling %s of %s failed", self.name, kind or "the listing", obj["metadata"].get("name"))

    def __len__(self) -> int:
        return len(self._seen)
