"""The operator's Kopf registry has only event and index handlers: that is what makes the no-op
diff-base storage (handlers.UnusedDiffBase) and the absence of finalizers and annotations safe.
Tasks and Jobs are not in it at all: kubetask's own informer indexes them (informer.py)."""

from __future__ import annotations

from kubetask.operator import handlers


def test_only_event_and_index_handlers_are_registered() -> None:
    registry = handlers.registry
    assert list(registry._changing.get_all_handlers()) == []  # noqa: SLF001  on.create/update/delete/resume
    assert list(registry._spawning.get_all_handlers()) == []  # noqa: SLF001  daemons, timers
    # types, queues, schedules, groups, webhooks (no tasks, jobs or pods)
    watched = {handler.selector.any_name for handler in registry._watching.get_all_handlers()}  # noqa: SLF001
    indexed = {handler.selector.any_name for handler in registry._indexing.get_all_handlers()}  # noqa: SLF001
    assert watched == indexed == {"tasktypes", "taskqueues", "taskschedules", "taskgroups", "taskwebhooks"}


def test_the_diff_base_is_never_built() -> None:
    storage = handlers.UnusedDiffBase()
    assert storage.fetch(body={"metadata": {}}) is None  # type: ignore[arg-type]
    assert storage.build(body={"metadata": {"name": "x"}, "spec": {"a": 1}}) == {}  # type: ignore[arg-type]


def test_one_task_index_keeps_each_kind_of_entry_under_keys_of_its_own() -> None:
    """The `tasks` index holds unfinished bodies, finished records, group members and phases
    together: an unfinished and a finished Task of the same name, in a namespace named like a
    key, share only what they should (their group)."""
    def task(uid: str, status: dict[str, object]) -> dict[str, object]:
        return {"apiVersion": "kubetask.io/v1alpha1", "kind": "Task", "spec": {"type": "t", "after": ["up"]}, "status": status,
                "metadata": {"name": "a", "namespace": "finished", "uid": uid, "generation": 1, "labels": {"kubetask.io/group": "g"},
                             "creationTimestamp": "2026-12-03T00:00:00Z"}}
    running = handlers.task_entries(task("u1", {}))
    done = handlers.task_entries(task("u2", {"phase": "Succeeded", "run": 0, "startTime": "2026-12-03T00:00:01Z",
                                             "completionTime": "2026-12-03T00:00:02Z"}))
    assert set(running) & set(done) == {("member", "finished", "g")}
    assert {"finished", ("uid", "u1"), ("name", "finished", "a"), ("after", "finished", "up"), ("phase", "Pending", "t", "")} <= set(running)
    assert {("finished",), ("finished-name", "finished", "a"), ("finished-after", "finished", "up"), ("phase", "Succeeded", "t", "")} <= set(done)
    assert done[("finished",)].name == "a" and running["finished"]["metadata"]["uid"] == "u1"


def test_only_tasks_not_yet_running_are_indexed_for_admission() -> None:
    """Admission rounds read ("unstarted", namespace): Pending and Queued Tasks, and a rerun whose
    status still describes the run before; never one Running (or finished) for its current run."""
    def task(uid: str, rerun: int, status: dict[str, object]) -> dict[str, object]:
        return {"apiVersion": "kubetask.io/v1alpha1", "kind": "Task", "spec": {"type": "t", "rerun": rerun}, "status": status,
                "metadata": {"name": uid, "namespace": "ns", "uid": uid, "generation": 1, "creationTimestamp": "2026-12-03T00:00:00Z"}}

    def unstarted(body: dict[str, object]) -> bool:
        return ("unstarted", "ns") in handlers.task_entries(body)

    assert unstarted(task("new", 0, {}))
    assert unstarted(task("queued", 0, {"phase": "Queued", "run": 0}))
    assert not unstarted(task("running", 0, {"phase": "Running", "run": 0}))
    assert not unstarted(task("done", 0, {"phase": "Succeeded", "run": 0}))
    assert unstarted(task("rerun", 1, {"phase": "Succeeded", "run": 0}))  # its run 1 waits
    assert unstarted(task("rerun-was-running", 1, {"phase": "Running", "run": 0}))
