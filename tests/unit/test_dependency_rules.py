"""Dependencies (spec.after) in decide.py: waiting, failing, the Finished policy, cycles."""

from __future__ import annotations

from typing import Any

import pytest

from kubetask.operator.decide import TaskFacts, Upstream, decide
from kubetask.resources.dependencies import dependency_cycle
from kubetask.resources.models import Phase, TaskSpec

OK = Upstream("a", "Succeeded", True, "Succeeded")


def facts(after: list[str], upstreams: tuple[Upstream, ...], status: dict[str, Any] | None = None, **spec: Any) -> TaskFacts:
    return TaskFacts(spec={"type": "sim", "after": after, **spec}, status=status or {}, generation=1, tasktype={"image": "x"},
                     job=None, validated=True, upstreams=upstreams)


def test_all_succeeded_goes_to_admission() -> None:
    decision = decide(facts(["a"], (OK,)), "q")
    assert decision.verdict is None and decision.admit == "q"


def test_waiting_names_what_is_outstanding_and_what_does_not_exist() -> None:
    decision = decide(facts(["a", "b", "c"], (OK, Upstream("b", "Running"), Upstream("c", None))), "q")
    assert decision.verdict is not None and decision.admit is None
    assert decision.verdict.phase is Phase.PENDING and decision.verdict.reason == "WaitingForDependencies"
    assert decision.verdict.message == "waiting for b to succeed; c does not exist yet"


def test_the_waiting_message_does_not_change_with_the_upstreams_phase() -> None:
    queued = decide(facts(["b"], (Upstream("b", "Queued"),)), "q").verdict
    running = decide(facts(["b"], (Upstream("b", "Running"),)), "q").verdict
    assert queued is not None and running is not None and queued.message == running.message  # no status write per upstream step


def test_a_queued_task_stays_queued_while_it_waits() -> None:
    decision = decide(facts(["b"], (Upstream("b", "Running"),), status={"phase": "Queued", "run": 0}), "q")
    assert decision.verdict is not None and decision.verdict.phase is Phase.QUEUED


@pytest.mark.parametrize("phase", ["Failed", "Cancelled"])
def test_a_failed_or_cancelled_upstream_fails_it_naming_which(phase: str) -> None:
    decision = decide(facts(["a", "b"], (OK, Upstream("b", phase, True, "BackoffLimitExceeded"))), "q")
    assert decision.verdict is not None and decision.verdict.phase is Phase.FAILED
    assert decision.verdict.reason == "DependencyFailed" and "b (" + phase in decision.verdict.message


def test_policy_finished_runs_anyway() -> None:
    upstreams = (OK, Upstream("b", "Failed", True, "BackoffLimitExceeded"))
    assert decide(facts(["a", "b"], upstreams, dependencyPolicy="Finished"), "q").admit == "q"
    waiting = decide(facts(["b"], (Upstream("b", "Running"),), dependencyPolicy="Finished"), "q").verdict
    assert waiting is not None and waiting.message == "waiting for b to finish"


def test_an_unfinished_upstream_of_an_earlier_run_is_not_finished() -> None:
    # Phase Failed but not settled: it is being re-run (its rerun rose), so it is outstanding, not failed.
    decision = decide(facts(["b"], (Upstream("b", "Failed", False),)), "q")
    assert decision.verdict is not None and decision.verdict.reason == "WaitingForDependencies"


def test_a_cycle_fails_the_task() -> None:
    graph = {"a": ("b",), "b": ("c",), "c": ("a",)}
    cycle = dependency_cycle("a", lambda name: graph.get(name, ()))
    assert cycle == ("a", "b", "c", "a")
    decision = decide(TaskFacts(spec={"type": "sim", "after": ["b"]}, status={}, generation=1, tasktype={"image": "x"},
                                job=None, validated=True, upstreams=(Upstream("b", "Pending"),), cycle=cycle), "q")
    assert decision.verdict is not None and decision.verdict.reason == "DependencyCycle"
    assert "a → b → c → a" in decision.verdict.message


def test_no_cycle_in_a_diamond_or_with_missing_names() -> None:
    graph = {"d": ("b", "c"), "b": ("a",), "c": ("a",), "a": ("missing",)}
    assert dependency_cycle("d", lambda name: graph.get(name, ())) == ()


def test_the_model_refuses_bad_names_and_duplicates() -> None:
    with pytest.raises(ValueError, match="more than once"):
        TaskSpec.model_validate({"type": "t", "after": ["a", "a"]})
    with pytest.raises(ValueError, match="not a Task name"):
        TaskSpec.model_validate({"type": "t", "after": ["Not_A_Name"]})
    with pytest.raises(ValueError):
        TaskSpec.model_validate({"type": "t", "after": [f"t{i}" for i in range(33)]})
