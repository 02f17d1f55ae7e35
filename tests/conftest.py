"""Test harness: the local control plane as a session fixture.

Unit tests (tests/unit, tests/sdk) need nothing. Integration tests (tests/integration, tests/e2e)
get a real control plane: started here once per session (and torn down at the end), or reused
when KUBETASK_TEST_KUBECONFIG points at a running one (`make up` prints such a path).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from kubetask.kube import ApiError, Connection, KubeSync, core_path

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def _load_localcluster() -> Any:
    spec = importlib.util.spec_from_file_location("localcluster", REPO / "hack" / "localcluster.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["localcluster"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


localcluster = _load_localcluster()


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


def wait_for(probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2, what: str = "condition") -> T:
    """Poll until probe returns something truthy (exceptions count as not yet); fail with the last state."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except (ApiError, KeyError, IndexError, TypeError, httpx.HTTPError, OSError) as error:
            last = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


RESTRICTED_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "readOnlyRootFilesystem": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


# ---------------------------------------------------------------------------------------------
# The operator as a real process
# ---------------------------------------------------------------------------------------------

def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    """`kubetask-operator` run as a subprocess against the test cluster; restartable, killable."""

    def __init__(self, kubeconfig: Path, log_dir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.log_dir = log_dir
        self.process: Any = None
        self.metrics_port = self.health_port = 0
        self.starts = 0

    def start(self) -> None:
        import subprocess

        self.metrics_port, self.health_port = free_port(), free_port()
        self.starts += 1
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig),
               "KUBETASK_POD_ANNOTATION_PREFIXES": '["sim.kubetask.io/"]',
               "KUBETASK_METRICS_PORT": str(self.metrics_port), "KUBETASK_HEALTH_PORT": str(self.health_port),
               "KUBETASK_METRICS_HOST": "127.0.0.1",
               "KUBETASK_LOG_FORMAT": "text", "KUBETASK_QUEUE_STATUS_INTERVAL": "0.5"}
        log = open(self.log_dir / f"operator-{self.starts}.log", "w")
        self.process = subprocess.Popen([sys.executable, "-m", "kubetask.operator.main"], env=env, stdout=log, stderr=subprocess.STDOUT)
        import httpx

        wait_for(lambda: httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1).status_code == 200,
                 timeout=30, what="operator liveness")

    def kill(self) -> None:
        """SIGKILL: no cleanup, as in a crash."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except Exception:
                self.process.kill()

    def metrics(self) -> str:
        import httpx

        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text


@pytest.fixture(scope="session")
def operator(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """One operator for the session. Tests that kill it must start it again before they end."""
    process = OperatorProcess(kubeconfig, tmp_path_factory.mktemp("operator-logs"))
    process.start()
    yield process
    process.stop()
