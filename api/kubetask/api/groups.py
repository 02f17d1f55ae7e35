"""TaskGroups in the gateway: the group a batch creates, empty groups, views, and live reads.

A TaskGroup's members are the Tasks labelled kubetask.io/group=<name> (grouping.LABEL_GROUP); the
operator counts them by phase, sets the Finished condition and creates the callback Task
<name>-callback once the group is complete. The gateway creates groups (`POST .../taskgroups`, or
a batch with `group`) and reads them from the API server on every request, as it reads
TaskSchedules: see `list_groups`.

A callback is checked exactly as a submission of the Task it becomes (its TaskType, parameters,
limits, queue), including the parameter `group` that the operator adds to it (the group's name,
counts and members): a callback that could never run is refused when the group is created, not
after every member ran.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubetask.api import schedules, submit
from kubetask.api.auth import User
from kubetask.api.errors import GatewayError, from_api_error, invalid, not_found
from kubetask.api.schemas import BatchGroup, GroupRequest, SubmitRequest, object_view
from kubetask.kube import ApiError, tasks_path
from kubetask.operator.naming import ANNOTATION_SUBMITTED_BY
from kubetask.resources.grouping import LABEL_GROUP, callback_name, member_metadata
from kubetask.resources.models import API_VERSION, GroupCallback
from kubetask.resources.validation import Problem

if TYPE_CHECKING:  # service.py imports this module
    from kubetask.api.service import Gateway

GROUPS = "taskgroups"
GROUP_PARAMETER = "group"  # the key of the callback's parameters that the operator fills in
# Members are dry-run before their group exists: their ownerReference then names this uid.
PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"
PARAMETER_HINT = (" (the operator adds the parameter `group` to the callback: the group's name, label, counts and members; "
                  "the callback's TaskType must accept it)")
FINISHED_PHASES = ("succeeded", "failed", "cancelled")


# -- callbacks ---------------------------------------------------------------------------------

def _template_field(prefix: str, field: str) -> str:
    """A submission's field as the callback template's: spec.x → <prefix>.spec.x, labels[k] → <prefix>.metadata.labels[k]."""
    if field.startswith(("labels", "annotations")):
        return f"{prefix}.metadata.{field}"
    return f"{prefix}.{field}"


def summary_placeholder(name: str, size: int | None) -> dict[str, Any]:
    """What the operator puts under `group` in the callback's parameters (group.callback_task), with no members yet."""
    counts = {"total": size or 0, "pending": 0, "queued": 0, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0}
    return {"name": name, "label": f"{LABEL_GROUP}={name}", "counts": counts, "members": []}


async def callback_problems(gw: Gateway, namespace: str, group: str, size: int | None, callback: GroupCallback | None,
                            prefix: str) -> list[Problem]:
    """What would stop the callback being created as a Task, named as fields under `prefix`
    (group.callback.taskTemplate for a batch, spec.callback.taskTemplate for POST .../taskgroups)."""
    if callback is None:
        return []
    request, problems = schedules.template_submission(callback.task_template.to_json())
    if request is None:
        return [Problem(p.field.replace(schedules.TEMPLATE, prefix, 1), p.message, p.reason) for p in problems]
    own = dict(request.spec.parameters or {})
    found: list[Problem] = []
    if GROUP_PARAMETER in own:
        found.append(Problem(f"{prefix}.spec.parameters.{GROUP_PARAMETER}", "is reserved: the operator sets it to the group's summary "
                             "(name, label, counts, members); leave it out", "Reserved"))
    spec = request.spec.model_copy(update={"parameters": {**own, GROUP_PARAMETER: summary_placeholder(group, size)}})
    checked = SubmitRequest.model_construct(name=None, labels=request.labels, annotations=request.annotations, spec=spec)
    for problem in await gw.check(namespace, checked):
        message = problem.message
        if problem.field.startswith(f"spec.parameters.{GROUP_PARAMETER}") or \
                (problem.field == "spec.parameters" and f"'{GROUP_PARAMETER}'" in message):
            message += PARAMETER_HINT
        found.append(Problem(_template_field(prefix, problem.field), message, problem.reason))
    return found


def callback_taken(gw: Gateway, namespace: str, group: str, callback: GroupCallback | None) -> GatewayError | None:
    """409 when a Task already has the name the callback will get (the operator would find it in the way)."""
    if callback is None or gw.tasks.get(namespace, callback_name(group)) is None:
        return None
    return GatewayError(409, f"Task {callback_name(group)!r} already exists in namespace {namespace}: it is the name the group's callback "
                        "Task would get; choose another group name", reason="AlreadyExists", details=[("group.name", "callback name taken")])


# -- bodies ------------------------------------------------------------------------------------

def build(namespace: str, name: str, spec: dict[str, Any], created_by: str, labels: dict[str, str] | None = None,
          annotations: dict[str, str] | None = None, idempotency: str | None = None, digest: str | None = None) -> dict[str, Any]:
    """The TaskGroup body; the creator is recorded as Task submitters are (kubetask.io/submitted-by)."""
    meta_labels = dict(labels or {})
    meta_annotations = {**(annotations or {}), ANNOTATION_SUBMITTED_BY: created_by}
    if idempotency:
        meta_labels[submit.IDEMPOTENCY_LABEL] = idempotency
    if digest:
        meta_annotations[submit.REQUEST_DIGEST_ANNOTATION] = digest
    return {"apiVersion": API_VERSION, "kind": "TaskGroup",
            "metadata": {"name": name, "namespace": namespace, "labels": meta_labels, "annotations": meta_annotations},
            "spec": spec}


def join(task_body: dict[str, Any], group: dict[str, Any]) -> None:
    """Make a Task body a member: the group label and the group as owner (grouping.member_metadata)."""
    member = member_metadata(group)
    meta = task_body["metadata"]
    meta["labels"] = {**(meta.get("labels") or {}), **member["labels"]}
    meta["ownerReferences"] = member["ownerReferences"]


def _already_exists(name: str, namespace: str) -> GatewayError:
    return GatewayError(409, f"TaskGroup {name!r} already exists in namespace {namespace}", reason="AlreadyExists",
                        details=[("group.name", "a TaskGroup with this name exists")])


def _group_field(field: str) -> str:
    """An API-server field of the TaskGroup as the batch request's: spec.callback... → group.callback..., metadata.name → group.name."""
    if field.startswith("spec."):
        return "group." + field.removeprefix("spec.")
    if field == "metadata.name":
        return "group.name"
    return f"group.{field}" if field else "group"


# -- a batch's group -----------------------------------------------------------------------------

@dataclass
class BatchGroupPlan:
    """The TaskGroup of a batch on its way to the API server."""

    name: str
    body: dict[str, Any]
    error: dict[str, Any] | None = None  # the error shape's `error` object when the group cannot be created
    idempotency: str | None = None
    digest: str | None = None
    replay: dict[str, Any] | None = None  # the group an earlier attempt with this Idempotency-Key created


def _digest(group: BatchGroup, size: int) -> str:
    canonical = json.dumps({"group": group.model_dump(by_alias=True, exclude_none=True, mode="json"), "size": size},
                           sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:40]


async def prepare_batch(gw: Gateway, namespace: str, group: BatchGroup, size: int, user: User, key: str | None) -> BatchGroupPlan:
    """Check a batch's group (its callback as a submission, its name) and build its body: spec.size is the item count.

    With an Idempotency-Key the group is marked like the items, so a retried batch finds the group its
    first attempt created and goes on with it (its items replay) instead of answering 409."""
    spec: dict[str, Any] = {"size": size}
    if group.callback is not None:
        spec["callback"] = group.callback.to_json()
    idempotency = submit.idempotency_hash(namespace, user.username, f"{key}#group") if key is not None else None
    digest = _digest(group, size) if key is not None else None
    plan = BatchGroupPlan(group.name, build(namespace, group.name, spec, user.username, idempotency=idempotency, digest=digest),
                          idempotency=idempotency, digest=digest)
    if idempotency is not None and digest is not None:
        existing = await read_optional(gw, namespace, group.name)
        if existing is not None and submit.same_submission(existing, idempotency, digest, user.username):
            plan.replay = existing
            return plan
    problems = await callback_problems(gw, namespace, group.name, size, group.callback, "group.callback.taskTemplate")
    if problems:
        plan.error = invalid(problems, what=f"the group {group.name!r}").info()
    elif (taken := callback_taken(gw, namespace, group.name, group.callback)) is not None:
        plan.error = taken.info()
    return plan


async def dry_run(gw: Gateway, namespace: str, plan: BatchGroupPlan) -> dict[str, Any] | None:
    """What the API server would say to the group (a taken name, CEL rules), without creating it."""
    if plan.replay is not None:
        return None
    try:
        await gw.kube.create(tasks_path(namespace, plural=GROUPS), plan.body, dryRun="All")
    except ApiError as error:
        if error.status == 409:
            return _already_exists(plan.name, namespace).info()
        mapped = from_api_error(error, f"the group {plan.name!r}")
        if mapped.status >= 500:
            raise mapped from error
        info = mapped.info()
        info["details"] = [{"field": _group_field(d["field"]), "message": d["message"]} for d in info["details"]]
        return info
    return None


def placeholder(plan: BatchGroupPlan) -> dict[str, Any]:
    """The group as its members' dry runs see it (it does not exist yet)."""
    return {"metadata": {"name": plan.name, "uid": PLACEHOLDER_UID}}


async def create_batch_group(gw: Gateway, namespace: str, plan: BatchGroupPlan, user: User) -> dict[str, Any]:
    """Create the group (before its members: they need its uid). A GatewayError here means nothing was created."""
    if plan.replay is not None:
        return plan.replay
    try:
        return await gw.kube.create(tasks_path(namespace, plural=GROUPS), plan.body)
    except ApiError as error:
        if error.status == 409:
            existing = await read_optional(gw, namespace, plan.name) if plan.idempotency else None
            if existing is not None and plan.idempotency and plan.digest and \
                    submit.same_submission(existing, plan.idempotency, plan.digest, user.username):
                return existing  # a concurrent retry of this very batch created it a moment ago
            raise _already_exists(plan.name, namespace) from error
        raise from_api_error(error, f"creating TaskGroup {plan.name}") from error


# -- POST .../taskgroups -----------------------------------------------------------------------

async def create_group(gw: Gateway, namespace: str, request: GroupRequest, user: User) -> dict[str, Any]:
    """An empty group: members join by label (kubectl), or it is followed as members appear."""
    problems = submit.metadata_problems(request.labels, request.annotations)
    problems += await callback_problems(gw, namespace, request.name, request.spec.size, request.spec.callback, "spec.callback.taskTemplate")
    if problems:
        raise invalid(problems, what=f"the TaskGroup {request.name!r}")
    taken = callback_taken(gw, namespace, request.name, request.spec.callback)
    if taken is not None:
        raise GatewayError(taken.status, taken.message, reason=taken.reason, details=[("name", "callback name taken")])
    body = build(namespace, request.name, request.spec.to_json(), user.username, request.labels, request.annotations)
    try:
        return await gw.kube.create(tasks_path(namespace, plural=GROUPS), body)
    except ApiError as error:
        if error.status == 409:
            raise GatewayError(409, f"TaskGroup {request.name!r} already exists in namespace {namespace}", reason="AlreadyExists") from error
        raise from_api_error(error, f"creating TaskGroup {request.name}") from error


# -- reads ---------------------------------------------------------------------------------------
# Read live from the API server, not from a watch cache as Tasks are. The counts are the operator's
# (status.counts), so a cache would only save the GET; every answer is then exactly what the API
# server holds (a batch's idempotent retry needs the group's current uid for its members'
# ownerReferences); paging is the API server's own (limit + continue), so a namespace with many
# groups costs one page per request; and the gateway keeps no watch, and no /readyz dependency,
# on a CRD that a cluster upgraded gateway-first may not have yet.

def _no_crd(error: ApiError) -> GatewayError:
    return GatewayError(404, "the cluster serves no TaskGroups (is the taskgroups.kubetask.io CRD installed?)")


async def list_groups(gw: Gateway, namespace: str, limit: int, token: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    if token:
        params["continue"] = token
    try:
        answer = await gw.kube.get(tasks_path(namespace, plural=GROUPS), **params)
    except ApiError as error:
        if error.status == 404:
            raise _no_crd(error) from error
        if token and error.status in (400, 410):  # malformed, or expired (the API server's tokens pin a resourceVersion)
            message = f"the continue token was not accepted: {error.message}; list again from the start"
            raise GatewayError(422, message, details=[("continue", message)]) from error
        raise from_api_error(error, "listing TaskGroups") from error
    items: list[dict[str, Any]] = answer.get("items") or []
    next_token = (answer.get("metadata") or {}).get("continue") or None
    return {"items": [view(item) for item in items], "continue": next_token}


async def read_optional(gw: Gateway, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return await gw.kube.get(tasks_path(namespace, name, plural=GROUPS))
    except ApiError as error:
        if error.status == 404:
            return None
        raise from_api_error(error, f"reading TaskGroup {name}") from error


async def read_group(gw: Gateway, namespace: str, name: str) -> dict[str, Any]:
    found = await read_optional(gw, namespace, name)
    if found is None:
        raise not_found("TaskGroup", namespace, name)
    return found


# -- views ---------------------------------------------------------------------------------------

def _count(counts: dict[str, Any], key: str) -> int:
    value = counts.get(key)
    return value if isinstance(value, int) and value >= 0 else 0


def progress(obj: dict[str, Any]) -> dict[str, int]:
    """Finished members of the expected ones. The expected number is spec.size while fewer exist (the rest are
    still to be created), else the members that exist; the callback is not a member (see `phase`)."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    counts = status.get("counts") or {}
    done = sum(_count(counts, key) for key in FINISHED_PHASES)
    size = _count(spec, "size")
    total = max(size, _count(counts, "total"), done)
    return {"finished": done, "total": total, "percent": done * 100 // total if total else 0}


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if isinstance(c, dict) and c.get("type") == kind), {})


def phase(obj: dict[str, Any]) -> str:
    status = obj.get("status") or {}
    if _condition(status, "Finished").get("status") == "True":
        return "Succeeded" if _condition(status, "Succeeded").get("status") == "True" else "Failed"
    return "Running" if _count(status.get("counts") or {}, "total") else "Pending"


def view(obj: dict[str, Any]) -> dict[str, Any]:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    finished = _condition(status, "Finished")
    name = meta.get("name", "")
    return {
        **object_view(obj),
        "phase": phase(obj),
        "finished": finished.get("status") == "True",
        "reason": finished.get("reason"),
        "message": finished.get("message"),
        "progress": progress(obj),
        "memberSelector": f"{LABEL_GROUP}={name}",
    }
