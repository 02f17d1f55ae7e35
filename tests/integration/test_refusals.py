"""The cluster says "no" and the operator does not care: refused Job creates (a ResourceQuota, a
ValidatingAdmissionPolicy) are retried until they succeed and are visible meanwhile; a TaskType
deleted or tightened never strands or rewinds a Task; capacity stays exact through deletes and
cancels that race admission. Every refusal here is a real one from the real API server."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from harness import OperatorProcess, wait_for
from kt import apply_queue, apply_tasktype, condition, create_task, events_of, get_task, jobs_of, patch_spec, sim, wait_phase
from kubetask.kube import ApiError, KubeSync, core_path, tasks_path
from recorders import JobRecorder, PhaseRecorder

pytestmark = pytest.mark.usefixtures("operator")
ADMISSION = "/apis/admissionregistration.k8s.io/v1"


def metric(operator: OperatorProcess, name: str, **labels: str) -> float:
    """The value of one sample of the operator's /metrics (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in operator.metrics().splitlines():
        match = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))) == wanted:
            return float(match.group(2))
    return 0.0


def all_succeeded(kube: KubeSync, namespace: str, names: list[str]) -> bool:
    phases = {t["metadata"]["name"]: (t.get("status") or {}).get("phase") for t in kube.get(tasks_path(namespace))["items"]}
    return all(phases.get(n) == "Succeeded" for n in names)


def test_quota_refuses_then_frees_every_task_succeeds_with_one_job(kube: KubeSync, namespace: str, kubeconfig: Path,
                                                                   operator: OperatorProcess) -> None:
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "default", maxRunning=20)
    kube.create(core_path("resourcequotas", namespace), {
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "two-jobs"},
        "spec": {"hard": {"count/jobs.batch": "2"}}})
    wait_for(lambda: kube.get(core_path("resourcequotas", namespace, "two-jobs")).get("status", {}).get("hard"),
             what="the quota controller to publish the quota")
    refused_before = metric(operator, "kubetask_job_create_failures_total", reason="Quota")
    names = [f"q-{i}" for i in range(6)]
    with PhaseRecorder(kubeconfig, namespace) as phases, JobRecorder(kubeconfig, namespace) as jobs:
        for name in names:  # finished Jobs are deleted at once, so the quota frees as Tasks finish
            create_task(kube, namespace, name, sim(run_for="1s"), ttlSecondsAfterFinished=0)
        wait_for(lambda: all_succeeded(kube, namespace, names), timeout=120, interval=0.5, what="all 6 Tasks Succeeded")
        time.sleep(1)
    assert not jobs.duplicates(), jobs.duplicates()
    assert sorted(jobs.created) == names  # exactly one Job each, over the whole run
    refused = [n for n in names if "JobCreateRefused" in phases.reasons[n]]
    assert refused, dict(phases.reasons)  # the quota really refused some, and it showed
    assert not phases.backwards(), phases.backwards()
    assert metric(operator, "kubetask_job_create_failures_total", reason="Quota") > refused_before
    warnings = [e for n in refused for e in events_of(kube, namespace, n) if e["reason"] == "JobCreateRefused"]
    assert warnings and all(e["type"] == "Warning" and "exceeded quota" in e["message"] for e in warnings)
    assert all(int(e.get("count") or 1) == 1 for e in warnings)  # one per refusal spell, not one per retry


@pytest.fixture
def deny_jobs(kube: KubeSync, namespace: str) -> object:
    """A ValidatingAdmissionPolicy that denies every Job create in the test's namespace."""
    name = f"deny-jobs-{uuid.uuid4().hex[:6]}"
    kube.create(f"{ADMISSION}/validatingadmissionpolicies", {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy", "metadata": {"name": name},
        "spec": {"failurePolicy": "Fail",
                 "matchConstraints": {"resourceRules": [{"apiGroups": ["batch"], "apiVersions": ["v1"],
                                                         "operations": ["CREATE"], "resources": ["jobs"]}]},
                 "validations": [{"expression": "false", "message": "Jobs are frozen in this namespace (change freeze)"}]}})
    kube.create(f"{ADMISSION}/validatingadmissionpolicybindings", {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"],
                 "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}}})
    probe = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "probe"},
             "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}

    def denied() -> bool:  # the API server compiles a new policy asynchronously: wait until it bites
        try:
            kube.create(core_path("jobs", namespace, group="batch"), probe, dryRun="All")
            return False
        except ApiError as error:
            return "change freeze" in error.message

    wait_for(denied, timeout=30, what="the admission policy to deny Jobs")

    class Policy:
        def remove(self) -> None:
            for kind in ("validatingadmissionpolicybindings", "validatingadmissionpolicies"):
                try:
                    kube.delete(f"{ADMISSION}/{kind}/{name}")
                except ApiError as error:
                    if error.status != 404:
                        raise

    policy = Policy()
    yield policy
    policy.remove()


def test_admission_policy_denies_then_allows_all_run_and_the_wait_was_visible(
        kube: KubeSync, namespace: str, deny_jobs: object, kubeconfig: Path, bin_dir: Path) -> None:
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "default", maxRunning=10)
    names = ["frozen-0", "frozen-1", "frozen-2"]
    with JobRecorder(kubeconfig, namespace) as jobs:
        for name in names:
            create_task(kube, namespace, name, sim(run_for="1s"))
        for name in names:
            task = wait_phase(kube, namespace, name, "Queued", reason="JobCreateRefused", timeout=30)
            assert "change freeze" in condition(task, "Ready")["message"]
            assert "AdmissionDenied" in condition(task, "Ready")["message"]
        table = subprocess.run([str(bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig), "-n", namespace, "get", "tasks"],
                               capture_output=True, text=True, check=True).stdout
        assert "REASON" in table.splitlines()[0]
        assert all(re.search(rf"^{n}\s.*Queued\s.*JobCreateRefused", table, re.M) for n in names), table
        time.sleep(5)  # denied for a while: retries keep failing, nothing is created
        assert not jobs_of(kube, namespace)
        deny_jobs.remove()  # type: ignore[attr-defined]
        wait_for(lambda: all_succeeded(kube, namespace, names), timeout=60, interval=0.5, what="all 3 Tasks Succeeded")
    assert sorted(jobs.created) == names and not jobs.duplicates()


def test_tasktype_deleted_mid_run_the_task_still_ends_with_its_result(kube: KubeSync, namespace: str, kubeconfig: Path) -> None:
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "default", maxRunning=10)
    with PhaseRecorder(kubeconfig, namespace) as phases:
        create_task(kube, namespace, "orphan", sim(run_for="4s", message='{"answer": 42}'))
        create_task(kube, namespace, "orphan-cancelled", sim(run_for="10m"))
        wait_phase(kube, namespace, "orphan", "Running", reason="PodRunning")
        running = wait_phase(kube, namespace, "orphan-cancelled", "Running", reason="PodRunning")
        kube.delete(tasks_path(namespace, "sim", plural="tasktypes"))
        time.sleep(1)
        patch_spec(kube, namespace, "orphan-cancelled", {"cancel": True})
        done = wait_phase(kube, namespace, "orphan", "Succeeded", timeout=40)
        cancelled = wait_phase(kube, namespace, "orphan-cancelled", "Cancelled", timeout=30)
        time.sleep(1)
    assert done["status"]["result"] == {"answer": 42}
    assert cancelled["status"]["jobName"] == running["status"]["jobName"]  # the cancel kept which Job it stopped
    wait_for(lambda: not jobs_of(kube, namespace, "orphan-cancelled"), timeout=30, what="the cancelled Task's Job deleted")
    assert not phases.backwards(), phases.backwards()
    assert [p for _, p in phases.phases["orphan"]][-2:] == ["Running", "Succeeded"]


def test_tasktype_tightened_before_admission_fails_the_task_and_the_queue_moves(kube: KubeSync, namespace: str) -> None:
    apply_tasktype(kube, namespace, "sim", defaults={"resources": {"cpu": "100m"}}, limits={"cpu": "2"})
    apply_queue(kube, namespace, "one", maxRunning=1)
    create_task(kube, namespace, "blocker", sim(run_for="4s"), queue="one")
    wait_phase(kube, namespace, "blocker", "Running")
    create_task(kube, namespace, "big", sim(run_for="1s"), queue="one", resources={"cpu": "1"})
    time.sleep(1.1)  # distinct creation seconds: "big" is first in line
    create_task(kube, namespace, "small", sim(run_for="1s"), queue="one")
    wait_phase(kube, namespace, "big", "Queued", reason="WaitingForCapacity")
    tasktype = kube.get(tasks_path(namespace, "sim", plural="tasktypes"))
    kube.patch(tasks_path(namespace, "sim", plural="tasktypes"), {"spec": {"limits": {"cpu": "500m"}},
                                                                   "metadata": {"resourceVersion": tasktype["metadata"]["resourceVersion"]}})
    big = wait_phase(kube, namespace, "big", "Failed", timeout=40)
    assert big["status"]["lastFailure"]["reason"] == "ExceedsLimits"
    assert "cpu" in big["status"]["lastFailure"]["message"]
    assert not jobs_of(kube, namespace, "big")
    wait_phase(kube, namespace, "small", "Succeeded", timeout=40)  # the queue kept moving with maxRunning 1


def test_capacity_is_exact_after_deletes_and_cancels_race_admission(kube: KubeSync, namespace: str, operator: OperatorProcess) -> None:
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "two", maxRunning=2)
    for i in range(10):  # each races its own admission: deleted or cancelled right after creation
        create_task(kube, namespace, f"gone-{i}", sim(run_for="10m"), queue="two")
        create_task(kube, namespace, f"cancelled-{i}", sim(run_for="10m"), queue="two")
        kube.delete(tasks_path(namespace, f"gone-{i}"))
        patch_spec(kube, namespace, f"cancelled-{i}", {"cancel": True})
    for i in range(10):
        wait_phase(kube, namespace, f"cancelled-{i}", "Cancelled", timeout=30)
    wait_for(lambda: not [j for j in jobs_of(kube, namespace)
                          if not any(c["type"] in ("Complete", "Failed") for c in j.get("status", {}).get("conditions", []))],
             # A Job created just as its Task was deleted goes by the garbage collector (its owner is
             # gone), which can take a minute on a loaded machine: seen once in a full run.
             timeout=120, what="every raced Job gone")
    wait_for(lambda: metric(operator, "kubetask_reservations") == 0, timeout=20, what="no capacity left reserved")
    for name in ("after-a", "after-b", "after-c"):
        create_task(kube, namespace, name, sim(run_for="10m"), queue="two")
        time.sleep(1.1)
    wait_phase(kube, namespace, "after-a", "Running")
    wait_phase(kube, namespace, "after-b", "Running")  # both slots are free: nothing leaked
    third = wait_phase(kube, namespace, "after-c", "Queued", reason="WaitingForCapacity")
    assert not jobs_of(kube, namespace, "after-c")  # and not one slot more
    queue = wait_for(lambda: (q := kube.get(tasks_path(namespace, "two", plural="taskqueues")))["status"].get("running") == 2 and q,
                     what="queue status running 2")
    assert queue["status"]["pending"] == 1
    assert condition(third, "Queued")["status"] == "True"
    for name in ("after-a", "after-b", "after-c"):
        patch_spec(kube, namespace, name, {"cancel": True})
