"""TaskGroup rules (group.py): completeness, the callback (chord), the conditions, the parameters bound."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from kubetask.operator.group import GROUP_PARAMETERS_BUDGET, LABEL_CALLBACK_OF, Member, callback_task, plan

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def group(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "g", "namespace": "ns", "uid": "gu", "generation": 1}, "spec": spec, "status": {}}


def m(name: str, phase: str = "Succeeded", finished: bool = True) -> Member:
    return Member(name, f"uid-{name}", phase, finished)


def cond(decided: Any, kind: str) -> dict[str, Any]:
    return next(c for c in decided.status["conditions"] if c["type"] == kind)


CALLBACK = {"when": "Succeeded", "taskTemplate": {"spec": {"type": "report", "parameters": {"format": "pdf"}}}}


def test_counts_and_not_finished_while_members_run() -> None:
    decided = plan(group(), [m("a"), m("b", "Running", False), m("c", "")], None, NOW)
    assert decided.status["counts"] == {"total": 3, "pending": 1, "queued": 0, "running": 1, "succeeded": 1, "failed": 0, "cancelled": 0}
    assert cond(decided, "Finished")["status"] == "False" and not decided.create_callback


def test_size_waits_for_members_not_yet_created() -> None:
    decided = plan(group(size=3), [m("a"), m("b")], None, NOW)
    assert cond(decided, "Finished")["status"] == "False" and "2 of 3 members exist" in cond(decided, "Finished")["message"]
    assert cond(plan(group(size=2), [m("a"), m("b")], None, NOW), "Finished")["status"] == "True"


def test_an_empty_group_is_not_finished() -> None:
    assert cond(plan(group(), [], None, NOW), "Finished")["status"] == "False"


def test_without_a_callback_finished_and_succeeded_or_failed() -> None:
    ok = plan(group(), [m("a"), m("b")], None, NOW)
    assert (cond(ok, "Finished")["status"], cond(ok, "Succeeded")["status"], cond(ok, "Ready")["status"]) == ("True", "True", "True")
    assert ok.status["completionTime"] == "2026-01-02T03:04:05Z"
    bad = plan(group(), [m("a"), m("b", "Failed")], None, NOW)
    assert (cond(bad, "Finished")["status"], cond(bad, "Succeeded")["status"], cond(bad, "Stalled")["status"]) == ("True", "False", "True")
    assert cond(bad, "Finished")["reason"] == "MembersFailed"


def test_chord_creates_the_callback_once_all_succeeded_and_finishes_with_it() -> None:
    decided = plan(group(callback=CALLBACK), [m("a"), m("b")], None, NOW)
    assert decided.create_callback and decided.status["callbackTask"] == "g-callback"
    assert cond(decided, "Finished")["status"] == "False"
    running = plan(group(callback=CALLBACK), [m("a"), m("b")], m("g-callback", "Running", False), NOW)
    assert not running.create_callback and cond(running, "Finished")["reason"] == "CallbackRunning"
    done = plan(group(callback=CALLBACK), [m("a"), m("b")], m("g-callback"), NOW)
    assert cond(done, "Finished")["status"] == "True" and cond(done, "Succeeded")["status"] == "True"
    failed = plan(group(callback=CALLBACK), [m("a"), m("b")], m("g-callback", "Failed"), NOW)
    assert cond(failed, "Succeeded")["reason"] == "CallbackFailed"


def test_chord_does_not_run_the_callback_after_a_failure_unless_when_finished() -> None:
    members = [m("a"), m("b", "Failed")]
    strict = plan(group(callback=CALLBACK), members, None, NOW)
    assert not strict.create_callback and cond(strict, "Finished")["status"] == "True" and cond(strict, "Succeeded")["status"] == "False"
    anyway = plan(group(callback={**CALLBACK, "when": "Finished"}), members, None, NOW)
    assert anyway.create_callback


def test_the_callback_gets_the_members_and_their_results_within_the_bound() -> None:
    members = [{"metadata": {"name": f"t{i}"}, "status": {"phase": "Succeeded", "result": {"n": i}}} for i in range(3)]
    task = callback_task(group(callback=CALLBACK), members)
    assert task["metadata"]["name"] == "g-callback" and task["metadata"]["labels"][LABEL_CALLBACK_OF] == "g"
    assert task["metadata"]["ownerReferences"][0]["kind"] == "TaskGroup"
    params = task["spec"]["parameters"]
    assert params["format"] == "pdf"  # the template's own parameters stay
    assert params["group"]["members"][2] == {"name": "t2", "phase": "Succeeded", "result": {"n": 2}}
    assert params["group"]["counts"]["succeeded"] == 3
    big = [{"metadata": {"name": f"t{i:04d}"}, "status": {"phase": "Succeeded", "result": "x" * 200}} for i in range(200)]
    trimmed = callback_task(group(callback=CALLBACK), big)["spec"]["parameters"]["group"]
    assert trimmed.get("resultsOmitted") and "result" not in trimmed["members"][0]
    assert len(json.dumps(trimmed)) <= GROUP_PARAMETERS_BUDGET
    huge = [{"metadata": {"name": f"member-with-a-long-name-{i:05d}"}, "status": {"phase": "Succeeded"}} for i in range(2000)]
    counted = callback_task(group(callback=CALLBACK), huge)["spec"]["parameters"]["group"]
    assert counted.get("membersOmitted") and counted["label"] == "kubetask.io/group=g" and counted["counts"]["total"] == 2000
