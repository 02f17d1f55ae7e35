"""TaskSchedules on the real control plane: a catch-up run after an outage, the next run at its
real minute, history limits, Forbid and Replace, suspend, one Task per scheduled time, and the
API server refusing bad input with the field named.

The schedules fire every minute (cron's smallest interval). An outage is simulated by writing
`status.lastScheduleTime` five minutes back, as the operator would find it after being down.
"""

from __future__ import annotations

import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from harness import wait_for
from kt import apply_queue, apply_tasktype, sim
from kubetask.kube import ApiError, KubeSync, tasks_path
from kubetask.resources.scheduling import ANNOTATION_SCHEDULED_TIME, LABEL_SCHEDULE, scheduled_task_name, task_for_run

pytestmark = pytest.mark.usefixtures("operator")


def schedule_body(name: str, **spec: Any) -> dict[str, Any]:
    template = spec.pop("template", {})
    return {"apiVersion": "kubetask.io/v1alpha1", "kind": "TaskSchedule", "metadata": {"name": name},
            "spec": {"schedule": "* * * * *", "taskTemplate": {"metadata": {"annotations": template.get("annotations", {}),
                                                                         "labels": {"team": "a"}},
                                                            "spec": {"type": "sim"}}, **spec}}


def get_schedule(kube: KubeSync, namespace: str, name: str) -> dict[str, Any]:
    return kube.get(tasks_path(namespace, name, plural="taskschedules"))


def tasks_of(kube: KubeSync, namespace: str, schedule: str) -> dict[str, dict[str, Any]]:
    items = kube.get(tasks_path(namespace), labelSelector=f"{LABEL_SCHEDULE}={schedule}")["items"]
    return {t["metadata"]["name"]: t for t in items}


def phase(task: dict[str, Any]) -> str:
    return str((task.get("status") or {}).get("phase") or "")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def rewind(kube: KubeSync, namespace: str, name: str, minutes: int) -> datetime:
    """Pretend the operator was down: the last run was `minutes` minutes before this minute."""
    wait_for(lambda: (get_schedule(kube, namespace, name).get("status") or {}).get("nextScheduleTime"),
             timeout=30, what=f"schedule {name} reconciled")
    floor = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    last = floor - timedelta(minutes=minutes)
    kube.patch(tasks_path(namespace, name, plural="taskschedules", subresource="status"),
               {"status": {"lastScheduleTime": last.strftime("%Y-%m-%dT%H:%M:%SZ")}})
    return last


def test_schedules_catch_up_fire_on_time_keep_history_and_honour_concurrency(kube: KubeSync, namespace: str) -> None:
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "default", maxRunning=20)
    create = tasks_path(namespace, plural="taskschedules")
    kube.create(create, schedule_body("every", successfulHistoryLimit=1, template={"annotations": sim(run_for="1s")}))
    kube.create(create, schedule_body("forbid", concurrencyPolicy="Forbid", template={"annotations": sim(run_for="10m")}))
    kube.create(create, schedule_body("replace", concurrencyPolicy="Replace", template={"annotations": sim(run_for="10m")}))

    rewound = {name: rewind(kube, namespace, name, minutes=5) for name in ("every", "forbid", "replace")}

    # One catch-up run each, named for its scheduled time; the older due runs are counted missed.
    first: dict[str, str] = {}
    for name, last in rewound.items():
        tasks = wait_for(lambda: tasks_of(kube, namespace, name) or None, timeout=30, what=f"{name}'s catch-up Task")
        assert len(tasks) == 1, sorted(tasks)
        task = next(iter(tasks.values()))
        when = utc(task["metadata"]["annotations"][ANNOTATION_SCHEDULED_TIME])
        assert task["metadata"]["name"] == scheduled_task_name(name, when)
        assert task["metadata"]["labels"]["team"] == "a"  # the template's metadata is stamped
        assert task["metadata"]["ownerReferences"][0]["kind"] == "TaskSchedule"
        status = wait_for(lambda: (s := get_schedule(kube, namespace, name).get("status") or {}).get("lastScheduleTime") == task["metadata"]["annotations"][ANNOTATION_SCHEDULED_TIME] and s or None,
                          timeout=30, what=f"{name}'s status records the run")
        due = int((when - last).total_seconds() // 60)  # runs due since the rewound last one
        assert due >= 5
        assert status["missedRuns"] == due - 1, status
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True" and status["observedGeneration"] == 1
        first[name] = task["metadata"]["name"]

    # A second create for the same scheduled time is refused: a schedule never fires twice for one time.
    schedule = get_schedule(kube, namespace, "every")
    when = utc(tasks_of(kube, namespace, "every")[first["every"]]["metadata"]["annotations"][ANNOTATION_SCHEDULED_TIME])
    with pytest.raises(ApiError) as refused:
        kube.create(tasks_path(namespace), task_for_run(schedule, when))
    assert refused.value.status == 409

    wait_for(lambda: phase(tasks_of(kube, namespace, "every").get(first["every"], {})) == "Succeeded", timeout=60,
             what="the catch-up run Succeeded")
    wait_for(lambda: (get_schedule(kube, namespace, "every").get("status") or {}).get("lastSuccessfulTime"), timeout=30,
             what="lastSuccessfulTime")
    wait_for(lambda: phase(tasks_of(kube, namespace, "forbid")[first["forbid"]]) == "Running", timeout=60, what="forbid's run Running")
    wait_for(lambda: phase(tasks_of(kube, namespace, "replace")[first["replace"]]) == "Running", timeout=60, what="replace's run Running")
    forbid_missed = get_schedule(kube, namespace, "forbid")["status"]["missedRuns"]

    # The next minute: each schedule fires at its real time.
    second = wait_for(lambda: (t := tasks_of(kube, namespace, "every")) and any(n != first["every"] for n in t)
                      and next(n for n in t if n != first["every"]) or None, timeout=90, what="the next minute's run")
    wait_for(lambda: phase(tasks_of(kube, namespace, "every").get(second, {})) == "Succeeded", timeout=60, what="the next run Succeeded")
    # successfulHistoryLimit 1: the older Succeeded Task is deleted.
    wait_for(lambda: list(tasks_of(kube, namespace, "every")) == [second] or None, timeout=30, what="history pruned to 1")

    # Replace: the unfinished run is cancelled, the new one created.
    wait_for(lambda: len(tasks_of(kube, namespace, "replace")) == 2 or None, timeout=60, what="replace's second run")
    replaced = tasks_of(kube, namespace, "replace")
    assert replaced[first["replace"]]["spec"].get("cancel") is True
    wait_for(lambda: phase(tasks_of(kube, namespace, "replace")[first["replace"]]) == "Cancelled", timeout=60, what="the replaced run Cancelled")

    # Forbid: the run that came due while the first is unfinished was skipped and counted.
    status = wait_for(lambda: (s := get_schedule(kube, namespace, "forbid")["status"])["missedRuns"] > forbid_missed and s or None,
                      timeout=60, what="forbid counted a skipped run")
    assert list(tasks_of(kube, namespace, "forbid")) == [first["forbid"]]
    assert next(c for c in status["conditions"] if c["type"] == "Ready")["reason"] == "ForbidSkipped"
    assert status["activeCount"] == 1 and status["active"][0]["name"] == first["forbid"]


def test_suspended_schedule_creates_nothing_and_resume_does_not_make_up(kube: KubeSync, namespace: str) -> None:
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "default")
    kube.create(tasks_path(namespace, plural="taskschedules"), schedule_body("paused", suspend=True))
    status = wait_for(lambda: (get_schedule(kube, namespace, "paused").get("status") or {}).get("conditions"), timeout=30,
                      what="suspended schedule reconciled")
    suspended = next(c for c in status if c["type"] == "Suspended")
    assert suspended["status"] == "True"
    assert get_schedule(kube, namespace, "paused")["status"].get("nextScheduleTime") is None
    # Runs were due while it was suspended (its last run three minutes back): none is made up.
    last = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=3)
    kube.patch(tasks_path(namespace, "paused", plural="taskschedules", subresource="status"),
               {"status": {"lastScheduleTime": last.strftime("%Y-%m-%dT%H:%M:%SZ")}})
    time.sleep(2)
    assert tasks_of(kube, namespace, "paused") == {}
    kube.patch(tasks_path(namespace, "paused", plural="taskschedules"), {"spec": {"suspend": False}})
    status = wait_for(lambda: (s := get_schedule(kube, namespace, "paused")["status"]).get("nextScheduleTime") and s or None,
                      timeout=30, what="resumed schedule has a next run")
    assert next(c for c in status["conditions"] if c["type"] == "Suspended")["reason"] == "Resumed"
    assert tasks_of(kube, namespace, "paused") == {}  # nothing made up for the suspended time
    assert status["missedRuns"] == 0


@pytest.mark.parametrize(("spec", "field", "words"), [
    ({"schedule": "61 * * * *"}, "spec.schedule", "minute 0-59"),
    ({"timeZone": "Mars/Olympus"}, "spec.timeZone", "IANA time zone"),
    ({"failedHistoryLimit": -1}, "spec.failedHistoryLimit", "greater than or equal to 0"),
    ({"successfulHistoryLimit": -2}, "spec.successfulHistoryLimit", "greater than or equal to 0"),
])
def test_api_server_refuses_bad_schedules_naming_the_field(kube: KubeSync, namespace: str, spec: dict[str, Any],
                                                           field: str, words: str) -> None:
    body = schedule_body("bad", **spec)
    with pytest.raises(ApiError) as refused:
        kube.create(tasks_path(namespace, plural="taskschedules"), body)
    assert refused.value.status == 422
    causes = refused.value.body["details"]["causes"]
    assert any(c["field"] == field and words in c["message"] for c in causes), causes


@pytest.mark.parametrize(("rate", "field", "words"), [
    ({"starts": 0, "per": "1m"}, "spec.rateLimit.starts", "greater than or equal to 1"),
    ({"starts": 10, "per": "0s"}, "spec.rateLimit.per", "positive duration"),
    ({"starts": 10, "per": "-1m"}, "spec.rateLimit.per", "positive duration"),
    ({"starts": 10, "per": "1d"}, "spec.rateLimit.per", "positive duration"),
])
def test_api_server_refuses_bad_rate_limits_naming_the_field(kube: KubeSync, namespace: str, rate: dict[str, Any],
                                                             field: str, words: str) -> None:
    with pytest.raises(ApiError) as refused:
        apply_queue(kube, namespace, "limited", rateLimit=rate)
    assert refused.value.status == 422
    causes = refused.value.body["details"]["causes"]
    assert any(c["field"] == field and words in c["message"] for c in causes), causes


def test_the_shipped_examples_apply_with_kubectl_as_written(kube: KubeSync, namespace: str, bin_dir: Path, kubeconfig: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "handlers-images" / "examples" / "echo"
    for name in ("tasktype.yaml", "example-queue.yaml", "example-schedule.yaml"):
        done = subprocess.run([str(bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig), "-n", namespace, "apply", "-f", str(examples / name)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    status = wait_for(lambda: (s := get_schedule(kube, namespace, "echo-weekday-morning").get("status") or {}).get("nextScheduleTime") and s or None,
                      timeout=30, what="the example schedule reconciled")
    assert next(c for c in status["conditions"] if c["type"] == "Ready")["status"] == "True"
    # 09:00 in Berlin is 07:00 or 08:00 UTC, on a weekday.
    upcoming = utc(status["nextScheduleTime"])
    assert upcoming.hour in (7, 8) and upcoming.minute == 0 and upcoming.weekday() < 5
    queue = kube.get(tasks_path(namespace, "default", plural="taskqueues"))
    assert queue["spec"]["rateLimit"] == {"starts": 10, "per": "1m"}
