"""Fan-out over items (spec.items): Task → Indexed Job, and Job + pods → status.items, without a cluster."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from kubetask.operator import naming
from kubetask.operator.decide import TaskFacts, decide
from kubetask.operator.fanout import final_items, observe_fanout, parse_indexes
from kubetask.operator.jobs import ITEMS_FILE, build_job, items_configmap
from kubetask.operator.resolve import pods_at_once, resolve
from kubetask.operator.status import JobSummary, PodSummary, Verdict, summarize_job, summarize_pod, task_status
from kubetask.resources import models
from kubetask.resources.models import Phase, TaskSpec, TaskStatus
from kubetask.resources.validation import serialized_size

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
TASK = {"metadata": {"name": "batch", "namespace": "ns", "uid": "1234-abcd", "annotations": {}},
        "spec": {"type": "analyse", "parameters": {"bucket": "s3://in"}}}
TASKTYPE: dict[str, Any] = {"image": "ghcr.io/acme/analyse:1", "defaults": {"retries": 2, "nonRetryableExitCodes": [65]}}
ITEMS = [{"file": f"f{i}.csv"} for i in range(20)]


def effective(spec: dict[str, Any], tasktype: dict[str, Any] | None = None) -> Any:
    found, problems = resolve({**TASK["spec"], **spec}, tasktype or TASKTYPE, "default")
    assert found is not None, problems
    return found


def job_for(spec: dict[str, Any], tasktype: dict[str, Any] | None = None) -> dict[str, Any]:
    task = {**TASK, "spec": {**TASK["spec"], **spec}}
    return build_job(task, effective(spec, tasktype), 0)


# ------------------------------------------------------------------------------------------
# Task → Job
# ------------------------------------------------------------------------------------------

def test_items_make_an_indexed_job_with_per_item_retries() -> None:
    job = job_for({"items": ITEMS, "parallelism": 5, "maxFailedItems": 3})
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == 20 and spec["parallelism"] == 5
    assert spec["backoffLimitPerIndex"] == 2  # retries count per item
    assert "backoffLimit" not in spec  # the API server defaults it to unlimited: one item's failures never fail the rest
    assert spec["maxFailedIndexes"] == 3
    # A non-retryable exit code ends its own item only; disruptions still never count.
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "FailIndex", "onExitCodes": {"containerName": "handler", "operator": "In", "values": [65]}}
    assert rules[-1]["action"] == "Ignore"


def test_without_max_failed_items_every_item_runs() -> None:
    spec = job_for({"items": ITEMS})["spec"]
    assert "maxFailedIndexes" not in spec
    assert spec["parallelism"] == models.DEFAULT_PARALLELISM


def test_a_task_without_items_keeps_its_single_pod_job() -> None:
    spec = job_for({})["spec"]
    assert spec["completions"] == 1 and spec["parallelism"] == 1 and spec["backoffLimit"] == 2
    assert "completionMode" not in spec and "backoffLimitPerIndex" not in spec
    assert spec["podFailurePolicy"]["rules"][0]["action"] == "FailJob"
    volume = spec["template"]["spec"]["volumes"][0]
    assert "downwardAPI" in volume and "projected" not in volume


def test_items_reach_pods_through_one_configmap_never_a_pod_annotation() -> None:
    job = job_for({"items": ITEMS})
    template = job["spec"]["template"]
    # Every pod would carry every item: N pods × all items in etcd. The pods mount one ConfigMap.
    assert all("file" not in value for value in template["metadata"]["annotations"].values())
    [volume] = [v for v in template["spec"]["volumes"] if v["name"] == "parameters"]
    sources = volume["projected"]["sources"]
    assert sources[0]["downwardAPI"]["items"][0]["path"] == "parameters.json"
    assert sources[1]["configMap"] == {"name": job["metadata"]["name"], "items": [{"key": "items.json", "path": "items.json"}]}
    env = {e["name"]: e["value"] for e in template["spec"]["containers"][0]["env"]}
    assert env["KUBETASK_ITEMS_FILE"] == ITEMS_FILE == "/etc/kubetask/items.json"
    assert env["KUBETASK_ITEM_COUNT"] == "20"
    assert json.loads(env["KUBETASK_PARAMETERS"]) == {"bucket": "s3://in"}  # the shared parameters, as before

    configmap = items_configmap({**TASK, "spec": {**TASK["spec"], "items": ITEMS}}, effective({"items": ITEMS}), 0)
    assert configmap["metadata"]["name"] == job["metadata"]["name"]
    assert configmap["metadata"]["ownerReferences"][0]["uid"] == "1234-abcd"  # it goes with the Task
    assert configmap["metadata"]["labels"][naming.LABEL_TASK] == "batch"
    assert configmap["immutable"] is True
    assert json.loads(configmap["data"]["items.json"]) == ITEMS


def test_parallelism_defaults_and_caps() -> None:
    assert pods_at_once({}, TASKTYPE, None) == 1  # not a fan-out
    assert pods_at_once({}, TASKTYPE, 3) == 3  # never more pods than items
    assert pods_at_once({}, TASKTYPE, 500) == models.DEFAULT_PARALLELISM
    assert pods_at_once({"parallelism": 50}, TASKTYPE, 500) == 50
    # A default never exceeds the TaskType's limit; an explicit value above it is refused.
    limited = {**TASKTYPE, "limits": {"parallelism": 4}}
    assert pods_at_once({}, limited, 500) == 4
    assert effective({"items": ITEMS}, limited).parallelism == 4
    _, problems = resolve({**TASK["spec"], "items": ITEMS, "parallelism": 8}, limited, "default")
    assert [(p.field, p.reason) for p in problems] == [("spec.parallelism", "ExceedsLimits")]


def test_each_item_merged_over_the_parameters_meets_the_schema() -> None:
    schema = {"type": "object", "required": ["bucket", "file"], "additionalProperties": False,
              "properties": {"bucket": {"type": "string"}, "file": {"type": "string"}, "rows": {"type": "integer", "maximum": 10}}}
    tasktype = {**TASKTYPE, "parametersSchema": schema}
    # `file` comes from the items only: the shared parameters alone need not satisfy the schema.
    assert resolve({**TASK["spec"], "items": ITEMS}, tasktype, "default")[1] == []
    _, problems = resolve({**TASK["spec"], "items": [{"file": "a"}, {"file": 3}, {"rows": 11}]}, tasktype, "default")
    fields = [p.field for p in problems]
    assert "spec.items[1].file" in fields and "spec.items[2].rows" in fields and "spec.items[2]" in fields  # 2 lacks `file`
    # A mistake in the shared parameters is reported once, as theirs.
    _, problems = resolve({"type": "analyse", "parameters": {"bucket": "b", "rows": 99}, "items": ITEMS}, tasktype, "default")
    assert [p.field for p in problems] == ["spec.parameters.rows"]


def test_items_over_the_size_bound_fail_with_the_field() -> None:
    big = [{"blob": "x" * 200} for _ in range(1000)]
    _, problems = resolve({**TASK["spec"], "items": big}, TASKTYPE, "default")
    assert problems[0].field == "spec.items" and "at most 131072" in problems[0].message


def test_the_models_bound_items_and_name_the_field() -> None:
    def error(spec: dict[str, Any]) -> tuple[str, str]:
        with pytest.raises(ValidationError) as raised:
            TaskSpec.model_validate({"type": "analyse", **spec})
        first = raised.value.errors()[0]
        return ".".join(str(p) for p in first["loc"]), first["msg"]

    assert error({"items": [{"i": i} for i in range(1001)]})[0] == "items"
    assert error({"items": []})[0] == "items"
    assert error({"items": ["a"]})[0].startswith("items")
    assert "131072" in error({"items": [{"blob": "x" * 200} for _ in range(1000)]})[1]
    assert error({"parallelism": 3}) == ("parallelism", "Value error, parallelism applies only to a Task with items")
    assert "at most the number of items" in error({"items": [{}], "maxFailedItems": 2})[1]
    TaskSpec.model_validate({"type": "analyse", "items": [{}, {}], "parallelism": 2, "maxFailedItems": 2})


# ------------------------------------------------------------------------------------------
# Job + pods → status
# ------------------------------------------------------------------------------------------

def fan_job(**kw: Any) -> JobSummary:
    base: dict[str, Any] = dict(name="batch-abcde-r0", namespace="ns", task_uid="u", queue="q", run=0, gpu=0,
                                created="2026-11-24T11:59:00Z", indexed=True, completions=20)
    return JobSummary(**{**base, **kw})


def item_pod(index: int, phase: str, created: str = "2026-11-24T11:59:02Z", **kw: Any) -> PodSummary:
    return PodSummary(name=f"batch-{index}-{created[-3:-1]}", created=created, phase=phase, job_name="batch-abcde-r0",
                      index=index, **kw)


def test_parse_indexes_reads_the_jobs_notation() -> None:
    assert parse_indexes("") == []
    assert parse_indexes("0-2,5,7-8") == [0, 1, 2, 5, 7, 8]


def test_summaries_read_the_indexed_job_and_the_pods_index() -> None:
    body = {"metadata": {"name": "j", "namespace": "ns", "labels": {}},
            "spec": {"completionMode": "Indexed", "completions": 20, "parallelism": 5,
                     "template": {"spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}},
            "status": {"completedIndexes": "0-3", "failedIndexes": "7", "active": 5}}
    job = summarize_job(body)
    assert job.indexed and job.completions == 20 and job.completed_indexes == "0-3" and job.failed_indexes == "7"
    assert job.gpu == 5  # five pods at once, one GPU each: the queue's GPU budget counts them all
    pod = summarize_pod({"metadata": {"name": "p", "annotations": {"batch.kubernetes.io/job-completion-index": "7"}},
                         "status": {"phase": "Failed"}})
    assert pod.index == 7


def test_running_counts_come_from_the_job_alone() -> None:
    verdict = observe_fanout(fan_job(active=5, ready=5, completed_indexes="0-3,5", failed_indexes="4"), [])
    assert verdict.phase is Phase.RUNNING and verdict.reason == "PodRunning" and verdict.pod_running
    assert verdict.items == {"total": 20, "succeeded": 5, "failed": 1, "completedIndexes": "0-3,5", "failedIndexes": "4"}
    assert verdict.message == "5 of 20 items succeeded, 1 failed (indexes 4)"
    # How many pods run is left out of status, so pods starting and stopping write nothing.
    assert verdict == observe_fanout(fan_job(active=2, ready=1, completed_indexes="0-3,5", failed_indexes="4"), [])
    assert observe_fanout(fan_job(active=5), []).reason == "PodPending"
    stuck = observe_fanout(fan_job(active=5), [item_pod(0, "Pending", unschedulable="0/5 nodes are available")])
    assert stuck.reason == "Unschedulable"


def test_all_items_succeeded_gives_per_item_results_and_a_summary() -> None:
    pods = [item_pod(i, "Succeeded", exit_code=0, message=json.dumps({"rows": i})) for i in range(20)]
    verdict = observe_fanout(fan_job(finished="Complete", succeeded=20, completed_indexes="0-19",
                                     completion_time="2026-11-24T11:59:30Z"), pods)
    assert verdict.phase is Phase.SUCCEEDED and verdict.message == "all 20 items succeeded"
    assert verdict.result == {"total": 20, "succeeded": 20, "failed": 0, "failedIndexes": ""}
    assert verdict.items is not None
    assert verdict.items["results"] == [{"index": i, "result": {"rows": i}} for i in range(20)]
    assert verdict.items["resultsOmitted"] == 0 and verdict.items["failures"] == []
    status = task_status(verdict, {}, generation=1, queue="q", run=0, now=NOW)
    TaskStatus.model_validate(status)  # the shape the CRD and the gateway expect
    assert status["items"]["succeeded"] == 20


def test_failed_items_are_named_with_their_exit_codes() -> None:
    pods = [item_pod(i, "Succeeded", exit_code=0, message="ok") for i in range(20) if i not in (3, 7)]
    pods += [item_pod(3, "Failed", exit_code=5, message="first try"),
             item_pod(3, "Failed", created="2026-11-24T11:59:40Z", exit_code=5, message="bad header", terminated_reason="Error"),
             item_pod(7, "Failed", exit_code=65, message='{"error": "not a csv"}')]
    job = fan_job(finished="Failed", reason="FailedIndexes", failed=3, succeeded=18,
                  completed_indexes="0-2,4-6,8-19", failed_indexes="3,7")
    verdict = observe_fanout(job, pods)
    assert verdict.phase is Phase.FAILED and verdict.reason == "ItemsFailed"
    assert verdict.message == "2 of 20 items failed: 3 (exit code 5), 7 (exit code 65); 18 succeeded"
    assert verdict.items is not None
    assert verdict.items["failures"] == [
        {"index": 3, "exitCode": 5, "reason": "Error", "message": "bad header"},  # the item's last attempt
        {"index": 7, "exitCode": 65, "reason": "", "message": '{"error": "not a csv"}'}]
    assert verdict.failure == {"reason": "ItemsFailed", "message": verdict.message, "exitCode": 5}
    assert verdict.result == {"total": 20, "succeeded": 18, "failed": 2, "failedIndexes": "3,7"}
    assert verdict.attempts == 21
    status = task_status(verdict, {}, generation=1, queue="q", run=0, now=NOW)
    TaskStatus.model_validate(status)
    finished = next(c for c in status["conditions"] if c["type"] == "Finished")
    assert (finished["status"], finished["reason"]) == ("True", "ItemsFailed")


def test_max_failed_items_exceeded_says_what_did_not_run() -> None:
    job = fan_job(finished="Failed", reason="MaxFailedIndexesExceeded", completed_indexes="0-4", failed_indexes="5-6")
    verdict = observe_fanout(job, [item_pod(5, "Failed", exit_code=1), item_pod(6, "Failed", exit_code=1)])
    assert verdict.reason == "MaxFailedItemsExceeded"
    assert verdict.message == ("more items failed than maxFailedItems allows: 5 (exit code 1), 6 (exit code 1); "
                               "5 succeeded, 13 not run")


def test_inline_results_are_bounded_and_the_rest_counted() -> None:
    big = "r" * 1000
    pods = [item_pod(i, "Succeeded", message=big) for i in range(200)]
    pods += [item_pod(200 + i, "Failed", exit_code=1, message="e" * 3000) for i in range(150)]
    job = fan_job(completions=350, finished="Failed", reason="FailedIndexes", completed_indexes="0-199", failed_indexes="200-349")
    items = final_items(job, pods)
    assert len(items["results"]) < models.MAX_INLINE_ITEM_RESULTS  # the byte bound bites first
    assert sum(serialized_size(r) for r in items["results"]) <= models.MAX_INLINE_RESULTS_BYTES
    assert [r["index"] for r in items["results"]] == list(range(len(items["results"])))  # a prefix by index
    assert items["resultsOmitted"] == 200 - len(items["results"])
    assert len(items["failures"]) == models.MAX_INLINE_ITEM_FAILURES and items["failuresOmitted"] == 50
    assert all(len(f["message"]) == models.MAX_ITEM_FAILURE_MESSAGE for f in items["failures"])
    verdict = observe_fanout(job, pods)
    assert verdict.message.endswith("and 140 more; 200 succeeded")  # ten named, the rest counted
    assert len(json.dumps(task_status(verdict, {}, generation=1, queue="q", run=0, now=NOW))) < 200_000
    TaskStatus.model_validate(task_status(verdict, {}, generation=1, queue="q", run=0, now=NOW))


def test_results_of_pods_already_gone_are_counted_not_invented() -> None:
    items = final_items(fan_job(finished="Complete", completed_indexes="0-19"), [item_pod(0, "Succeeded", message="a")])
    assert items["results"] == [{"index": 0, "result": "a"}] and items["resultsOmitted"] == 19


def test_decide_follows_an_indexed_job_and_reads_its_pods_once_at_the_end() -> None:
    spec = {"type": "analyse", "items": ITEMS}
    running = decide(TaskFacts(spec=spec, status={"phase": "Running", "run": 0}, generation=1, tasktype=TASKTYPE,
                               job=fan_job(active=5, ready=5, completed_indexes="0-1"), validated=True), "q")
    assert running.verdict is not None and running.verdict.items is not None and running.verdict.items["succeeded"] == 2
    done = fan_job(finished="Complete", completed_indexes="0-19")
    assert decide(TaskFacts(spec=spec, status={"phase": "Running", "run": 0}, generation=1, tasktype=TASKTYPE, job=done,
                            validated=True), "q").need is not None
    final = decide(TaskFacts(spec=spec, status={"phase": "Running", "run": 0}, generation=1, tasktype=TASKTYPE, job=done,
                             validated=True, pods_fetched=True), "q")
    assert final.verdict is not None and final.verdict.phase is Phase.SUCCEEDED


def test_a_rerun_clears_the_last_runs_items_and_a_cancel_keeps_them() -> None:
    items = {"total": 20, "succeeded": 3, "failed": 0, "completedIndexes": "0-2", "failedIndexes": ""}
    previous = {"run": 0, "phase": "Running", "items": items}
    cancelled = task_status(Verdict(Phase.CANCELLED, "Cancelled", "cancelled"), previous, generation=2, queue="q", run=0, now=NOW)
    assert cancelled["items"] == items
    rerun = task_status(Verdict(Phase.QUEUED, "WaitingForCapacity"), {"history": []}, generation=3, queue="q", run=1, now=NOW)
    assert rerun["items"] is None
    single = task_status(Verdict(Phase.RUNNING, "PodRunning"), {}, generation=1, queue="q", run=0, now=NOW)
    assert single["items"] is None  # a Task without items: unchanged, nothing extra written


async def test_the_task_index_keeps_only_the_count_of_large_items() -> None:
    from kubetask.operator import handlers
    from kubetask.operator.controller import PARAMETERS_OMITTED, item_count

    def body(items: list[dict[str, Any]]) -> Any:
        return {"apiVersion": "kubetask.io/v1alpha1", "kind": "Task", "spec": {"type": "analyse", "items": items},
                "metadata": {"name": "batch", "namespace": "ns", "uid": "u1", "generation": 1}}

    small = handlers.unfinished_entries(body(ITEMS[:3]), "ns", "u1")
    assert small["ns"]["spec"]["items"] == ITEMS[:3] and PARAMETERS_OMITTED not in small["ns"]
    large = handlers.unfinished_entries(body([{"file": f"s3://bucket/{i:06d}.csv"} for i in range(1000)]), "ns", "u1")
    slim = large["ns"]
    assert "items" not in slim["spec"] and slim[PARAMETERS_OMITTED]  # fetched in full at admission
    assert item_count(slim) == 1000  # still known to admission (GPUs × pods at once)
    assert item_count({"spec": {"type": "analyse"}}) is None
