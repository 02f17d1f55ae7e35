"""TaskGroups on the real control plane: members labelled into a group are counted, the group's
Finished condition works with `kubectl wait`, and the callback runs once with the members'
results (Celery's chord); a failed member stops the callback."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness import wait_for
from kt import apply_queue, apply_tasktype, sim
from kubetask.kube import KubeSync, tasks_path
from kubetask.resources.grouping import LABEL_GROUP

pytestmark = pytest.mark.usefixtures("operator")


def make_group(kube: KubeSync, namespace: str, name: str, **spec: Any) -> None:
    kube.create(tasks_path(namespace, plural="taskgroups"),
                {"apiVersion": "kubetask.io/v1alpha1", "kind": "TaskGroup", "metadata": {"name": name}, "spec": spec})


def member(kube: KubeSync, namespace: str, group: str, name: str, annotations: dict[str, str]) -> None:
    kube.create(tasks_path(namespace), {"apiVersion": "kubetask.io/v1alpha1", "kind": "Task",
                                        "metadata": {"name": name, "labels": {LABEL_GROUP: group}, "annotations": annotations},
                                        "spec": {"type": "sim"}})


def status(kube: KubeSync, namespace: str, name: str) -> dict[str, Any]:
    return kube.get(tasks_path(namespace, name, plural="taskgroups")).get("status") or {}


def cond(group_status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in group_status.get("conditions", []) if c["type"] == kind), {})


def test_a_chord_runs_its_callback_once_with_the_results(kube: KubeSync, namespace: str, bin_dir: Path, kubeconfig: Path) -> None:
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "default", maxRunning=10)
    make_group(kube, namespace, "thumbs", size=4,
               callback={"taskTemplate": {"metadata": {"annotations": sim(run_for="1s")}, "spec": {"type": "sim", "parameters": {"kind": "zip"}}}})
    for i in range(4):
        member(kube, namespace, "thumbs", f"thumb-{i}", sim(run_for="1s", message=f'{{"file": "t{i}.png"}}'))
    running = wait_for(lambda: (s := status(kube, namespace, "thumbs")).get("counts", {}).get("total") == 4 and s or None,
                       timeout=30, what="four members counted")
    assert cond(running, "Finished").get("status") in ("False", "True")
    waited = subprocess.run([str(bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig), "-n", namespace, "wait",
                             "--for=condition=Finished", "taskgroup/thumbs", "--timeout=120s"], capture_output=True, text=True, timeout=130)
    assert waited.returncode == 0, waited.stderr
    done = status(kube, namespace, "thumbs")
    assert done["counts"]["succeeded"] == 4 and cond(done, "Succeeded")["status"] == "True"
    callback = kube.get(tasks_path(namespace, "thumbs-callback"))
    assert callback["status"]["phase"] == "Succeeded" and done["callbackPhase"] == "Succeeded"
    group_params = callback["spec"]["parameters"]["group"]
    assert callback["spec"]["parameters"]["kind"] == "zip"
    assert [r["result"] for r in group_params["members"]] == [{"file": f"t{i}.png"} for i in range(4)]
    # Exactly one callback, however many events the group saw.
    assert [t["metadata"]["name"] for t in kube.get(tasks_path(namespace), labelSelector="kubetask.io/callback-of=thumbs")["items"]] == ["thumbs-callback"]


def test_a_failed_member_stops_the_callback_and_fails_the_group(kube: KubeSync, namespace: str) -> None:
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "default", maxRunning=10)
    make_group(kube, namespace, "batch", callback={"taskTemplate": {"spec": {"type": "sim"}}})
    member(kube, namespace, "batch", "ok", sim(run_for="1s"))
    member(kube, namespace, "batch", "broken", sim(run_for="1s", exit_code=4))
    done = wait_for(lambda: (s := status(kube, namespace, "batch")) and cond(s, "Finished").get("status") == "True" and s or None,
                    timeout=60, what="the group finished")
    assert cond(done, "Succeeded")["status"] == "False" and cond(done, "Finished")["reason"] == "MembersFailed"
    assert done["counts"] == {"total": 2, "pending": 0, "queued": 0, "running": 0, "succeeded": 1, "failed": 1, "cancelled": 0}
    assert cond(done, "Stalled")["status"] == "True"
    assert not kube.get(tasks_path(namespace), labelSelector="kubetask.io/callback-of=batch")["items"]
