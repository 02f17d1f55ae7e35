"""Request and response shapes of the REST API.

Requests embed the operator's own `TaskSpec`, so the gateway and the CRD accept the same specs.
Responses are flat views of the custom resources, built by the `*_view` functions from whatever
the API server holds (they never fail on a field they do not know).
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from kubetask.operator.naming import ANNOTATION_SUBMITTED_BY
from kubetask.resources import cron
from kubetask.resources.models import (
    MAX_GROUP_NAME, MAX_NAME, MAX_SCHEDULE_NAME, Condition, Failure, GroupCallback, ItemsStatus, Phase, Progress, RateLimit, RunRecord,
    TaskDefaults, TaskGroupSpec, TaskGroupStatus, TaskLimits, TaskScheduleSpec, TaskScheduleStatus, TaskSpec,
)
from kubetask.resources.models import WebhookDelivery

TERMINAL = frozenset(p.value for p in Phase if p.terminal)
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
MAX_LABELS = 32
MAX_ANNOTATIONS = 32
NEXT_RUNS = 5  # how many upcoming run times a TaskSchedule view lists


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class View(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------

class SubmitRequest(Strict):
    """A Task to create: its spec (the CRD's TaskSpec) and optional metadata."""

    name: str | None = Field(
        None, min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN,
        description="The Task's name. Default: `<type>-<random>` (or `<type>-<hash>` with an Idempotency-Key).",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, max_length=MAX_LABELS,
        description=f"Labels of the Task (at most {MAX_LABELS}; keys under kubetask.io/ are reserved).",
    )
    annotations: dict[str, str] = Field(
        default_factory=dict, max_length=MAX_ANNOTATIONS,
        description=f"Annotations of the Task (at most {MAX_ANNOTATIONS}; keys under kubetask.io/ are reserved).",
    )
    spec: TaskSpec = Field(..., description="What to run; see the Task CRD. cancel and rerun must be left unset.")


class BatchGroup(Strict):
    """The TaskGroup a batch creates: its items become the members (spec.size = the number of items)."""

    name: str = Field(
        ..., min_length=1, max_length=MAX_GROUP_NAME, pattern=NAME_PATTERN,
        description=f"The TaskGroup's name (at most {MAX_GROUP_NAME} characters: its callback Task is <name>-callback). "
                    "A name that is taken is 409.",
    )
    callback: GroupCallback | None = Field(
        None, description="A Task to run once the whole group has finished (Celery's chord); checked like a submission.")


class BatchRequest(Strict):
    items: list[SubmitRequest] = Field(
        ..., min_length=1, description="The Tasks to create, all or none (at most the gateway's batch_max_items, default 100: else 413).")
    group: BatchGroup | None = Field(
        None, description="Create a TaskGroup first and the items as its members (labelled kubetask.io/group, owned by the group). "
                          "Needs create on taskgroups besides create on tasks.")


class ObjectMetadataRequest(Strict):
    """The labels and annotations a created object (TaskGroup, TaskSchedule) may carry."""

    labels: dict[str, str] = Field(
        default_factory=dict, max_length=MAX_LABELS,
        description=f"Labels of the object (at most {MAX_LABELS}; keys under kubetask.io/ are reserved).",
    )
    annotations: dict[str, str] = Field(
        default_factory=dict, max_length=MAX_ANNOTATIONS,
        description=f"Annotations of the object (at most {MAX_ANNOTATIONS}; keys under kubetask.io/ are reserved).",
    )


class GroupRequest(ObjectMetadataRequest):
    """A TaskGroup to create empty: members join by the label kubetask.io/group=<name> (kubectl, or a batch)."""

    name: str = Field(
        ..., min_length=1, max_length=MAX_GROUP_NAME, pattern=NAME_PATTERN,
        description=f"The TaskGroup's name (at most {MAX_GROUP_NAME} characters: its callback Task is <name>-callback).",
    )
    spec: TaskGroupSpec = Field(default_factory=TaskGroupSpec, description="How many members to expect (size) and the callback.")


class ScheduleRequest(ObjectMetadataRequest):
    """A TaskSchedule to create: its spec (the CRD's TaskScheduleSpec) and optional metadata."""

    name: str = Field(
        ..., min_length=1, max_length=MAX_SCHEDULE_NAME, pattern=NAME_PATTERN,
        description=f"The TaskSchedule's name (at most {MAX_SCHEDULE_NAME} characters: its Tasks are named <schedule>-<suffix>).",
    )
    spec: TaskScheduleSpec = Field(..., description="When to create Tasks and from which template; see the TaskSchedule CRD.")


class RetryRequest(Strict):
    resource_version: str | None = Field(
        None, alias="resourceVersion", max_length=64,
        description="Optimistic concurrency: retry only if the Task still has this metadata.resourceVersion (else 409).",
    )


# ---------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------

class TaskView(View):
    """A Task as the gateway shows it: identity, spec, and the status fields flattened."""

    name: str
    namespace: str
    uid: str
    resource_version: str = Field(..., description="metadata.resourceVersion; send it back with retry for optimistic concurrency.")
    generation: int | None = None
    creation_timestamp: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    submitted_by: str | None = Field(None, description="The user who submitted the Task through the gateway.")
    spec: dict[str, Any] = Field(..., description="The Task's spec, as stored.")
    phase: str = Field(..., description="Pending, Queued, Running, Succeeded, Failed or Cancelled.")
    finished: bool = Field(..., description="True when the current run (spec.rerun) reached a terminal phase.")
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    queue: str | None = Field(None, description="The TaskQueue the Task was resolved to.")
    run: int = Field(0, description="The run the status describes (spec.rerun once the operator saw it).")
    attempts: int = 0
    job_name: str | None = None
    queued_time: str | None = None
    start_time: str | None = None
    completion_time: str | None = None
    progress: Progress | None = None
    result: Any = Field(None, description="The handler's result (its termination message, parsed as JSON when it is JSON).")
    last_failure: Failure | None = None
    items: ItemsStatus | None = Field(None, description="A fan-out Task (spec.items): item counts while it runs, per-item results and failures once it finished.")
    history: list[RunRecord] = Field(default_factory=list, description="Earlier runs (see retry).")
    webhooks: list[WebhookDelivery] = Field(default_factory=list, description="Webhook deliveries (the most recent): state, attempts, last result (see docs/webhooks.md).")


class TaskList(View):
    items: list[TaskView]
    continue_: str | None = Field(None, alias="continue", description="Pass as ?continue= for the next page; null on the last page.")
    remaining_item_count: int = Field(0, description="How many more items match after this page.")


class BatchItemResult(View):
    index: int
    status: int = Field(..., description="201 created, 200 an Idempotency-Key replay, 422/409/413 this item is at fault, "
                                         "424 valid but not created because another item failed.")
    name: str | None = None
    task: TaskView | None = None
    error: dict[str, Any] | None = Field(None, description="The error shape's `error` object for this item.")


class GroupProgress(View):
    finished: int = Field(0, description="Members that finished (Succeeded, Failed or Cancelled).")
    total: int = Field(0, description="Members expected: spec.size, or the members that exist when that is more (or size is unset).")
    percent: int = Field(0, description="finished / total, rounded down (0 while total is 0).")


class TaskGroupView(View):
    """A TaskGroup as the gateway shows it: identity, spec and status as stored, and a summary of both."""

    name: str
    namespace: str
    uid: str
    resource_version: str
    generation: int | None = None
    creation_timestamp: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    submitted_by: str | None = Field(None, description="The user who created the TaskGroup through the gateway.")
    spec: dict[str, Any] = Field(..., description="The TaskGroup's spec, as stored.")
    status: TaskGroupStatus = Field(..., description="The TaskGroup's status, as the operator wrote it ({} before it did).")
    phase: Literal["Pending", "Running", "Succeeded", "Failed"] = Field(
        ..., description="Pending: no member exists yet; Running: not Finished; then Succeeded or Failed (the Finished and Succeeded conditions).")
    finished: bool = Field(False, description="The Finished condition is True: every member, and the callback, finished.")
    reason: str | None = Field(None, description="The Finished condition's reason (Running, CallbackRunning, MembersFailed, Succeeded, ...).")
    message: str | None = Field(None, description="The Finished condition's message.")
    progress: GroupProgress = Field(..., description="How many of the expected members finished.")
    member_selector: str = Field(..., description="The label selector of the members (GET .../tasks?labelSelector=...).")


class TaskGroupList(View):
    items: list[TaskGroupView]
    continue_: str | None = Field(None, alias="continue", description="Pass as ?continue= for the next page; null on the last page.")


class BatchResponse(View):
    items: list[BatchItemResult]
    group: TaskGroupView | None = Field(None, description="The TaskGroup the batch created (with `group` in the request).")


class TaskTypeView(View):
    name: str
    namespace: str
    image: str | None = None
    parameters_schema: dict[str, Any] | None = Field(None, description="JSON Schema the Task parameters must satisfy.")
    defaults: TaskDefaults | None = None
    limits: TaskLimits | None = None
    gpu_resource_name: str | None = None
    creation_timestamp: str | None = None


class TaskQueueView(View):
    name: str
    namespace: str
    max_running: int
    max_gpus: int | None = None
    paused: bool = False
    rate_limit: RateLimit | None = Field(None, description="At most `starts` Task starts in any window of length `per`; null: no limit.")
    retention_seconds: int | None = Field(None, description="Default retention of the queue's finished Tasks.")
    pending: int = Field(0, description="Tasks waiting for admission (from the TaskQueue status, published by the operator).")
    running: int = Field(0, description="Tasks with an unfinished Job.")
    running_gpus: int = 0
    throttled: int = Field(0, description="Waiting Tasks held back only by the rate limit.")
    next_start_time: str | None = Field(None, description="When the rate limit lets the next Task start, while Tasks wait for it.")
    dead_letter: int = Field(0, description="Dead-lettered Tasks: their current run Failed (see GET .../deadletter).")
    creation_timestamp: str | None = None


class TaskScheduleView(View):
    """A TaskSchedule as the gateway shows it: identity, spec and status as stored, and the next run times."""

    name: str
    namespace: str
    uid: str
    resource_version: str
    generation: int | None = None
    creation_timestamp: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    submitted_by: str | None = Field(None, description="The user who created the TaskSchedule through the gateway.")
    spec: dict[str, Any] = Field(..., description="The TaskSchedule's spec, as stored.")
    status: TaskScheduleStatus = Field(..., description="The TaskSchedule's status, as the operator wrote it ({} before it did).")
    next_runs: list[str] = Field(default_factory=list, description=f"The next {NEXT_RUNS} run times (UTC, RFC 3339), computed by "
                                 "the gateway from spec.schedule and spec.timeZone; empty while suspended or if the schedule is invalid.")
    next_runs_message: str | None = Field(None, description="Why nextRuns is empty (suspended, or what is wrong with the schedule).")


class TaskScheduleList(View):
    items: list[TaskScheduleView]


# Dead letters (see deadletter.py for what counts as one).
REASON_PATTERN = r"^[A-Za-z][A-Za-z0-9]*$"  # a CamelCase condition reason
MAX_RERUN_NAMES = 1000  # the schema's bound; the gateway's rerun_max_items (default 100) is the one that applies


class DeadLetterItem(View):
    """A dead-lettered Task: its current run Failed for good."""

    name: str
    namespace: str
    uid: str
    resource_version: str
    queue: str | None = Field(None, description="The TaskQueue the Task was resolved to.")
    type: str = Field(..., description="The TaskType (spec.type).")
    reason: str = Field(..., description="Why it failed: the Ready condition's reason (BackoffLimitExceeded, PodFailurePolicy, "
                                         "DeadlineExceeded, InvalidParameters, ...).")
    exit_code: int | None = Field(None, description="The handler's last exit code (status.lastFailure.exitCode), when a pod ran.")
    message: str = Field("", description="status.lastFailure.message (the handler's termination message), else the condition's message.")
    invalid_spec: bool = Field(False, description="The Task was refused before it ran (an invalid spec or TaskType); a re-run checks it "
                                                  "again against the current TaskType.")
    attempts: int = Field(0, description="Pods the failed run started.")
    run: int = Field(0, description="The failed run (spec.rerun).")
    completion_time: str | None = Field(None, description="When the run failed (status.completionTime); the list is newest first by it.")
    creation_timestamp: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class DeadLetterList(View):
    items: list[DeadLetterItem]
    continue_: str | None = Field(None, alias="continue", description="Pass as ?continue= for the next page; null on the last page.")
    remaining_item_count: int = Field(0, description="How many more items match after this page.")


class DeadLetterFilter(Strict):
    """Which dead-lettered Tasks: every given field must match (an empty filter matches them all)."""

    queue: str | None = Field(None, min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN, description="Only Tasks of this TaskQueue.")
    type: str | None = Field(None, min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN, description="Only Tasks of this TaskType.")
    reason: str | None = Field(None, min_length=1, max_length=128, pattern=REASON_PATTERN, description="Only Tasks that failed for this reason.")
    label_selector: str | None = Field(None, alias="labelSelector", max_length=4096,
                                       description="A Kubernetes label selector, e.g. team=a,env in (prod,dev).")


class DeadLetterRerunRequest(Strict):
    """Exactly one of `names` and `filter`."""

    # deadletter.check enforces both, with precise messages; the document says so too (schemathesis).
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "oneOf": [{"required": ["names"], "properties": {"names": {"type": "array"}, "filter": {"type": "null"}}},
                  {"required": ["filter"], "properties": {"filter": {"type": "object"}, "names": {"type": "null"}}}]})

    names: list[Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN)]] | None = Field(
        None, min_length=1, max_length=MAX_RERUN_NAMES, json_schema_extra={"uniqueItems": True},
        description="These Tasks (at most the gateway's rerun_max_items, default 100); each must be dead-lettered.")
    filter: DeadLetterFilter | None = Field(
        None, description="Every dead-lettered Task that matches, newest first, up to the gateway's rerun_max_items per call "
                          "(`remaining` says how many more matched).")


class RerunOutcome(View):
    name: str
    outcome: Literal["Rerun", "Conflict", "NotDeadLettered", "NotFound", "Error"] = Field(
        ..., description="Rerun: spec.rerun was raised; Conflict: the Task kept changing; NotDeadLettered: its current run is not "
                         "Failed (succeeded, cancelled, running, or a re-run already requested); NotFound; Error: the API server failed.")
    message: str = ""
    rerun: int | None = Field(None, description="The new spec.rerun (the run that will start), when re-run.")
    resource_version: str | None = Field(None, description="The Task's resourceVersion after the patch, when re-run.")


class DeadLetterRerunResponse(View):
    items: list[RerunOutcome] = Field(..., description="One outcome per Task, in the order of `names`, or newest first for a filter.")
    summary: dict[str, int] = Field(default_factory=dict, description="How many Tasks had each outcome.")
    remaining: int = Field(0, description="With a filter: matching dead-lettered Tasks left for another call (the per-call bound).")


class TaskTypeList(View):
    items: list[TaskTypeView]


class TaskQueueList(View):
    items: list[TaskQueueView]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Views from stored objects
# ---------------------------------------------------------------------------------------------

def finished(task: dict[str, Any]) -> bool:
    """Terminal for the current run: a raised spec.rerun the operator has not seen yet is not finished."""
    spec, status = task.get("spec") or {}, task.get("status") or {}
    return status.get("phase") in TERMINAL and int(status.get("run", 0) or 0) == int(spec.get("rerun", 0) or 0)


def task_view(task: dict[str, Any]) -> dict[str, Any]:
    meta, spec, status = task.get("metadata") or {}, task.get("spec") or {}, task.get("status") or {}
    annotations = meta.get("annotations") or {}
    return {
        "name": meta.get("name", ""),
        "namespace": meta.get("namespace", ""),
        "uid": meta.get("uid", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
        "generation": meta.get("generation"),
        "creationTimestamp": meta.get("creationTimestamp"),
        "labels": meta.get("labels") or {},
        "annotations": annotations,
        "submittedBy": annotations.get(ANNOTATION_SUBMITTED_BY),
        "spec": spec,
        "phase": status.get("phase") or Phase.PENDING.value,
        "finished": finished(task),
        "conditions": status.get("conditions") or [],
        "observedGeneration": status.get("observedGeneration"),
        "queue": status.get("queue"),
        "run": status.get("run", 0),
        "attempts": status.get("attempts", 0),
        "jobName": status.get("jobName"),
        "queuedTime": status.get("queuedTime"),
        "startTime": status.get("startTime"),
        "completionTime": status.get("completionTime"),
        "progress": status.get("progress"),
        "result": status.get("result"),
        "lastFailure": status.get("lastFailure"),
        "items": status.get("items"),
        "history": status.get("history") or [],
        "webhooks": status.get("webhooks") or [],
    }


def tasktype_view(obj: dict[str, Any]) -> dict[str, Any]:
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    return {
        "name": meta.get("name", ""), "namespace": meta.get("namespace", ""), "image": spec.get("image"),
        "parametersSchema": spec.get("parametersSchema"), "defaults": spec.get("defaults"), "limits": spec.get("limits"),
        "gpuResourceName": spec.get("gpuResourceName"), "creationTimestamp": meta.get("creationTimestamp"),
    }


def taskqueue_view(obj: dict[str, Any]) -> dict[str, Any]:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    return {
        "name": meta.get("name", ""), "namespace": meta.get("namespace", ""),
        "maxRunning": spec.get("maxRunning", 10), "maxGpus": spec.get("maxGpus"), "paused": bool(spec.get("paused", False)),
        "rateLimit": spec.get("rateLimit"), "retentionSeconds": spec.get("retentionSeconds"),
        "pending": status.get("pending", 0), "running": status.get("running", 0), "runningGpus": status.get("runningGpus", 0),
        "throttled": status.get("throttled", 0), "nextStartTime": status.get("nextStartTime"),
        "deadLetter": status.get("deadLetter", 0), "creationTimestamp": meta.get("creationTimestamp"),
    }


def next_runs(spec: dict[str, Any], now: datetime, count: int = NEXT_RUNS) -> tuple[list[str], str | None]:
    """The schedule's next `count` run times after `now` (UTC, RFC 3339), or none and why."""
    if spec.get("suspend"):
        return [], "suspended: no Tasks are created until it is resumed"
    expression = spec.get("schedule")
    if not isinstance(expression, str):
        return [], "spec.schedule is missing"
    try:
        times = list(itertools.islice(cron.run_times(expression, spec.get("timeZone"), now), count))
    except (ValueError, OSError) as error:  # stored before a rule existed, or a zone this gateway's tzdata lacks
        return [], f"the schedule is invalid: {error}"
    return [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in times], None


def object_view(obj: dict[str, Any]) -> dict[str, Any]:
    """What every view of a kubetask object (schedule, group) starts with: identity, metadata,
    who submitted it, spec and status as stored."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return {
        "name": meta.get("name", ""),
        "namespace": meta.get("namespace", ""),
        "uid": meta.get("uid", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
        "generation": meta.get("generation"),
        "creationTimestamp": meta.get("creationTimestamp"),
        "labels": meta.get("labels") or {},
        "annotations": annotations,
        "submittedBy": annotations.get(ANNOTATION_SUBMITTED_BY),
        "spec": obj.get("spec") or {},
        "status": obj.get("status") or {},
    }


def taskschedule_view(obj: dict[str, Any], now: datetime) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    runs, message = next_runs(spec, now)
    return {
        **object_view(obj),
        "nextRuns": runs,
        "nextRunsMessage": message,
    }
