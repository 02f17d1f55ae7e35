"""`kubetask-operator`'s start: what it hands Kopf."""

from __future__ import annotations

import getpass
from typing import Any

import kopf
import pytest

from kubetask.operator import main


def test_kopf_starts_for_a_uid_without_a_passwd_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The image runs as uid 65532, which is in no /etc/passwd: Kopf's own identity (getpass) fails
    there, so the operator names itself (found when the chart first ran the image on a real node)."""
    def no_passwd_entry() -> str:
        raise KeyError("getpwuid(): uid not found: 65532")

    seen: dict[str, Any] = {}

    async def operator(**kwargs: Any) -> None:
        seen.update(kwargs)

    monkeypatch.setattr(getpass, "getuser", no_passwd_entry)
    monkeypatch.setattr(kopf, "operator", operator)
    monkeypatch.setattr(main, "start_http_server", lambda *args, **kwargs: None)
    monkeypatch.setattr(main, "tune_gc", lambda: None)  # process-wide: tested below, and undone there
    monkeypatch.setenv("KUBETASK_LEADER_ELECTION", "false")
    assert main.main([]) == 0
    assert seen["identity"] and seen["standalone"] is True


def test_the_collector_leaves_start_up_objects_alone_and_runs_less_often() -> None:
    import gc

    before = gc.get_threshold()
    try:
        main.tune_gc()
        assert gc.get_threshold() == main.GC_THRESHOLDS
        assert gc.get_threshold()[0] > before[0]
        assert gc.get_freeze_count() > 0  # start-up's objects: in no later collection
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
