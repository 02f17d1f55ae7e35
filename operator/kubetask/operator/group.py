"""A TaskGroup's status and its callback, decided from its members. Pure: no I/O.

Members are the Tasks labelled kubetask.io/group=<group>. The group is *complete* once it has
`spec.size` members (at least one when size is unset) and every one has finished its current
run. Then:
- without a callback, the group is Finished, and Succeeded if every member Succeeded;
- with `callback.when: Succeeded` (Celery's chord), the callback Task is created if every member
  Succeeded; if one did not, the group is Finished and Failed (`MembersFailed`) and no callback runs;
- with `callback.when: Finished`, the callback is created whatever the members' outcomes;
- with a callback, the group is Finished once the callback is, and Succeeded if it Succeeded.
The callback's name is <group>-callback, so it is created at most once (a second create is a 409).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubetask.operator.status import condition, rfc3339
from kubetask.resources.grouping import callback_name
from kubetask.resources.models import API_VERSION, MAX_PARAMETERS_BYTES, Phase

LABEL_CALLBACK_OF = "kubetask.io/callback-of"  # on the callback Task: whose callback it is
COUNTED = ("pending", "queued", "running", "succeeded", "failed", "cancelled")
# The callback's parameters keep room for the template's own: the members' part gets this much.
GROUP_PARAMETERS_BUDGET = MAX_PARAMETERS_BYTES * 3 // 4


@dataclass(frozen=True)
class Member:
    name: str
    uid: str
    phase: str  # "" until the operator wrote a status
    finished: bool  # finished for its current run


@dataclass(frozen=True)
class GroupPlan:
    status: dict[str, Any]
    create_callback: bool = False  # the group is complete and its callback does not exist yet


def counts(members: list[Member]) -> dict[str, int]:
    tally = {key: 0 for key in COUNTED}
    for member in members:
        key = (member.phase or Phase.PENDING.value).lower()
        if key in tally:
            tally[key] += 1
    return {"total": len(members), **tally}


def plan(group: dict[str, Any], members: list[Member], callback: Member | None, now: datetime) -> GroupPlan:
    meta, spec, previous = group["metadata"], group.get("spec") or {}, group.get("status") or {}
    generation, stamp = meta.get("generation"), rfc3339(now)
    old = {c["type"]: c for c in previous.get("conditions") or []}
    tally = counts(members)
    size = spec.get("size")
    complete = len(members) >= (size or 1) and all(m.finished for m in members)
    all_succeeded = complete and tally["succeeded"] == len(members)
    wanted = spec.get("callback")
    create = False

    if not complete:
        waiting = f"{len(members)} of {size} members exist" if size and len(members) < size else \
            f"{sum(1 for m in members if m.finished)} of {len(members)} members finished"
        finished, succeeded, reason, message = "False", "Unknown", "Running", waiting
    elif wanted is None:
        finished, succeeded = "True", "True" if all_succeeded else "False"
        reason = "Succeeded" if all_succeeded else "MembersFailed"
        message = f"{tally['succeeded']} of {len(members)} members succeeded"
    elif wanted.get("when", "Succeeded") == "Succeeded" and not all_succeeded:
        finished, succeeded, reason = "True", "False", "MembersFailed"
        message = f"{len(members) - tally['succeeded']} of {len(members)} members did not succeed: the callback does not run"
    elif callback is None:
        create = True
        finished, succeeded, reason, message = "False", "Unknown", "CallbackPending", f"creating the callback Task {callback_name(meta['name'])}"
    elif not callback.finished:
        finished, succeeded, reason, message = "False", "Unknown", "CallbackRunning", f"the callback Task {callback.name} is {callback.phase or 'Pending'}"
    else:
        ok = callback.phase == Phase.SUCCEEDED.value
        finished, succeeded = "True", "True" if ok else "False"
        reason = "Succeeded" if ok else "CallbackFailed"
        message = f"the callback Task {callback.name} {callback.phase}"

    conditions = [
        condition(old, "Finished", finished, reason, message, generation, stamp),
        condition(old, "Succeeded", succeeded, reason, message, generation, stamp),
        # kstatus: Ready True is Current; Stalled True is Failed (finished without success).
        condition(old, "Ready", "True" if finished == "True" and succeeded == "True" else "False", reason, message, generation, stamp),
        condition(old, "Stalled", "True" if finished == "True" and succeeded == "False" else "False", reason,
                  message if finished == "True" and succeeded == "False" else "", generation, stamp),
    ]
    completion = previous.get("completionTime") if finished == "True" else None
    status = {
        "counts": tally,
        "callbackTask": callback.name if callback else (callback_name(meta["name"]) if create else previous.get("callbackTask")),
        "callbackPhase": (callback.phase or Phase.PENDING.value) if callback else None,
        "completionTime": completion or (stamp if finished == "True" else None),
        "observedGeneration": generation,
        "conditions": conditions,
    }
    return GroupPlan(status=status, create_callback=create)


def callback_task(group: dict[str, Any], members: list[dict[str, Any]]) -> dict[str, Any]:
    """The callback Task: the template, with the group added to its parameters under `group`: the
    counts and each member's name, phase and result, as long as they fit (then names and phases
    only, then counts only: the handler can list the members by their label)."""
    meta = group["metadata"]
    template = group["spec"]["callback"]["taskTemplate"]
    template_meta = template.get("metadata") or {}
    rows = sorted(({"name": t["metadata"]["name"], "phase": (t.get("status") or {}).get("phase", ""),
                    "result": (t.get("status") or {}).get("result")} for t in members), key=lambda r: r["name"])
    summary: dict[str, Any] = {"name": meta["name"], "label": f"kubetask.io/group={meta['name']}",
                               "counts": counts([Member(r["name"], "", r["phase"], True) for r in rows])}
    for shape in ("results", "names", "counts"):
        if shape == "results":
            candidate = {**summary, "members": rows}
        elif shape == "names":
            candidate = {**summary, "members": [{"name": r["name"], "phase": r["phase"]} for r in rows], "resultsOmitted": True}
        else:
            candidate = {**summary, "membersOmitted": True}
        if len(json.dumps(candidate, separators=(",", ":"))) <= GROUP_PARAMETERS_BUDGET:
            summary = candidate
            break
    spec = dict(template["spec"])
    spec["parameters"] = {**(spec.get("parameters") or {}), "group": summary}
    return {
        "apiVersion": API_VERSION, "kind": "Task",
        "metadata": {
            "name": callback_name(meta["name"]), "namespace": meta["namespace"],
            "labels": {**(template_meta.get("labels") or {}), LABEL_CALLBACK_OF: meta["name"]},
            "annotations": dict(template_meta.get("annotations") or {}),
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": "TaskGroup", "name": meta["name"], "uid": meta["uid"], "controller": True}],
        },
        "spec": spec,
    }
