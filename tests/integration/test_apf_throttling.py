"""The operator under real API throttling: API Priority and Fairness (APF) answers its writes 429.

The local control plane runs with APF on (hack/localcluster.py). APF exempts `system:masters`,
the admin kubeconfig's group, so the throttled operator runs as a ServiceAccount bound to
cluster-admin, with a token from the TokenRequest API. A FlowSchema sends that account's writes
(create/patch/update/delete of Jobs, Tasks, Tasks' status and Events) to a PriorityLevelConfiguration
with one nominal concurrency share (3 of the API server's 600 seats with the default levels), no
borrowing and no queue: whatever does not fit at once is rejected with 429 Too Many Requests. Its
reads, watches and Lease renewals are not throttled. Nothing here fakes the answer: the probe
below and the API server's own `apiserver_flowcontrol_rejected_requests_total` prove the 429s.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from harness import OperatorProcess, wait_for
from kt import apply_queue, apply_tasktype, create_task, jobs_of, one_job_per_task, sim
from kubetask.kube import ApiError, Connection, KubeSync, core_path, tasks_path

pytestmark = pytest.mark.timeout(900)

FLOWCONTROL = "flowcontrol.apiserver.k8s.io"
RBAC = "rbac.authorization.k8s.io"
ACCOUNT = "kubetask-operator"
WRITES = ["create", "patch", "update", "delete"]
BURST = 300
PROBE_REQUESTS = 50


@dataclass
class Throttle:
    namespace: str
    flow_schema: str
    priority_level: str
    token: str
    kubeconfig: Path  # the ServiceAccount's: same server and CA as the admin's


def _admin_http(kube: KubeSync) -> httpx.Client:
    return httpx.Client(base_url=kube.connection.server, verify=kube.connection.ssl_context(),
                        headers=kube.connection.headers(), timeout=30)


def apiserver_metric(kube: KubeSync, name: str, **labels: str) -> float:
    """The sum of one metric's samples whose labels include `labels`, from the API server's /metrics."""
    with _admin_http(kube) as http:
        text = http.get("/metrics").raise_for_status().text
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(w in line for w in wanted):
            total += float(line.rsplit(" ", 1)[1])
    return total


def rejected(kube: KubeSync, flow_schema: str) -> int:
    return int(apiserver_metric(kube, "apiserver_flowcontrol_rejected_requests_total", flow_schema=flow_schema))


def write_kubeconfig(admin_kubeconfig: Path, token: str, path: Path) -> Path:
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    context = next(c["context"] for c in admin["contexts"] if c["name"] == admin["current-context"])
    cluster = dict(next(c["cluster"] for c in admin["clusters"] if c["name"] == context["cluster"]))
    if "certificate-authority" in cluster:  # inline it: the file stands on its own
        ca = (admin_kubeconfig.parent / cluster.pop("certificate-authority")).read_bytes()
        cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "throttled",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "throttled", "context": {"cluster": "local", "user": ACCOUNT}}],
    }))
    return path


@pytest.fixture
def throttle(kube: KubeSync, namespace: str, kubeconfig: Path, tmp_path: Path) -> Iterator[Throttle]:
    """A cluster-admin ServiceAccount whose writes APF throttles hard; all cluster objects removed after."""
    name = f"kubetask-apf-{namespace}"
    try:
        kube.get(f"/apis/{FLOWCONTROL}/v1")
    except ApiError as error:
        pytest.fail(f"the control plane does not serve {FLOWCONTROL}/v1 ({error}): API Priority and Fairness is off. "
                    "A cluster started before hack/localcluster.py turned it on keeps it off until restarted "
                    "(localcluster.py down, then up).")
    kube.create(core_path("serviceaccounts", namespace), {"apiVersion": "v1", "kind": "ServiceAccount",
                                                         "metadata": {"name": ACCOUNT}})
    cleanup = [
        core_path("flowschemas", name=name, group=FLOWCONTROL),
        core_path("prioritylevelconfigurations", name=name, group=FLOWCONTROL),
        core_path("clusterrolebindings", name=name, group=RBAC),
    ]
    try:
        kube.create(core_path("clusterrolebindings", group=RBAC), {
            "apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": namespace}],
        })
        token = kube.create(core_path("serviceaccounts", namespace, ACCOUNT) + "/token", {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600}})["status"]["token"]
        kube.create(core_path("prioritylevelconfigurations", group=FLOWCONTROL), {
            "apiVersion": f"{FLOWCONTROL}/v1", "kind": "PriorityLevelConfiguration", "metadata": {"name": name},
            "spec": {"type": "Limited", "limited": {
                "nominalConcurrencyShares": 1, "lendablePercent": 0, "borrowingLimitPercent": 0,
                "limitResponse": {"type": "Reject"}}},
        })
        kube.create(core_path("flowschemas", group=FLOWCONTROL), {
            "apiVersion": f"{FLOWCONTROL}/v1", "kind": "FlowSchema", "metadata": {"name": name},
            "spec": {
                "priorityLevelConfiguration": {"name": name},
                "matchingPrecedence": 100,  # before `service-accounts` (9000), which would match it otherwise
                "distinguisherMethod": {"type": "ByUser"},
                "rules": [{
                    "subjects": [{"kind": "ServiceAccount", "serviceAccount": {"name": ACCOUNT, "namespace": namespace}}],
                    "resourceRules": [
                        {"verbs": WRITES, "apiGroups": ["batch"], "resources": ["jobs"], "namespaces": ["*"]},
                        {"verbs": WRITES, "apiGroups": ["kubetask.io"], "resources": ["tasks", "tasks/status"],
                         "namespaces": ["*"]},
                        {"verbs": WRITES, "apiGroups": ["", "events.k8s.io"], "resources": ["events"],
                         "namespaces": ["*"]},
                    ],
                }],
            },
        })
        # The API server's APF controller has taken both in: the level has its seats.
        seats = wait_for(lambda: apiserver_metric(kube, "apiserver_flowcontrol_nominal_limit_seats", priority_level=name),
                         timeout=30, what="the priority level configured in the API server")
        wait_for(lambda: any(c["type"] == "Dangling" and c["status"] == "False" for c in
                             kube.get(cleanup[0]).get("status", {}).get("conditions", [])),
                 timeout=30, what="the FlowSchema bound to its priority level")
        print(f"\n[apf] priority level {name}: {seats:.0f} nominal seats")
        yield Throttle(namespace, name, name, token,
                       write_kubeconfig(kubeconfig, token, tmp_path / "throttled-kubeconfig.yaml"))
    finally:
        for path in cleanup:
            try:
                kube.delete(path)
            except ApiError as error:
                if error.status != 404:
                    raise


def probe(kube: KubeSync, throttle: Throttle, requests: int = PROBE_REQUESTS) -> Counter[int]:
    """Fire `requests` Event creates at once as the throttled account; the status codes answered.

    One client (one connection) per thread, each connected before the start line, so the creates
    really arrive together."""
    connection = kube.connection.with_token(throttle.token)
    clients = [httpx.Client(base_url=connection.server, verify=connection.ssl_context(), timeout=30,
                            headers=connection.headers()) for _ in range(requests)]
    statuses: list[int] = []
    start = threading.Barrier(requests)
    lock = threading.Lock()

    def fire(client: httpx.Client, i: int) -> None:
        body = {"apiVersion": "v1", "kind": "Event", "metadata": {"generateName": "apf-probe-"},
                "involvedObject": {"apiVersion": "v1", "kind": "ServiceAccount", "name": ACCOUNT,
                                   "namespace": throttle.namespace},
                "reason": "ApfProbe", "message": f"probe {i}", "type": "Normal"}
        start.wait()
        status = client.post(core_path("events", throttle.namespace), json=body).status_code
        with lock:
            statuses.append(status)

    try:
        for client in clients:  # TLS handshakes now; a GET of /version is no write, so not throttled
            client.get("/version").raise_for_status()
        threads = [threading.Thread(target=fire, args=(client, i)) for i, client in enumerate(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for client in clients:
            client.close()
    return Counter(statuses)


def assert_throttled(kube: KubeSync, throttle: Throttle) -> Counter[int]:
    """The throttle answers real 429s (up to three bursts, in case one lands on an idle moment)."""
    for attempt in range(1, 4):
        before = rejected(kube, throttle.flow_schema)
        statuses = probe(kube, throttle)
        after = rejected(kube, throttle.flow_schema)
        print(f"[apf] probe burst {attempt}: {PROBE_REQUESTS} concurrent creates answered {dict(statuses)}; "
              f"apiserver_flowcontrol_rejected_requests_total {before} -> {after}")
        assert set(statuses) <= {201, 429}, statuses
        if statuses[429]:
            assert after - before == statuses[429]  # the API server counted exactly the 429s we saw
            return statuses
    raise AssertionError(f"no 429 in three bursts of {PROBE_REQUESTS} concurrent creates: {dict(statuses)}")


def test_throttled_writes_answer_real_429s(kube: KubeSync, throttle: Throttle) -> None:
    assert_throttled(kube, throttle)
    # Reads are not in the FlowSchema: the same account lists freely.
    as_account = KubeSync(kube.connection.with_token(throttle.token))
    try:
        assert as_account.get(core_path("events", throttle.namespace))["items"]
    finally:
        as_account.close()


def _phases(kube: KubeSync, namespace: str) -> Counter[str]:
    return Counter((t.get("status") or {}).get("phase", "none") for t in kube.get(tasks_path(namespace))["items"])


def test_burst_of_tasks_succeeds_while_operator_writes_are_throttled(
        kube: KubeSync, throttle: Throttle, operator: OperatorProcess, tmp_path: Path) -> None:
    namespace = throttle.namespace
    assert_throttled(kube, throttle)
    apply_tasktype(kube, namespace, "sim")
    apply_queue(kube, namespace, "default", maxRunning=50)
    throttled = OperatorProcess(throttle.kubeconfig, tmp_path, extra_env={
        # Its own Lease: it must not wait as a standby behind the session operator's.
        "KUBETASK_LEADER_LEASE_NAME": f"apf-{uuid.uuid4().hex[:8]}",
        "KUBETASK_LEADER_LEASE_NAMESPACE": namespace,
    })
    names = [f"apf-{i:03d}" for i in range(BURST)]
    operator.stop()
    try:
        rejected_before = rejected(kube, throttle.flow_schema)
        throttled.start()
        started = time.monotonic()
        for name in names:  # as admin: exempt, so the burst arrives at once
            create_task(kube, namespace, name, sim(run_for="1s"))
        deadline = started + 300
        phases: Counter[str] = Counter()
        while time.monotonic() < deadline:
            phases = _phases(kube, namespace)
            if phases["Succeeded"] == BURST:
                break
            time.sleep(2)
        elapsed = time.monotonic() - started
        rejected_by_apiserver = rejected(kube, throttle.flow_schema) - rejected_before
        exited = throttled.process.poll()
        log = "".join(f.read_text(errors="replace") for f in sorted(tmp_path.glob("operator-*.log")))
        print(f"[apf] {BURST} Tasks in {elapsed:.0f}s: {dict(phases)}; operator writes rejected by APF (429): "
              f"{rejected_by_apiserver}; operator exit code: {exited}; "
              f"'Too many requests' in its log: {log.lower().count('too many requests')} times")
        if phases["Succeeded"] != BURST:
            jobs = Counter(j["metadata"]["labels"]["kubetask.io/task"] for j in jobs_of(kube, namespace))
            stranded = sorted(n for n in names if jobs[n] == 0)
            tail = "\n".join(log.splitlines()[-30:])
            raise AssertionError(
                f"after {elapsed:.0f}s: {dict(phases)} of {BURST} Tasks; {len(stranded)} without a Job "
                f"(first: {stranded[:5]}); {sum(1 for n in names if jobs[n] > 1)} with more than one; "
                f"{rejected_by_apiserver} writes rejected with 429; operator exit code {exited}\n"
                f"--- last lines of the throttled operator's log ---\n{tail}")
        one_job_per_task(kube, namespace, names)
        assert rejected_by_apiserver > 0, "the operator's writes were never throttled: the test proved nothing"
    finally:
        throttled.stop()
        operator.start()
