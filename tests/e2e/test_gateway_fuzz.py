"""The gateway answers as its OpenAPI document says: schemathesis with every check (`-c all`) against
a running gateway on the local control plane.

`schemathesis run <gateway>/openapi.json -c all` runs the examples, coverage and fuzzing phases over
every operation: no 5xx, responses that match their schemas and declared status codes, schema-valid
requests accepted, schema-violating ones rejected, 405 with a complete `Allow` for methods a path
does not have, plus `kubetask_error_shape` (gateway_fuzz_hooks.py: every JSON error has the error
shape). The namespace is fixed to one with a TaskType `any` (no schema, no limits) and a paused
queue, so valid submissions are created and never run. gateway_fuzz_hooks.py also puts into
positive cases what no JSON Schema can promise (names that must exist, relations between fields,
continue tokens only a previous page issues); its docstring lists them.

The gateway runs in development mode (no auth, loopback only), so requests reach validation and the
API server instead of stopping at 401; the document declares no security scheme, so no auth check
applies. Event streams (`:watch`) stay open by design and are left out (test_gateway.py covers
them); the stateful phase is off: the document has no links for it to follow. The CLI, not the
pytest plugin: schemathesis' plugin does not work with pytest 9 yet (it reads `Function._nodeid`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway_harness import GatewayProcess, register
from kubetask.kube import KubeSync, tasks_path

pytestmark = pytest.mark.timeout(600)
EXAMPLES = 15  # per operation and phase: about 2,500 requests, some 30 s on 2 cores


def test_the_gateway_matches_its_openapi_document(dev_gateway: GatewayProcess, kube: KubeSync, namespace: str,
                                                   tmp_path: Path) -> None:
    register(kube, namespace, paused=True)
    kube.create(tasks_path(namespace, plural="tasktypes"), {  # no schema, no limits: generated specs can pass
        "apiVersion": "kubetask.io/v1alpha1", "kind": "TaskType", "metadata": {"name": "any"}, "spec": {"image": "example.invalid/any:1"}})
    config = tmp_path / "schemathesis.toml"
    config.write_text(f'[parameters]\nnamespace = "{namespace}"\n')
    here = Path(__file__).resolve().parent
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "gateway_fuzz_hooks",
           "PYTHONPATH": os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")])}
    command = [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "run", f"{dev_gateway.url}/openapi.json",
               "-c", "all", "--phases", "examples,coverage,fuzzing", "-n", str(EXAMPLES), "--generation-deterministic",
               "--exclude-path-regex", ":watch$", "--request-timeout", "15", "--no-color"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540)
    output = result.stdout + result.stderr
    print(output[-4000:])
    assert result.returncode == 0, output[-20000:]
    generated = re.search(r"(\d+) generated", output)
    assert generated and int(generated.group(1)) >= 1000, output[-2000:]
    tested = re.search(r"Tested: (\d+)", output)
    assert tested and int(tested.group(1)) >= 20, output[-2000:]  # every operation but the two streams
