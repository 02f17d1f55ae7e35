#!/usr/bin/env bash
# End-to-end on kind with real images (needs Docker; the project's machines have no container
# engine, so this script has not been run there):
#   1. build the kubetask image (root Dockerfile) and the handler images (base, echo, flaky, progress),
#   2. create a kind cluster (kind from the Go module proxy; its default node image, pinned by
#      digest in kind's source),
#   3. load the images, install the chart (example TaskTypes, handler RBAC, restricted namespaces),
#   4. run tests/chart/e2e and the real-node tests (tests/integration/test_real_node.py: the same
#      handler-contract tests as on the local real node; kind's node is labelled
#      kubetask.io/node-kind=real for them) with KUBETASK_TEST_KUBECONFIG pointing at kind,
#   5. delete the cluster (KIND_KEEP=1 keeps it).
#
# Environment: KIND_CLUSTER (default kubetask-e2e), KIND_KEEP, KIND_VERSION, KIND_NODE_IMAGE
# (default: kind's own), PYTEST_ARGS.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cluster="${KIND_CLUSTER:-kubetask-e2e}"
kind_version="${KIND_VERSION:-v0.33.0}"
cache="${KUBETASK_CACHE:-$HOME/.cache/kubetask}"
python="$repo/.venv/bin/python"
app_version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$repo/charts/kubetask/Chart.yaml")"
image="ghcr.io/kubetask/kubetask:${app_version}"
handlers=(echo flaky progress cpu-burn)   # gpu-matmul needs a GPU node
release_ns=kubetask
tasks_ns=kubetask-e2e

step() { printf '[kind-e2e] %s\n' "$*" >&2; }

if ! { command -v docker >/dev/null && docker info >/dev/null 2>&1; }; then
  echo "error: make kind-e2e needs a running Docker engine (none here: use the local control plane, \`make test\`)" >&2
  exit 1
fi
tools="$(bash "$here/chart-tools.sh" ensure)"
kind="$cache/tools/kind-${kind_version}/kind"
if [[ ! -x "$kind" ]]; then
  step "building kind ${kind_version} from the Go module proxy"
  GOBIN="$(dirname "$kind")" CGO_ENABLED=0 go install "sigs.k8s.io/kind@${kind_version}"
fi
# kubectl from PATH, else the one the local control plane build makes (hack/build-controlplane.sh).
kubectl="$(command -v kubectl || echo "$("$python" "$here/localcluster.py" binaries)/kubectl")"

step "building $image (context: only what the Dockerfile copies)"
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
bash "$here/kubetask-context.sh" "$context"
docker build -t "$image" -f "$context/Dockerfile" "$context"
rm -rf "$context"
trap - EXIT
step "building the handler images"
docker build -f "$repo/handlers-images/base/Dockerfile" -t "ghcr.io/kubetask/handler-base:${app_version}" "$repo/handlers-images"
for h in "${handlers[@]}"; do
  docker build -f "$repo/handlers-images/examples/$h/Dockerfile" -t "ghcr.io/kubetask/handler-$h:${app_version}" \
    --build-arg "BASE_IMAGE=ghcr.io/kubetask/handler-base:${app_version}" "$repo/handlers-images"
done

kubeconfig="$cache/kind/$cluster.kubeconfig"
mkdir -p "$(dirname "$kubeconfig")"
cleanup() {
  if [[ -z "${KIND_KEEP:-}" ]]; then
    step "deleting kind cluster $cluster"
    "$kind" delete cluster --name "$cluster" >/dev/null 2>&1 || true
  else
    step "keeping kind cluster $cluster (KUBECONFIG=$kubeconfig)"
  fi
}
trap cleanup EXIT
if ! "$kind" get clusters 2>/dev/null | grep -qx "$cluster"; then
  step "creating kind cluster $cluster"
  "$kind" create cluster --name "$cluster" --kubeconfig "$kubeconfig" --wait 180s ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
fi
"$kind" get kubeconfig --name "$cluster" > "$kubeconfig"

step "loading images into kind"
"$kind" load docker-image --name "$cluster" "$image"
for h in "${handlers[@]}"; do
  "$kind" load docker-image --name "$cluster" "ghcr.io/kubetask/handler-$h:${app_version}"
done

# The real-node tests send their Tasks to nodes with this label (no taint here: kind's one node
# also runs the chart's pods).
"$kubectl" --kubeconfig "$kubeconfig" label node --all --overwrite kubetask.io/node-kind=real

step "installing the chart"
for ns in "$release_ns" "$tasks_ns"; do
  "$kubectl" --kubeconfig "$kubeconfig" create namespace "$ns" --dry-run=client -o yaml \
    | "$kubectl" --kubeconfig "$kubeconfig" apply -f -
  "$kubectl" --kubeconfig "$kubeconfig" label namespace "$ns" --overwrite pod-security.kubernetes.io/enforce=restricted
done
"$tools/helm" upgrade --install kubetask "$repo/charts/kubetask" --kubeconfig "$kubeconfig" -n "$release_ns" \
  --set image.pullPolicy=Never \
  --set "defaultQueue.namespaces={$tasks_ns}" \
  --set exampleTaskTypes.enabled=true --set "exampleTaskTypes.namespaces={$tasks_ns}" \
  --set "exampleTaskTypes.names={echo,flaky,progress}" \
  --set handlerRbac.enabled=true --set "handlerRbac.namespaces={$tasks_ns}" \
  --wait --timeout 180s

step "running tests/chart/e2e and tests/integration/test_real_node.py against kind"
read -r -a pytest_args <<< "${PYTEST_ARGS:-}"
export KUBETASK_TEST_KUBECONFIG="$kubeconfig" KUBETASK_KIND_E2E=1 KUBETASK_E2E_NAMESPACE="$tasks_ns" \
  KUBETASK_E2E_RELEASE_NAMESPACE="$release_ns" KUBETASK_E2E_KUBECTL="$kubectl"
"$python" -m pytest "$repo/tests/chart/e2e" "$repo/tests/integration/test_real_node.py" -q "${pytest_args[@]}"
