"""A TaskQueue's rate limit on the real control plane: 30 Tasks against 10 starts per minute start
in three waves a minute apart, the limit holds across an operator restart (it is derived from the
recorded start times: here the finished Tasks' status.startTime, as their Jobs are deleted at
once), and the held-back Tasks and the queue say so."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest

from pathlib import Path

from harness import OperatorProcess, wait_for
from kt import apply_queue, apply_tasktype, create_task, sim
from kubetask.kube import KubeSync, tasks_path
from recorders import JobRecorder

pytestmark = pytest.mark.usefixtures("operator")


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def job_starts(jobs: JobRecorder) -> list[float]:
    return sorted(epoch(created) for created in list(jobs.creation.values()))


def ready(task: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in (task.get("status") or {}).get("conditions", []) if c["type"] == "Ready"), {})


def test_thirty_tasks_against_ten_per_minute_start_in_waves_across_a_restart(kube: KubeSync, namespace: str, kubeconfig: Path,
                                                                            operator: OperatorProcess) -> None:
    with JobRecorder(kubeconfig, namespace) as jobs:
        run_thirty(kube, namespace, operator, jobs)


def run_thirty(kube: KubeSync, namespace: str, operator: OperatorProcess, jobs: JobRecorder) -> None:
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "default", maxRunning=50, rateLimit={"starts": 10, "per": "1m"})
    names = [f"r-{i:02d}" for i in range(30)]
    for name in names:
        create_task(kube, namespace, name, sim(run_for="1s"), ttlSecondsAfterFinished=0)

    first = wait_for(lambda: (s := job_starts(jobs)) and len(s) >= 10 and s or None, timeout=60,
                     what="the first ten starts")
    time.sleep(3)
    assert len(job_starts(jobs)) == 10  # the eleventh waits for the window

    # The twenty others say why they wait, and when they can start; the queue counts them.
    def held() -> list[dict[str, Any]] | None:
        tasks = [t for t in kube.get(tasks_path(namespace))["items"] if ready(t).get("reason") == "RateLimited"]
        return tasks if len(tasks) == 20 else None

    throttled = wait_for(held, timeout=30, what="20 Tasks Queued with reason RateLimited")
    assert all(t["status"]["phase"] == "Queued" and "can start at" in ready(t)["message"] for t in throttled)
    queue = wait_for(lambda: (q := kube.get(tasks_path(namespace, "default", plural="taskqueues"))).get("status", {}).get("throttled") == 20 and q or None,
                     timeout=30, what="queue status counts 20 throttled")
    assert queue["status"]["nextStartTime"]

    # Restart the operator inside the window: the new process must not start the next wave early.
    operator.stop()
    time.sleep(1)
    operator.start()
    wait_for(lambda: len(job_starts(jobs)) >= 20, timeout=120, what="the second wave")
    wait_for(lambda: len(job_starts(jobs)) >= 30, timeout=120, what="the third wave")
    time.sleep(3)

    starts = job_starts(jobs)
    assert sorted(jobs.created) == names and not jobs.duplicates()  # exactly one Job each
    assert len(starts) == 30
    # No window of a minute holds more than ten starts (creationTimestamp has whole seconds).
    for i in range(len(starts) - 10):
        assert starts[i + 10] - starts[i] >= 60, (i, starts)
    # And the limit did not hold back more than it must: three waves, about a minute apart.
    assert starts[9] - first[0] < 10
    assert starts[29] - starts[0] < 2 * 60 + 30, starts
    queue = wait_for(lambda: (q := kube.get(tasks_path(namespace, "default", plural="taskqueues"))).get("status", {}).get("throttled") == 0 and q or None,
                     timeout=30, what="nothing throttled at the end")
    assert queue["status"].get("nextStartTime") is None
