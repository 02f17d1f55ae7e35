"""flaky: fails on purpose, to try retries and nonRetryableExitCodes.

mode `ok` succeeds, `retryable` raises an ordinary exception (exit 1: the Job retries),
`fatal` raises NonRetryableError (exit 65: the Task fails at once). With `succeedFromRun: N`,
`retryable` and `fatal` succeed from the N-th rerun on (spec.rerun), to try reruns. With
`failUntil: <RFC 3339 time>`, they succeed from that time on: an attempt that the Job controller
retries after it (10 s, 20 s, ... later) succeeds, which shows a retry that works.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from kubetask_sdk import Context, NonRetryableError, run, task


class FlakyError(RuntimeError):
    """The retryable failure."""


@task("flaky")
def flaky(params: dict[str, Any], ctx: Context) -> dict[str, Any]:
    mode = params.get("mode", "ok")
    message = params.get("message") or f"flaky failed on purpose (mode {mode})"
    succeed_from = params.get("succeedFromRun")
    if mode == "ok" or (succeed_from is not None and ctx.run >= int(succeed_from)):
        return {"mode": mode, "run": ctx.run, "ok": True}
    if params.get("failUntil") is not None and datetime.now(timezone.utc) >= _parse_time(params["failUntil"]):
        return {"mode": mode, "run": ctx.run, "ok": True, "failedUntil": params["failUntil"]}
    if mode == "retryable":
        raise FlakyError(message)
    if mode == "fatal":
        raise NonRetryableError(message)
    raise NonRetryableError(f"unknown mode {mode!r}: use ok, retryable or fatal")


def _parse_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise NonRetryableError(f"failUntil must be an RFC 3339 time, not {value!r}") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


if __name__ == "__main__":
    run()
