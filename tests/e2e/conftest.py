"""Gateway fixtures for the end-to-end tests: the gateway as a real process next to the operator,
namespaces with a registered TaskType and TaskQueue, and callers with real ServiceAccount tokens.

Helpers live in gateway_harness.py; this module holds only fixtures.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubetask.kube import ApiError, KubeSync, core_path


from gateway_harness import GatewayProcess, TASK_RULES, register, service_account_token


@pytest.fixture(scope="session")
def gateway(kubeconfig: Path, operator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """The gateway with authentication (TokenReview + SubjectAccessReview), next to the session's operator."""
    process = GatewayProcess(kubeconfig, tmp_path_factory.mktemp("gateway-logs"), "gateway")
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def dev_gateway(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway in development mode (no auth; loopback only), for schema fuzzing."""
    process = GatewayProcess(kubeconfig, tmp_path_factory.mktemp("dev-gateway-logs"), "dev-gateway",
                             KUBETASK_GATEWAY_DEV_NO_AUTH="true")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def sim_namespace(kube: KubeSync, namespace: str) -> str:
    """The fresh test namespace, with TaskType `sim` and TaskQueue `default` registered."""
    register(kube, namespace)
    return namespace


@pytest.fixture
def token(kube: KubeSync, sim_namespace: str) -> str:
    """A ServiceAccount token allowed to use Tasks in sim_namespace (and only there)."""
    return service_account_token(kube, sim_namespace, "submitter", TASK_RULES)


@pytest.fixture
def other_namespace(kube: KubeSync) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube.create(core_path("namespaces"), {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": name, "labels": {"kubetask.io/test": "true"}}})
    yield name
    try:
        kube.delete(core_path("namespaces", name=name))
    except ApiError:
        pass

