"""What the endpoints do: reads from the cache, writes to the API server. Routers stay thin.

Writes always go to the API server, and the answer a write returns is the API server's. Decisions
that depend on the current state (cancel only an unfinished Task, retry only a Failed or Cancelled
one) read the Task from the API server, not the cache, and write with its resourceVersion as a
precondition, so they are exact.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from kubetask.api import groups, pagination, schedules, selectors, submit
from kubetask.api.auth import Authorizer, User
from kubetask.api.cache import ResourceCache
from kubetask.api.errors import GatewayError, error_info, from_api_error, invalid, not_found
from kubetask.api.metrics import GatewayMetrics
from kubetask.api.schemas import BatchGroup, ScheduleRequest, SubmitRequest, finished, task_view
from kubetask.api.settings import GatewaySettings
from kubetask.api.streams import StreamSlots
from kubetask.kube import MERGE_PATCH, ApiError, Connection, tasks_path
from kubetask.operator.naming import ANNOTATION_SUBMITTED_BY
from kubetask.resources import scheduling
from kubetask.resources.grouping import callback_name
from kubetask.resources.dependencies import dependency_cycle
from kubetask.resources.models import Phase
from kubetask.resources.validation import Problem

log = logging.getLogger("kubetask.gateway")
RETRYABLE = frozenset({Phase.FAILED.value, Phase.CANCELLED.value})
CONFLICT_ATTEMPTS = 5
SCHEDULES = "taskschedules"
WEBHOOK_MEMO_SECONDS = 2.0


class KubeClient(Protocol):
    """The part of `kubetask.kube.Kube` the gateway uses."""

    connection: Connection

    async def get(self, path: str, **params: Any) -> dict[str, Any]: ...

    async def create(self, path: str, body: dict[str, Any], **params: Any) -> dict[str, Any]: ...

    async def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH, **params: Any) -> dict[str, Any]: ...

    async def delete(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]: ...

    def watch(self, path: str, resource_version: str | None = None, timeout_seconds: int = 300, **params: Any) -> Any: ...


@dataclass
class ListFilters:
    type: str | None = None
    queue: str | None = None
    phase: str | None = None
    label_selector: str | None = None

    def predicate(self) -> Callable[[dict[str, Any]], bool]:
        """A matcher for cached Tasks; GatewayError 422 names a bad filter."""
        if self.phase is not None and self.phase not in {p.value for p in Phase}:
            raise GatewayError(422, f"phase must be one of {', '.join(p.value for p in Phase)}", details=[("phase", "unknown phase")])
        try:
            selector = selectors.parse(self.label_selector)
        except ValueError as error:
            raise GatewayError(422, f"labelSelector is invalid: {error}", details=[("labelSelector", str(error))]) from error

        def matches(task: dict[str, Any]) -> bool:
            spec, status = task.get("spec") or {}, task.get("status") or {}
            if self.type is not None and spec.get("type") != self.type:
                return False
            if self.queue is not None and (status.get("queue") or spec.get("queue")) != self.queue:
                return False
            if self.phase is not None and (status.get("phase") or Phase.PENDING.value) != self.phase:
                return False
            return selector.matches((task.get("metadata") or {}).get("labels"))

        return matches

    def digest(self) -> str:
        return pagination.filters_digest(type=self.type, queue=self.queue, phase=self.phase, labelSelector=self.label_selector)


@dataclass
class Submission:
    """One item of a submit or batch, on its way to the API server."""

    request: SubmitRequest
    body: dict[str, Any] | None = None
    idempotency: str | None = None
    digest: str | None = None
    problems: list[Problem] | None = None
    replay: dict[str, Any] | None = None  # the Task an earlier attempt with this Idempotency-Key created


class Gateway:
    """Process-wide state: settings, the API client, caches, the authorizer, metrics."""

    def __init__(self, settings: GatewaySettings, kube: KubeClient, authorizer: Authorizer, metrics: GatewayMetrics) -> None:
        self.settings = settings
        self.kube = kube
        self.auth = authorizer
        self.metrics = metrics
        namespaces = list(settings.namespaces)
        self.tasks = ResourceCache(kube, "tasks", namespaces, metrics, settings.watch_timeout_seconds)
        self.tasktypes = ResourceCache(kube, "tasktypes", namespaces, metrics, settings.watch_timeout_seconds)
        self.taskqueues = ResourceCache(kube, "taskqueues", namespaces, metrics, settings.watch_timeout_seconds)
        self.caches = (self.tasks, self.tasktypes, self.taskqueues)
        self.streams = StreamSlots(settings.sse_max_streams_per_identity, settings.sse_max_streams, settings.sse_retry_after_seconds)
        self._webhooks: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}  # see _webhook

    def start(self) -> None:
        for cache in self.caches:
            cache.start()

    async def stop(self) -> None:
        for cache in self.caches:
            await cache.stop()

    def serves(self, namespace: str) -> bool:
        return not self.settings.namespaces or namespace in self.settings.namespaces

    # -- reads -----------------------------------------------------------------------------------
    async def read(self, cache: ResourceCache, namespace: str, name: str, kind: str) -> dict[str, Any]:
        """From the cache; on a miss, from the API server (a Task created a moment ago may not be cached yet)."""
        found = cache.get(namespace, name)
        if found is not None:
            return found
        try:
            return await self.kube.get(tasks_path(namespace, name, plural=cache.plural))
        except ApiError as error:
            if error.status == 404:
                raise not_found(kind, namespace, name) from error
            raise from_api_error(error, f"reading {kind} {name}") from error

    async def optional(self, cache: ResourceCache, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.read(cache, namespace, name, cache.plural)
        except GatewayError as error:
            if error.status == 404:
                return None
            raise

    def list_tasks(self, namespace: str, filters: ListFilters, limit: int, token: str | None) -> dict[str, Any]:
        matches = filters.predicate()
        digest = filters.digest()
        after = None
        if token:
            try:
                after = pagination.decode(token, digest)
            except ValueError as error:
                raise GatewayError(422, str(error), details=[("continue", str(error))]) from error
        names = self.tasks.names(namespace)
        start = pagination.page(names, after, 0)[0]
        items: list[dict[str, Any]] = []
        remaining = 0
        last = None
        for name in names[start:]:
            task = self.tasks.get(namespace, name)
            if task is None or not matches(task):
                continue
            if len(items) < limit:
                items.append(task_view(task))
                last = name
            else:
                remaining += 1
        next_token = pagination.encode(last, digest) if remaining and last is not None else None
        return {"items": items, "continue": next_token, "remainingItemCount": remaining}

    # -- submit ------------------------------------------------------------------------------------
    async def prepare(self, namespace: str, request: SubmitRequest, user: User, key: str | None) -> Submission:
        """Validate one submission and build its body (problems instead of a body when it is invalid).

        A retry of a submission that already created its Task is recognised first: it gets that Task
        back even if the TaskType or queue changed since."""
        item = Submission(request)
        if key is not None:
            item.idempotency = submit.idempotency_hash(namespace, user.username, key)
            item.digest = submit.request_digest(request)
            earlier = self._with_key(namespace, item.idempotency)
            if earlier is not None and submit.same_submission(earlier, item.idempotency, item.digest, user.username):
                item.replay = earlier
                return item
        problems = await self.check(namespace, request)
        problems += self.dependency_problems(namespace, request)
        if problems:
            item.problems = problems
            return item
        name = request.name
        if item.idempotency is not None:
            name = name or submit.generated_name(request.spec.type, item.idempotency[:10])
        item.body = submit.build(namespace, request, name or submit.generated_name(request.spec.type), user.username,
                                 item.idempotency, item.digest)
        return item

    async def check(self, namespace: str, request: SubmitRequest) -> list[Problem]:
        """Everything a submission is checked for before it is created: submit.check() against the
        (cached) TaskType, and that its effective queue exists (unless require_queue is off)."""
        tasktype = await self.optional(self.tasktypes, namespace, request.spec.type)
        effective, problems = submit.check(request, (tasktype or {}).get("spec", {}) if tasktype else None, namespace,
                                           self.settings.default_queue)
        if effective is not None and self.settings.require_queue:
            if await self.optional(self.taskqueues, namespace, effective.queue) is None:
                field = "spec.queue" if request.spec.queue else "spec.type"
                origin = "" if request.spec.queue else " (the queue comes from the TaskType's defaults or the gateway's default)"
                problems.append(Problem(field, f"TaskQueue {effective.queue!r} does not exist in namespace {namespace}{origin}", "QueueNotFound"))
        if request.spec.webhook:
            webhook = await self._webhook(namespace, request.spec.webhook)
            if (problem := submit.webhook_problem(request.spec.webhook, webhook, namespace)) is not None:
                problems.append(problem)
        return problems

    async def _webhook(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A TaskWebhook, read live (few submissions name one; no watch), remembered a moment so a
        batch naming the same one reads it once."""
        moment = time.monotonic()
        remembered = self._webhooks.get((namespace, name))
        if remembered is not None and moment - remembered[0] < WEBHOOK_MEMO_SECONDS:
            return remembered[1]
        try:
            found: dict[str, Any] | None = await self.kube.get(tasks_path(namespace, name, plural="taskwebhooks"))
        except ApiError as error:
            if error.status != 404:
                raise from_api_error(error, f"reading TaskWebhook {name}") from error
            found = None
        if len(self._webhooks) > 1000:
            self._webhooks.clear()  # bounded
        self._webhooks[(namespace, name)] = (moment, found)
        return found

    def dependency_problems(self, namespace: str, request: SubmitRequest) -> list[Problem]:
        """spec.after naming the Task itself, or closing a cycle through Tasks already there (the
        cache's view). Names that do not exist yet are fine: they are waited for. A generated
        name cannot be named by anything yet, so only a named Task can close a cycle."""
        after, name = request.spec.after or [], request.name
        if not after or not name:
            return []
        if name in after:
            return [Problem("spec.after", "a Task cannot depend on itself", "DependencyCycle")]

        def after_of(task_name: str) -> tuple[str, ...]:
            if task_name == name:
                return tuple(after)
            cached = self.tasks.get(namespace, task_name)
            return tuple(((cached or {}).get("spec") or {}).get("after") or ())

        cycle = dependency_cycle(name, after_of)
        if cycle:
            return [Problem("spec.after", "would close a dependency cycle: " + " → ".join(cycle), "DependencyCycle")]
        return []

    def _with_key(self, namespace: str, idempotency: str) -> dict[str, Any] | None:
        """A cached Task created with this Idempotency-Key hash, if any."""
        for task in self.tasks.items(namespace):
            if ((task.get("metadata") or {}).get("labels") or {}).get(submit.IDEMPOTENCY_LABEL) == idempotency:
                return task
        return None

    async def create(self, namespace: str, item: Submission, user: User) -> tuple[int, dict[str, Any]]:
        """Create one prepared Task: (201, task) or, for a replayed Idempotency-Key, (200, the existing task)."""
        if item.replay is not None:
            self.metrics.submissions.labels("replayed").inc()
            return 200, item.replay
        assert item.body is not None
        name = item.body["metadata"]["name"]
        if item.idempotency is not None:
            other = self._with_key(namespace, item.idempotency)
            if other is not None:  # the same key, but not this request (prepare() recognised a true retry)
                self.metrics.submissions.labels("conflict").inc()
                raise GatewayError(409, f"the Idempotency-Key was already used for Task {other['metadata']['name']!r} with a different request",
                                   reason="IdempotencyKeyReused")
        try:
            created = await self.kube.create(tasks_path(namespace), item.body)
        except ApiError as error:
            if error.status != 409:
                self.metrics.submissions.labels("error").inc()
                raise from_api_error(error, f"creating Task {name}") from error
            existing = await self.optional(self.tasks, namespace, name) if item.idempotency else None
            if existing is not None and item.idempotency and item.digest:
                if submit.same_submission(existing, item.idempotency, item.digest, user.username):
                    self.metrics.submissions.labels("replayed").inc()
                    return 200, existing
                self.metrics.submissions.labels("conflict").inc()
                raise GatewayError(409, f"Task {name!r} exists and was not created by this request (same Idempotency-Key, "
                                   "different body or user, or a name taken by another Task)", reason="IdempotencyKeyReused") from error
            self.metrics.submissions.labels("conflict").inc()
            raise GatewayError(409, f"Task {name!r} already exists in namespace {namespace}", reason="AlreadyExists") from error
        self.metrics.submissions.labels("created").inc()
        return 201, created

    async def submit(self, namespace: str, request: SubmitRequest, user: User, key: str | None) -> tuple[int, dict[str, Any]]:
        item = await self.prepare(namespace, request, user, key)
        if item.problems:
            self.metrics.submissions.labels("invalid").inc()
            raise invalid(item.problems, what=f"the Task ({request.spec.type})")
        return await self.create(namespace, item, user)

    async def submit_batch(self, namespace: str, requests: list[SubmitRequest], user: User, key: str | None,
                           group: BatchGroup | None = None) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """All or nothing: every item is checked (locally, then by an API-server dry run) before any is created.

        With `group`, the TaskGroup (spec.size = the number of items) is checked and dry-run with the
        items, then created first, and the items are created as its members (label and owner). If an
        item then fails at the API server (the 207 window), the group stays with the members that
        were created and keeps waiting for spec.size of them: it never reports Finished, nor runs its
        callback, for a partial batch; retrying the batch with the same Idempotency-Key completes it.
        Returns the item results and the group (None without one)."""
        if len(requests) > self.settings.batch_max_items:
            raise GatewayError(413, f"a batch may hold at most {self.settings.batch_max_items} items, not {len(requests)}",
                               details=[("items", f"at most {self.settings.batch_max_items} items")])
        plan = await groups.prepare_batch(self, namespace, group, len(requests), user, key) if group is not None else None
        items = [await self.prepare(namespace, r, user, None if key is None else f"{key}#{i}") for i, r in enumerate(requests)]
        errors: dict[int, dict[str, Any]] = {}
        for index, item in enumerate(items):
            if item.problems:
                errors[index] = invalid(item.problems, prefix=f"items[{index}].", what=f"item {index}").info()
        seen: dict[str, int] = {}
        for index, item in enumerate(items):
            if item.body is None:
                continue
            name = item.body["metadata"]["name"]
            if name in seen:
                errors[index] = error_info(409, f"item {index} has the same name {name!r} as item {seen[name]}",
                                           details=[(f"items[{index}].name", "duplicate name in the batch")])
            seen.setdefault(name, index)
            if plan is not None and group is not None and group.callback is not None and name == callback_name(plan.name):
                errors[index] = error_info(422, f"item {index} is named {name!r}, the name of the group's callback Task",
                                           details=[(f"items[{index}].name", "reserved for the group's callback Task")])
        group_error = plan.error if plan is not None else None
        if plan is not None:
            for item in items:
                if item.body is not None:
                    groups.join(item.body, groups.placeholder(plan))  # dry-run as members: the group does not exist yet
            if not errors and group_error is None:
                group_error = await groups.dry_run(self, namespace, plan)
        if not errors and group_error is None:
            errors.update(await self._dry_run(namespace, items, user))
        if errors or group_error is not None:
            self.metrics.submissions.labels("invalid").inc(len(requests))
            raise batch_failure(errors, len(items), [_name_of(i) for i in items], group_error)
        created_group = None
        if plan is not None:
            created_group = await groups.create_batch_group(self, namespace, plan, user)  # raises: nothing was created
            for item in items:
                if item.body is not None:
                    groups.join(item.body, created_group)
        semaphore = asyncio.Semaphore(8)

        async def one(item: Submission) -> tuple[int, dict[str, Any]] | GatewayError:
            async with semaphore:
                try:
                    return await self.create(namespace, item, user)
                except GatewayError as error:
                    return error

        created = list(await asyncio.gather(*(one(item) for item in items)))
        results: list[dict[str, Any]] = []
        for index, outcome in enumerate(created):
            name = _name_of(items[index])
            if isinstance(outcome, GatewayError):
                results.append({"index": index, "status": outcome.status, "name": name, "task": None, "error": outcome.info()})
            else:
                status, task = outcome
                results.append({"index": index, "status": status, "name": task["metadata"]["name"], "task": task_view(task), "error": None})
        return results, created_group

    async def _dry_run(self, namespace: str, items: list[Submission], user: User) -> dict[int, dict[str, Any]]:
        """What the API server would say (schema, CEL, admission, name conflicts), without creating anything."""
        errors: dict[int, dict[str, Any]] = {}
        semaphore = asyncio.Semaphore(8)

        async def one(index: int, item: Submission) -> None:
            if item.body is None:
                return  # a replay: nothing to create
            async with semaphore:
                try:
                    await self.kube.create(tasks_path(namespace), item.body, dryRun="All")
                except ApiError as error:
                    if error.status == 409 and item.idempotency and item.digest:
                        existing = await self.optional(self.tasks, namespace, item.body["metadata"]["name"])
                        if existing is not None and submit.same_submission(existing, item.idempotency, item.digest, user.username):
                            return  # a replay: create() will return the existing Task
                    mapped = from_api_error(error, f"item {index}")
                    if mapped.status >= 500:
                        raise mapped from error
                    errors[index] = mapped.info()

        await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))
        return errors

    # -- cancel and retry ----------------------------------------------------------------------------
    async def _live(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            return await self.kube.get(tasks_path(namespace, name))
        except ApiError as error:
            if error.status == 404:
                raise not_found("Task", namespace, name) from error
            raise from_api_error(error, f"reading Task {name}") from error

    async def _patch(self, namespace: str, name: str, version: str, spec: dict[str, Any]) -> dict[str, Any]:
        return await self.kube.patch(tasks_path(namespace, name), {"metadata": {"resourceVersion": version}, "spec": spec})

    async def cancel(self, namespace: str, name: str) -> dict[str, Any]:
        for _ in range(CONFLICT_ATTEMPTS):
            task = await self._live(namespace, name)
            if finished(task):
                phase = task["status"]["phase"]
                raise GatewayError(409, f"Task {name!r} is already {phase}; there is nothing to cancel", reason="AlreadyFinished")
            if (task.get("spec") or {}).get("cancel"):
                return task  # already requested: the operator is on it
            try:
                return await self._patch(namespace, name, task["metadata"]["resourceVersion"], {"cancel": True})
            except ApiError as error:
                if error.status == 409:
                    continue  # the Task changed meanwhile (a status update): look again
                raise from_api_error(error, f"cancelling Task {name}") from error
        raise GatewayError(409, f"Task {name!r} kept changing while it was being cancelled; try again")

    async def retry(self, namespace: str, name: str, resource_version: str | None) -> dict[str, Any]:
        for _ in range(CONFLICT_ATTEMPTS):
            task = await self._live(namespace, name)
            version = task["metadata"]["resourceVersion"]
            if resource_version is not None and resource_version != version:
                raise GatewayError(409, f"Task {name!r} has changed (resourceVersion {version}, not {resource_version}); read it again",
                                   reason="Conflict")
            spec, status = task.get("spec") or {}, task.get("status") or {}
            rerun = int(spec.get("rerun", 0) or 0)
            if int(status.get("run", 0) or 0) != rerun:
                raise GatewayError(409, f"Task {name!r} already has a new run requested (rerun {rerun}) that has not started yet",
                                   reason="RerunPending")
            phase = status.get("phase") or Phase.PENDING.value
            if phase not in RETRYABLE:
                raise GatewayError(409, f"Task {name!r} is {phase}; only a Failed or Cancelled Task can be retried", reason="NotRetryable")
            try:
                return await self._patch(namespace, name, version, {"rerun": rerun + 1, "cancel": False})
            except ApiError as error:
                if error.status == 409 and resource_version is None:
                    continue
                raise from_api_error(error, f"retrying Task {name}") from error
        raise GatewayError(409, f"Task {name!r} kept changing while it was being retried; try again")

    # -- TaskSchedules -------------------------------------------------------------------------------
    # Read live from the API server, not from a watch cache as Tasks are: a namespace holds tens of
    # schedules, not thousands of Tasks, so one GET per request is cheap; every answer is exactly
    # what the API server holds (the trigger needs the schedule's current uid for the Task's
    # ownerReference); and the gateway keeps no watch, and no readiness dependency, on a CRD that a
    # cluster upgraded gateway-first may not have yet.
    async def list_schedules(self, namespace: str) -> list[dict[str, Any]]:
        try:
            answer = await self.kube.get(tasks_path(namespace, plural=SCHEDULES))
        except ApiError as error:
            if error.status == 404:
                raise GatewayError(404, "the cluster serves no TaskSchedules (is the taskschedules.kubetask.io CRD installed?)") from error
            raise from_api_error(error, "listing TaskSchedules") from error
        items: list[dict[str, Any]] = answer.get("items") or []
        return sorted(items, key=lambda o: str((o.get("metadata") or {}).get("name", "")))

    async def read_schedule(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            return await self.kube.get(tasks_path(namespace, name, plural=SCHEDULES))
        except ApiError as error:
            if error.status == 404:
                raise not_found("TaskSchedule", namespace, name) from error
            raise from_api_error(error, f"reading TaskSchedule {name}") from error

    async def _template_problems(self, namespace: str, template: Any) -> list[Problem]:
        """What would stop a run of this taskTemplate being submitted, named as template fields."""
        request, problems = schedules.template_submission(template if isinstance(template, dict) else {})
        if request is None:
            return problems
        return [Problem(schedules.template_field(p.field), p.message, p.reason) for p in await self.check(namespace, request)]

    async def create_schedule(self, namespace: str, request: ScheduleRequest, user: User) -> dict[str, Any]:
        problems = submit.metadata_problems(request.labels, request.annotations)
        problems += await self._template_problems(namespace, request.spec.task_template.to_json())
        if problems:
            raise invalid(problems, what=f"the TaskSchedule {request.name!r}")
        try:
            return await self.kube.create(tasks_path(namespace, plural=SCHEDULES), schedules.build(namespace, request, user.username))
        except ApiError as error:
            if error.status == 409:
                raise GatewayError(409, f"TaskSchedule {request.name!r} already exists in namespace {namespace}", reason="AlreadyExists") from error
            raise from_api_error(error, f"creating TaskSchedule {request.name}") from error

    async def trigger(self, namespace: str, name: str, user: User, now: datetime | None = None) -> dict[str, Any]:
        """Create a Task from the schedule's template now, as `user` (recorded like a submitter).

        A suspended schedule can be triggered too (as `kubectl create job --from=cronjob/...`):
        suspend stops the clock, not people."""
        schedule = await self.read_schedule(namespace, name)
        problems = await self._template_problems(namespace, (schedule.get("spec") or {}).get("taskTemplate"))
        if problems:
            self.metrics.submissions.labels("invalid").inc()
            raise invalid(problems, what=f"the taskTemplate of TaskSchedule {name!r}")
        body = scheduling.task_for_run(schedule, now or datetime.now(timezone.utc), manual=True,
                                       extra_annotations={ANNOTATION_SUBMITTED_BY: user.username})
        task_name = body["metadata"]["name"]
        try:
            created = await self.kube.create(tasks_path(namespace), body)
        except ApiError as error:
            if error.status == 409:  # manual names have one-second resolution: a double click
                self.metrics.submissions.labels("conflict").inc()
                raise GatewayError(409, f"Task {task_name!r} already exists: TaskSchedule {name!r} was triggered twice within "
                                   "one second; try again", reason="AlreadyExists") from error
            self.metrics.submissions.labels("error").inc()
            raise from_api_error(error, f"creating Task {task_name} from TaskSchedule {name}") from error
        self.metrics.submissions.labels("created").inc()
        return created

    async def set_suspend(self, namespace: str, name: str, suspend: bool) -> dict[str, Any]:
        """spec.suspend, by merge patch without a resourceVersion precondition: setting one boolean is
        idempotent, so the last of two concurrent requests wins, as with `kubectl patch`."""
        try:
            return await self.kube.patch(tasks_path(namespace, name, plural=SCHEDULES), {"spec": {"suspend": suspend}})
        except ApiError as error:
            if error.status == 404:
                raise not_found("TaskSchedule", namespace, name) from error
            raise from_api_error(error, f"{'suspending' if suspend else 'resuming'} TaskSchedule {name}") from error


def _name_of(item: Submission) -> str | None:
    if item.replay is not None:
        return str(item.replay["metadata"]["name"])
    return str(item.body["metadata"]["name"]) if item.body is not None else None


def batch_failure(errors: dict[int, dict[str, Any]], count: int, names: list[str | None],
                  group_error: dict[str, Any] | None = None) -> GatewayError:
    """The 422 (or 409/413) of a batch in which some items (or its group) failed: nothing was created; one result per item."""
    results = []
    for index in range(count):
        error = errors.get(index) or error_info(424, "valid, but not created because another item of the batch failed"
                                                if errors else "valid, but not created because the batch's group failed")
        results.append({"index": index, "status": error["status"], "name": names[index], "task": None, "error": error})
    statuses = {e["status"] for e in errors.values()} | ({group_error["status"]} if group_error else set())
    status = statuses.pop() if len(statuses) == 1 else 422
    failed = sorted(errors)
    group_details = [(d["field"], d["message"]) for d in (group_error or {}).get("details") or []] or \
        ([("group", group_error["message"])] if group_error else [])
    details = group_details + ([(d["field"], d["message"]) for i in failed for d in errors[i].get("details") or []] or
                               [(f"items[{i}]", errors[i]["message"]) for i in failed])
    noun = "item" if len(failed) == 1 else "items"
    parts = (["the batch's group failed"] if group_error else []) + \
        ([f"{len(failed)} of {count} {noun} failed ({', '.join(str(i) for i in failed[:10])})"] if failed else [])
    message = "; ".join(parts) + "; nothing was created: " + "; ".join(
        ([group_error["message"]] if group_error else []) + [errors[i]["message"] for i in failed[:3]])
    reason = group_error["reason"] if group_error and not errors else None  # e.g. AlreadyExists: the group's name is taken
    return GatewayError(status, message, reason=reason, details=details, extra={"items": results})
