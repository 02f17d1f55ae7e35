"""The dead-letter view: Tasks that failed for good, newest first, and their bulk re-run.

A Task is **dead-lettered** when its current run (status.run == spec.rerun) is Failed. kubetask
retries inside a run (the Job's backoffLimit), so a Failed run is already past its retries, a
podFailurePolicy rule for a non-retryable exit code, or activeDeadlineSeconds; nothing will run
it again unless someone asks. Tasks refused before they ran (status.INVALID_REASONS: an invalid
spec, parameters over the TaskType's schema or limits, an unknown TaskType) count too: they are
work that was not done either, and a re-run checks them again against the TaskType as it is now
(after an administrator fixed it), so they are flagged `invalidSpec` rather than left out; the
`reason` filter separates them. The operator's TaskQueue status.deadLetter counts the same set.
Not dead-lettered: Cancelled Tasks (a person decided), and a Failed Task whose re-run has been
requested (spec.rerun raised, the operator not there yet).

The list is served from the Task cache. Re-runs write to the API server exactly as a single
retry does (spec.rerun + 1, cancel off, the resourceVersion as a precondition), so a Task that
changed since it was seen is looked at again before anything is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubetask.api import pagination, selectors
from kubetask.api.errors import GatewayError, from_api_error
from kubetask.api.schemas import DeadLetterFilter, DeadLetterRerunRequest, finished
from kubetask.api.service import CONFLICT_ATTEMPTS, Gateway
from kubetask.kube import ApiError, tasks_path
from kubetask.operator.status import INVALID_REASONS
from kubetask.resources.models import Phase

Task = dict[str, Any]
RERUN_CONCURRENCY = 8  # patches in flight per call, as for batch creates


def dead_lettered(task: Task) -> bool:
    return finished(task) and (task.get("status") or {}).get("phase") == Phase.FAILED.value


def failure(task: Task) -> tuple[str, int | None, str]:
    """(reason, exit code, message) of the Task's failed run."""
    status = task.get("status") or {}
    last = status.get("lastFailure") or {}
    ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    reason = str(ready.get("reason") or last.get("reason") or Phase.FAILED.value)
    code = last.get("exitCode")
    message = str(last.get("message") or ready.get("message") or "")
    return reason, code if isinstance(code, int) else None, message


def queue_of(task: Task) -> str | None:
    queue = (task.get("status") or {}).get("queue") or (task.get("spec") or {}).get("queue")
    return str(queue) if queue else None


def item_view(task: Task) -> dict[str, Any]:
    meta, spec, status = task.get("metadata") or {}, task.get("spec") or {}, task.get("status") or {}
    reason, code, message = failure(task)
    return {
        "name": meta.get("name", ""), "namespace": meta.get("namespace", ""), "uid": meta.get("uid", ""),
        "resourceVersion": meta.get("resourceVersion", ""), "queue": queue_of(task), "type": str(spec.get("type", "")),
        "reason": reason, "exitCode": code, "message": message, "invalidSpec": reason in INVALID_REASONS,
        "attempts": status.get("attempts", 0), "run": status.get("run", 0), "completionTime": status.get("completionTime"),
        "creationTimestamp": meta.get("creationTimestamp"), "labels": meta.get("labels") or {},
    }


@dataclass
class Filters:
    queue: str | None = None
    type: str | None = None
    reason: str | None = None
    label_selector: str | None = None
    prefix: str = ""  # how fields are named in a 422: "" for query parameters, "filter." in a rerun body

    @classmethod
    def of(cls, body: DeadLetterFilter) -> Filters:
        return cls(body.queue, body.type, body.reason, body.label_selector, prefix="filter.")

    def predicate(self) -> Callable[[Task], bool]:
        """A matcher for cached Tasks (dead-lettered ones only); GatewayError 422 names a bad selector."""
        try:
            selector = selectors.parse(self.label_selector)
        except ValueError as error:
            field = f"{self.prefix}labelSelector"
            raise GatewayError(422, f"{field} is invalid: {error}", details=[(field, str(error))]) from error

        def matches(task: Task) -> bool:
            if not dead_lettered(task):
                return False
            if self.type is not None and (task.get("spec") or {}).get("type") != self.type:
                return False
            if self.queue is not None and queue_of(task) != self.queue:
                return False
            if self.reason is not None and failure(task)[0] != self.reason:
                return False
            return selector.matches((task.get("metadata") or {}).get("labels"))

        return matches

    def digest(self) -> str:
        return pagination.filters_digest(view="deadletter", queue=self.queue, type=self.type, reason=self.reason,
                                         labelSelector=self.label_selector)


def _key(task: Task) -> tuple[str, str]:
    """The sort key: (completionTime, name). RFC 3339 times in UTC sort as strings do."""
    return str((task.get("status") or {}).get("completionTime") or ""), str((task.get("metadata") or {}).get("name", ""))


def matching(gw: Gateway, namespace: str, filters: Filters) -> list[Task]:
    """Every matching dead-lettered Task in the cache, newest first (then by name)."""
    matches = filters.predicate()
    found = [t for t in gw.tasks.items(namespace) if matches(t)]  # items() is sorted by name
    found.sort(key=lambda t: _key(t)[0], reverse=True)  # stable: equal times stay in name order
    return found


def listing(gw: Gateway, namespace: str, filters: Filters, limit: int, token: str | None) -> dict[str, Any]:
    """One page. The continue token holds the last item's (completionTime, name): the next page
    starts after it in the same order, however the cache changed in between."""
    digest = filters.digest()
    found = matching(gw, namespace, filters)
    if token:
        try:
            after_time, separator, after_name = pagination.decode(token, digest).partition("|")
        except ValueError as error:
            raise GatewayError(422, str(error), details=[("continue", str(error))]) from error
        if not separator:
            message = "the continue token is malformed; pass back the token of the previous page unchanged"
            raise GatewayError(422, message, details=[("continue", message)])
        found = [t for t in found if _key(t)[0] < after_time or (_key(t)[0] == after_time and _key(t)[1] > after_name)]
    page, rest = found[:limit], found[limit:]
    next_token = pagination.encode("|".join(_key(page[-1])), digest) if rest and page else None
    return {"items": [item_view(t) for t in page], "continue": next_token, "remainingItemCount": len(rest)}


# -- bulk re-run ---------------------------------------------------------------------------------

def outcome(name: str, kind: str, message: str, task: Task | None = None) -> dict[str, Any]:
    spec, meta = (task or {}).get("spec") or {}, (task or {}).get("metadata") or {}
    return {"name": name, "outcome": kind, "message": message,
            "rerun": int(spec.get("rerun", 0) or 0) if task is not None else None,
            "resourceVersion": meta.get("resourceVersion") if task is not None else None}


def _why_not(task: Task) -> str:
    spec, status = task.get("spec") or {}, task.get("status") or {}
    rerun = int(spec.get("rerun", 0) or 0)
    if int(status.get("run", 0) or 0) != rerun:
        return f"a re-run (run {rerun}) is already requested and has not started yet"
    phase = status.get("phase") or Phase.PENDING.value
    return f"it is {phase}; only a Task whose current run Failed is dead-lettered"


async def rerun_one(gw: Gateway, namespace: str, name: str, seen: Task | None) -> dict[str, Any]:
    """Re-run one Task the way POST .../tasks/{name}:retry does: spec.rerun + 1 and cancel off,
    written with the resourceVersion the decision was made on. `seen` (the cached Task, for a
    filter) is tried first; on a conflict, or without it, the Task is read from the API server."""
    task = seen
    for _ in range(CONFLICT_ATTEMPTS):
        if task is None:
            try:
                task = await gw.kube.get(tasks_path(namespace, name))
            except ApiError as error:
                if error.status == 404:
                    return outcome(name, "NotFound", f"Task {name!r} not found in namespace {namespace}")
                return outcome(name, "Error", from_api_error(error, f"reading Task {name}").message)
        if not dead_lettered(task):
            return outcome(name, "NotDeadLettered", f"Task {name!r} is not dead-lettered: {_why_not(task)}")
        rerun = int((task.get("spec") or {}).get("rerun", 0) or 0) + 1
        version = task["metadata"]["resourceVersion"]
        try:
            patched = await gw.kube.patch(tasks_path(namespace, name), {"metadata": {"resourceVersion": version},
                                                                        "spec": {"rerun": rerun, "cancel": False}})
        except ApiError as error:
            if error.status == 409:
                task = None  # it changed since it was read: decide again on a fresh read
                continue
            if error.status == 404:
                return outcome(name, "NotFound", f"Task {name!r} not found in namespace {namespace}")
            return outcome(name, "Error", from_api_error(error, f"re-running Task {name}").message)
        return outcome(name, "Rerun", f"run {rerun} requested", patched)
    return outcome(name, "Conflict", f"Task {name!r} kept changing while it was being re-run; try again")


def check(request: DeadLetterRerunRequest, bound: int) -> None:
    """422 naming the field: not exactly one of names and filter, too many names, a name twice."""
    if (request.names is None) == (request.filter is None):
        message = "give exactly one of names (a list of Task names) and filter (queue, type, reason, labelSelector)"
        problem = "not both" if request.names is not None else "one of names and filter is required"
        raise GatewayError(422, message, details=[("names", problem), ("filter", problem)])
    if request.names is not None:
        if len(request.names) > bound:
            message = f"at most {bound} names per call, not {len(request.names)}; use a filter, or several calls"
            raise GatewayError(422, message, details=[("names", f"at most {bound} names")])
        first: dict[str, int] = {}
        for index, name in enumerate(request.names):
            if name in first:
                raise GatewayError(422, f"names[{index}] repeats {name!r} (names[{first[name]}])",
                                   details=[(f"names[{index}]", "duplicate name")])
            first[name] = index


async def rerun(gw: Gateway, namespace: str, request: DeadLetterRerunRequest) -> dict[str, Any]:
    """Re-run the named Tasks, or the matching ones (newest first, up to rerun_max_items)."""
    bound = gw.settings.rerun_max_items
    check(request, bound)
    remaining = 0
    if request.names is not None:
        chosen: list[tuple[str, Task | None]] = [(name, None) for name in request.names]
    else:
        assert request.filter is not None
        found = matching(gw, namespace, Filters.of(request.filter))
        chosen = [(str(t["metadata"]["name"]), t) for t in found[:bound]]
        remaining = max(0, len(found) - bound)
    semaphore = asyncio.Semaphore(RERUN_CONCURRENCY)

    async def one(name: str, seen: Task | None) -> dict[str, Any]:
        async with semaphore:
            return await rerun_one(gw, namespace, name, seen)

    items = list(await asyncio.gather(*(one(name, seen) for name, seen in chosen)))
    summary: dict[str, int] = {}
    for item in items:
        summary[item["outcome"]] = summary.get(item["outcome"], 0) + 1
    return {"items": items, "summary": summary, "remaining": remaining}
