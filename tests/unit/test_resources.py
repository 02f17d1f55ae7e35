"""Resource models, quantities, validation against a TaskType, and the CRD drift check."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kubetask.operator.resolve import resolve
from kubetask.resources import crdgen
from kubetask.resources.models import MAX_PARAMETERS_BYTES, TaskSpec
from kubetask.resources.quantity import parse_quantity

REPO = Path(__file__).resolve().parents[2]


def test_generated_crds_match_the_models() -> None:
    assert crdgen.main(["--check", str(REPO / "crds")]) == 0, "crds/ drifted from models.py: run `make generate`"


@pytest.mark.parametrize("text,value", [("500m", "0.5"), ("2", "2"), ("1Ki", "1024"), ("1.5Gi", str(1.5 * 2**30)), ("1e3", "1000"), ("4M", "4000000")])
def test_quantities(text: str, value: str) -> None:
    assert parse_quantity(text) == parse_quantity(value) or float(parse_quantity(text)) == float(value)


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "5 Gi", "-1", "1Xi", "Mi"])
def test_bad_quantities_are_named(text: str) -> None:
    with pytest.raises(ValueError, match="quantity|negative"):
        parse_quantity(text)


def test_task_spec_rejects_unknown_fields_and_bad_values_with_paths() -> None:
    with pytest.raises(ValidationError) as error:
        TaskSpec.model_validate({"type": "echo", "retriez": 3, "resources": {"cpu": "lots"}, "timeoutSeconds": -1})
    locations = {".".join(str(p) for p in e["loc"]) for e in error.value.errors()}
    assert {"retriez", "resources.cpu", "timeoutSeconds"} <= locations


def test_oversized_parameters_are_rejected() -> None:
    with pytest.raises(ValidationError, match="bytes serialized"):
        TaskSpec.model_validate({"type": "echo", "parameters": {"blob": "x" * MAX_PARAMETERS_BYTES}})


def test_resolve_checks_schema_and_limits() -> None:
    tasktype = {"image": "i", "parametersSchema": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}},
                "limits": {"cpu": "1", "memory": "1Gi", "gpu": 1, "timeoutSeconds": 60, "retries": 2}}
    effective, problems = resolve({"type": "t", "parameters": {"n": "x"}, "resources": {"cpu": "1500m", "gpu": 2},
                                   "timeoutSeconds": 61, "retries": 3}, tasktype, "default")
    assert effective is None
    fields = {p.field for p in problems}
    assert fields == {"spec.parameters.n", "spec.resources.cpu", "spec.resources.gpu", "spec.timeoutSeconds", "spec.retries"}
    ok, none = resolve({"type": "t", "parameters": {"n": 1}, "resources": {"cpu": "1"}}, tasktype, "default")
    assert ok is not None and none == [] and ok.queue == "default"
