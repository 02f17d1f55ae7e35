"""List, then watch from the list's resourceVersion, for ever: client-go's Reflector, small.

One `ListWatch` keeps one collection (a path, optionally a label selector) flowing into a `Sink`:
it lists in pages, then watches from the list's resourceVersion. A watch that ends normally is
resumed from the last resourceVersion seen (bookmarks keep it fresh). 410 Gone, or any error,
means a fresh list after a capped, jittered backoff; the sink is told when a list starts, gets
its pages as they arrive (so a listing of 10,000 objects is never held whole by this loop) and
works out what changed in the gap itself.

Used by the gateway's cache (`kubetask.api.cache`) and the operator's Task and Job stores
(`kubetask.operator.informer`). Written here because neither `kubernetes` nor
`kubernetes_asyncio` has one: their `watch.Watch` streams a single watch and leaves listing,
resuming, 410 and re-listing to the caller.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any, Protocol

from kubetask.kube import ApiError, TransportError

log = logging.getLogger("kubetask.listwatch")
Obj = dict[str, Any]


class Lister(Protocol):
    """What a ListWatch needs of `kubetask.kube.Kube`."""

    async def get(self, path: str, **params: Any) -> dict[str, Any]: ...

    def watch(self, path: str, resource_version: str | None = None, timeout_seconds: int = 300,
              **params: Any) -> Any: ...


class Sink(Protocol):
    """Where a ListWatch's objects go."""

    def list_started(self) -> None:
        """A (re)list begins: the pages that follow are the whole collection."""

    def list_page(self, items: list[Obj]) -> None:
        """One page of the list, in order."""

    async def list_done(self) -> None:
        """The list is complete: what the sink held and the list did not have is gone. The watch
        starts when this returns."""

    def changed(self, kind: str, obj: Obj) -> None:
        """A watch event: "ADDED", "MODIFIED" or "DELETED"."""


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class ListWatch:
    def __init__(self, kube: Lister, path: str, sink: Sink, *, name: str, params: dict[str, Any] | None = None,
                 page_size: int = 500, watch_timeout_seconds: int = 300,
                 on_restart: Callable[[str], None] | None = None) -> None:
        self.kube, self.path, self.sink, self.name = kube, path, sink, name
        self.params = dict(params or {})
        self.page_size = page_size
        self.watch_timeout_seconds = watch_timeout_seconds
        self.on_restart = on_restart
        self.resource_version: str | None = None
        self.synced = False  # listed at least once
        self.healthy = False  # the last list or watch succeeded
        self.last_error = ""

    def _restart(self, reason: str) -> None:
        if self.on_restart is not None:
            self.on_restart(reason)

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self.list()
                self.synced = self.healthy = True
                self.last_error = ""
                backoff = 0.5
                await self.watch()
            except Gone:
                self._restart("gone")
                continue
            except asyncio.CancelledError:
                raise
            except ApiError as error:
                self._failed(f"{error.status} {error.reason}: {error.message}", f"http_{error.status}")
            except (TransportError, OSError, ValueError, KeyError) as error:
                self._failed(f"{type(error).__name__}: {error}", "error")
            except Exception as error:  # a bug here must not leave a frozen copy that reports ready
                log.exception("%s: unexpected error in list/watch", self.name)
                self._failed(f"unexpected {type(error).__name__}: {error}", "unexpected")
            await asyncio.sleep(backoff * (1 + random.random() / 2))
            backoff = min(backoff * 2, 30.0)

    def _failed(self, message: str, reason: str) -> None:
        self.healthy = False
        self.last_error = message
        self._restart(reason)
        log.warning("%s: list/watch failed, will retry: %s", self.name, message)

    async def list(self) -> None:
        self.sink.list_started()
        token: str | None = None
        while True:
            params: dict[str, Any] = {**self.params, "limit": self.page_size}
            if token:
                params["continue"] = token
            try:
                page = await self.kube.get(self.path, **params)
            except ApiError as error:
                if error.status == 410 and token:  # the continue token expired: start over
                    self.sink.list_started()
                    token = None
                    continue
                raise
            self.sink.list_page(page.get("items") or [])
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or None
            if not token:
                self.resource_version = metadata.get("resourceVersion")
                break
        await self.sink.list_done()

    async def watch(self) -> None:
        """Watch from the last resourceVersion, resuming after normal ends; raises Gone on 410."""
        while True:
            try:
                async for event in self.kube.watch(self.path, resource_version=self.resource_version,
                                                   timeout_seconds=self.watch_timeout_seconds, **self.params):
                    self.handle(event)
            except ApiError as error:
                if error.status == 410:
                    raise Gone() from error
                raise
            self.healthy = True

    def handle(self, event: dict[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise Gone()
            raise ApiError(int(code or 500), str(obj.get("reason", "Error")), str(obj.get("message", "watch error")), obj)
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = version
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            self.sink.changed(kind, obj)
