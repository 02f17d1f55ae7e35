"""The example TaskTypes, Tasks, Dockerfiles and the handler RBAC: shape checks that need no cluster
and no container engine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from sdk_harness import EXAMPLES, HANDLERS

NAMES = ["cpu-burn", "echo", "flaky", "gpu-matmul", "progress"]
# The public base is pinned by digest, in FROM itself or in the ARG default that FROM uses (so a
# local build can pass another base: hack/build-realnode.sh).
DIGEST_PIN = re.compile(r"^(FROM |ARG \w+=)[^\s@]+:[^\s@]+@sha256:[0-9a-f]{64}(\s|$)", re.MULTILINE)


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def models() -> Any:
    try:
        from kubetask.resources import models as m
    except Exception as e:  # noqa: BLE001 - the operator package is another team's folder
        pytest.skip(f"kubetask.resources.models is not importable: {e}")
    return m


def test_the_examples_are_all_there() -> None:
    assert sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))) == NAMES
    for name in NAMES:
        for file in ("handler.py", "Dockerfile", "tasktype.yaml", "example-task.yaml"):
            assert (EXAMPLES / name / file).is_file(), f"{name}/{file}"


@pytest.mark.parametrize("name", NAMES)
def test_tasktype_manifest(name: str) -> None:
    tt = load(EXAMPLES / name / "tasktype.yaml")
    assert tt["apiVersion"] == "kubetask.io/v1alpha1"
    assert tt["kind"] == "TaskType"
    assert tt["metadata"]["name"] == name
    spec = tt["spec"]
    assert spec["image"] == f"ghcr.io/kubetask/handler-{name}:0.1.0"
    assert 65 in spec["defaults"]["nonRetryableExitCodes"]
    for key in ("queue", "resources", "timeoutSeconds", "retries", "ttlSecondsAfterFinished"):
        assert key in spec["defaults"], key
    assert spec["defaults"]["timeoutSeconds"] <= spec["limits"]["timeoutSeconds"]
    assert spec["defaults"]["retries"] <= spec["limits"]["retries"]

    schema = spec["parametersSchema"]
    Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"], "every example requires something"
    for prop, sub in schema["properties"].items():
        assert "type" in sub, prop
        if sub["type"] in ("integer", "number"):
            assert "maximum" in sub and ("minimum" in sub or "exclusiveMinimum" in sub), prop
        if sub["type"] == "string" and "enum" not in sub:
            assert "maxLength" in sub, prop

    m = models()
    m.TaskType.model_validate(tt)  # the operator's own model accepts it


@pytest.mark.parametrize("name", NAMES)
def test_example_task_satisfies_the_schema(name: str) -> None:
    tt = load(EXAMPLES / name / "tasktype.yaml")
    task = load(EXAMPLES / name / "example-task.yaml")
    assert task["apiVersion"] == "kubetask.io/v1alpha1"
    assert task["kind"] == "Task"
    assert task["spec"]["type"] == name
    validator = Draft202012Validator(tt["spec"]["parametersSchema"])
    params = task["spec"]["parameters"]
    assert list(validator.iter_errors(params)) == []
    # ...and the schema really constrains: an unknown key and a missing required key are refused.
    assert list(validator.iter_errors({**params, "unexpected": 1}))
    required = tt["spec"]["parametersSchema"]["required"][0]
    assert list(validator.iter_errors({k: v for k, v in params.items() if k != required}))
    models().Task.model_validate(task)


def test_schemas_reject_out_of_bounds_values() -> None:
    def errors(name: str, params: dict[str, Any]) -> list[Any]:
        schema = load(EXAMPLES / name / "tasktype.yaml")["spec"]["parametersSchema"]
        return list(Draft202012Validator(schema).iter_errors(params))

    assert errors("progress", {"steps": 0})
    assert errors("progress", {"steps": 5, "sleepSeconds": 61})
    assert errors("flaky", {"mode": "sometimes"})
    assert errors("cpu-burn", {"algorithm": "sha256", "seconds": 1, "iterations": 1})  # not both
    assert not errors("cpu-burn", {"algorithm": "sha256"})
    assert errors("gpu-matmul", {"n": 8, "iterations": 1})
    assert errors("echo", {"message": ""})


def test_progress_and_gpu_specifics() -> None:
    progress = load(EXAMPLES / "progress" / "tasktype.yaml")["spec"]
    assert progress["serviceAccountName"] == "kubetask-handler"
    assert progress["reportProgress"] is True
    gpu = load(EXAMPLES / "gpu-matmul" / "tasktype.yaml")["spec"]
    assert gpu["defaults"]["resources"]["gpu"] == 1
    assert gpu["gpuResourceName"] == "nvidia.com/gpu"
    for name in ("echo", "flaky", "cpu-burn", "gpu-matmul"):  # the others get no API token at all
        spec = load(EXAMPLES / name / "tasktype.yaml")["spec"]
        assert not spec.get("reportProgress") and "serviceAccountName" not in spec, name


def test_handler_rbac_is_least_privilege() -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all((HANDLERS / "rbac" / "handler-rbac.yaml").read_text())}
    assert set(docs) == {"ServiceAccount", "Role", "RoleBinding"}  # namespaced: no ClusterRole
    assert all(d["metadata"]["name"] == "kubetask-handler" for d in docs.values())
    assert docs["Role"]["rules"] == [{"apiGroups": ["kubetask.io"], "resources": ["tasks/status"], "verbs": ["get", "patch"]}]
    binding = docs["RoleBinding"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kubetask-handler"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kubetask-handler"}]


# --- Dockerfiles (they cannot be built here, so check what a build depends on) -----------------

DOCKERFILES = sorted(HANDLERS.rglob("Dockerfile"))


def instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_dockerfiles_found() -> None:
    assert {p.relative_to(HANDLERS).as_posix() for p in DOCKERFILES} == {
        "base/Dockerfile", *(f"examples/{n}/Dockerfile" for n in NAMES)}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_rules(path: Path) -> None:
    steps = instructions(path)
    kinds = [k for k, _ in steps]
    assert "ADD" not in kinds
    for kind, arg in steps:
        if kind == "COPY":  # the build context is handlers-images/
            source = arg.split()[-2]
            assert (HANDLERS / source).exists(), f"COPY source {source} missing from the build context"
        if kind == "WORKDIR":
            assert arg.startswith("/")
    if path.parent.name in ("base", "gpu-matmul"):  # they start from public images: pinned by digest
        assert DIGEST_PIN.search(path.read_text()), "FROM must pin a digest"
        assert ("USER", "65532:65532") in steps
        env = " ".join(arg for kind, arg in steps if kind == "ENV")
        for var in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "HOME=/tmp"):
            assert var in env
    else:  # the examples add their handler to the base image
        assert ("FROM", "${BASE_IMAGE}") in steps
        assert f"examples/{path.parent.name}/handler.py /opt/kubetask/handler/handler.py" in dict(steps)["COPY"]
        assert "USER" not in kinds  # inherited from the base: 65532


def _hadolint() -> str | None:
    cached = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kubetask" / "hadolint-2.15.1" / "bin" / "hadolint"
    return shutil.which("hadolint") or (str(cached) if cached.exists() else None)


@pytest.mark.skipif(_hadolint() is None, reason="hadolint not installed (handlers-images/lint.sh installs it)")
def test_hadolint_is_clean() -> None:
    hadolint = _hadolint()
    assert hadolint is not None
    out = subprocess.run([hadolint, "--config", str(HANDLERS / ".hadolint.yaml"), *map(str, DOCKERFILES)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
