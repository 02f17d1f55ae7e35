"""What belongs to a TaskGroup and what its callback looks like. Shared by the operator (counts,
the callback) and the gateway (batch submissions into a group)."""

from __future__ import annotations

from typing import Any

from kubetask.resources.models import API_VERSION

LABEL_GROUP = "kubetask.io/group"  # a Task's group: members are the Tasks with this label
CALLBACK_SUFFIX = "-callback"


def callback_name(group: str) -> str:
    """The callback Task's name: a pure function of the group, so it is created at most once."""
    return group + CALLBACK_SUFFIX


def member_metadata(group: dict[str, Any]) -> dict[str, Any]:
    """Labels and ownerReference a member Task gets when the gateway creates it in a group
    (deleting the group deletes such members, as with a schedule's Tasks)."""
    meta = group["metadata"]
    return {"labels": {LABEL_GROUP: meta["name"]},
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": "TaskGroup", "name": meta["name"], "uid": meta["uid"]}]}
