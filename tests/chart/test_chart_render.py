"""The Helm chart without a cluster: helm lint, helm template with several value sets, the values
schema, kubeconform -strict on every render, and drift between the chart's copies and their sources."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import expected_rbac as rbac
from chart_helpers import CHART, REPO, VALUE_SETS, chart_tools, find, one, render_text
from chart_helpers import chart_bin, helm, render, schema_dir  # noqa: F401  (fixtures)

Helm = Callable[..., subprocess.CompletedProcess[str]]
Render = Callable[..., list[dict[str, Any]]]
KUBETASK_APIS = ["kubetask.io/v1alpha1/TaskQueue", "kubetask.io/v1alpha1/TaskType", "kubetask.io/v1alpha1/Task"]
RESTRICTED = {
    "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True, "runAsUser": 65532,
    "runAsGroup": 65532, "readOnlyRootFilesystem": True, "seccompProfile": {"type": "RuntimeDefault"},
}


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


# -- lint ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("values", [None, *VALUE_SETS], ids=["default", *[v.stem for v in VALUE_SETS]])
def test_helm_lint_strict(helm: Helm, values: Path | None) -> None:
    args = ["lint", str(CHART), "--strict", *(["-f", str(values)] if values else [])]
    out = helm(*args)
    assert "0 chart(s) failed" in out.stdout, out.stdout


# -- default values -----------------------------------------------------------------------------

def test_default_render(render: Render) -> None:
    docs = render()
    kinds = sorted(d["kind"] for d in docs)
    crds = len(list((CHART / "files" / "crds").glob("*.yaml")))  # one per kind, whatever kinds there are
    assert crds >= 5
    assert kinds == sorted(["CustomResourceDefinition"] * crds + ["ServiceAccount"] * 2 + ["ClusterRole"] * 2 + ["ClusterRoleBinding"] * 2
                           + ["Deployment"] * 2 + ["Service", "TaskQueue", "Role", "RoleBinding"]
                           + ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"] * 2)  # the handler and parameters policies, with the CRDs
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm" and labels["app.kubernetes.io/part-of"] == "kubetask"
        assert len(doc["metadata"]["name"]) <= 63

    operator = one(docs, "Deployment", "kubetask-operator")
    assert operator["spec"]["replicas"] == 2  # one leader, one standby (leader election)
    assert operator["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pod = operator["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "kubetask-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    assert container["image"] == "ghcr.io/kubetask/kubetask:0.1.0"
    assert container["command"] == ["kubetask-operator"]
    assert container["securityContext"] == RESTRICTED
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": 8080, "health": 8081}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    env = env_of(container)
    assert "KUBETASK_NAMESPACES" not in env, "an empty watchNamespaces means the whole cluster"
    assert env["KUBETASK_METRICS_PORT"] == "8080" and env["KUBETASK_HEALTH_PORT"] == "8081" and env["KUBETASK_DEFAULT_QUEUE"] == "default"
    assert env["KUBETASK_LEADER_ELECTION"] == "true" and env["KUBETASK_LEADER_LEASE_NAME"] == "kubetask-operator"
    assert (env["KUBETASK_LEADER_LEASE_SECONDS"], env["KUBETASK_LEADER_RENEW_DEADLINE_SECONDS"], env["KUBETASK_LEADER_RETRY_SECONDS"]) == ("15", "10", "2")
    [lease_ns] = [e for e in container["env"] if e["name"] == "KUBETASK_LEADER_LEASE_NAMESPACE"]
    assert lease_ns["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}

    gateway = one(docs, "Deployment", "kubetask-gateway")
    gpod = gateway["spec"]["template"]["spec"]
    [gcontainer] = gpod["containers"]
    assert gcontainer["command"] == ["kubetask-gateway"]
    assert gcontainer["securityContext"] == RESTRICTED
    assert env_of(gcontainer)["KUBETASK_GATEWAY_HOST"] == "0.0.0.0" and env_of(gcontainer)["KUBETASK_GATEWAY_PORT"] == "8000"
    assert gcontainer["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert gcontainer["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert gcontainer["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    service = one(docs, "Service", "kubetask-gateway")
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"] == gateway["spec"]["selector"]["matchLabels"] == gateway["spec"]["template"]["metadata"]["labels"]

    for crd in find(docs, "CustomResourceDefinition"):
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def leader_role_is_in_the_release_namespace(docs: list[dict[str, Any]]) -> None:
    role = one(docs, "Role", "kubetask-operator-leader", "kubetask")
    assert rbac.rules_of([role]) == rbac.OPERATOR_LEADER_ELECTION
    binding = one(docs, "RoleBinding", "kubetask-operator-leader", "kubetask")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kubetask-operator-leader"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kubetask-operator", "namespace": "kubetask"}]


def test_cluster_wide_rbac_is_exactly_what_is_used(render: Render) -> None:
    docs = render()
    # The only Role: the leader Lease's, in the release namespace.
    assert [r["metadata"]["name"] for r in find(docs, "Role") + find(docs, "RoleBinding")] == ["kubetask-operator-leader"] * 2
    leader_role_is_in_the_release_namespace(docs)
    assert rbac.rules_of([one(docs, "ClusterRole", "kubetask-operator")]) == rbac.OPERATOR_NAMESPACED | rbac.OPERATOR_CLUSTER
    assert rbac.rules_of([one(docs, "ClusterRole", "kubetask-gateway")]) == rbac.GATEWAY_NAMESPACED | rbac.GATEWAY_CLUSTER
    for who in ("operator", "gateway"):
        binding = one(docs, "ClusterRoleBinding", f"kubetask-{who}")
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"kubetask-{who}"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"kubetask-{who}", "namespace": "kubetask"}]


def test_custom_resources_are_hooks_only_while_the_crds_are_unknown(render: Render) -> None:
    """Helm maps every kind before creating anything, so a TaskQueue cannot sit in the same manifest
    as a CRD the cluster lacks: it is a post-install hook then, an ordinary object afterwards."""
    values = {"exampleTaskTypes": {"enabled": True}}
    first = render(sets=values)
    for doc in find(first, "TaskQueue") + find(first, "TaskType"):
        annotations = doc["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
        assert annotations["meta.helm.sh/release-name"] == "kubetask"  # so the next upgrade adopts it
        assert annotations["meta.helm.sh/release-namespace"] == "kubetask"
    later = render(sets=values, api_versions=KUBETASK_APIS)
    for doc in find(later, "TaskQueue") + find(later, "TaskType"):
        assert not doc["metadata"].get("annotations"), doc["metadata"]
    assert len(find(later, "TaskType")) == 5


def test_example_tasktypes_use_the_registry_the_images_were_pushed_to(render: Render) -> None:
    """`make images REGISTRY=... PUSH=1`, then exampleTaskTypes.imageRegistry: nothing else changes."""
    plain = {d["metadata"]["name"]: d for d in find(render(sets={"exampleTaskTypes": {"enabled": True}}), "TaskType")}
    moved = {d["metadata"]["name"]: d for d in find(render(sets={"exampleTaskTypes": {
        "enabled": True, "imageRegistry": "registry.example.com/team/"}}), "TaskType")}
    assert plain.keys() == moved.keys() and len(moved) == 5
    for name, tasktype in moved.items():
        before = plain[name]["spec"]["image"]
        assert before.startswith("ghcr.io/kubetask/handler-")
        assert tasktype["spec"]["image"] == before.replace("ghcr.io/kubetask/", "registry.example.com/team/")
        assert {**tasktype["spec"], "image": before} == plain[name]["spec"]


def test_example_tasktypes_go_to_the_nodes_named(render: Render) -> None:
    """exampleTaskTypes.nodeSelector/tolerations (the nodes that have the images): added to each
    TaskType's own, which gpu-matmul keeps."""
    toleration = {"key": "kubetask.io/real-node", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    docs = {d["metadata"]["name"]: d["spec"] for d in find(render(sets={"exampleTaskTypes": {
        "enabled": True, "nodeSelector": {"kubetask.io/node-kind": "real"}, "tolerations": [toleration]}}), "TaskType")}
    assert len(docs) == 5
    for name, spec in docs.items():
        assert spec["nodeSelector"]["kubetask.io/node-kind"] == "real", name
        assert spec["tolerations"][-1] == toleration, name
    assert docs["gpu-matmul"]["nodeSelector"] == {"nvidia.com/gpu.present": "true", "kubetask.io/node-kind": "real"}
    assert docs["gpu-matmul"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert "nodeSelector" not in find(render(sets={"exampleTaskTypes": {"enabled": True}}), "TaskType", "echo")[0]["spec"]


# -- other value sets ---------------------------------------------------------------------------

def test_watch_namespaces(render: Render) -> None:
    docs = render(values=[REPO / "tests/chart/values/namespaced.yaml"], api_versions=KUBETASK_APIS)
    watched = ["team-a", "team-b"]
    assert rbac.rules_of([one(docs, "ClusterRole", "kubetask-operator")]) == rbac.OPERATOR_CLUSTER
    assert rbac.rules_of([one(docs, "ClusterRole", "kubetask-gateway")]) == rbac.GATEWAY_CLUSTER
    for ns in watched:
        assert rbac.rules_of([one(docs, "Role", "kubetask-operator", ns)]) == rbac.OPERATOR_NAMESPACED
        assert rbac.rules_of([one(docs, "Role", "kubetask-gateway", ns)]) == rbac.GATEWAY_NAMESPACED
        assert rbac.rules_of([one(docs, "Role", "kubetask-handler", ns)]) == rbac.HANDLER_NAMESPACED
        assert one(docs, "RoleBinding", "kubetask-operator", ns)["subjects"] == [
            {"kind": "ServiceAccount", "name": "kubetask-operator", "namespace": "kubetask"}]
        assert one(docs, "RoleBinding", "kubetask-handler", ns)["subjects"] == [
            {"kind": "ServiceAccount", "name": "kubetask-handler", "namespace": ns}]
        one(docs, "ServiceAccount", "kubetask-handler", ns)
        queue = one(docs, "TaskQueue", "default", ns)
        assert queue["spec"] == {"maxRunning": 4, "maxGpus": 2, "paused": False}
        assert sorted(t["metadata"]["name"] for t in find(docs, "TaskType", namespace=ns)) == [
            "cpu-burn", "echo", "flaky", "gpu-matmul", "progress"]
    assert {d["metadata"].get("namespace") for d in find(docs, "Role") + find(docs, "RoleBinding")} == {*watched, "kubetask"}
    leader_role_is_in_the_release_namespace(docs)  # the Lease lives with the operator, watched or not
    operator = env_of(one(docs, "Deployment", "kubetask-operator")["spec"]["template"]["spec"]["containers"][0])
    assert json.loads(operator["KUBETASK_NAMESPACES"]) == watched
    gateway = env_of(one(docs, "Deployment", "kubetask-gateway")["spec"]["template"]["spec"]["containers"][0])
    assert json.loads(gateway["KUBETASK_GATEWAY_NAMESPACES"]) == watched


def test_leader_election_off_is_one_replica_recreated(render: Render, helm: Helm) -> None:
    docs = render(sets={"operator": {"leaderElection": {"enabled": False}, "replicas": 1}})
    operator = one(docs, "Deployment", "kubetask-operator")
    assert operator["spec"]["replicas"] == 1 and operator["spec"]["strategy"] == {"type": "Recreate"}
    env = env_of(operator["spec"]["template"]["spec"]["containers"][0])
    assert env["KUBETASK_LEADER_ELECTION"] == "false" and "KUBETASK_LEADER_LEASE_NAME" not in env
    assert not find(docs, "Role") and not find(docs, "RoleBinding")
    refused = helm("template", "kubetask", str(CHART), "--set", "operator.leaderElection.enabled=false", check=False)
    assert refused.returncode != 0 and "operator.replicas > 1 needs operator.leaderElection.enabled" in refused.stderr
    refused = helm("template", "kubetask", str(CHART), "--set", "operator.leaderElection.renewDeadlineSeconds=15", check=False)
    assert refused.returncode != 0 and "retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds" in refused.stderr


def test_lease_name_follows_the_release(render: Render) -> None:
    """Two releases in one namespace (different watchNamespaces) must not share a Lease."""
    docs = render(release="team-b", sets={"crds": {"enabled": False}})
    env = env_of(one(docs, "Deployment", "team-b-kubetask-operator")["spec"]["template"]["spec"]["containers"][0])
    assert env["KUBETASK_LEADER_LEASE_NAME"] == "team-b-kubetask-operator"


def test_crds_disabled_and_gateway_off(render: Render) -> None:
    docs = render(values=[REPO / "tests/chart/values/no-crds.yaml"])
    assert not find(docs, "CustomResourceDefinition")
    assert not find(docs, "ValidatingAdmissionPolicy"), "the handler policy belongs to the release that owns the CRDs"
    assert not [d for d in docs if "gateway" in d["metadata"]["name"]]
    assert not find(docs, "TaskQueue")
    one(docs, "Deployment", "kubetask-operator")


def test_crds_not_kept(render: Render) -> None:
    for crd in find(render(sets={"crds": {"keep": False}}), "CustomResourceDefinition"):
        assert "helm.sh/resource-policy" not in (crd["metadata"].get("annotations") or {})


POLICY_GATES = {"kubetask.io_handler-progress-only.yaml": "handlerPolicy", "kubetask.io_task-parameters-size.yaml": "parametersPolicy"}


def test_every_shipped_policy_has_a_gate() -> None:
    """The template renders only the files it names: a new file in policies/ needs its value."""
    assert sorted(p.name for p in (REPO / "policies").glob("*.yaml")) == sorted(POLICY_GATES)


@pytest.mark.parametrize("file,gate", sorted(POLICY_GATES.items()))
def test_each_policy_renders_behind_its_own_value(render: Render, file: str, gate: str) -> None:
    sources = [d for d in yaml.safe_load_all((REPO / "policies" / file).read_text()) if d]
    off = render(sets={"crds": {gate: False}})
    for source in sources:
        assert one(render(), source["kind"], source["metadata"]["name"])["spec"] == source["spec"]
        assert not [d for d in find(off, source["kind"]) if d["metadata"]["name"] == source["metadata"]["name"]]
    others = [f for f in POLICY_GATES if f != file]
    for other in others:  # the other policies stay
        for source in [d for d in yaml.safe_load_all((REPO / "policies" / other).read_text()) if d]:
            assert one(off, source["kind"], source["metadata"]["name"])


def test_rendered_handler_policy_is_the_shipped_one(render: Render) -> None:
    """policies/ as `make up` applies it; labels and the keep annotation (with crds.keep) added."""
    sources = [d for d in yaml.safe_load_all((REPO / "policies" / "kubetask.io_handler-progress-only.yaml").read_text()) if d]
    docs = render()
    for source in sources:
        got = one(docs, source["kind"], source["metadata"]["name"])
        assert got["spec"] == source["spec"], f"{source['kind']}: spec changed in rendering"
        assert got["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert source["metadata"]["labels"].items() <= got["metadata"]["labels"].items()
    for doc in find(render(sets={"crds": {"keep": False}}), "ValidatingAdmissionPolicy"):
        assert "helm.sh/resource-policy" not in (doc["metadata"].get("annotations") or {})
    off = render(sets={"crds": {"handlerPolicy": False, "parametersPolicy": False}})
    assert not find(off, "ValidatingAdmissionPolicy") and not find(off, "ValidatingAdmissionPolicyBinding")
    assert find(off, "CustomResourceDefinition")


def test_rendered_crds_are_the_generated_ones(render: Render) -> None:
    """The templates add labels and the keep annotation; everything else is crds/*.yaml."""
    rendered = {d["metadata"]["name"]: d for d in find(render(), "CustomResourceDefinition")}
    for path in sorted((REPO / "crds").glob("*.yaml")):
        source = yaml.safe_load(path.read_text())
        got = rendered[source["metadata"]["name"]]
        assert got["spec"] == source["spec"], f"{path.name}: spec changed in rendering"
        assert source["metadata"]["labels"].items() <= got["metadata"]["labels"].items()


def test_monitoring_and_options(render: Render) -> None:
    from kubetask.operator import metrics

    docs = render(values=[REPO / "tests/chart/values/monitoring.yaml"])
    container = one(docs, "Deployment", "kubetask-operator")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/kubetask/kubetask@sha256:" + "0" * 64
    service = one(docs, "Service", "kubetask-operator-metrics")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    monitor = one(docs, "ServiceMonitor", "kubetask-operator")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics" and monitor["spec"]["endpoints"][0]["honorLabels"] is True
    assert one(docs, "ServiceMonitor", "kubetask-gateway")["spec"]["endpoints"][0]["port"] == "http"

    rules = one(docs, "PrometheusRule")["spec"]["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == {"KubetaskHighFailureRate", "KubetaskQueueBacklog", "KubetaskTasksRunningLong", "KubetaskReconcileErrors",
                                           "KubetaskDeadLetterGrowing"}
    exported = {m._name for m in (metrics.FAILURES, metrics.RUN_SECONDS, metrics.QUEUE_PENDING, metrics.QUEUE_RUNNING, metrics.RECONCILE_ERRORS,
                                  metrics.QUEUE_DEAD_LETTER)}
    used = set(re.findall(r"kubetask_[a-z_]+", " ".join(r["expr"] for r in rules)))
    # Counters are exposed as <name>_total, histograms as <name>_count/_bucket/_sum.
    assert {re.sub(r"_(total|count)$", "", u) for u in used} <= {re.sub(r"_total$", "", e) for e in exported}, used
    for rule in rules:
        assert rule["labels"]["severity"] == "warning" and rule["annotations"]["summary"] and rule["annotations"]["description"]
    dead = next(r for r in rules if r["alert"] == "KubetaskDeadLetterGrowing")
    assert dead["expr"].strip() == "max by (namespace, queue) (delta(kubetask_queue_dead_letter[30m])) >= 1" and dead["for"] == "10m"
    assert "{{ $labels.queue }}" in dead["annotations"]["summary"]

    ingress = one(docs, "Ingress", "kubetask-gateway")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"] == {"name": "kubetask-gateway", "port": {"name": "http"}}
    assert ingress["spec"]["tls"] == [{"secretName": "kubetask-tls", "hosts": ["kubetask.example.com"]}]
    gateway = env_of(one(docs, "Deployment", "kubetask-gateway")["spec"]["template"]["spec"]["containers"][0])
    assert gateway["KUBETASK_GATEWAY_ROOT_PATH"] == "/kubetask" and json.loads(gateway["KUBETASK_GATEWAY_TOKEN_AUDIENCES"]) == ["kubetask"]
    one(docs, "ConfigMap", "kubetask-argocd-health")


def test_dead_letter_alert_thresholds_are_values(render: Render, helm: Helm) -> None:
    docs = render(values=[REPO / "tests/chart/values/monitoring.yaml"],
                  sets={"metrics.prometheusRule.deadLetterWindow": "2h", "metrics.prometheusRule.deadLetterGrowth": 5})
    rules = one(docs, "PrometheusRule")["spec"]["groups"][0]["rules"]
    dead = next(r for r in rules if r["alert"] == "KubetaskDeadLetterGrowing")
    assert dead["expr"].strip() == "max by (namespace, queue) (delta(kubetask_queue_dead_letter[2h])) >= 5"
    assert "in the last 2h" in dead["annotations"]["description"]
    refused = helm("template", "kubetask", str(CHART), "--set", "metrics.prometheusRule.deadLetterGrowth=0", check=False)
    assert refused.returncode != 0 and "deadLetterGrowth" in refused.stderr, refused.stderr


def test_long_release_names_fit(render: Render) -> None:
    docs = render(release="a-release-name-of-the-longest-length-helm-allows-53c", values=[REPO / "tests/chart/values/monitoring.yaml"])
    for doc in docs:
        assert len(doc["metadata"]["name"]) <= 63, doc["metadata"]["name"]


# -- the values schema --------------------------------------------------------------------------

@pytest.mark.parametrize(("setting", "message"), [
    ("operator.replica=2", "additional properties 'replica' not allowed"),
    ("gateway.ingress.enable=true", "additional properties 'enable' not allowed"),
    ("crd.enabled=false", "additional properties 'crd' not allowed"),
    ("defaultQueue.maxRunning=lots", "got string, want integer"),
    ("operator.logFormat=xml", "value must be one of 'json', 'text'"),
    ("watchNamespaces={Team_A}", "does not match pattern"),
    ("exampleTaskTypes.names={resize}", "value must be one of"),
])
def test_schema_rejects_typos(helm: Helm, setting: str, message: str) -> None:
    done = helm("template", "kubetask", str(CHART), "--set", setting, check=False)
    assert done.returncode != 0, f"--set {setting} was accepted"
    assert "values don't meet the specifications of the schema" in done.stderr and message in done.stderr, done.stderr


def _schema_walk(schema: dict[str, Any], path: str = "") -> dict[str, dict[str, Any]]:
    found = {}
    for name, sub in schema.get("properties", {}).items():
        found[f"{path}{name}"] = sub
        found.update(_schema_walk(sub, f"{path}{name}."))
    return found


def _values_walk(values: dict[str, Any], path: str = "") -> list[str]:
    found = []
    for name, value in values.items():
        found.append(f"{path}{name}")
        if isinstance(value, dict) and value and name not in ("resources", "podSecurityContext", "securityContext", "livenessProbe",
                                                              "readinessProbe"):
            found += _values_walk(value, f"{path}{name}.")
    return found


def test_schema_is_closed_and_matches_values() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    properties = _schema_walk(schema)

    def closed(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, f"{where} must set additionalProperties: false"
            for key, value in node.items():
                closed(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                closed(value, f"{where}[{i}]")

    closed(schema, "$")
    for key in _values_walk(values):
        assert key in properties, f"values.yaml has {key} but values.schema.json does not"
        assert properties[key].get("description"), f"values.schema.json: {key} has no description"
    top = set(values) | {"global"}
    assert set(schema["properties"]) == top


def test_every_value_is_documented() -> None:
    """Each value (every key the schema test walks) has a `# --` comment right above it, or is a
    section whose own keys have one."""
    text = (CHART / "values.yaml").read_text()
    lines = text.splitlines()
    wanted = set(_values_walk(yaml.safe_load(text)))
    stack: list[tuple[int, str]] = []
    undocumented = []
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z]\w*):(.*)$", line)
        if not match:
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3).strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [key])
        stack.append((indent, key))
        if path not in wanted:
            continue
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("#") and not lines[j].strip().startswith("# --"):
            j -= 1
        documented = j >= 0 and lines[j].strip().startswith("# --")
        section = rest == "" and i + 1 < len(lines) and not lines[i + 1].strip().startswith("-")
        if not documented and not section:
            undocumented.append(f"{path} (line {i + 1})")
    assert not undocumented, "values without a `# --` comment: " + ", ".join(undocumented)


# -- kubeconform --------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["default", "crds-known", *[v.stem for v in VALUE_SETS]])
def test_kubeconform_strict(helm: Helm, chart_bin: Path, schema_dir: Path, tmp_path: Path, case: str) -> None:
    values = [v for v in VALUE_SETS if v.stem == case]
    text = render_text(helm, values=values, api_versions=KUBETASK_APIS if case == "crds-known" else ())
    (tmp_path / "render.yaml").write_text(text)
    done = subprocess.run([str(chart_bin / "kubeconform"), "-strict", "-summary", "-output", "json",
                           "-schema-location", f"{schema_dir}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json", str(tmp_path / "render.yaml")],
                          capture_output=True, text=True)
    report = json.loads(done.stdout)
    assert done.returncode == 0, json.dumps(report["resources"], indent=1)[:4000]
    summary = report["summary"]
    assert summary["invalid"] == summary["errors"] == summary["skipped"] == 0 and summary["valid"] == text.count("\nkind: ") + text.startswith("kind: ")


def test_kubeconform_catches_what_the_api_server_would_reject(helm: Helm, chart_bin: Path, schema_dir: Path, tmp_path: Path) -> None:
    """The generated schemas are strict and typed, for built-in kinds and CRDs alike."""
    text = render_text(helm, values=[VALUE_SETS[0].parent / "monitoring.yaml"], sets={"exampleTaskTypes": {"enabled": True}},
                       api_versions=KUBETASK_APIS)
    broken = (text.replace("readOnlyRootFilesystem: true", "readOnlyRootFilesytem: true", 1)
                  .replace("honorLabels: true", "honorLabel: true", 1)
                  .replace("maxRunning: 10", "maxRunning: ten", 1)
                  .replace("gpuResourceName: nvidia.com/gpu", "gpuResourceNam: nvidia.com/gpu", 1))
    assert broken.count("readOnlyRootFilesytem") == broken.count("gpuResourceNam: ") == 1
    (tmp_path / "broken.yaml").write_text(broken)
    done = subprocess.run([str(chart_bin / "kubeconform"), "-strict", "-summary", "-schema-location",
                           f"{schema_dir}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json", str(tmp_path / "broken.yaml")],
                          capture_output=True, text=True)
    assert done.returncode == 1
    for needle in ("Deployment kubetask-gateway is invalid", "ServiceMonitor kubetask-operator is invalid",
                   "TaskQueue default is invalid", "TaskType gpu-matmul is invalid"):
        assert needle in done.stdout, done.stdout
    assert "Invalid: 4" in done.stdout


# -- drift --------------------------------------------------------------------------------------

def test_chart_copies_match_their_sources() -> None:
    """files/crds = crds/ (generated by `make generate`), files/tasktypes = the examples' tasktype.yaml."""
    chart_tools("check-sync")
    for source in sorted((REPO / "crds").glob("*.yaml")):
        assert (CHART / "files" / "crds" / source.name).read_bytes() == source.read_bytes(), f"run hack/chart-tools.sh sync ({source.name})"
    for source in sorted((REPO / "policies").glob("*.yaml")):
        assert (CHART / "files" / "policies" / source.name).read_bytes() == source.read_bytes(), f"run hack/chart-tools.sh sync ({source.name})"
    examples = sorted((REPO / "handlers-images" / "examples").glob("*/tasktype.yaml"))
    assert examples
    for source in examples:
        copy = CHART / "files" / "tasktypes" / f"{source.parent.name}.yaml"
        assert copy.read_bytes() == source.read_bytes(), f"run hack/chart-tools.sh sync ({source})"
    assert len(list((CHART / "files" / "tasktypes").glob("*.yaml"))) == len(examples)
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert sorted(schema["properties"]["exampleTaskTypes"]["properties"]["names"]["items"]["enum"]) == sorted(e.parent.name for e in examples)


def test_check_sync_detects_drift(tmp_path: Path) -> None:
    """The drift check itself fails when a copy differs (run on a scratch copy of the repo layout)."""
    for rel in ("hack/chart-tools.sh", "crds", "policies", "charts/kubetask/files", "handlers-images/examples"):
        src, dst = REPO / rel, tmp_path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
    (tmp_path / "crds" / "kubetask.io_tasks.yaml").write_text((REPO / "crds" / "kubetask.io_tasks.yaml").read_text() + "# changed\n")
    done = subprocess.run(["bash", str(tmp_path / "hack" / "chart-tools.sh"), "check-sync"], capture_output=True, text=True)
    assert done.returncode == 1 and "drift: crds/kubetask.io_tasks.yaml" in done.stderr, done.stderr


def test_docs_list_every_value() -> None:
    docs = (REPO / "docs" / "helm.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = [key for key in _values_walk(values)
               if not isinstance(_lookup(values, key), dict) or not _lookup(values, key) or key.endswith(("Probe", "resources", "ecurityContext"))
               if f"`{key}`" not in docs]
    assert not missing, f"docs/helm.md does not list: {missing}"


def _lookup(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        node = node[part]
    return node
