"""Two fixes for Kopf, applied before the operator runs: its start-up with many indexed objects
(`apply`), and the decoding of its watch streams (`apply_watch_decoding`, at the end).

Kopf holds every object's handlers until every index is filled from the initial listing. It does
that with a `ToggleSet`: one toggle per object not yet indexed, all sharing one `asyncio.Condition`,
and `make_toggle` / `drop_toggle` call `notify_all()` on every change. Every waiting worker wakes
for every listed object, so a restart with n objects costs O(n²) wake-ups: with 10,000 finished
Tasks present, the restarted operator spent 10 minutes of CPU before it created a new Task's Job
(py-spy: 90 % in `Condition.notify_all` / `Condition.wait`).

The fix notifies only when adding or dropping a toggle changes the set's overall state; that is the
only thing a `ToggleSet.wait_for` waiter can observe. A member toggle's own `turn_to()` still
notifies the shared condition as before, so no wake-up a waiter needs is lost. `is_on()` stays
cheap: the toggles in the set are the objects still being indexed, so `all()` stops at the first.

`kopf._cogs` is private, so the patch is applied only to the code it was verified against: the
source of `Toggle` and `ToggleSet` must hash to `VERIFIED_SHA256` (Kopf `VERIFIED_KOPF`, the
version pyproject.toml pins). Anything else runs Kopf unpatched (correct, only slow at start-up)
with a warning, and tests/unit/test_kopf_fixes.py fails. The upstream report and when to drop
this module: docs/operator.md, "The Kopf start-up patch".
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterable

from types import SimpleNamespace
from typing import Any

from kopf._cogs.aiokits import aiotoggles
from kopf._cogs.clients import api

from kubetask.kube import decode_json

_Toggle, _ToggleSet = aiotoggles.Toggle, aiotoggles.ToggleSet
VERIFIED_KOPF = "1.45.2"
VERIFIED_SHA256 = "d6e5cbecbac307168c53aefc568911e37a1b59f6de406a026d1ddb0421daf5d0"


def fingerprint() -> str:
    """sha256 of Kopf's own `Toggle` and `ToggleSet` source (read from the file: unaffected by the patch)."""
    source = inspect.getsource(aiotoggles.Toggle) + inspect.getsource(aiotoggles.ToggleSet)
    return hashlib.sha256(source.encode()).hexdigest()


async def _changing(self: aiotoggles.ToggleSet, change: Callable[[set[aiotoggles.Toggle]], None]) -> None:
    """Apply `change` to the member set; wake the waiters only if the overall state changed."""
    async with self._condition:
        before = self.is_on()
        change(self._toggles)
        if self.is_on() != before:
            self._condition.notify_all()


async def _make_toggle(self: aiotoggles.ToggleSet, __val: bool = False, *, name: str | None = None) -> aiotoggles.Toggle:
    toggle = _Toggle(__val, name=name, condition=self._condition)
    await _changing(self, lambda toggles: toggles.add(toggle))
    return toggle


async def _drop_toggle(self: aiotoggles.ToggleSet, toggle: aiotoggles.Toggle) -> None:
    await _changing(self, lambda toggles: toggles.discard(toggle))


async def _drop_toggles(self: aiotoggles.ToggleSet, toggles: Iterable[aiotoggles.Toggle]) -> None:
    dropped = list(toggles)
    await _changing(self, lambda members: members.difference_update(dropped))


def apply() -> bool:
    """Patch `ToggleSet` if its code is the code this fix was verified against; else leave it."""
    if fingerprint() != VERIFIED_SHA256:
        return False
    _ToggleSet.make_toggle = _make_toggle  # type: ignore[method-assign]
    _ToggleSet.drop_toggle = _drop_toggle  # type: ignore[method-assign]
    _ToggleSet.drop_toggles = _drop_toggles  # type: ignore[method-assign]
    return True


# ---------------------------------------------------------------------------------------------
# Watch streams decoded by orjson
#
# Kopf decodes every line of every watch stream with the standard library's `json.loads` (in
# `kopf._cogs.clients.api.stream`, the module's only use of `json`). In a burst that was 5 % of
# the operator's CPU (py-spy, docs/benchmarks.md); `kubetask.kube.decode_json` (orjson, with the
# standard library for what orjson refuses) gives the same objects several times faster. Kopf
# has no setting for its decoder, so the module's `json` name is pointed at one whose `loads`
# is that. Verified like the fix above: only when `stream`'s source is the one it was read in.
# ---------------------------------------------------------------------------------------------

VERIFIED_STREAM_SHA256 = "5ef0c6f1a54acf3bae87705a5a0b6a68898c6dedd9458ec2b52a6f1b8a75a9ff"


def stream_fingerprint() -> str:
    """sha256 of Kopf's `kopf._cogs.clients.api.stream` source."""
    return hashlib.sha256(inspect.getsource(api.stream).encode()).hexdigest()


def _loads(text: str | bytes, **_: Any) -> Any:
    return decode_json(text)


def apply_watch_decoding() -> bool:
    """Decode Kopf's watch streams with orjson if `stream` is the code this was verified against."""
    if stream_fingerprint() != VERIFIED_STREAM_SHA256:
        return False
    setattr(api, "json", SimpleNamespace(loads=_loads))  # the module name `stream` reads; not a public attribute
    return True
