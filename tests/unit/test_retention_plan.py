"""Retention: which finished Tasks are due for deletion, which are kept because GitOps applied them,
and when the next one comes due (the pure `plan`); and the paced Sweeper against a fake API."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import pytest

from kubetask.kube import ApiError
from kubetask.operator.records import FinishedTask, summarize_finished
from kubetask.operator.retention import (Plan, Sources, Sweeper, batch_size, plan, retained_condition, retention_of,
                                         seconds_until_next_sweep, with_condition)
from kubetask.operator.status import rfc3339

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
DAY = 86400


def body(name: str, finished_ago: float, retention: int | None = None, *, type_: str = "sim", queue: str = "q",
         labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None, retained: bool = False,
         namespace: str = "ns", uid: str | None = None, rerun: int = 0, run: int = 0) -> dict[str, Any]:
    conditions = [{"type": "Finished", "status": "True", "reason": "Succeeded", "message": "", "lastTransitionTime": "2027-01-01T00:00:00Z"}]
    if retained:
        conditions.append({"type": "Retained", "status": "True", "reason": "ManagedByGitOps", "message": "kept",
                           "lastTransitionTime": "2027-01-01T00:00:00Z"})
    spec: dict[str, Any] = {"type": type_, "rerun": rerun}
    if retention is not None:
        spec["retentionSeconds"] = retention
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": uid or f"uid-{name}", "resourceVersion": "7", "generation": 1,
                     "labels": labels or {}, "annotations": annotations or {}},
        "spec": spec,
        "status": {"phase": "Succeeded", "run": run, "queue": queue, "conditions": conditions,
                   "completionTime": rfc3339(datetime.fromtimestamp(NOW - finished_ago, timezone.utc))},
    }


def record(*args: Any, **kwargs: Any) -> FinishedTask:
    summary = summarize_finished(body(*args, **kwargs))
    assert summary is not None
    return summary


def sources(tasktypes: dict[tuple[str, str], int] | None = None, queues: dict[tuple[str, str], int] | None = None,
            default: int = 7 * DAY) -> Sources:
    types, qs = tasktypes or {}, queues or {}
    return Sources(tasktype=lambda ns, name: types.get((ns, name)), queue=lambda ns, name: qs.get((ns, name)), default_seconds=default)


def names(tasks: tuple[FinishedTask, ...]) -> list[str]:
    return [t.name for t in tasks]


# -- where the retention comes from -------------------------------------------------------------

@pytest.mark.parametrize(("case", "task", "src", "expected"), [
    ("the Task's own wins", record("t", 0, retention=60), sources({("ns", "sim"): 120}, {("ns", "q"): 180}), 60),
    ("its own 0 wins too", record("t", 0, retention=0), sources({("ns", "sim"): 120}), 0),
    ("else its TaskType's default", record("t", 0), sources({("ns", "sim"): 120}, {("ns", "q"): 180}), 120),
    ("the TaskType of its own namespace only", record("t", 0), sources({("other", "sim"): 120}, {("ns", "q"): 180}), 180),
    ("else its TaskQueue's", record("t", 0), sources(queues={("ns", "q"): 180}), 180),
    ("the queue in status.queue", record("t", 0, queue="other"), sources(queues={("ns", "q"): 180}), 7 * DAY),
    ("no queue recorded", record("t", 0, queue=""), sources(queues={("ns", ""): 180}), 7 * DAY),
    ("else the operator's default", record("t", 0), sources(), 7 * DAY),
    ("a negative default keeps forever", record("t", 0), sources(default=-1), None),
    ("a negative default does not override a queue's", record("t", 0), sources(queues={("ns", "q"): 5}, default=-1), 5),
])
def test_retention_resolution_order(case: str, task: FinishedTask, src: Sources, expected: int | None) -> None:
    assert retention_of(task, src) == expected, case


# -- what is due --------------------------------------------------------------------------------

@pytest.mark.parametrize(("case", "task", "src", "deleted", "retained"), [
    ("own retention passed", record("t", 61, retention=60), sources(), True, False),
    ("own retention not yet passed", record("t", 59, retention=60), sources(), False, False),
    ("exactly due", record("t", 60, retention=60), sources(), True, False),
    ("own retention outlives the defaults", record("t", 8 * DAY, retention=30 * DAY), sources(default=60), False, False),
    ("TaskType default passed", record("t", 121), sources({("ns", "sim"): 120}), True, False),
    ("TaskType default not passed, queue's would be", record("t", 121), sources({("ns", "sim"): 200}, {("ns", "q"): 100}), False, False),
    ("queue default passed", record("t", 181), sources(queues={("ns", "q"): 180}), True, False),
    ("operator default passed", record("t", 7 * DAY + 1), sources(), True, False),
    ("operator default not passed", record("t", 6 * DAY), sources(), False, False),
    ("negative default keeps forever", record("t", 3650 * DAY), sources(default=-1), False, False),
    ("Argo CD annotation tracking", record("t", 10, retention=1, annotations={"argocd.argoproj.io/tracking-id": "app:kubetask.io/Task:ns/t"}),
     sources(), False, True),
    ("Argo CD label tracking", record("t", 10, retention=1, labels={"app.kubernetes.io/instance": "app"}), sources(), False, True),
    ("Argo CD custom label", record("t", 10, retention=1, labels={"argocd.argoproj.io/instance": "app"}), sources(), False, True),
    ("Flux kustomize-controller", record("t", 10, retention=1, labels={"kustomize.toolkit.fluxcd.io/name": "apps"}), sources(), False, True),
    ("Flux helm-controller", record("t", 10, retention=1, labels={"helm.toolkit.fluxcd.io/name": "release"}), sources(), False, True),
    ("GitOps, status already says so: nothing to do", record("t", 10, retention=1, labels={"kustomize.toolkit.fluxcd.io/name": "apps"},
                                                            retained=True), sources(), False, False),
    ("GitOps, not due yet: nothing to do yet", record("t", 10, retention=60, labels={"kustomize.toolkit.fluxcd.io/name": "apps"}),
     sources(), False, False),
    ("other labels are not GitOps", record("t", 10, retention=1, labels={"app.kubernetes.io/name": "x", "team": "a"}), sources(), True, False),
])
def test_plan(case: str, task: FinishedTask, src: Sources, deleted: bool, retained: bool) -> None:
    decided = plan([task], src, NOW)
    assert (names(decided.delete), names(decided.retain)) == (["t"] if deleted else [], ["t"] if retained else []), case


def test_a_gitops_task_is_never_deleted_whatever_its_age() -> None:
    tasks = [record(f"t{i}", 3650 * DAY, retention=0, labels={"kustomize.toolkit.fluxcd.io/name": "apps"}, retained=bool(i % 2))
             for i in range(10)]
    assert plan(tasks, sources(default=0), NOW).delete == ()


def test_due_tasks_oldest_first() -> None:
    tasks = [record("b", 100, retention=10),  # due at NOW-90
             record("a", 100, retention=50),  # due at NOW-50
             record("c", 300, retention=10),  # due at NOW-290
             record("e", 100, retention=10, namespace="aa"),  # same due time as b: by finish time, then namespace
             record("d", 50, retention=10),  # due at NOW-40
             record("young", 5, retention=10)]
    assert names(plan(tasks, sources(), NOW).delete) == ["c", "e", "b", "a", "d"]
    gitops = {"kustomize.toolkit.fluxcd.io/name": "apps"}
    kept = [record("g2", 100, retention=10, labels=gitops), record("g1", 200, retention=10, labels=gitops)]
    assert names(plan(kept, sources(), NOW).retain) == ["g1", "g2"]


def test_next_due() -> None:
    gitops = {"kustomize.toolkit.fluxcd.io/name": "apps"}
    tasks = [record("due", 100, retention=10), record("in-50", 10, retention=60), record("in-20", 40, retention=60),
             record("forever-ish", 0, retention=365 * DAY)]
    assert plan(tasks, sources(), NOW).next_due == NOW + 20
    # A GitOps Task coming due counts (its status note is due then); one already noted never comes due again.
    assert plan([record("g", 0, retention=5, labels=gitops)], sources(), NOW).next_due == NOW + 5
    assert plan([record("g", 0, retention=5, labels=gitops, retained=True)], sources(), NOW).next_due is None
    assert plan([record("t", 0)], sources(default=-1), NOW).next_due is None
    assert plan([], sources(), NOW) == Plan(delete=(), retain=(), next_due=None)


def test_sweep_timing() -> None:
    assert batch_size(10, 30) == 300
    assert batch_size(0.5, 1) == 1
    assert seconds_until_next_sweep(None, 0, NOW, 30) == 30
    assert seconds_until_next_sweep(NOW + 5, 0, NOW, 30) == 5
    assert seconds_until_next_sweep(NOW + 0.01, 0, NOW, 30) == 1  # a floor: no busy loop
    assert seconds_until_next_sweep(NOW + 0.01, 0, NOW, 0.5) == 0.5
    assert seconds_until_next_sweep(NOW + 90, 0, NOW, 30) == 30
    assert seconds_until_next_sweep(None, 3, NOW, 30) == 0  # work left over: the next batch at once (writes are paced)


def test_retained_condition_names_the_tool() -> None:
    meta = {"generation": 3, "annotations": {"argocd.argoproj.io/tracking-id": "app:kubetask.io/Task:ns/t"}}
    condition = retained_condition(meta, datetime.fromtimestamp(NOW, timezone.utc))
    assert condition == {
        "type": "Retained", "status": "True", "reason": "ManagedByGitOps",
        "message": "kept past its retention: applied by Argo CD (annotation argocd.argoproj.io/tracking-id); "
                   "deleting it would make Argo CD apply it again and it would run again",
        "lastTransitionTime": "2027-01-15T08:00:00Z", "observedGeneration": 3}
    flux = retained_condition({"labels": {"helm.toolkit.fluxcd.io/name": "r"}}, datetime.fromtimestamp(NOW, timezone.utc))
    assert flux is not None and "applied by Flux (label helm.toolkit.fluxcd.io/name)" in flux["message"]
    assert "make Flux apply it again" in flux["message"]
    assert retained_condition({"labels": {"team": "a"}}, datetime.fromtimestamp(NOW, timezone.utc)) is None


def test_with_condition_is_a_list_map_by_type() -> None:
    old = [{"type": "Ready", "status": "True"}, {"type": "Retained", "status": "False"}]
    assert with_condition(old, {"type": "Retained", "status": "True"}) == [{"type": "Ready", "status": "True"},
                                                                             {"type": "Retained", "status": "True"}]
    assert with_condition([], {"type": "Retained", "status": "True"}) == [{"type": "Retained", "status": "True"}]


# -- the Sweeper, against a fake API server ----------------------------------------------------

class FakeKube:
    def __init__(self, objects: dict[str, dict[str, Any]], refuse: dict[str, ApiError] | None = None) -> None:
        self.objects = objects  # path → body
        self.refuse = refuse or {}
        self.calls: list[tuple[str, str, Any]] = []

    async def get(self, path: str, **_: Any) -> dict[str, Any]:
        self.calls.append(("GET", path, None))
        if path not in self.objects:
            raise ApiError(404, "NotFound", "gone")
        return self.objects[path]

    async def delete(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        self.calls.append(("DELETE", path, body))
        if path in self.refuse:
            raise self.refuse[path]
        self.objects.pop(path, None)
        return {}

    async def patch(self, path: str, body: Any, **_: Any) -> dict[str, Any]:
        self.calls.append(("PATCH", path, body))
        if path in self.refuse:
            raise self.refuse[path]
        return {}


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def path(name: str, namespace: str = "ns") -> str:
    return f"/apis/kubetask.io/v1alpha1/namespaces/{namespace}/tasks/{name}"


def sweeper(kube: FakeKube, clock: FakeClock, rate: float = 2.0) -> Sweeper:
    return Sweeper(kube, rate, clock=clock, sleep=clock.sleep, wall=lambda: NOW)  # type: ignore[arg-type]


def test_sweeper_deletes_with_preconditions_and_paces_writes() -> None:
    bodies = {path(n): body(n, 100, retention=10) for n in ("a", "b", "c")}
    kube, clock = FakeKube(dict(bodies)), FakeClock()
    decided = plan([record(n, 100, retention=10) for n in ("a", "b", "c")], sources(), NOW)
    asyncio.run(sweeper(kube, clock).execute(decided, sources(), batch=10))
    deletes = [(p, b) for verb, p, b in kube.calls if verb == "DELETE"]
    assert [p for p, _ in deletes] == [path("a"), path("b"), path("c")]
    assert deletes[0][1] == {"propagationPolicy": "Background", "preconditions": {"uid": "uid-a", "resourceVersion": "7"}}
    assert clock.slept == [0.5, 0.5]  # 2 per second: the first at once, then one every 0.5 s


def test_sweeper_pacing_holds_across_sweeps_and_batches() -> None:
    kube, clock = FakeKube({path(n): body(n, 100, retention=10) for n in "abcd"}), FakeClock()
    run = sweeper(kube, clock, rate=1.0)
    decided = plan([record(n, 100, retention=10) for n in "abcd"], sources(), NOW)
    assert asyncio.run(run.execute(decided, sources(), batch=2)) == 2  # two left for the next batch
    assert [p for verb, p, _ in kube.calls if verb == "DELETE"] == [path("a"), path("b")]  # one batch
    # The index still lists a and b (their DELETED events are on their way): not fetched again.
    calls = len(kube.calls)
    assert asyncio.run(run.execute(decided, sources(), batch=2)) == 0
    assert [(verb, p) for verb, p, _ in kube.calls[calls:]] == [("GET", path("c")), ("DELETE", path("c")),
                                                                 ("GET", path("d")), ("DELETE", path("d"))]
    assert clock.slept == [1.0, 1.0, 1.0]  # the next sweep waits its turn too


def test_a_stale_record_costs_a_read_not_a_paced_slot() -> None:
    kube, clock = FakeKube({path("live"): body("live", 100, retention=10)}), FakeClock()
    run = sweeper(kube, clock, rate=1.0)
    decided = plan([record(n, 100, retention=10) for n in ("gone-1", "gone-2", "live")], sources(), NOW)
    asyncio.run(run.execute(decided, sources(), batch=10))
    assert [verb for verb, _, _ in kube.calls] == ["GET", "GET", "GET", "DELETE"]
    assert clock.slept == []


def test_sweeper_rechecks_the_live_task() -> None:
    recreated = body("recreated", 100, retention=10, uid="new-uid")
    raised = body("raised", 100, retention=3600)  # retention raised after the index record
    rerun = body("rerun", 100, retention=10, rerun=1)  # a rerun was asked for: not finished any more
    adopted = body("adopted", 100, retention=10, labels={"kustomize.toolkit.fluxcd.io/name": "apps"})
    kube = FakeKube({path("recreated"): recreated, path("raised"): raised, path("rerun"): rerun, path("adopted"): adopted})
    stale = [record(n, 100, retention=10) for n in ("gone", "recreated", "raised", "rerun", "adopted")]
    decided = plan(stale, sources(), NOW)
    assert len(decided.delete) == 5
    asyncio.run(sweeper(kube, FakeClock()).execute(decided, sources(), batch=10))
    assert [verb for verb, _, _ in kube.calls if verb != "GET"] == ["PATCH"]  # nothing deleted; the adopted one noted
    [(_, patched, patch)] = [c for c in kube.calls if c[0] == "PATCH"]
    assert patched == path("adopted") + "/status"
    assert patch["metadata"] == {"resourceVersion": "7"}
    assert [c["type"] for c in patch["status"]["conditions"]] == ["Finished", "Retained"]  # the whole list
    assert patch["status"]["conditions"][1]["reason"] == "ManagedByGitOps"


def test_sweeper_notes_a_gitops_task_once_per_plan_and_keeps_going_past_refusals() -> None:
    gitops = {"argocd.argoproj.io/tracking-id": "app:kubetask.io/Task:ns/g"}
    kube = FakeKube({path("g"): body("g", 100, retention=1, annotations=gitops),
                     path("conflict"): body("conflict", 100, retention=1),
                     path("denied"): body("denied", 100, retention=1),
                     path("ok"): body("ok", 100, retention=1)},
                    refuse={path("conflict"): ApiError(409, "Conflict", "changed"),
                            path("denied"): ApiError(403, "Forbidden", "a policy says no")})
    tasks = [record("g", 100, retention=1, annotations=gitops), record("conflict", 99, retention=1),
             record("denied", 98, retention=1), record("ok", 97, retention=1)]
    asyncio.run(sweeper(kube, FakeClock()).execute(plan(tasks, sources(), NOW), sources(), batch=10))
    writes = [(verb, p) for verb, p, _ in kube.calls if verb != "GET"]
    assert writes == [("PATCH", path("g") + "/status"), ("DELETE", path("conflict")), ("DELETE", path("denied")), ("DELETE", path("ok"))]


def test_sweeper_stops_the_sweep_when_the_api_server_is_unwell() -> None:
    kube = FakeKube({path(n): body(n, 100, retention=1) for n in "ab"}, refuse={path("a"): ApiError(503, "ServiceUnavailable", "down")})
    with pytest.raises(ApiError):
        asyncio.run(sweeper(kube, FakeClock()).execute(plan([record(n, 100, retention=1) for n in "ab"], sources(), NOW), sources(), batch=10))
    assert [p for verb, p, _ in kube.calls if verb == "DELETE"] == [path("a")]
