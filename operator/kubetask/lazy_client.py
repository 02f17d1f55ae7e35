"""`kubernetes_asyncio` without importing its 800 model classes up front.

The library's package `__init__` files import everything they export: `kubernetes_asyncio`
imports `client`, `config`, `dynamic`, `stream`, `utils` and `watch`; `client` imports about 60
API classes and, through `client.models`, 767 model modules. That is 859 modules, about 35 MiB of
RSS and a third of a second in every kubetask process, and Kopf triggers it at `import kopf`
(kopf/_cogs/helpers/thirdparty.py looks for `V1ObjectMeta`). kubetask sends raw requests through
`ApiClient` (kubetask/kube.py) and never builds a model.

`install()` puts the three packages into `sys.modules` without running their `__init__`, each with
a module `__getattr__` (PEP 562) that imports what is asked for on first use: the name → module
table is read from the package's own `__init__.py` (its `from X import Y` lines), so every name
the library exports still resolves to the same object, just later. Submodules import as usual.
The library has no lazy mode of its own, hence this; it is pinned to a minor version
(pyproject.toml), and tests/unit/test_lazy_client.py checks the table against the real package.

Call it before anything imports `kubernetes_asyncio` (the entry points do, before `import kopf`).
Once the library is imported the ordinary way, it does nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import types
from dataclasses import dataclass
from typing import Any

PACKAGES = ("kubernetes_asyncio", "kubernetes_asyncio.client", "kubernetes_asyncio.client.models")
_FROM_IMPORT = re.compile(r"^from (kubernetes_asyncio(?:\.\w+)+) import (\w+)$", re.MULTILINE)
_IMPORT_AS = re.compile(r"^import (kubernetes_asyncio\.\w+) as (\w+)$", re.MULTILINE)
_STRING = re.compile(r"^(__\w+__) = \"([^\"]*)\"$", re.MULTILINE)


@dataclass(frozen=True)
class Export:
    """One name a package's __init__.py defines: an attribute of a module, a module, or a string."""

    module: str = ""
    whole_module: bool = False
    value: str | None = None


def exports(source: str) -> dict[str, Export]:
    """The names a package's `__init__.py` defines: `from M import N` lines, `import M as N` (the
    top-level package's subpackages) and dunder strings (`__version__ = "36.1.0"`)."""
    table = {name: Export(module) for module, name in _FROM_IMPORT.findall(source)}
    table.update({name: Export(module, whole_module=True) for module, name in _IMPORT_AS.findall(source)})
    table.update({name: Export(value=value) for name, value in _STRING.findall(source)})
    return table


def _lazy_package(name: str) -> types.ModuleType | None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or spec.submodule_search_locations is None:
        return None
    with open(spec.origin, encoding="utf-8") as f:
        table = exports(f.read())
    package = importlib.util.module_from_spec(spec)  # __path__, __spec__ set; __init__ not run
    for attr, export in table.items():
        if export.value is not None:
            setattr(package, attr, export.value)

    def __getattr__(attr: str) -> Any:
        export = table.get(attr)
        if export is None:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        module = importlib.import_module(export.module)
        value = module if export.whole_module else getattr(module, attr)
        setattr(package, attr, value)  # next time, a plain attribute
        return value

    package.__getattr__ = __getattr__  # type: ignore[method-assign]
    package.__all__ = [attr for attr, export in table.items() if export.value is None]  # type: ignore[attr-defined]
    sys.modules[name] = package
    return package


def install() -> bool:
    """Make the packages lazy; False when the library was imported already (nothing to save)."""
    if any(name in sys.modules for name in PACKAGES):
        return False
    for name in PACKAGES:  # parents first: find_spec of a submodule reads its parent's __path__
        if _lazy_package(name) is None:
            for made in PACKAGES:
                sys.modules.pop(made, None)
            return False
    # `import a.b` binds b on a: the real import system does it as each package runs.
    sys.modules["kubernetes_asyncio"].client = sys.modules["kubernetes_asyncio.client"]  # type: ignore[attr-defined]
    sys.modules["kubernetes_asyncio.client"].models = sys.modules["kubernetes_asyncio.client.models"]  # type: ignore[attr-defined]
    return True
