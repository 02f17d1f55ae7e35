"""kubetask handler SDK: the code that runs inside a Task's pod.

    from kubetask_sdk import task, run, NonRetryableError

    @task("echo")
    def echo(params: dict, ctx) -> dict:
        ctx.progress(50, "halfway")
        return {"echo": params}

    if __name__ == "__main__":
        run()

Standard library only: it goes into minimal images. See handlers-images/README.md for the contract.
"""

from kubetask_sdk.context import Context, on_shutdown
from kubetask_sdk.errors import (
    EXIT_NON_RETRYABLE,
    EXIT_RETRYABLE,
    EXIT_SUCCESS,
    EXIT_TERMINATED,
    InvalidParametersError,
    NonRetryableError,
    ResultTooLargeError,
    UnknownTaskTypeError,
)
from kubetask_sdk.registry import registered, task
from kubetask_sdk.result import MAX_RESULT_BYTES
from kubetask_sdk.runner import load_item, load_parameters, main, run

__version__ = "0.1.0"

__all__ = [
    "EXIT_NON_RETRYABLE",
    "EXIT_RETRYABLE",
    "EXIT_SUCCESS",
    "EXIT_TERMINATED",
    "MAX_RESULT_BYTES",
    "Context",
    "InvalidParametersError",
    "NonRetryableError",
    "ResultTooLargeError",
    "UnknownTaskTypeError",
    "load_item",
    "load_parameters",
    "main",
    "on_shutdown",
    "registered",
    "run",
    "task",
]
