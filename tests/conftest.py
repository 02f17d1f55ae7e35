"""Test harness: the local control plane as a session fixture.

Unit tests (tests/unit, tests/sdk) need nothing. Integration tests (tests/integration, tests/e2e)
get a real control plane: started here once per session (and torn down at the end), or reused
when KUBETASK_TEST_KUBECONFIG points at a running one (`make up` prints such a path).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import OperatorProcess, localcluster, wait_for
from kubetask.kube import ApiError, Connection, KubeSync, core_path



def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts or "e2e" in parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[Path]:
    reuse = os.environ.get("KUBETASK_TEST_KUBECONFIG")
    if reuse:
        yield Path(reuse)
        return
    cluster = localcluster.LocalCluster(os.environ.get("KUBETASK_TEST_CLUSTER", "kubetask-test"))
    path = cluster.up()
    try:
        yield Path(path)
    finally:
        if not os.environ.get("KUBETASK_KEEP_CLUSTER"):
            cluster.down()


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    return Path(localcluster.LocalCluster().binaries())


@pytest.fixture(scope="session")
def kube(kubeconfig: Path) -> Iterator[KubeSync]:
    client = KubeSync(Connection.from_kubeconfig(kubeconfig))
    yield client
    client.close()


@pytest.fixture
def namespace(kube: KubeSync) -> Iterator[str]:
    """A fresh namespace per test, enforcing Pod Security "restricted" like a hardened cluster."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube.create(core_path("namespaces"), {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": "restricted",
                                              "kubetask.io/test": "true"}},
    })
    wait_for(lambda: kube.get(core_path("serviceaccounts", name, "default")), timeout=30, what="default ServiceAccount")
    yield name
    try:
        kube.delete(core_path("namespaces", name=name))
    except ApiError:
        pass




@pytest.fixture
def quiet(operator: OperatorProcess) -> Iterator[None]:
    """The session operator stopped for the test (it watches every namespace and would act in the
    test's own too, beside the operators the test starts), then started again."""
    operator.stop()
    try:
        yield
    finally:
        operator.start()


@pytest.fixture(scope="session")
def operator(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """One operator for the session. Tests that kill it must start it again before they end."""
    process = OperatorProcess(kubeconfig, tmp_path_factory.mktemp("operator-logs"), restart_on_exit=True)
    process.start()
    yield process
    process.stop()
