"""A fan-out run's status: spec.items ran as an Indexed Job, one index per item. Pure, no I/O.

While it runs, the Job's own status says enough, with no pod watch: `completedIndexes` and
`failedIndexes` (the Job controller's compact text, "0-4,7") become `status.items` counts. The
Job controller updates them in batches (about once a second while pods finish), and `status.items`
holds only what changes when an item finishes (not how many pods are running), so a fan-out of any
size costs about one Task status write per batch, not one per pod.

Once the Job has finished, its pods are read once (as for every Task) and give each item's outcome:
a succeeded item's result is its pod's termination message, a failed item's exit code and message
are its last failed pod's. What `status.items` holds is bounded whatever the number of items: the
results of the lowest-index succeeded items while they fit (MAX_INLINE_ITEM_RESULTS, and
MAX_INLINE_RESULTS_BYTES serialized), the first MAX_INLINE_ITEM_FAILURES failures with their
messages cut to MAX_ITEM_FAILURE_MESSAGE, and counts of the rest. Large outputs are the handler's
to store: a result should be a reference (see handlers-images/README.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubetask.operator.status import JobSummary, PodSummary, Verdict, parse_result
from kubetask.resources.models import (MAX_INLINE_ITEM_FAILURES, MAX_INLINE_ITEM_RESULTS, MAX_INLINE_RESULTS_BYTES,
                                       MAX_ITEM_FAILURE_MESSAGE, Phase)
from kubetask.resources.validation import serialized_size

# The Job's reasons for a fan-out that failed, in the Task's words (items, not indexes).
FAILURE_REASONS = {"FailedIndexes": "ItemsFailed", "MaxFailedIndexesExceeded": "MaxFailedItemsExceeded"}
NAMED_IN_MESSAGE = 10  # failed items named one by one in a condition message; the rest are in status.items


def parse_indexes(text: str) -> list[int]:
    """The Job's index notation ("0-2,5") as a sorted list ([0, 1, 2, 5])."""
    indexes: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        first, _, last = part.partition("-")
        indexes.extend(range(int(first), int(last or first) + 1))
    return sorted(set(indexes))


def running_items(job: JobSummary) -> dict[str, Any]:
    """status.items while the run goes on: counts from the Job alone."""
    return {"total": job.completions, "succeeded": len(parse_indexes(job.completed_indexes)),
            "failed": len(parse_indexes(job.failed_indexes)),
            "completedIndexes": job.completed_indexes, "failedIndexes": job.failed_indexes}


def _latest(pods: Iterable[PodSummary], phase: str) -> dict[int, PodSummary]:
    """Per index, its newest pod in `phase` (a retried item has several)."""
    chosen: dict[int, PodSummary] = {}
    for pod in sorted(pods, key=lambda p: (p.created, p.name)):
        if pod.index is not None and pod.phase == phase:
            chosen[pod.index] = pod
    return chosen


def final_items(job: JobSummary, pods: list[PodSummary]) -> dict[str, Any]:
    """status.items once the Job has finished: the counts plus bounded per-item outcomes."""
    items = running_items(job)
    succeeded_pods, failed_pods = _latest(pods, "Succeeded"), _latest(pods, "Failed")
    results: list[dict[str, Any]] = []
    size = 0
    for index in parse_indexes(job.completed_indexes):
        pod = succeeded_pods.get(index)
        if pod is None:
            continue  # its pod is gone already (ttlSecondsAfterFinished: 0): counted as omitted
        entry = {"index": index, "result": parse_result(pod.message)}
        size += serialized_size(entry)
        if len(results) == MAX_INLINE_ITEM_RESULTS or size > MAX_INLINE_RESULTS_BYTES:
            break  # a prefix by index: "results up to index i", never a scattered sample
        results.append(entry)
    failures: list[dict[str, Any]] = []
    failed = parse_indexes(job.failed_indexes)
    for index in failed[:MAX_INLINE_ITEM_FAILURES]:
        failure: dict[str, Any] = {"index": index}
        pod = failed_pods.get(index)
        if pod is not None:
            if pod.exit_code is not None:
                failure["exitCode"] = pod.exit_code
            failure["reason"] = pod.terminated_reason
            failure["message"] = pod.message[:MAX_ITEM_FAILURE_MESSAGE]
        failures.append(failure)
    return {**items, "results": results, "resultsOmitted": items["succeeded"] - len(results),
            "failures": failures, "failuresOmitted": len(failed) - len(failures)}


def result_summary(items: dict[str, Any]) -> dict[str, Any]:
    """status.result of a finished fan-out: the aggregate, for clients that read only `result`."""
    return {key: items[key] for key in ("total", "succeeded", "failed", "failedIndexes")}


def _failures_text(items: dict[str, Any]) -> str:
    named = []
    for failure in items["failures"][:NAMED_IN_MESSAGE]:
        code = failure.get("exitCode")
        named.append(f"{failure['index']} (exit code {code})" if code is not None else str(failure["index"]))
    more = items["failed"] - len(named)
    return ", ".join(named) + (f" and {more} more" if more > 0 else "")


def _progress(items: dict[str, Any]) -> str:
    text = f"{items['succeeded']} of {items['total']} items succeeded"
    if items["failed"]:
        text += f", {items['failed']} failed (indexes {items['failedIndexes']})"
    return text


def observe_fanout(job: JobSummary, pods: list[PodSummary]) -> Verdict:
    """A fan-out run's verdict from its Indexed Job (and, once it has finished, its pods).

    Succeeded when every item succeeded. Failed when the Job failed: items failed for good
    (ItemsFailed: every item ran; MaxFailedItemsExceeded: more than maxFailedItems failed and the
    rest were not run), or the deadline (DeadlineExceeded); the message names the failed items.
    """
    # Pods started. While the run goes on, only the pods that have ended count: counting running
    # ones too would change the status (a write) each time a pod starts.
    attempts = max(1, job.active + job.failed + job.succeeded, len(pods)) if not job.running or job.failing or job.succeeding \
        else max(1, job.failed + job.succeeded)
    start_time = job.created or job.start_time or ""
    if job.succeeded_for_good:
        items = final_items(job, pods)
        return Verdict(Phase.SUCCEEDED, "Succeeded", f"all {items['total']} items succeeded", result=result_summary(items),
                       items=items, completion_time=job.completion_time, attempts=attempts, job_name=job.name, start_time=start_time)
    if job.finished == "Failed" or job.failing:
        items = final_items(job, pods)
        reason = FAILURE_REASONS.get(job.reason, job.reason or "JobFailed")
        not_run = items["total"] - items["succeeded"] - items["failed"]
        if reason == "ItemsFailed":
            message = f"{items['failed']} of {items['total']} items failed: {_failures_text(items)}; {items['succeeded']} succeeded"
        elif reason == "MaxFailedItemsExceeded":
            message = (f"more items failed than maxFailedItems allows: {_failures_text(items)}; "
                       f"{items['succeeded']} succeeded, {not_run} not run")
        elif reason == "DeadlineExceeded":
            message = f"ran past timeoutSeconds (activeDeadlineSeconds); {_progress(items)}, {not_run} unfinished"
        else:
            message = f"{job.message or 'the Job failed'}; {_progress(items)}"
        failure: dict[str, Any] = {"reason": reason, "message": message[:4096]}
        first = next(iter(items["failures"]), None)
        if first is not None and first.get("exitCode") is not None:
            failure["exitCode"] = first["exitCode"]
        return Verdict(Phase.FAILED, reason, message, result=result_summary(items), failure=failure, items=items,
                       attempts=attempts, job_name=job.name, start_time=start_time)
    items = running_items(job)
    # Running once any pod has run: between two waves of pods none may be ready for a moment, and
    # flipping back to PodPending then would cost two status writes for nothing.
    if job.ready > 0 or job.succeeded > 0 or job.failed > 0 or items["succeeded"] or items["failed"]:
        return Verdict(Phase.RUNNING, "PodRunning", _progress(items), items=items, pod_running=True,
                       attempts=attempts, job_name=job.name, start_time=start_time)
    waiting = [p for p in pods if p.phase == "Pending" and not p.deleting and p.unschedulable]
    if waiting:
        return Verdict(Phase.RUNNING, "Unschedulable", waiting[-1].unschedulable or "", items=items,
                       attempts=attempts, job_name=job.name, start_time=start_time)
    return Verdict(Phase.RUNNING, "PodPending", f"waiting for the pods of {items['total']} items to start", items=items,
                   attempts=attempts, job_name=job.name, start_time=start_time)
