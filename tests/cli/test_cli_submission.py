"""Submission bodies from flags and from Task manifests."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from kubetask.cli.submission import (
    Overrides, UsageError, load_manifests, load_parameters, parse_annotations, parse_duration, parse_labels, parse_params,
    parse_value,
)


@pytest.mark.parametrize(("text", "value"), [
    ("7", 7), ("1.5", 1.5), ("true", True), ("null", None), ('"007"', "007"), ("[1, 2]", [1, 2]), ('{"a": 1}', {"a": 1}),
    ("hello", "hello"), ("", ""), ("s3://bucket/key", "s3://bucket/key"), ("1e3", 1000.0), ("{broken", "{broken"),
])
def test_param_values_are_json_when_they_parse(text: str, value: Any) -> None:
    assert parse_value(text) == value


def test_params_labels_annotations() -> None:
    assert parse_params(["n=7", "name=a=b", "flag=false"]) == {"n": 7, "name": "a=b", "flag": False}
    assert parse_labels(["team=a,env=prod", "tier=web"]) == {"team": "a", "env": "prod", "tier": "web"}
    assert parse_annotations(["note=a, b, c", "empty="]) == {"note": "a, b, c", "empty": ""}
    for bad in (["novalue"], ["=x"]):
        with pytest.raises(UsageError, match="KEY=VALUE"):
            parse_params(bad)


@pytest.mark.parametrize(("text", "seconds"), [("600", 600), ("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1h30m", 5400),
                                               ("1m30s", 90), ("1500ms", 1)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten", "10x", "m10", "1h 30m", "-5"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError, match="not a duration"):
        parse_duration(text)


def test_parameters_file_json_yaml_stdin(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text('{"width": 640, "tags": ["a"]}')
    (tmp_path / "p.yaml").write_text("width: 640\ntags: [a]\n")
    assert load_parameters(str(tmp_path / "p.json")) == load_parameters(str(tmp_path / "p.yaml")) == {"width": 640, "tags": ["a"]}
    assert load_parameters("-", io.StringIO('{"n": 1}')) == {"n": 1}
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(UsageError, match="must hold an object"):
        load_parameters(str(tmp_path / "list.json"))
    with pytest.raises(UsageError, match="cannot read"):
        load_parameters(str(tmp_path / "missing.json"))


MANIFESTS = """\
apiVersion: kubetask.io/v1alpha1
kind: Task
metadata:
  name: resize-1
  namespace: team-a
  labels: {order: "1"}
  annotations: {note: rush}
  resourceVersion: "99"
spec:
  type: resize
  parameters: {width: 640}
status:
  phase: Succeeded
---
kind: List
items:
- kind: Task
  metadata: {generateName: resize-}
  spec: {type: resize}
---
spec: {type: echo}
labels: {a: b}
"""


def test_manifests_of_several_shapes(tmp_path: Path) -> None:
    path = tmp_path / "tasks.yaml"
    path.write_text(MANIFESTS)
    first, second, third = load_manifests(str(path))
    assert first.body == {"name": "resize-1", "labels": {"order": "1"}, "annotations": {"note": "rush"},
                          "spec": {"type": "resize", "parameters": {"width": 640}}}
    assert first.namespace == "team-a"
    assert second.body == {"spec": {"type": "resize"}} and second.namespace is None
    assert third.body == {"spec": {"type": "echo"}, "labels": {"a": "b"}}


@pytest.mark.parametrize(("text", "problem"), [
    ("kind: Job\nspec: {}\n", "only kind: Task"),
    ("apiVersion: kubetask.io/v2\nkind: Task\nspec: {type: a}\n", "apiVersion kubetask.io/v2"),
    ("- a\n", "must be a Task manifest"),
    ("spec: {type: a}\nmetdata: {}\n", "unknown fields"),
    ("", "holds no Task"),
    ("kind: Task\nspec: [\n", "not valid YAML"),
])
def test_bad_manifests(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=problem):
        load_manifests(str(path))


def test_flags_override_and_merge_into_a_manifest() -> None:
    body: dict[str, Any] = {"name": "from-file", "labels": {"a": "1"}, "spec": {"type": "resize", "parameters": {"width": 1, "keep": True},
                                                                "resources": {"cpu": "1"}, "queue": "slow"}}
    merged = Overrides(name="from-flag", params={"width": 640}, parameters_file={"height": 480, "width": 2}, spec={"queue": "fast", "priority": 5},
                       resources={"memory": "1Gi"}, labels={"b": "2"}, annotations={"n": "x"}).apply(body)
    assert merged == {"name": "from-flag", "labels": {"a": "1", "b": "2"}, "annotations": {"n": "x"},
                      "spec": {"type": "resize", "parameters": {"width": 640, "keep": True, "height": 480}, "resources": {"cpu": "1", "memory": "1Gi"},
                               "queue": "fast", "priority": 5}}
    assert body["spec"]["parameters"] == {"width": 1, "keep": True}  # the input is not changed


def test_flags_alone_need_a_type() -> None:
    assert Overrides(type="echo").apply({}) == {"spec": {"type": "echo"}}
    with pytest.raises(UsageError, match="--type"):
        Overrides(params={"n": 1}).apply({})
