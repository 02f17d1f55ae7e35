"""The kubeconfigs users have, against the local control plane: the operator and the gateway start
and work on a two-file KUBECONFIG whose user is an `exec` credential plugin (the way EKS, GKE, AKS
and OIDC logins work), with a context chosen by name over a current-context that points elsewhere;
and a kubeconfig with inline key material and insecure-skip-tls-verify keeps its client certificate
and leaves nothing on disk.

The plugin is a small script that prints an ExecCredential with a real ServiceAccount token
(TokenRequest) and counts its runs. Neither kubeconfig holds the admin's credentials, so the work
done proves the plugin's identity did it. The session operator is stopped meanwhile: it would
admit the Tasks too.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from harness import OperatorProcess, wait_for
from kt import apply_queue, apply_tasktype, create_task, sim, wait_phase
from kubetask.kube import ApiError, Connection, Kube, KubeSync, core_path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
from gateway_harness import GatewayProcess  # noqa: E402

pytestmark = pytest.mark.integration
ACCOUNT = "exec-login"
CONTEXT = "via-exec"


@pytest.fixture
def exec_kubeconfig(kube: KubeSync, kubeconfig: Path, namespace: str, tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """(KUBECONFIG list, the plugin's run counter, the token it prints): a ServiceAccount bound to
    cluster-admin (what the operator's ClusterRole grants is tested with the chart; here the
    subject is the login), its token behind an exec plugin, split over two files."""
    kube.create(core_path("serviceaccounts", namespace), {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": ACCOUNT}})
    binding = f"kt-exec-{uuid.uuid4().hex[:8]}"
    kube.create(core_path("clusterrolebindings", group="rbac.authorization.k8s.io"), {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": binding},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": namespace}]})
    token = str(kube.create(core_path("serviceaccounts", namespace, ACCOUNT) + "/token", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})["status"]["token"])
    (tmp_path / "token").write_text(token)
    runs = tmp_path / "runs"
    plugin = tmp_path / "credential-plugin.py"
    plugin.write_text(f"""import json, os
with open({str(runs)!r}, "a") as runs:
    runs.write("run\\n")
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
print(json.dumps({{"apiVersion": info["apiVersion"], "kind": "ExecCredential",
                  "status": {{"token": open({str(tmp_path / 'token')!r}).read().strip()}}}}))
""")
    admin = yaml.safe_load(kubeconfig.read_text())
    real = admin["clusters"][0]["cluster"]
    clusters_file = tmp_path / "clusters.yaml"
    clusters_file.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "decoy",
        "clusters": [{"name": "local", "cluster": {"server": real["server"], "certificate-authority": real["certificate-authority"]}},
                     {"name": "nowhere", "cluster": {"server": "https://127.0.0.1:9"}}],
        "contexts": [{"name": "decoy", "context": {"cluster": "nowhere", "user": "plugin"}},
                     {"name": CONTEXT, "context": {"cluster": "local", "user": "plugin"}}]}))
    users_file = tmp_path / "users.yaml"
    users_file.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "users": [{"name": "plugin", "user": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable, "args": [str(plugin)], "interactiveMode": "Never"}}}]}))
    try:
        yield f"{clusters_file}{os.pathsep}{users_file}", runs, token
    finally:
        try:
            kube.delete(core_path("clusterrolebindings", name=binding, group="rbac.authorization.k8s.io"))
        except ApiError as error:
            if error.status != 404:
                raise


def test_operator_and_gateway_run_on_an_exec_plugin_from_a_two_file_kubeconfig_with_a_named_context(
        kube: KubeSync, namespace: str, exec_kubeconfig: tuple[str, Path, str], quiet: None, tmp_path: Path) -> None:
    listed, runs, token = exec_kubeconfig
    apply_tasktype(kube, namespace)
    apply_queue(kube, namespace)
    operator = OperatorProcess(Path(listed), tmp_path, extra_env={
        "KUBETASK_KUBE_CONTEXT": CONTEXT, "KUBETASK_NAMESPACES": f'["{namespace}"]',
        "KUBETASK_LEADER_LEASE_NAME": f"kt-exec-{uuid.uuid4().hex[:8]}", "KUBETASK_LEADER_LEASE_NAMESPACE": namespace})
    gateway = GatewayProcess(Path(listed), tmp_path, "exec-gateway", KUBETASK_GATEWAY_KUBE_CONTEXT=CONTEXT,
                             KUBETASK_GATEWAY_NAMESPACES=f'["{namespace}"]')
    operator.start()
    try:
        create_task(kube, namespace, "via-plugin", annotations=sim(run_for="1s", message='{"ok": true}'))
        task = wait_phase(kube, namespace, "via-plugin", "Succeeded", timeout=60)
        assert task["status"]["result"] == {"ok": True}
        gateway.start()  # /readyz: its caches listed and watch through the plugin's identity
        try:
            answer = httpx.get(f"{gateway.url}/api/v1/namespaces/{namespace}/tasks/via-plugin",
                               headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert answer.status_code == 200, answer.text
            assert answer.json()["phase"] == "Succeeded"
        finally:
            gateway.stop()
    finally:
        operator.stop()
    # The leader elector's client, the controller's, and Kopf's login each resolved it; the gateway too.
    assert len(runs.read_text().splitlines()) >= 4


def test_inline_material_with_insecure_skip_tls_verify_keeps_the_client_certificate_and_no_files(
        kubeconfig: Path, tmp_path: Path) -> None:
    admin = yaml.safe_load(kubeconfig.read_text())
    cluster, user = admin["clusters"][0]["cluster"], admin["users"][0]["user"]

    def inline(path: str) -> str:
        return base64.b64encode(Path(path).read_bytes()).decode()

    path = tmp_path / "inline.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": cluster["server"], "insecure-skip-tls-verify": True}}],
        "users": [{"name": "admin", "user": {"client-certificate-data": inline(user["client-certificate"]),
                                             "client-key-data": inline(user["client-key"])}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "admin"}}]}))

    def leftovers() -> set[str]:
        return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith("kubetask-")}

    before = leftovers()

    async def as_admin() -> dict[str, Any]:
        kube = Kube(await Connection.resolve(path))
        try:
            # Anonymous requests may not list namespaces: an answer proves the certificate was sent.
            return await kube.get(core_path("namespaces"))
        finally:
            await kube.close()

    listed = asyncio.run(as_admin())
    assert any(item["metadata"]["name"] == "kube-system" for item in listed["items"])
    assert leftovers() == before
    sync = KubeSync(Connection.load(path))
    assert sync.get(core_path("namespaces", name="default"))["metadata"]["name"] == "default"
    sync.close()
    wait_for(lambda: leftovers() == before, timeout=5, what="no key material left in the temp directory")
