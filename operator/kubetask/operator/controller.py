"""The operator's effects: reconcile one Task, admit one queue. The rules are in decide.py.

Work arrives as keys (TaskKey, QueueKey) from the work queue (workqueue.py); a worker runs one
key at a time, so each queue's admission is serialized by the queue itself. Everything here is
level-triggered: it reads the Task and what the indexes say about its Job, pods, TaskType and
queue, asks `decide` what to do, and writes only the difference. Any key may run any number of
times; a failure raises, and the work queue retries that key with backoff. What this process
remembers between runs is in memory.py.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol


from kubetask.kube import JSON_PATCH, ApiError, Kube, TransportError, core_path, tasks_path
from kubetask.operator import metrics
from kubetask.operator.admission import Candidate, QueueState, RateWindow, admission_order, admit
from kubetask.operator.config import OperatorSettings
from kubetask.operator.decide import (TERMINAL, Decision, Need, Refusal, TaskFacts, Upstream, accepted_before, base_status,
                                     dependencies_met,
                                      classify_refusal, current_run, decide, desired_status, invalid_verdict,
                                      moves_backwards, refused_verdict, settled, started_or_settled)
from kubetask.operator.jobs import build_job, items_configmap
from kubetask.operator.events import Recorder
from kubetask.operator.memory import Memory, Reservation
from kubetask.operator.naming import MANAGED_BY, MANAGED_BY_VALUE
from kubetask.operator.group import Member
from kubetask.operator.records import FinishedTask, ScheduledTask
from kubetask.resources.dependencies import dependency_cycle
from kubetask.operator.resolve import effective_queue, pods_at_once, resolve
from kubetask.operator.workqueue import DEFERRED
from kubetask.operator.status import JobSummary, PodSummary, Verdict, epoch, status_changed, summarize_pod
from kubetask.resources.models import Phase, parse_duration

log = logging.getLogger("kubetask.operator")
PARAMETERS_OMITTED = "_parametersOmitted"  # set on index bodies whose (large) parameters or items were left out
ITEM_COUNT = "_itemCount"  # on index bodies whose items were left out: how many there are (admission's GPU count)
POD_PAGE = 500  # pods per LIST page when a finished Job's pods are read
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"  # set by the Job controller on its pods
CONFLICT_RETRIES = 3  # re-decisions on fresh data after a 409, before the work queue's backoff takes over
RATE_WAKE_MARGIN = 0.2  # a rate-limited queue comes back this long after its next start is allowed
RATE_ESTIMATE_SLACK = 5.0  # seconds an earliest-start estimate may move before the Task's status is rewritten


@dataclass(frozen=True)
class TaskKey:
    uid: str


@dataclass(frozen=True)
class QueueKey:
    namespace: str
    name: str


@dataclass(frozen=True)
class ScheduleKey:
    namespace: str
    name: str


@dataclass(frozen=True)
class DependentsKey:
    """An upstream Task Succeeded: revive the Tasks that failed because of it."""

    namespace: str
    upstream: str


@dataclass(frozen=True)
class GroupKey:
    namespace: str
    name: str


Key = TaskKey | QueueKey | ScheduleKey | DependentsKey | GroupKey


@dataclass(frozen=True)
class QueueSpec:
    max_running: int
    max_gpus: int | None
    paused: bool
    generation: int | None
    status: dict[str, Any]
    retention_seconds: int | None = None  # spec.retentionSeconds: the default retention of its finished Tasks
    rate_limit: RateWindow | None = None  # spec.rateLimit
    webhook: str | None = None  # spec.webhook: the TaskWebhook of its Tasks that name none (nor their TaskType)


def rate_window(spec: dict[str, Any] | None) -> RateWindow | None:
    """spec.rateLimit as a RateWindow (None when unset or unreadable: the API server validated it)."""
    if not spec:
        return None
    try:
        return RateWindow(starts=int(spec["starts"]), per=parse_duration(str(spec["per"])), per_text=str(spec["per"]))
    except (KeyError, ValueError):
        return None


@dataclass
class Views:
    """Read access to the indexes (each filled from its listing before any worker runs)."""

    tasks: Callable[[str], Iterable[dict[str, Any]]]  # namespace → unfinished Task bodies (no large parameters)
    task_by_uid: Callable[[str], dict[str, Any] | None]  # uid → the same body
    all_task_uids: Callable[[], Iterable[str]]  # every unfinished Task (for the resync)
    jobs_of_task: Callable[[str], Iterable[JobSummary]]  # task uid → its Jobs
    running_jobs: Callable[[str, str], Iterable[JobSummary]]  # (namespace, queue) → unfinished Jobs
    all_running_jobs: Callable[[], Iterable[JobSummary]]  # every unfinished Job (for the pending-pod check)
    tasktype: Callable[[str, str], dict[str, Any] | None]  # (namespace, name) → TaskType spec
    queue: Callable[[str, str], QueueSpec | None]  # (namespace, name) → TaskQueue
    all_queues: Callable[[], Iterable[tuple[str, str]]]  # every TaskQueue (namespace, name)
    queue_jobs: Callable[[str, str], Iterable[JobSummary]] = lambda ns, q: ()  # (namespace, queue) → every Job, finished too
    finished_tasks: Callable[[], Iterable[FinishedTask]] = lambda: ()  # every finished Task (retention)
    queue_starts: Callable[[str, str], Iterable[FinishedTask]] = lambda ns, q: ()  # (namespace, queue) → finished Tasks that started
    task_named: Callable[[str, str], dict[str, Any] | None] = lambda ns, name: None  # (namespace, name) → unfinished Task body
    finished_named: Callable[[str, str], FinishedTask | None] = lambda ns, name: None  # (namespace, name) → finished Task
    dependents: Callable[[str, str], Iterable[dict[str, Any]]] = lambda ns, name: ()  # (namespace, upstream) → unfinished Tasks after it
    finished_dependents: Callable[[str, str], Iterable[FinishedTask]] = lambda ns, name: ()  # (namespace, upstream) → finished ones
    schedule: Callable[[str, str], dict[str, Any] | None] = lambda ns, name: None  # (namespace, name) → TaskSchedule body
    group: Callable[[str, str], dict[str, Any] | None] = lambda ns, name: None  # (namespace, name) → TaskGroup body
    group_members: Callable[[str, str], Iterable[Member]] = lambda ns, name: ()  # (namespace, group) → its members
    group_callback: Callable[[str, str], Member | None] = lambda ns, name: None  # (namespace, group) → its callback Task
    all_groups: Callable[[], Iterable[tuple[str, str]]] = lambda: ()  # every TaskGroup (namespace, name)
    schedule_tasks: Callable[[str, str], Iterable[ScheduledTask]] = lambda ns, name: ()  # (namespace, schedule) → its Tasks
    all_schedules: Callable[[], Iterable[tuple[str, str]]] = lambda: ()  # every TaskSchedule (namespace, name)
    # namespace → the unfinished Tasks not Running for their current run as last seen (those
    # admission may start: a superset, filtered again on the freshest status); None: `tasks`.
    unstarted_tasks: Callable[[str], Iterable[dict[str, Any]]] | None = None


class ScheduleReconciler(Protocol):
    async def reconcile(self, key: ScheduleKey, views: Views) -> None: ...


class GroupReconciler(Protocol):
    async def reconcile(self, key: GroupKey, views: Views) -> None: ...


class JobCreatesRefused(Exception):
    """Some Job creates of an admission round were refused; the queue is retried with backoff."""

    def __init__(self, refusals: list[Refusal]) -> None:
        super().__init__("; ".join(sorted({f"{r.kind}: {r.message[:200]}" for r in refusals})))
        self.retry_after = max((r.retry_after for r in refusals), default=0.0)


class Start(enum.Enum):
    STARTED = "started"
    REFUSED = "refused"  # retryable refusal: the Task says JobCreateRefused, the queue retries
    FAILED = "failed"  # invalid at admission: the Task is Failed, its slot goes to the next one
    SKIPPED = "skipped"  # cancelled, deleted or finished meanwhile


def now() -> datetime:
    return datetime.now(timezone.utc)


class KeyedLocks:
    """One asyncio.Lock per key, dropped once nobody holds or waits for it. Tasks come and go;
    a lock kept per Task uid forever would grow with every Task the operator has ever seen."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class Controller:
    def __init__(self, kube: Kube, settings: OperatorSettings, enqueue: Callable[[Key], None] = lambda key: None,
                 enqueue_after: Callable[[Key, float], None] = lambda key, delay: None, events: Recorder | None = None) -> None:
        self.kube = kube
        self.events = events if events is not None else Recorder(None)
        self.settings = settings
        self.enqueue = enqueue
        self.enqueue_after = enqueue_after
        self.memory = Memory()
        # A Task's status is written by its own key's worker and by its queue's (Queued, Started,
        # refused): the per-Task lock keeps those two from interleaving.
        self._task_locks = KeyedLocks()
        # Admission rounds whose Job creates are in flight, and whom to tell how each went (the
        # work queue: forget the key's failures, or retry it with backoff). Set by handlers.
        self._rounds: dict[QueueKey, set[asyncio.Task[None]]] = {}
        self.on_round_done: Callable[[Key, BaseException | None], None] = lambda key, error: None
        self.schedules: ScheduleReconciler | None = None  # the TaskSchedule side (schedule_controller.py)
        self.groups: GroupReconciler | None = None  # the TaskGroup side (group_controller.py)

    async def process(self, key: Key, views: Views) -> object | None:
        """Reconcile one key. DEFERRED: its outcome comes later, from work it left in flight."""
        if isinstance(key, TaskKey):
            await self.reconcile_task(key.uid, views)
        elif isinstance(key, QueueKey):
            return await self.admit_queue(key.namespace, key.name, views)
        elif isinstance(key, DependentsKey):
            await self.revive_dependents(key.namespace, key.upstream, views)
        elif isinstance(key, GroupKey):
            if self.groups is not None:
                await self.groups.reconcile(key, views)
        elif self.schedules is not None:
            await self.schedules.reconcile(key, views)
        return None

    # ---------------------------------------------------------------------------------------
    # One Task
    # ---------------------------------------------------------------------------------------
    async def reconcile_task(self, uid: str, views: Views) -> None:
        body = self.memory.take_body(uid)
        full = body is not None
        task = plain(body) if body is not None else views.task_by_uid(uid)
        if task is None:
            return  # finished (no longer indexed) or deleted
        try:
            await self.reconcile(task, views, full=full)
        except BaseException:
            if body is not None:
                self.memory.restore_body(body)  # the retry needs the parameters too
            raise

    async def reconcile(self, task: dict[str, Any], views: Views, *, full: bool) -> None:
        """Bring one Task's Job and status in line with what is observed. `full` says whether the
        body carries spec.parameters (Task events do; index bodies may not)."""
        meta = task["metadata"]
        uid, namespace, name = meta["uid"], meta["namespace"], meta["name"]
        async with self._task_locks.hold(uid):
            for attempt in range(CONFLICT_RETRIES):
                try:
                    queue_to_admit = await self._reconcile_locked(task, views, full=full)
                    break
                except ApiError as error:
                    if error.status != 409 or attempt == CONFLICT_RETRIES - 1:
                        raise
                    # Our view was stale (another writer, another operator): decide again on fresh data.
                    fetched = await self._get_task(namespace, name, uid)
                    if fetched is None:
                        return
                    task, full = fetched, True
        if queue_to_admit:
            self.enqueue(QueueKey(namespace, queue_to_admit))

    async def _get_task(self, namespace: str, name: str, uid: str) -> dict[str, Any] | None:
        try:
            fetched = await self.kube.get(tasks_path(namespace, name))
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        return fetched if fetched["metadata"]["uid"] == uid else None

    def _facts(self, task: dict[str, Any], views: Views, *, full: bool, job_gone: bool = False,
               fetched_pods: tuple[PodSummary, ...] | None = None) -> tuple[TaskFacts, str]:
        meta, spec = task["metadata"], task["spec"]
        uid, namespace, generation = meta["uid"], meta["namespace"], meta.get("generation")
        status = task.get("status") or {}
        run = current_run(spec)
        job = next((j for j in views.jobs_of_task(uid) if j.run == run), None) or self.memory.deleted_job(uid, run)
        if fetched_pods is not None:
            pods = fetched_pods
        else:
            pods = self.memory.pending_pods(namespace, job.name) if job is not None else ()
        tasktype = views.tasktype(namespace, spec["type"])
        queue = effective_queue(spec, tasktype, self.settings.default_queue)
        validated = self.memory.is_validated(uid, generation) or (
            status.get("run", 0) == run and accepted_before(status, generation))
        problems = None
        if not validated and tasktype is not None and full and not task.get(PARAMETERS_OMITTED):
            _, found = resolve(spec, tasktype, self.settings.default_queue)
            problems = tuple(found)
        upstreams: tuple[Upstream, ...] = ()
        cycle: tuple[str, ...] = ()
        if spec.get("after"):
            upstreams = tuple(self._upstream(namespace, name, views) for name in spec["after"])
            cycle = dependency_cycle(meta["name"], lambda name: self._after_of(namespace, name, views))
        job_age = None
        if job is not None and self.settings.status_settle_seconds > 0:  # only the settle window reads it
            created = self.memory.job_created_at(uid, run) or epoch(job.created)
            job_age = time.time() - created if created is not None else None
        facts = TaskFacts(spec=spec, status=status, generation=generation, tasktype=tasktype, job=job, pods=pods,
                          validated=validated, problems=problems, reserved=self.memory.is_reserved(uid, run),
                          job_gone=job_gone, pods_fetched=fetched_pods is not None, upstreams=upstreams, cycle=cycle,
                          job_age=job_age, settle_seconds=self.settings.status_settle_seconds)
        return facts, queue

    # ---------------------------------------------------------------------------------------
    # Dependencies (spec.after): index lookups only, never an API call per Task
    # ---------------------------------------------------------------------------------------
    def _upstream(self, namespace: str, name: str, views: Views) -> Upstream:
        body = views.task_named(namespace, name)
        if body is not None:
            status = self.memory.freshest_status(body)
            return Upstream(name, str(status.get("phase") or Phase.PENDING.value), settled(body["spec"], status), _ready_reason(status) or "")
        record = views.finished_named(namespace, name)
        if record is not None:
            return Upstream(name, record.phase, True, record.reason)
        return Upstream(name, None)

    def _after_of(self, namespace: str, name: str, views: Views) -> tuple[str, ...]:
        body = views.task_named(namespace, name)
        if body is not None:
            return tuple(body["spec"].get("after") or ())
        record = views.finished_named(namespace, name)
        return record.after if record is not None else ()

    def _dependencies_met(self, namespace: str, spec: dict[str, Any], views: Views) -> bool:
        return dependencies_met(spec, tuple(self._upstream(namespace, name, views) for name in spec["after"]))

    async def revive_dependents(self, namespace: str, upstream: str, views: Views) -> None:
        """An upstream Task Succeeded (a rerun after it failed): the Tasks that failed because of
        it (DependencyFailed) get a new run, once none of their upstreams stands failed. The
        operator's only spec write besides a schedule's Replace cancel: rerun + 1, cancel off,
        conditional on the run it saw (the API server's CEL allows +1 only)."""
        for record in list(views.finished_dependents(namespace, upstream)):
            if record.phase != Phase.FAILED.value or record.reason != "DependencyFailed":
                continue
            upstreams = tuple(self._upstream(namespace, name, views) for name in record.after)
            if any(u.settled and u.phase != Phase.SUCCEEDED.value for u in upstreams):
                continue  # another upstream still stands failed: a new run would fail at once
            try:
                await self.kube.patch(tasks_path(namespace, record.name),
                                      [{"op": "test", "path": "/metadata/uid", "value": record.uid},
                                       {"op": "test", "path": "/spec/rerun", "value": record.run},
                                       {"op": "replace", "path": "/spec/rerun", "value": record.run + 1},
                                       {"op": "add", "path": "/spec/cancel", "value": False}],
                                      content_type=JSON_PATCH)
                metrics.API_WRITES.labels("patch", "tasks").inc()
                log.info("task %s/%s: re-run (run %d): %s, which it runs after, succeeded", namespace, record.name, record.run + 1, upstream)
            except ApiError as error:
                if error.status not in (404, 409, 422):  # gone, or rerun/changed by someone meanwhile
                    raise

    async def _reconcile_locked(self, task: dict[str, Any], views: Views, *, full: bool) -> str | None:
        task = self.memory.freshest(task)
        meta = task["metadata"]
        uid, namespace, name = meta["uid"], meta["namespace"], meta["name"]
        facts, queue = self._facts(task, views, full=full)
        decision = decide(facts, queue)
        if decision.need is Need.PARAMETERS:  # validation needs the parameters, which the index does not hold
            fetched = await self._get_task(namespace, name, uid)
            if fetched is None:
                return None
            task = self.memory.freshest(fetched)
            facts, queue = self._facts(task, views, full=True)
            decision = decide(facts, queue)
        if decision.need is Need.JOB_CHECK:
            # Absence from a cache is not proof (another operator may have created it a moment
            # ago): ask the API server before declaring the Job gone.
            job_name = facts.status["jobName"]
            try:
                await self.kube.get(core_path("jobs", namespace, job_name, group="batch"))
                return None  # it exists; its event will reach the index shortly
            except ApiError as error:
                if error.status != 404:
                    raise
            facts, queue = self._facts(task, views, full=full, job_gone=True)
            decision = decide(facts, queue)
        if decision.need is Need.POD_FACTS and facts.job is not None:
            # The Job has finished: read its pods once for the result and the last exit code.
            pods = await self._job_pods(namespace, facts.job.name, facts.job.resource_version)
            facts, queue = self._facts(task, views, full=full, fetched_pods=pods)
            decision = decide(facts, queue)
        if facts.problems == () and not facts.validated:
            self.memory.remember_valid(uid, meta.get("generation"))
        await self._execute(task, decision)
        if decision.slot_freed and self.memory.waiting_in(namespace, decision.slot_freed):
            return decision.slot_freed
        return decision.admit

    async def _job_pods(self, namespace: str, job_name: str, not_older_than: str = "") -> tuple[PodSummary, ...]:
        """A Job's pods, summarized page by page: a fan-out's thousand pods are never all held
        as full objects at once (one page, one request, for every other Job).

        `not_older_than` is the finished Job's resourceVersion. Its pods' final states were
        written before it, so the API server may answer from its watch cache once that cache has
        reached it (resourceVersionMatch=NotOlderThan), instead of a quorum read of etcd first:
        on a busy API server that read was the slow part of recording a result (docs/benchmarks.md)."""
        pods: list[PodSummary] = []
        params: dict[str, Any] = {"labelSelector": f"{JOB_NAME_LABEL}={job_name}", "limit": POD_PAGE}
        if not_older_than:
            params |= {"resourceVersion": not_older_than, "resourceVersionMatch": "NotOlderThan"}
        while True:
            listed = await self.kube.get(core_path("pods", namespace), **params)
            pods += [summarize_pod(p) for p in listed.get("items", [])]
            token = (listed.get("metadata") or {}).get("continue")
            if not token:
                return tuple(pods)
            params.pop("resourceVersion", None)  # a continued list keeps the first page's: the API server refuses both
            params.pop("resourceVersionMatch", None)
            params["continue"] = token

    async def _execute(self, task: dict[str, Any], decision: Decision) -> None:
        run = current_run(task["spec"])
        uid = task["metadata"]["uid"]
        if decision.delete_job:
            await self._delete_job(task["metadata"]["namespace"], decision.delete_job)
        if decision.release:
            self.memory.release(uid, run)
        if decision.verdict is None and settled(task["spec"], task.get("status") or {}):
            self.memory.settled(uid, run)
        if decision.verdict is not None:
            await self._write_status(task, decision)
        if decision.recheck_after is not None:
            self.enqueue_after(TaskKey(uid), decision.recheck_after)

    async def _write_status(self, task: dict[str, Any], decision: Decision) -> None:
        meta = task["metadata"]
        run = current_run(task["spec"])
        desired = desired_status(decision, generation=meta.get("generation"), run=run, now=now())
        current = task.get("status") or {}
        if not status_changed(current, desired):
            return
        if moves_backwards(current, desired):
            log.error("task %s/%s: refusing to move %s back to %s (%s)", meta["namespace"], meta["name"], current.get("phase"),
                      desired["phase"], decision.verdict.reason if decision.verdict else "")
            return
        verdict = decision.verdict
        assert verdict is not None
        log.debug("task %s/%s: status %s/%s (changed: %s)", meta["namespace"], meta["name"], verdict.phase.value, verdict.reason,
                  sorted(k for k, v in desired.items() if current.get(k) != v))
        try:
            # The resourceVersion precondition makes the write conditional on what the decision was
            # based on: a stale view (or a second operator) gets 409 and decides again, so a status
            # can never go backwards.
            patch: dict[str, Any] = {"status": desired}
            if meta.get("resourceVersion"):
                patch["metadata"] = {"resourceVersion": meta["resourceVersion"]}
            response = await self.kube.patch(tasks_path(meta["namespace"], meta["name"], subresource="status"), patch)
            metrics.API_WRITES.labels("patch", "tasks/status").inc()
            self.memory.remember_write(meta["uid"], response)
            if desired["phase"] in TERMINAL:
                self.memory.settled(meta["uid"], run)
        except ApiError as error:
            if error.status == 404:
                return  # the Task was deleted meanwhile; its children go with it
            raise
        self._after_transition(task, current, desired, verdict)

    def _after_transition(self, task: dict[str, Any], current: dict[str, Any], desired: dict[str, Any], verdict: Verdict) -> None:
        if verdict.reason == "JobCreateRefused" and _ready_reason(current) != "JobCreateRefused":
            # One Warning per refusal spell, not one per retry.
            self.events.post(task, type="Warning", reason="JobCreateRefused", message=verdict.message)
        old_phase, new_phase = current.get("phase"), desired["phase"]
        if old_phase == new_phase and current.get("run", 0) == desired["run"]:
            return
        spec = task["spec"]
        labels = (spec["type"], desired.get("queue") or "")
        log.info("task %s/%s: %s -> %s (%s)", task["metadata"]["namespace"], task["metadata"]["name"],
                 old_phase or "new", new_phase, verdict.reason)
        started_now = desired.get("startTime") and (current.get("startTime") != desired["startTime"] or current.get("run", 0) != desired["run"])
        if started_now and (new_phase == Phase.RUNNING.value or old_phase != Phase.RUNNING.value):
            # Its start, whether written as Running or only with the outcome (a run that ended
            # before its first status write: the outcome read at its Job's first event).
            started = datetime.fromisoformat(desired["startTime"].replace("Z", "+00:00"))
            created = datetime.fromisoformat(task["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
            metrics.QUEUED_SECONDS.labels(*labels).observe(max(0.0, (started - created).total_seconds()))
        if new_phase in TERMINAL:
            event_type = "Normal" if new_phase == Phase.SUCCEEDED.value else "Warning"
            self.events.post(task, type=event_type, reason=new_phase, message=verdict.message or new_phase)
            if desired.get("startTime") and desired.get("completionTime"):
                started = datetime.fromisoformat(desired["startTime"].replace("Z", "+00:00"))
                finished = datetime.fromisoformat(desired["completionTime"].replace("Z", "+00:00"))
                metrics.RUN_SECONDS.labels(*labels, new_phase).observe(max(0.0, (finished - started).total_seconds()))
            if new_phase == Phase.FAILED.value:
                metrics.FAILURES.labels(*labels, verdict.reason).inc()
            if new_phase == Phase.CANCELLED.value:
                metrics.CANCELLATIONS.labels(*labels).inc()
            if verdict.attempts > 1:
                metrics.RETRIES.labels(*labels).inc(verdict.attempts - 1)

    async def _delete_job(self, namespace: str, name: str) -> None:
        try:
            await self.kube.delete(core_path("jobs", namespace, name, group="batch"), body={"propagationPolicy": "Background"})
            metrics.API_WRITES.labels("delete", "jobs").inc()
        except ApiError as error:
            if error.status != 404:
                raise

    # ---------------------------------------------------------------------------------------
    # One queue
    # ---------------------------------------------------------------------------------------
    async def admit_queue(self, namespace: str, queue_name: str, views: Views) -> object | None:
        """Start the Tasks the queue has room for, best first; mark the rest Queued with why.
        Decides for one queue at a time (the work queue never runs one key twice at once), from
        what runs plus what is reserved, and reserves before it awaits anything: rounds whose
        creates are still in flight count exactly. Returns DEFERRED when it started creates: the
        round reports its outcome to the work queue itself (`_start_round`)."""
        key = QueueKey(namespace, queue_name)
        waiting = self._waiting(namespace, queue_name, views)
        if not waiting:
            self.memory.set_throttled(namespace, queue_name, 0, None)
            self.memory.set_waiting(namespace, queue_name, 0)
            return DEFERRED if self._rounds.get(key) else None
        queue = views.queue(namespace, queue_name)
        admitted: list[Candidate] = []
        estimates: dict[str, float] = {}  # uid → earliest start, for Tasks the rate limit holds back
        if queue is None:
            reason, message = "QueueNotFound", f"TaskQueue {queue_name!r} does not exist in namespace {namespace}; the Task waits until it is created"
        else:
            running = list(views.running_jobs(namespace, queue_name))
            seen = {(j.task_uid, j.run) for j in running}
            flying = [r for key, r in self.memory.reserved_in(namespace, queue_name) if key not in seen]
            state = QueueState(max_running=queue.max_running, running=len(running) + len(flying), max_gpus=queue.max_gpus,
                               running_gpus=sum(j.gpu for j in running) + sum(r.gpu for r in flying), paused=queue.paused)
            admitted = admit([c for c, _ in waiting.values()], state)
            if queue.paused:
                reason, message = "QueuePaused", f"TaskQueue {queue_name!r} is paused"
            else:
                reason, message = "WaitingForCapacity", f"TaskQueue {queue_name!r} is full ({queue.max_running} running at most)"
            throttled: list[Candidate] = []
            if queue.rate_limit is not None and admitted:
                admitted, throttled, estimates = self._rate_limited(namespace, queue_name, queue.rate_limit, admitted,
                                                                    [c for c, _ in waiting.values()], views)
            if throttled:
                reason, message = "RateLimited", f"TaskQueue {queue_name!r} allows {queue.rate_limit.describe() if queue.rate_limit else ''}"
            else:
                self.memory.set_throttled(namespace, queue_name, 0, None)
        # Reserve the capacity first; the reservations count as running for every decision made
        # meanwhile. Then create the Jobs concurrently.
        for candidate in admitted:
            run = current_run(waiting[candidate.uid][1]["spec"])
            self.memory.reserve(candidate.uid, run, Reservation(namespace, queue_name, candidate.gpu))
        admitted_uids = {c.uid for c in admitted}
        self.memory.set_waiting(namespace, queue_name, len(waiting) - len(admitted))
        if admitted:
            # The creates run on, and the queue's next round need not wait for them: a Task that
            # arrives meanwhile is admitted at once against the reservations (it waited a whole
            # round of Job creates before, 40-110 ms on a busy API server; docs/benchmarks.md).
            started = asyncio.create_task(self._start_round(namespace, queue_name, [waiting[c.uid][1] for c in admitted], views))
            self._rounds.setdefault(key, set()).add(started)
            started.add_done_callback(lambda done: self._round_ended(key, done))
        marked = await asyncio.gather(*(self._mark_queued(task, queue_name, reason, message, estimates.get(uid))
                                        for uid, (_, task) in waiting.items() if uid not in admitted_uids),
                                      return_exceptions=True)
        errors = [o for o in marked if isinstance(o, BaseException)]
        if errors:
            raise errors[0]
        # While a round is in flight its outcome, not this run's, says whether the key failed.
        return DEFERRED if self._rounds.get(key) else None

    def _round_ended(self, key: QueueKey, done: asyncio.Task[None]) -> None:
        rounds = self._rounds.get(key, set())
        rounds.discard(done)
        if not rounds:
            self._rounds.pop(key, None)

    async def _start_round(self, namespace: str, queue_name: str, tasks: list[dict[str, Any]], views: Views) -> None:
        """Create the Jobs of one admission round (capacity already reserved), then report how
        it went: the queue's key is retried with backoff on any refusal or error, as if the
        round had run on the key's worker (`on_round_done`)."""
        key = QueueKey(namespace, queue_name)
        error: BaseException | None = None
        try:
            outcomes = await asyncio.gather(*(self._start(task, views, queue_name) for task in tasks), return_exceptions=True)
            refusals: list[Refusal] = []
            slot_freed = False
            for task, outcome in zip(tasks, outcomes):
                if outcome is Start.STARTED:
                    continue
                # Not started: the reservation goes at once (a STARTED one goes when the Job is seen).
                self.memory.release(task["metadata"]["uid"], current_run(task["spec"]))
                if isinstance(outcome, tuple):
                    refusals.append(outcome[1])
                elif outcome in (Start.FAILED, Start.SKIPPED):
                    slot_freed = True
            errors = [o for o in outcomes if isinstance(o, BaseException)]
            self.memory.more_waiting(namespace, queue_name, len(refusals) + len(errors))  # they wait again
            if slot_freed:
                self.enqueue(key)  # the next Task gets the slot now
            error = errors[0] if errors else (JobCreatesRefused(refusals) if refusals else None)
        except asyncio.CancelledError:
            raise
        except Exception as bug:  # our own: the round is retried like any failure
            error = bug
        self.on_round_done(key, error)

    def _rate_limited(self, namespace: str, queue_name: str, limit: RateWindow, admitted: list[Candidate],
                      candidates: list[Candidate], views: Views) -> tuple[list[Candidate], list[Candidate], dict[str, float]]:
        """Apply the queue's rate limit to what capacity admitted: (start now, held back, their
        earliest starts). Everything still waiting is held back once the limit binds, and the
        queue comes back when the next start is allowed."""
        moment = now().timestamp()
        recent = self._recent_starts(namespace, queue_name, views, moment)
        allowance = limit.allowance(recent, moment)
        if allowance >= len(admitted):
            return admitted, [], {}
        started = admitted[:allowance]
        chosen = {c.uid for c in started}
        held = [c for c in admission_order(candidates) if c.uid not in chosen]
        earliest = limit.estimates(recent + [moment] * len(started), moment, len(held))
        self.memory.set_throttled(namespace, queue_name, len(held), earliest[0])
        self.enqueue_after(QueueKey(namespace, queue_name), earliest[0] - moment + RATE_WAKE_MARGIN)
        return started, held, {c.uid: t for c, t in zip(held, earliest)}

    def _recent_starts(self, namespace: str, queue_name: str, views: Views, moment: float) -> list[float]:
        """Start times of the queue's Tasks as the cluster recorded them: every Job's creation
        (finished Jobs too, until deleted), finished Tasks' status.startTime (their Job may be
        gone), and the Jobs this process is creating right now. One per (Task, run)."""
        starts: dict[tuple[str, int], float] = {}
        # Recorded times have whole seconds: a start counts until the end of its second.
        for job in views.queue_jobs(namespace, queue_name):
            starts[(job.task_uid, job.run)] = _epoch(job.created) + 1.0
        for job in self.memory.deleted_jobs_in(namespace, queue_name):
            starts.setdefault((job.task_uid, job.run), _epoch(job.created) + 1.0)
        for record in views.queue_starts(namespace, queue_name):
            if record.started is not None:
                starts.setdefault((record.uid, record.run), record.started + 1.0)
        # A Task whose Job is already deleted (ttlSecondsAfterFinished: 0) while its Succeeded
        # status has not reached the finished index yet: its startTime is still in its status.
        for task in views.tasks(namespace):
            status = self.memory.freshest_status(task)
            if status.get("queue") == queue_name and status.get("startTime"):
                starts.setdefault((task["metadata"]["uid"], int(status.get("run") or 0)), _epoch(status["startTime"]) + 1.0)
        for key, _ in self.memory.reserved_in(namespace, queue_name):
            starts.setdefault(key, moment)
        return list(starts.values())

    async def _mark_queued(self, task: dict[str, Any], queue_name: str, reason: str, message: str,
                           earliest: float | None = None) -> None:
        uid = task["metadata"]["uid"]
        async with self._task_locks.hold(uid):
            task = self.memory.freshest(task)
            spec, status = task["spec"], task.get("status") or {}
            if settled(spec, status) or spec.get("cancel"):
                return
            if _ready_reason(status) == "JobCreateRefused" and reason == "WaitingForCapacity":
                return  # keep saying why it really waits until a create is tried again
            if earliest is not None:
                written = self.memory.start_estimate(uid)
                if _ready_reason(status) == reason and written is not None and abs(written - earliest) <= RATE_ESTIMATE_SLACK:
                    return  # it still says when it can start, near enough: no rewrite per window
                message = f"{message}; this Task can start at {_rfc3339(earliest)} at the earliest"
            self.memory.remember_start_estimate(uid, earliest)
            decision = Decision(verdict=Verdict(Phase.QUEUED, reason, message), base=base_status(spec, status), queue=queue_name)
            try:
                await self._write_status(task, decision)
            except ApiError as error:
                if error.status != 409:
                    raise  # 409: the Task changed meanwhile; its own event reconciles it

    def _waiting(self, namespace: str, queue_name: str, views: Views) -> dict[str, tuple[Candidate, dict[str, Any]]]:
        waiting: dict[str, tuple[Candidate, dict[str, Any]]] = {}
        for task in (views.unstarted_tasks or views.tasks)(namespace):
            # Cheap filters first, on the freshest status without copying the body: this loop
            # sees every Task of the namespace not yet running, on every admission.
            meta, spec = task["metadata"], task["spec"]
            uid, run = meta["uid"], current_run(spec)
            if spec.get("cancel") or self.memory.is_reserved(uid, run):
                continue
            if any(j.run == run for j in views.jobs_of_task(uid)):
                continue  # started; its status may not say so yet
            status = self.memory.freshest_status(task)
            if started_or_settled(spec, status):
                continue
            tasktype = views.tasktype(namespace, spec["type"])
            if tasktype is None or effective_queue(spec, tasktype, self.settings.default_queue) != queue_name:
                continue
            if not self.memory.is_validated(uid, meta.get("generation")) and status.get("phase") != Phase.QUEUED.value:
                continue  # not yet validated: its own reconcile validates it and asks for this queue
            if spec.get("after") and not self._dependencies_met(namespace, spec, views):
                continue  # its own reconcile says what it waits for (and enqueues the queue once met)
            task = self.memory.freshest(task)
            resources = spec.get("resources") or {}
            gpu = resources.get("gpu")
            if gpu is None:
                gpu = ((tasktype.get("defaults") or {}).get("resources") or {}).get("gpu") or 0
            priority = spec.get("priority")
            if priority is None:
                priority = (tasktype.get("defaults") or {}).get("priority") or 0
            # A fan-out asks for its GPUs once per pod it runs at once.
            gpu = int(gpu) * pods_at_once(spec, tasktype, item_count(task))
            waiting[uid] = (Candidate(uid, meta["name"], int(priority), meta.get("creationTimestamp", ""), gpu), task)
        return waiting

    async def _start(self, task: dict[str, Any], views: Views, queue_name: str) -> Start | tuple[Start, Refusal]:
        """Create the Job for the Task's current run (its capacity is already reserved).
        409 means it exists: the work already started."""
        meta = task["metadata"]
        namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
        async with self._task_locks.hold(uid):
            latest = views.task_by_uid(uid)
            if latest is None:
                return Start.SKIPPED  # deleted or finished meanwhile
            latest = self.memory.freshest(latest)
            spec = latest["spec"]
            if spec.get("cancel") or settled(spec, latest.get("status") or {}) or current_run(spec) != current_run(task["spec"]):
                return Start.SKIPPED  # its own reconcile handles it
            if latest.get(PARAMETERS_OMITTED):
                fetched = await self._get_task(namespace, name, uid)
                if fetched is None:
                    return Start.SKIPPED
                latest = self.memory.freshest(fetched)
                spec = latest["spec"]
            tasktype = views.tasktype(namespace, spec["type"])
            if tasktype is None:
                return Start.SKIPPED  # its own reconcile says UnknownTaskType
            base = base_status(spec, latest.get("status") or {})
            effective, problems = resolve(spec, tasktype, self.settings.default_queue)
            if effective is None or problems:
                # Valid when it was accepted, invalid now (its TaskType was tightened): it fails
                # with the reasons and its slot goes to the next Task.
                await self._write_status(latest, Decision(verdict=invalid_verdict(problems), base=base, queue=queue_name))
                return Start.FAILED
            run = current_run(spec)
            annotations = {k: v for k, v in (latest["metadata"].get("annotations") or {}).items()
                           if any(k.startswith(p) for p in self.settings.pod_annotation_prefixes)}
            job = build_job(latest, effective, run, grace_seconds=self.settings.termination_grace_seconds,
                            pod_annotations=annotations)
            self.memory.remember_valid(uid, latest["metadata"].get("generation"))
            try:
                if effective.items is not None:
                    # A fan-out's items first: its pods mount them (a 409 is an earlier attempt's).
                    await self._create_items(items_configmap(latest, effective, run))
                await self.kube.create(core_path("jobs", namespace, group="batch"), job)
                metrics.API_WRITES.labels("create", "jobs").inc()
                if self.settings.status_settle_seconds > 0:  # what the settle window is timed from
                    self.memory.job_created(uid, run, time.time())
            except ApiError as error:
                if error.status != 409:
                    refusal = classify_refusal(error.status, error.reason, error.message, error.body.get("details"))
                    return await self._refused(latest, base, queue_name, refusal)
            except (TransportError, asyncio.TimeoutError) as error:
                # No answer: the Job may or may not exist. Retrying is safe (the name is
                # deterministic; a second create answers 409).
                return await self._refused(latest, base, queue_name, classify_refusal(None, "", f"{type(error).__name__}: {error}"))
        self.memory.remember_start_estimate(uid, None)
        log.info("task %s/%s: admitted from queue %s, Job %s", namespace, name, queue_name, job["metadata"]["name"])
        self.events.post(latest, type="Normal", reason="Started", message=f"admitted from queue {queue_name}; Job {job['metadata']['name']}")
        return Start.STARTED

    async def _create_items(self, configmap: dict[str, Any]) -> None:
        try:
            await self.kube.create(core_path("configmaps", configmap["metadata"]["namespace"]), configmap)
            metrics.API_WRITES.labels("create", "configmaps").inc()
        except ApiError as error:
            if error.status != 409:
                raise

    async def _refused(self, task: dict[str, Any], base: dict[str, Any], queue_name: str,
                       refusal: Refusal) -> Start | tuple[Start, Refusal]:
        metrics.JOB_CREATE_FAILURES.labels(refusal.kind).inc()
        meta = task["metadata"]
        # Per Task at debug: the queue's retry logs one warning per round (handlers._run_workers).
        log.log(logging.WARNING if refusal.final else logging.DEBUG, "task %s/%s: Job create refused (%s%s): %s", meta["namespace"], meta["name"], refusal.kind,
                    ", final" if refusal.final else ", retrying", refusal.message[:500])
        try:
            await self._write_status(task, Decision(verdict=refused_verdict(refusal), base=base, queue=queue_name))
        except ApiError as error:
            if error.status != 409:
                raise  # the queue is retried either way; the Task's own event reconciles a 409
        return Start.FAILED if refusal.final else (Start.REFUSED, refusal)

    # ---------------------------------------------------------------------------------------
    # Pending pods (instead of a pod watch)
    # ---------------------------------------------------------------------------------------
    async def check_pending_pods(self, views: Views) -> None:
        """Why does a Job's pod not run? One LIST of Pending kubetask pods per namespace that has a
        Job with no ready pod: a third fewer watch events per Task than watching every pod, for
        one read per namespace per interval while something waits."""
        jobs = {(j.namespace, j.name): j for j in views.all_running_jobs()}
        # Only Jobs waiting longer than one interval: a young Job's pod is normally just starting,
        # and a burst of new Jobs would otherwise mean LISTing thousands of pods for nothing.
        settled_before = now().timestamp() - self.settings.pending_pod_check_seconds
        namespaces = {ns for (ns, _), j in jobs.items() if j.ready == 0 and _epoch(j.created) <= settled_before}
        found: dict[tuple[str, str], tuple[PodSummary, ...]] = {}
        for namespace in sorted(namespaces):
            listed = await self.kube.get(core_path("pods", namespace), labelSelector=f"{MANAGED_BY}={MANAGED_BY_VALUE}",
                                         fieldSelector="status.phase=Pending")
            for pod in listed.get("items", []):
                summary = summarize_pod(pod)
                if (namespace, summary.job_name) in jobs:
                    found[(namespace, summary.job_name)] = (*found.get((namespace, summary.job_name), ()), summary)
        for key in self.memory.replace_pending_pods(found):
            job = jobs.get(key)
            if job is not None and job.task_uid:
                self.enqueue(TaskKey(job.task_uid))

    # ---------------------------------------------------------------------------------------
    # Queue status (batched)
    # ---------------------------------------------------------------------------------------
    def _dead_letters(self, views: Views) -> dict[tuple[str, str], int]:
        """Dead-lettered Tasks per (namespace, queue): Failed ones in the finished index, which holds
        only Tasks whose current run is over (a re-run leaves it at once). publish_queue_status runs
        for every queue each round: one pass, reused for half a round, keeps a round O(finished
        Tasks) instead of O(queues x finished Tasks)."""
        moment = asyncio.get_running_loop().time()
        if self.memory.dead_letter_counts is None or moment - self.memory.dead_letter_counts[0] >= self.settings.queue_status_interval / 2:
            counts: dict[tuple[str, str], int] = {}
            for record in views.finished_tasks():
                if record.phase == Phase.FAILED.value:
                    counts[(record.namespace, record.queue)] = counts.get((record.namespace, record.queue), 0) + 1
            self.memory.dead_letter_counts = (moment, counts)
        return self.memory.dead_letter_counts[1]

    async def publish_queue_status(self, namespace: str, name: str, views: Views) -> None:
        queue = views.queue(namespace, name)
        if queue is None:
            return
        running = list(views.running_jobs(namespace, name))
        pending = sum(1 for t in views.tasks(namespace)
                      if (t.get("status") or {}).get("phase") == Phase.QUEUED.value and (t.get("status") or {}).get("queue") == name)
        throttled, next_start = self.memory.throttled(namespace, name)
        dead_letter = self._dead_letters(views).get((namespace, name), 0)
        desired = {"pending": pending, "running": len(running), "runningGpus": sum(j.gpu for j in running),
                   "throttled": throttled, "nextStartTime": _rfc3339(next_start) if next_start is not None else None,
                   "deadLetter": dead_letter, "observedGeneration": queue.generation}
        metrics.QUEUE_THROTTLED.labels(namespace, name).set(throttled)
        metrics.QUEUE_DEAD_LETTER.labels(namespace, name).set(dead_letter)
        metrics.QUEUE_PENDING.labels(namespace, name).set(pending)
        metrics.QUEUE_RUNNING.labels(namespace, name).set(len(running))
        if not status_changed(queue.status, desired):
            return
        try:
            await self.kube.patch(tasks_path(namespace, name, plural="taskqueues", subresource="status"), {"status": desired})
            metrics.API_WRITES.labels("patch", "taskqueues/status").inc()
        except ApiError as error:
            if error.status != 404:
                raise


def _ready_reason(status: dict[str, Any]) -> str | None:
    ready = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), None)
    return ready.get("reason") if ready else None


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(timestamp: str) -> float:
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def item_count(task: dict[str, Any]) -> int | None:
    """How many items a Task body fans out over (None: not a fan-out), also when the index left them out."""
    items = task["spec"].get("items")
    if items is not None:
        return len(items)
    count = task.get(ITEM_COUNT)
    return int(count) if count is not None else None


def plain(body: Any) -> dict[str, Any]:
    """A deep copy as plain dicts and lists: Kopf's bodies are read-only views, and the pure
    functions (and the status we build from them) take plain data."""
    return {key: copy_value(value) for key, value in body.items()}


def copy_value(value: Any) -> Any:
    if isinstance(value, Mapping) or hasattr(value, "items"):
        return {k: copy_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_value(v) for v in value]
    return value
