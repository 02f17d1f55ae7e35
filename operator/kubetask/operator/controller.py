"""The operator's decisions with their side effects: reconcile one Task, admit one queue.

Everything here is level-triggered: it reads the Task and what the in-memory indexes say about its
Job, pods, TaskType and queue, computes the desired state with the pure functions (resolve,
build_job, observe_run, task_status, admit) and writes only the difference. Any event may call
any of it any number of times; a restart rebuilds the indexes before the first call.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, cast

import kopf

from kubetask.kube import ApiError, Kube, core_path, tasks_path
from kubetask.operator import metrics
from kubetask.operator.admission import Candidate, QueueState, admit
from kubetask.operator.config import OperatorSettings
from kubetask.operator.jobs import build_job
from kubetask.operator.resolve import describe, effective_queue, resolve
from kubetask.operator.status import JobSummary, PodSummary, Verdict, observe_run, status_changed, task_status
from kubetask.resources.models import Phase

log = logging.getLogger("kubetask.operator")
TERMINAL = {p.value for p in Phase if p.terminal}
NOT_WAITING = TERMINAL | {Phase.RUNNING.value}
MAX_HISTORY = 32
MAX_REMEMBERED = 20_000
PARAMETERS_OMITTED = "_parametersOmitted"  # set on index bodies whose (large) parameters were left out


@dataclass(frozen=True)
class QueueSpec:
    max_running: int
    max_gpus: int | None
    paused: bool
    generation: int | None
    status: dict[str, Any]


@dataclass
class Views:
    """Read access to Kopf's indexes (populated before any handler runs)."""

    tasks: Callable[[str], Iterable[dict[str, Any]]]  # namespace → unfinished Task bodies (no parameters)
    task_by_uid: Callable[[str], dict[str, Any] | None]  # uid → the same body
    jobs_of_task: Callable[[str], Iterable[JobSummary]]  # task uid → its Jobs
    running_jobs: Callable[[str, str], Iterable[JobSummary]]  # (namespace, queue) → unfinished Jobs
    pods_of_task: Callable[[str], Iterable[PodSummary]]  # task uid → its pods
    tasktype: Callable[[str, str], dict[str, Any] | None]  # (namespace, name) → TaskType spec
    queue: Callable[[str, str], QueueSpec | None]  # (namespace, name) → TaskQueue


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
    def __init__(self, kube: Kube, settings: OperatorSettings) -> None:
        self.kube = kube
        self.settings = settings
        self._task_locks = KeyedLocks()
        self._queue_locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        # Jobs created by this process that the Job index has not shown yet: (task uid, run) → queue, gpu.
        self.in_flight: dict[tuple[str, int], tuple[str, str, int]] = {}
        # The status this process last wrote per Task, with the resourceVersion the write produced.
        # An event or index entry older than our own write must not undo it (stale-read guard).
        self._written: OrderedDict[str, tuple[int, dict[str, Any]]] = OrderedDict()
        # Tasks (uid → generation) this process validated: no re-fetch to validate them again
        # when a Job or pod event arrives before the first status write.
        self._validated: OrderedDict[str, int | None] = OrderedDict()

    # ---------------------------------------------------------------------------------------
    # One Task
    # ---------------------------------------------------------------------------------------
    async def reconcile(self, task: dict[str, Any], views: Views, *, full: bool) -> None:
        """Bring one Task's Job and status in line with what is observed. `full` says whether the
        body carries spec.parameters (Task events do; bodies from the index do not)."""
        uid = task["metadata"]["uid"]
        async with self._task_locks.hold(uid):
            for attempt in range(3):
                try:
                    queue_to_admit = await self._reconcile_locked(task, views, full=full)
                    break
                except ApiError as error:
                    if error.status != 409 or attempt == 2:
                        raise
                    # Our view was stale (another writer, another operator): decide again on fresh data.
                    task = await self.kube.get(tasks_path(task["metadata"]["namespace"], task["metadata"]["name"]))
                    full = True
                    if task["metadata"]["uid"] != uid:
                        return
        if queue_to_admit:
            await self.admit_queue(task["metadata"]["namespace"], queue_to_admit, views, extra=task if full else None)

    def _freshest(self, task: dict[str, Any]) -> dict[str, Any]:
        """The body with our own latest status write if the body predates it."""
        written = self._written.get(task["metadata"]["uid"])
        if written is None:
            return task
        version, status = written
        try:
            seen = int(task["metadata"].get("resourceVersion") or 0)
        except ValueError:
            return task
        if seen >= version:
            return task
        return {**task, "metadata": {**task["metadata"], "resourceVersion": str(version)}, "status": status}

    def _freshest_status(self, task: dict[str, Any]) -> dict[str, Any]:
        written = self._written.get(task["metadata"]["uid"])
        if written is not None:
            try:
                if int(task["metadata"].get("resourceVersion") or 0) < written[0]:
                    return written[1]
            except ValueError:
                pass
        return task.get("status") or {}

    def _remember(self, uid: str, response: dict[str, Any]) -> None:
        try:
            version = int(response["metadata"]["resourceVersion"])
        except (KeyError, ValueError):
            return
        self._written[uid] = (version, response.get("status") or {})
        self._written.move_to_end(uid)
        while len(self._written) > MAX_REMEMBERED:
            self._written.popitem(last=False)

    def observed(self, uid: str, resource_version: str | None) -> None:
        """The watch delivered this Task at `resource_version`: a remembered write it has caught up
        with is no longer needed (the watch is ordered, so no older body of it follows). Keeps the
        memory to writes in flight instead of a full status per Task ever written."""
        written = self._written.get(uid)
        if written is None:
            return
        try:
            if int(resource_version or 0) >= written[0]:
                del self._written[uid]
        except ValueError:
            pass

    def _remember_valid(self, uid: str, generation: int | None) -> None:
        self._validated[uid] = generation
        self._validated.move_to_end(uid)
        while len(self._validated) > MAX_REMEMBERED:
            self._validated.popitem(last=False)

    async def _reconcile_locked(self, task: dict[str, Any], views: Views, *, full: bool) -> str | None:
        task = self._freshest(task)
        meta, spec = task["metadata"], task["spec"]
        status = task.get("status") or {}
        uid, namespace, name = meta["uid"], meta["namespace"], meta["name"]
        run = int(spec.get("rerun", 0))
        jobs = [j for j in views.jobs_of_task(uid) if j.run == run]
        job = jobs[0] if jobs else None

        if status.get("run", 0) == run and status.get("phase") in TERMINAL:
            # Terminal is sticky for a run: a finished Task never runs again unless spec.rerun rises.
            if status["phase"] == Phase.CANCELLED.value and job is not None and job.running:
                await self._delete_job(job)
            return None

        previous = status if status.get("run", 0) == run else self._archive_run(status)
        tasktype = views.tasktype(namespace, spec["type"])
        generation = meta.get("generation")

        if tasktype is None:
            queue = spec.get("queue")
            verdict = Verdict(Phase.CANCELLED, "Cancelled", "cancelled before its TaskType existed") if spec.get("cancel") else \
                Verdict(Phase.PENDING, "UnknownTaskType",
                        f"TaskType {spec['type']!r} does not exist in namespace {namespace}; the Task waits until it is created")
            await self._write_status(task, previous, verdict, queue, run, generation)
            return None

        queue = effective_queue(spec, tasktype, self.settings.default_queue)
        if not full and not self._accepted(uid, previous, generation):
            try:  # validation needs the parameters, which the index does not hold: start over, fresh
                fresh = await self.kube.get(tasks_path(namespace, name))
            except ApiError as error:
                if error.status == 404:
                    return None
                raise
            if fresh["metadata"]["uid"] != uid:
                return None
            return await self._reconcile_locked(fresh, views, full=True)
        if full and not self._accepted(uid, previous, generation):
            effective, problems = resolve(spec, tasktype, self.settings.default_queue)
            if problems:
                verdict = Verdict(Phase.FAILED, problems[0].reason, describe(problems),
                                  failure={"reason": problems[0].reason, "message": describe(problems)})
                await self._write_status(task, previous, verdict, queue, run, generation)
                return None
            self._remember_valid(uid, generation)

        if spec.get("cancel"):
            if job is not None and job.running:
                await self._delete_job(job)
            verdict = Verdict(Phase.CANCELLED, "Cancelled",
                              "cancelled while running; the handler got SIGTERM" if job or previous.get("jobName") else "cancelled before it started",
                              attempts=job.active + job.failed + job.succeeded if job else 0,
                              job_name=job.name if job else previous.get("jobName"),
                              start_time=job.start_time if job else previous.get("startTime"))
            self.in_flight.pop((uid, run), None)
            await self._write_status(task, previous, verdict, queue, run, generation)
            return None

        if job is not None:
            self.in_flight.pop((uid, run), None)
            pods = [p for p in views.pods_of_task(uid) if p.job_name == job.name]
            await self._write_status(task, previous, observe_run(job, pods), queue, run, generation)
            return queue if not job.running else None
        if (uid, run) in self.in_flight:
            return None  # created a moment ago; the Job's own event will bring its status
        if previous.get("phase") == Phase.RUNNING.value and previous.get("jobName"):
            # Absence from a cache is not proof (another operator may have created it a moment
            # ago): ask the API server before declaring the Job gone.
            try:
                await self.kube.get(core_path("jobs", namespace, previous["jobName"], group="batch"))
                return None  # it exists; its event will reach the index shortly
            except ApiError as error:
                if error.status != 404:
                    raise
            verdict = Verdict(Phase.FAILED, "JobDeleted",
                              f"Job {previous['jobName']} was deleted before it finished; raise spec.rerun to run again",
                              job_name=previous["jobName"], attempts=previous.get("attempts", 0),
                              failure={"reason": "JobDeleted", "message": "the Job was deleted before it finished"})
            await self._write_status(task, previous, verdict, queue, run, generation)
            return None
        # Waiting for admission. The queue decides; this Task's own Queued status is written by
        # admit_queue unless it is admitted at once (one write saved on an idle queue).
        return queue

    def _accepted(self, uid: str, status: dict[str, Any], generation: int | None) -> bool:
        if uid in self._validated and self._validated[uid] == generation:
            return True
        accepted = next((c for c in status.get("conditions", []) if c["type"] == "Accepted"), None)
        return bool(accepted and accepted["status"] == "True" and status.get("observedGeneration") == generation)

    @staticmethod
    def _archive_run(status: dict[str, Any]) -> dict[str, Any]:
        """A new run (spec.rerun rose): the finished run goes to history, the rest starts fresh."""
        history = list(status.get("history", []))
        if status.get("phase"):
            history.append({k: v for k, v in {
                "run": status.get("run", 0), "jobName": status.get("jobName") or "", "phase": status["phase"],
                "attempts": status.get("attempts", 0), "reason": (status.get("lastFailure") or {}).get("reason", ""),
                "startTime": status.get("startTime"), "completionTime": status.get("completionTime"),
            }.items() if v is not None})
        return {"history": history[-MAX_HISTORY:], "progress": None}

    async def _write_status(self, task: dict[str, Any], previous: dict[str, Any], verdict: Verdict, queue: str | None,
                            run: int, generation: int | None) -> None:
        desired = task_status(verdict, previous, generation=generation, queue=queue, run=run, now=now())
        if "progress" in previous and previous["progress"] is None:
            desired["progress"] = None  # a rerun clears the last run's progress
        current = task.get("status") or {}
        if not status_changed(current, desired):
            return
        meta = task["metadata"]
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
            self._remember(meta["uid"], response)
        except ApiError as error:
            if error.status == 404:
                return  # the Task was deleted meanwhile; its children go with it
            raise
        self._after_transition(task, current, desired, verdict)

    def _after_transition(self, task: dict[str, Any], current: dict[str, Any], desired: dict[str, Any], verdict: Verdict) -> None:
        old_phase, new_phase = current.get("phase"), desired["phase"]
        if old_phase == new_phase and current.get("run", 0) == desired["run"]:
            return
        spec = task["spec"]
        labels = (spec["type"], desired.get("queue") or "")
        log.info("task %s/%s: %s -> %s (%s)", task["metadata"]["namespace"], task["metadata"]["name"],
                 old_phase or "new", new_phase, verdict.reason)
        if new_phase == Phase.RUNNING.value and desired.get("startTime"):
            started = datetime.fromisoformat(desired["startTime"].replace("Z", "+00:00"))
            created = datetime.fromisoformat(task["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
            metrics.QUEUED_SECONDS.labels(*labels).observe(max(0.0, (started - created).total_seconds()))
        if new_phase in TERMINAL:
            event_type = "Normal" if new_phase == Phase.SUCCEEDED.value else "Warning"
            # kopf.event reads only apiVersion/kind/metadata, which a plain dict has too.
            kopf.event(cast(kopf.Body, task), type=event_type, reason=new_phase, message=verdict.message[:1024] or new_phase)
            metrics.API_WRITES.labels("create", "events").inc()
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

    async def _delete_job(self, job: JobSummary) -> None:
        try:
            await self.kube.delete(core_path("jobs", job.namespace, job.name, group="batch"),
                                   body={"propagationPolicy": "Background"})
            metrics.API_WRITES.labels("delete", "jobs").inc()
        except ApiError as error:
            if error.status != 404:
                raise

    # ---------------------------------------------------------------------------------------
    # One queue
    # ---------------------------------------------------------------------------------------
    async def admit_queue(self, namespace: str, queue_name: str, views: Views, extra: dict[str, Any] | None = None) -> None:
        """Start the Tasks the queue has room for, best first; mark the rest Queued with why."""
        async with self._queue_locks[(namespace, queue_name)]:
            waiting = self._waiting(namespace, queue_name, views, extra)
            if not waiting:
                return
            queue = views.queue(namespace, queue_name)
            admitted: list[Candidate] = []
            if queue is None:
                reason, message = "QueueNotFound", f"TaskQueue {queue_name!r} does not exist in namespace {namespace}; the Task waits until it is created"
            else:
                running = list(views.running_jobs(namespace, queue_name))
                seen = {(j.task_uid, j.run) for j in running}
                flying = [v for k, v in self.in_flight.items() if v[0] == namespace and v[1] == queue_name and k not in seen]
                state = QueueState(max_running=queue.max_running, running=len(running) + len(flying), max_gpus=queue.max_gpus,
                                   running_gpus=sum(j.gpu for j in running) + sum(f[2] for f in flying), paused=queue.paused)
                admitted = admit([c for c, _ in waiting.values()], state)
                if queue.paused:
                    reason, message = "QueuePaused", f"TaskQueue {queue_name!r} is paused"
                else:
                    reason, message = "WaitingForCapacity", f"TaskQueue {queue_name!r} is full ({queue.max_running} running at most)"
            # Reserve the capacity now, under the lock; create the Jobs after it, concurrently.
            # The reservations (in_flight) count as running for every admission decided meanwhile.
            reserved: list[tuple[Candidate, dict[str, Any], int]] = []
            for candidate in admitted:
                task = waiting[candidate.uid][1]
                run = int(task["spec"].get("rerun", 0))
                self.in_flight[(candidate.uid, run)] = (namespace, queue_name, candidate.gpu)
                reserved.append((candidate, task, run))
            reserved_uids = {candidate.uid for candidate, _, _ in reserved}
            still_waiting = [(uid, task) for uid, (_, task) in waiting.items() if uid not in reserved_uids]
        started = await asyncio.gather(*(self._start(task, views, queue_name) for _, task, _ in reserved), return_exceptions=True)
        for (candidate, _, run), outcome in zip(reserved, started):
            if outcome is not True:
                self.in_flight.pop((candidate.uid, run), None)  # not started: the capacity is free again
        marked = await asyncio.gather(*(self._mark_queued(task, queue_name, reason, message) for _, task in still_waiting),
                                      return_exceptions=True)
        for failure in [*started, *marked]:
            if isinstance(failure, BaseException):
                raise failure

    async def _mark_queued(self, task: dict[str, Any], queue_name: str, reason: str, message: str) -> None:
        uid = task["metadata"]["uid"]
        async with self._task_locks.hold(uid):
            task = self._freshest(task)
            run = int(task["spec"].get("rerun", 0))
            status = task.get("status") or {}
            previous = status if status.get("run", 0) == run else self._archive_run(status)
            try:
                await self._write_status(task, previous, Verdict(Phase.QUEUED, reason, message), queue_name, run,
                                         task["metadata"].get("generation"))
            except ApiError as error:
                if error.status != 409:
                    raise  # 409: the Task changed meanwhile; its own event reconciles it

    def _waiting(self, namespace: str, queue_name: str, views: Views, extra: dict[str, Any] | None) -> dict[str, tuple[Candidate, dict[str, Any]]]:
        waiting: dict[str, tuple[Candidate, dict[str, Any]]] = {}
        bodies = list(views.tasks(namespace))
        if extra is not None:
            bodies = [b for b in bodies if b["metadata"]["uid"] != extra["metadata"]["uid"]] + [extra]
        for task in bodies:
            # Cheap filters first, on the freshest status without copying the body: this loop
            # sees every unfinished Task of the namespace on every admission.
            meta, spec = task["metadata"], task["spec"]
            uid, run = meta["uid"], int(spec.get("rerun", 0))
            if spec.get("cancel") or (uid, run) in self.in_flight:
                continue
            status = self._freshest_status(task)
            if status.get("run", 0) == run and status.get("phase") in NOT_WAITING:
                continue
            task = self._freshest(task)
            tasktype = views.tasktype(namespace, spec["type"])
            if tasktype is None or effective_queue(spec, tasktype, self.settings.default_queue) != queue_name:
                continue
            if any(j.run == run for j in views.jobs_of_task(uid)):
                continue
            accepted_now = extra is not None and uid == extra["metadata"]["uid"]
            if not accepted_now and status.get("phase") != Phase.QUEUED.value:
                continue  # not yet validated: its own Task event will bring it here
            resources = spec.get("resources") or {}
            gpu = resources.get("gpu")
            if gpu is None:
                gpu = ((tasktype.get("defaults") or {}).get("resources") or {}).get("gpu") or 0
            priority = spec.get("priority")
            if priority is None:
                priority = (tasktype.get("defaults") or {}).get("priority") or 0
            waiting[uid] = (Candidate(uid, meta["name"], int(priority), meta.get("creationTimestamp", ""), int(gpu)), task)
        return waiting

    async def _start(self, task: dict[str, Any], views: Views, queue_name: str) -> bool:
        """Create the Job for the Task's current run (its capacity is already reserved).
        409 means it exists: the work already started."""
        meta = task["metadata"]
        namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
        if task.get(PARAMETERS_OMITTED):
            try:
                task = await self.kube.get(tasks_path(namespace, name))
            except ApiError as error:
                if error.status == 404:
                    return False
                raise
            if task["metadata"]["uid"] != uid:
                return False
        spec = task["spec"]
        tasktype = views.tasktype(namespace, spec["type"])
        if tasktype is None:
            return False
        effective, problems = resolve(spec, tasktype, self.settings.default_queue)
        if effective is None:
            return False  # its own reconcile marks it Failed with the reasons
        run = int(spec.get("rerun", 0))
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                       if any(k.startswith(p) for p in self.settings.pod_annotation_prefixes)}
        job = build_job(task, effective, run, grace_seconds=self.settings.termination_grace_seconds,
                        pod_annotations=annotations)
        self._remember_valid(uid, task["metadata"].get("generation"))
        try:
            await self.kube.create(core_path("jobs", namespace, group="batch"), job)
            metrics.API_WRITES.labels("create", "jobs").inc()
        except ApiError as error:
            if error.status != 409:
                raise
        log.info("task %s/%s: admitted from queue %s, Job %s", namespace, name, queue_name, job["metadata"]["name"])
        # kopf.event reads only apiVersion/kind/metadata, which a plain dict has too.
        kopf.event(cast(kopf.Body, task), type="Normal", reason="Started", message=f"admitted from queue {queue_name}; Job {job['metadata']['name']}")
        metrics.API_WRITES.labels("create", "events").inc()
        return True

    # ---------------------------------------------------------------------------------------
    # Queue status (batched)
    # ---------------------------------------------------------------------------------------
    async def publish_queue_status(self, namespace: str, name: str, views: Views) -> None:
        queue = views.queue(namespace, name)
        if queue is None:
            return
        running = list(views.running_jobs(namespace, name))
        pending = sum(1 for t in views.tasks(namespace)
                      if (t.get("status") or {}).get("phase") == Phase.QUEUED.value and (t.get("status") or {}).get("queue") == name)
        desired = {"pending": pending, "running": len(running), "runningGpus": sum(j.gpu for j in running),
                   "observedGeneration": queue.generation}
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

