"""Everything the operator keeps in memory besides the indexes, in one place.

The indexes hold what the watches say: Tasks and Jobs in kubetask's own (informer.py, with each
object's resourceVersion and tombstone), TaskTypes, TaskQueues, TaskSchedules, TaskGroups and
TaskWebhooks in Kopf's. This holds
what only this process knows, each part bounded and dropped as soon as it is no longer needed:

- **written**: the status this process last wrote per Task, with the resourceVersion the write
  produced. An event or index entry older than our own write must not undo it: the *stale-read
  guard*. Dropped once the watch delivers that version (the watch is ordered).
- **validated**: Tasks (uid → generation) this process validated, so that a Job or pod event
  arriving before the first status write needs no re-fetch of the parameters: the *validation memo*.
- **reservations**: capacity reserved for a Job this process is creating and the Job index has
  not shown yet, per (task uid, run). They count as running in every admission decided meanwhile.
  Released on every path: the Job seen (any event of it), the create refused or failed, the Task
  cancelled, finished or deleted.
- **Job creation times**: when this process created each run's Job (wall clock, to the
  sub-second; the Job's creationTimestamp has whole seconds), for the status settle window.
  Dropped when the run is settled or the Task goes; after a restart the creationTimestamp is used.
- **bodies**: the latest full Task body a Task event brought, until a worker reconciles it (the
  work queue holds only keys; the index holds bodies without large parameters).
- **finished Jobs already deleted**: the last state of a finished Job whose DELETED event came
  (TTL, a user) before its Task's reconcile ran: the index forgets deleted objects at once, and
  without this the Task would read "Job gone" instead of the outcome. Dropped when the Task's run
  is settled or the Task goes.
- **waiting per queue**: how many Tasks its last admission round left waiting (not admitted, or
  refused), so a Job's end runs admission only where someone waits for the slot it freed: in a
  burst into a queue with room, a round per finished Job scanned every Task not yet marked
  running, for nothing. A Task that starts waiting asks for its own round; a queue not rounded
  yet counts as waiting.
- **rate limits**: per queue, how many waiting Tasks its rate limit holds back and when the next
  may start (for the queue's status), and per Task the earliest start its status last named, so
  a throttled Task's status is rewritten only when that estimate really moves. Not the limit
  itself: that is derived from recorded start times on every admission (it survives restarts).
- **dead-letter counts**: Failed Tasks per (namespace, queue), counted from the finished index
  once per half queue-status round and reused by every queue's status of that round.
- **pending pods**: the Pending pods of unfinished Jobs, from the periodic pending-pod check (the
  operator does not watch pods: a third of all events). Only for why a pod waits (Unschedulable);
  replaced wholesale by each check.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubetask.operator.status import JobSummary, PodSummary

MAX_REMEMBERED = 20_000


@dataclass(frozen=True)
class Reservation:
    namespace: str
    queue: str
    gpu: int


class Memory:
    def __init__(self) -> None:
        self._written: OrderedDict[str, tuple[int, dict[str, Any]]] = OrderedDict()
        self._validated: OrderedDict[str, int | None] = OrderedDict()
        self._reservations: dict[tuple[str, int], Reservation] = {}
        self._bodies: dict[str, Mapping[str, Any]] = {}
        self._job_created: dict[tuple[str, int], float] = {}  # (task uid, run) → when this process created its Job
        self._deleted_jobs: dict[tuple[str, int], JobSummary] = {}
        self._pending_pods: dict[tuple[str, str], tuple[PodSummary, ...]] = {}  # (namespace, Job name) → its Pending pods
        self._waiting: dict[tuple[str, str], int] = {}  # (namespace, queue) → Tasks its last round left waiting
        self._throttled: dict[tuple[str, str], tuple[int, float | None]] = {}  # (namespace, queue) → (count, next start)
        self._start_estimates: dict[str, float] = {}  # task uid → the earliest start its status names
        # (loop time counted, (namespace, queue) → Failed Tasks): see Controller._dead_letters
        self.dead_letter_counts: tuple[float, dict[tuple[str, str], int]] | None = None

    def sizes(self) -> dict[str, int]:
        return {"written": len(self._written), "validated": len(self._validated),
                "reservations": len(self._reservations), "job_created": len(self._job_created), "bodies": len(self._bodies), "pending_pods": len(self._pending_pods),
                "deleted_jobs": len(self._deleted_jobs), "throttled": len(self._throttled), "waiting": len(self._waiting),
                "start_estimates": len(self._start_estimates)}

    # -- stale-read guard ----------------------------------------------------------------------
    def freshest(self, task: dict[str, Any]) -> dict[str, Any]:
        """The body with our own latest status write if the body predates it."""
        written = self._newer_write(task)
        if written is None:
            return task
        version, status = written
        return {**task, "metadata": {**task["metadata"], "resourceVersion": str(version)}, "status": status}

    def freshest_status(self, task: dict[str, Any]) -> dict[str, Any]:
        written = self._newer_write(task)
        return written[1] if written is not None else (task.get("status") or {})

    def _newer_write(self, task: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        written = self._written.get(task["metadata"]["uid"])
        if written is None:
            return None
        try:
            seen = int(task["metadata"].get("resourceVersion") or 0)
        except ValueError:
            return None
        return written if seen < written[0] else None

    def remember_write(self, uid: str, response: dict[str, Any]) -> None:
        try:
            version = int(response["metadata"]["resourceVersion"])
        except (KeyError, ValueError):
            return
        self._written[uid] = (version, response.get("status") or {})
        self._written.move_to_end(uid)
        while len(self._written) > MAX_REMEMBERED:
            self._written.popitem(last=False)

    def is_own_write(self, uid: str, resource_version: str | None) -> bool:
        """Is this version of the Task the one our last status write produced (its watch echo)?"""
        written = self._written.get(uid)
        return written is not None and str(written[0]) == str(resource_version)

    def observed(self, uid: str, resource_version: str | None) -> None:
        """The watch delivered this Task at `resource_version`: a remembered write it has caught
        up with is no longer needed (no older body of it follows)."""
        written = self._written.get(uid)
        if written is None:
            return
        try:
            if int(resource_version or 0) >= written[0]:
                del self._written[uid]
        except ValueError:
            pass

    # -- validation memo -----------------------------------------------------------------------
    def remember_valid(self, uid: str, generation: int | None) -> None:
        self._validated[uid] = generation
        self._validated.move_to_end(uid)
        while len(self._validated) > MAX_REMEMBERED:
            self._validated.popitem(last=False)

    def is_validated(self, uid: str, generation: int | None) -> bool:
        return uid in self._validated and self._validated[uid] == generation

    # -- reservations --------------------------------------------------------------------------
    def reserve(self, uid: str, run: int, reservation: Reservation) -> None:
        self._reservations[(uid, run)] = reservation

    def is_reserved(self, uid: str, run: int) -> bool:
        return (uid, run) in self._reservations

    def release(self, uid: str, run: int) -> None:
        self._reservations.pop((uid, run), None)

    def reserved_in(self, namespace: str, queue: str) -> list[tuple[tuple[str, int], Reservation]]:
        return [(key, r) for key, r in self._reservations.items() if r.namespace == namespace and r.queue == queue]

    # -- Job creation times (the settle window) ----------------------------------------------
    def job_created(self, uid: str, run: int, at: float) -> None:
        self._job_created[(uid, run)] = at

    def job_created_at(self, uid: str, run: int) -> float | None:
        return self._job_created.get((uid, run))

    # -- bodies waiting for a worker ----------------------------------------------------------
    def put_body(self, body: Mapping[str, Any]) -> None:
        self._bodies[body["metadata"]["uid"]] = body

    def take_body(self, uid: str) -> Mapping[str, Any] | None:
        return self._bodies.pop(uid, None)

    def restore_body(self, body: Mapping[str, Any]) -> None:
        """A reconcile of this body failed: keep it for the retry unless a newer one arrived."""
        self._bodies.setdefault(body["metadata"]["uid"], body)

    # -- finished Jobs already deleted ------------------------------------------------------
    def job_deleted(self, job: JobSummary) -> None:
        if not job.running and job.task_uid:
            self._deleted_jobs[(job.task_uid, job.run)] = job

    def deleted_job(self, uid: str, run: int) -> JobSummary | None:
        return self._deleted_jobs.get((uid, run))

    def settled(self, uid: str, run: int) -> None:
        """The run is finished and its status written: nothing of it is needed any more."""
        self._reservations.pop((uid, run), None)
        self._deleted_jobs.pop((uid, run), None)
        self._job_created.pop((uid, run), None)

    # -- pending pods ------------------------------------------------------------------------
    def pending_pods(self, namespace: str, job_name: str) -> tuple[PodSummary, ...]:
        return self._pending_pods.get((namespace, job_name), ())

    def replace_pending_pods(self, found: dict[tuple[str, str], tuple[PodSummary, ...]]) -> set[tuple[str, str]]:
        """A check's findings replace what was known (it looked everywhere something waits);
        returns the Jobs whose pending pods changed."""
        old, self._pending_pods = self._pending_pods, dict(found)
        return {key for key in old.keys() | found.keys() if old.get(key) != found.get(key)}

    # -- waiting per queue -------------------------------------------------------------------------
    def set_waiting(self, namespace: str, queue: str, count: int) -> None:
        self._waiting[(namespace, queue)] = count

    def more_waiting(self, namespace: str, queue: str, count: int) -> None:
        self._waiting[(namespace, queue)] = self._waiting.get((namespace, queue), 0) + count

    def waiting_in(self, namespace: str, queue: str) -> bool:
        return self._waiting.get((namespace, queue), 1) > 0

    # -- rate limits -----------------------------------------------------------------------------
    def set_throttled(self, namespace: str, queue: str, count: int, next_start: float | None) -> None:
        if count:
            self._throttled[(namespace, queue)] = (count, next_start)
        else:
            self._throttled.pop((namespace, queue), None)

    def throttled(self, namespace: str, queue: str) -> tuple[int, float | None]:
        return self._throttled.get((namespace, queue), (0, None))

    def start_estimate(self, uid: str) -> float | None:
        return self._start_estimates.get(uid)

    def remember_start_estimate(self, uid: str, estimate: float | None) -> None:
        if estimate is None:
            self._start_estimates.pop(uid, None)
        else:
            self._start_estimates[uid] = estimate

    def deleted_jobs_in(self, namespace: str, queue: str) -> list[JobSummary]:
        """Finished Jobs already deleted whose Task is not reconciled yet: their starts still count
        for the queue's rate limit."""
        return [j for j in self._deleted_jobs.values() if j.namespace == namespace and j.queue == queue]

    # -- a Task is gone --------------------------------------------------------------------------
    def forget_task(self, uid: str) -> None:
        self._start_estimates.pop(uid, None)
        self._written.pop(uid, None)
        self._validated.pop(uid, None)
        self._bodies.pop(uid, None)
        for key in [k for k in self._reservations if k[0] == uid]:
            del self._reservations[key]
        for key in [k for k in self._deleted_jobs if k[0] == uid]:
            del self._deleted_jobs[key]
        for key in [k for k in self._job_created if k[0] == uid]:
            del self._job_created[key]
