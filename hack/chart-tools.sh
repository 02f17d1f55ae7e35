#!/usr/bin/env bash
# Tools and checks for the Helm chart in charts/kubetask.
#
#   hack/chart-tools.sh ensure           build (once, cached) helm and kubeconform; print the bin dir
#   hack/chart-tools.sh sync             copy crds/*.yaml, policies/*.yaml and the example TaskTypes into the chart
#   hack/chart-tools.sh sync-crds        only the CRDs (and policies/)
#   hack/chart-tools.sh sync-tasktypes   only the example TaskTypes
#   hack/chart-tools.sh check-sync       fail when the chart's copies drifted from their sources
#   hack/chart-tools.sh schemas [OUT]    kubeconform schemas (cached); print their dir
#   hack/chart-tools.sh monitoring-crds  print the dir of prometheus-operator's CRDs (Go module cache)
#   hack/chart-tools.sh lint             helm lint + helm template (several value sets) + kubeconform -strict
#
# Tools come from the Go module proxy and are cached outside the repository in
# $KUBETASK_CACHE/tools/helm-<v>_kubeconform-<v>/ (default KUBETASK_CACHE=~/.cache/kubetask).
# Progress goes to stderr; `ensure` prints only the bin directory on stdout.
#
# Why generated schemas: kubeconform downloads the Kubernetes JSON schemas from GitHub by default,
# which this project's machines cannot reach. Those schemas are generated from the Kubernetes
# OpenAPI v2 document, and the k8s.io/kubernetes Go module of every release ships it
# (api/openapi-spec/swagger.json); the local control plane is built from that very module, at
# KUBE_VERSION in hack/versions.env. `schemas` converts it into kubeconform's layout
# (tests/chart/schemagen.py), adds the kubetask CRDs' openAPIV3Schema and prometheus-operator's
# ServiceMonitor/PrometheusRule CRDs (its Go module ships them), all strict (additionalProperties:
# false), so every kind the chart renders is validated and none is skipped. SCHEMA_SOURCE=cluster
# reads the document from a running API server's /openapi/v2 instead.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
KUBECONFORM_VERSION="${KUBECONFORM_VERSION:-v0.8.0}"
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
chart="$repo/charts/kubetask"
cache="${KUBETASK_CACHE:-$HOME/.cache/kubetask}"
bin="$cache/tools/helm-${HELM_VERSION}_kubeconform-${KUBECONFORM_VERSION}"
python="${PYTHON:-$repo/.venv/bin/python}"
[[ -x "$python" ]] || python=python3
start=$(date +%s)

step() { printf '[chart-tools %4ds] %s\n' "$(( $(date +%s) - start ))" "$*" >&2; }

ensure() {
  if [[ -x "$bin/helm" && -x "$bin/kubeconform" ]]; then
    echo "$bin"
    return
  fi
  command -v go >/dev/null || { echo "error: Go is required to build helm and kubeconform" >&2; exit 1; }
  mkdir -p "$bin" "$cache/build"
  export CGO_ENABLED=0 GOFLAGS="-buildvcs=false"
  local jobs="${KUBETASK_BUILD_JOBS:-2}"
  if [[ ! -x "$bin/helm" ]]; then
    step "helm ${HELM_VERSION}: go install helm.sh/helm/v3/cmd/helm (first time only; a few minutes on 2 cores)"
    # Like helm's own Makefile: the default Kubernetes version of `helm template` / `helm lint`
    # (.Capabilities.KubeVersion) follows the client-go version helm is built with; without
    # these flags it would be v1.20.
    local gomod client_go major minor
    gomod="$(cd "$cache/build" && GOFLAGS=-mod=mod go mod download -json "helm.sh/helm/v3@${HELM_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    client_go="$(sed -n 's#^\s*k8s.io/client-go v0\.\([0-9]*\)\.[0-9]*.*#\1#p' "$gomod" | head -n1)"
    major=1 minor="${client_go:?cannot read the client-go version from $gomod}"
    local kv="-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$major -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
    kv+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$major -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
    GOBIN="$bin" go install -p "$jobs" -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/internal/version.gitTreeState=clean $kv" \
      "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" 2>"$cache/build/helm.log" || {
      echo "error: building helm failed; last lines of $cache/build/helm.log:" >&2; tail -n 30 "$cache/build/helm.log" >&2; exit 1; }
  fi
  if [[ ! -x "$bin/kubeconform" ]]; then
    step "kubeconform ${KUBECONFORM_VERSION}: go install github.com/yannh/kubeconform/cmd/kubeconform"
    GOBIN="$bin" go install -p "$jobs" -trimpath -ldflags "-s -w -X main.version=${KUBECONFORM_VERSION}" \
      "github.com/yannh/kubeconform/cmd/kubeconform@${KUBECONFORM_VERSION}" 2>"$cache/build/kubeconform.log" || {
      echo "error: building kubeconform failed; last lines of $cache/build/kubeconform.log:" >&2
      tail -n 30 "$cache/build/kubeconform.log" >&2; exit 1; }
  fi
  step "tools ready in $bin"
  echo "$bin"
}

sync_crds() {
  mkdir -p "$chart/files/crds"
  rm -f "$chart"/files/crds/*.yaml
  cp "$repo"/crds/*.yaml "$chart/files/crds/"
  step "copied $(find "$repo/crds" -maxdepth 1 -name '*.yaml' | wc -l) CRDs into charts/kubetask/files/crds/"
  # The admission policies go with the CRDs: the handler policy guards tasks/status (docs/security.md).
  mkdir -p "$chart/files/policies"
  rm -f "$chart"/files/policies/*.yaml
  cp "$repo"/policies/*.yaml "$chart/files/policies/"
  step "copied policies/*.yaml into charts/kubetask/files/policies/"
}

sync_tasktypes() {
  mkdir -p "$chart/files/tasktypes"
  rm -f "$chart"/files/tasktypes/*.yaml
  local f name
  for f in "$repo"/handlers-images/examples/*/tasktype.yaml; do
    name="$(basename "$(dirname "$f")")"
    cp "$f" "$chart/files/tasktypes/$name.yaml"
  done
  step "copied $(find "$chart/files/tasktypes" -maxdepth 1 -name '*.yaml' | wc -l) example TaskTypes into charts/kubetask/files/tasktypes/"
}

check_sync() {
  local drift=0 f name
  for f in "$repo"/crds/*.yaml; do
    cmp -s "$f" "$chart/files/crds/$(basename "$f")" || { echo "drift: crds/$(basename "$f") differs from charts/kubetask/files/crds/" >&2; drift=1; }
  done
  for f in "$chart"/files/crds/*.yaml; do
    [[ -e "$repo/crds/$(basename "$f")" ]] || { echo "drift: charts/kubetask/files/crds/$(basename "$f") has no source in crds/" >&2; drift=1; }
  done
  for f in "$repo"/policies/*.yaml; do
    cmp -s "$f" "$chart/files/policies/$(basename "$f")" || { echo "drift: policies/$(basename "$f") differs from charts/kubetask/files/policies/" >&2; drift=1; }
  done
  for f in "$chart"/files/policies/*.yaml; do
    [[ -e "$repo/policies/$(basename "$f")" ]] || { echo "drift: charts/kubetask/files/policies/$(basename "$f") has no source in policies/" >&2; drift=1; }
  done
  for f in "$repo"/handlers-images/examples/*/tasktype.yaml; do
    name="$(basename "$(dirname "$f")")"
    cmp -s "$f" "$chart/files/tasktypes/$name.yaml" || { echo "drift: handlers-images/examples/$name/tasktype.yaml differs from charts/kubetask/files/tasktypes/$name.yaml" >&2; drift=1; }
  done
  for f in "$chart"/files/tasktypes/*.yaml; do
    name="$(basename "$f" .yaml)"
    [[ -e "$repo/handlers-images/examples/$name/tasktype.yaml" ]] || { echo "drift: charts/kubetask/files/tasktypes/$name.yaml has no source example" >&2; drift=1; }
  done
  if [[ $drift -ne 0 ]]; then
    echo "run: hack/chart-tools.sh sync" >&2
    exit 1
  fi
  step "chart copies of CRDs and TaskTypes are in sync"
}

# A Go module's directory in the module cache (downloaded through the Go module proxy if missing).
module_dir() {
  mkdir -p "$cache/build"
  (cd "$cache/build" && GOFLAGS=-mod=mod go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
}

# The prometheus-operator CRDs (ServiceMonitor, PrometheusRule): its Go module holds them in
# example/prometheus-operator-crd/. Prints that directory.
monitoring_crds() {
  local dir
  dir="$(module_dir "github.com/prometheus-operator/prometheus-operator@${PROMETHEUS_OPERATOR_VERSION}")/example/prometheus-operator-crd"
  [[ -f "$dir/monitoring.coreos.com_servicemonitors.yaml" ]] || { echo "error: no prometheus-operator CRDs in $dir" >&2; exit 1; }
  echo "$dir"
}

# schemas [OUT]: kubeconform schemas (strict) for Kubernetes $KUBE_VERSION (hack/versions.env, the
# local control plane's version) from api/openapi-spec/swagger.json of the k8s.io/kubernetes Go
# module, plus the kubetask CRDs and prometheus-operator's ServiceMonitor and PrometheusRule CRDs.
# With SCHEMA_SOURCE=cluster, the OpenAPI document comes from $KUBECONFIG's API server instead.
# Cached in $KUBETASK_CACHE/schemas/<key>/ (the key covers every input); prints the schema folder.
schemas() {
  local out="${1:-}" mon source key
  # shellcheck source=hack/versions.env
  source "$here/versions.env"
  mon="$(monitoring_crds)"
  local crd_args=(--crds "$repo/crds" --crds "$mon/monitoring.coreos.com_servicemonitors.yaml" --crds "$mon/monitoring.coreos.com_prometheusrules.yaml")
  if [[ "${SCHEMA_SOURCE:-module}" == cluster ]]; then
    : "${KUBECONFIG:?SCHEMA_SOURCE=cluster needs KUBECONFIG}"
    "$python" "$repo/tests/chart/schemagen.py" --kubeconfig "$KUBECONFIG" "${crd_args[@]}" --out "${out:?schemas OUT is required with SCHEMA_SOURCE=cluster}"
    return
  fi
  source="$(module_dir "k8s.io/kubernetes@${KUBE_VERSION}")/api/openapi-spec/swagger.json"
  [[ -f "$source" ]] || { echo "error: $source is missing" >&2; exit 1; }
  key="$(cat "$source" "$repo"/crds/*.yaml "$mon"/monitoring.coreos.com_{servicemonitors,prometheusrules}.yaml "$repo/tests/chart/schemagen.py" | sha256sum | cut -c1-16)"
  out="${out:-$cache/schemas/$key}"
  if [[ -d "$out/${KUBE_VERSION}-standalone-strict" ]]; then
    echo "$out/${KUBE_VERSION}-standalone-strict"
    return
  fi
  step "generating kubeconform schemas for Kubernetes ${KUBE_VERSION} from $source"
  # Into a temporary folder first: a concurrent run never sees a half-written cache.
  "$python" "$repo/tests/chart/schemagen.py" --openapi "$source" --version "$KUBE_VERSION" "${crd_args[@]}" --out "$out.tmp.$$" >/dev/null
  mkdir -p "$(dirname "$out")"
  mv -T "$out.tmp.$$" "$out" 2>/dev/null || rm -rf "$out.tmp.$$"
  echo "$out/${KUBE_VERSION}-standalone-strict"
}

# Every render the chart is checked with: the default values and each tests/chart/values/*.yaml.
render_all() {
  local tools="$1" out="$2" v
  "$tools/helm" template kubetask "$chart" -n kubetask > "$out/default.yaml"
  for v in "$repo"/tests/chart/values/*.yaml; do
    "$tools/helm" template kubetask "$chart" -n kubetask -f "$v" > "$out/$(basename "$v")"
  done
}

# helm lint --strict, helm template, kubeconform -strict on every render.
lint() {
  local tools out schema_dir v
  tools="$(ensure)"
  check_sync
  step "helm lint --strict (default values, then every value set in tests/chart/values/)"
  "$tools/helm" lint "$chart" --strict >&2
  for v in "$repo"/tests/chart/values/*.yaml; do
    "$tools/helm" lint "$chart" --strict --quiet -f "$v" >&2
  done
  out="$(mktemp -d)"
  step "helm template: default values and $(find "$repo/tests/chart/values" -maxdepth 1 -name '*.yaml' | wc -l) value sets"
  render_all "$tools" "$out"
  schema_dir="$(schemas)"
  step "kubeconform -strict against $schema_dir"
  "$tools/kubeconform" -strict -summary -schema-location "$schema_dir/{{ .ResourceKind }}{{ .KindSuffix }}.json" "$out"/*.yaml
  rm -rf "$out"
}

case "${1:-}" in
  ensure) ensure ;;
  sync) sync_crds; sync_tasktypes ;;
  sync-crds) sync_crds ;;
  sync-tasktypes) sync_tasktypes ;;
  check-sync) check_sync ;;
  schemas) shift; schemas "$@" ;;
  monitoring-crds) monitoring_crds ;;
  lint) lint ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
