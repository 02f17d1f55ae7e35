"""The budget for intermediate status writes (budget.py), and the controller holding a write back
and coalescing it with the outcome (a fake API: what is written, when the Task comes back)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from kubetask.kube import Kube
from kubetask.operator import controller as controller_module
from kubetask.operator import metrics
from kubetask.operator.budget import WriteBudget
from kubetask.operator.config import OperatorSettings
from kubetask.operator.controller import Controller, Key, TaskKey
from kubetask.operator.decide import Decision
from kubetask.operator.status import Verdict
from kubetask.resources.models import Phase

pytestmark = pytest.mark.timeout(10)


def test_a_burst_then_one_slot_per_interval_and_none_past_the_longest_wait() -> None:
    budget = WriteBudget(rate=2.0, burst=2.0)
    assert [budget.reserve(10.0, max_wait=5) for _ in range(2)] == [0.0, 0.0]  # the burst
    assert budget.reserve(10.0, max_wait=5) == pytest.approx(0.5)  # then slots 0.5 s apart, queued
    assert budget.reserve(10.0, max_wait=5) == pytest.approx(1.0)
    assert budget.reserve(10.0, max_wait=0.9) is None  # would be 1.5 s away: nothing reserved
    assert budget.reserve(10.0, max_wait=5) == pytest.approx(1.5)  # so the next slot is still 1.5
    assert budget.reserve(20.0, max_wait=5) == 0.0  # refilled (to the burst, no more)
    assert budget.reserve(20.0, max_wait=5) == 0.0
    assert budget.reserve(20.0, max_wait=5) == pytest.approx(0.5)


def test_a_slot_given_back_goes_to_the_next_write() -> None:
    budget = WriteBudget(rate=1.0, burst=1.0)
    assert budget.reserve(0.0, max_wait=10) == 0.0
    assert budget.reserve(0.0, max_wait=10) == pytest.approx(1.0)
    budget.give_back(0.2)  # that run ended before its slot
    assert budget.reserve(0.2, max_wait=10) == pytest.approx(0.8)  # the next one takes the freed slot
    budget.give_back(100.0)
    assert budget.reserve(100.0, max_wait=10) == 0.0 and budget.reserve(100.0, max_wait=10) == pytest.approx(1.0)  # never above the burst


def test_rate_zero_is_no_limit() -> None:
    budget = WriteBudget(rate=0.0)
    assert all(budget.reserve(0.0, max_wait=0.1) == 0.0 for _ in range(1000))


class FakeKube:
    def __init__(self) -> None:
        self.patches: list[tuple[str, dict[str, Any]]] = []

    async def patch(self, path: str, body: Any, *args: Any, **params: Any) -> dict[str, Any]:
        self.patches.append((path, body))
        return {"metadata": {"resourceVersion": str(100 + len(self.patches))}, "status": body["status"]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def task(name: str) -> dict[str, Any]:
    return {"apiVersion": "kubetask.io/v1alpha1", "kind": "Task",
            "metadata": {"name": name, "namespace": "ns", "uid": f"u-{name}", "generation": 1, "resourceVersion": "7",
                         "creationTimestamp": "2026-12-06T00:00:00Z"},
            "spec": {"type": "sim"}, "status": {}}


RUNNING = Decision(verdict=Verdict(Phase.RUNNING, "PodRunning", "the handler is running", job_name="j", start_time="2026-12-06T00:00:01Z"),
                   queue="q", intermediate=True)
SUCCEEDED = Decision(verdict=Verdict(Phase.SUCCEEDED, "Succeeded", "the handler finished successfully", job_name="j",
                                     start_time="2026-12-06T00:00:01Z", completion_time="2026-12-06T00:00:02Z"), queue="q")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(controller_module.time, "monotonic", clock.monotonic)
    return clock


def controller(rate: float, max_delay: float = 30.0) -> tuple[Controller, FakeKube, list[tuple[Key, float]]]:
    kube = FakeKube()
    later: list[tuple[Key, float]] = []
    settings = OperatorSettings(intermediate_status_writes_per_second=rate, intermediate_status_max_delay=max_delay)
    return Controller(cast(Kube, kube), settings, enqueue_after=lambda key, delay: later.append((key, delay))), kube, later


def phases(kube: FakeKube) -> list[tuple[str, str]]:
    return [(path.split("/")[-2], body["status"]["phase"]) for path, body in kube.patches]


async def test_over_the_budget_the_outcome_is_written_alone(clock: Clock) -> None:
    ctl, kube, later = controller(rate=1.0)
    held, coalesced = metrics.INTERMEDIATE_HELD_BACK._value.get(), metrics.INTERMEDIATE_COALESCED._value.get()
    await ctl._write_status(task("a"), RUNNING)  # the budget's one token
    await ctl._write_status(task("b"), RUNNING)  # over it: held back, back at its slot
    assert phases(kube) == [("a", "Running")]
    assert later == [(TaskKey("u-b"), pytest.approx(1.0))]
    assert metrics.INTERMEDIATE_HELD_BACK._value.get() == held + 1

    clock.now += 0.4  # b's Job ends before its slot: only the outcome is written
    await ctl._write_status(task("b"), SUCCEEDED)
    assert phases(kube) == [("a", "Running"), ("b", "Succeeded")]
    assert metrics.INTERMEDIATE_COALESCED._value.get() == coalesced + 1
    later.clear()
    await ctl._write_status(task("c"), RUNNING)  # b's slot was given back: c waits only for what is left of it
    assert later == [(TaskKey("u-c"), pytest.approx(0.6))]


async def test_a_held_back_write_is_made_at_its_slot_and_an_earlier_event_keeps_the_slot(clock: Clock) -> None:
    ctl, kube, later = controller(rate=1.0)
    await ctl._write_status(task("a"), RUNNING)
    await ctl._write_status(task("b"), RUNNING)
    later.clear()
    clock.now += 0.3  # an event of b's Job before its slot: still held, still the same slot
    await ctl._write_status(task("b"), RUNNING)
    assert phases(kube) == [("a", "Running")] and later == [(TaskKey("u-b"), pytest.approx(0.7))]
    clock.now += 0.7  # its slot: written, with no new token taken
    await ctl._write_status(task("b"), RUNNING)
    assert phases(kube) == [("a", "Running"), ("b", "Running")]
    assert ctl.memory.held_back("u-b", 0) is None


async def test_no_write_is_held_longer_than_the_longest_delay(clock: Clock) -> None:
    ctl, kube, later = controller(rate=0.1, max_delay=2.0)  # a slot every 10 s: past the longest hold
    await ctl._write_status(task("a"), RUNNING)
    await ctl._write_status(task("b"), RUNNING)
    assert later == [(TaskKey("u-b"), pytest.approx(2.0))]  # no slot reserved; back when the hold ends
    clock.now += 2.0
    await ctl._write_status(task("b"), RUNNING)
    assert phases(kube) == [("a", "Running"), ("b", "Running")]


async def test_outcomes_never_touch_the_budget(clock: Clock) -> None:
    ctl, kube, later = controller(rate=1.0)
    for name in "abc":
        await ctl._write_status(task(name), SUCCEEDED)
    assert phases(kube) == [("a", "Succeeded"), ("b", "Succeeded"), ("c", "Succeeded")] and later == []
    await ctl._write_status(task("d"), RUNNING)  # the token is still there
    assert phases(kube)[-1] == ("d", "Running")
