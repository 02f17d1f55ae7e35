"""Helpers and fixtures for the Helm chart tests: helm and kubeconform (built once by
hack/chart-tools.sh, cached in ~/.cache/kubetask/tools), rendering, the kubeconform schemas.

There is deliberately no conftest.py in tests/chart: other test folders import helpers with
`from conftest import ...`, which resolves to whichever conftest pytest imported last. Test
modules here import the fixtures they use from this module instead."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CHART = REPO / "charts" / "kubetask"
TOOLS = REPO / "hack" / "chart-tools.sh"
VALUE_SETS = sorted((HERE / "values").glob("*.yaml"))
Docs = list[dict[str, Any]]
Helm = Callable[..., "subprocess.CompletedProcess[str]"]


def chart_tools(*args: str, env: dict[str, str] | None = None) -> str:
    """Run hack/chart-tools.sh; its progress goes to the test's stderr, stdout is returned."""
    done = subprocess.run(["bash", str(TOOLS), *args], stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        pytest.fail(f"hack/chart-tools.sh {' '.join(args)} failed (exit {done.returncode}); see stderr above")
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def render_text(helm: Helm, values: Sequence[Path] = (), sets: dict[str, Any] | None = None,
                api_versions: Sequence[str] = (), namespace: str = "kubetask", release: str = "kubetask", check: bool = True) -> str:
    args = ["template", release, str(CHART), "-n", namespace]
    for v in values:
        args += ["-f", str(v)]
    for key, value in (sets or {}).items():
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    for api in api_versions:
        args += ["--api-versions", api]
    return str(helm(*args, check=check).stdout)


def find(docs: Docs, kind: str, name: str | None = None, namespace: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind
            and (name is None or d["metadata"]["name"] == name)
            and (namespace is None or d["metadata"].get("namespace") == namespace)]


def one(docs: Docs, kind: str, name: str | None = None, namespace: str | None = None) -> dict[str, Any]:
    found = find(docs, kind, name, namespace)
    assert len(found) == 1, f"expected one {kind} {name or ''} in {namespace or 'any namespace'}, found {len(found)}"
    return found[0]


# -- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def chart_bin() -> Path:
    """helm and kubeconform, built from the Go module proxy on first use (progress on stderr)."""
    return Path(chart_tools("ensure"))


@pytest.fixture(scope="session")
def helm(chart_bin: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run helm with its own cache/config dirs (never ~/.config/helm) and no ambient KUBECONFIG."""
    home = Path.home() / ".cache" / "kubetask" / "helm"

    def run(*args: str, kubeconfig: Path | None = None, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
               "HELM_DATA_HOME": str(home / "data")}
        env.pop("KUBECONFIG", None)
        command = [str(chart_bin / "helm"), *args]
        if kubeconfig is not None:
            command += ["--kubeconfig", str(kubeconfig)]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed (exit {done.returncode}):\n{done.stderr}")
        return done
    return run


@pytest.fixture(scope="session")
def render(helm: Callable[..., subprocess.CompletedProcess[str]]) -> Callable[..., Docs]:
    """helm template -> the list of objects. values: files; sets: --set-json pairs; api_versions:
    what the (pretend) cluster serves, e.g. the kubetask CRDs."""
    def run(values: Sequence[Path] = (), sets: dict[str, Any] | None = None, api_versions: Sequence[str] = (),
            namespace: str = "kubetask", release: str = "kubetask") -> Docs:
        return [d for d in yaml.safe_load_all(render_text(helm, values, sets, api_versions, namespace, release)) if d]
    return run


@pytest.fixture(scope="session")
def schema_dir() -> Path:
    """Strict kubeconform schemas for the control plane's Kubernetes version (hack/chart-tools.sh schemas)."""
    return Path(chart_tools("schemas"))
