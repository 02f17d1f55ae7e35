#!/usr/bin/env python3
"""JSON schemas for kubeconform, made offline from the Kubernetes OpenAPI document and CRD files.

    python tests/chart/schemagen.py --openapi swagger.json --version v1.34.4 --crds crds [...] --out DIR
    python tests/chart/schemagen.py --kubeconfig KUBECONFIG --crds crds [--crds more.yaml ...] --out DIR

kubeconform normally downloads yannh/kubernetes-json-schema from GitHub, which these machines cannot
reach. Those schemas are generated from the Kubernetes OpenAPI v2 document, which exists in two
places we can reach: `api/openapi-spec/swagger.json` in the k8s.io/kubernetes Go module of a
release (the module the local control plane is built from, so it is in the Go module cache), and
/openapi/v2 of a running kube-apiserver. This script turns either into kubeconform's layout:

    DIR/<version>-standalone-strict/<kind>-<group prefix>-<version>.json   e.g. deployment-apps-v1.json

so `kubeconform -strict -schema-location 'DIR/<version>-standalone-strict/{{ .ResourceKind }}{{ .KindSuffix }}.json'`
finds them. Prints that folder on stdout.

Conversion (the same rules as openapi2jsonschema, which made the upstream schemas):
- every object that lists `properties` and says nothing about `additionalProperties` gets
  `additionalProperties: false` (the "strict" flavour: an unknown field is an error);
- `IntOrString` accepts a string or an integer, `Quantity` a string or a number;
- each kind's file is standalone: the definitions it reaches are copied in and referenced locally
  (local references, not inlining, because some definitions are recursive);
- descriptions are dropped (size).

Custom resources get schemas from their CRD's `openAPIV3Schema` (the kubetask CRDs in crds/, and any
other CRD file given, e.g. prometheus-operator's ServiceMonitor and PrometheusRule): objects without
`x-kubernetes-preserve-unknown-fields` become strict, `x-kubernetes-int-or-string` becomes
string-or-integer, `nullable` adds null, and `metadata` gets the real ObjectMeta schema.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

DRAFT = "http://json-schema.org/draft-07/schema#"
REF_PREFIX = "#/definitions/"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"oneOf": [{"type": "string"}, {"type": "number"}]},
}


def _strict(node: Any) -> Any:
    """Copy of an OpenAPI v2 schema node: no descriptions, strict objects, special formats resolved."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    # A string `description` is documentation; a schema under that name is a field called description.
    out = {key: _strict(value) for key, value in node.items() if not (key == "description" and isinstance(value, str))}
    if out.get("format") == "int-or-string":
        return {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            found.add(ref[len(REF_PREFIX):])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for item in node:
            found |= _refs(item)
    return found


def _closure(definitions: dict[str, Any], roots: set[str]) -> dict[str, Any]:
    """The definitions reachable from roots, each converted to the strict flavour."""
    seen: dict[str, Any] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        schema = SPECIAL.get(name) or _strict(definitions[name])
        seen[name] = schema
        todo.extend(_refs(schema) - seen.keys())
    return seen


def file_name(kind: str, group: str, version: str) -> str:
    """kubeconform's `{{ .ResourceKind }}{{ .KindSuffix }}.json`: the group's first label only."""
    suffix = f"-{group.split('.')[0].lower()}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix}.json"


def builtin_schemas(openapi: dict[str, Any]) -> dict[str, dict[str, Any]]:
    definitions = openapi["definitions"]
    schemas: dict[str, dict[str, Any]] = {}
    for name, definition in definitions.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            if "properties" not in definition:
                continue
            root = _strict(definition)
            root["properties"]["apiVersion"] = {"type": "string", "enum": [f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]]}
            root["properties"]["kind"] = {"type": "string", "enum": [gvk["kind"]]}
            defs = _closure(definitions, _refs(root))
            schemas[file_name(gvk["kind"], gvk["group"], gvk["version"])] = {"$schema": DRAFT, **root, "definitions": defs}
    return schemas


def _from_structural(node: Any) -> Any:
    """A CRD's structural schema as strict JSON schema."""
    if isinstance(node, list):
        return [_from_structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("description", "x-kubernetes-validations", "default"):
            continue  # CEL rules are the API server's job; defaults are applied there
        if key == "properties":
            out[key] = {name: _from_structural(schema) for name, schema in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = _from_structural(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_from_structural(item) for item in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out = {"anyOf": [{"type": "string"}, {"type": "integer"}], **{k: v for k, v in out.items() if k != "anyOf"}}
    if node.get("type") == "object" and not node.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in node:
        out["additionalProperties"] = False
        out.setdefault("properties", {})
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def crd_schemas(crds: list[dict[str, Any]], definitions: dict[str, Any]) -> dict[str, dict[str, Any]]:
    schemas: dict[str, dict[str, Any]] = {}
    meta_defs = _closure(definitions, {OBJECT_META})
    for crd in crds:
        spec = crd["spec"]
        for version in spec["versions"]:
            root = _from_structural(version["schema"]["openAPIV3Schema"])
            props = root.setdefault("properties", {})
            props["apiVersion"] = {"type": "string", "enum": [f"{spec['group']}/{version['name']}"]}
            props["kind"] = {"type": "string", "enum": [spec["names"]["kind"]]}
            props["metadata"] = {"$ref": REF_PREFIX + OBJECT_META}
            schemas[file_name(spec["names"]["kind"], spec["group"], version["name"])] = {"$schema": DRAFT, **root, "definitions": meta_defs}
    return schemas


def load_crds(paths: list[Path]) -> list[dict[str, Any]]:
    crds: list[dict[str, Any]] = []
    for path in paths:
        files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        for file in files:
            for doc in yaml.safe_load_all(file.read_text()):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    crds.append(doc)
    return crds


def fetch(kubeconfig: Path, path: str) -> dict[str, Any]:
    from kubetask.kube import Connection, KubeSync

    client = KubeSync(Connection.from_kubeconfig(kubeconfig), timeout=60)
    try:
        return client.get(path)
    finally:
        client.close()


def generate(openapi: dict[str, Any], version: str, crds: list[dict[str, Any]], out: Path) -> Path:
    target = out / f"{version}-standalone-strict"
    target.mkdir(parents=True, exist_ok=True)
    schemas = {**builtin_schemas(openapi), **crd_schemas(crds, openapi["definitions"])}
    for name, schema in schemas.items():
        (target / name).write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--openapi", type=Path, help="an OpenAPI v2 document (k8s.io/kubernetes api/openapi-spec/swagger.json)")
    source.add_argument("--kubeconfig", type=Path, help="read /openapi/v2 and /version from this cluster's API server")
    parser.add_argument("--version", help="Kubernetes version of --openapi, e.g. v1.34.4")
    parser.add_argument("--crds", type=Path, action="append", default=[], help="CRD file or directory (repeatable)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.kubeconfig:
        version = str(fetch(args.kubeconfig, "/version")["gitVersion"]).split("+")[0]
        openapi = fetch(args.kubeconfig, "/openapi/v2")
    else:
        if not args.version:
            parser.error("--openapi needs --version")
        version, openapi = args.version, json.loads(args.openapi.read_text())
    target = generate(openapi, version, copy.deepcopy(load_crds(args.crds)), args.out)
    print(f"[schemagen] {len(list(target.glob('*.json')))} schemas for Kubernetes {version} in {target}", file=sys.stderr)
    print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
