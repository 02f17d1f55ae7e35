"""progress: `steps` steps of `sleepSeconds` each, reporting progress after every step.

It shows the cancellation pattern: sleep with `ctx.cancelled.wait(...)`, which wakes up at once on
SIGTERM, and stop the loop when it is set.
"""

from __future__ import annotations

import sys
from typing import Any

from kubetask_sdk import Context, on_shutdown, run, task

state = {"completed": 0}


@on_shutdown
def report_where_we_stopped() -> None:
    print(f"progress: shutting down after {state['completed']} step(s)", file=sys.stderr, flush=True)


@task("progress")
def progress(params: dict[str, Any], ctx: Context) -> dict[str, Any]:
    steps = int(params.get("steps", 10))
    sleep_seconds = float(params.get("sleepSeconds", 1.0))
    ctx.progress(0, f"starting {steps} steps")
    for step in range(1, steps + 1):
        if ctx.cancelled.wait(sleep_seconds):
            break
        state["completed"] = step
        ctx.progress(step * 100 // steps, f"step {step}/{steps}")
    return {"steps": steps, "completedSteps": state["completed"], "cancelled": ctx.cancelled.is_set()}


if __name__ == "__main__":
    run()
