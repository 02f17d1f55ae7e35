"""The wiring: indexes and event functions. Thin: each hands over to the Controller.

Tasks and Jobs come through kubetask's own informer (informer.py says why: Kopf's per-object
cost); the low-volume kinds through Kopf's `@kopf.index` and `@kopf.on.event`, which keep no
per-object bookkeeping. Kopf's change-detecting handlers (on.create/update/resume) store a
diff-base annotation and progress in every object, and deletion handlers add a finalizer; each
of those costs API writes per Task. Level-triggered reconciliation needs none of it.

Start-up order (`_start`): every Job is listed and indexed, then every Task; the workers start
once both are and Kopf has indexed its kinds, so after a restart the first admission decision
already sees every Job and every waiting Task, as Kopf's own index barrier guaranteed before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

import kopf


from kubetask.kube import ApiError, Connection, Kube, TransportError, core_path, tasks_path
from kubetask.listwatch import ListWatch
from kubetask.operator import events, leader, metrics, naming, retention, webhook_delivery
from kubetask.operator.config import OperatorSettings
from kubetask.operator.controller import (ITEM_COUNT, PARAMETERS_OMITTED, Controller, DependentsKey, GroupKey, JobCreatesRefused, Key, QueueKey, QueueSpec, ScheduleKey, TaskKey,
                                          rate_window,
                                          Views, copy_value, plain)
from kubetask.operator.decide import settled, started_or_settled
from kubetask.operator.group import LABEL_CALLBACK_OF, Member
from kubetask.operator.group_controller import GroupController
from kubetask.operator.informer import KeyedIndex, Obj, Store
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
    """Process-wide: the controller, the indexes and their views (set at Kopf's start-up)."""

    controller: Controller | None = None
    views: Views | None = None
    queue_index: kopf.Index[Any, Any] | None = None  # taskqueues: which queues to publish status for
    task_index = KeyedIndex()  # every Task (task_entries); its ("phase", ...) keys make the kubetask_tasks gauge
    job_index = KeyedIndex()  # kubetask's Jobs (job_entries)
    task_stores: list[Store] = []  # one per watched namespace (or one for the cluster), sharing task_index
    job_stores: list[Store] = []
    kopf_indexed: asyncio.Event | None = None  # set by the first Kopf handler call: Kopf's indexes are full
    settings = OperatorSettings()
    work: WorkQueue[Key] = WorkQueue()
    background: list[asyncio.Task[None]] = []
    clients: list[Kube] = []  # closed at cleanup
    events: events.Recorder = events.Recorder(None)
    deliverer: webhook_delivery.Deliverer | None = None  # webhooks: their own queue, workers and clients


# ---------------------------------------------------------------------------------------------
# Indexes (memory: summaries only; parameters and results are never held)
#
# The Kopf ones are coroutines on purpose: Kopf runs a plain `def` handler in a thread pool, and
# a thread hop per object per index was a tenth of the operator's CPU in a burst.
# ---------------------------------------------------------------------------------------------

def task_entries(body: Mapping[str, Any]) -> dict[Any, Any]:
    """Every Task, in one index: an unfinished one's slim body, a finished one's record, its
    group membership, its schedule's record and its phase for the gauge, under keys of disjoint
    shapes (build_views reads them)."""
    meta, status = body["metadata"], body.get("status") or {}
    namespace, uid = meta.get("namespace"), meta["uid"]
    keys: dict[Any, Any] = {("phase", status.get("phase") or "Pending", body.get("spec", {}).get("type", ""), status.get("queue") or ""): None}
    keys.update(unfinished_entries(body, namespace, uid))
    keys.update(finished_entries(body))
    keys.update(group_entries(body, namespace))
    keys.update(schedule_entries(body, namespace))
    return keys


def unfinished_entries(body: Mapping[str, Any], namespace: str | None, uid: str) -> dict[Any, dict[str, Any]]:
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


def finished_entries(body: Mapping[str, Any]) -> dict[Any, FinishedTask]:
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


def schedule_entries(body: Mapping[str, Any], namespace: str | None) -> dict[tuple[str, str | None, str], ScheduledTask]:
    """Every Task a TaskSchedule made, finished or not, by ("schedule", ns, schedule): its
    status, concurrency and history."""
    schedule = (body["metadata"].get("labels") or {}).get(LABEL_SCHEDULE)
    if schedule is None:
        return {}
    finished = settled(body.get("spec", {}), body.get("status") or {})
    return {("schedule", namespace, schedule): summarize_scheduled(body, finished)}


def group_entries(body: Mapping[str, Any], namespace: str | None) -> dict[tuple[str, str | None, str], Member]:
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


def job_entries(body: Mapping[str, Any]) -> dict[tuple[str, ...], JobSummary]:
    """Every kubetask Job, by ("task", uid), ("queue", ns, queue) while it runs, and ("started",
    ns, queue)."""
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


class ReadableIndex(Protocol):
    """What the views read of an index: a `kopf.Index` or an informer.KeyedIndex."""

    def __contains__(self, key: object) -> bool: ...

    def __getitem__(self, key: Any) -> Iterable[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


def _values(index: ReadableIndex, key: Any) -> list[Any]:
    return list(index[key]) if key in index else []


def _one(index: ReadableIndex, key: Any) -> Any:
    values = _values(index, key)
    return values[0] if values else None


def kopf_handled() -> Views:
    """Called first by every Kopf handler: Kopf calls none before it has indexed every object of
    every kind it indexes, so the first call says Kopf's indexes are full (see _kopf_indexed)."""
    if State.kopf_indexed is not None:
        State.kopf_indexed.set()
    assert State.views is not None, "the operator has not started"
    return State.views


def build_views(kwargs: dict[str, Any], tasks_idx: KeyedIndex, jobs_idx: KeyedIndex) -> Views:
    """The views over the indexes, made once at start-up: Kopf hands every handler the same Index
    objects for the life of the operator (one Kopf run per process: a leader that loses its Lease
    exits), and building two dozen closures per event was 3 % of the operator's CPU in a burst
    (docs/benchmarks.md)."""
    types_idx, queues_idx = kwargs["tasktypes"], kwargs["taskqueues"]
    schedules_idx, groups_idx = kwargs["taskschedules"], kwargs["taskgroups"]
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
        schedule_tasks=lambda ns, name: _values(tasks_idx, ("schedule", ns, name)),
        all_schedules=lambda: list(schedules_idx),
    )


def task_tombstone(body: Obj) -> Obj:
    """What task_changed needs of a Task that went while no watch was looking."""
    meta = body["metadata"]
    return {"metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "labels", "resourceVersion")}}


def job_tombstone(body: Obj) -> Obj:
    """What summarize_job reads of a Job that went while no watch was looking (no pod template)."""
    meta, spec = body["metadata"], body.get("spec") or {}
    containers = [{"resources": {"limits": (c.get("resources") or {}).get("limits") or {}}}
                  for c in ((spec.get("template") or {}).get("spec") or {}).get("containers") or ()]
    return {"metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "labels", "creationTimestamp", "resourceVersion")},
            "spec": {k: spec[k] for k in ("parallelism", "completionMode", "completions") if k in spec} | {"template": {"spec": {"containers": containers}}},
            "status": body.get("status") or {}}


def make_stores(namespaces: list[str]) -> None:
    """A Task store and a Job store per watched namespace (one each for the cluster when none is
    named), all filling the two shared indexes."""
    scopes: list[str | None] = list(namespaces) or [None]
    State.task_index, State.job_index = KeyedIndex(), KeyedIndex()
    State.task_stores = [Store(f"tasks in {ns or 'all namespaces'}", task_entries, task_tombstone, task_changed, State.task_index)
                         for ns in scopes]
    State.job_stores = [Store(f"jobs in {ns or 'all namespaces'}", job_entries, job_tombstone, job_changed, State.job_index)
                        for ns in scopes]


async def _start(kube: Kube, views: Views) -> None:
    """List and watch every Job, then every Task, then wait for Kopf's indexes; then start the
    workers and the loops that read the indexes (see the module's docstring)."""
    scopes: list[str | None] = list(State.settings.namespaces) or [None]
    for store, ns in zip(State.job_stores, scopes):
        loop = ListWatch(kube, core_path("jobs", ns, group="batch"), store, name=store.name,
                         params={"labelSelector": f"{naming.MANAGED_BY}={naming.MANAGED_BY_VALUE}"},
                         on_restart=lambda reason: metrics.WATCH_RESTARTS.labels("job", reason).inc())
        State.background.append(asyncio.create_task(loop.run(), name=f"informer {store.name}"))
    for store in State.job_stores:
        await store.listed.wait()
    for store, ns in zip(State.task_stores, scopes):
        loop = ListWatch(kube, tasks_path(ns), store, name=store.name, on_restart=lambda reason: metrics.WATCH_RESTARTS.labels("task", reason).inc())
        State.background.append(asyncio.create_task(loop.run(), name=f"informer {store.name}"))
    for store in State.task_stores:
        await store.listed.wait()
    _revive_after_listing(views)
    await _kopf_indexed(kube, scopes)
    log.info("indexed %d Tasks and %d Jobs; starting the workers", sum(len(s) for s in State.task_stores), sum(len(s) for s in State.job_stores))
    State.background += [asyncio.create_task(coroutine) for coroutine in (_run_workers(views), _resync(views), _check_pending_pods(views),
                                                                          _sweep_retention(views))]
    if State.deliverer is not None:
        State.background.append(asyncio.create_task(State.deliverer.run()))


def _revive_after_listing(views: Views) -> None:
    """Tasks that failed because an upstream failed run again once it has succeeded (a re-run):
    the listing hands Tasks on page by page, so an upstream listed before its dependents could
    not see them yet (task_changed does this for watch events)."""
    for record in list(views.finished_tasks()):
        if record.reason != "DependencyFailed":
            continue
        for upstream in record.after:
            found = views.finished_named(record.namespace, upstream)
            if found is not None and found.phase == "Succeeded":
                _enqueue(DependentsKey(record.namespace, upstream))


KOPF_KINDS = ("tasktypes", "taskqueues", "taskschedules", "taskgroups", "taskwebhooks")


async def _kopf_indexed(kube: Kube, scopes: list[str | None]) -> None:
    """Returns once Kopf's indexes are full. Kopf calls no handler before it has indexed every
    object of every kind it indexes (its start-up barrier), and its first call is the only public
    sign of that. With none of those objects in the cluster no handler is called at all, so their
    absence (a LIST of one per kind) is the other sign; anything made after that LIST is indexed
    like anything made after start-up."""
    flag = State.kopf_indexed
    assert flag is not None
    while not flag.is_set():
        try:
            if not await _any_of_kopf_kinds(kube, scopes):
                return
        except (ApiError, TransportError, OSError, asyncio.TimeoutError) as error:
            log.warning("checking for TaskTypes, TaskQueues, ... failed (tried again): %s", error)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(flag.wait(), 2.0)


async def _any_of_kopf_kinds(kube: Kube, scopes: list[str | None]) -> bool:
    for plural in KOPF_KINDS:
        for ns in scopes:
            if (await kube.get(tasks_path(ns, plural=plural), limit=1)).get("items"):
                return True
    return False


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
async def configure(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
    """Kopf's settings, the controller, the indexes and their views; then the informers, whose
    start (`_start`) waits for the listings and starts the workers."""
    settings.watching.chunk_size = 500  # page the initial LIST of Kopf's kinds too
    settings.posting.level = logging.INFO  # as before events.py: Kopf's object loggers are set to WARNING (main.py)
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kubetask.io")
    settings.persistence.diffbase_storage = UnusedDiffBase()
    settings.networking.error_backoffs = [1, 2, 5, 10]
    settings.batching.error_delays = [1, 2, 5, 10, 30]
    State.work = WorkQueue(base_delay=State.settings.retry_base_delay, max_delay=State.settings.retry_max_delay)
    State.kopf_indexed = asyncio.Event()
    connection = await Connection.resolve(context=State.settings.kube_context)
    # Events have an API connection of their own: a burst of them never delays a status write.
    events_kube, informer_kube = Kube(connection, max_in_flight=2), Kube(connection)
    kube = Kube(connection, max_in_flight=State.settings.api_requests_in_flight)
    State.clients = [events_kube, informer_kube, kube]
    State.events = events.Recorder(events_kube, instance=leader.make_identity())
    State.controller = Controller(kube, State.settings, enqueue=_enqueue, enqueue_after=State.work.add_after, events=State.events)
    State.controller.schedules = ScheduleController(kube, enqueue_after=State.work.add_after, events=State.events)
    State.controller.groups = GroupController(kube, events=State.events)
    make_stores(State.settings.namespaces)
    State.views = views = build_views(kwargs, State.task_index, State.job_index)
    State.queue_index = kwargs["taskqueues"]
    # Webhooks get their own API connection (its own in-flight limit) and HTTP client. Made now,
    # run later (_start): the Task listing already tells it which deliveries are due.
    State.deliverer = webhook_delivery.Deliverer(Kube(connection, max_in_flight=4), State.settings, views, _webhook_views(kwargs, views))
    # The informers read with a connection of their own: a listing never waits behind writes.
    State.background += [asyncio.create_task(State.events.run()), asyncio.create_task(_publish_queue_status()),
                         asyncio.create_task(_start(informer_kube, views))]
    State.background[-1].add_done_callback(_stop_if_failed)


def _stop_if_failed(task: asyncio.Task[None]) -> None:
    """Start-up is a background task (Kopf's own start-up must finish for its handlers to run):
    if it ever fails, the operator stops, as Kopf does for a failed start-up handler, so that
    Kubernetes starts it again, instead of running on without workers."""
    if task.cancelled() or task.exception() is None:
        return
    log.critical("start-up failed; stopping the operator", exc_info=task.exception())
    signal.raise_signal(signal.SIGTERM)


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
    for client in State.clients:
        await client.close()
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


def task_changed(kind: str | None, body: Obj) -> None:
    """A Task was listed (kind None), ADDED, MODIFIED or DELETED (informer.py calls this after
    indexing it)."""
    views = State.views
    assert views is not None, "the operator has not started"
    metrics.EVENTS.labels("task").inc()
    meta = body["metadata"]
    uid, namespace = meta["uid"], meta.get("namespace")
    memory = controller().memory
    version = meta.get("resourceVersion")
    # The echo of our own status write: it says what the reconcile that wrote it decided, so
    # reconciling it again would decide the same. Anything else that changed (its Job, a TaskType,
    # the spec) comes with an event of its own. Skipped: a reconcile per status write.
    echo = kind == "MODIFIED" and memory.is_own_write(uid, version)
    memory.observed(uid, version)
    labels = meta.get("labels") or {}
    schedule = labels.get(LABEL_SCHEDULE)
    if schedule and namespace:
        _enqueue(ScheduleKey(namespace, schedule))  # its active list, last success and history
    if namespace:
        _nudge_dependents(kind, body, namespace, views)
        for group in {labels.get(LABEL_GROUP), labels.get(LABEL_CALLBACK_OF)} - {None}:
            _enqueue(GroupKey(namespace, str(group)))  # its counts, and the callback once complete
    if kind == "DELETED":
        memory.forget_task(uid)  # its reservations too: the Job goes with it (ownerReference)
        State.work.drop(TaskKey(uid))
        return
    if State.deliverer is not None:
        State.deliverer.on_task(body)  # webhooks due for it (finished Tasks too): only enqueues keys
    if _settled(body, views):
        return
    # The latest full body, for the worker (the key is all the queue holds).
    memory.put_body(body)
    if not echo:
        _enqueue(TaskKey(uid))


def _nudge_dependents(kind: str | None, body: Obj, namespace: str, views: Views) -> None:
    """Tasks that run after this one look again when it appears, goes or finishes (index lookups;
    nothing when no Task names it)."""
    name = body["metadata"]["name"]
    finished = settled(body.get("spec", {}), body.get("status") or {})
    if kind not in ("ADDED", "DELETED") and not finished:
        return
    for dependent in views.dependents(namespace, name):
        _enqueue(TaskKey(dependent["metadata"]["uid"]))
    if finished and (body.get("status") or {}).get("phase") == "Succeeded" and views.finished_dependents(namespace, name):
        _enqueue(DependentsKey(namespace, name))  # those that failed because of it run again


def _settled(body: Obj, views: Views) -> bool:
    """Finished for its current run, with no Job left to stop: nothing to do, so skip keeping the
    body. A restart lists every finished Task; this keeps each to its indexing."""
    if not settled(body.get("spec", {}), body.get("status") or {}):
        return False
    return not any(job.running for job in views.jobs_of_task(body["metadata"]["uid"]))


def job_changed(kind: str | None, body: Obj) -> None:
    """A kubetask Job was listed (kind None), ADDED, MODIFIED or DELETED (after indexing it)."""
    metrics.EVENTS.labels("job").inc()
    job = summarize_job(body)
    # The Job is in the index now (or gone): its capacity is counted from there, not reserved.
    controller().memory.release(job.task_uid, job.run)
    if kind == "DELETED":
        controller().memory.job_deleted(job)  # its outcome, for a Task not reconciled yet
    finished = not job.running or kind == "DELETED"
    # A finished Job goes first: its Task's outcome, and the slot it frees, should not wait behind
    # a burst of new Tasks.
    if job.task_uid:
        _enqueue(TaskKey(job.task_uid), urgent=finished)
    if finished and controller().memory.waiting_in(job.namespace, job.queue):
        _enqueue(QueueKey(job.namespace, job.queue), urgent=True)  # the slot it freed is someone's


@kopf.on.event(*TASKQUEUES, registry=registry)
async def queue_event(namespace: str | None, name: str, **kwargs: Any) -> None:
    if namespace is None:  # unreachable: Jobs, Pods and kubetask resources are all namespaced
        return
    kopf_handled()
    metrics.EVENTS.labels("taskqueue").inc()
    _enqueue(QueueKey(namespace, name))
    if State.deliverer is not None:
        State.deliverer.sources_changed(namespace)  # its webhook may have changed


def _own_resource_event(event: kopf.RawEvent, key: ScheduleKey | GroupKey, kind: str) -> bool:
    """A TaskSchedule or TaskGroup changed: its key is reconciled (or dropped when it went).
    Returns whether it was deleted."""
    kopf_handled()
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
    if _own_resource_event(event, ScheduleKey(namespace, name), "taskschedule"):
        with contextlib.suppress(KeyError):  # never set if it never had a status
            metrics.SCHEDULE_MISSED.remove(namespace, name)


@kopf.on.event(*TASKGROUPS, registry=registry)
async def group_event(event: kopf.RawEvent, namespace: str | None, name: str, **kwargs: Any) -> None:
    if namespace is None:  # unreachable: kubetask resources are namespaced
        return
    _own_resource_event(event, GroupKey(namespace, name), "taskgroup")


@kopf.on.event(*TASKTYPES, registry=registry)
async def tasktype_event(namespace: str | None, name: str, **kwargs: Any) -> None:
    """A TaskType appeared, changed or went: its Tasks are looked at again."""
    if namespace is None:  # unreachable: Jobs, Pods and kubetask resources are all namespaced
        return
    views = kopf_handled()
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
    kopf_handled()
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

    async def process(key: Key) -> object | None:
        return await controller().process(key, views)

    controller().on_round_done = _round_done
    await run_workers(State.work, process, _on_error, State.settings.workers)


def _round_done(key: Key, error: BaseException | None) -> None:
    """An admission round's Job creates ended (controller._start_round): as if it had run on the key's worker."""
    if error is None:
        State.work.forget(key)
        return
    at_least = _on_error(key, error)
    State.work.retry(key, at_least)


def _on_error(key: Key, error: BaseException) -> float:
    """A key failed: count and log it; the least delay before its retry (a Retry-After)."""
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
    paced rate. Only the leader runs it: Kopf, and so every loop started by _start, runs only
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
