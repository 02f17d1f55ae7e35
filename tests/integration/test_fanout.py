"""Fan-out over items (spec.items) against the local control plane: one Indexed Job per Task, the
real Job controller's per-index retries and failures, kwok pods whose outcome depends on their
index (sim.kubetask.io/exit-codes, "{index}" in sim.kubetask.io/message; see hack/localcluster.py)."""

from __future__ import annotations

import json

import pytest

from harness import localcluster
from kt import apply_queue, apply_tasktype, condition, create_task, jobs_of, pods_of, sim, wait_phase
from kubetask.kube import ApiError, KubeSync, core_path

pytestmark = pytest.mark.usefixtures("operator")


@pytest.fixture
def ns(kube: KubeSync, namespace: str) -> str:
    apply_tasktype(kube, namespace, "sim", defaults={"resources": {"cpu": "100m", "memory": "64Mi"}},
                   parametersSchema={"type": "object", "required": ["file"],
                                     "properties": {"file": {"type": "string"}, "bucket": {"type": "string"}}})
    apply_queue(kube, namespace, "default", maxRunning=20)
    return namespace


def items(n: int) -> list[dict[str, str]]:
    return [{"file": f"f-{i:04d}.csv"} for i in range(n)]


def test_twenty_items_five_at_a_time_all_succeed_with_per_item_results(kube: KubeSync, ns: str) -> None:
    create_task(kube, ns, "fan", sim(run_for="1s", message='{"item": {index}}'), items=items(20), parallelism=5,
                parameters={"bucket": "s3://in"})
    running = wait_phase(kube, ns, "fan", ("Running", "Succeeded"), timeout=60)
    task = wait_phase(kube, ns, "fan", "Succeeded", timeout=120)
    status = task["status"]
    assert status["items"]["total"] == 20 and status["items"]["succeeded"] == 20 and status["items"]["failed"] == 0
    assert status["items"]["completedIndexes"] == "0-19" and status["items"]["failedIndexes"] == ""
    # Each item's own result, by index: the pod's termination message.
    assert status["items"]["results"] == [{"index": i, "result": {"item": i}} for i in range(20)]
    assert status["items"]["resultsOmitted"] == 0
    assert status["result"] == {"total": 20, "succeeded": 20, "failed": 0, "failedIndexes": ""}
    assert condition(task, "Succeeded")["message"] == "all 20 items succeeded"
    assert status["attempts"] == 20
    assert running["status"]["phase"] in ("Running", "Succeeded")

    [job] = jobs_of(kube, ns, "fan")
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"], spec["backoffLimitPerIndex"]) == ("Indexed", 20, 5, 0)
    # The items reach the pods through one ConfigMap (named like the Job, owned by the Task), not in every pod.
    configmap = kube.get(core_path("configmaps", ns, job["metadata"]["name"]))
    assert json.loads(configmap["data"]["items.json"]) == items(20)
    assert configmap["metadata"]["ownerReferences"][0]["uid"] == task["metadata"]["uid"]
    pods = pods_of(kube, ns, "fan")
    assert len(pods) == 20
    assert sorted(int(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]) for p in pods) == list(range(20))
    assert all("f-0000.csv" not in json.dumps(p["metadata"]["annotations"]) for p in pods)
    volume = next(v for v in pods[0]["spec"]["volumes"] if v["name"] == "parameters")
    assert volume["projected"]["sources"][1]["configMap"]["name"] == job["metadata"]["name"]
    env = {e["name"]: e.get("value") for e in pods[0]["spec"]["containers"][0]["env"]}
    assert env["KUBETASK_ITEMS_FILE"] == "/etc/kubetask/items.json" and "JOB_COMPLETION_INDEX" in env


def test_two_failing_items_fail_the_task_naming_them(kube: KubeSync, ns: str) -> None:
    annotations = {**sim(run_for="1s", message='{"item": {index}}'), localcluster.SIM_EXIT_CODES: json.dumps({"3": 5, "7": 5})}
    create_task(kube, ns, "fan-fail", annotations, items=items(10), parallelism=5, retries=1)
    task = wait_phase(kube, ns, "fan-fail", "Failed", timeout=120)
    status = task["status"]
    assert condition(task, "Finished")["reason"] == "ItemsFailed"
    message = condition(task, "Succeeded")["message"]
    assert message == "2 of 10 items failed: 3 (exit code 5), 7 (exit code 5); 8 succeeded"
    assert status["items"]["failedIndexes"] == "3,7" and status["items"]["failed"] == 2 and status["items"]["succeeded"] == 8
    assert [(f["index"], f["exitCode"]) for f in status["items"]["failures"]] == [(3, 5), (7, 5)]
    assert status["items"]["failures"][0]["message"] == '{"item": 3}'
    assert [r["index"] for r in status["items"]["results"]] == [0, 1, 2, 4, 5, 6, 8, 9]
    assert status["lastFailure"]["reason"] == "ItemsFailed" and status["lastFailure"]["exitCode"] == 5
    assert status["result"]["failedIndexes"] == "3,7"
    # retries: 1 is per item: the two failing items ran twice each, the others once.
    assert status["attempts"] == 12
    assert len(pods_of(kube, ns, "fan-fail")) == 12


def test_a_non_retryable_exit_code_fails_only_its_item(kube: KubeSync, ns: str) -> None:
    annotations = {**sim(run_for="1s"), localcluster.SIM_EXIT_CODES: json.dumps({"1": 65})}
    create_task(kube, ns, "fan-fatal", annotations, items=items(4), retries=3, nonRetryableExitCodes=[65])
    task = wait_phase(kube, ns, "fan-fatal", "Failed", timeout=90)
    assert task["status"]["items"]["failedIndexes"] == "1" and task["status"]["items"]["succeeded"] == 3
    assert task["status"]["attempts"] == 4  # FailIndex: item 1 was not retried, the others were not stopped
    [job] = jobs_of(kube, ns, "fan-fatal")
    assert job["spec"]["podFailurePolicy"]["rules"][0]["action"] == "FailIndex"


def test_max_failed_items_stops_the_fan_out(kube: KubeSync, ns: str) -> None:
    annotations = {**sim(run_for="1s"), localcluster.SIM_EXIT_CODES: json.dumps({"0": 2, "1": 2})}
    create_task(kube, ns, "fan-stop", annotations, items=items(30), parallelism=2, maxFailedItems=1)
    task = wait_phase(kube, ns, "fan-stop", "Failed", timeout=90)
    assert condition(task, "Finished")["reason"] == "MaxFailedItemsExceeded"
    items_status = task["status"]["items"]
    assert items_status["failedIndexes"] == "0,1"
    assert items_status["succeeded"] < 28  # stopped early: not every item ran
    assert "not run" in condition(task, "Finished")["message"]


def test_items_over_the_bound_are_refused_by_the_api_server_naming_the_field(kube: KubeSync, ns: str) -> None:
    with pytest.raises(ApiError) as refused:
        create_task(kube, ns, "too-many", items=items(1001))
    assert refused.value.status == 422
    assert "spec.items: Too many: 1001: must have at most 1000 items" in refused.value.message
    with pytest.raises(ApiError) as refused:
        create_task(kube, ns, "lonely", parallelism=3)
    assert "spec.parallelism" in refused.value.message and "only to a Task with items" in refused.value.message
    with pytest.raises(ApiError) as refused:
        create_task(kube, ns, "strings", items=["a.csv"])
    assert "spec.items[0]" in refused.value.message


def test_an_item_against_the_schema_fails_before_any_pod(kube: KubeSync, ns: str) -> None:
    create_task(kube, ns, "fan-bad", sim(run_for="1s"), items=[{"file": "a.csv"}, {"rows": 3}])
    task = wait_phase(kube, ns, "fan-bad", "Failed", timeout=30)
    assert condition(task, "Accepted")["reason"] == "InvalidParameters"
    assert "spec.items[1]" in condition(task, "Accepted")["message"]
    assert not jobs_of(kube, ns, "fan-bad")
