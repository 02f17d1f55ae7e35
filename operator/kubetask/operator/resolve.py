"""Task + TaskType → the effective spec a Job is built from, or the problems that stop it.

Pure: the operator calls it on every reconcile, the gateway before it creates anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kubetask.resources import models
from kubetask.resources.validation import Problem, check_items, check_limits, check_parameters, parameters_size, serialized_size


@dataclass(frozen=True)
class EffectiveSpec:
    """What will run: the Task's own fields where set, else the TaskType's defaults."""

    type: str
    parameters: dict[str, Any]
    queue: str
    priority: int
    cpu: str | None
    memory: str | None
    gpu: int
    timeout_seconds: int | None
    retries: int
    non_retryable_exit_codes: tuple[int, ...]
    ttl_seconds_after_finished: int | None
    # Fan-out (spec.items): None for a Task of one pod. `parallelism` is the pods at once, already
    # capped at the number of items; `retries` then count per item.
    items: list[dict[str, Any]] | None = field(default=None, repr=False, compare=False)
    parallelism: int = 1
    max_failed_items: int | None = None
    tasktype: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def as_spec_json(self) -> dict[str, Any]:
        return {"resources": {"cpu": self.cpu, "memory": self.memory, "gpu": self.gpu},
                "timeoutSeconds": self.timeout_seconds, "retries": self.retries,
                "parallelism": self.parallelism if self.items is not None else None}


DEFAULT_RETRIES = 0  # a Task retries only when it (or its type) asks to: work is not always idempotent


def effective_priority(task_spec: dict[str, Any], tasktype_spec: dict[str, Any] | None) -> int:
    if task_spec.get("priority") is not None:
        return int(task_spec["priority"])
    return int(((tasktype_spec or {}).get("defaults") or {}).get("priority") or 0)


def pods_at_once(task_spec: dict[str, Any], tasktype_spec: dict[str, Any] | None, item_count: int | None) -> int:
    """How many pods the Task runs at once: 1, or a fan-out's parallelism capped at its items.
    Unset, it is DEFAULT_PARALLELISM, or the TaskType's limit when that is lower (a default never
    exceeds the limit). `item_count` is passed because index bodies may leave large items out."""
    if item_count is None:
        return 1
    asked = task_spec.get("parallelism")
    if asked is None:
        limit = ((tasktype_spec or {}).get("limits") or {}).get("parallelism")
        asked = min(models.DEFAULT_PARALLELISM, int(limit)) if limit else models.DEFAULT_PARALLELISM
    return max(1, min(int(asked), item_count))


def effective_queue(task_spec: dict[str, Any], tasktype_spec: dict[str, Any] | None, default_queue: str) -> str:
    return str(task_spec.get("queue") or ((tasktype_spec or {}).get("defaults") or {}).get("queue") or default_queue)


def resolve(task_spec: dict[str, Any], tasktype_spec: dict[str, Any], default_queue: str) -> tuple[EffectiveSpec | None, list[Problem]]:
    defaults: dict[str, Any] = tasktype_spec.get("defaults") or {}
    default_resources: dict[str, Any] = defaults.get("resources") or {}
    resources: dict[str, Any] = task_spec.get("resources") or {}

    def pick(name: str) -> Any:
        return task_spec[name] if task_spec.get(name) is not None else defaults.get(name)

    parameters = task_spec.get("parameters") or {}
    items: list[dict[str, Any]] | None = task_spec.get("items")
    effective = EffectiveSpec(
        type=task_spec["type"],
        parameters=parameters,
        queue=effective_queue(task_spec, tasktype_spec, default_queue),
        priority=effective_priority(task_spec, tasktype_spec),
        cpu=resources.get("cpu") or default_resources.get("cpu"),
        memory=resources.get("memory") or default_resources.get("memory"),
        gpu=int(resources["gpu"] if resources.get("gpu") is not None else default_resources.get("gpu") or 0),
        timeout_seconds=pick("timeoutSeconds"),
        retries=int(pick("retries") if pick("retries") is not None else DEFAULT_RETRIES),
        non_retryable_exit_codes=tuple(pick("nonRetryableExitCodes") or ()),
        ttl_seconds_after_finished=pick("ttlSecondsAfterFinished"),
        items=items,
        parallelism=pods_at_once(task_spec, tasktype_spec, len(items) if items is not None else None),
        max_failed_items=task_spec.get("maxFailedItems"),
        tasktype=tasktype_spec,
    )
    problems: list[Problem] = []
    size = parameters_size(parameters)
    if size > models.MAX_PARAMETERS_BYTES:
        problems.append(Problem("spec.parameters", f"parameters are {size} bytes serialized; at most {models.MAX_PARAMETERS_BYTES} are allowed", "InvalidSpec"))
    if items is not None:
        items_size = serialized_size(items)
        if items_size > models.MAX_ITEMS_BYTES:
            problems.append(Problem("spec.items", f"items are {items_size} bytes serialized; at most {models.MAX_ITEMS_BYTES} are allowed", "InvalidSpec"))
    else:
        # The API server's CEL refuses these already; a Task from elsewhere (a test, an old CRD) fails clearly.
        problems += [Problem(f"spec.{name}", f"{name} applies only to a Task with items", "InvalidSpec")
                     for name in ("parallelism", "maxFailedItems") if task_spec.get(name) is not None]
    if items is not None:
        problems += check_items(parameters, items, tasktype_spec.get("parametersSchema"))
    else:
        problems += check_parameters(parameters, tasktype_spec.get("parametersSchema"))
    try:
        problems += check_limits(effective.as_spec_json(), tasktype_spec.get("limits"))
    except ValueError as error:
        problems.append(Problem("spec.resources", str(error), "InvalidSpec"))
    return (None if problems else effective), problems


def describe(problems: Sequence[Problem]) -> str:
    return "; ".join(f"{p.field}: {p.message}" for p in problems)
