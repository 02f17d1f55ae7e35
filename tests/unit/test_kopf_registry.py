"""The operator's Kopf registry has only event and index handlers: that is what makes the no-op
diff-base storage (handlers.UnusedDiffBase) and the absence of finalizers and annotations safe."""

from __future__ import annotations

from kubetask.operator import handlers


def test_only_event_and_index_handlers_are_registered() -> None:
    registry = handlers.registry
    assert list(registry._changing.get_all_handlers()) == []  # noqa: SLF001  on.create/update/delete/resume
    assert list(registry._spawning.get_all_handlers()) == []  # noqa: SLF001  daemons, timers
    # tasks, jobs, types, queues, schedules, groups, webhooks (no pods)
    assert len(list(registry._watching.get_all_handlers())) == 7  # noqa: SLF001
    # + finished_tasks, schedule_tasks, taskschedules, group_tasks, taskgroups, taskwebhooks
    assert len(list(registry._indexing.get_all_handlers())) == 11  # noqa: SLF001


def test_the_diff_base_is_never_built() -> None:
    storage = handlers.UnusedDiffBase()
    assert storage.fetch(body={"metadata": {}}) is None  # type: ignore[arg-type]
    assert storage.build(body={"metadata": {"name": "x"}, "spec": {"a": 1}}) == {}  # type: ignore[arg-type]
