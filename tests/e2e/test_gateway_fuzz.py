"""Schema fuzzing: schemathesis generates requests (valid and invalid) from the gateway's own
/openapi.json and sends them to a running gateway against the local control plane. Whatever it
sends, the gateway must never answer 5xx: bad input is a 4xx with the error shape.

The gateway runs in development mode (no auth, loopback only) so the generated requests reach the
validation and the API server instead of stopping at 401. Half of the cases are pointed at a
namespace with a registered TaskType and a paused queue, so valid submissions are created (and
never run); the rest use generated namespace names.

Schemathesis' own pytest plugin does not work with pytest 9 yet (it reads `Function._nodeid`), so
this drives its Hypothesis strategies directly: every operation, positive and negative data,
a bounded number of examples each, derandomized so a failure reproduces.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from gateway_harness import GatewayProcess, register
from kubetask.kube import KubeSync, tasks_path

pytestmark = pytest.mark.timeout(300)
EXAMPLES = 40


def test_generated_requests_never_get_a_server_error(dev_gateway: GatewayProcess, kube: KubeSync, namespace: str) -> None:
    register(kube, namespace, paused=True)
    kube.create(tasks_path(namespace, plural="tasktypes"), {  # no schema, no limits: generated specs can pass
        "apiVersion": "kubetask.io/v1alpha1", "kind": "TaskType", "metadata": {"name": "any"}, "spec": {"image": "example.invalid/any:1"}})
    schema = schemathesis.openapi.from_url(f"{dev_gateway.url}/openapi.json")
    counter = itertools.count()
    failures: list[str] = []
    statuses: dict[int, int] = {}
    session = requests.Session()
    operations: list[Any] = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    # Event streams stay open by design (until a Task finishes); test_gateway.py exercises them.
    operations = [op for op in operations if not op.path.endswith(":watch")]
    assert len(operations) >= 12, [op.label for op in operations]
    started = time.monotonic()

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def send(case: Any) -> None:
                if "namespace" in (case.path_parameters or {}) and next(counter) % 2 == 0:
                    case.path_parameters["namespace"] = namespace
                    body = case.body if isinstance(case.body, dict) else {}
                    items = body.get("items")
                    for item in [body, *(items if isinstance(items, list) else [])]:
                        if isinstance(item, dict) and isinstance(item.get("spec"), dict) and mode is GenerationMode.POSITIVE:
                            item["spec"]["type"] = "any"  # a TaskType that exists: reach the API server
                response = case.call(session=session, timeout=15)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code >= 500:
                    failures.append(f"{response.status_code} {response.text[:300]}\n  {case.as_curl_command()[:1500]}")
                elif response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
                    error = response.json().get("error")
                    if not (isinstance(error, dict) and {"status", "reason", "message", "details"} <= set(error)):
                        failures.append(f"{response.status_code} without the error shape: {response.text[:300]}\n  {case.as_curl_command()[:1500]}")

            try:
                send()
            except Unsatisfiable:
                pass  # nothing to make invalid (no parameters, no body): /healthz in negative mode
            except Exception as error:  # a transport error is a failure too (e.g. the gateway died)
                failures.append(f"{operation.label} ({mode}): {type(error).__name__}: {str(error)[:500]}")

    print(f"fuzzed {sum(statuses.values())} requests over {len(operations)} operations in {time.monotonic() - started:.0f}s: "
          f"{dict(sorted(statuses.items()))}")
    assert not failures, "\n".join(failures[:20])
    assert sum(statuses.values()) >= len(operations) * 2
    assert any(200 <= s < 300 for s in statuses) and any(400 <= s < 500 for s in statuses)
