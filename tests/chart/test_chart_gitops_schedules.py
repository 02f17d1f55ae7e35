"""GitOps health of a TaskSchedule: the Argo CD Lua health check (run for real, Lua 5.1) and
kstatus (what Flux waits on), on status blocks made by the operator's own schedule plans."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from chart_helpers import chart_bin, helm, render  # noqa: F401  (fixtures)
from gitops_checks import argocd_health, kstatus
from kubetask.operator.schedule import plan

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "charts" / "kubetask" / "files" / "argocd-health-taskschedule.lua"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def schedule(generation: int = 1, planned: bool = True, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "kubetask.io/v1alpha1", "kind": "TaskSchedule",
        "metadata": {"name": "nightly", "namespace": "team-a", "uid": "u", "generation": generation,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"schedule": "0 2 * * *", "taskTemplate": {"spec": {"type": "echo"}}, **spec},
    }
    if not planned:
        obj["status"] = {"observedGeneration": 0}  # the CRD's default before the operator's first write
    else:
        decided = plan(obj, [], NOW)
        assert decided.status is not None
        obj["status"] = decided.status
    return obj


def health(obj: dict[str, Any]) -> str:
    return argocd_health(obj, SCRIPT.read_text())["status"]


@pytest.mark.parametrize(("what", "obj", "argo", "flux"), [
    ("not yet seen by the operator", schedule(planned=False), "Progressing", "InProgress"),
    ("scheduled", schedule(), "Healthy", "Current"),
    ("suspended", schedule(suspend=True), "Suspended", "Current"),
    ("invalid (February 30th)", schedule(schedule="0 0 30 2 *"), "Degraded", "InProgress"),
])
def test_schedule_health(what: str, obj: dict[str, Any], argo: str, flux: str) -> None:
    assert health(obj) == argo, what
    assert kstatus(obj)[0] == flux, what


def test_status_older_than_the_spec_is_progressing() -> None:
    obj = schedule()
    obj["metadata"]["generation"] = 2
    assert health(obj) == "Progressing"
    assert kstatus(obj)[0] == "InProgress"


def test_a_refused_create_is_degraded() -> None:
    obj = schedule()
    for c in obj["status"]["conditions"]:
        if c["type"] == "Ready":
            c.update(status="False", reason="TaskCreateRefused", message="exceeded quota")
    assert health(obj) == "Degraded"
    assert argocd_health(obj, SCRIPT.read_text())["message"] == "TaskCreateRefused: exceeded quota"


def test_docs_and_chart_ship_the_same_lua(render: Any) -> None:
    script = SCRIPT.read_text()
    docs = (REPO / "docs" / "gitops.md").read_text()
    block = re.search(r"resource\.customizations\.health\.kubetask\.io_TaskSchedule: \|\n((?:    .*\n|\n)+)", docs)
    assert block, "docs/gitops.md shows the argocd-cm snippet for TaskSchedule"
    shipped = "\n".join(line[4:] for line in block.group(1).rstrip("\n").split("\n")) + "\n"
    assert shipped == script, "docs/gitops.md must carry charts/kubetask/files/argocd-health-taskschedule.lua verbatim"
    configmap = [d for d in render(sets={"gitops": {"argocd": {"healthCheck": True}}}) if d["kind"] == "ConfigMap"]
    assert configmap[0]["data"]["resource.customizations.health.kubetask.io_TaskSchedule"] == script
