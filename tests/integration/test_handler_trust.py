"""A handler's token can report progress for its own Task's current run, and nothing else (issue #16).

The ValidatingAdmissionPolicy in policies/ on the real API server, with real handler tokens: each
is minted with the TokenRequest API bound to the pod the Job controller created for a Task's Job
(kwok runs it), for the ServiceAccount the TaskType names, so it carries the same
`authentication.kubernetes.io/pod-name` / `pod-uid` claims as the token the kubelet projects into
a handler pod. RBAC is the handler Role of handlers-images/rbac/handler-rbac.yaml, so every refusal
below is the policy's, not RBAC's (the cross-namespace case grants RBAC first on purpose)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import REPO, wait_for
from kt import apply_queue, apply_tasktype, ca_file, create_task, get_task, pods_of, sim, wait_phase
from kubetask.kube import ApiError, Connection, KubeSync, core_path, tasks_path
from kubetask.resources.models import TaskStatus

sys.path.insert(0, str(REPO / "handlers-images" / "sdk"))
from kubetask_sdk import progress as sdk_progress  # noqa: E402

pytestmark = [pytest.mark.usefixtures("operator"), pytest.mark.timeout(240)]
POLICY = REPO / "policies" / "kubetask.io_handler-progress-only.yaml"
RBAC = REPO / "handlers-images" / "rbac" / "handler-rbac.yaml"
HANDLER_SA = "kubetask-handler"


class Cluster:
    """What the tests share: one namespace with the handler RBAC, a TaskType run as kubetask-handler
    with a token, and Tasks whose pods run (or have finished)."""

    def __init__(self, kube: KubeSync, kubectl: list[str], conn: Connection) -> None:
        self.kube, self.kubectl, self.conn = kube, kubectl, conn
        self.ns = f"trust-{uuid.uuid4().hex[:8]}"
        self.made: list[str] = []

    def namespace(self, name: str) -> str:
        self.kube.create(core_path("namespaces"), {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": name, "labels": {"kubetask.io/test": "true"}}})
        self.made.append(name)
        wait_for(lambda: self.kube.get(core_path("serviceaccounts", name, "default")), timeout=30, what="default ServiceAccount")
        self.run("apply", "-n", name, "-f", str(RBAC))
        apply_queue(self.kube, name)
        apply_tasktype(self.kube, name, serviceAccountName=HANDLER_SA, reportProgress=True)
        return name

    def run(self, *args: str) -> str:
        done = subprocess.run([*self.kubectl, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout

    def running_pod(self, namespace: str, task: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            pods = [p for p in pods_of(self.kube, namespace, task) if (p.get("status") or {}).get("phase") == "Running"]
            return pods[0] if pods else None
        pod: dict[str, Any] = wait_for(probe, timeout=60, what=f"a Running pod of Task {task}")
        return pod

    def pod_token(self, namespace: str, pod: dict[str, Any], sa: str = HANDLER_SA) -> str:
        """A token bound to the pod, as the kubelet projects it into the handler's container."""
        request = self.kube.create(core_path("serviceaccounts", namespace, sa) + "/token", {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": 600, "boundObjectRef": {
                "kind": "Pod", "apiVersion": "v1", "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}}})
        return str(request["status"]["token"])

    def client(self, token: str) -> KubeSync:
        return KubeSync(self.conn.with_token(token))


@pytest.fixture(scope="module")
def cluster(kube: KubeSync, kubeconfig: Path, bin_dir: Path) -> Iterator[Cluster]:
    kubectl = [str(bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig)]
    c = Cluster(kube, kubectl, Connection.from_kubeconfig(kubeconfig))
    c.run("apply", "--server-side", "-f", str(POLICY))  # what `hack/localcluster.py up` installs; idempotent
    c.namespace(c.ns)
    for name in ("mine", "other"):
        create_task(kube, c.ns, name, annotations=sim(run_for="600s"))
    create_task(kube, c.ns, "short", annotations=sim(run_for="1s", message='{"real": true}'))
    yield c
    for name in c.made:
        try:
            kube.delete(core_path("namespaces", name=name))
        except ApiError:
            pass


@pytest.fixture(scope="module")
def mine(cluster: Cluster) -> KubeSync:
    """A client with the handler token of Task `mine`'s running pod; waits until the policy is live
    (the API server loads a new policy within a few seconds)."""
    handler = cluster.client(cluster.pod_token(cluster.ns, cluster.running_pod(cluster.ns, "mine")))

    def refused() -> bool:
        try:
            handler.patch(tasks_path(cluster.ns, "mine", subresource="status"), {"status": {"queue": "forged"}})
        except ApiError as error:
            return error.status == 403 and "only change status.progress" in error.message
        raise AssertionError("a handler token rewrote status.queue: the policy is not enforced")

    wait_for(refused, timeout=30, interval=0.5, what="the handler policy in force")
    return handler


def refusal(client: KubeSync, namespace: str, task: str, status: dict[str, Any]) -> str:
    with pytest.raises(ApiError) as denied:
        client.patch(tasks_path(namespace, task, subresource="status"), {"status": status})
    assert denied.value.status == 403, denied.value
    assert "ValidatingAdmissionPolicy 'kubetask-handler-progress-only'" in denied.value.message, denied.value.message
    return denied.value.message


def test_policy_compares_every_status_field_but_progress() -> None:
    """A status field added to the model without the policy comparing it would be a handler's to
    write: this fails first."""
    policy = next(d for d in yaml.safe_load_all(POLICY.read_text()) if d["kind"] == "ValidatingAdmissionPolicy")
    unchanged = next(v["expression"] for v in policy["spec"]["variables"] if v["name"] == "unchanged")
    compared = {line.strip().split("'")[1] for line in unchanged.splitlines() if line.strip().startswith("'")}
    fields = {field.alias or name for name, field in TaskStatus.model_fields.items()} - {"progress"}
    assert compared == fields


def test_sdk_progress_lands_for_its_own_running_task(cluster: Cluster, mine: KubeSync, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(cluster.pod_token(cluster.ns, cluster.running_pod(cluster.ns, "mine")))
    endpoint = sdk_progress.endpoint_from_env({"KUBETASK_API_URL": cluster.conn.server, "KUBETASK_TOKEN_FILE": str(token_file),
                                               "KUBETASK_CA_FILE": str(ca_file(cluster.conn, tmp_path))}, "mine", cluster.ns)
    assert isinstance(endpoint, sdk_progress.Endpoint), endpoint
    sdk_progress.send(endpoint, sdk_progress.progress_body(42, "almost half", sdk_progress.now_rfc3339()))
    status = get_task(cluster.kube, cluster.ns, "mine")["status"]
    assert status["progress"]["percent"] == 42 and status["progress"]["message"] == "almost half"
    assert status["phase"] == "Running"


@pytest.mark.parametrize("forged", [
    {"phase": "Succeeded"},
    {"result": {"answer": "made up"}},
    {"phase": "Succeeded", "result": {"answer": "made up"}, "progress": {"percent": 100}},
    {"conditions": []},
    {"lastFailure": {"reason": "Forged", "message": "x"}},
], ids=["phase", "result", "outcome-with-progress", "conditions", "lastFailure"])
def test_own_task_outcome_cannot_be_forged(cluster: Cluster, mine: KubeSync, forged: dict[str, Any]) -> None:
    before = get_task(cluster.kube, cluster.ns, "mine")["status"]
    message = refusal(mine, cluster.ns, "mine", forged)
    for field in forged.keys() - {"progress"}:
        assert f"status.{field}" in message, message
    after = get_task(cluster.kube, cluster.ns, "mine")["status"]
    assert {k: v for k, v in after.items() if k != "progress"} == {k: v for k, v in before.items() if k != "progress"}


def test_another_tasks_status_cannot_be_written(cluster: Cluster, mine: KubeSync) -> None:
    cluster.running_pod(cluster.ns, "other")  # it has a Job and a pod of its own
    message = refusal(mine, cluster.ns, "other", {"progress": {"percent": 99}})
    assert "is not a pod of this Task's Job" in message and "own Task" in message, message
    refusal(mine, cluster.ns, "other", {"phase": "Failed"})
    assert "progress" not in get_task(cluster.kube, cluster.ns, "other")["status"]


def test_a_task_that_names_no_job_yet_is_refused_with_the_words_the_sdk_retries(cluster: Cluster, mine: KubeSync) -> None:
    """With the status settle window on, the operator writes a run's status.jobName a little
    after its pod starts (docs/operator.md); until then the policy refuses, and the SDK keeps the
    report for later when the refusal says so (kubetask_sdk.progress.NOT_YET)."""
    create_task(cluster.kube, cluster.ns, "nojob", type="no-such-type")
    message = refusal(mine, cluster.ns, "nojob", {"progress": {"percent": 5}})
    assert sdk_progress.NOT_YET in message and "is not a pod of this Task's Job" in message, message


def test_no_progress_after_the_run_ended(cluster: Cluster) -> None:
    wait_phase(cluster.kube, cluster.ns, "short", "Succeeded", timeout=60)
    pods = pods_of(cluster.kube, cluster.ns, "short")
    assert pods, "the finished Job's pod is kept (no TTL), so its token is still valid"
    handler = cluster.client(cluster.pod_token(cluster.ns, pods[0]))
    message = refusal(handler, cluster.ns, "short", {"progress": {"percent": 5}})
    assert "has ended (phase Succeeded)" in message, message
    message = refusal(handler, cluster.ns, "short", {"result": {"real": False}, "lastFailure": None})
    assert get_task(cluster.kube, cluster.ns, "short")["status"]["result"] == {"real": True}


def test_not_from_another_namespace_even_when_rbac_allows(cluster: Cluster, mine: KubeSync) -> None:
    elsewhere = cluster.namespace(f"{cluster.ns}-b")
    create_task(cluster.kube, elsewhere, "mine", annotations=sim(run_for="600s"))  # same name, other namespace
    cluster.running_pod(elsewhere, "mine")
    # RBAC first lets the first namespace's handler in, so what refuses is the policy.
    cluster.kube.create(core_path("rolebindings", elsewhere, group="rbac.authorization.k8s.io"), {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "cross"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": HANDLER_SA},
        "subjects": [{"kind": "ServiceAccount", "name": HANDLER_SA, "namespace": cluster.ns}]})
    wait_for(lambda: _can_patch(cluster, elsewhere), timeout=30, what="the cross-namespace RoleBinding in effect")
    message = refusal(mine, elsewhere, "mine", {"progress": {"percent": 7}})
    assert f"may not write the status of a Task in namespace {elsewhere}" in message, message
    assert "progress" not in get_task(cluster.kube, elsewhere, "mine")["status"]


def _can_patch(cluster: Cluster, namespace: str) -> bool:
    review = cluster.kube.create("/apis/authorization.k8s.io/v1/subjectaccessreviews", {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
            "user": f"system:serviceaccount:{cluster.ns}:{HANDLER_SA}",
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{cluster.ns}", "system:authenticated"],
            "resourceAttributes": {"namespace": namespace, "verb": "patch", "group": "kubetask.io",
                                   "resource": "tasks", "subresource": "status"}}})
    return bool(review["status"].get("allowed"))


def test_operator_in_a_pod_is_not_a_handler(cluster: Cluster) -> None:
    """The operator's own writes: this session's operator (not a pod) drove every Task above; an
    operator deployed in a pod (the chart) has a pod-bound token too, and is told apart by its
    right to create Jobs."""
    ns, sa = cluster.ns, "in-cluster-operator"
    cluster.kube.create(core_path("serviceaccounts", ns), {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}})
    rbac = "rbac.authorization.k8s.io"
    cluster.kube.create(core_path("roles", ns, group=rbac), {
        "apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": {"name": sa},
        "rules": [{"apiGroups": ["kubetask.io"], "resources": ["tasks/status"], "verbs": ["get", "patch"]},
                  {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]}]})
    cluster.kube.create(core_path("rolebindings", ns, group=rbac), {
        "apiVersion": f"{rbac}/v1", "kind": "RoleBinding", "metadata": {"name": sa},
        "roleRef": {"apiGroup": rbac, "kind": "Role", "name": sa}, "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]})
    cluster.kube.create(core_path("pods", ns), {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": sa}, "spec": {
        "serviceAccountName": sa, "containers": [{"name": "operator", "image": "ghcr.io/kubetask/kubetask:test"}]}})
    pod = wait_for(lambda: cluster.kube.get(core_path("pods", ns, sa)), timeout=30, what="the operator pod")
    operator = cluster.client(cluster.pod_token(ns, pod, sa=sa))
    wait_for(lambda: _operator_wrote(operator, ns), timeout=30, interval=0.5, what="the in-cluster operator's status write")
    assert get_task(cluster.kube, ns, "other")["status"]["progress"]["message"] == "written by the operator"


def _operator_wrote(operator: KubeSync, namespace: str) -> bool:
    try:
        operator.patch(tasks_path(namespace, "other", subresource="status"),
                       {"status": {"progress": {"percent": 1, "message": "written by the operator"}}})
        return True
    except ApiError as error:
        if error.status == 403 and "ValidatingAdmissionPolicy" not in error.message:
            return False  # RBAC: the RoleBinding is not in the authorizer's cache yet
        raise


@pytest.mark.parametrize("name, spec", [
    ("long-" + "n" * 58, {}),  # its Job name is 63 characters: the pod names carry only the first 58
    ("fan", {"items": [{"n": 0}, {"n": 1}], "parallelism": 2}),  # Indexed Job pods: "<job>-<index>-xxxxx"
], ids=["long-name", "fan-out-item"])
def test_progress_lands_whatever_the_pod_naming(cluster: Cluster, name: str, spec: dict[str, Any]) -> None:
    create_task(cluster.kube, cluster.ns, name, annotations=sim(run_for="600s"), **spec)
    pod = cluster.running_pod(cluster.ns, name)
    handler = cluster.client(cluster.pod_token(cluster.ns, pod))
    handler.patch(tasks_path(cluster.ns, name, subresource="status"), {"status": {"progress": {"percent": 3}}})
    assert get_task(cluster.kube, cluster.ns, name)["status"]["progress"]["percent"] == 3


def test_a_task_named_after_another_tasks_job_is_not_its_handler(cluster: Cluster, mine: KubeSync) -> None:
    """The pods of a Task named like Task `mine`'s Job ("mine-<hash>-r0") have names that start
    with mine's Job name and a dash: a prefix check would let them in, the exact base check does not."""
    job = get_task(cluster.kube, cluster.ns, "mine")["status"]["jobName"]
    create_task(cluster.kube, cluster.ns, job, annotations=sim(run_for="600s"))
    pod = cluster.running_pod(cluster.ns, job)
    assert pod["metadata"]["name"].startswith(job + "-")
    lookalike = cluster.client(cluster.pod_token(cluster.ns, pod))
    message = refusal(lookalike, cluster.ns, "mine", {"progress": {"percent": 66}})
    assert "is not a pod of this Task's Job" in message, message


def test_only_the_current_run_of_a_rerun_task(cluster: Cluster) -> None:
    """A failed run's handler can neither wipe its lastFailure nor report progress into the next
    run; the next run's handler can report."""
    create_task(cluster.kube, cluster.ns, "again", annotations=sim(run_for="1s", exit_code=3), retries=0)
    wait_phase(cluster.kube, cluster.ns, "again", "Failed", timeout=60)
    first = cluster.client(cluster.pod_token(cluster.ns, pods_of(cluster.kube, cluster.ns, "again")[0]))
    message = refusal(first, cluster.ns, "again", {"lastFailure": None})
    assert "has ended (phase Failed)" in message, message
    cluster.kube.patch(tasks_path(cluster.ns, "again"), {"metadata": {"annotations": sim(run_for="600s", exit_code=0)},
                                                        "spec": {"rerun": 1}})
    task = wait_phase(cluster.kube, cluster.ns, "again", "Running", timeout=60)
    assert task["status"]["run"] == 1
    message = refusal(first, cluster.ns, "again", {"progress": {"percent": 1}})
    assert "is not a pod of this Task's Job" in message, message
    pod = wait_for(lambda: next((p for p in pods_of(cluster.kube, cluster.ns, "again")
                                 if p["metadata"]["name"].startswith(task["status"]["jobName"] + "-")
                                 and (p.get("status") or {}).get("phase") == "Running"), None), timeout=60, what="run 1's pod")
    second = cluster.client(cluster.pod_token(cluster.ns, pod))
    second.patch(tasks_path(cluster.ns, "again", subresource="status"), {"status": {"progress": {"percent": 10}}})
    assert get_task(cluster.kube, cluster.ns, "again")["status"]["progress"]["percent"] == 10
