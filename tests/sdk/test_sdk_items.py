"""A fan-out pod's item (spec.items) reaching the handler: real handler processes, as the operator's
Indexed Job sets them up (KUBETASK_ITEMS_FILE from the items ConfigMap, JOB_COMPLETION_INDEX from
the Job controller)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdk_harness import EXAMPLES, Handlers

PROBE = """
    from kubetask_sdk import task, run

    @task("probe")
    def probe(params, ctx):
        return {"params": params, "item": ctx.item, "index": ctx.index}

    if __name__ == "__main__":
        run()
"""
ITEMS = [{"file": "a.csv"}, {"file": "b.csv", "rows": 5}, {"file": "c.csv", "mode": "strict"}]


@pytest.fixture
def probe(handlers: Handlers) -> Path:
    return handlers.script(PROBE)


def items_file(handlers: Handlers, items: object) -> str:
    path = handlers.tmp / "items.json"
    path.write_text(json.dumps(items))
    return str(path)


def test_each_pod_gets_its_own_item_merged_over_the_parameters(handlers: Handlers, probe: Path) -> None:
    path = items_file(handlers, ITEMS)
    for index, item in enumerate(ITEMS):
        out = handlers.run(probe, {"bucket": "s3://in", "mode": "lenient"}, KUBETASK_ITEMS_FILE=path, JOB_COMPLETION_INDEX=str(index))
        assert out.returncode == 0, out.stderr
        # The item's keys win over the shared parameters (index 2 sets its own mode).
        assert out.result == {"params": {"bucket": "s3://in", "mode": "lenient", **item}, "item": item, "index": index}
        assert f"item {index})" in out.stderr  # the log line says which item this pod runs


def test_a_task_without_items_has_no_item(handlers: Handlers, probe: Path) -> None:
    out = handlers.run(probe, {"a": 1}, JOB_COMPLETION_INDEX="4")  # an Indexed Job of someone else's: no items file
    assert out.returncode == 0, out.stderr
    assert out.result == {"params": {"a": 1}, "item": None, "index": None}


@pytest.mark.parametrize(("items", "index", "fragment"), [
    (ITEMS, "3", "JOB_COMPLETION_INDEX 3 is outside the 3 items"),
    (ITEMS, "", "JOB_COMPLETION_INDEX is '', not an index"),
    ({"file": "a"}, "0", "must be a JSON list, not dict"),
    (["a.csv"], "0", "item 0 in"),
])
def test_an_item_the_pod_cannot_find_is_not_retryable(handlers: Handlers, probe: Path, items: object, index: str,
                                                     fragment: str) -> None:
    out = handlers.run(probe, KUBETASK_ITEMS_FILE=items_file(handlers, items), JOB_COMPLETION_INDEX=index)
    assert out.returncode == 65
    assert fragment in out.result["error"] and out.result["type"] == "InvalidParametersError"


def test_a_missing_items_file_is_not_retryable(handlers: Handlers, probe: Path) -> None:
    out = handlers.run(probe, KUBETASK_ITEMS_FILE=str(handlers.tmp / "absent.json"), JOB_COMPLETION_INDEX="0")
    assert out.returncode == 65
    assert "cannot read the items file" in out.result["error"]


def test_the_echo_example_says_which_item_it_echoed(handlers: Handlers) -> None:
    out = handlers.run(EXAMPLES / "echo" / "handler.py", {"message": "hi"},
                       KUBETASK_ITEMS_FILE=items_file(handlers, [{"message": "one"}, {"message": "two"}]), JOB_COMPLETION_INDEX="1")
    assert out.returncode == 0, out.stderr
    assert out.result["echo"] == {"message": "two"} and out.result["index"] == 1
