"""Resource models, quantities, validation against a TaskType, and the CRD drift check."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kubetask.operator.resolve import resolve
from kubetask.resources import crdgen
from kubetask.resources.models import MAX_PARAMETERS_BYTES, QUANTITY_CEL, TaskSpec, TaskTypeSpec
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


# The gateway must refuse what the API server's QUANTITY_CEL refuses (tests/integration/test_crd_contract.py
# proves the API server side with the same values): negative and zero quantities, in requests and limits.
NOT_POSITIVE = ["-1Gi", "-500m", "0", "0Mi", "0.0", "-0"]
POSITIVE = ["100m", "1", "0.5", "1e3", "+2", "1.5Gi", "128974848", "1e9"]


def test_the_crd_rule_is_a_positive_quantity() -> None:
    (rule,) = QUANTITY_CEL["x-kubernetes-validations"]
    assert rule["rule"] == "isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))"


@pytest.mark.parametrize("text", NOT_POSITIVE)
def test_not_positive_quantities_are_refused_in_task_resources(text: str) -> None:
    for field in ("cpu", "memory"):
        with pytest.raises(ValidationError) as error:
            TaskSpec.model_validate({"type": "echo", "resources": {field: text}})
        assert {".".join(str(p) for p in e["loc"]) for e in error.value.errors()} == {f"resources.{field}"}


@pytest.mark.parametrize("text", NOT_POSITIVE)
def test_not_positive_quantities_are_refused_in_tasktype_limits_and_defaults(text: str) -> None:
    for spec, where in (({"limits": {"memory": text}}, "limits.memory"), ({"defaults": {"resources": {"cpu": text}}}, "defaults.resources.cpu")):
        with pytest.raises(ValidationError) as error:
            TaskTypeSpec.model_validate({"image": "i", **spec})
        assert {".".join(str(p) for p in e["loc"]) for e in error.value.errors()} == {where}


@pytest.mark.parametrize("text", POSITIVE)
def test_positive_quantities_are_accepted_everywhere(text: str) -> None:
    TaskSpec.model_validate({"type": "echo", "resources": {"cpu": text, "memory": text}})
    TaskTypeSpec.model_validate({"image": "i", "limits": {"cpu": text, "memory": text}, "defaults": {"resources": {"cpu": text, "memory": text}}})


def test_parameters_the_api_server_lets_through_are_refused_by_the_gateway() -> None:
    """The API server bounds the key count and the top level's strings (docs/resources.md, "Where
    parameters are bounded"); 90 KB below the top level passes it (test_crd_contract.py), and
    neither may pass the models."""
    for parameters in ({"blob": "x" * 90_000}, {"files": {"blob": "x" * 90_000}}):
        with pytest.raises(ValidationError, match="bytes serialized"):
            TaskSpec.model_validate({"type": "echo", "parameters": parameters})


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


def test_a_parameters_schema_is_checked_once_and_every_task_against_it() -> None:
    """The metaschema check is kept per schema text (it was the costly part); each Task's
    parameters are still checked, and a broken schema still says so, every time."""
    from kubetask.resources import validation

    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    validation._compiled.cache_clear()
    assert validation.check_parameters({"n": 1}, schema) == []
    assert [p.field for p in validation.check_parameters({"n": "x"}, dict(schema))] == ["spec.parameters.n"]
    assert [p.reason for p in validation.check_parameters({}, schema)] == ["InvalidParameters"]
    assert validation._compiled.cache_info().misses == 1  # the same schema (an equal copy too): checked once
    schema["properties"]["n"]["type"] = "string"  # a TaskType changed: a new schema text, checked anew
    assert validation.check_parameters({"n": "x"}, schema) == []
    broken = {"type": 3}
    for _ in range(2):
        assert [p.reason for p in validation.check_parameters({}, broken)] == ["InvalidTaskType"]
    assert validation._compiled.cache_info().misses == 3
