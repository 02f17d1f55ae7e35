#!/usr/bin/env bash
# Builds the local control plane's binaries from the Go module proxy and caches them outside the
# repository:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok, kwokctl
# at the versions pinned in hack/versions.env.
#
# Output: $KUBETASK_CACHE/bin/<kube>-<etcd>-<kwok>/ (default KUBETASK_CACHE=~/.cache/kubetask).
# A complete cache is reused at once; the script prints the bin directory on its last line.
#
# Why wrapper modules: `go install k8s.io/kubernetes/cmd/...@vX` fails because kubernetes' go.mod
# requires its staging modules at v0.0.0 with replace directives to ./staging. A module of our own
# that requires k8s.io/kubernetes and replaces each staging module with its published v0.X.Y
# builds them. etcd's server module has replace directives too, so it gets a wrapper as well.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache="${KUBETASK_CACHE:-$HOME/.cache/kubetask}"
bin="$cache/bin/kube-${KUBE_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}"
work="$cache/build"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kwokctl)

have_all() {
  for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
}

if have_all; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "error: Go is required (go 1.26+) to build the control plane" >&2; exit 1; }
mkdir -p "$bin" "$work"
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false"
# Two cores: keep memory and load bounded; the Go build cache makes re-runs incremental.
jobs="${KUBETASK_BUILD_JOBS:-2}"
start=$(date +%s)

step() { printf '[control-plane build %4ds] %s\n' "$(( $(date +%s) - start ))" "$*" >&2; }

# Runs a go build with -v and prints a progress line every 50 compiled packages,
# so a cold build (tens of minutes on 2 cores) is visibly alive.
go_build_with_progress() {
  local label="$1"; shift
  local log="$work/$label.log"
  step "$label: go build $* (log: $log)"
  set +e
  go build -p "$jobs" -v "$@" 2>&1 | tee "$log" | awk -v label="$label" -v t0="$start" '
    { n++; if (n % 50 == 0) { printf("[control-plane build %4ds] %s: %d packages compiled\n", systime()-t0, label, n) > "/dev/stderr"; fflush("/dev/stderr") } }'
  local rc=${PIPESTATUS[0]}
  set -e
  if [[ $rc -ne 0 ]]; then
    echo "error: building $label failed; last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit "$rc"
  fi
}

# --- Kubernetes: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl -------------
if ! [[ -x "$bin/kube-apiserver" && -x "$bin/kube-controller-manager" && -x "$bin/kube-scheduler" && -x "$bin/kubectl" ]]; then
  kmod="$work/kubernetes-${KUBE_VERSION}"
  mkdir -p "$kmod"
  step "kubernetes ${KUBE_VERSION}: downloading k8s.io/kubernetes go.mod"
  gomod="$(cd "$kmod" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  staging_version="v0${KUBE_VERSION#v1}"   # v1.34.4 -> v0.34.4
  {
    echo "module kubetask.local/controlplane"
    echo
    echo "go 1.24.0"
    echo
    echo "require k8s.io/kubernetes ${KUBE_VERSION}"
    echo
    echo "replace ("
    # Every `k8s.io/<x> => ./staging/src/k8s.io/<x>` in kubernetes' own go.mod becomes a
    # replacement by the published module at the matching v0 version.
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$gomod" | while read -r m; do
      echo "	$m => $m ${staging_version}"
    done
    echo ")"
  } > "$kmod/go.mod"
  (cd "$kmod" && cat > main.go <<'EOF'
// Package main exists only so this wrapper module is a valid build root.
package main

func main() {}
EOF
  )
  step "kubernetes ${KUBE_VERSION}: resolving dependencies (go mod tidy-equivalent)"
  (cd "$kmod" && GOFLAGS=-mod=mod go get "k8s.io/kubernetes/cmd/kube-apiserver@${KUBE_VERSION}" >/dev/null 2>"$work/kube-get.log") || {
    echo "error: resolving k8s.io/kubernetes ${KUBE_VERSION} failed:" >&2; tail -n 30 "$work/kube-get.log" >&2; exit 1; }
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${KUBE_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2) -X k8s.io/client-go/pkg/version.gitVersion=${KUBE_VERSION}"
  (cd "$kmod" && GOFLAGS=-mod=mod go_build_with_progress kubernetes -trimpath -ldflags "$ldflags" -o "$bin/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler \
      k8s.io/kubernetes/cmd/kubectl)
fi

# --- etcd ------------------------------------------------------------------------------------
if ! [[ -x "$bin/etcd" ]]; then
  emod="$work/etcd-${ETCD_VERSION}"
  mkdir -p "$emod"
  printf 'module kubetask.local/etcd\n\ngo 1.24.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > "$emod/go.mod"
  printf '// Package main exists only so this wrapper module is a valid build root.\npackage main\n\nfunc main() {}\n' > "$emod/main.go"
  step "etcd ${ETCD_VERSION}: resolving dependencies"
  (cd "$emod" && GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >/dev/null 2>"$work/etcd-get.log") || {
    echo "error: resolving etcd failed:" >&2; tail -n 30 "$work/etcd-get.log" >&2; exit 1; }
  (cd "$emod" && GOFLAGS=-mod=mod go_build_with_progress etcd -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)
fi

# --- kwok and kwokctl ------------------------------------------------------------------------
if ! [[ -x "$bin/kwok" && -x "$bin/kwokctl" ]]; then
  step "kwok ${KWOK_VERSION}: go install kwok, kwokctl"
  GOBIN="$bin" go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION}" \
    "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}" "sigs.k8s.io/kwok/cmd/kwokctl@${KWOK_VERSION}" 2>"$work/kwok.log" || {
    echo "error: building kwok failed:" >&2; tail -n 30 "$work/kwok.log" >&2; exit 1; }
fi

have_all || { echo "error: build finished but binaries are missing in $bin" >&2; exit 1; }
step "done: $(du -sh "$bin" | cut -f1) of binaries in $bin"
echo "$bin"
