"""The registry of task handlers: `@task("name")` adds a function, `resolve()` picks one."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from kubetask_sdk.errors import UnknownTaskTypeError

if TYPE_CHECKING:
    from kubetask_sdk.context import Context

#: A handler takes the Task's parameters and the run context and returns a JSON-serializable value.
Handler = Callable[[dict[str, Any], "Context"], Any]
H = TypeVar("H", bound=Handler)

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # a TaskType name: a DNS label
_handlers: dict[str, Handler] = {}


def task(name: str) -> Callable[[H], H]:
    """Register the decorated function as the handler of the task type `name`."""
    if not _NAME.match(name):
        raise ValueError(f"task name {name!r} is not a DNS label (lowercase letters, digits, '-'; at most 63)")

    def register(fn: H) -> H:
        if name in _handlers and _handlers[name] is not fn:
            raise ValueError(f"task {name!r} is registered twice")
        _handlers[name] = fn
        return fn

    return register


def registered() -> list[str]:
    """The registered task names, sorted."""
    return sorted(_handlers)


def resolve(task_type: str | None) -> tuple[str, Handler]:
    """The handler for `task_type`; the only handler when exactly one is registered.

    A single-handler image runs for any TaskType name, so one image can back several TaskTypes
    (say `resize` and `resize-large` with different limits).
    """
    if task_type and task_type in _handlers:
        return task_type, _handlers[task_type]
    if len(_handlers) == 1:
        return next(iter(_handlers.items()))
    if not _handlers:
        raise UnknownTaskTypeError("no task handler is registered: decorate a function with @task(\"name\")")
    known = ", ".join(registered())
    if not task_type:
        raise UnknownTaskTypeError(f"KUBETASK_TASK_TYPE is not set and this image has several handlers: {known}")
    raise UnknownTaskTypeError(f"unknown task type {task_type!r}; this image handles: {known}")
