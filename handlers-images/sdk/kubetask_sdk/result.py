"""The result: the handler's return value as JSON, written to the container's termination message.

The kubelet keeps at most 4096 bytes of a termination message, so a bigger result is refused with
`ResultTooLargeError` (exit 65) instead of being cut silently. Return a reference to large data.
"""

from __future__ import annotations

import json
import os
from typing import Any

from kubetask_sdk.errors import NonRetryableError, ResultTooLargeError
from kubetask_sdk.progress import warn

MAX_RESULT_BYTES = 4096
DEFAULT_RESULT_FILE = "/dev/termination-log"


def result_path() -> str:
    return os.environ.get("KUBETASK_RESULT_FILE") or DEFAULT_RESULT_FILE


def encode_result(value: Any, limit: int = MAX_RESULT_BYTES) -> bytes:
    """Compact JSON of `value` (None gives `null`); raises NonRetryableError if it is not JSON or too big."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise NonRetryableError(f"the handler's result is not JSON-serializable: {e}") from e
    data = text.encode("utf-8")
    if len(data) > limit:
        raise ResultTooLargeError(len(data), limit)
    return data


def encode_error(message: str, error_type: str, limit: int = MAX_RESULT_BYTES) -> bytes:
    """`{"error": message, "type": error_type}`, the message shortened so the JSON fits `limit`."""
    message = message[:limit]
    while True:
        data = json.dumps({"error": message, "type": error_type}, ensure_ascii=False).encode("utf-8")
        if len(data) <= limit:
            return data
        message = message[: max(0, len(message) - (len(data) - limit) - 3)] + "..."


def write_termination_message(data: bytes) -> None:
    """Write to KUBETASK_RESULT_FILE or /dev/termination-log; a failure is logged, not raised."""
    path = result_path()
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        warn(f"cannot write the result to {path}: {e}")
