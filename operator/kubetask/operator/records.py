"""The small records the operator indexes about Tasks beyond the unfinished ones. Pure.

- `FinishedTask`: every finished Task, for retention (when may it be deleted, and may it be at
  all) and for rate limits (when did it start: the recorded start times are the bucket).
- `ScheduledTask`: every Task a TaskSchedule made, finished or not, for its status (active,
  lastSuccessfulTime), its concurrency policy and its history limits.

They are summaries on purpose: a restart lists every Task, and 10,000 finished Tasks must not
cost the memory of 10,000 bodies.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any

from kubetask.operator.status import epoch
from kubetask.operator.webhooks import Record as WebhookRecord, records_of
from kubetask.resources.scheduling import ANNOTATION_SCHEDULED_TIME, LABEL_SCHEDULE

# What Argo CD and Flux put on what they apply. A Task carrying one is never deleted by retention:
# the GitOps tool would apply it again, and it would run again.
GITOPS_MARKERS: tuple[tuple[str, str, str], ...] = (
    # (where, key, who)
    ("annotations", "argocd.argoproj.io/tracking-id", "Argo CD"),  # annotation tracking (the default since Argo CD 3)
    ("labels", "app.kubernetes.io/instance", "Argo CD"),  # label tracking (Argo CD 2's default); Helm charts set it too
    ("labels", "argocd.argoproj.io/instance", "Argo CD"),  # a common custom tracking label
    ("labels", "kustomize.toolkit.fluxcd.io/name", "Flux"),  # Flux kustomize-controller
    ("labels", "helm.toolkit.fluxcd.io/name", "Flux"),  # Flux helm-controller
)
RETAINED_CONDITION = "Retained"


def gitops_owner(metadata: Mapping[str, Any]) -> str | None:
    """'Argo CD (annotation argocd.argoproj.io/tracking-id)' when a GitOps tool applied it, else None."""
    for where, key, who in GITOPS_MARKERS:
        if key in (metadata.get(where) or {}):
            return f"{who} ({where[:-1]} {key})"
    return None


@dataclass(frozen=True)
class FinishedTask:
    namespace: str
    name: str
    uid: str
    type: str
    queue: str
    phase: str
    started: float | None  # status.startTime (its Job's creation), seconds since the epoch
    finished: float  # status.completionTime
    retention_seconds: int | None  # the Task's own spec.retentionSeconds
    gitops: str | None  # who applied it, when a GitOps tool did
    retained_noted: bool  # its status already says why retention keeps it
    schedule: str | None
    run: int = 0  # status.run: with uid, which start this is (a re-run starts again)
    after: tuple[str, ...] = ()  # spec.after: the Tasks it depended on
    reason: str = ""  # the Ready condition's reason (DependencyFailed: revived when its upstream succeeds)
    webhook: str | None = None  # spec.webhook
    webhooks: tuple[WebhookRecord, ...] = ()  # status.webhooks, without the result texts: which deliveries are still due


def summarize_finished(body: Mapping[str, Any]) -> FinishedTask | None:
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    finished = epoch(status.get("completionTime"))
    if finished is None:
        return None
    retention = spec.get("retentionSeconds")
    return FinishedTask(
        namespace=meta["namespace"], name=meta["name"], uid=meta["uid"], type=str(spec.get("type", "")),
        queue=str(status.get("queue") or ""), phase=str(status.get("phase", "")),
        started=epoch(status.get("startTime")), finished=finished,
        retention_seconds=int(retention) if retention is not None else None,
        gitops=gitops_owner(meta),
        retained_noted=any(c.get("type") == RETAINED_CONDITION for c in status.get("conditions") or []),
        schedule=(meta.get("labels") or {}).get(LABEL_SCHEDULE),
        run=int(status.get("run") or 0),
        after=tuple(spec.get("after") or ()),
        reason=next((str(c.get("reason", "")) for c in status.get("conditions") or [] if c.get("type") == "Ready"), ""),
        webhook=spec.get("webhook"),
        webhooks=records_of(status),
    )


@dataclass(frozen=True)
class ScheduledTask:
    name: str
    uid: str
    phase: str  # "" until the operator wrote a status
    finished: bool
    scheduled: float | None  # the kubetask.io/scheduled-time annotation
    completed: float | None  # status.completionTime
    created: str


def summarize_scheduled(body: Mapping[str, Any], finished: bool) -> ScheduledTask:
    meta, status = body["metadata"], body.get("status") or {}
    return ScheduledTask(
        name=meta["name"], uid=meta["uid"], phase=str(status.get("phase") or ""), finished=finished,
        scheduled=epoch((meta.get("annotations") or {}).get(ANNOTATION_SCHEDULED_TIME)),
        completed=epoch(status.get("completionTime")), created=str(meta.get("creationTimestamp", "")),
    )
