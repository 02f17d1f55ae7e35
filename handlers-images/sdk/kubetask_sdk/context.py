"""The run context handed to a handler: who it runs for, progress, cancellation, shutdown hooks."""

from __future__ import annotations

import threading
from typing import Any, Callable, TypeVar

from kubetask_sdk.progress import ProgressReporter

Hook = Callable[[], object]
F = TypeVar("F", bound=Hook)

_shutdown_hooks: list[Hook] = []


def on_shutdown(fn: F) -> F:
    """Register `fn()` to run when the pod gets SIGTERM (cancel or timeout). Use as a decorator."""
    _shutdown_hooks.append(fn)
    return fn


def shutdown_hooks() -> list[Hook]:
    return list(_shutdown_hooks)


class Context:
    """What a handler knows about its run. `cancelled` is set on SIGTERM; long loops should check it."""

    def __init__(self, name: str, namespace: str, task_type: str, run: int, reporter: ProgressReporter,
                 index: int | None = None, item: dict[str, Any] | None = None) -> None:
        self.name = name
        self.namespace = namespace
        self.task_type = task_type
        self.run = run
        #: A fan-out Task (spec.items): this pod's item (already merged over the parameters the
        #: handler gets) and its index in spec.items. Both None for a Task without items.
        self.index = index
        self.item = item
        #: Set when SIGTERM arrives. `ctx.cancelled.wait(seconds)` is a sleep that wakes up on cancel.
        self.cancelled = threading.Event()
        self._reporter = reporter

    def progress(self, percent: int, message: str = "") -> None:
        """Report progress (0..100) to the Task's status.progress. Never raises; never blocks."""
        self._reporter.report(percent, message)

    def on_shutdown(self, fn: F) -> F:
        """Register `fn()` to run on SIGTERM, like the module-level `@on_shutdown`."""
        return on_shutdown(fn)

    def __repr__(self) -> str:
        item = f", index={self.index}" if self.index is not None else ""
        return f"Context(task={self.namespace}/{self.name}, type={self.task_type}, run={self.run}{item})"
