"""The resource shapes of kubetask: Task, TaskType and TaskQueue (group kubetask.io, v1alpha1).

This module is the one source of truth. The CRD YAML in `crds/` is generated from these models
(`make generate`, see `crdgen.py`) and a test fails when the two drift. The operator and the gateway
validate with the same models. Field descriptions become `kubectl explain` text, so each starts
with the field's JSON name. Constraints that only the API server can check (immutability,
transitions, quantities) are CEL rules attached with `cel(...)`; the Python side re-checks the ones
it can (quantities) so the gateway answers 422 before the API server is asked.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from kubetask.resources.quantity import parse_quantity

GROUP = "kubetask.io"
VERSION = "v1alpha1"
# f"{GROUP}/{VERSION}", spelled out (and Final) so it types as the Literal the models declare.
API_VERSION: Final = "kubetask.io/v1alpha1"
CATEGORY = "kubetask"

# Bounds. They are deliberate: every variable-length field has one, so a Task can never grow an
# object past etcd's limits, and a person gets a clear error instead of a slow failure.
MAX_NAME = 63  # Task names feed Job names and the job-name pod label (a 63-character label value).
MAX_PARAMETER_KEYS = 64
MAX_PARAMETERS_BYTES = 32 * 1024  # checked by the gateway and the operator; see docs/resources.md
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
MAX_RETRIES = 20
MAX_TTL_SECONDS = 365 * 24 * 3600
MAX_RESULT_BYTES = 4096  # the kubelet's termination-message limit
# Fan-out (spec.items): one pod per item through an Indexed Job. The items are stored in the Task
# and once more in a ConfigMap the pods mount (never copied into every pod), and every watcher of
# Tasks holds them in memory: hence a count and a size bound. 1,000 references (object-storage
# URLs, row ranges) fit in 128 KiB with room to spare; bigger inputs belong in storage.
MAX_ITEMS = 1000
MAX_ITEMS_BYTES = 128 * 1024  # checked by the gateway and the operator, like parameters
MAX_PARALLELISM = 1000
DEFAULT_PARALLELISM = 10  # pods at once when a fan-out Task sets no parallelism
# What status.items holds inline; the rest is counted (see docs/resources.md, "Fan-out").
MAX_INLINE_ITEM_RESULTS = 100
MAX_INLINE_RESULTS_BYTES = 32 * 1024
MAX_INLINE_ITEM_FAILURES = 100
MAX_ITEM_FAILURE_MESSAGE = 512
MAX_INDEXES_TEXT = 16 * 1024  # the Job's own "0-4,7" notation, over at most MAX_ITEMS indexes
MAX_AFTER = 32  # dependencies per Task
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
QUANTITY_PATTERN = r"^[+]?[0-9.]+([eE][-+]?[0-9]+|[mkMGTPE]i?|[KMGTPE]i|[mkMGTPE])?$"
# A Go duration (what CEL's duration() parses): one or more number+unit pairs, e.g. 90s, 1m, 1h30m.
# `[.]`, not an escaped dot: the same text is a Python regex and a CEL string literal.
GO_DURATION = r"^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$"
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"([0-9]+(?:[.][0-9]+)?)(ns|us|ms|s|m|h)")


def parse_duration(value: str) -> float:
    """Seconds in a Go duration string such as 1h30m (written here: the few lines Go's
    time.ParseDuration needs for the positive, sign-less form the CRD admits)."""
    if not re.fullmatch(GO_DURATION, value):
        raise ValueError(f"{value!r} is not a duration such as 30s, 1m, 1h or 1h30m")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(value))



def cel(*rules: tuple[str, str] | tuple[str, str, str]) -> dict[str, Any]:
    """JSON-schema extra carrying CEL rules: (rule, message) or (rule, message, fieldPath)."""
    validations = []
    for rule in rules:
        entry = {"rule": rule[0], "message": rule[1]}
        if len(rule) == 3:
            entry["fieldPath"] = rule[2]
        validations.append(entry)
    return {"x-kubernetes-validations": validations}


# isQuantity alone admits "-1Gi" and "0": the operator would fail such a Task only later. Zero is
# refused too, for requests and limits alike: a container limit of 0 means "no limit" to the
# kubelet, the opposite of what it says, and a TaskType limit of 0 would refuse every Task asking
# for any. (`&&` short-circuits, so quantity() only sees strings isQuantity accepted.)
QUANTITY_CEL = cel(("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))",
                    "must be a positive Kubernetes quantity such as 500m, 2, 512Mi or 4Gi"))


class Model(BaseModel):
    """Base: camelCase JSON names, unknown fields rejected (the API server does the same)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class StatusModel(Model):
    """Status shapes are written by kubetask itself; reading one never fails on a newer field."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


def _check_quantity(value: str | None) -> str | None:
    # The same rule as QUANTITY_CEL, so the gateway refuses what the API server would.
    if value is not None and parse_quantity(value) <= 0:  # parse_quantity raises naming the problem
        raise ValueError(f"{value!r} must be a positive quantity such as 500m, 2, 512Mi or 4Gi")
    return value


# --------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------


class Resources(Model):
    """resources requested by the handler container; requests equal limits (Guaranteed QoS)."""

    cpu: str | None = Field(
        None, max_length=32, description="cpu is the CPU limit and request, e.g. 500m or 2.",
        json_schema_extra=QUANTITY_CEL,
    )
    memory: str | None = Field(
        None, max_length=32, description="memory is the memory limit and request, e.g. 512Mi.",
        json_schema_extra=QUANTITY_CEL,
    )
    gpu: int | None = Field(
        None, ge=0, le=64,
        description="gpu is the number of GPUs (the TaskType's gpuResourceName) the pod gets.",
    )

    _cpu = field_validator("cpu")(_check_quantity)
    _memory = field_validator("memory")(_check_quantity)


class EnvVar(Model):
    """env is a literal environment variable given to the handler container."""

    name: str = Field(
        ..., min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="name of the environment variable.",
    )
    value: str = Field("", max_length=4096, description="value of the environment variable.")


class Toleration(Model):
    """tolerations let handler pods run on tainted nodes (as core/v1 Toleration)."""

    key: str | None = Field(None, max_length=253, description="key is the taint key to tolerate.")
    operator: Literal["Exists", "Equal"] | None = Field(None, description="operator is Exists or Equal.")
    value: str | None = Field(None, max_length=253, description="value is the taint value to match.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="effect is the taint effect to match; empty matches all."
    )
    toleration_seconds: int | None = Field(
        None, ge=0, description="tolerationSeconds bounds how long a NoExecute taint is tolerated."
    )


ExitCode = Field(ge=1, le=255)


# --------------------------------------------------------------------------------------------
# TaskType: the handler registry
# --------------------------------------------------------------------------------------------


class TaskDefaults(Model):
    """defaults fill in what a Task of this type leaves out."""

    queue: str | None = Field(None, max_length=MAX_NAME, pattern=DNS_LABEL, description="queue is the TaskQueue used when the Task names none.")
    priority: int | None = Field(None, ge=-1000, le=1000, description="priority used when the Task sets none.")
    resources: Resources | None = Field(None, description="resources used when the Task sets none.")
    timeout_seconds: int | None = Field(None, ge=1, le=MAX_TIMEOUT_SECONDS, description="timeoutSeconds used when the Task sets none.")
    retries: int | None = Field(None, ge=0, le=MAX_RETRIES, description="retries used when the Task sets none.")
    ttl_seconds_after_finished: int | None = Field(None, ge=0, le=MAX_TTL_SECONDS, description="ttlSecondsAfterFinished used when the Task sets none.")
    retention_seconds: int | None = Field(None, ge=0, le=MAX_TTL_SECONDS, description="retentionSeconds used when the Task sets none (before the TaskQueue's).")
    webhook: str | None = Field(None, max_length=MAX_NAME, pattern=DNS_LABEL, description="webhook names the TaskWebhook (in the same namespace) notified about Tasks of this type that name none themselves (before the TaskQueue's).")
    non_retryable_exit_codes: list[int] | None = Field(
        None, max_length=16, description="nonRetryableExitCodes used when the Task sets none.",
        json_schema_extra={"items": {"type": "integer", "minimum": 1, "maximum": 255}},
    )


class TaskLimits(Model):
    """limits are the most a Task of this type may ask for; a Task above them fails with ExceedsLimits."""

    cpu: str | None = Field(None, max_length=32, description="cpu is the largest CPU a Task may request.", json_schema_extra=QUANTITY_CEL)
    memory: str | None = Field(None, max_length=32, description="memory is the largest memory a Task may request.", json_schema_extra=QUANTITY_CEL)
    gpu: int | None = Field(None, ge=0, le=64, description="gpu is the most GPUs a Task may request.")
    timeout_seconds: int | None = Field(None, ge=1, le=MAX_TIMEOUT_SECONDS, description="timeoutSeconds is the longest timeout a Task may set.")
    retries: int | None = Field(None, ge=0, le=MAX_RETRIES, description="retries is the most retries a Task may set.")
    parallelism: int | None = Field(None, ge=1, le=MAX_PARALLELISM, description="parallelism is the most pods a fan-out Task (spec.items) may run at once.")

    _cpu = field_validator("cpu")(_check_quantity)
    _memory = field_validator("memory")(_check_quantity)


class TaskTypeSpec(Model):
    """spec registers a handler: which image runs Tasks of this type, and with what bounds."""

    image: str = Field(..., min_length=1, max_length=512, description="image is the handler's container image (pin it by digest in production).")
    command: list[str] | None = Field(None, max_length=32, description="command overrides the image's entrypoint.", json_schema_extra={"items": {"type": "string", "maxLength": 1024}})
    args: list[str] | None = Field(None, max_length=64, description="args are passed to the command.", json_schema_extra={"items": {"type": "string", "maxLength": 1024}})
    env: list[EnvVar] | None = Field(None, max_length=64, description="env are extra environment variables for the handler.")
    parameters_schema: dict[str, Any] | None = Field(
        None, description="parametersSchema is a JSON Schema (draft 2020-12) that every Task's parameters must satisfy; checked by the gateway and the operator.",
    )
    defaults: TaskDefaults | None = Field(None, description="defaults fill in what a Task of this type leaves out.")
    limits: TaskLimits | None = Field(None, description="limits are the most a Task of this type may ask for.")
    gpu_resource_name: str = Field("nvidia.com/gpu", max_length=253, description="gpuResourceName is the extended resource a Task's resources.gpu asks for.")
    node_selector: dict[str, str] | None = Field(None, max_length=32, description="nodeSelector for handler pods.", json_schema_extra={"additionalProperties": {"type": "string", "maxLength": 253}})
    tolerations: list[Toleration] | None = Field(None, max_length=32, description="tolerations for handler pods.")
    priority_class_name: str | None = Field(None, max_length=253, description="priorityClassName for handler pods.")
    service_account_name: str | None = Field(
        None, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="serviceAccountName for handler pods. Set it only when the handler needs API access (e.g. progress reports): the service-account token is mounted only then.",
    )
    report_progress: bool = Field(False, description="reportProgress mounts the service-account token so the handler SDK can patch the Task's status.progress (needs serviceAccountName with the kubetask-handler Role).")


class TaskType(Model):
    """TaskType registers a kind of work that Tasks may run."""

    api_version: Literal["kubetask.io/v1alpha1"] = Field(API_VERSION, alias="apiVersion")
    kind: Literal["TaskType"] = "TaskType"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TaskTypeSpec


# --------------------------------------------------------------------------------------------
# TaskQueue: admission
# --------------------------------------------------------------------------------------------


class RateLimit(Model):
    """rateLimit bounds how fast Tasks start: at most `starts` starts in any window of length `per`."""

    starts: int = Field(..., ge=1, le=100_000, description="starts is how many Tasks may start in any window of length per (also the largest burst).")
    per: str = Field(
        ..., min_length=2, max_length=32,
        description="per is the window, a duration such as 30s, 1m, 1h or 1h30m.",
        json_schema_extra=cel((f"self.matches('{GO_DURATION}') && duration(self) > duration('0s')",
                               "per must be a positive duration such as 30s, 1m, 1h or 1h30m")),
    )

    @field_validator("per")
    @classmethod
    def _positive_duration(cls, value: str) -> str:
        if parse_duration(value) <= 0:
            raise ValueError("per must be a positive duration such as 30s, 1m, 1h or 1h30m")
        return value

    @property
    def per_seconds(self) -> float:
        return parse_duration(self.per)


class TaskQueueSpec(Model):
    """spec sets how much of a queue's work may run at once, how fast it may start, and how long its finished Tasks stay."""

    max_running: int = Field(10, ge=0, le=100_000, description="maxRunning is how many Tasks of this queue may have a Job at once.")
    max_gpus: int | None = Field(None, ge=0, le=100_000, description="maxGpus bounds the GPUs all running Tasks of this queue ask for together; unset means no GPU budget.")
    paused: bool = Field(False, description="paused stops admitting Tasks; running Tasks finish.")
    rate_limit: RateLimit | None = Field(None, description="rateLimit bounds how fast Tasks start (a sliding window over recorded start times, so it holds across operator restarts); unset means no limit.")
    retention_seconds: int | None = Field(None, ge=0, le=MAX_TTL_SECONDS, description="retentionSeconds is the default retention of this queue's finished Tasks (after the Task's own and its TaskType's).")
    webhook: str | None = Field(None, max_length=MAX_NAME, pattern=DNS_LABEL, description="webhook names the TaskWebhook (in the same namespace) notified about this queue's Tasks when neither the Task nor its TaskType names one.")


class TaskQueueStatus(StatusModel):
    pending: int = Field(0, description="pending counts Tasks waiting for admission.")
    running: int = Field(0, description="running counts Tasks with an unfinished Job.")
    running_gpus: int = Field(0, description="runningGpus sums the GPUs of running Tasks.")
    throttled: int = Field(0, description="throttled counts waiting Tasks held back only by the rate limit.")
    dead_letter: int = Field(0, description="deadLetter counts the queue's dead-lettered Tasks: those whose current run Failed for good "
                             "(no retries left, a non-retryable exit code, the deadline, or a spec that is invalid), until they are "
                             "re-run or deleted.")
    next_start_time: datetime | None = Field(None, description="nextStartTime is when the rate limit lets the next Task start, while Tasks wait for it.")
    observed_generation: int | None = Field(None, description="observedGeneration is the spec generation these counts reflect.")


class TaskQueue(Model):
    """TaskQueue admits Tasks: a concurrency limit, a GPU budget and a pause switch."""

    api_version: Literal["kubetask.io/v1alpha1"] = Field(API_VERSION, alias="apiVersion")
    kind: Literal["TaskQueue"] = "TaskQueue"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TaskQueueSpec = Field(default_factory=TaskQueueSpec)
    status: TaskQueueStatus | None = None


# --------------------------------------------------------------------------------------------
# Task: one unit of work
# --------------------------------------------------------------------------------------------

# Fields of TaskSpec that may never change after creation. `cancel` and `rerun` are the two
# requests a user makes on a live Task; crdgen turns this list into CEL rules.
IMMUTABLE_TASK_FIELDS = (
    "type", "parameters", "queue", "priority", "resources", "timeoutSeconds", "retries",
    "nonRetryableExitCodes", "ttlSecondsAfterFinished", "after", "dependencyPolicy", "items", "parallelism", "maxFailedItems",
    "webhook",
)


# Fan-out fields that only mean something with items (CEL on every TaskWork: the Task's spec and
# a TaskSchedule's taskTemplate.spec). The Job API itself wants maxFailedIndexes <= completions.
FANOUT_CEL = cel(
    ("!has(self.parallelism) || has(self.items)", "parallelism applies only to a Task with items", ".parallelism"),
    ("!has(self.maxFailedItems) || has(self.items)", "maxFailedItems applies only to a Task with items", ".maxFailedItems"),
    ("!has(self.maxFailedItems) || !has(self.items) || self.maxFailedItems <= size(self.items)",
     "maxFailedItems must be at most the number of items", ".maxFailedItems"),
)


class TaskWork(Model):
    """What to run: the part of a Task spec that a TaskSchedule's taskTemplate carries too."""

    model_config = ConfigDict(json_schema_extra=FANOUT_CEL)

    type: str = Field(..., min_length=1, max_length=MAX_NAME, pattern=DNS_LABEL, description="type names the TaskType (in the Task's namespace) whose handler runs this Task.")
    parameters: dict[str, Any] | None = Field(
        None, description=f"parameters is the JSON object handed to the handler, validated against the TaskType's parametersSchema. At most {MAX_PARAMETER_KEYS} top-level keys and {MAX_PARAMETERS_BYTES} bytes serialized.",
        json_schema_extra={"maxProperties": MAX_PARAMETER_KEYS},
    )
    # Objects, not any JSON value: each item is its pod's own parameters (merged over the shared
    # ones), and the API server's CEL can only see (compare, count) a list whose elements have a type.
    items: list[dict[str, Any]] | None = Field(
        None, min_length=1, max_length=MAX_ITEMS,
        description=f"items fan the Task out: one pod per item (an Indexed Job). Each item is a JSON object, that pod's own parameters: "
        f"the handler gets parameters with the item's keys merged over them, each checked against the TaskType's parametersSchema. "
        f"At most {MAX_ITEMS} items, {MAX_PARAMETER_KEYS} keys each and {MAX_ITEMS_BYTES} bytes serialized in all. "
        f"retries then count per item, and nonRetryableExitCodes fail only that item.",
        json_schema_extra={"items": {"type": "object", "additionalProperties": True, "maxProperties": MAX_PARAMETER_KEYS}},
    )
    parallelism: int | None = Field(
        None, ge=1, le=MAX_PARALLELISM,
        description=f"parallelism is how many items' pods run at once (default {DEFAULT_PARALLELISM}, at most the number of items); only with items.",
    )
    max_failed_items: int | None = Field(
        None, ge=0, le=MAX_ITEMS,
        description="maxFailedItems stops the fan-out once more items than this have failed (the Job's maxFailedIndexes); unset runs every item. "
        "Either way the Task fails if any item failed. Only with items.",
    )
    queue: str | None = Field(None, max_length=MAX_NAME, pattern=DNS_LABEL, description="queue names the TaskQueue that admits this Task; default: the TaskType's default queue, else \"default\".")
    priority: int | None = Field(None, ge=-1000, le=1000, description="priority orders admission within the queue: higher first, then first come first served.")
    resources: Resources | None = Field(None, description="resources for the handler container; at most the TaskType's limits.")
    timeout_seconds: int | None = Field(None, ge=1, le=MAX_TIMEOUT_SECONDS, description="timeoutSeconds bounds the whole run (the Job's activeDeadlineSeconds), retries included.")
    retries: int | None = Field(None, ge=0, le=MAX_RETRIES, description="retries is how often a failed pod is replaced (the Job's backoffLimit); with items, per item (backoffLimitPerIndex).")
    non_retryable_exit_codes: list[int] | None = Field(
        None, max_length=16, description="nonRetryableExitCodes fail the Task at once, without retries (a podFailurePolicy FailJob rule). Pod disruptions never count as failures.",
        json_schema_extra={"items": {"type": "integer", "minimum": 1, "maximum": 255}},
    )
    ttl_seconds_after_finished: int | None = Field(None, ge=0, le=MAX_TTL_SECONDS, description="ttlSecondsAfterFinished deletes the finished Job and its pods after this many seconds; the Task and its result stay.")
    after: list[str] | None = Field(
        None, max_length=MAX_AFTER,
        description="after names other Tasks in the same namespace that must finish first: this Task starts only once all of them "
        "Succeeded (see dependencyPolicy). Names that do not exist yet are waited for; a cycle fails the Tasks in it (DependencyCycle).",
        json_schema_extra={"items": {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": DNS_LABEL},
                           "x-kubernetes-list-type": "set"},
    )
    dependency_policy: Literal["Succeeded", "Finished"] | None = Field(
        None, description="dependencyPolicy: Succeeded (the default) starts this Task once every Task in after Succeeded, and fails it "
        "(DependencyFailed) as soon as one of them Failed or was Cancelled; Finished starts it once every one finished, whatever the outcome.",
    )
    retention_seconds: int | None = Field(
        None, ge=0, le=MAX_TTL_SECONDS,
        description="retentionSeconds deletes the finished Task itself (its Job and pods go with it) this many seconds after it finished; "
        "default: the TaskType's defaults.retentionSeconds, else the TaskQueue's retentionSeconds, else the operator's default (7 days). "
        "Tasks applied by Argo CD or Flux are never deleted. It may be changed at any time, e.g. to keep a Task longer.")
    webhook: str | None = Field(
        None, max_length=MAX_NAME, pattern=DNS_LABEL,
        description="webhook names the TaskWebhook (in the same namespace) that is told, by a signed HTTPS POST, when this Task "
        "finishes (and, if the TaskWebhook asks, when it starts running); default: the TaskType's defaults.webhook, else the TaskQueue's webhook.")

    @field_validator("parameters")
    @classmethod
    def _bounded_parameters(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        if len(value) > MAX_PARAMETER_KEYS:
            raise ValueError(f"parameters has {len(value)} keys; at most {MAX_PARAMETER_KEYS} are allowed")
        from kubetask.resources.validation import parameters_size

        size = parameters_size(value)
        if size > MAX_PARAMETERS_BYTES:
            raise ValueError(f"parameters are {size} bytes serialized; at most {MAX_PARAMETERS_BYTES} are allowed")
        return value

    @field_validator("non_retryable_exit_codes")
    @classmethod
    def _exit_codes(cls, value: list[int] | None) -> list[int] | None:
        for code in value or []:
            if not 1 <= code <= 255:
                raise ValueError(f"exit code {code} is outside 1..255")
        return value

    @field_validator("items")
    @classmethod
    def _bounded_items(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if value is None:
            return value
        from kubetask.resources.validation import serialized_size

        for index, item in enumerate(value):
            if len(item) > MAX_PARAMETER_KEYS:
                raise ValueError(f"item {index} has {len(item)} keys; at most {MAX_PARAMETER_KEYS} are allowed")
        size = serialized_size(value)
        if size > MAX_ITEMS_BYTES:
            raise ValueError(f"items are {size} bytes serialized; at most {MAX_ITEMS_BYTES} are allowed")
        return value

    # The same rules as FANOUT_CEL, for the gateway's 422 (the API server applies the CEL ones).
    # `items` is validated first (field order): absent from info.data only when it was invalid.
    @field_validator("parallelism", "max_failed_items")
    @classmethod
    def _only_with_items(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None or "items" not in info.data:
            return value
        items = info.data["items"]
        name = "parallelism" if info.field_name == "parallelism" else "maxFailedItems"
        if items is None:
            raise ValueError(f"{name} applies only to a Task with items")
        if name == "maxFailedItems" and value > len(items):
            raise ValueError(f"maxFailedItems must be at most the number of items ({len(items)})")
        return value

    @field_validator("after")
    @classmethod
    def _after(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if not re.fullmatch(DNS_LABEL, name) or len(name) > MAX_NAME:
                raise ValueError(f"{name!r} is not a Task name (a DNS label of at most {MAX_NAME} characters)")
        if value is not None and len(set(value)) != len(value):
            raise ValueError("names a Task more than once")
        return value


class TaskSpec(TaskWork):
    """spec says what to run. It is immutable after creation except the cancel and rerun requests (and retentionSeconds)."""

    cancel: bool = Field(False, description="cancel requests cancellation: a queued Task never starts, a running one gets SIGTERM. It can only go from false to true (or back to false together with a rerun).")
    rerun: int = Field(0, ge=0, le=1000, description="rerun requests a new run of a finished Task: raise it by one to re-run a Failed or Cancelled Task. Earlier runs stay in status.history.")


class Phase(str, enum.Enum):
    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED)


class Condition(StatusModel):
    """A metav1.Condition."""

    type: str = Field(..., max_length=316, description="type of the condition: Accepted, Queued, Running, Succeeded, Finished, Ready, Stalled, Reconciling.")
    status: Literal["True", "False", "Unknown"] = Field(..., description="status is True, False or Unknown.")
    reason: str = Field(..., max_length=1024, description="reason is a CamelCase word for programs.")
    message: str = Field("", max_length=32768, description="message explains the condition to a person.")
    last_transition_time: datetime = Field(..., description="lastTransitionTime is when status last changed.")
    observed_generation: int | None = Field(None, ge=0, description="observedGeneration is the spec generation the condition reflects.")


class Progress(StatusModel):
    percent: int = Field(0, ge=0, le=100, description="percent done, 0-100, as the handler reported it.")
    message: str = Field("", max_length=1024, description="message the handler gave with its progress.")
    updated_at: datetime | None = Field(None, description="updatedAt is when the handler reported it.")


class Failure(StatusModel):
    exit_code: int | None = Field(None, description="exitCode of the failed container, when it exited.")
    reason: str = Field("", max_length=1024, description="reason the Task failed, e.g. BackoffLimitExceeded, DeadlineExceeded, PodFailurePolicy.")
    message: str = Field("", max_length=4096, description="message: the failed container's termination message or the Job's explanation.")


class RunRecord(StatusModel):
    run: int = Field(..., ge=0, description="run is the spec.rerun value of this run.")
    job_name: str = Field("", max_length=253, description="jobName of the run's Job, if it got one.")
    phase: Phase = Field(..., description="phase the run ended in.")
    attempts: int = Field(0, ge=0, description="attempts is how many pods the run started.")
    reason: str = Field("", max_length=1024, description="reason the run ended so.")
    start_time: datetime | None = None
    completion_time: datetime | None = None


class ItemResult(StatusModel):
    index: int = Field(..., ge=0, description="index of the item in spec.items.")
    result: Any = Field(None, description="result is the item's termination message, parsed as JSON when it is JSON.")


class ItemFailure(StatusModel):
    index: int = Field(..., ge=0, description="index of the failed item in spec.items.")
    exit_code: int | None = Field(None, description="exitCode of the item's last failed pod, when it exited.")
    reason: str = Field("", max_length=1024, description="reason of the last failure, e.g. Error or OOMKilled.")
    message: str = Field("", max_length=MAX_ITEM_FAILURE_MESSAGE, description="message: the start of the last failed pod's termination message.")


class ItemsStatus(StatusModel):
    """items sums up a fan-out run (spec.items): counts from the Job, per-item outcomes from its pods."""

    total: int = Field(0, ge=0, description="total is the number of items.")
    succeeded: int = Field(0, ge=0, description="succeeded counts the items whose pod succeeded.")
    failed: int = Field(0, ge=0, description="failed counts the items that failed for good (retries used up, or a non-retryable exit code).")
    completed_indexes: str = Field("", max_length=MAX_INDEXES_TEXT, description="completedIndexes are the succeeded items' indexes, as the Job writes them (e.g. 0-4,7).")
    failed_indexes: str = Field("", max_length=MAX_INDEXES_TEXT, description="failedIndexes are the failed items' indexes (e.g. 3,7): spec.items[i] for each is what to run again.")
    results: list[ItemResult] = Field(default_factory=list, max_length=MAX_INLINE_ITEM_RESULTS,
                                      description=f"results of the first succeeded items, by index: at most {MAX_INLINE_ITEM_RESULTS} and {MAX_INLINE_RESULTS_BYTES} bytes; set when the run has finished.")
    results_omitted: int = Field(0, ge=0, description="resultsOmitted counts succeeded items whose result is not in results (over the bound, or their pod was gone).")
    failures: list[ItemFailure] = Field(default_factory=list, max_length=MAX_INLINE_ITEM_FAILURES,
                                        description=f"failures of the first failed items, by index (at most {MAX_INLINE_ITEM_FAILURES}); set when the run has finished.")
    failures_omitted: int = Field(0, ge=0, description="failuresOmitted counts failed items not in failures.")


# The states of one webhook delivery (status.webhooks[].state). Pending and Waiting are retried;
# the other three are final for that delivery.
WebhookState = Literal["Pending", "Waiting", "Delivered", "Failed", "Refused"]
WebhookEvent = Literal["Running", "Succeeded", "Failed", "Cancelled"]
MAX_WEBHOOK_RECORDS = 16  # status.webhooks: four events for the current run and a few earlier ones


class WebhookDelivery(StatusModel):
    """One webhook delivery: an event of one run, sent to one TaskWebhook."""

    event: WebhookEvent = Field(..., description="event is Running, Succeeded, Failed or Cancelled.")
    run: int = Field(0, ge=0, description="run is the spec.rerun value of the run the event belongs to.")
    webhook: str = Field(..., max_length=MAX_NAME, description="webhook is the TaskWebhook it is sent to (fixed at the first attempt).")
    delivery_id: str = Field(..., max_length=64, description="deliveryId is the Kubetask-Delivery header: the same for every attempt of this delivery, so receivers can de-duplicate.")
    state: WebhookState = Field(..., description="state: Pending (retried after nextAttemptTime), Waiting (for its TaskWebhook or Secret), "
                                "Delivered (a 2xx answer), Failed (maxAttempts used up), Refused (the destination is not allowed; not retried).")
    attempts: int = Field(0, ge=0, description="attempts is how many times it was sent.")
    last_attempt_time: datetime | None = Field(None, description="lastAttemptTime is when it was last sent.")
    next_attempt_time: datetime | None = Field(None, description="nextAttemptTime is when a Pending delivery is sent again.")
    last_result: str = Field("", max_length=1024, description="lastResult is the outcome of the last attempt: the HTTP status, or why it could not be sent.")


class TaskStatus(StatusModel):
    """status is written by the operator (and progress by the handler SDK)."""

    phase: Phase = Field(Phase.PENDING, description="phase summarises the conditions for people: Pending, Queued, Running, Succeeded, Failed or Cancelled.")
    conditions: list[Condition] = Field(default_factory=list, max_length=16, description="conditions are the API contract (see docs).")
    observed_generation: int | None = Field(None, description="observedGeneration is the spec generation this status reflects.")
    queue: str | None = Field(None, max_length=MAX_NAME, description="queue is the TaskQueue the Task was resolved to.")
    run: int = Field(0, ge=0, description="run is the spec.rerun value the status describes.")
    attempts: int = Field(0, ge=0, description="attempts is how many pods this run started.")
    job_name: str | None = Field(None, max_length=253, description="jobName is the Job running this run.")
    queued_time: datetime | None = Field(None, description="queuedTime is when the Task started waiting for admission.")
    start_time: datetime | None = Field(None, description="startTime is when the Task was admitted and its Job created.")
    completion_time: datetime | None = Field(None, description="completionTime is when the Task reached a terminal phase.")
    progress: Progress | None = Field(None, description="progress the handler reported.")
    result: Any = Field(None, description="result is the handler's return value: its termination message, parsed as JSON when it is JSON.")
    last_failure: Failure | None = Field(None, description="lastFailure explains the most recent failure.")
    items: ItemsStatus | None = Field(None, description="items sums up a fan-out run (spec.items): counts while it runs, per-item results and failures once it has finished.")
    history: list[RunRecord] = Field(default_factory=list, max_length=32, description="history lists earlier runs (see spec.rerun).")
    webhooks: list[WebhookDelivery] = Field(
        default_factory=list, max_length=MAX_WEBHOOK_RECORDS,
        description=f"webhooks records the webhook deliveries (the {MAX_WEBHOOK_RECORDS} most recent): attempts, outcome, when the next attempt is due.")


class Task(Model):
    """Task is one unit of work: a registered type and its parameters, run as a Job."""

    api_version: Literal["kubetask.io/v1alpha1"] = Field(API_VERSION, alias="apiVersion")
    kind: Literal["Task"] = "Task"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TaskSpec
    status: TaskStatus | None = None


# --------------------------------------------------------------------------------------------
# TaskSchedule: periodic Tasks
# --------------------------------------------------------------------------------------------

# Schedule names leave room for the "-<minutes since the epoch>" suffix of the Tasks they create
# (as CronJob's 52): MAX_NAME - 1 - 10 digits.
MAX_SCHEDULE_NAME = 52
CRON_MACROS: Final = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}


def _cron_field(value: str) -> str:
    """One cron field: `*` or a value or range, an optional /step, comma-separated."""
    element = f"([*]|({value})(-({value}))?)(/[1-9][0-9]?)?"
    return f"{element}(,{element})*"


_MONTHS = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC"
_DAYS = "SUN|MON|TUE|WED|THU|FRI|SAT"
# The five fields with their ranges: minute 0-59, hour 0-23, day of month 1-31, month 1-12 or a
# name, day of week 0-7 (0 and 7 are Sunday) or a name. No backslashes, so the same text is a
# Python regex and a CEL string literal; names in any case.
CRON_PATTERN: Final = "(?i)^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|" + "[ ]+".join(
    _cron_field(v) for v in ("[0-5]?[0-9]", "[01]?[0-9]|2[0-3]", "0?[1-9]|[12][0-9]|3[01]", f"0?[1-9]|1[0-2]|{_MONTHS}", f"[0-7]|{_DAYS}")
) + ")$"
CRON_MESSAGE = ("schedule must be five cron fields (minute 0-59, hour 0-23, day of month 1-31, month 1-12 or JAN-DEC, "
                "day of week 0-7 or SUN-SAT; each *, a value, a range a-b, with an optional /step, comma-separated) "
                "or a macro: @yearly, @monthly, @weekly, @daily, @hourly")
# Go's time.LoadLocation (which the API server's CEL uses) errors on an unknown name, so the
# rule fails for one and passes for every IANA zone. Python re-checks with zoneinfo.
TIME_ZONE_RULE = "timestamp('2000-01-01T00:00:00Z').getHours(self) >= 0"


class TaskTemplateMetadata(Model):
    """metadata stamped on every Task the schedule creates."""

    labels: dict[str, str] | None = Field(None, max_length=64, description="labels for the created Tasks.",
                                           json_schema_extra={"additionalProperties": {"type": "string", "maxLength": 63}})
    annotations: dict[str, str] | None = Field(None, max_length=64, description="annotations for the created Tasks.",
                                                json_schema_extra={"additionalProperties": {"type": "string", "maxLength": 4096}})


class TaskTemplate(Model):
    """taskTemplate is the Task each run creates, like a CronJob's jobTemplate."""

    metadata: TaskTemplateMetadata | None = Field(None, description="metadata: labels and annotations for the created Tasks.")
    spec: TaskWork = Field(..., description="spec of the created Tasks: type, parameters, queue, priority, resources, timeoutSeconds, retries, ...")


class TaskScheduleSpec(Model):
    """spec says when to create a Task, from which template, and what to do when runs overlap or were missed."""

    schedule: str = Field(
        ..., min_length=1, max_length=128,
        description="schedule is a five-field cron expression (minute hour day-of-month month day-of-week) or a macro such as @hourly or @daily.",
        json_schema_extra=cel((f"self.matches('{CRON_PATTERN}')", CRON_MESSAGE)),
    )
    time_zone: str | None = Field(
        None, min_length=1, max_length=64,
        description="timeZone is the IANA time zone (e.g. Europe/Berlin) the schedule is read in; default UTC.",
        json_schema_extra=cel((TIME_ZONE_RULE, "timeZone must be an IANA time zone name such as UTC or Europe/Berlin")),
    )
    task_template: TaskTemplate = Field(..., description="taskTemplate is the Task each run creates.")
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = Field(
        "Allow", description="concurrencyPolicy, as CronJob's: Allow runs overlap; Forbid skips a run while the previous one is unfinished; Replace cancels the unfinished one and starts the new one.",
    )
    starting_deadline_seconds: int | None = Field(
        None, ge=1, le=MAX_TTL_SECONDS,
        description="startingDeadlineSeconds: a run that could not be created within this many seconds of its time is skipped and counted in status.missedRuns; unset means a late run is still created (at most one catch-up run, see docs).",
    )
    suspend: bool = Field(False, description="suspend stops creating Tasks; running ones go on. Runs due while suspended are skipped, not made up.")
    successful_history_limit: int = Field(3, ge=0, le=1000, description="successfulHistoryLimit is how many Succeeded Tasks of this schedule are kept; older ones are deleted.")
    failed_history_limit: int = Field(1, ge=0, le=1000, description="failedHistoryLimit is how many Failed or Cancelled Tasks of this schedule are kept; older ones are deleted.")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from kubetask.resources.cron import parse_schedule

        parse_schedule(value)  # raises ValueError naming the problem
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            from kubetask.resources.cron import zone

            zone(value)
        return value


class ObjectReference(StatusModel):
    name: str = Field(..., max_length=253, description="name of the Task.")
    uid: str = Field("", max_length=64, description="uid of the Task.")


class TaskScheduleStatus(StatusModel):
    """status is written by the operator."""

    last_schedule_time: datetime | None = Field(None, description="lastScheduleTime is the scheduled time of the latest run created (or skipped on purpose).")
    last_successful_time: datetime | None = Field(None, description="lastSuccessfulTime is when the latest Succeeded Task of this schedule finished.")
    next_schedule_time: datetime | None = Field(None, description="nextScheduleTime is the next time a Task is due (unset while suspended).")
    active: list[ObjectReference] = Field(default_factory=list, max_length=100, description="active lists the schedule's unfinished Tasks (the 100 newest).")
    active_count: int = Field(0, ge=0, description="activeCount is how many of the schedule's Tasks are unfinished.")
    missed_runs: int = Field(0, ge=0, description="missedRuns counts the scheduled times that got no Task: the operator was down past their deadline, or Forbid skipped them.")
    observed_generation: int | None = Field(None, description="observedGeneration is the spec generation this status reflects.")
    conditions: list[Condition] = Field(default_factory=list, max_length=8, description="conditions: Ready (the schedule is valid and the last run was created) and Suspended.")


class TaskSchedule(Model):
    """TaskSchedule creates Tasks on a cron schedule, like a CronJob creates Jobs."""

    api_version: Literal["kubetask.io/v1alpha1"] = Field(API_VERSION, alias="apiVersion")
    kind: Literal["TaskSchedule"] = "TaskSchedule"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TaskScheduleSpec
    status: TaskScheduleStatus | None = None


# --------------------------------------------------------------------------------------------
# TaskGroup: many Tasks followed as one, with a callback (Celery's group and chord)
# --------------------------------------------------------------------------------------------

# The callback's name is <group>-callback (a pure function of the group: created at most once).
MAX_GROUP_NAME = MAX_NAME - len("-callback")


class GroupCallback(Model):
    """callback is the Task created once the whole group has finished (Celery's chord)."""

    when: Literal["Succeeded", "Finished"] = Field(
        "Succeeded", description="when: Succeeded (the default) creates the callback only if every member Succeeded (else the group is Failed "
        "and no callback runs); Finished creates it once every member finished, whatever the outcome.")
    task_template: TaskTemplate = Field(
        ..., description="taskTemplate is the callback Task. Its parameters get a key `group` added: the group's name, the counts, and each "
        "member's name, phase and (while they fit in the parameters' bound) result.")


class TaskGroupSpec(Model):
    """spec: which Tasks belong (those labelled kubetask.io/group=<name>), how many to expect, and the callback."""

    size: int | None = Field(
        None, ge=1, le=10_000,
        description="size is how many members the group has. Set it when members are created one by one: the group is finished only once "
        "this many exist and all have finished. Unset: once at least one exists and all that exist have finished.")
    callback: GroupCallback | None = Field(None, description="callback is a Task to run when the group has finished.")


class GroupCounts(StatusModel):
    total: int = Field(0, ge=0, description="total counts the members that exist.")
    pending: int = Field(0, ge=0, description="pending counts members not yet queued.")
    queued: int = Field(0, ge=0, description="queued counts members waiting for admission.")
    running: int = Field(0, ge=0, description="running counts members with a Job.")
    succeeded: int = Field(0, ge=0, description="succeeded counts members that Succeeded.")
    failed: int = Field(0, ge=0, description="failed counts members that Failed.")
    cancelled: int = Field(0, ge=0, description="cancelled counts members that were Cancelled.")


class TaskGroupStatus(StatusModel):
    """status is written by the operator."""

    counts: GroupCounts = Field(default_factory=GroupCounts, description="counts of the members by phase.")
    callback_task: str | None = Field(None, max_length=MAX_NAME, description="callbackTask is the callback Task's name, once created.")
    callback_phase: str | None = Field(None, max_length=32, description="callbackPhase is the callback Task's phase.")
    completion_time: datetime | None = Field(None, description="completionTime is when the group (and its callback) finished.")
    observed_generation: int | None = Field(None, description="observedGeneration is the spec generation this status reflects.")
    conditions: list[Condition] = Field(default_factory=list, max_length=8,
                                        description="conditions: Finished (every member, and the callback, finished: kubectl wait --for=condition=Finished), "
                                        "Succeeded, and Ready (kstatus).")


class TaskGroup(Model):
    """TaskGroup follows many Tasks as one and runs a callback when they have all finished."""

    api_version: Literal["kubetask.io/v1alpha1"] = Field(API_VERSION, alias="apiVersion")
    kind: Literal["TaskGroup"] = "TaskGroup"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TaskGroupSpec = Field(default_factory=TaskGroupSpec)
    status: TaskGroupStatus | None = None


# --------------------------------------------------------------------------------------------
# TaskWebhook: signed completion notifications
# --------------------------------------------------------------------------------------------

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
MAX_WEBHOOK_URL = 2048
DEFAULT_WEBHOOK_EVENTS: Final[tuple[WebhookEvent, ...]] = ("Succeeded", "Failed", "Cancelled")
# CEL's URL library (Kubernetes >= 1.27): isURL() is Go's url.ParseRequestURI, which also takes a bare
# path, so the scheme and host are checked too. No backslashes: the same text is CEL and Python.
WEBHOOK_CEL = cel(
    ("isURL(self.url) && url(self.url).getScheme() in ['https', 'http'] && url(self.url).getHostname() != ''",
     "url must be an absolute URL such as https://example.com/hooks/kubetask", ".url"),
    ("!isURL(self.url) || url(self.url).getScheme() != 'http' || self.allowInsecureHTTP",
     "url must use https: plain http is allowed only with allowInsecureHTTP: true", ".url"),
    ("!self.url.matches('^[a-zA-Z][-+.a-zA-Z0-9]*://[^/?#]*@')",
     "url must not carry credentials (user:password@): receivers authenticate kubetask by the signature", ".url"),
    ("!isURL(self.url) || url(self.url).getPort() == '' || int(url(self.url).getPort()) <= 65535",
     "url has a port above 65535", ".url"),
)


def webhook_url_problem(url: str, allow_insecure_http: bool) -> str | None:
    """The CEL rules above, in Python (the operator re-checks before every delivery)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # raises ValueError on a bad port
    except ValueError as error:
        return f"url is not a valid URL: {error}"
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.hostname:
        return "url must be an absolute URL such as https://example.com/hooks/kubetask"
    if scheme == "http" and not allow_insecure_http:
        return "url must use https: plain http is allowed only with allowInsecureHTTP: true"
    if "@" in parts.netloc:
        return "url must not carry credentials (user:password@): receivers authenticate kubetask by the signature"
    return None


class SecretKeyRef(Model):
    """secretRef names the Secret (in the TaskWebhook's namespace) holding the signing key."""

    name: str = Field(..., min_length=1, max_length=253, pattern=DNS_SUBDOMAIN, description="name of the Secret.")
    key: str = Field("key", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$",
                     description="key in the Secret's data whose value (its bytes) is the HMAC-SHA256 signing key; default \"key\".")


class TaskWebhookSpec(Model):
    """spec says where Task notifications go, how they are signed, and which destinations are allowed."""

    model_config = ConfigDict(json_schema_extra=WEBHOOK_CEL)

    url: str = Field(..., min_length=1, max_length=MAX_WEBHOOK_URL,
                     description="url receives a POST per event. https, unless allowInsecureHTTP; redirects are not followed.")
    secret_ref: SecretKeyRef = Field(..., description="secretRef names the Secret holding the signing key (the operator reads only this Secret, by name).")
    events: list[WebhookEvent] = Field(
        default_factory=lambda: list(DEFAULT_WEBHOOK_EVENTS), min_length=1, max_length=4,
        description="events sent: any of Running, Succeeded, Failed, Cancelled; default the three terminal ones.",
        # default_factory leaves the JSON schema without a default: spelled out, so the API server defaults it.
        json_schema_extra={"x-kubernetes-list-type": "set", "default": list(DEFAULT_WEBHOOK_EVENTS)},
    )
    allow_insecure_http: bool = Field(False, alias="allowInsecureHTTP",
                                      description="allowInsecureHTTP allows an http:// url (the body and signature travel in clear text).")
    allow_private_networks: bool = Field(
        False, description="allowPrivateNetworks allows destinations that are refused by default: loopback, link-local, private "
        "(RFC 1918, RFC 6598, IPv6 ULA) and other non-public addresses, and cluster-internal names (*.svc, *.cluster.local, "
        "*.local, *.internal, localhost, names without a dot).")
    timeout_seconds: int = Field(10, ge=1, le=30, description="timeoutSeconds bounds each attempt: resolving, connecting, sending and the answer together.")
    max_attempts: int = Field(8, ge=1, le=20, description="maxAttempts bounds the attempts per delivery; retries back off exponentially.")

    @model_validator(mode="after")
    def _url(self) -> TaskWebhookSpec:
        problem = webhook_url_problem(self.url, self.allow_insecure_http)
        if problem:
            raise ValueError(problem)
        return self


class WebhookSource(StatusModel):
    """A TaskType or TaskQueue naming this TaskWebhook as its default."""

    kind: Literal["TaskType", "TaskQueue"] = Field(..., description="kind is TaskType or TaskQueue.")
    name: str = Field(..., max_length=MAX_NAME, description="name of the TaskType or TaskQueue.")
    since: datetime = Field(..., description="since is when the operator first saw it name this TaskWebhook: only events after it are sent for its Tasks.")


class TaskWebhookStatus(StatusModel):
    """status is written by the operator."""

    conditions: list[Condition] = Field(default_factory=list, max_length=4, description="conditions: Ready (the Secret holds the key and the url is allowed).")
    observed_generation: int | None = Field(None, description="observedGeneration is the spec generation this status reflects.")
    sources: list[WebhookSource] = Field(default_factory=list, max_length=512, description="sources lists the TaskTypes and TaskQueues that name this TaskWebhook as their default.")


class TaskWebhook(Model):
    """TaskWebhook is where signed notifications about Tasks go: a URL and the Secret holding the signing key."""

    api_version: Literal["kubetask.io/v1alpha1"] = Field(API_VERSION, alias="apiVersion")
    kind: Literal["TaskWebhook"] = "TaskWebhook"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TaskWebhookSpec
    status: TaskWebhookStatus | None = None
