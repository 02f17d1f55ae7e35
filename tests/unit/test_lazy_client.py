"""kubetask.lazy_client: kubernetes_asyncio's packages without their eager `__init__` imports.

Each check runs in a fresh interpreter: the test process itself has imported the library the
ordinary way long before (Kopf, the fixtures)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_operator_and_the_gateway_start_without_the_model_classes() -> None:
    for entry in ("kubetask.operator.main", "kubetask.api.main"):
        loaded = json.loads(python(f"import sys, json, {entry}; "
                                   "print(json.dumps([m for m in sys.modules if m.startswith('kubernetes_asyncio')]))"))
        models = [m for m in loaded if m.startswith("kubernetes_asyncio.client.models.")]
        # Kopf asks for V1ObjectMeta and V1OwnerReference: those two (and what they import), not 767.
        assert len(models) <= 4 and len(loaded) < 40, (entry, len(loaded), models)


def test_every_name_the_library_exports_is_the_same_object_when_asked_for() -> None:
    """The name tables, read from the packages' own __init__.py, against the packages imported
    the ordinary way: same names, same objects."""
    same = json.loads(python("""
import json, sys
import kubernetes_asyncio, kubernetes_asyncio.client, kubernetes_asyncio.client.models  # the real, eager import
real = {p: sys.modules[p] for p in ("kubernetes_asyncio", "kubernetes_asyncio.client", "kubernetes_asyncio.client.models")}
from kubetask import lazy_client
for p in real: del sys.modules[p]
for m in [m for m in sys.modules if m.startswith("kubernetes_asyncio")]: del sys.modules[m]
assert lazy_client.install()
out = {}
for p, module in real.items():
    lazy = sys.modules[p]
    names = [n for n in lazy.__all__]
    public = sorted(n for n in vars(module) if not n.startswith("_") and not isinstance(getattr(module, n), type(sys)) or n in names)
    out[p] = {"names": len(names), "missing": sorted(set(n for n in public if n not in names and not n.startswith("_")) - {"absolute_import"}),
              "different": [n for n in names if getattr(lazy, n).__name__ != getattr(module, n).__name__
                            or getattr(getattr(lazy, n), "__module__", "") != getattr(getattr(module, n), "__module__", "")]}
print(json.dumps(out))
"""))
    assert same["kubernetes_asyncio.client.models"]["names"] == 767
    assert same["kubernetes_asyncio.client"]["names"] > 800
    for package, found in same.items():
        assert found["missing"] == [] and found["different"] == [], (package, found)


def test_it_does_nothing_once_the_library_is_imported() -> None:
    assert python("import kubernetes_asyncio.client; from kubetask import lazy_client; print(lazy_client.install())").strip() == "False"


@pytest.mark.parametrize("name", ["V1Pod", "CoreV1Api", "ApiClient", "ApiException"])
def test_names_resolve_on_first_use(name: str) -> None:
    out = python(f"from kubetask import lazy_client; lazy_client.install(); import kubernetes_asyncio.client as c; print(c.{name}.__name__)")
    assert out.strip() == name
