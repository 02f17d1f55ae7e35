"""Small I/O helpers shared by the controllers of kubetask's own resources (schedules, groups):
a conditional status write, a GET that answers None for 404, and the reconcile loop that decides
again on a fresh read after a 409."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from kubetask.kube import ApiError, Kube, tasks_path
from kubetask.operator import metrics

CONFLICT_RETRIES = 3


async def get_or_none(kube: Kube, namespace: str, name: str, plural: str) -> dict[str, Any] | None:
    try:
        return await kube.get(tasks_path(namespace, name, plural=plural))
    except ApiError as error:
        if error.status == 404:
            return None
        raise


async def write_status(kube: Kube, plural: str, body: dict[str, Any], status: dict[str, Any]) -> None:
    """A merge patch of the status, conditional on the resourceVersion the status was decided on:
    a 409 means the object changed since it was read (the caller decides again on a fresh read)."""
    meta = body["metadata"]
    patch = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status}
    try:
        await kube.patch(tasks_path(meta["namespace"], meta["name"], plural=plural, subresource="status"), patch)
    except ApiError as error:
        if error.status == 404:
            return
        raise
    metrics.API_WRITES.labels("patch", f"{plural}/status").inc()


async def reconcile_fresh_on_conflict(body: dict[str, Any] | None, execute: Callable[[dict[str, Any]], Awaitable[None]],
                                      fetch: Callable[[], Awaitable[dict[str, Any] | None]]) -> None:
    """Run `execute` on the indexed body; after a 409, on a fresh GET, a few times."""
    for attempt in range(CONFLICT_RETRIES + 1):
        if body is None:
            return  # deleted
        try:
            await execute(body)
            return
        except ApiError as error:
            if error.status != 409 or attempt == CONFLICT_RETRIES:
                raise
            body = await fetch()
