#!/usr/bin/env bash
# `make run`: everything kubetask needs, then the operator and the gateway in the foreground.
#   - KUBECONFIG set: use that cluster (CRDs are applied to it).
#   - otherwise: the local control plane (etcd, kube-apiserver, kube-controller-manager,
#     kube-scheduler, kwok), built once from the Go module proxy and cached in ~/.cache/kubetask.
# Ctrl-C stops the operator and the gateway; `make down` removes the local control plane.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
BIN="$(bash hack/build-controlplane.sh)"
export PATH="$BIN:$PATH"
GATEWAY_PORT="${KUBETASK_GATEWAY_PORT:-8000}"

if [[ -z "${KUBECONFIG:-}" ]]; then
  KUBECONFIG="$($PY hack/localcluster.py up --name "${CLUSTER:-kubetask}")"
  export KUBECONFIG
  # Simulated pods (kwok) read these annotations from the Task: see docs/local-control-plane.md.
  export KUBETASK_POD_ANNOTATION_PREFIXES='["sim.kubetask.io/"]'
  LOCAL=1
else
  # The CRDs and the admission policies that go with them (policies/; Kubernetes >= 1.30).
  kubectl apply --server-side -f crds -f policies >/dev/null
  LOCAL=0
fi

# A default queue and the example TaskTypes in the default namespace, so the quick start works.
kubectl apply -n default -f - >/dev/null <<'YAML'
apiVersion: kubetask.io/v1alpha1
kind: TaskQueue
metadata:
  name: default
spec:
  maxRunning: 10
YAML
for tt in handlers-images/examples/*/tasktype.yaml; do kubectl apply -n default -f "$tt" >/dev/null; done
kubectl apply -n default -f handlers-images/rbac/handler-rbac.yaml >/dev/null
# A ServiceAccount `demo` that may use Tasks in `default` (the README's curl examples use its token).
kubectl apply -n default -f - >/dev/null <<'YAML'
apiVersion: v1
kind: ServiceAccount
metadata: {name: demo}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: kubetask-user}
rules:
- {apiGroups: [kubetask.io], resources: [tasks], verbs: [create, get, list, watch, patch]}
- {apiGroups: [kubetask.io], resources: [tasktypes, taskqueues], verbs: [get, list, watch]}
- {apiGroups: [kubetask.io], resources: [taskschedules], verbs: [create, get, list, watch, patch]}
- {apiGroups: [kubetask.io], resources: [taskgroups], verbs: [create, get, list, watch]}
- {apiGroups: [""], resources: [pods/log], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: demo-kubetask-user}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: kubetask-user}
subjects:
- {kind: ServiceAccount, name: demo}
YAML

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

KUBETASK_LOG_FORMAT=text .venv/bin/kubetask-operator &
pids+=($!)
KUBETASK_GATEWAY_PORT="$GATEWAY_PORT" .venv/bin/kubetask-gateway &
pids+=($!)

cat <<INFO

kubetask is running.
  export PATH="$BIN:\$PATH" KUBECONFIG="$KUBECONFIG"
  kubectl apply -f handlers-images/examples/echo/example-task.yaml
  kubectl get tasks -w
  kubectl apply -f handlers-images/examples/echo/example-schedule.yaml && kubectl get taskschedules
  Gateway: http://127.0.0.1:$GATEWAY_PORT/docs   (token: kubectl create token demo)
$( [[ $LOCAL == 1 ]] && echo "  Local control plane: stop with 'make down'." )
Ctrl-C stops the operator and the gateway.
INFO
wait -n "${pids[@]}"
