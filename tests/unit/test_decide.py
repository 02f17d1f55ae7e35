"""The rules of decide.py, one table row each: what a Task's status becomes, and what is done."""

from __future__ import annotations

from typing import Any

import pytest

from kubetask.operator.decide import (Need, TaskFacts, classify_refusal, decide, moves_backwards, refused_verdict)
from kubetask.operator.status import JobSummary, PodSummary
from kubetask.resources.models import Phase
from kubetask.resources.validation import Problem

TASKTYPE: dict[str, Any] = {"image": "x"}


def job(**fields: Any) -> JobSummary:
    base: dict[str, Any] = {"name": "t-abcde-r0", "namespace": "ns", "task_uid": "u", "queue": "q", "run": 0, "gpu": 0,
                            "created": "2026-12-02T00:00:00Z"}
    return JobSummary(**{**base, **fields})


def facts(spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None, **fields: Any) -> TaskFacts:
    values: dict[str, Any] = {"spec": {"type": "sim", **(spec or {})}, "status": status or {}, "generation": 1,
                              "tasktype": TASKTYPE, "job": None, "validated": True}
    return TaskFacts(**{**values, **fields})


def test_a_running_job_is_followed_when_its_tasktype_is_gone() -> None:
    running = facts(status={"phase": "Running", "jobName": "t-abcde-r0"}, tasktype=None, job=job(active=1, ready=1))
    decision = decide(running, "q")
    assert decision.verdict is not None and decision.verdict.phase is Phase.RUNNING
    assert decision.verdict.reason == "PodRunning"  # from the Job's own ready count: no pod watch
    complete = job(finished="Complete", succeeded=1)
    assert decide(facts(status={"phase": "Running"}, tasktype=None, job=complete), "q").need is Need.POD_FACTS  # read once
    finished = decide(facts(status={"phase": "Running"}, tasktype=None, job=complete, pods_fetched=True,
                            pods=(PodSummary("p", "t", "Succeeded", message='{"ok": 1}', job_name="t-abcde-r0"),)), "q")
    assert finished.verdict is not None and finished.verdict.phase is Phase.SUCCEEDED
    assert finished.verdict.result == {"ok": 1}
    assert finished.slot_freed == "q" and finished.admit is None and finished.release  # the slot goes to the next Task, if one waits


def test_a_cancel_stops_the_job_even_without_a_tasktype_and_keeps_the_job_name() -> None:
    decision = decide(facts(spec={"cancel": True}, status={"phase": "Running", "jobName": "t-abcde-r0"}, tasktype=None,
                            job=job(active=1)), "q")
    assert decision.delete_job == "t-abcde-r0"
    assert decision.verdict is not None and decision.verdict.phase is Phase.CANCELLED
    assert decision.verdict.job_name == "t-abcde-r0" and decision.release


def test_cancelled_is_sticky_and_a_job_created_in_a_race_is_deleted() -> None:
    decision = decide(facts(spec={"cancel": True}, status={"phase": "Cancelled", "run": 0}, job=job(active=1)), "q")
    assert decision.verdict is None and decision.delete_job == "t-abcde-r0" and decision.release


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_a_finished_run_never_changes(phase: str) -> None:
    decision = decide(facts(status={"phase": phase, "run": 0}, tasktype=None, job=job(active=1)), "q")
    assert decision.verdict is None and decision.delete_job is None


def test_a_reserved_task_waits_for_its_job() -> None:
    assert decide(facts(status={"phase": "Queued"}, reserved=True), "q").verdict is None


def test_a_missing_job_is_checked_before_it_is_declared_deleted() -> None:
    running = {"phase": "Running", "jobName": "t-abcde-r0", "attempts": 1}
    assert decide(facts(status=running), "q").need is Need.JOB_CHECK
    gone = decide(facts(status=running, job_gone=True), "q")
    assert gone.verdict is not None and gone.verdict.phase is Phase.FAILED and gone.verdict.reason == "JobDeleted"


def test_an_unknown_tasktype_waits_and_a_queued_task_stays_queued() -> None:
    fresh = decide(facts(tasktype=None), "q")
    assert fresh.verdict is not None and (fresh.verdict.phase, fresh.verdict.reason) == (Phase.PENDING, "UnknownTaskType")
    queued = decide(facts(status={"phase": "Queued"}, tasktype=None), "q")
    assert queued.verdict is not None and queued.verdict.phase is Phase.QUEUED


def test_validation_needs_the_parameters_and_invalid_fails() -> None:
    assert decide(facts(validated=False), "q").need is Need.PARAMETERS
    invalid = decide(facts(validated=False, problems=(Problem("spec.parameters.count", "too big", "InvalidParameters"),)), "q")
    assert invalid.verdict is not None and invalid.verdict.phase is Phase.FAILED
    assert "spec.parameters.count" in invalid.verdict.message
    assert decide(facts(validated=False, problems=()), "q").admit == "q"


def test_a_valid_waiting_task_goes_to_its_queue() -> None:
    decision = decide(facts(), "gpu")
    assert decision.admit == "gpu" and decision.verdict is None


@pytest.mark.parametrize(("old", "new", "backwards"), [
    ("Running", "Pending", True), ("Running", "Queued", True), ("Queued", "Pending", True),
    ("Succeeded", "Running", True), ("Cancelled", "Failed", True),
    ("Pending", "Queued", False), ("Queued", "Running", False), ("Running", "Failed", False), (None, "Queued", False),
])
def test_the_backwards_guard(old: str | None, new: str, backwards: bool) -> None:
    assert moves_backwards({"phase": old, "run": 0}, {"phase": new, "run": 0}) is backwards
    assert moves_backwards({"phase": old, "run": 0}, {"phase": new, "run": 1}) is False  # a rerun starts over


@pytest.mark.parametrize(("status", "message", "kind", "final"), [
    (403, 'jobs.batch "x" is forbidden: exceeded quota: jobs, requested: count/jobs.batch=1', "Quota", False),
    (403, 'jobs.batch "x" is forbidden: User "u" cannot create resource "jobs"', "Forbidden", False),
    (422, "jobs.batch \"x\" is forbidden: ValidatingAdmissionPolicy 'p' with binding 'b' denied request: no", "AdmissionDenied", False),
    (400, 'admission webhook "w.example.com" denied the request: no', "AdmissionDenied", False),
    (429, "Too many requests, please try again later.", "Throttled", False),
    (500, "etcdserver: request timed out", "ServerError", False),
    (503, "service unavailable", "ServerError", False),
    (422, 'Job.batch "x" is invalid: spec.template.spec.containers[0].image: Required value', "Invalid", True),
    (None, "ReadTimeout", "Timeout", False),
])
def test_which_refusals_end_the_task(status: int | None, message: str, kind: str, final: bool) -> None:
    refusal = classify_refusal(status, "", message, {"retryAfterSeconds": 2} if status == 429 else None)
    assert (refusal.kind, refusal.final) == (kind, final)
    verdict = refused_verdict(refusal)
    if final:
        assert (verdict.phase, verdict.reason) == (Phase.FAILED, "InvalidJob")
    else:
        assert (verdict.phase, verdict.reason) == (Phase.QUEUED, "JobCreateRefused")
        assert message in verdict.message
    if status == 429:
        assert refusal.retry_after == 2


def test_a_pod_that_starts_within_the_settle_window_is_written_once() -> None:
    """A young Job whose pod only waits writes nothing (one write saved per short Task); the Task
    is looked at again when the window ends, and PodPending is written only then."""
    young = facts(job=job(active=1), job_age=0.3, settle_seconds=1.0)
    waiting = decide(young, "q")
    assert waiting.verdict is None and waiting.release
    assert waiting.recheck_after == pytest.approx(0.7)
    started = decide(facts(job=job(active=1, ready=1), job_age=0.5, settle_seconds=1.0), "q")
    assert started.verdict is not None and started.verdict.reason == "PodRunning"  # written at once, PodPending never
    late = decide(facts(job=job(active=1), job_age=1.2, settle_seconds=1.0), "q")
    assert late.verdict is not None and late.verdict.reason == "PodPending" and late.recheck_after is None
    unknown_age = decide(facts(job=job(active=1), job_age=None, settle_seconds=1.0), "q")
    assert unknown_age.verdict is not None and unknown_age.verdict.reason == "PodPending"
    off = decide(facts(job=job(active=1), job_age=0.1, settle_seconds=0.0), "q")
    assert off.verdict is not None and off.verdict.reason == "PodPending"


def test_the_settle_window_never_holds_back_what_users_must_see() -> None:
    """Only the first PodPending waits: a Task already Running is written as it changes, and an
    unschedulable pod or a failure is written at once, young Job or not."""
    running = decide(facts(status={"phase": "Running", "jobName": "t-abcde-r0"}, job=job(active=1), job_age=0.2, settle_seconds=1.0), "q")
    assert running.verdict is not None and running.recheck_after is None
    unschedulable = PodSummary("p", "t", "Pending", unschedulable="0/3 nodes are available", job_name="t-abcde-r0")
    stuck = decide(facts(job=job(active=1), pods=(unschedulable,), job_age=0.2, settle_seconds=1.0), "q")
    assert stuck.verdict is not None and stuck.verdict.reason == "Unschedulable"
    failed = decide(facts(job=job(failing=True, failed=1, reason="BackoffLimitExceeded"), job_age=0.2, settle_seconds=1.0,
                          pods_fetched=True), "q")
    assert failed.verdict is not None and failed.verdict.phase is Phase.FAILED


def test_success_criteria_met_reads_the_pods_and_succeeds() -> None:
    meeting = job(active=0, succeeded=1, succeeding=True)
    assert decide(facts(status={"phase": "Running"}, job=meeting), "q").need is Need.POD_FACTS
    done = decide(facts(status={"phase": "Running"}, job=meeting, pods_fetched=True,
                        pods=(PodSummary("p", "t", "Succeeded", message="ok", job_name="t-abcde-r0"),)), "q")
    assert done.verdict is not None and done.verdict.phase is Phase.SUCCEEDED and done.verdict.result == "ok"
    assert done.slot_freed is None  # the slot is freed at Complete, when the Job stops counting as running
