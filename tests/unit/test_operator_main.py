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
    monkeypatch.setenv("KUBETASK_LEADER_ELECTION", "false")
    assert main.main([]) == 0
    assert seen["identity"] and seen["standalone"] is True
