"""Building submission bodies (the gateway's `POST /tasks` shape) from flags and Task manifests."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
API_VERSION = "kubetask.io/v1alpha1"


class UsageError(Exception):
    """The command line or an input file is wrong (exit code 2)."""


def parse_value(text: str) -> Any:
    """A --param value: JSON when it parses (7, 1.5, true, null, "x", [1], {"a": 1}), else the plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def key_value(item: str, what: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"{what} must be KEY=VALUE (got {item!r})")
    return key.strip(), value


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, value = key_value(item, "--param")
        params[key] = parse_value(value)
    return params


def parse_labels(items: Sequence[str]) -> dict[str, str]:
    """--label a=b (repeatable; `a=b,c=d` also works, as label values never contain commas)."""
    labels: dict[str, str] = {}
    for item in items:
        for part in item.split(","):
            if part.strip():
                key, value = key_value(part.strip(), "--label")
                labels[key] = value
    return labels


def parse_annotations(items: Sequence[str]) -> dict[str, str]:
    annotations: dict[str, str] = {}
    for item in items:
        key, value = key_value(item, "--annotation")
        annotations[key] = value
    return annotations


def parse_duration(text: str) -> int:
    """Seconds from `600`, `90s`, `10m`, `2h`, `1d` or `1h30m`."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        number, unit = int(match.group(1)), match.group(2)
        total += number / 1000 if unit == "ms" else number * _UNITS[unit]
        pos = match.end()
    if pos != len(text) or not text:
        raise UsageError(f"{text!r} is not a duration (use seconds, or e.g. 90s, 10m, 2h, 1h30m, 1d)")
    return int(total)


def read_input(path: str, stdin: TextIO | None = None) -> str:
    if path == "-":
        return (stdin or sys.stdin).read()
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from error


def load_parameters(path: str, stdin: TextIO | None = None) -> dict[str, Any]:
    text = read_input(path, stdin)
    try:
        data = yaml.safe_load(text)  # JSON is YAML
    except yaml.YAMLError as error:
        raise UsageError(f"{path} is neither JSON nor YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{path} must hold an object of parameters (got {type(data).__name__})")
    return data


def load_items(path: str, stdin: TextIO | None = None) -> list[dict[str, Any]]:
    """--items FILE: a JSON or YAML list of objects, one per item of a fan-out Task (spec.items)."""
    text = read_input(path, stdin)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise UsageError(f"{path} is neither JSON nor YAML: {error}") from error
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise UsageError(f"{path} must hold a list of objects, one per item (got {type(data).__name__})")
    return data


@dataclass
class Manifest:
    """One submission read from a file, with the namespace its metadata named (if any)."""

    body: dict[str, Any]
    namespace: str | None = None
    source: str = ""


def _documents(text: str, path: str) -> list[Any]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        raise UsageError(f"{path} is not valid YAML: {error}") from error
    expanded: list[Any] = []
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            expanded.extend(doc["items"])
        else:
            expanded.append(doc)
    return expanded


def load_manifests(path: str, stdin: TextIO | None = None) -> list[Manifest]:
    """Task manifests (kind: Task, apiVersion kubetask.io/v1alpha1; several documents or a List), or bare
    submissions ({spec, name, labels, annotations}). Status and other metadata are ignored (without a
    name, the gateway names the Task `<type>-<random>`)."""
    manifests = []
    for index, doc in enumerate(_documents(read_input(path, stdin), path)):
        where = f"{path} (document {index + 1})"
        if not isinstance(doc, dict):
            raise UsageError(f"{where} must be a Task manifest (a mapping)")
        kind = doc.get("kind")
        if kind is None and "metadata" not in doc:
            unknown = set(doc) - {"name", "labels", "annotations", "spec"}
            if unknown:
                raise UsageError(f"{where} has unknown fields {sorted(unknown)} (expected a Task manifest or {{spec, name, labels, annotations}})")
            body = {k: v for k, v in doc.items() if v is not None}
            manifests.append(Manifest(body, None, where))
            continue
        if kind != "Task":
            raise UsageError(f"{where} is a {kind or 'manifest without kind'}; only kind: Task can be submitted")
        version = doc.get("apiVersion")
        if version and version != API_VERSION:
            raise UsageError(f"{where} has apiVersion {version}; the gateway takes {API_VERSION}")
        meta = doc.get("metadata") or {}
        if not isinstance(meta, dict):
            raise UsageError(f"{where}: metadata must be a mapping")
        body = {"spec": doc.get("spec") or {}}
        for key in ("name", "labels", "annotations"):
            if meta.get(key):
                body[key] = meta[key]
        namespace = meta.get("namespace")
        manifests.append(Manifest(body, str(namespace) if namespace else None, where))
    if not manifests:
        raise UsageError(f"{path} holds no Task")
    return manifests


@dataclass
class Overrides:
    """What the submit flags set; applied on top of each manifest (or alone without -f)."""

    type: str | None = None
    name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    parameters_file: dict[str, Any] | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(json.dumps(body))  # a deep copy
        spec = out.setdefault("spec", {})
        if not isinstance(spec, dict):
            raise UsageError("spec must be a mapping")
        if self.type:
            spec["type"] = self.type
        if self.parameters_file is not None or self.params:
            params: dict[str, Any] = _mapping(spec.get("parameters"))
            if self.parameters_file is not None:
                params.update(self.parameters_file)
            params.update(self.params)
            spec["parameters"] = params
        spec.update(self.spec)
        if self.resources:
            spec["resources"] = {**_mapping(spec.get("resources")), **self.resources}
        if self.name:
            out["name"] = self.name
        if self.labels:
            out["labels"] = {**_mapping(out.get("labels")), **self.labels}
        if self.annotations:
            out["annotations"] = {**_mapping(out.get("annotations")), **self.annotations}
        if not spec.get("type"):
            raise UsageError("the Task's type is missing: pass --type TYPE (or -f with a manifest whose spec.type is set)")
        return out


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}
