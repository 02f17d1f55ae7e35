"""Active/standby on a Lease: two operator processes at once, and only one of them acts.

Each test runs two operators of its own on a Lease of its own (short timings), and stops the
session operator meanwhile: it watches the whole cluster under the default Lease name, so it would
admit Tasks in the test's namespace too. A thread samples the namespace's Jobs all along; a Job
without a Complete or Failed condition holds a slot of the queue, and there must never be more of
them than `maxRunning`.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import OperatorProcess, wait_for
from kt import apply_queue, apply_tasktype, create_task, jobs_of, sim
from kubetask.kube import ApiError, Connection, KubeSync, core_path, tasks_path

LEASE, RENEW, RETRY = 4, 3.0, 0.5
MAX_RUNNING = 3


class Pair:
    """Two operator processes competing for one Lease in the test's namespace."""

    def __init__(self, kubeconfig: Path, log_dir: Path, kube: KubeSync, namespace: str,
                 lease: int = LEASE, renew: float = RENEW, retry: float = RETRY) -> None:
        self.kube, self.namespace = kube, namespace
        self.name = f"kt-leader-{uuid.uuid4().hex[:8]}"
        env = {"KUBETASK_LEADER_ELECTION": "true", "KUBETASK_LEADER_LEASE_NAME": self.name,
               "KUBETASK_LEADER_LEASE_NAMESPACE": namespace, "KUBETASK_LEADER_LEASE_SECONDS": str(lease),
               "KUBETASK_LEADER_RENEW_DEADLINE_SECONDS": str(renew), "KUBETASK_LEADER_RETRY_SECONDS": str(retry)}
        self.processes = []
        for letter in "ab":
            (log_dir / letter).mkdir()
            self.processes.append(OperatorProcess(kubeconfig, log_dir / letter, extra_env=env))

    def start(self) -> None:
        for process in self.processes:
            process.start()  # returns once /healthz answers: the leader's (Kopf) or the standby's own

    def stop(self) -> None:
        for process in self.processes:
            if process.process is not None and process.process.poll() is None:
                os.kill(process.process.pid, signal.SIGCONT)  # in case a test left it stopped
            process.stop()
            process.kill()

    def lease(self) -> dict[str, Any] | None:
        try:
            return self.kube.get(core_path("leases", self.namespace, self.name, group="coordination.k8s.io"))
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def holder(self) -> OperatorProcess | None:
        """The process whose identity (<host>_<pid>_<random>) holds the Lease."""
        lease = self.lease()
        identity = ((lease or {}).get("spec") or {}).get("holderIdentity") or ""
        for process in self.processes:
            if identity.split("_")[-2:-1] == [str(process.process.pid)]:
                return process
        return None

    def roles(self, timeout: float = 30) -> tuple[OperatorProcess, OperatorProcess]:
        leader = wait_for(self.holder, timeout=timeout, what=f"a holder of Lease {self.name}")
        [standby] = [p for p in self.processes if p is not leader]
        return leader, standby


def leader_gauge(process: OperatorProcess) -> float:
    for line in process.metrics().splitlines():
        if line.startswith("kubetask_operator_leader "):
            return float(line.split()[1])
    raise AssertionError("no kubetask_operator_leader metric")


def api_writes(process: OperatorProcess) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in process.metrics().splitlines()
               if line.startswith("kubetask_api_writes_total{"))


def log_of(process: OperatorProcess) -> str:
    return (process.log_dir / f"operator-{process.starts}.log").read_text()


class JobSampler:
    """Counts the namespace's unfinished Jobs as often as it can, in a thread, and keeps the highest count."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        self.kube = KubeSync(Connection.from_kubeconfig(kubeconfig))
        self.namespace = namespace
        self.samples = 0
        self.highest = 0
        self.highest_names: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> JobSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.kube.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                jobs = jobs_of(self.kube, self.namespace)
            except (ApiError, httpx.HTTPError):
                continue
            running = [j["metadata"]["name"] for j in jobs if not any(
                c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in (j.get("status") or {}).get("conditions", []))]
            self.samples += 1
            if len(running) > self.highest:
                self.highest, self.highest_names = len(running), running
            time.sleep(0.05)


def phases(kube: KubeSync, namespace: str) -> dict[str, str]:
    return {t["metadata"]["name"]: (t.get("status") or {}).get("phase", "") for t in kube.get(tasks_path(namespace))["items"]}


def all_succeeded(kube: KubeSync, namespace: str, names: list[str]) -> bool:
    got = phases(kube, namespace)
    return all(got.get(name) == "Succeeded" for name in names)


def one_job_each(kube: KubeSync, namespace: str, names: list[str]) -> None:
    per_task: dict[str, list[str]] = {}
    for job in jobs_of(kube, namespace):
        per_task.setdefault(job["metadata"]["labels"]["kubetask.io/task"], []).append(job["metadata"]["name"])
    assert sorted(per_task) == sorted(names)
    assert all(len(jobs) == 1 for jobs in per_task.values()), {k: v for k, v in per_task.items() if len(v) != 1}


@pytest.fixture
def pair(kube: KubeSync, namespace: str, kubeconfig: Path, tmp_path: Path, quiet: None) -> Iterator[Pair]:
    made = Pair(kubeconfig, tmp_path, kube, namespace)
    try:
        yield made
    finally:
        made.stop()


def setup_queue(kube: KubeSync, namespace: str) -> None:
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "default", maxRunning=MAX_RUNNING)


def test_one_leader_one_standby_and_the_queue_limit_holds(kube: KubeSync, namespace: str, kubeconfig: Path, pair: Pair) -> None:
    pair.start()
    leader, standby = pair.roles()
    lease = pair.lease()
    assert lease is not None
    spec = lease["spec"]
    assert spec["leaseDurationSeconds"] == LEASE and spec["leaseTransitions"] == 0
    assert spec["acquireTime"].endswith("Z") and len(spec["renewTime"]) == len("2026-12-02T06:00:00.000000Z")

    # The standby answers liveness itself and says who leads; the gauge tells them apart.
    answer = httpx.get(f"http://127.0.0.1:{standby.health_port}/healthz", timeout=5)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"role": "standby", "lease": f"{namespace}/{pair.name}", "holder": spec["holderIdentity"]}
    assert httpx.get(f"http://127.0.0.1:{leader.health_port}/healthz", timeout=5).status_code == 200  # Kopf's
    assert leader_gauge(leader) == 1 and leader_gauge(standby) == 0
    wait_for(lambda: "standby: lease" in log_of(standby) and spec["holderIdentity"] in log_of(standby), timeout=10,
             what="the standby's log line")

    setup_queue(kube, namespace)
    names = [f"l-{i:02d}" for i in range(30)]
    with JobSampler(kubeconfig, namespace) as sampler:
        for name in names:
            create_task(kube, namespace, name, sim(run_for="1s"))
        wait_for(lambda: all_succeeded(kube, namespace, names), timeout=180, interval=1, what="all 30 Tasks Succeeded")
    print(f"job samples: {sampler.samples}, most unfinished Jobs at once: {sampler.highest}")
    assert sampler.samples > 50
    assert sampler.highest <= MAX_RUNNING, sampler.highest_names
    assert sampler.highest == MAX_RUNNING  # the limit was reached, so the sampler did see the queue full
    one_job_each(kube, namespace, names)

    assert api_writes(standby) == 0, "the standby wrote nothing"
    assert api_writes(leader) > 0
    after = pair.lease()
    assert after is not None and after["spec"]["holderIdentity"] == spec["holderIdentity"] and after["spec"]["leaseTransitions"] == 0
    assert after["spec"]["renewTime"] > spec["renewTime"], "the leader keeps renewing"


def test_failover_after_the_leader_is_killed(kube: KubeSync, namespace: str, kubeconfig: Path, pair: Pair) -> None:
    pair.start()
    leader, standby = pair.roles()
    setup_queue(kube, namespace)
    before = [f"k-{i:02d}" for i in range(6)]
    after = [f"n-{i:02d}" for i in range(6)]
    with JobSampler(kubeconfig, namespace) as sampler:
        for name in before:
            create_task(kube, namespace, name, sim(run_for="2s"))
        wait_for(lambda: len(jobs_of(kube, namespace)) >= 2, timeout=30, what="Jobs running before the kill")
        leader.kill()  # SIGKILL: the Lease is not released
        killed = time.monotonic()
        wait_for(lambda: pair.holder() is standby, timeout=LEASE * 4, interval=0.1, what="the standby taking over")
        took = time.monotonic() - killed
        print(f"takeover {took:.2f} s after SIGKILL (lease {LEASE} s, retry {RETRY} s)")
        assert took <= LEASE + RETRY + 2.0
        lease = pair.lease()
        assert lease is not None and lease["spec"]["leaseTransitions"] == 1
        wait_for(lambda: leader_gauge(standby) == 1, timeout=10, what="the new leader's gauge")
        # Its own /healthz server gave the port over to Kopf's.
        wait_for(lambda: "role" not in httpx.get(f"http://127.0.0.1:{standby.health_port}/healthz", timeout=2).text,
                 timeout=20, what="Kopf's liveness endpoint on the new leader")
        assert httpx.get(f"http://127.0.0.1:{standby.health_port}/healthz", timeout=2).status_code == 200
        for name in after:
            create_task(kube, namespace, name, sim(run_for="1s"))
        wait_for(lambda: all_succeeded(kube, namespace, before + after), timeout=120, interval=1, what="every Task Succeeded")
    assert sampler.highest <= MAX_RUNNING, sampler.highest_names
    one_job_each(kube, namespace, before + after)


def test_graceful_stop_releases_the_lease(kube: KubeSync, namespace: str, kubeconfig: Path, tmp_path: Path, quiet: None) -> None:
    lease_seconds = 12  # long, so that a takeover "at once" cannot be an expiry
    pair = Pair(kubeconfig, tmp_path, kube, namespace, lease=lease_seconds, renew=8.0, retry=RETRY)
    try:
        pair.start()
        leader, standby = pair.roles()
        setup_queue(kube, namespace)
        sent = time.monotonic()
        leader.stop()  # SIGTERM: Kopf stops, then the Lease is released
        assert leader.process.returncode == 0, log_of(leader)
        exited = time.monotonic()
        released = pair.lease()
        assert released is not None
        wait_for(lambda: pair.holder() is standby, timeout=lease_seconds, interval=0.05, what="the standby taking over")
        took = time.monotonic() - exited
        print(f"old leader exited {exited - sent:.2f} s after SIGTERM; takeover {took:.2f} s after it exited (lease {lease_seconds} s)")
        assert took < 3.0, f"{took:.2f} s: the Lease was not released"
        assert "released the Lease" in log_of(leader)
        create_task(kube, namespace, "after-handover", sim(run_for="1s"))
        wait_for(lambda: all_succeeded(kube, namespace, ["after-handover"]), timeout=60, what="a Task after the hand-over")
    finally:
        pair.stop()


def test_a_paused_leader_exits_when_it_wakes_up(kube: KubeSync, namespace: str, kubeconfig: Path, pair: Pair) -> None:
    """A stuck old pod: SIGSTOP the leader; the standby takes over after the lease duration; on
    SIGCONT the old leader finds its renew deadline long passed and exits (code 1) instead of acting."""
    pair.start()
    leader, standby = pair.roles()
    setup_queue(kube, namespace)
    names = [f"p-{i:02d}" for i in range(12)]
    with JobSampler(kubeconfig, namespace) as sampler:
        for name in names[:6]:
            create_task(kube, namespace, name, sim(run_for="1s"))
        os.kill(leader.process.pid, signal.SIGSTOP)
        paused = time.monotonic()
        try:
            wait_for(lambda: pair.holder() is standby, timeout=LEASE * 4, interval=0.1, what="the standby taking over")
            print(f"takeover {time.monotonic() - paused:.2f} s after SIGSTOP")
            for name in names[6:]:
                create_task(kube, namespace, name, sim(run_for="1s"))
            time.sleep(1)
        finally:
            os.kill(leader.process.pid, signal.SIGCONT)
        woken = time.monotonic()
        code = leader.process.wait(timeout=10)
        print(f"the paused leader exited {time.monotonic() - woken:.2f} s after SIGCONT")
        assert code == 1, log_of(leader)
        assert "exiting now" in log_of(leader)
        wait_for(lambda: all_succeeded(kube, namespace, names), timeout=120, interval=1, what="every Task Succeeded")
    assert sampler.highest <= MAX_RUNNING, sampler.highest_names
    one_job_each(kube, namespace, names)
