"""Kopf wiring: indexes and event handlers. Thin: each handler hands over to the Controller.

Why only `@kopf.index` and `@kopf.on.event`: they keep no per-object bookkeeping. Kopf's
change-detecting handlers (on.create/update/resume) store a diff-base annotation and progress
in every object, and deletion handlers add a finalizer; each of those costs API writes per Task.
Level-triggered reconciliation needs none of it.

Kopf fills every index from the initial listing before it calls any handler, so after a restart
the first admission decision already sees every Job and every waiting Task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import kopf


from kubetask.kube import ApiError, Connection, Kube, TransportError
from kubetask.operator import metrics, naming, retention, webhook_delivery
from kubetask.operator.config import OperatorSettings
from kubetask.operator.controller import (ITEM_COUNT, PARAMETERS_OMITTED, Controller, DependentsKey, GroupKey, JobCreatesRefused, Key, QueueKey, QueueSpec, ScheduleKey, TaskKey,
                                          rate_window,
                                          Views, copy_value, plain)
from kubetask.operator.decide import settled, started_or_settled
from kubetask.operator.group import LABEL_CALLBACK_OF, Member
from kubetask.operator.group_controller import GroupController
from kubetask.operator.schedule_controller import ScheduleController
from kubetask.operator.records import FinishedTask, ScheduledTask, summarize_finished, summarize_scheduled
from kubetask.operator.workqueue import WorkQueue, run_workers
from kubetask.operator.status import JobSummary, summarize_job
from kubetask.resources.models import GROUP, VERSION
from kubetask.resources.grouping import LABEL_GROUP
from kubetask.resources.scheduling import LABEL_SCHEDULE
from kubetask.resources.validation import parameters_size, serialized_size

log = logging.getLogger("kubetask.operator")
registry = kopf.OperatorRegistry()
MANAGED = {naming.MANAGED_BY: naming.MANAGED_BY_VALUE}
TASKS = (GROUP, VERSION, "tasks")
TASKTYPES = (GROUP, VERSION, "tasktypes")
TASKQUEUES = (GROUP, VERSION, "taskqueues")
TASKSCHEDULES = (GROUP, VERSION, "taskschedules")
TASKGROUPS = (GROUP, VERSION, "taskgroups")
TASKWEBHOOKS = (GROUP, VERSION, "taskwebhooks")
INDEXED_PARAMETERS_BYTES = 1024


class State:
    """Process-wide: the controller and the index views (set once Kopf starts handling)."""

    controller: Controller | None = None
    views: Views | None = None
    queue_index: kopf.Index[Any, Any] | None = None  # taskqueues: which queues to publish status for
    task_index: kopf.Index[Any, Any] | None = None  # tasks: its ("phase", ...) keys make the kubetask_tasks gauge
    settings = OperatorSettings()
    work: WorkQueue[Key] = WorkQueue()
    background: list[asyncio.Task[None]] = []
    deliverer: webhook_delivery.Deliverer | None = None  # webhooks: their own queue, workers and clients


# ---------------------------------------------------------------------------------------------
# Indexes (memory: summaries only; parameters and results are never held)
#
# Coroutines on purpose: Kopf runs a plain `def` handler in a thread pool, and a thread hop per
# object per index was a tenth of the operator's CPU in a burst.
# ---------------------------------------------------------------------------------------------

@kopf.index(*TASKS, registry=registry)
async def tasks(body: kopf.Body, namespace: str | None, uid: str, **_: Any) -> dict[Any, Any]:
    """Every Task, in one index: an unfinished one's slim body, a finished one's record, its
    group membership and its phase for the gauge, under keys of disjoint shapes (views_from reads
    them). One index, not four: Kopf's machinery per handler and event, not these functions, was
    a fifth of a restart's time with 10,000 Tasks (docs/benchmarks.md).

    Never None: Kopf keeps an object's previous entries when its index function returns None, so
    a finished Task would stay indexed with its last unfinished body (admitted again, counted as
    Queued, held in memory forever)."""
    status = body.get("status") or {}
    keys: dict[Any, Any] = {("phase", status.get("phase") or "Pending", body.get("spec", {}).get("type", ""), status.get("queue") or ""): None}
    keys.update(unfinished_entries(body, namespace, uid))
    keys.update(finished_entries(body))
    keys.update(group_entries(body, namespace))
    return keys


def unfinished_entries(body: kopf.Body, namespace: str | None, uid: str) -> dict[Any, dict[str, Any]]:
    """An unfinished Task, slim, by namespace, ("uid", uid), ("name", ns, name) and ("after", ns,
    upstream); nothing for a finished one."""
    spec, status = body.get("spec", {}), body.get("status") or {}
    if settled(spec, status):
        return {}
    # Small parameters stay in memory (no re-fetch at admission); large ones are fetched then.
    small = parameters_size(copy_value(spec.get("parameters") or {})) <= INDEXED_PARAMETERS_BYTES
    # A fan-out's items likewise (up to 128 KiB per Task): only their count stays.
    items = spec.get("items")
    small_items = items is None or serialized_size(copy_value(items)) <= INDEXED_PARAMETERS_BYTES
    slim = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {k: copy_value(body["metadata"].get(k)) for k in ("name", "namespace", "uid", "generation", "resourceVersion", "creationTimestamp", "annotations")},
        "spec": {k: copy_value(v) for k, v in spec.items() if (k != "parameters" or small) and (k != "items" or small_items)},
        "status": {k: copy_value(v) for k, v in status.items() if k != "result"},
    }
    if not small or not small_items:
        slim[PARAMETERS_OMITTED] = True
    if not small_items:
        slim[ITEM_COUNT] = len(items)
    keys: dict[Any, dict[str, Any]] = {namespace: slim, ("uid", uid): slim, ("name", namespace, body["metadata"]["name"]): slim}
    if not started_or_settled(spec, status):
        # What an admission round looks through: in a burst most unfinished Tasks already run,
        # and scanning them all per round was 7 % of the operator's CPU (docs/benchmarks.md).
        keys[("unstarted", namespace)] = slim
    for upstream in spec.get("after") or ():  # who waits on whom: an upstream's events reach its dependents
        keys[("after", namespace, upstream)] = slim
    return keys


def finished_entries(body: kopf.Body) -> dict[Any, FinishedTask]:
    """A finished Task as a small record, by ("finished",), ("finished-name", ns, name), ("starts",
    ns, queue) and ("finished-after", ns, upstream): retention deletes them when due, and their
    start times are what a queue's rate limit counts (recorded, so the limit holds across
    restarts). Nothing for an unfinished one."""
    if not settled(body.get("spec", {}), body.get("status") or {}):
        return {}
    record = summarize_finished(body)
    if record is None:
        return {}
    keys: dict[Any, FinishedTask] = {("finished",): record, ("finished-name", record.namespace, record.name): record}
    if record.started is not None:
        keys[("starts", record.namespace, record.queue)] = record
    for upstream in record.after:
        keys[("finished-after", record.namespace, upstream)] = record
    return keys


@kopf.index(*TASKS, labels={LABEL_SCHEDULE: kopf.PRESENT}, registry=registry)
async def schedule_tasks(body: kopf.Body, namespace: str | None, **_: Any) -> dict[tuple[str | None, str], ScheduledTask]:
    """Every Task a TaskSchedule made, finished or not: its status, concurrency and history."""
    finished = settled(body.get("spec", {}), body.get("status") or {})
    return {(namespace, body["metadata"]["labels"][LABEL_SCHEDULE]): summarize_scheduled(body, finished)}


def group_entries(body: kopf.Body, namespace: str | None) -> dict[tuple[str, str | None, str], Member]:
    """Members of TaskGroups (label kubetask.io/group) and groups' callbacks, as small records,
    by ("member", ns, group) and ("callback", ns, group)."""
    labels = body["metadata"].get("labels") or {}
    group, callback_of = labels.get(LABEL_GROUP), labels.get(LABEL_CALLBACK_OF)
    if not group and not callback_of:
        return {}
    status = body.get("status") or {}
    member = Member(body["metadata"]["name"], body["metadata"]["uid"], str(status.get("phase") or ""), settled(body.get("spec", {}), status))
    keys: dict[tuple[str, str | None, str], Member] = {}
    if group:
        keys[("member", namespace, group)] = member
    if callback_of:
        keys[("callback", namespace, callback_of)] = member
    return keys


@kopf.index(*TASKGROUPS, registry=registry)
async def taskgroups(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> dict[tuple[str | None, str], dict[str, Any]]:
    return {(namespace, name): plain(body)}


@kopf.index(*TASKSCHEDULES, registry=registry)
async def taskschedules(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> dict[tuple[str | None, str], dict[str, Any]]:
    return {(namespace, name): plain(body)}


@kopf.index("batch", "v1", "jobs", labels=MANAGED, registry=registry)
async def kubetask_jobs(body: kopf.Body, **_: Any) -> dict[tuple[str, ...], JobSummary]:
    job = summarize_job(body)  # reads only: no copy of the body
    keys: dict[tuple[str, ...], JobSummary] = {("task", job.task_uid): job}
    if job.running:
        keys[("queue", job.namespace, job.queue)] = job
    keys[("started", job.namespace, job.queue)] = job  # every Job, finished too: a rate limit counts its start
    return keys


@kopf.index(*TASKTYPES, registry=registry)
async def tasktypes(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> dict[tuple[str | None, str], dict[str, Any]]:
    return {(namespace, name): plain(body).get("spec", {})}


@kopf.index(*TASKQUEUES, registry=registry)
async def taskqueues(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> dict[tuple[str | None, str], QueueSpec]:
    spec = body.get("spec") or {}
    return {(namespace, name): QueueSpec(
        max_running=int(spec.get("maxRunning", 10)), max_gpus=spec.get("maxGpus"), paused=bool(spec.get("paused", False)),
        generation=body["metadata"].get("generation"), status=plain(body).get("status") or {},
        retention_seconds=spec.get("retentionSeconds"), rate_limit=rate_window(spec.get("rateLimit")),
        webhook=spec.get("webhook"))}


@kopf.index(*TASKWEBHOOKS, registry=registry)
async def taskwebhooks(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> dict[tuple[str | None, str], dict[str, Any]]:
    return {(namespace, name): plain(body)}


def _values(index: kopf.Index[Any, Any], key: Any) -> list[Any]:
    return list(index[key]) if key in index else []


def _one(index: kopf.Index[Any, Any], key: Any) -> Any:
    values = _values(index, key)
    return values[0] if values else None


def views_from(kwargs: dict[str, Any]) -> Views:
    """The views over Kopf's indexes, made on the first handler call and reused: Kopf hands every
    handler the same Index objects for the life of the operator (one Kopf run per process: a
    leader that loses its Lease exits), and building two dozen closures per event was 3 % of the
    operator's CPU in a burst (docs/benchmarks.md). The first call also starts the workers."""
    if State.views is None:
        State.views = build_views(kwargs)
        State.queue_index, State.task_index = kwargs["taskqueues"], kwargs["tasks"]
        _start_background(kwargs, State.views)
    return State.views


def build_views(kwargs: dict[str, Any]) -> Views:
    tasks_idx, jobs_idx = kwargs["tasks"], kwargs["kubetask_jobs"]
    types_idx, queues_idx = kwargs["tasktypes"], kwargs["taskqueues"]
    schedules_idx, schedule_tasks_idx = kwargs["taskschedules"], kwargs["schedule_tasks"]
    groups_idx = kwargs["taskgroups"]
    return Views(
        tasks=lambda ns: _values(tasks_idx, ns),
        unstarted_tasks=lambda ns: _values(tasks_idx, ("unstarted", ns)),
        task_by_uid=lambda uid: _one(tasks_idx, ("uid", uid)),
        all_task_uids=lambda: [key[1] for key in list(tasks_idx) if isinstance(key, tuple) and key[0] == "uid"],
        jobs_of_task=lambda uid: _values(jobs_idx, ("task", uid)),
        running_jobs=lambda ns, q: _values(jobs_idx, ("queue", ns, q)),
        queue_jobs=lambda ns, q: _values(jobs_idx, ("started", ns, q)),
        all_running_jobs=lambda: [j for key in list(jobs_idx) if key[0] == "queue" for j in jobs_idx[key]],
        tasktype=lambda ns, name: _one(types_idx, (ns, name)),
        queue=lambda ns, name: _one(queues_idx, (ns, name)),
        all_queues=lambda: list(queues_idx),
        finished_tasks=lambda: _values(tasks_idx, ("finished",)),
        queue_starts=lambda ns, q: _values(tasks_idx, ("starts", ns, q)),
        task_named=lambda ns, name: _one(tasks_idx, ("name", ns, name)),
        finished_named=lambda ns, name: _one(tasks_idx, ("finished-name", ns, name)),
        dependents=lambda ns, name: _values(tasks_idx, ("after", ns, name)),
        finished_dependents=lambda ns, name: _values(tasks_idx, ("finished-after", ns, name)),
        group=lambda ns, name: _one(groups_idx, (ns, name)),
        group_members=lambda ns, name: _values(tasks_idx, ("member", ns, name)),
        group_callback=lambda ns, name: _one(tasks_idx, ("callback", ns, name)),
        all_groups=lambda: list(groups_idx),
        schedule=lambda ns, name: _one(schedules_idx, (ns, name)),
        schedule_tasks=lambda ns, name: _values(schedule_tasks_idx, (ns, name)),
        all_schedules=lambda: list(schedules_idx),
    )


def _start_background(kwargs: dict[str, Any], views: Views) -> None:
    # Started from inside a handler on purpose: asyncio tasks copy the current context, and
    # kopf.event() needs the event-posting queue that Kopf puts only into handlers' context.
    State.background += [asyncio.create_task(coroutine) for coroutine in (_run_workers(views), _resync(views), _check_pending_pods(views),
                                                                          _sweep_retention(views))]
    # Webhooks get their own API connection (its own in-flight limit) and HTTP client.
    State.deliverer = webhook_delivery.Deliverer(Kube(controller().kube.connection, max_in_flight=4), State.settings, views,
                                                 _webhook_views(kwargs, views))
    State.background.append(asyncio.create_task(State.deliverer.run()))


def _webhook_views(kwargs: dict[str, Any], views: Views) -> webhook_delivery.WebhookViews:
    hooks_idx, types_idx = kwargs["taskwebhooks"], kwargs["tasktypes"]

    def queues_in(namespace: str) -> list[tuple[str, str | None]]:
        found = [(name, views.queue(ns, name)) for ns, name in list(views.all_queues()) if ns == namespace]
        return [(name, queue.webhook) for name, queue in found if queue is not None]

    return webhook_delivery.WebhookViews(
        webhook=lambda ns, name: _one(hooks_idx, (ns, name)),
        all_webhooks=lambda: list(hooks_idx),
        tasktypes_in=lambda ns: [(key[1], spec) for key in list(types_idx) if key[0] == ns for spec in types_idx[key]],
        queues_in=queues_in,
    )


def controller() -> Controller:
    assert State.controller is not None, "the operator has not started"
    return State.controller


# ---------------------------------------------------------------------------------------------
# Lifecycle
# ---------------------------------------------------------------------------------------------

@kopf.on.startup(registry=registry)
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Watch only kubetask's own Jobs, filtered by the API server, never every Job. Pods are not
    # watched at all: the Job's status says enough (see Controller.check_pending_pods).
    settings.watching.label_selectors["batch", "jobs"] = f"{naming.MANAGED_BY}={naming.MANAGED_BY_VALUE}"
    settings.watching.chunk_size = 500  # page the initial LIST: bounded memory spikes with 10k Tasks
    settings.posting.level = logging.INFO  # only our explicit kopf.event() calls post Events
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kubetask.io")
    settings.persistence.diffbase_storage = UnusedDiffBase()
    settings.networking.error_backoffs = [1, 2, 5, 10]
    settings.batching.error_delays = [1, 2, 5, 10, 30]
    State.work = WorkQueue(base_delay=State.settings.retry_base_delay, max_delay=State.settings.retry_max_delay)
    connection = await Connection.resolve(context=State.settings.kube_context)
    State.controller = Controller(Kube(connection), State.settings, enqueue=_enqueue, enqueue_after=State.work.add_after)
    State.controller.schedules = ScheduleController(State.controller.kube, enqueue_after=State.work.add_after)
    State.controller.groups = GroupController(State.controller.kube)
    State.background.append(asyncio.create_task(_publish_queue_status()))  # workers: see views_from


class UnusedDiffBase(kopf.DiffBaseStorage):
    """Kopf builds a diff-base (a deep copy of the body, then another) for every event, but only
    change-detecting handlers, daemons and timers read it, and kubetask registers none (a unit test
    keeps it so). Building it was 11 % of the operator's samples at a steady 20 Tasks/s."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@kopf.on.login(registry=registry)
async def login(**_: Any) -> kopf.ConnectionInfo:
    """Kopf's credentials, resolved by the `kubernetes_asyncio` library like our own client's:
    kubeconfig lists, contexts, exec plugins, in-cluster tokens. The TLS material is handed over in
    memory. Kopf calls this again when the API server answers 401 or `expiration` passes, which
    runs an exec plugin again."""
    conn = await Connection.resolve(context=State.settings.kube_context)
    return login_info(conn, await conn.authorization())


def login_info(conn: Connection, authorization: str | None) -> kopf.ConnectionInfo:
    scheme, _, credential = (authorization or "").partition(" ")
    return kopf.ConnectionInfo(
        server=conn.server, ca_data=conn.tls.ca, insecure=not conn.verify,
        scheme=scheme or None, token=credential or None,
        certificate_data=conn.tls.cert, private_key_data=conn.tls.key,
        expiration=conn.expiration,
    )


@kopf.on.cleanup(registry=registry)
async def cleanup(**_: Any) -> None:
    for task in State.background:
        task.cancel()
    if State.controller is not None:
        await State.controller.kube.close()
    if State.deliverer is not None:
        await State.deliverer.close()


async def _publish_queue_status() -> None:
    """TaskQueue status and the per-phase gauge, batched every few seconds (not per event)."""
    while True:
        await asyncio.sleep(State.settings.queue_status_interval)
        views = State.views
        if views is None or State.controller is None:
            continue
        try:
            for namespace, name in sorted(State.queue_index or ()):
                await State.controller.publish_queue_status(namespace, name, views)
            metrics.WORK_QUEUE_DEPTH.set(len(State.work))
            metrics.WORK_QUEUE_RETRIES.set(State.work.waiting_retry)
            metrics.RESERVATIONS.set(State.controller.memory.sizes()["reservations"])
            index = State.task_index
            if index is not None:
                metrics.TASKS.clear()
                for key in list(index):
                    if isinstance(key, tuple) and key[0] == "phase":
                        metrics.TASKS.labels(*key[1:]).set(len(index[key]))
        except (ApiError, TransportError, OSError) as error:
            log.warning("publishing queue status failed: %s", error)
        except asyncio.CancelledError:
            raise
        except Exception:  # keep the loop alive; it is reporting, not deciding
            log.exception("publishing queue status failed")


# ---------------------------------------------------------------------------------------------
# Events: each only enqueues keys (never fails, so Kopf's lack of retries for event handlers
# loses nothing); the workers reconcile, and retry what fails.
# ---------------------------------------------------------------------------------------------

def _enqueue(key: Key, urgent: bool = False) -> None:
    State.work.add(key, urgent)


@kopf.on.event(*TASKS, registry=registry)
async def task_event(event: kopf.RawEvent, body: kopf.Body, uid: str, namespace: str | None, **kwargs: Any) -> None:
    views = views_from(kwargs)
    metrics.EVENTS.labels("task").inc()
    memory = controller().memory
    version = body["metadata"].get("resourceVersion")
    # The echo of our own status write: it says what the reconcile that wrote it decided, so
    # reconciling it again would decide the same. Anything else that changed (its Job, a TaskType,
    # the spec) comes with an event of its own. Skipped: a reconcile per status write.
    echo = event.get("type") == "MODIFIED" and memory.is_own_write(uid, version)
    memory.observed(uid, version)
    schedule = (body["metadata"].get("labels") or {}).get(LABEL_SCHEDULE)
    if schedule and namespace:
        _enqueue(ScheduleKey(namespace, schedule))  # its active list, last success and history
    if namespace:
        _nudge_dependents(event, body, namespace, views)
        labels = body["metadata"].get("labels") or {}
        for group in {labels.get(LABEL_GROUP), labels.get(LABEL_CALLBACK_OF)} - {None}:
            _enqueue(GroupKey(namespace, str(group)))  # its counts, and the callback once complete
    if event.get("type") == "DELETED":
        memory.forget_task(uid)  # its reservations too: the Job goes with it (ownerReference)
        State.work.drop(TaskKey(uid))
        return
    if State.deliverer is not None:
        State.deliverer.on_task(body)  # webhooks due for it (finished Tasks too): only enqueues keys
    if _settled(body, views):
        return
    # The latest full body, for the worker (the key is all the queue holds). Kopf's body is a
    # read-only view; the worker copies it once per reconcile, not once per event.
    memory.put_body(body)
    if not echo:
        _enqueue(TaskKey(uid))


def _nudge_dependents(event: kopf.RawEvent, body: kopf.Body, namespace: str, views: Views) -> None:
    """Tasks that run after this one look again when it appears, goes or finishes (index lookups;
    nothing when no Task names it)."""
    name = body["metadata"]["name"]
    finished = settled(body.get("spec", {}), body.get("status") or {})
    if event.get("type") not in ("ADDED", "DELETED") and not finished:
        return
    for dependent in views.dependents(namespace, name):
        _enqueue(TaskKey(dependent["metadata"]["uid"]))
    if finished and (body.get("status") or {}).get("phase") == "Succeeded" and views.finished_dependents(namespace, name):
        _enqueue(DependentsKey(namespace, name))  # those that failed because of it run again


def _settled(body: kopf.Body, views: Views) -> bool:
    """Finished for its current run, with no Job left to stop: nothing to do, so skip copying the
    body. A restart lists every finished Task; this keeps each to Kopf's own per-object cost."""
    if not settled(body.get("spec", {}), body.get("status") or {}):
        return False
    return not any(job.running for job in views.jobs_of_task(body["metadata"]["uid"]))


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED, registry=registry)
async def job_event(event: kopf.RawEvent, body: kopf.Body, namespace: str | None, **kwargs: Any) -> None:
    if namespace is None:  # unreachable: Jobs, Pods and kubetask resources are all namespaced
        return
    views_from(kwargs)
    metrics.EVENTS.labels("job").inc()
    job = summarize_job(body)
    # The Job is in the index now (or gone): its capacity is counted from there, not reserved.
    controller().memory.release(job.task_uid, job.run)
    if event.get("type") == "DELETED":
        controller().memory.job_deleted(job)  # its outcome, for a Task not reconciled yet
    finished = not job.running or event.get("type") == "DELETED"
    # A finished Job goes first: its Task's outcome, and the slot it frees, should not wait behind
    # a burst of new Tasks.
    if job.task_uid:
        _enqueue(TaskKey(job.task_uid), urgent=finished)
    if finished:
        _enqueue(QueueKey(namespace, job.queue), urgent=True)


@kopf.on.event(*TASKQUEUES, registry=registry)
async def queue_event(namespace: str | None, name: str, **kwargs: Any) -> None:
    if namespace is None:  # unreachable: Jobs, Pods and kubetask resources are all namespaced
        return
    views_from(kwargs)
    metrics.EVENTS.labels("taskqueue").inc()
    _enqueue(QueueKey(namespace, name))
    if State.deliverer is not None:
        State.deliverer.sources_changed(namespace)  # its webhook may have changed


def _own_resource_event(event: kopf.RawEvent, key: ScheduleKey | GroupKey, kind: str, kwargs: dict[str, Any]) -> bool:
    """A TaskSchedule or TaskGroup changed: its key is reconciled (or dropped when it went).
    Returns whether it was deleted."""
    views_from(kwargs)
    metrics.EVENTS.labels(kind).inc()
    if event.get("type") == "DELETED":
        State.work.drop(key)
        return True
    _enqueue(key)
    return False


@kopf.on.event(*TASKSCHEDULES, registry=registry)
async def schedule_event(event: kopf.RawEvent, namespace: str | None, name: str, **kwargs: Any) -> None:
    if namespace is None:  # unreachable: kubetask resources are namespaced
        return
    if _own_resource_event(event, ScheduleKey(namespace, name), "taskschedule", kwargs):
        with contextlib.suppress(KeyError):  # never set if it never had a status
            metrics.SCHEDULE_MISSED.remove(namespace, name)


@kopf.on.event(*TASKGROUPS, registry=registry)
async def group_event(event: kopf.RawEvent, namespace: str | None, name: str, **kwargs: Any) -> None:
    if namespace is None:  # unreachable: kubetask resources are namespaced
        return
    _own_resource_event(event, GroupKey(namespace, name), "taskgroup", kwargs)


@kopf.on.event(*TASKTYPES, registry=registry)
async def tasktype_event(namespace: str | None, name: str, **kwargs: Any) -> None:
    """A TaskType appeared, changed or went: its Tasks are looked at again."""
    if namespace is None:  # unreachable: Jobs, Pods and kubetask resources are all namespaced
        return
    views = views_from(kwargs)
    metrics.EVENTS.labels("tasktype").inc()
    for task in list(views.tasks(namespace)):
        if task["spec"].get("type") == name:
            _enqueue(TaskKey(task["metadata"]["uid"]))
    if State.deliverer is not None:
        State.deliverer.sources_changed(namespace)  # its defaults.webhook may have changed


@kopf.on.event(*TASKWEBHOOKS, registry=registry)
async def webhook_event(event: kopf.RawEvent, namespace: str | None, name: str, **kwargs: Any) -> None:
    """A TaskWebhook appeared or changed (its Ready condition too): its status is checked, and the
    deliveries waiting for it are looked at again."""
    if namespace is None:  # unreachable: kubetask resources are namespaced
        return
    views_from(kwargs)
    metrics.EVENTS.labels("taskwebhook").inc()
    deliverer = State.deliverer
    if deliverer is None:
        return
    if event.get("type") == "DELETED":
        deliverer.work.drop(webhook_delivery.WebhookKey(namespace, name))
        return
    deliverer.webhook_changed(namespace, name)


# ---------------------------------------------------------------------------------------------
# Workers and the resync
# ---------------------------------------------------------------------------------------------

async def _run_workers(views: Views) -> None:

    async def process(key: Key) -> None:
        await controller().process(key, views)

    def on_error(key: Key, error: BaseException) -> float:
        kind = {TaskKey: "task", QueueKey: "queue", ScheduleKey: "schedule", DependentsKey: "dependents", GroupKey: "group"}[type(key)]
        metrics.RECONCILE_ERRORS.labels(kind).inc()
        at_least = 0.0
        if isinstance(error, JobCreatesRefused):
            at_least = error.retry_after
        elif isinstance(error, ApiError):
            at_least = float((error.body.get("details") or {}).get("retryAfterSeconds") or 0)
        failures = State.work.failures(key) + 1
        if isinstance(error, (ApiError, JobCreatesRefused, OSError, TransportError, asyncio.TimeoutError)):
            log.warning("%s failed (try %d, retried with backoff): %s", key, failures, error)
        else:  # our own bug: loud, with the traceback, and still retried
            log.error("%s failed (try %d, retried with backoff)", key, failures, exc_info=error)
        return at_least

    await run_workers(State.work, process, on_error, State.settings.workers)


async def _resync(views: Views) -> None:
    """The safety net: every unfinished Task and every queue, again, whatever the events said.
    Cheap when nothing changed: a reconcile that finds nothing to do writes nothing."""
    while True:
        await asyncio.sleep(State.settings.resync_seconds)
        for uid in list(views.all_task_uids()):
            _enqueue(TaskKey(uid))
        for namespace, name in list(views.all_queues()):
            _enqueue(QueueKey(namespace, name))
        for namespace, name in list(views.all_schedules()):
            _enqueue(ScheduleKey(namespace, name))
        for namespace, name in list(views.all_groups()):
            _enqueue(GroupKey(namespace, name))


# ---------------------------------------------------------------------------------------------
# Retention: finished Tasks deleted once their retention has passed (retention.py decides)
# ---------------------------------------------------------------------------------------------

async def _sweep_retention(views: Views) -> None:
    """Reads the finished-Task index (no LIST) and deletes what is due, one batch per sweep at the
    paced rate. Only the leader runs it: Kopf, and so every loop started in views_from, runs only
    while this process holds the leader Lease (main.py, leader.py). It never ends on an error: a
    failed sweep is logged, and the next one decides again from the index."""
    settings = State.settings
    sweeper = retention.Sweeper(controller().kube, settings.retention_deletes_per_second)
    batch = retention.batch_size(settings.retention_deletes_per_second, settings.retention_check_seconds)
    delay = settings.retention_check_seconds
    while True:
        await asyncio.sleep(delay)
        delay = settings.retention_check_seconds
        try:
            sources = retention.sources_from(views, settings.retention_seconds)
            plan = retention.plan(list(views.finished_tasks()), sources, time.time())
            left_over = await sweeper.execute(plan, sources, batch)
            delay = retention.seconds_until_next_sweep(plan.next_due, left_over, time.time(), settings.retention_check_seconds)
        except asyncio.CancelledError:
            raise
        except (ApiError, OSError, TransportError, asyncio.TimeoutError) as error:
            log.warning("retention sweep failed (the next one tries again): %s", error)
        except Exception:  # our own bug: loud, with the traceback, and the loop goes on
            log.exception("retention sweep failed (the next one tries again)")


async def _check_pending_pods(views: Views) -> None:
    """Why pods wait (Unschedulable), read every few seconds instead of watching every pod."""
    while True:
        await asyncio.sleep(State.settings.pending_pod_check_seconds)
        try:
            await controller().check_pending_pods(views)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # reporting, not deciding: the next round tries again
            log.warning("checking pending pods failed: %s", error)
