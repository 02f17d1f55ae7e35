"""Checks of a Task against its TaskType that the API server cannot make: parameters against the
type's JSON Schema, requested resources against the type's limits. Pure functions; the gateway
turns their findings into 422s, the operator into a Failed Task that gets no Job.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import jsonschema

from kubetask.resources.quantity import parse_quantity


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a Task, with the field it concerns (a dotted path such as spec.parameters.n)."""

    field: str
    message: str
    reason: str  # InvalidParameters | ExceedsLimits | InvalidSpec


def parameters_size(parameters: dict[str, Any]) -> int:
    """Bytes of the compact JSON encoding: what reaches the pod (annotation and env)."""
    return serialized_size(parameters)


def serialized_size(value: Any) -> int:
    """Bytes of any JSON value's compact encoding (parameters, spec.items)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _schema_validator(schema: dict[str, Any]) -> Any | Problem:
    """A validator for a TaskType's parametersSchema, or the Problem with the schema itself."""
    return _compiled(json.dumps(schema, sort_keys=True, separators=(",", ":")))


@functools.lru_cache(maxsize=256)
def _compiled(schema_text: str) -> Any | Problem:
    """Checking the schema against its metaschema (`check_schema`) is the costly part of
    validating a Task: it was a fifth of the operator's CPU in a burst of Tasks of one type, paid
    twice per Task (at validation and again at admission). Schemas are few (one per TaskType
    version), so the outcome is kept per schema text; the instance check stays per Task."""
    schema = json.loads(schema_text)
    try:
        validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as error:
        return Problem("spec.parametersSchema", f"the TaskType's parametersSchema is not a valid JSON Schema: {error.message}", "InvalidTaskType")
    return validator_class(schema)


def check_parameters(parameters: dict[str, Any], schema: dict[str, Any] | None) -> list[Problem]:
    if not schema:
        return []
    validator = _schema_validator(schema)
    if isinstance(validator, Problem):
        return [validator]
    problems = []
    for issue in sorted(validator.iter_errors(parameters), key=lambda e: list(e.absolute_path)):
        path = ".".join(["spec", "parameters", *(str(p) for p in issue.absolute_path)])
        problems.append(Problem(path, issue.message, "InvalidParameters"))
    return problems


MAX_ITEM_PROBLEMS = 10  # a thousand items with the same mistake need not say it a thousand times


def check_items(parameters: dict[str, Any], items: list[dict[str, Any]], schema: dict[str, Any] | None) -> list[Problem]:
    """A fan-out's items against the TaskType's schema: each item merged over the shared
    parameters, which is what its pod's handler gets. A problem with a key the item does not set
    is the shared parameters' (reported once, as spec.parameters.<key>); else spec.items[i].<key>."""
    if not schema:
        return []
    validator = _schema_validator(schema)
    if isinstance(validator, Problem):
        return [validator]
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        for issue in sorted(validator.iter_errors({**parameters, **item}), key=lambda e: list(e.absolute_path)):
            path = [str(p) for p in issue.absolute_path]
            shared = bool(path) and path[0] in parameters and path[0] not in item
            field = ".".join(["spec", "parameters", *path] if shared else [f"spec.items[{index}]", *path])
            if field not in seen:
                seen.add(field)
                problems.append(Problem(field, issue.message, "InvalidParameters"))
            if len(problems) == MAX_ITEM_PROBLEMS:
                return problems
    return problems


def check_limits(effective: dict[str, Any], limits: dict[str, Any] | None) -> list[Problem]:
    """Compare an effective Task spec (defaults applied, camelCase JSON) with the type's limits."""
    if not limits:
        return []
    problems: list[Problem] = []
    resources = effective.get("resources") or {}
    for name in ("cpu", "memory"):
        asked, allowed = resources.get(name), limits.get(name)
        if asked is not None and allowed is not None and parse_quantity(str(asked)) > parse_quantity(str(allowed)):
            problems.append(Problem(f"spec.resources.{name}", f"{name} {asked} is above the TaskType's limit {allowed}", "ExceedsLimits"))
    if resources.get("gpu") is not None and limits.get("gpu") is not None and resources["gpu"] > limits["gpu"]:
        problems.append(Problem("spec.resources.gpu", f"gpu {resources['gpu']} is above the TaskType's limit {limits['gpu']}", "ExceedsLimits"))
    for name in ("timeoutSeconds", "retries", "parallelism"):
        asked, allowed = effective.get(name), limits.get(name)
        if asked is not None and allowed is not None and asked > allowed:
            problems.append(Problem(f"spec.{name}", f"{name} {asked} is above the TaskType's limit {allowed}", "ExceedsLimits"))
    return problems
