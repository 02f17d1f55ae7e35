"""Dependencies (spec.after) on the real control plane: a chain applied in the wrong order runs in
order; a failure fails what runs after it, and a rerun of the failed Task that succeeds lets the
rest of the chain run; a cycle fails; a self-dependency is refused by the API server; the
Finished policy runs anyway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import localcluster, wait_for
from kt import apply_queue, apply_tasktype, create_task, get_task, sim, wait_phase
from kubetask.kube import ApiError, KubeSync, tasks_path
from recorders import PhaseRecorder

pytestmark = pytest.mark.usefixtures("operator")


def ready(task: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in (task.get("status") or {}).get("conditions", []) if c["type"] == "Ready"), {})


def waiting_says(kube: KubeSync, namespace: str, name: str, words: str) -> dict[str, Any] | None:
    task = get_task(kube, namespace, name)
    condition = ready(task)
    return task if condition.get("reason") == "WaitingForDependencies" and words in condition.get("message", "") else None


def test_a_chain_applied_backwards_runs_in_order(kube: KubeSync, namespace: str, kubeconfig: Path) -> None:
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "default", maxRunning=10)
    with PhaseRecorder(kubeconfig, namespace) as phases:
        create_task(kube, namespace, "c", sim(run_for="1s"), after=["b"])
        create_task(kube, namespace, "b", sim(run_for="1s"), after=["a"])
        # Names that do not exist yet are waited for, and the wait is reported.
        wait_for(lambda: waiting_says(kube, namespace, "b", "a does not exist yet"), timeout=30, what="b waits for a to exist")
        wait_for(lambda: waiting_says(kube, namespace, "c", "waiting for b to succeed"), timeout=30, what="c waits for b")
        assert get_task(kube, namespace, "b")["status"]["phase"] == "Pending"
        create_task(kube, namespace, "a", sim(run_for="1s"))
        done = {name: wait_phase(kube, namespace, name, "Succeeded", timeout=90) for name in ("a", "b", "c")}
    # Each started only after the one before it finished.
    assert done["a"]["status"]["completionTime"] <= done["b"]["status"]["startTime"]
    assert done["b"]["status"]["completionTime"] <= done["c"]["status"]["startTime"]
    assert not phases.backwards(), phases.backwards()


def test_a_failure_fails_the_chain_and_a_successful_rerun_lets_it_run(kube: KubeSync, namespace: str, kubeconfig: Path) -> None:
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "default", maxRunning=10)
    with PhaseRecorder(kubeconfig, namespace) as phases:
        create_task(kube, namespace, "first", sim(run_for="1s", exit_code=3))
        create_task(kube, namespace, "second", sim(run_for="1s"), after=["first"])
        create_task(kube, namespace, "third", sim(run_for="1s"), after=["second"])
        wait_phase(kube, namespace, "first", "Failed", timeout=60)
        second = wait_phase(kube, namespace, "second", "Failed", timeout=60, reason="DependencyFailed")
        assert "first (Failed" in ready(second)["message"]
        third = wait_phase(kube, namespace, "third", "Failed", timeout=60, reason="DependencyFailed")
        assert "second (Failed" in ready(third)["message"]
        assert not (get_task(kube, namespace, "second")["status"].get("jobName"))  # it never got a Job

        # Fix the cause and re-run the failed Task: the rest of the chain runs again by itself.
        kube.patch(tasks_path(namespace, "first"), {"metadata": {"annotations": {localcluster.SIM_EXIT_CODE: None}},
                                                      "spec": {"rerun": 1}})
        wait_phase(kube, namespace, "first", "Succeeded", timeout=60)
        for name in ("second", "third"):
            task = wait_phase(kube, namespace, name, "Succeeded", timeout=90)
            assert task["spec"]["rerun"] == 1 and task["status"]["run"] == 1
            assert task["status"]["history"][-1]["phase"] == "Failed"  # the DependencyFailed run stays in the history
    assert not phases.backwards(), phases.backwards()


def test_a_cycle_fails_every_task_in_it(kube: KubeSync, namespace: str) -> None:
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "default")
    create_task(kube, namespace, "x", after=["y"])
    create_task(kube, namespace, "y", after=["x"])
    for name in ("x", "y"):
        task = wait_phase(kube, namespace, name, "Failed", timeout=60, reason="DependencyCycle")
        assert "x → y → x" in ready(task)["message"] or "y → x → y" in ready(task)["message"]


def test_the_api_server_refuses_a_self_dependency_naming_the_field(kube: KubeSync, namespace: str) -> None:
    with pytest.raises(ApiError) as refused:
        create_task(kube, namespace, "me", after=["me"])
    assert refused.value.status == 422
    causes = refused.value.body["details"]["causes"]
    assert any(c["field"] == "spec.after" and "cannot depend on itself" in c["message"] for c in causes), causes
    with pytest.raises(ApiError) as duplicate:
        create_task(kube, namespace, "twice", after=["a", "a"])
    assert any(c["field"].startswith("spec.after") for c in duplicate.value.body["details"]["causes"])


def test_policy_finished_runs_after_a_failure(kube: KubeSync, namespace: str) -> None:
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "default")
    create_task(kube, namespace, "breaks", sim(run_for="1s", exit_code=2))
    create_task(kube, namespace, "cleanup", sim(run_for="1s"), after=["breaks"], dependencyPolicy="Finished")
    wait_phase(kube, namespace, "breaks", "Failed", timeout=60)
    wait_phase(kube, namespace, "cleanup", "Succeeded", timeout=60)
