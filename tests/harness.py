"""Test and benchmark harness: the local control plane's module, polling, and the operator as a
real process. Shared by tests/conftest.py (fixtures) and tests/bench (benchmarks)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from kubetask.kube import ApiError

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    """`kubetask-operator` run as a subprocess against the test cluster; restartable, killable."""

    def __init__(self, kubeconfig: Path, log_dir: Path, extra_env: dict[str, str] | None = None,
                 restart_on_exit: bool = False) -> None:
        self.kubeconfig = kubeconfig
        self.extra_env = extra_env or {}
        self.log_dir = log_dir
        self.process: Any = None
        self.metrics_port = self.health_port = 0
        self.starts = 0
        # Like the kubelet: an operator that exits on its own (it lost its Lease while the API
        # server was down, by design) is started again. kill() and stop() are not exits on its own.
        self.restart_on_exit = restart_on_exit
        self._wanted = False

    def start(self) -> None:
        self._wanted = True
        self._launch()
        if self.restart_on_exit:
            threading.Thread(target=self._supervise, args=(self.process,), daemon=True).start()

    def _supervise(self, process: Any) -> None:
        while True:
            process.wait()
            if not self._wanted or process is not self.process:
                return
            time.sleep(1)
            if not self._wanted:
                return
            try:
                self._launch()
            except AssertionError:  # not live yet: the next loop waits on the new process anyway
                pass
            process = self.process

    def _launch(self) -> None:
        self.metrics_port, self.health_port = free_port(), free_port()
        self.starts += 1
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig),
               "KUBETASK_POD_ANNOTATION_PREFIXES": '["sim.kubetask.io/"]',
               "KUBETASK_METRICS_PORT": str(self.metrics_port), "KUBETASK_HEALTH_PORT": str(self.health_port),
               "KUBETASK_METRICS_HOST": "127.0.0.1",
               "KUBETASK_LOG_FORMAT": "text", "KUBETASK_QUEUE_STATUS_INTERVAL": "0.5",
               # Shorter than production so tests of refusals and failover finish in seconds; the
               # mechanisms are the same (production: retries up to 300 s apart, 15 s leases).
               "KUBETASK_RETRY_MAX_DELAY": "3", "KUBETASK_PENDING_POD_CHECK_SECONDS": "2", "KUBETASK_LEADER_LEASE_SECONDS": "4",
               "KUBETASK_LEADER_RENEW_DEADLINE_SECONDS": "3", "KUBETASK_LEADER_RETRY_SECONDS": "0.5",
               # Retention sweeps every second so its tests take seconds; the default retention
               # stays 7 days, so only Tasks that ask for a short one are deleted under a test.
               "KUBETASK_RETENTION_CHECK_SECONDS": "1",
               # Webhook retries 0.5 s, 1 s, 2 s, ... apart (production: 10 s doubling), and TaskWebhooks'
               # Secrets re-checked every second (production: a minute).
               "KUBETASK_WEBHOOK_RETRY_BASE_SECONDS": "0.5", "KUBETASK_WEBHOOK_SECRET_CHECK_SECONDS": "1", **self.extra_env}
        log = open(self.log_dir / f"operator-{self.starts}.log", "w")
        self.process = subprocess.Popen([sys.executable, "-m", "kubetask.operator.main"], env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1).status_code == 200,
                 timeout=30, what="operator liveness")

    def kill(self) -> None:
        """SIGKILL: no cleanup, as in a crash."""
        self._wanted = False
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        self._wanted = False
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except Exception:
                self.process.kill()

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text


RESTRICTED_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "readOnlyRootFilesystem": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
