"""What a TaskSchedule's Tasks look like: names, labels and the Task body. Shared by the operator
(scheduled runs) and the gateway ("trigger now"), so both make the same shape.

A scheduled run's name is a pure function of (schedule, scheduled time): a second create for the
same time, after a restart or from a second operator process, answers 409. So a schedule never
fires twice for one time.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from kubetask.resources.models import API_VERSION

LABEL_SCHEDULE = "kubetask.io/schedule"
ANNOTATION_SCHEDULED_TIME = "kubetask.io/scheduled-time"
ANNOTATION_TRIGGER = "kubetask.io/trigger"  # "schedule" (a scheduled run) or "manual" (trigger now)
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def scheduled_task_name(schedule_name: str, when: datetime) -> str:
    """<schedule>-<minutes since the epoch>, as CronJob names its Jobs."""
    return f"{schedule_name}-{int(when.timestamp()) // 60}"


def manual_task_name(schedule_name: str, when: datetime) -> str:
    """<schedule>-m<seconds since the epoch in base 36>: at most 52 + 8 characters, and never equal
    to a scheduled run's name (those end in digits only, after a dash)."""
    seconds, digits = int(when.timestamp()), ""
    while True:
        seconds, rest = divmod(seconds, 36)
        digits = _BASE36[rest] + digits
        if seconds == 0:
            break
    return f"{schedule_name}-m{digits}"


def rfc3339(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def task_for_run(schedule: dict[str, Any], when: datetime, *, manual: bool = False,
                 extra_annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """The Task a run of `schedule` (a TaskSchedule body) creates for time `when`."""
    meta = schedule["metadata"]
    template = schedule["spec"]["taskTemplate"]
    template_meta = template.get("metadata") or {}
    name = manual_task_name(meta["name"], when) if manual else scheduled_task_name(meta["name"], when)
    labels = {**(template_meta.get("labels") or {}), LABEL_SCHEDULE: meta["name"]}
    annotations = {**(template_meta.get("annotations") or {}), **(extra_annotations or {}),
                   ANNOTATION_SCHEDULED_TIME: rfc3339(when), ANNOTATION_TRIGGER: "manual" if manual else "schedule"}
    return {
        "apiVersion": API_VERSION,
        "kind": "Task",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": annotations,
            # Deleting the schedule deletes its Tasks (and their Jobs), as with a CronJob. No
            # blockOwnerDeletion: that would need update rights on taskschedules/finalizers.
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": "TaskSchedule", "name": meta["name"],
                                 "uid": meta["uid"], "controller": True}],
        },
        "spec": dict(template["spec"]),
    }
