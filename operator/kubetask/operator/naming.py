"""Deterministic names and labels for what the operator creates.

A Job's name is a pure function of (Task name, Task UID, run): a create that answers 409 means
the work was already started, never that a stranger's Job is in the way (the UID hash differs for
a re-created Task of the same name).
"""

from __future__ import annotations

import hashlib

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "kubetask"
LABEL_TASK = "kubetask.io/task"
LABEL_TASK_UID = "kubetask.io/task-uid"
LABEL_TYPE = "kubetask.io/type"
LABEL_QUEUE = "kubetask.io/queue"
LABEL_RUN = "kubetask.io/run"
ANNOTATION_PARAMETERS = "kubetask.io/parameters"
ANNOTATION_SUBMITTED_BY = "kubetask.io/submitted-by"
MAX_JOB_NAME = 63  # the Job controller copies it into the pods' job-name label


def job_name(task_name: str, task_uid: str, run: int) -> str:
    digest = hashlib.sha256(task_uid.encode()).hexdigest()[:5]
    suffix = f"-{digest}-r{run}"
    return task_name[: MAX_JOB_NAME - len(suffix)].rstrip("-.") + suffix


def child_labels(task_name: str, task_uid: str, task_type: str, queue: str, run: int) -> dict[str, str]:
    return {
        MANAGED_BY: MANAGED_BY_VALUE,
        LABEL_TASK: task_name,
        LABEL_TASK_UID: task_uid,
        LABEL_TYPE: task_type,
        LABEL_QUEUE: queue,
        LABEL_RUN: str(run),
    }
