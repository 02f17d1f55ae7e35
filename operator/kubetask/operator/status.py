"""How a Job and its pods become Task status. Pure functions, no I/O.

`summarize_job` / `summarize_pod` keep only what status needs (they are what the operator's
in-memory indexes hold), `observe_run` reads a run's outcome from them, and `task_status` turns a
verdict into the full status block: phase plus every condition, keeping lastTransitionTime when a
condition did not change, so recomputing an unchanged state yields an identical status and no write.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypedDict

from kubetask.operator import naming
from kubetask.resources.models import MAX_RESULT_BYTES, Phase

COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"  # the Job controller's annotation on Indexed Job pods
# Failure reasons that mean the spec itself is wrong (the Task was never accepted).
INVALID_REASONS = frozenset({"InvalidSpec", "InvalidParameters", "ExceedsLimits", "InvalidTaskType", "UnknownTaskType"})


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(timestamp: Any) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp, None when unset or unreadable."""
    if not timestamp:
        return None
    try:
        return datetime.fromisoformat(str(timestamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class PodSummary:
    name: str
    created: str
    phase: str
    deleting: bool = False
    exit_code: int | None = None
    terminated_reason: str = ""
    message: str = ""
    unschedulable: str | None = None
    job_name: str = ""
    index: int | None = None  # an Indexed Job's pod: its completion index, the item it ran (fan-out)


@dataclass(frozen=True)
class JobSummary:
    name: str
    namespace: str
    task_uid: str
    queue: str
    run: int
    gpu: int
    created: str
    finished: str | None = None  # "Complete" | "Failed": the Job is done and its pods are gone
    failing: bool = False  # FailureTarget: the Job will fail once its pods have terminated
    # SuccessCriteriaMet (Kubernetes 1.31+): the Job has succeeded and says Complete once its pods
    # have terminated, a moment later. Its outcome is known now: reading it here saves the
    # "Running" write a Job event in between would otherwise cost, for a status that is already over.
    succeeding: bool = False
    reason: str = ""
    message: str = ""
    active: int = 0
    ready: int = 0  # pods with the Ready condition: the handler is running (no pod watch needed)
    failed: int = 0
    succeeded: int = 0
    start_time: str | None = None
    completion_time: str | None = None
    # A fan-out (completionMode Indexed): one index per item. The index sets are the Job's own
    # compact text ("0-4,7"), bounded by the number of items.
    indexed: bool = False
    completions: int = 1
    completed_indexes: str = ""
    failed_indexes: str = ""
    # The Job's resourceVersion as last seen: its pods' final states were written before it (the
    # Job controller writes a Job's outcome after it saw its pods end), so a read of the pods
    # "not older than" it sees them (Controller._job_pods).
    resource_version: str = ""

    @property
    def running(self) -> bool:
        """Counts against its queue's capacity: until Complete or Failed, when its pods are gone."""
        return self.finished is None

    @property
    def succeeded_for_good(self) -> bool:
        return self.finished == "Complete" or (self.succeeding and self.finished is None)


def summarize_job(body: Mapping[str, Any]) -> JobSummary:
    meta, spec, status = body["metadata"], body.get("spec", {}), body.get("status", {})
    labels = meta.get("labels", {})
    finished, reason, message = None, "", ""
    failing = succeeding = False
    success_time = None
    for condition in status.get("conditions", []):
        if condition.get("status") != "True":
            continue
        if condition["type"] in ("Complete", "Failed"):
            finished, reason, message = condition["type"], condition.get("reason", ""), condition.get("message", "")
        elif condition["type"] == "FailureTarget" and finished is None:
            failing, reason, message = True, condition.get("reason", ""), condition.get("message", "")
        elif condition["type"] == "SuccessCriteriaMet":
            succeeding, success_time = True, condition.get("lastTransitionTime")
    uncounted = status.get("uncountedTerminatedPods") or {}
    gpu = 0
    for container in spec.get("template", {}).get("spec", {}).get("containers", []):
        for key, value in (container.get("resources", {}).get("limits") or {}).items():
            if key.endswith("gpu"):
                gpu += int(value)
    # A fan-out runs up to `parallelism` pods at once, each with these GPUs: the queue's GPU
    # budget counts them all (parallelism is 1 for every other Job).
    gpu *= max(1, int(spec.get("parallelism") or 1))
    return JobSummary(
        name=meta["name"], namespace=meta["namespace"], task_uid=labels.get(naming.LABEL_TASK_UID, ""),
        queue=labels.get(naming.LABEL_QUEUE, ""), run=int(labels.get(naming.LABEL_RUN, "0")), gpu=gpu,
        created=meta.get("creationTimestamp", ""), finished=finished, failing=failing, succeeding=succeeding and not failing,
        reason=reason, message=message,
        # Pods the Job controller saw finish but has not counted yet count already: no flicker
        # back to "pending" between a pod's end and the Job's Complete.
        active=int(status.get("active") or 0), ready=int(status.get("ready") or 0),
        failed=int(status.get("failed") or 0) + len(uncounted.get("failed") or ()),
        succeeded=int(status.get("succeeded") or 0) + len(uncounted.get("succeeded") or ()), start_time=status.get("startTime"),
        # Until Complete sets completionTime, the run ended when its success criteria were met.
        completion_time=status.get("completionTime") or (success_time if succeeding else None),
        indexed=spec.get("completionMode") == "Indexed", completions=int(spec.get("completions") or 1),
        completed_indexes=str(status.get("completedIndexes") or ""), failed_indexes=str(status.get("failedIndexes") or ""),
        resource_version=str(meta.get("resourceVersion") or ""),
    )


def summarize_pod(body: Mapping[str, Any]) -> PodSummary:
    meta, status = body["metadata"], body.get("status", {})
    exit_code, reason, message = None, "", ""
    for container in status.get("containerStatuses", []):
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            exit_code, reason, message = terminated.get("exitCode"), terminated.get("reason", ""), terminated.get("message", "")
    unschedulable = None
    for condition in status.get("conditions", []):
        if condition["type"] == "PodScheduled" and condition.get("status") == "False":
            unschedulable = condition.get("message") or condition.get("reason") or "Unschedulable"
    labels = meta.get("labels") or {}
    job_name = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name", "")
    index = (meta.get("annotations") or {}).get(COMPLETION_INDEX)
    return PodSummary(name=meta["name"], job_name=job_name, created=meta.get("creationTimestamp", ""), phase=status.get("phase", "Pending"),
                      deleting=bool(meta.get("deletionTimestamp")), exit_code=exit_code, terminated_reason=reason,
                      message=message[:MAX_RESULT_BYTES], unschedulable=unschedulable,
                      index=int(index) if index is not None and str(index).isdigit() else None)


@dataclass(frozen=True)
class Verdict:
    """Where a Task stands: the phase, the reason and message that explain it, and run facts."""

    phase: Phase
    reason: str
    message: str = ""
    attempts: int = 0
    result: Any = None
    failure: dict[str, Any] | None = None
    start_time: str | None = None
    completion_time: str | None = None
    job_name: str | None = None
    pod_running: bool = False
    items: dict[str, Any] | None = None  # status.items of a fan-out run (fanout.py)


class _RunFacts(TypedDict):
    """The Verdict fields every outcome of a run shares (see observe_run)."""

    attempts: int
    job_name: str
    start_time: str


def parse_result(message: str) -> Any:
    """The termination message as JSON when it is JSON, else the text itself."""
    if not message:
        return None
    try:
        return json.loads(message)
    except ValueError:
        return message


def _failure_from(pod: PodSummary | None, reason: str, message: str) -> dict[str, Any]:
    failure: dict[str, Any] = {"reason": reason, "message": message}
    if pod is not None:
        if pod.exit_code is not None:
            failure["exitCode"] = pod.exit_code
        if pod.message:
            failure["message"] = pod.message
        if pod.terminated_reason == "OOMKilled":
            # The one container reason that the Job's reason (BackoffLimitExceeded) hides and a
            # user must see: the kernel killed the handler over its memory limit. An OOM-killed
            # handler writes no termination message, so say it here.
            failure["reason"] = "OOMKilled"
            if not pod.message:
                failure["message"] = "the handler was killed for exceeding its memory limit (OOMKilled)"
    return failure


def observe_run(job: JobSummary, pods: list[PodSummary]) -> Verdict:
    """A run's verdict from its Job and pods (pods of this Job only)."""
    pods = sorted(pods, key=lambda p: (p.created, p.name))
    failed_pods = [p for p in pods if p.phase == "Failed"]
    last_failed = failed_pods[-1] if failed_pods else None
    # The Job starts its first pod at once: a Job that exists is at least one attempt (one write saved).
    attempts = max(1, job.active + job.failed + job.succeeded, len(pods))
    # startTime is when the Task was admitted, i.e. its Job created: stable from the Job's first
    # event on (the Job controller's own status.startTime comes an event later: a write saved).
    common: _RunFacts = {"attempts": attempts, "job_name": job.name, "start_time": job.created or job.start_time or ""}
    if job.succeeded_for_good:
        succeeded = [p for p in pods if p.phase == "Succeeded"]
        result = parse_result(succeeded[-1].message) if succeeded else None
        return Verdict(Phase.SUCCEEDED, "Succeeded", "the handler finished successfully", result=result,
                       completion_time=job.completion_time, **common)
    if job.finished == "Failed" or job.failing:
        # FailureTarget already decides the outcome; the Failed condition follows once the pods
        # are gone. Reporting it now saves a "Retrying" write that would be wrong anyway.
        reason = job.reason or "JobFailed"
        failure = _failure_from(last_failed, reason, job.message)
        explanation = {
            "BackoffLimitExceeded": f"failed {attempts} time(s), no retries left",
            "DeadlineExceeded": "ran past timeoutSeconds (activeDeadlineSeconds)",
            "PodFailurePolicy": "exited with a non-retryable exit code",
        }.get(reason, job.message or "the Job failed")
        if failure.get("exitCode") is not None:
            explanation += f"; last exit code {failure['exitCode']}"
        return Verdict(Phase.FAILED, reason, explanation, failure=failure, **common)
    # Still running. What the Job says (ready, failed) is enough; pod facts, where known, add the
    # exit code or why a pod cannot be scheduled. A pod that already succeeded reads as running
    # until the Job says Complete (a moment later): no intermediate status, no extra write.
    running = job.ready > 0 or job.succeeded > 0 or any((p.phase == "Running" and not p.deleting) or p.phase == "Succeeded" for p in pods)
    if running:
        if last_failed is not None:
            return Verdict(Phase.RUNNING, "Retrying", f"attempt {attempts} running after exit code {last_failed.exit_code}",
                           failure=_failure_from(last_failed, "PodFailed", ""), pod_running=True, **common)
        if job.failed:
            return Verdict(Phase.RUNNING, "Retrying", f"attempt {attempts} running after {job.failed} failed attempt(s)",
                           pod_running=True, **common)
        return Verdict(Phase.RUNNING, "PodRunning", "the handler is running", pod_running=True, **common)
    waiting = [p for p in pods if p.phase == "Pending" and not p.deleting]
    if waiting and waiting[-1].unschedulable:
        return Verdict(Phase.RUNNING, "Unschedulable", waiting[-1].unschedulable, **common)
    if last_failed is not None:
        return Verdict(Phase.RUNNING, "Retrying", f"waiting to retry after exit code {last_failed.exit_code} (the Job controller backs off)",
                       failure=_failure_from(last_failed, "PodFailed", ""), **common)
    if job.failed:
        return Verdict(Phase.RUNNING, "Retrying", f"waiting to retry after {job.failed} failed attempt(s) (the Job controller backs off)",
                       **common)
    return Verdict(Phase.RUNNING, "PodPending", "waiting for the handler pod to start", **common)


def condition(previous: dict[str, dict[str, Any]], type_: str, status: str, reason: str, message: str,
               generation: int | None, now: str) -> dict[str, Any]:
    """A metav1.Condition; lastTransitionTime stays when the status did not change (so an unchanged state writes nothing)."""
    old = previous.get(type_)
    transition = old["lastTransitionTime"] if old and old.get("status") == status else now
    condition = {"type": type_, "status": status, "reason": reason, "message": message[:32768], "lastTransitionTime": transition}
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def conditions_for(verdict: Verdict, previous_conditions: list[dict[str, Any]], generation: int | None, now: str) -> list[dict[str, Any]]:
    previous = {c["type"]: c for c in previous_conditions or []}
    phase, reason, message = verdict.phase, verdict.reason, verdict.message

    def cond(type_: str, status: str, reason_: str, message_: str = "") -> dict[str, Any]:
        return condition(previous, type_, status, reason_, message_, generation, now)

    terminal = phase.terminal
    invalid = reason in INVALID_REASONS
    accepted = cond("Accepted", "False", reason, message) if invalid else cond("Accepted", "True", "Valid", "the spec is valid and its TaskType exists")
    if phase is Phase.QUEUED:
        queued = cond("Queued", "True", reason, message)
    elif phase is Phase.PENDING or invalid or (phase is Phase.CANCELLED and verdict.job_name is None):
        queued = cond("Queued", "False", "NotAdmitted", "the Task was never admitted")
    else:
        queued = cond("Queued", "False", "Admitted", f"admitted; Job {verdict.job_name}")
    if phase is Phase.RUNNING:
        running = cond("Running", "True" if verdict.pod_running else "False", reason, message)
    elif phase is Phase.SUCCEEDED:
        running = cond("Running", "False", "Completed", "the handler finished")
    elif terminal:
        running = cond("Running", "False", reason, message)
    else:
        running = cond("Running", "False", "NotStarted", "the Task has not started")
    if phase is Phase.SUCCEEDED:
        succeeded = cond("Succeeded", "True", "Succeeded", message)
    elif terminal:
        succeeded = cond("Succeeded", "False", reason, message)
    else:
        succeeded = cond("Succeeded", "Unknown", "NotFinished", "the Task has not finished")
    finished = cond("Finished", "True", reason, message) if terminal else cond("Finished", "False", "NotFinished", "the Task has not finished")
    ready = cond("Ready", "True", "Succeeded", message) if phase is Phase.SUCCEEDED else cond("Ready", "False", reason, message)
    stalled_now = (terminal and phase is not Phase.SUCCEEDED) or reason == "UnknownTaskType"
    stalled = cond("Stalled", "True", reason, message) if stalled_now else cond("Stalled", "False", "Progressing", "")
    reconciling = cond("Reconciling", "False", reason, "") if terminal else cond("Reconciling", "True", reason, message)
    return [accepted, queued, running, succeeded, finished, ready, stalled, reconciling]


def task_status(verdict: Verdict, previous: dict[str, Any], *, generation: int | None, queue: str | None, run: int,
                now: datetime) -> dict[str, Any]:
    """The operator-owned part of status.  `progress` belongs to the handler and is left alone."""
    stamp = rfc3339(now)
    same_run = previous.get("run", 0) == run
    status: dict[str, Any] = {
        "phase": verdict.phase.value,
        "conditions": conditions_for(verdict, previous.get("conditions", []) if same_run else [], generation, stamp),
        "observedGeneration": generation,
        "queue": queue,
        "run": run,
        "attempts": verdict.attempts,
        "jobName": verdict.job_name,
        "queuedTime": (previous.get("queuedTime") if same_run else None) or (stamp if verdict.phase is Phase.QUEUED else None),
        "startTime": verdict.start_time or ((previous.get("startTime") if same_run else None)),
        "completionTime": (verdict.completion_time or (previous.get("completionTime") if same_run else None) or stamp)
        if verdict.phase.terminal else None,
        "result": verdict.result,
        "lastFailure": verdict.failure if verdict.failure is not None else (previous.get("lastFailure") if same_run else None),
        # A fan-out's item counts stay when the run is cancelled (or its Job vanished); a new run starts without.
        "items": verdict.items if verdict.items is not None else (previous.get("items") if same_run else None),
        "history": previous.get("history", []),
    }
    return status


def status_changed(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    return any(current.get(key) != value for key, value in desired.items())
