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
    # tasks (one index for every kind of Task entry), jobs, types, queues, schedule_tasks,
    # taskschedules, taskgroups, taskwebhooks
    assert len(list(registry._indexing.get_all_handlers())) == 8  # noqa: SLF001


def test_the_diff_base_is_never_built() -> None:
    storage = handlers.UnusedDiffBase()
    assert storage.fetch(body={"metadata": {}}) is None  # type: ignore[arg-type]
    assert storage.build(body={"metadata": {"name": "x"}, "spec": {"a": 1}}) == {}  # type: ignore[arg-type]


async def test_one_task_index_keeps_each_kind_of_entry_under_keys_of_its_own() -> None:
    """The `tasks` index holds unfinished bodies, finished records, group members and phases
    together: an unfinished and a finished Task of the same name, in a namespace named like a
    key, share only what they should (their group)."""
    def task(uid: str, status: dict[str, object]) -> dict[str, object]:
        return {"apiVersion": "kubetask.io/v1alpha1", "kind": "Task", "spec": {"type": "t", "after": ["up"]}, "status": status,
                "metadata": {"name": "a", "namespace": "finished", "uid": uid, "generation": 1, "labels": {"kubetask.io/group": "g"},
                             "creationTimestamp": "2026-12-03T00:00:00Z"}}
    running = await handlers.tasks(body=task("u1", {}), namespace="finished", uid="u1")  # type: ignore[arg-type]
    done = await handlers.tasks(body=task("u2", {"phase": "Succeeded", "run": 0, "startTime": "2026-12-03T00:00:01Z",
                                                 "completionTime": "2026-12-03T00:00:02Z"}), namespace="finished", uid="u2")  # type: ignore[arg-type]
    assert set(running) & set(done) == {("member", "finished", "g")}
    assert {"finished", ("uid", "u1"), ("name", "finished", "a"), ("after", "finished", "up"), ("phase", "Pending", "t", "")} <= set(running)
    assert {("finished",), ("finished-name", "finished", "a"), ("finished-after", "finished", "up"), ("phase", "Succeeded", "t", "")} <= set(done)
    assert done[("finished",)].name == "a" and running["finished"]["metadata"]["uid"] == "u1"


async def test_only_tasks_not_yet_running_are_indexed_for_admission() -> None:
    """Admission rounds read ("unstarted", namespace): Pending and Queued Tasks, and a rerun whose
    status still describes the run before; never one Running (or finished) for its current run."""
    def task(uid: str, rerun: int, status: dict[str, object]) -> dict[str, object]:
        return {"apiVersion": "kubetask.io/v1alpha1", "kind": "Task", "spec": {"type": "t", "rerun": rerun}, "status": status,
                "metadata": {"name": uid, "namespace": "ns", "uid": uid, "generation": 1, "creationTimestamp": "2026-12-03T00:00:00Z"}}

    async def unstarted(body: dict[str, object]) -> bool:
        meta = body["metadata"]
        assert isinstance(meta, dict)
        keys = await handlers.tasks(body=body, namespace="ns", uid=meta["uid"])  # type: ignore[arg-type]
        return ("unstarted", "ns") in keys

    assert await unstarted(task("new", 0, {}))
    assert await unstarted(task("queued", 0, {"phase": "Queued", "run": 0}))
    assert not await unstarted(task("running", 0, {"phase": "Running", "run": 0}))
    assert not await unstarted(task("done", 0, {"phase": "Succeeded", "run": 0}))
    assert await unstarted(task("rerun", 1, {"phase": "Succeeded", "run": 0}))  # its run 1 waits
    assert await unstarted(task("rerun-was-running", 1, {"phase": "Running", "run": 0}))
