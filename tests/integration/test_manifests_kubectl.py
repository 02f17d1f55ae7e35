"""Every manifest the project ships, applied with the real kubectl from the files a user applies.

kubectl reads YAML as YAML 1.1 (sigs.k8s.io/yaml): a bare `n`, `y`, `yes`, `no`, `on` or `off` is a
boolean, `0755` an octal number. PyYAML, which the other tests use, reads some of these differently
(a bare `n` stays a string), so a manifest could pass every test and still break when applied: the
gpu-matmul example's parameter `n` was stored as `false`. So here nothing is loaded with PyYAML
and sent by the test itself: kubectl applies the file (or the docs snippet, or `helm template`'s
output), and what the API server stored (or, for a server-side dry run, would store) is compared
with the file as read by the YAML 1.2 core schema, which is what a reader of the file sees.

What is applied for real and what as `--dry-run=server`: TaskTypes, TaskQueues and RBAC are applied
and read back with `kubectl get`; Tasks and TaskSchedules would start work if an operator ran, and
the chart's Deployments and cluster-scoped objects (CRDs, ClusterRoles) would change the shared test
cluster, so those are server-side dry runs, which still go through defaulting, pruning, schema and
CEL validation and return the object as it would be stored.

Docs snippets: every fenced ```yaml block of README.md, handlers-images/README.md and docs/*.md whose
documents are all Kubernetes objects (a mapping with apiVersion, kind and metadata.name). Anything
else is a fragment meant to be merged into something (Helm values, a `spec:` excerpt, a list of
names) and is only checked for YAML 1.1 traps. Objects of APIs the local control plane does not
serve (Flux's Kustomization and HelmRelease) cannot be applied here: they are listed in UNSERVED and
skipped, and a snippet showing any other kind the cluster does not serve fails the test.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chart"))  # chart_helpers
from chart_helpers import render_text  # noqa: E402
from chart_helpers import chart_bin, helm  # noqa: E402,F401  (fixtures)
from harness import wait_for  # noqa: E402
from kubetask.kube import ApiError, KubeSync, core_path  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "handlers-images" / "examples").glob("*/*.yaml")) + sorted((REPO / "handlers-images" / "rbac").glob("*.yaml"))
DOCS = [REPO / "README.md", REPO / "handlers-images" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Applied for real and read back; every other kind is a server-side dry run (see the module docstring).
REAL_KINDS = {"TaskType", "TaskQueue", "ServiceAccount", "Role", "RoleBinding", "Secret", "TaskWebhook", "ConfigMap"}
# Kinds a docs page shows for tools the local control plane does not have (Flux).
UNSERVED = {("kustomize.toolkit.fluxcd.io/v1", "Kustomization"), ("helm.toolkit.fluxcd.io/v2", "HelmRelease")}
# The chart's value sets exercised here: the defaults, and everything optional the cluster can serve
# (the monitoring objects need prometheus-operator's CRDs, which it lacks).
CHART_SETS = {"defaults": {}, "optional": {"exampleTaskTypes.enabled": True, "handlerRbac.enabled": True,
                                          "gitops.argocd.healthCheck": True}}


# -- YAML 1.1 (kubectl) versus YAML 1.2 (what the file says) ----------------------------------------

class Yaml12Loader(yaml.SafeLoader):
    """PyYAML with the YAML 1.2 core schema's booleans and numbers: only true/false are booleans; no
    sexagesimal, no 0-prefixed octal (0o17 is octal), no underscores in numbers."""


def _int12(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    return int(text, 0) if text.lower().lstrip("+-").startswith(("0o", "0x")) else int(text)


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789"))
Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+.0123456789"))
Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _int12)

# Plain scalars YAML 1.1 (kubectl) reads differently from YAML 1.2: booleans beyond true/false,
# sexagesimal and 0-prefixed octal numbers, numbers with underscores.
YAML11_TRAP = re.compile(r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF"
                         r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?"
                         r"|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)_[0-9_]*(?:\.[0-9_]*)?)$")


def yaml11_traps(text: str) -> list[str]:
    """Where a plain (unquoted) scalar means something else to kubectl than to a YAML 1.2 reader."""
    found = []

    def walk(node: yaml.Node) -> None:
        if isinstance(node, yaml.ScalarNode):
            if node.style is None and YAML11_TRAP.match(node.value):
                found.append(f"line {node.start_mark.line + 1}: {node.value!r} (quote it)")
        elif isinstance(node, yaml.SequenceNode):
            for child in node.value:
                walk(child)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(key)
                walk(value)

    for document in yaml.compose_all(text, Loader=yaml.SafeLoader):
        if document is not None:
            walk(document)
    return found


# -- what the project ships ---------------------------------------------------------------------

@dataclass(frozen=True)
class Snippet:
    where: str  # file:line
    text: str


def docs_snippets() -> Iterator[Snippet]:
    for page in DOCS:
        text = page.read_text()
        for match in re.finditer(r"^( *)```ya?ml\n(.*?)^\1```", text, re.M | re.S):
            indent = len(match.group(1))  # a block inside a list item is indented as a whole
            body = "\n".join(line[indent:] for line in match.group(2).splitlines()) + "\n"
            yield Snippet(f"{page.relative_to(REPO)}:{text[:match.start()].count(chr(10)) + 1}", body)


def is_object(doc: Any) -> bool:
    return isinstance(doc, dict) and {"apiVersion", "kind"} <= doc.keys() and isinstance(doc.get("metadata"), dict) \
        and "name" in doc["metadata"]


def objects(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.load_all(text, Loader=Yaml12Loader) if d is not None]


def object_snippets() -> list[Snippet]:
    return [s for s in docs_snippets() if (docs := objects(s.text)) and all(is_object(d) for d in docs)]


# -- kubectl ----------------------------------------------------------------------------------------

def kubectl(bin_dir: Path, kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run([str(bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig), *args], input=stdin,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"kubectl {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


def items(output: str) -> list[dict[str, Any]]:
    data = json.loads(output)
    return list(data["items"]) if data.get("kind") == "List" else [data]


def contained(written: Any, stored: Any, path: str = "") -> list[str]:
    """Where the stored object differs from what the file wrote (the server may add fields: defaults,
    metadata; it must not change or drop one). Numbers compare by value (1 == 1.0 in JSON)."""
    if isinstance(written, dict):
        if not isinstance(stored, dict):
            return [f"{path or '.'}: wrote an object, stored {stored!r}"]
        return [problem for key, value in written.items()
                for problem in ([f"{path}.{key}: dropped"] if key not in stored else contained(value, stored[key], f"{path}.{key}"))]
    if isinstance(written, list):
        if not isinstance(stored, list) or len(stored) != len(written):
            return [f"{path}: wrote {written!r}, stored {stored!r}"]
        return [p for i, (w, s) in enumerate(zip(written, stored)) for p in contained(w, s, f"{path}[{i}]")]
    if written != stored or isinstance(written, bool) != isinstance(stored, bool):
        return [f"{path}: wrote {written!r}, stored {stored!r}"]
    return []


def apply_and_read_back(bin_dir: Path, kubeconfig: Path, namespace: str, text: str, path: Path | None = None) -> list[dict[str, Any]]:
    """kubectl apply the file (or the text on stdin) as a user would: real when every object is of
    REAL_KINDS (then read back with kubectl get), else a server-side dry run. Objects without a
    namespace go to `namespace`; a snippet that names its own is applied there. Returns what the
    server stored, in document order."""
    docs = objects(text)
    real = all(d["kind"] in REAL_KINDS for d in docs)
    own = {d["metadata"].get("namespace") for d in docs} - {None}
    # kubectl refuses -n that contradicts an object's own namespace; such snippets go without -n.
    where = [] if own else ["-n", namespace]
    source = ["-f", str(path)] if path else ["-f", "-"]
    returned = items(kubectl(bin_dir, kubeconfig, *where, "apply", "-o", "json", *source, *([] if real else ["--dry-run=server"]),
                             stdin=None if path else text))
    if not real:
        return returned
    return [items(kubectl(bin_dir, kubeconfig, "-n", d["metadata"].get("namespace", namespace), "get", "-o", "json",
                          resource(d), d["metadata"]["name"]))[0] for d in docs]


def resource(doc: dict[str, Any]) -> str:
    """kind.group as kubectl get takes it (a bare kind for the core group)."""
    group = doc["apiVersion"].rpartition("/")[0]
    return f"{doc['kind'].lower()}.{group}" if group else str(doc["kind"]).lower()


def as_stored(doc: dict[str, Any]) -> dict[str, Any]:
    """What the file asks to be stored. A Secret's stringData is write-only: it is stored as data."""
    doc = {**doc, "metadata": {k: v for k, v in doc["metadata"].items() if k != "namespace"}}
    if doc["kind"] == "Secret" and "stringData" in doc:
        data = {k: base64.b64encode(str(v).encode()).decode() for k, v in doc.pop("stringData").items()}
        doc["data"] = {**doc.get("data", {}), **data}
    return doc


def check_stored(where: str, text: str, stored: list[dict[str, Any]]) -> None:
    written = objects(text)
    assert [(d["kind"], d["metadata"]["name"]) for d in stored] == [(d["kind"], d["metadata"]["name"]) for d in written], where
    for mine, theirs in zip(map(as_stored, written), stored):
        problems = contained(mine, theirs)
        assert not problems, f"{where}: {mine['kind']} {mine['metadata']['name']} is not stored as written:\n" + "\n".join(problems)
        if mine["kind"] == "TaskType" and "parametersSchema" in mine["spec"]:
            # The point of the check: exactly this schema, no key or value read as something else.
            assert theirs["spec"]["parametersSchema"] == mine["spec"]["parametersSchema"], where


# -- tests ------------------------------------------------------------------------------------------

def test_no_shipped_yaml_depends_on_yaml_1_1() -> None:
    """Static: kubectl and a YAML 1.2 reader (and PyYAML) agree on every scalar of every shipped file."""
    chart_files = sorted((REPO / "charts" / "kubetask").rglob("*.yaml")) + sorted((REPO / "crds").glob("*.yaml")) \
        + sorted((REPO / "policies").glob("*.yaml"))
    problems = [f"{path.relative_to(REPO)} {trap}" for path in [*EXAMPLES, *chart_files] if "templates" not in path.parts
                for trap in yaml11_traps(path.read_text())]
    problems += [f"{s.where} {trap}" for s in docs_snippets() for trap in yaml11_traps(s.text)]
    assert not problems, "YAML that kubectl reads as YAML 1.1 differently:\n" + "\n".join(problems)


def test_the_trap_detector_finds_what_broke_gpu_matmul() -> None:
    assert yaml11_traps("properties:\n  n: {type: integer}\nrequired: [n]\nmode: 0755\nok: 'n'\n") == [
        "line 2: 'n' (quote it)", "line 3: 'n' (quote it)", "line 4: '0755' (quote it)"]
    # YAML 1.2 core: only true/false are booleans; 0755 is decimal, 0o17 octal.
    assert objects('a: 0755\nb: "n"\nc: n\nd: yes\ne: 1.5\nf: true\ng: 0o17\n') == [
        {"a": 755, "b": "n", "c": "n", "d": "yes", "e": 1.5, "f": True, "g": 15}]


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(REPO / "handlers-images")) for p in EXAMPLES])
def test_every_example_applies_with_kubectl_as_written(namespace: str, bin_dir: Path, kubeconfig: Path, path: Path) -> None:
    # The file itself, as a user runs it: `kubectl apply -f <file>`.
    text = path.read_text()
    check_stored(str(path.relative_to(REPO)), text, apply_and_read_back(bin_dir, kubeconfig, namespace, text, path))


def test_the_gpu_example_parameter_is_n_not_false(namespace: str, bin_dir: Path, kubeconfig: Path) -> None:
    kubectl(bin_dir, kubeconfig, "-n", namespace, "apply", "-f", str(REPO / "handlers-images/examples/gpu-matmul/tasktype.yaml"))
    stored = json.loads(kubectl(bin_dir, kubeconfig, "-n", namespace, "get", "tasktype", "gpu-matmul", "-o", "json"))
    schema = stored["spec"]["parametersSchema"]
    assert "n" in schema["properties"] and "false" not in schema["properties"] and schema["required"] == ["n"]
    task = items(kubectl(bin_dir, kubeconfig, "-n", namespace, "apply", "--dry-run=server", "-o", "json",
                         "-f", str(REPO / "handlers-images/examples/gpu-matmul/example-task.yaml")))[0]
    assert task["spec"]["parameters"] == {"n": 8192, "iterations": 50, "dtype": "bfloat16"}


def test_docs_snippet_selection_is_what_the_docs_show() -> None:
    """The rule that picks snippets keeps picking the objects (a guard against a regex that silently
    matches nothing)."""
    kinds = {d["kind"] for s in object_snippets() for d in objects(s.text)}
    assert {"TaskType", "TaskQueue", "Task", "TaskSchedule", "TaskWebhook", "Role"} <= kinds, kinds


@pytest.mark.parametrize("snippet", object_snippets(), ids=lambda s: s.where)
def test_every_docs_snippet_applies_with_kubectl(kube: KubeSync, namespace: str, bin_dir: Path, kubeconfig: Path, snippet: Snippet) -> None:
    docs = objects(snippet.text)
    versions = set(kubectl(bin_dir, kubeconfig, "api-versions").split())
    unserved = {(d["apiVersion"], d["kind"]) for d in docs if d["apiVersion"] != "v1" and d["apiVersion"] not in versions}
    assert unserved <= UNSERVED, f"{snippet.where}: kinds the control plane does not serve and UNSERVED does not list: {unserved - UNSERVED}"
    if unserved:
        pytest.skip(f"{snippet.where}: {sorted(k for _, k in unserved)} need CRDs the local control plane lacks")
    # A snippet may name its own namespace (Argo CD's argocd-cm lives in argocd): create it for the
    # test, as the user's cluster has it, and delete it afterwards.
    own = {d["metadata"]["namespace"] for d in docs if d["metadata"].get("namespace")} - {namespace}
    created = []
    for name in own:
        try:
            kube.create(core_path("namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"kubetask.io/test": "true"}}})
            created.append(name)
        except ApiError as error:
            assert error.status == 409, error
    try:
        check_stored(snippet.where, snippet.text, apply_and_read_back(bin_dir, kubeconfig, namespace, snippet.text))
    finally:
        for name in created:
            kube.delete(core_path("namespaces", name=name))
        for name in created:  # gone before the next snippet that names it creates it again
            wait_for(lambda: gone(kube, name), timeout=60, what=f"namespace {name} deleted")


def gone(kube: KubeSync, namespace: str) -> bool:
    try:
        kube.get(core_path("namespaces", name=namespace))
    except ApiError as error:
        return error.status == 404
    return False


@pytest.mark.parametrize("values", sorted(CHART_SETS))
def test_the_rendered_chart_applies_with_kubectl(namespace: str, bin_dir: Path, kubeconfig: Path, helm: Any, values: str) -> None:
    """`helm template | kubectl apply --dry-run=server -f -`: every object, CRDs included, passes the
    real API server's validation, and comes back as rendered (nothing pruned or reinterpreted)."""
    text = render_text(helm, sets=CHART_SETS[values], namespace=namespace)
    returned = items(kubectl(bin_dir, kubeconfig, "-n", namespace, "apply", "--dry-run=server", "-o", "json", "-f", "-", stdin=text))
    rendered = objects(text)
    assert len(returned) == len(rendered) and {d["kind"] for d in rendered} >= {"CustomResourceDefinition", "Deployment", "TaskQueue"}
    by_id = {(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")): d for d in returned}
    for mine in rendered:
        theirs = by_id[(mine["kind"], mine["metadata"]["name"], mine["metadata"].get("namespace"))]
        problems = contained(mine, theirs)
        assert not problems, f"helm template ({values}): {mine['kind']} {mine['metadata']['name']}:\n" + "\n".join(problems)
        if mine["kind"] == "TaskType" and "parametersSchema" in mine["spec"]:
            assert theirs["spec"]["parametersSchema"] == mine["spec"]["parametersSchema"]
