"""The chart's retention values reach the operator as KUBETASK_RETENTION_* and the schema bounds them."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from chart_helpers import CHART, one
from chart_helpers import chart_bin, helm, render  # noqa: F401  (fixtures)
from kubetask.operator.config import OperatorSettings

Render = Callable[..., list[dict[str, Any]]]
Helm = Callable[..., subprocess.CompletedProcess[str]]


def retention_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    [container] = one(docs, "Deployment", "kubetask-operator")["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if e["name"].startswith("KUBETASK_RETENTION_")}


def test_defaults_are_the_operators(render: Render) -> None:
    env = retention_env(render())
    assert env == {"KUBETASK_RETENTION_SECONDS": "604800", "KUBETASK_RETENTION_CHECK_SECONDS": "30",
                   "KUBETASK_RETENTION_DELETES_PER_SECOND": "10"}
    defaults = OperatorSettings.model_fields
    assert (defaults["retention_seconds"].default, defaults["retention_check_seconds"].default,
            defaults["retention_deletes_per_second"].default) == (604800, 30.0, 10.0)


def test_values_are_passed(render: Render) -> None:
    env = retention_env(render(sets={"retention": {"seconds": -1, "checkSeconds": 0.5, "deletesPerSecond": 2.5}}))
    assert env == {"KUBETASK_RETENTION_SECONDS": "-1", "KUBETASK_RETENTION_CHECK_SECONDS": "0.5",
                   "KUBETASK_RETENTION_DELETES_PER_SECOND": "2.5"}
    assert retention_env(render(sets={"retention.seconds": 31536000}))["KUBETASK_RETENTION_SECONDS"] == "31536000"  # not 3.1536e+07


@pytest.mark.parametrize(("setting", "message"), [
    ("retention.deletesPerSecond=0", "exclusiveMinimum"),
    ("retention.checkSeconds=0", "exclusiveMinimum"),
    ("retention.seconds=-5", "minimum"),
    ("retention.second=5", "additional properties 'second' not allowed"),
])
def test_schema_bounds(helm: Helm, setting: str, message: str) -> None:
    done = helm("template", "kubetask", str(CHART), "--set", setting, check=False)
    assert done.returncode != 0 and message in done.stderr, done.stderr
