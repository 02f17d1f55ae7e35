"""From a TaskSchedule request to its body, and a schedule's taskTemplate as a Task submission. Pure functions.

A Task that "trigger now" creates is a submission by the caller, so the gateway checks the
template exactly as it checks `POST .../tasks` (metadata, the spec against its TaskType, the
queue); the same check runs when a schedule is created, so a template that could never run is
refused at once instead of failing at every scheduled time. Problems name the template's fields
(`spec.taskTemplate.spec.parameters.n`), not a Task's.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from kubetask.api.errors import field_path
from kubetask.api.schemas import ScheduleRequest, SubmitRequest
from kubetask.operator.naming import ANNOTATION_SUBMITTED_BY
from kubetask.resources.models import API_VERSION, TaskSpec, TaskTemplate
from kubetask.resources.validation import Problem

TEMPLATE = "spec.taskTemplate"


def template_field(field: str) -> str:
    """A submission's field path as the template's: spec.x → spec.taskTemplate.spec.x, labels[k] → ....metadata.labels[k]."""
    if field.startswith(("labels", "annotations")):
        return f"{TEMPLATE}.metadata.{field}"
    return f"{TEMPLATE}.{field}"


def template_submission(template: dict[str, Any]) -> tuple[SubmitRequest | None, list[Problem]]:
    """The submission a run of this template amounts to, or the problems that stop it being one.

    `model_construct` because the template's own bounds (64 labels) are the CRD's, not a
    submission's (32); the spec is validated as a TaskSpec."""
    try:
        parsed = TaskTemplate.model_validate(template)
        spec = TaskSpec.model_validate(parsed.spec.to_json())
    except ValidationError as error:  # a stored template the models refuse (written by a newer or older version)
        return None, [Problem(f"{TEMPLATE}.{field_path(e['loc'])}", str(e["msg"]), "InvalidSpec") for e in error.errors()]
    meta = parsed.metadata
    labels = dict(meta.labels or {}) if meta else {}
    annotations = dict(meta.annotations or {}) if meta else {}
    return SubmitRequest.model_construct(name=None, labels=labels, annotations=annotations, spec=spec), []


def build(namespace: str, request: ScheduleRequest, created_by: str) -> dict[str, Any]:
    """The TaskSchedule body; the creator is recorded as Task submitters are (kubetask.io/submitted-by)."""
    return {
        "apiVersion": API_VERSION, "kind": "TaskSchedule",
        "metadata": {"name": request.name, "namespace": namespace, "labels": dict(request.labels),
                     "annotations": {**request.annotations, ANNOTATION_SUBMITTED_BY: created_by}},
        "spec": request.spec.to_json(),
    }
