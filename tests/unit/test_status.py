"""observe_run / task_status: Job + pods → Task status, without a cluster."""

from __future__ import annotations

from datetime import datetime, timezone

from kubetask.operator.status import (JobSummary, PodSummary, Verdict, observe_run, parse_result, status_changed,
                                      summarize_job, summarize_pod, task_status)
from kubetask.resources.models import Phase, TaskStatus

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
LATER = datetime(2026, 11, 24, 12, 5, tzinfo=timezone.utc)


def job(**kw: object) -> JobSummary:
    base = dict(name="t-abcde-r0", namespace="ns", task_uid="u", queue="q", run=0, gpu=0, created="2026-11-24T11:59:00Z",
                start_time="2026-11-24T11:59:01Z")
    base.update(kw)
    return JobSummary(**base)  # type: ignore[arg-type]


def pod(name: str, phase: str, created: str = "2026-11-24T11:59:02Z", **kw: object) -> PodSummary:
    return PodSummary(name=name, created=created, phase=phase, job_name="t-abcde-r0", **kw)  # type: ignore[arg-type]


def conditions(status: dict[str, object]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}  # type: ignore[index, union-attr]


def test_success_parses_the_termination_message_as_result() -> None:
    verdict = observe_run(job(finished="Complete", succeeded=1, completion_time="2026-11-24T11:59:09Z"),
                          [pod("p1", "Succeeded", exit_code=0, message='{"rows": 3}')])
    assert verdict.phase is Phase.SUCCEEDED and verdict.result == {"rows": 3} and verdict.attempts == 1
    status = task_status(verdict, {}, generation=1, queue="q", run=0, now=NOW)
    assert conditions(status) == {
        "Accepted": ("True", "Valid"), "Queued": ("False", "Admitted"), "Running": ("False", "Completed"),
        "Succeeded": ("True", "Succeeded"), "Finished": ("True", "Succeeded"), "Ready": ("True", "Succeeded"),
        "Stalled": ("False", "Progressing"), "Reconciling": ("False", "Succeeded")}
    assert status["completionTime"] == "2026-11-24T11:59:09Z"
    TaskStatus.model_validate(status)  # the shape the CRD and the gateway expect


def test_plain_text_result_stays_text() -> None:
    assert parse_result("done") == "done"
    assert parse_result("") is None
    assert parse_result("[1, 2]") == [1, 2]


def test_an_oom_killed_pod_names_oomkilled_in_last_failure() -> None:
    verdict = observe_run(job(finished="Failed", reason="BackoffLimitExceeded", message="Job has reached the specified backoff limit", failed=1),
                          [pod("p1", "Failed", exit_code=137, terminated_reason="OOMKilled")])
    assert verdict.reason == "BackoffLimitExceeded"  # the conditions keep the Job's reason
    assert verdict.failure == {"reason": "OOMKilled", "exitCode": 137,
                               "message": "the handler was killed for exceeding its memory limit (OOMKilled)"}


def test_backoff_limit_failure_reports_the_last_pod() -> None:
    verdict = observe_run(job(finished="Failed", reason="BackoffLimitExceeded", message="Job has reached the specified backoff limit", failed=2),
                          [pod("p1", "Failed", exit_code=3, message="first"),
                           pod("p2", "Failed", created="2026-11-24T11:59:30Z", exit_code=3, message="second")])
    assert verdict.phase is Phase.FAILED and verdict.reason == "BackoffLimitExceeded" and verdict.attempts == 2
    assert verdict.failure == {"reason": "BackoffLimitExceeded", "message": "second", "exitCode": 3}
    status = task_status(verdict, {}, generation=1, queue="q", run=0, now=NOW)
    cond = conditions(status)
    assert cond["Finished"] == ("True", "BackoffLimitExceeded")
    assert cond["Succeeded"] == ("False", "BackoffLimitExceeded")
    assert cond["Stalled"] == ("True", "BackoffLimitExceeded")
    assert cond["Ready"][0] == "False"


def test_deadline_without_a_pod_uses_the_jobs_message() -> None:
    verdict = observe_run(job(finished="Failed", reason="DeadlineExceeded", message="Job was active longer than specified deadline"), [])
    assert verdict.failure == {"reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}


def test_running_pending_unschedulable_and_retrying() -> None:
    assert observe_run(job(active=1), [pod("p", "Running")]).reason == "PodRunning"
    assert observe_run(job(active=1), [pod("p", "Pending")]).reason == "PodPending"
    stuck = observe_run(job(active=1), [pod("p", "Pending", unschedulable="0/5 nodes are available: 5 Insufficient nvidia.com/gpu.")])
    assert stuck.reason == "Unschedulable" and "nvidia.com/gpu" in stuck.message
    retry = observe_run(job(active=1, failed=1), [pod("p1", "Failed", exit_code=3), pod("p2", "Running", created="2026-11-24T11:59:40Z")])
    assert retry.reason == "Retrying" and retry.pod_running and retry.attempts == 2
    backing_off = observe_run(job(failed=1), [pod("p1", "Failed", exit_code=3)])
    assert backing_off.reason == "Retrying" and not backing_off.pod_running


def test_the_jobs_own_counts_say_running_and_retrying_without_pods() -> None:
    assert observe_run(job(active=1), []).reason == "PodPending"
    assert observe_run(job(active=1, ready=1), []).reason == "PodRunning"
    retrying = observe_run(job(active=1, ready=1, failed=2), [])
    assert (retrying.reason, retrying.pod_running, retrying.attempts) == ("Retrying", True, 3)
    assert observe_run(job(failed=1), []).reason == "Retrying"


def test_unchanged_state_yields_identical_status_so_no_write() -> None:
    verdict = observe_run(job(active=1), [pod("p", "Running")])
    first = task_status(verdict, {}, generation=1, queue="q", run=0, now=NOW)
    again = task_status(verdict, first, generation=1, queue="q", run=0, now=LATER)
    assert not status_changed(first, again)


def test_transition_times_move_only_when_status_changes() -> None:
    running = task_status(observe_run(job(active=1), [pod("p", "Running")]), {}, generation=1, queue="q", run=0, now=NOW)
    done = task_status(observe_run(job(finished="Complete", succeeded=1), [pod("p", "Succeeded", exit_code=0)]), running,
                       generation=1, queue="q", run=0, now=LATER)
    by_type = {c["type"]: c["lastTransitionTime"] for c in done["conditions"]}
    assert by_type["Accepted"] == "2026-11-24T12:00:00Z"  # still True: kept
    assert by_type["Succeeded"] == "2026-11-24T12:05:00Z"  # Unknown → True: moved


def test_queued_and_unknown_type_are_not_finished() -> None:
    queued = task_status(Verdict(Phase.QUEUED, "WaitingForCapacity", "full"), {}, generation=1, queue="q", run=0, now=NOW)
    assert conditions(queued)["Queued"] == ("True", "WaitingForCapacity")
    assert conditions(queued)["Finished"] == ("False", "NotFinished")
    assert conditions(queued)["Reconciling"][0] == "True"
    assert queued["queuedTime"] == "2026-11-24T12:00:00Z"
    unknown = task_status(Verdict(Phase.PENDING, "UnknownTaskType", "no such type"), {}, generation=1, queue=None, run=0, now=NOW)
    assert conditions(unknown)["Accepted"] == ("False", "UnknownTaskType")
    assert conditions(unknown)["Stalled"] == ("True", "UnknownTaskType")
    assert conditions(unknown)["Finished"][0] == "False"


def test_summaries_read_real_shapes() -> None:
    job_body = {"metadata": {"name": "j", "namespace": "ns", "creationTimestamp": "t",
                             "labels": {"kubetask.io/task-uid": "u", "kubetask.io/queue": "q", "kubetask.io/run": "2"}},
                "spec": {"template": {"spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": "2"}}}]}}},
                "status": {"failed": 1, "conditions": [{"type": "FailureTarget", "status": "True"},
                                                       {"type": "Failed", "status": "True", "reason": "PodFailurePolicy", "message": "m"}]}}
    summary = summarize_job(job_body)
    assert (summary.run, summary.gpu, summary.finished, summary.reason, summary.running) == (2, 2, "Failed", "PodFailurePolicy", False)
    pod_body = {"metadata": {"name": "p", "creationTimestamp": "t", "labels": {"batch.kubernetes.io/job-name": "j"}},
                "status": {"phase": "Failed", "containerStatuses": [{"state": {"terminated": {"exitCode": 65, "reason": "Error", "message": "x" * 5000}}}]}}
    pod_summary = summarize_pod(pod_body)
    assert (pod_summary.exit_code, pod_summary.job_name, len(pod_summary.message)) == (65, "j", 4096)


def test_success_criteria_met_is_the_outcome_before_complete() -> None:
    """Kubernetes 1.31+ says SuccessCriteriaMet, then Complete once the pods have terminated (the
    shape is the one the local control plane's Job controller writes). The outcome is read at the
    first: no Running write in between, and the completion time is when the criteria were met."""
    body = {"metadata": {"name": "j", "namespace": "ns", "creationTimestamp": "2026-11-24T11:59:00Z",
                         "labels": {"kubetask.io/task-uid": "u", "kubetask.io/queue": "q"}},
            "spec": {"template": {"spec": {"containers": [{}]}}},
            "status": {"active": 0, "ready": 0, "startTime": "2026-11-24T11:59:00Z", "terminating": 0,
                       "uncountedTerminatedPods": {"succeeded": ["pod-uid"]},
                       "conditions": [{"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                                       "lastTransitionTime": "2026-11-24T11:59:03Z"}]}}
    summary = summarize_job(body)
    assert summary.succeeding and summary.succeeded_for_good
    assert summary.running  # its capacity is freed at Complete, when its pods are gone
    assert summary.completion_time == "2026-11-24T11:59:03Z"
    verdict = observe_run(summary, [pod("p", "Succeeded", message='{"n": 3}')])
    assert (verdict.phase, verdict.result, verdict.completion_time) == (Phase.SUCCEEDED, {"n": 3}, "2026-11-24T11:59:03Z")
    complete = {**body, "status": {**body["status"], "completionTime": "2026-11-24T11:59:04Z", "conditions": [
        *body["status"]["conditions"], {"type": "Complete", "status": "True", "reason": "CompletionsReached"}]}}  # type: ignore[dict-item]
    assert summarize_job(complete).completion_time == "2026-11-24T11:59:04Z"
    assert not summarize_job(complete).running
    failing = {**body, "status": {"conditions": [{"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"}]}}
    assert not summarize_job(failing).succeeded_for_good
