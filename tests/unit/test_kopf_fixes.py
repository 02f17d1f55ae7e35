"""The ToggleSet fix: the same waits end, with wake-ups only when the set's state changes."""

from __future__ import annotations

import asyncio

from kopf._cogs.aiokits import aiotoggles

from kubetask.operator import kopf_fixes


class CountingCondition(asyncio.Condition):
    def __init__(self) -> None:
        super().__init__()
        self.notifications = 0

    def notify_all(self) -> None:
        self.notifications += 1
        super().notify_all()


def counting_set() -> tuple[aiotoggles.ToggleSet, CountingCondition]:
    toggles = aiotoggles.ToggleSet(all)
    condition = CountingCondition()
    toggles._condition = condition  # noqa: SLF001
    return toggles, condition


async def test_indexing_many_objects_wakes_waiters_once_not_per_object() -> None:
    assert kopf_fixes.apply()
    toggles, condition = counting_set()
    listing = await toggles.make_toggle(False, name="listing")  # a resource kind's initial list
    condition.notifications = 0  # that turned the empty ("on") set off; count from here
    waiters = [asyncio.create_task(toggles.wait_for(True)) for _ in range(200)]
    objects = [await toggles.make_toggle(False, name=f"object-{i}") for i in range(1000)]
    for toggle in objects:
        await toggles.drop_toggle(toggle)  # each object indexed
    await asyncio.sleep(0)
    assert not any(waiter.done() for waiter in waiters)  # the listing is not finished yet
    assert condition.notifications == 0  # stayed "off" throughout: Kopf's own code notifies 2,000 times
    await listing.turn_to(True)  # a member's own change still notifies
    await asyncio.wait_for(asyncio.gather(*waiters), timeout=5)
    assert toggles.is_on()


async def test_adding_and_dropping_still_wakes_on_a_state_change() -> None:
    assert kopf_fixes.apply()
    toggles, condition = counting_set()
    off_waiter = asyncio.create_task(toggles.wait_for(False))
    blocker = await toggles.make_toggle(False)  # on (empty) → off
    await asyncio.wait_for(off_waiter, timeout=5)
    on_waiter = asyncio.create_task(toggles.wait_for(True))
    await asyncio.sleep(0)
    await toggles.drop_toggles([blocker])  # off → on
    await asyncio.wait_for(on_waiter, timeout=5)
    assert condition.notifications == 2


def test_the_patched_kopf_code_is_the_code_the_fix_was_verified_against() -> None:
    """Fails loudly on a Kopf upgrade. Then: re-read Kopf's aiotoggles.py; if upstream fixed the
    wake-ups (docs/operator.md, "The Kopf start-up patch"), delete kopf_fixes; otherwise re-verify
    the patch (these tests, and the restart benchmark), then update VERIFIED_KOPF, VERIFIED_SHA256
    and the pin in pyproject.toml together."""
    from importlib.metadata import version

    installed = version("kopf")
    assert installed == kopf_fixes.VERIFIED_KOPF, (
        f"Kopf {installed} is installed, but kopf_fixes was verified on Kopf {kopf_fixes.VERIFIED_KOPF} only; "
        "see this test's docstring")
    assert kopf_fixes.fingerprint() == kopf_fixes.VERIFIED_SHA256, (
        "Kopf's Toggle/ToggleSet source is not the code kopf_fixes was verified against, so the operator runs "
        "Kopf unpatched; see this test's docstring")
    assert kopf_fixes.apply()


def test_kopf_watch_lines_decode_to_what_the_standard_library_gives() -> None:
    """After the patch, the name Kopf's `stream` decodes each line with gives the standard
    library's objects for what the API server sends: unicode, floats, nulls, nesting, an integer
    past 2**53 exactly, and a number the server itself turned into a float."""
    import json

    from kopf._cogs.clients import api

    lines = [
        b'{"type":"ADDED","object":{"kind":"Task","metadata":{"name":"t\\u00e9","resourceVersion":"12"},"spec":{"parameters":{"x":1.5,"n":null,"l":[true,false,{"a":"b"}]}}}}',
        b'{"type":"MODIFIED","object":{"spec":{"parameters":{"big":1.2345678901234568e+29,"small":9007199254740993}}}}',
        '{"type":"BOOKMARK","object":{"metadata":{"annotations":{"k8s.io/initial-events-end":"true"}}}}'.encode(),
    ]
    assert kopf_fixes.stream_fingerprint() == kopf_fixes.VERIFIED_STREAM_SHA256, "see the test above: re-verify on a Kopf upgrade"
    assert kopf_fixes.apply_watch_decoding()
    assert api.json.loads is kopf_fixes._loads  # noqa: SLF001
    for line in lines:
        assert api.json.loads(line.decode("utf-8")) == json.loads(line)
    assert api.json.loads(lines[1].decode())["object"]["spec"]["parameters"]["small"] == 9007199254740993
    assert api.json.loads(lines[0].decode())["object"]["metadata"]["name"] == "t\u00e9"


def test_what_orjson_refuses_reads_as_the_standard_library_reads_it() -> None:
    import json

    import pytest

    from kubetask.kube import decode_json

    assert decode_json('{"a": NaN}')["a"] != decode_json('{"a": NaN}')["a"]  # NaN, as json.loads reads it
    with pytest.raises(json.JSONDecodeError):
        decode_json("{not json")
