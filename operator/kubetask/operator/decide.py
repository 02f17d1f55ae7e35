"""Every rule of a Task's life in pure functions: (Task, TaskType, Job, pods, what this process
knows) → (desired status, action). No I/O; the controller executes what these return.

How a Job becomes status, in order (`decide`):

1. A Task that is terminal for its current run stays so (sticky); a Cancelled one whose Job still
   runs has that Job deleted.
2. A cancel request stops the Job, whatever else is true, and the Task is Cancelled.
3. A Job that exists for this run is followed to its end, whatever happened to the TaskType or
   the TaskQueue since it started: status never goes backwards. Its status (active, ready,
   failed, conditions) says where the run stands; once its outcome is known (Complete, Failed,
   or already SuccessCriteriaMet / FailureTarget), its pods are read once for the result (the
   termination message) and the last exit code. A Job younger than the settle window
   (`status_settle_seconds`) whose pod merely waits is not written yet: it is looked at again
   when the window ends, and a pod that started meanwhile is written as running at once.
4. A Job being created by this process (capacity reserved) is waited for.
5. A Task that was Running whose Job is gone from the index is checked with the API server, and
   only a confirmed 404 makes it Failed/JobDeleted.
6. A Task whose TaskType does not exist waits (GitOps applies arrive in any order).
7. A Task not validated yet is validated (parameters against the schema, resources against the
   limits): invalid → Failed with the reasons and no Job.
8. A Task with `spec.after` waits for those Tasks (`WaitingForDependencies`, naming the ones
   outstanding, also those that do not exist yet); one that Failed or was Cancelled fails it
   (`DependencyFailed`, unless dependencyPolicy is Finished); a cycle fails it (`DependencyCycle`).
9. Otherwise it waits for admission: its queue decides (admission.py).

`classify_refusal` says what a refused Job create means: retried, or the end of the Task.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubetask.operator.fanout import observe_fanout
from kubetask.operator.resolve import describe
from kubetask.resources.dependencies import dependency_cycle
from kubetask.operator.status import JobSummary, PodSummary, Verdict, observe_run, task_status
from kubetask.resources.models import Phase
from kubetask.resources.validation import Problem

MAX_HISTORY = 32
TERMINAL = frozenset(p.value for p in Phase if p.terminal)
STARTED_OR_SETTLED = TERMINAL | {Phase.RUNNING.value}
# Phases in the order a run moves through them; a run never moves to an earlier one.
PHASE_ORDER = {Phase.PENDING.value: 0, Phase.QUEUED.value: 1, Phase.RUNNING.value: 2}


class Need(enum.Enum):
    """Facts the decision needs that the caller did not have; the caller fetches and asks again."""

    PARAMETERS = "parameters"  # the full Task (the index leaves large parameters out)
    JOB_CHECK = "job-check"  # a GET of status.jobName: is the Job really gone?
    POD_FACTS = "pod-facts"  # the finished Job's pods, read once: the result and the last exit code


@dataclass(frozen=True)
class Upstream:
    """A Task named in spec.after, as the indexes show it."""

    name: str
    phase: str | None  # None: no such Task (yet)
    settled: bool = False  # finished for its current run
    reason: str = ""  # its Ready condition's reason


@dataclass(frozen=True)
class TaskFacts:
    """What is known about one Task when it is reconciled."""

    spec: dict[str, Any]
    status: dict[str, Any]  # the freshest status (our own last write if the body predates it)
    generation: int | None
    tasktype: dict[str, Any] | None  # the TaskType's spec, None if it does not exist
    job: JobSummary | None  # this run's Job, from the index
    pods: tuple[PodSummary, ...] = ()  # what is known of this Job's pods (see pods_fetched)
    pods_fetched: bool = False  # `pods` is a fresh read of all of them (else: only pending pods seen by the pending check)
    validated: bool = False  # validated before: the memo, or an Accepted condition for this generation
    problems: tuple[Problem, ...] | None = None  # validation outcome, None if not computed (see Need.PARAMETERS)
    reserved: bool = False  # this process is creating the Job (capacity reserved)
    job_gone: bool = False  # a GET of status.jobName answered 404
    upstreams: tuple[Upstream, ...] = ()  # the Tasks in spec.after
    cycle: tuple[str, ...] = ()  # a dependency cycle through this Task (names, in order), if there is one
    job_age: float | None = None  # seconds since this run's Job was created (None: not known)
    settle_seconds: float = 0.0  # a Job younger than this that only waits for its pod is not written yet (rule 3)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict | None = None  # the status to write (None: the status stays as it is)
    base: dict[str, Any] = field(default_factory=dict)  # the status the new one is built on (a rerun archives the last run)
    queue: str | None = None  # the queue the status names
    delete_job: str | None = None  # the Job to stop (SIGTERM, then the grace period)
    release: bool = False  # drop this run's capacity reservation
    admit: str | None = None  # the queue to run admission for (this Task waits in it)
    slot_freed: str | None = None  # the queue whose slot this run's end freed: admission runs if Tasks wait there
    need: Need | None = None
    recheck_after: float | None = None  # reconcile this Task again after these seconds (nothing changes meanwhile)


def current_run(spec: dict[str, Any]) -> int:
    return int(spec.get("rerun", 0))


def settled(spec: dict[str, Any], status: dict[str, Any]) -> bool:
    """Terminal for its current run."""
    return status.get("run", 0) == current_run(spec) and status.get("phase") in TERMINAL


def started_or_settled(spec: dict[str, Any], status: dict[str, Any]) -> bool:
    """Running or terminal for its current run: admission has nothing to do for it."""
    return status.get("run", 0) == current_run(spec) and status.get("phase") in STARTED_OR_SETTLED


def accepted_before(status: dict[str, Any], generation: int | None) -> bool:
    accepted = next((c for c in status.get("conditions", []) if c.get("type") == "Accepted"), None)
    return bool(accepted and accepted.get("status") == "True" and status.get("observedGeneration") == generation)


def archive_run(status: dict[str, Any]) -> dict[str, Any]:
    """A new run (spec.rerun rose): the finished run goes to history, the rest starts fresh."""
    history = list(status.get("history", []))
    if status.get("phase"):
        history.append({k: v for k, v in {
            "run": status.get("run", 0), "jobName": status.get("jobName") or "", "phase": status["phase"],
            "attempts": status.get("attempts", 0), "reason": (status.get("lastFailure") or {}).get("reason", ""),
            "startTime": status.get("startTime"), "completionTime": status.get("completionTime"),
        }.items() if v is not None})
    return {"history": history[-MAX_HISTORY:], "progress": None}


def base_status(spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    return status if status.get("run", 0) == current_run(spec) else archive_run(status)


def invalid_verdict(problems: tuple[Problem, ...] | list[Problem]) -> Verdict:
    message = describe(problems)
    return Verdict(Phase.FAILED, problems[0].reason, message, failure={"reason": problems[0].reason, "message": message})


def decide(facts: TaskFacts, queue: str) -> Decision:
    """The rules above. `queue` is the Task's effective queue (spec, else TaskType default, else
    the operator's default)."""
    spec, status, job = facts.spec, facts.status, facts.job
    base = base_status(spec, status)
    status_queue = status.get("queue") or queue
    running_job = job.name if job is not None and job.running else None

    if settled(spec, status):  # 1
        return Decision(delete_job=running_job if status.get("phase") == Phase.CANCELLED.value else None, release=True)

    if spec.get("cancel"):  # 2
        started = job is not None or bool(base.get("jobName"))
        verdict = Verdict(Phase.CANCELLED, "Cancelled",
                          "cancelled while running; the handler got SIGTERM" if started else "cancelled before it started",
                          attempts=job.active + job.failed + job.succeeded if job else int(base.get("attempts") or 0),
                          job_name=job.name if job else base.get("jobName"),
                          start_time=job.start_time if job else base.get("startTime"))
        return Decision(verdict=verdict, base=base, queue=status_queue, delete_job=running_job, release=True)

    if job is not None:  # 3
        if (job.finished or job.failing or job.succeeding) and not facts.pods_fetched:
            return Decision(need=Need.POD_FACTS)  # the outcome is known; its details are in the pods
        observe = observe_fanout if job.indexed else observe_run  # a fan-out (spec.items) is an Indexed Job
        verdict = observe(job, list(facts.pods))
        if verdict.reason == "PodPending" and base.get("phase") != Phase.RUNNING.value and \
                facts.job_age is not None and facts.job_age < facts.settle_seconds:
            # Settling: a pod that starts within the window is written as running straight away
            # (one write, not two); only a pod still waiting at its end is written as PodPending.
            return Decision(release=True, recheck_after=facts.settle_seconds - facts.job_age)
        return Decision(verdict=verdict, base=base, queue=job.queue or status_queue,
                        release=True, slot_freed=None if job.running else (job.queue or status_queue))

    if facts.reserved:  # 4
        return Decision()

    if base.get("phase") == Phase.RUNNING.value and base.get("jobName"):  # 5
        if not facts.job_gone:
            return Decision(need=Need.JOB_CHECK)
        verdict = Verdict(Phase.FAILED, "JobDeleted",
                          f"Job {base['jobName']} was deleted before it finished; raise spec.rerun to run again",
                          job_name=base["jobName"], attempts=int(base.get("attempts") or 0),
                          start_time=base.get("startTime"),
                          failure={"reason": "JobDeleted", "message": "the Job was deleted before it finished"})
        return Decision(verdict=verdict, base=base, queue=status_queue)

    if facts.tasktype is None:  # 6
        message = f"TaskType {spec['type']!r} does not exist; the Task waits until it is created"
        # A Task already Queued stays Queued (the phase never moves back); Accepted turns False.
        phase = Phase.QUEUED if base.get("phase") == Phase.QUEUED.value else Phase.PENDING
        return Decision(verdict=Verdict(phase, "UnknownTaskType", message), base=base, queue=spec.get("queue") or status.get("queue"))

    if not facts.validated:  # 7
        if facts.problems is None:
            return Decision(need=Need.PARAMETERS)
        if facts.problems:
            return Decision(verdict=invalid_verdict(facts.problems), base=base, queue=queue)

    if spec.get("after"):  # 8
        waiting = dependency_verdict(facts, base)
        if waiting is not None:
            return Decision(verdict=waiting, base=base, queue=queue)

    return Decision(admit=queue)  # 9: the queue writes Queued (or starts it at once: one write saved)


def dependencies_met(spec: dict[str, Any], upstreams: tuple[Upstream, ...]) -> bool:
    """Every Task in spec.after finished as the policy asks (Succeeded, or any end with Finished)."""
    anyway = spec.get("dependencyPolicy") == "Finished"
    return all(u.settled and (anyway or u.phase == Phase.SUCCEEDED.value) for u in upstreams)


def dependency_verdict(facts: TaskFacts, base: dict[str, Any]) -> Verdict | None:
    """Why a Task with spec.after does not start yet, or None when it may."""
    if facts.cycle:
        message = "dependency cycle: " + " → ".join(facts.cycle) + "; no Task in it can ever start"
        return Verdict(Phase.FAILED, "DependencyCycle", message, failure={"reason": "DependencyCycle", "message": message})
    if facts.spec.get("dependencyPolicy") != "Finished":
        failed = [u for u in facts.upstreams if u.settled and u.phase != Phase.SUCCEEDED.value]
        if failed:
            names = ", ".join(f"{u.name} ({u.phase}{': ' + u.reason if u.reason and u.reason != u.phase else ''})" for u in failed)
            message = f"a Task it runs after did not succeed: {names}; it runs again (a new run) once that one succeeds after a rerun"
            return Verdict(Phase.FAILED, "DependencyFailed", message, failure={"reason": "DependencyFailed", "message": message})
    if dependencies_met(facts.spec, facts.upstreams):
        return None
    anyway = facts.spec.get("dependencyPolicy") == "Finished"
    outstanding = [u for u in facts.upstreams if not (u.settled and (anyway or u.phase == Phase.SUCCEEDED.value))]
    # Names only, not their phases: the message (and so the status) changes only when the set does.
    existing = [u.name for u in outstanding if u.phase is not None]
    missing = [u.name for u in outstanding if u.phase is None]
    parts = ([f"waiting for {', '.join(existing)} to {'finish' if anyway else 'succeed'}"] if existing else []) + \
        ([f"{', '.join(missing)} {'does' if len(missing) == 1 else 'do'} not exist yet"] if missing else [])
    # A Task already Queued stays Queued: the phase never moves back.
    phase = Phase.QUEUED if base.get("phase") == Phase.QUEUED.value else Phase.PENDING
    return Verdict(phase, "WaitingForDependencies", "; ".join(parts))


def desired_status(decision: Decision, *, generation: int | None, run: int, now: datetime) -> dict[str, Any]:
    assert decision.verdict is not None
    desired = task_status(decision.verdict, decision.base, generation=generation, queue=decision.queue, run=run, now=now)
    if "progress" in decision.base and decision.base["progress"] is None:
        desired["progress"] = None  # a rerun clears the last run's progress
    return desired


def moves_backwards(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    """Would this write move the run to an earlier phase, or out of a terminal one? Never
    written: a guard under the rules above, so a rule bug cannot rewind what users saw."""
    if current.get("run", 0) != desired.get("run", 0):
        return False
    old, new = current.get("phase"), desired.get("phase")
    if old in TERMINAL:
        return bool(new != old)
    if old in PHASE_ORDER and new in PHASE_ORDER:
        return PHASE_ORDER[new] < PHASE_ORDER[old]
    return False


# ---------------------------------------------------------------------------------------------
# Refused Job creates
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Refusal:
    kind: str  # the metric label: Quota, AdmissionDenied, Forbidden, Throttled, ServerError, Timeout, Invalid, Other
    final: bool  # True: the Task fails (retrying cannot help); False: retried with backoff
    message: str
    retry_after: float = 0.0  # the server's Retry-After, seconds


ADMISSION_MARKERS = ("ValidatingAdmissionPolicy", "admission webhook", "denied request", "denied the request")


def classify_refusal(status: int | None, reason: str, message: str, details: dict[str, Any] | None = None) -> Refusal:
    """What a refused Job create means (status None: no answer, e.g. a time-out or a reset).

    The rule: only a Job the API server itself calls malformed (400, or 422 from schema
    validation) ends the Task, because the same Job will be refused forever (a bug, or a TaskType
    the cluster cannot run). Everything else is a state of the cluster that changes: quota (403
    "exceeded quota"), RBAC (403), admission policies and webhooks (even with 422: a policy can be
    fixed or removed), throttling (429), server errors (5xx) and time-outs are retried.
    """
    retry_after = float((details or {}).get("retryAfterSeconds") or 0)
    text = message or reason or ""
    if status is None:
        return Refusal("Timeout", False, text or "no answer from the API server")
    if any(marker in text for marker in ADMISSION_MARKERS):
        return Refusal("AdmissionDenied", False, text, retry_after)
    if status == 403 and "exceeded quota" in text:
        return Refusal("Quota", False, text, retry_after)
    if status == 403:
        return Refusal("Forbidden", False, text, retry_after)
    if status == 429:
        return Refusal("Throttled", False, text, retry_after or 1.0)
    if status >= 500:
        return Refusal("ServerError", False, text, retry_after)
    if status in (400, 422):
        return Refusal("Invalid", True, text)
    return Refusal("Other", False, text, retry_after)


def refused_verdict(refusal: Refusal) -> Verdict:
    if refusal.final:
        return Verdict(Phase.FAILED, "InvalidJob", f"the API server refused the Job as invalid: {refusal.message}"[:4096],
                       failure={"reason": "InvalidJob", "message": refusal.message[:4096]})
    return Verdict(Phase.QUEUED, "JobCreateRefused", f"creating the Job was refused ({refusal.kind}); retrying: {refusal.message}"[:4096])
