"""The wheel built from the repo installs into a fresh virtualenv, imports, and does not shadow
the standard library's `operator` module."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_wheel_installs_into_a_fresh_virtualenv(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(REPO)], check=True)
    [wheel] = list(wheels.glob("kubetask-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], check=True)
    probe = ("import operator, kubetask.operator.handlers, kubetask.api, kubetask.resources.models, kubetask_sdk;"
             "print(operator.__file__)")
    done = subprocess.run([str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert "site-packages" not in done.stdout and done.stdout.strip().endswith("operator.py")
    for script in ("kubetask-operator", "kubetask-gateway", "kubetask-crdgen"):
        assert (env_dir / "bin" / script).exists()
    crds = subprocess.run([str(env_dir / "bin" / "kubetask-crdgen")], capture_output=True, text=True, check=True)
    assert "kind: CustomResourceDefinition" in crds.stdout


def test_repo_root_does_not_shadow_the_stdlib_operator() -> None:
    done = subprocess.run([sys.executable, "-c", "import operator; print(operator.__file__)"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    assert not done.stdout.strip().startswith(str(REPO))
