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
    # A cluster that was running already belongs to someone else (another test run on this
    # machine, `make up`): used, never deleted.
    ours = not cluster.is_running()
    path = cluster.up()
    try:
        yield Path(path)
    finally:
        if ours and not os.environ.get("KUBETASK_KEEP_CLUSTER"):
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




REAL_NODE_LABEL = "kubetask.io/node-kind"


def _real_nodes(kube: KubeSync) -> list[str]:
    nodes = kube.get(core_path("nodes"), labelSelector=f"{REAL_NODE_LABEL}=real")["items"]
    return [n["metadata"]["name"] for n in nodes
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))]


@pytest.fixture(scope="session")
def real_node(kube: KubeSync, kubeconfig: Path) -> list[str]:
    """The Ready nodes labelled kubetask.io/node-kind=real (real containers: the local real node,
    or kind's node under `make kind-e2e`); skips when there is none. KUBETASK_TEST_REAL_NODE=1
    starts real-node-0 on the local cluster under test, and fails if it cannot."""
    cluster_dir = kubeconfig.parent
    local = cluster_dir.parent == localcluster.CACHE / "kwok" / "clusters"
    if not _real_nodes(kube) and os.environ.get("KUBETASK_TEST_REAL_NODE") == "1" and local:
        try:
            localcluster.LocalCluster(cluster_dir.name).up(real_node=True)
        except SystemExit as error:  # localcluster reports a failed start with its logs' tails
            pytest.fail(f"KUBETASK_TEST_REAL_NODE=1 but the real node did not start:\n{error}")
    found = _real_nodes(kube)
    if not found:
        pytest.skip(f"no Ready node labelled {REAL_NODE_LABEL}=real in the cluster under test: start real-node-0 with "
                    "`hack/localcluster.py up --real-node` (root) or set KUBETASK_TEST_REAL_NODE=1")
    return found


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
