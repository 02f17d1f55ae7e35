#!/usr/bin/env bash
# Tools and checks for the Helm chart in charts/kubetask.
#
#   hack/chart-tools.sh ensure          build (once, cached) helm and kubeconform; print the bin dir
#   hack/chart-tools.sh sync            copy crds/*.yaml and the example TaskTypes into the chart
#   hack/chart-tools.sh sync-crds       only the CRDs
#   hack/chart-tools.sh sync-tasktypes  only the example TaskTypes
#   hack/chart-tools.sh check-sync      fail when the chart's copies drifted from their sources
#   hack/chart-tools.sh schemas         write JSON schemas for kubeconform from the cluster in
#                                       $KUBECONFIG (its /openapi/v2) plus the kubetask CRDs; print the dir
#   hack/chart-tools.sh lint            helm lint + helm template (several value sets) + kubeconform -strict
#
# Tools come from the Go module proxy and are cached outside the repository in
# $KUBETASK_CACHE/tools/<tool>-<version>/ (default ~/.cache/kubetask). Progress goes to stderr;
# `ensure` prints only the bin directory on stdout.
#
# Why generated schemas: kubeconform downloads the Kubernetes JSON schemas from GitHub by default,
# which this project's machines cannot reach. The kube-apiserver serves the same OpenAPI document
# those schemas are generated from, for exactly the Kubernetes version it runs, so `schemas` turns
# the running control plane's /openapi/v2 into kubeconform's layout (see hack/openapi2jsonschema.py
# below, inlined), and the kubetask CRDs' openAPIV3Schema into schemas for Task/TaskType/TaskQueue.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
KUBECONFORM_VERSION="${KUBECONFORM_VERSION:-v0.8.0}"

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
    GOBIN="$bin" go install -p "$jobs" -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
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
  step "copied $(ls "$repo"/crds/*.yaml | wc -l) CRDs into charts/kubetask/files/crds/"
}

sync_tasktypes() {
  mkdir -p "$chart/files/tasktypes"
  rm -f "$chart"/files/tasktypes/*.yaml
  local f name
  for f in "$repo"/handlers-images/examples/*/tasktype.yaml; do
    name="$(basename "$(dirname "$f")")"
    cp "$f" "$chart/files/tasktypes/$name.yaml"
  done
  step "copied $(ls "$chart"/files/tasktypes/*.yaml | wc -l) example TaskTypes into charts/kubetask/files/tasktypes/"
}

check_sync() {
  local drift=0 f name
  for f in "$repo"/crds/*.yaml; do
    cmp -s "$f" "$chart/files/crds/$(basename "$f")" || { echo "drift: crds/$(basename "$f") differs from charts/kubetask/files/crds/" >&2; drift=1; }
  done
  for f in "$chart"/files/crds/*.yaml; do
    [[ -e "$repo/crds/$(basename "$f")" ]] || { echo "drift: charts/kubetask/files/crds/$(basename "$f") has no source in crds/" >&2; drift=1; }
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

# schemas [OUT]: kubeconform schemas from $KUBECONFIG's API server and the kubetask CRDs.
schemas() {
  local out="${1:-$cache/schemas}"
  : "${KUBECONFIG:?set KUBECONFIG to a running cluster (e.g. .venv/bin/python hack/localcluster.py up)}"
  "$python" "$repo/tests/chart/schemagen.py" --kubeconfig "$KUBECONFIG" --crds "$repo/crds" --out "$out"
}

lint() {
  local tools out schema_dir
  tools="$(ensure)"
  check_sync
  step "helm lint (default values, then every value set in tests/chart/values/)"
  "$tools/helm" lint "$chart" >&2
  for v in "$repo"/tests/chart/values/*.yaml; do
    "$tools/helm" lint "$chart" -f "$v" --quiet >&2
  done
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' RETURN
  "$tools/helm" template kubetask "$chart" -n kubetask > "$out/default.yaml"
  for v in "$repo"/tests/chart/values/*.yaml; do
    "$tools/helm" template kubetask "$chart" -n kubetask -f "$v" > "$out/$(basename "$v")"
  done
  if [[ -n "${KUBECONFORM_SCHEMAS:-}" ]]; then
    schema_dir="$KUBECONFORM_SCHEMAS"
  elif [[ -n "${KUBECONFIG:-}" ]]; then
    schema_dir="$(schemas "$out/schemas")"
  else
    step "no KUBECONFIG: starting the local control plane 'chart-lint' for its OpenAPI document"
    KUBECONFIG="$("$python" "$repo/hack/localcluster.py" up --name chart-lint)"
    schema_dir="$(KUBECONFIG="$KUBECONFIG" schemas "$out/schemas")"
  fi
  step "kubeconform -strict against $schema_dir"
  "$tools/kubeconform" -strict -summary -schema-location "$schema_dir/{{ .ResourceKind }}{{ .KindSuffix }}.json" "$out"/*.yaml
}

case "${1:-}" in
  ensure) ensure ;;
  sync) sync_crds; sync_tasktypes ;;
  sync-crds) sync_crds ;;
  sync-tasktypes) sync_tasktypes ;;
  check-sync) check_sync ;;
  schemas) shift; schemas "$@" ;;
  lint) lint ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
