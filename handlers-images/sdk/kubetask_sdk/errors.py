"""Exit codes and the exceptions a handler raises to say how it failed."""

from __future__ import annotations

EXIT_SUCCESS = 0
#: Any unexpected exception: the Job may retry the pod (up to the Task's `retries`).
EXIT_RETRYABLE = 1
#: `NonRetryableError` (and bad input): list 65 in `nonRetryableExitCodes` so the Task fails at once.
EXIT_NON_RETRYABLE = 65
#: SIGTERM (cancel or timeout): 128 + 15, what a shell reports for a process killed by SIGTERM.
EXIT_TERMINATED = 143


class NonRetryableError(Exception):
    """Raise it when running the same Task again cannot help (bad input, missing permission...).

    The process exits with `EXIT_NON_RETRYABLE` (65) and the message becomes the termination
    message, as JSON `{"error": "<message>", "type": "NonRetryableError"}`.
    """


class InvalidParametersError(NonRetryableError):
    """The parameters are not a JSON object (or cannot be read)."""


class UnknownTaskTypeError(NonRetryableError):
    """KUBETASK_TASK_TYPE names no handler registered in this image."""


class ResultTooLargeError(NonRetryableError):
    """The handler's result does not fit the termination message (4096 bytes of JSON)."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"result is {size} bytes of JSON but at most {limit} fit in the termination message; "
            "store the data elsewhere (object storage, a volume, a database) and return a reference "
            f'instead, e.g. {{"output": "s3://bucket/key", "bytes": {size}}}'
        )
