"""flaky: fails on purpose, to try retries and nonRetryableExitCodes.

mode `ok` succeeds, `retryable` raises an ordinary exception (exit 1: the Job retries),
`fatal` raises NonRetryableError (exit 65: the Task fails at once). With `succeedFromRun: N`,
`retryable` and `fatal` succeed from the N-th rerun on (spec.rerun), to try reruns.
"""

from __future__ import annotations

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
    if mode == "retryable":
        raise FlakyError(message)
    if mode == "fatal":
        raise NonRetryableError(message)
    raise NonRetryableError(f"unknown mode {mode!r}: use ok, retryable or fatal")


if __name__ == "__main__":
    run()
