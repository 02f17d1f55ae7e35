"""GitOps health of a Task: the Argo CD Lua health check (run for real, Lua 5.1 like Argo CD's
gopher-lua) and kstatus (what Flux waits on), for Tasks in every phase.

The Tasks' status blocks are made by the operator's own pure function (`task_status`), so a change
in the conditions the operator writes shows up here, not in production."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from chart_helpers import chart_bin, helm, render  # noqa: F401  (fixtures)
from gitops_checks import LUA, argocd_health, kstatus
from kubetask.operator.status import Verdict, task_status
from kubetask.resources.models import Phase

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def task(verdict: Verdict | None, generation: int = 1, observed: int | None = None, **meta: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "kubetask.io/v1alpha1", "kind": "Task",
        "metadata": {"name": "t", "namespace": "team-a", "generation": generation, **meta},
        "spec": {"type": "echo", "parameters": {"message": "hi"}},
    }
    if verdict is not None:
        obj["status"] = task_status(verdict, {}, generation=observed or generation, queue="default", run=0, now=NOW)
    return obj


JOB = "t-0-abcde"
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # (what, task, Argo CD health, kstatus)
    ("Pending: unknown TaskType (Stalled)", task(Verdict(Phase.PENDING, "UnknownTaskType", "TaskType 'echo' does not exist")), "Degraded", "Failed"),
    ("Queued: queue full", task(Verdict(Phase.QUEUED, "WaitingForCapacity", "TaskQueue 'default' is full")), "Progressing", "InProgress"),
    ("Queued: queue missing", task(Verdict(Phase.QUEUED, "QueueNotFound", "TaskQueue 'default' does not exist")), "Progressing", "InProgress"),
    ("Queued: queue paused", task(Verdict(Phase.QUEUED, "QueuePaused", "TaskQueue 'default' is paused")), "Suspended", "InProgress"),
    ("Running: pod pending", task(Verdict(Phase.RUNNING, "PodPending", "waiting for the handler pod", job_name=JOB)), "Progressing", "InProgress"),
    ("Running: unschedulable", task(Verdict(Phase.RUNNING, "Unschedulable", "0/5 nodes are available", job_name=JOB)), "Progressing", "InProgress"),
    ("Running: pod running", task(Verdict(Phase.RUNNING, "PodRunning", "the handler is running", job_name=JOB, pod_running=True,
                                          start_time="2026-01-02T03:04:00Z")), "Progressing", "InProgress"),
    ("Running: retrying", task(Verdict(Phase.RUNNING, "Retrying", "attempt 2 running after exit code 1", attempts=2, job_name=JOB,
                                       pod_running=True)), "Progressing", "InProgress"),
    ("Succeeded", task(Verdict(Phase.SUCCEEDED, "Succeeded", "the handler succeeded", attempts=1, result={"ok": True}, job_name=JOB,
                               start_time="2026-01-02T03:04:00Z", completion_time="2026-01-02T03:04:05Z")), "Healthy", "Current"),
    ("Failed: retries exhausted", task(Verdict(Phase.FAILED, "BackoffLimitExceeded", "failed 3 time(s), no retries left", attempts=3,
                                               job_name=JOB, failure={"reason": "BackoffLimitExceeded", "exitCode": 1})), "Degraded", "Failed"),
    ("Failed: deadline", task(Verdict(Phase.FAILED, "DeadlineExceeded", "ran past timeoutSeconds", job_name=JOB)), "Degraded", "Failed"),
    ("Failed: non-retryable exit code", task(Verdict(Phase.FAILED, "PodFailurePolicy", "exited with a non-retryable exit code",
                                                     job_name=JOB)), "Degraded", "Failed"),
    ("Failed: invalid parameters", task(Verdict(Phase.FAILED, "InvalidParameters", "parameters.message: required")), "Degraded", "Failed"),
    ("Failed: Job deleted", task(Verdict(Phase.FAILED, "JobDeleted", "Job was deleted before it finished", job_name=JOB)), "Degraded", "Failed"),
    ("Cancelled while queued", task(Verdict(Phase.CANCELLED, "Cancelled", "cancelled before it started")), "Degraded", "Failed"),
    ("Cancelled while running", task(Verdict(Phase.CANCELLED, "Cancelled", "the handler got SIGTERM", job_name=JOB)), "Degraded", "Failed"),
    # spec.rerun raised on a Failed Task: the status still describes generation 1.
    ("Rerun requested, not yet observed", task(Verdict(Phase.FAILED, "BackoffLimitExceeded", "no retries left", job_name=JOB),
                                               generation=2, observed=1), "Progressing", "InProgress"),
]


@pytest.mark.parametrize(("what", "obj", "argo", "flux"), CASES, ids=[c[0] for c in CASES])
def test_health_in_every_phase(what: str, obj: dict[str, Any], argo: str, flux: str) -> None:
    health = argocd_health(obj)
    assert health["status"] == argo, f"{what}: Argo CD says {health}"
    assert health["message"], "Argo CD shows a message for every state"
    assert kstatus(obj)[0] == flux, f"{what}: kstatus says {kstatus(obj)}"


def test_every_phase_is_covered() -> None:
    phases = {case[1]["status"]["phase"] for case in CASES}
    assert phases == {p.value for p in Phase}


def test_status_conditions_follow_kstatus() -> None:
    """What Flux reads, condition by condition: Ready on success, Stalled on terminal failure,
    Reconciling while in progress, observedGeneration always."""
    for what, obj, _, flux in CASES:
        conditions = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
        assert obj["status"]["observedGeneration"] is not None
        assert all(c.get("observedGeneration") is not None for c in obj["status"]["conditions"]), what
        if flux == "Current":
            assert conditions["Ready"] == "True" and conditions["Reconciling"] == "False" and conditions["Stalled"] == "False", what
        elif flux == "Failed":
            assert conditions["Stalled"] == "True" and conditions["Ready"] == "False", what
        elif obj["status"]["observedGeneration"] == obj["metadata"]["generation"]:
            assert conditions["Reconciling"] == "True" and conditions["Ready"] == "False", what


def test_task_without_status() -> None:
    """Just created, before the operator wrote anything."""
    fresh = task(None)
    assert argocd_health(fresh) == {"status": "Progressing", "message": "Waiting for the kubetask operator to report status"}
    # With nothing to read, kstatus assumes a custom resource is Current (its documented fallback).
    assert kstatus(fresh)[0] == "Current"


def test_fresh_task_as_the_api_server_returns_it() -> None:
    """Flux could take a Task the operator has not seen yet for done: kstatus calls a custom resource
    without conditions Current. The API server closes that gap when the CRD defaults
    status.observedGeneration to 0 (structural defaults apply when an object is read): a new Task
    then reads generation 1, observedGeneration 0, which kstatus calls InProgress."""
    crd = yaml.safe_load((REPO / "crds" / "kubetask.io_tasks.yaml").read_text())
    status_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    fresh = task(None)
    if "default" in status_schema:
        fresh["status"] = dict(status_schema["default"])
        for name, prop in status_schema.get("properties", {}).items():
            if "default" in prop and name not in fresh["status"]:
                fresh["status"][name] = prop["default"]
    assert kstatus(fresh)[0] == "InProgress"
    assert argocd_health(fresh)["status"] == "Progressing"


def test_deleting_task_is_terminating_for_kstatus() -> None:
    obj = task(Verdict(Phase.RUNNING, "PodRunning", "running", job_name=JOB, pod_running=True), deletionTimestamp="2026-01-02T03:05:00Z")
    assert kstatus(obj)[0] == "Terminating"


def test_unknown_phase_is_unknown() -> None:
    obj = task(None)
    obj["status"] = {"phase": "Exploded", "observedGeneration": 1}
    assert argocd_health(obj)["status"] == "Unknown"


def test_the_lua_is_lua51_and_uses_no_library_argo_cd_lacks() -> None:
    code = "\n".join(line.split("--", 1)[0] for line in LUA.read_text().splitlines())
    for forbidden in ("require", "io.", "os.", "goto ", "//", "load(", "dofile", "string.pack", "utf8."):
        assert forbidden not in code, f"{forbidden!r} is not available in Argo CD's Lua (gopher-lua, Lua 5.1, safe libraries)"


def test_docs_and_chart_ship_the_same_lua(render: Any) -> None:
    script = LUA.read_text()
    docs = (REPO / "docs" / "gitops.md").read_text()
    block = re.search(r"resource\.customizations\.health\.kubetask\.io_Task: \|\n((?:    .*\n|\n)+)", docs)
    assert block, "docs/gitops.md shows the argocd-cm snippet"
    shipped = "\n".join(line[4:] for line in block.group(1).rstrip("\n").split("\n")) + "\n"
    assert shipped == script, "docs/gitops.md must carry charts/kubetask/files/argocd-health-task.lua verbatim"
    configmap = [d for d in render(sets={"gitops": {"argocd": {"healthCheck": True}}}) if d["kind"] == "ConfigMap"]
    assert configmap[0]["data"]["resource.customizations.health.kubetask.io_Task"] == script
