#!/usr/bin/env bash
# Builds what the local real node needs (`hack/localcluster.py up --real-node`) and caches it
# outside the repository:
#   - Debian's containerd, runc, buildah, mmdebstrap, CNI plugins (apt-get, when missing; root);
#   - the kubelet, from the same wrapper module as the control plane (hack/build-controlplane.sh);
#   - the images, with no registry: a Debian bookworm root filesystem made by mmdebstrap (with
#     Debian's python3 and its venv module), a pause image (hack/realnode/pause.c, gcc -static),
#     then the kubetask image (operator and gateway), the handler base and every example handler,
#     with `buildah bud` from the repository's own Dockerfiles. No build step has a network: the
#     kubetask image's wheels are downloaded here first (hack/wheelhouse.sh) and mounted.
#
# Output (KUBETASK_CACHE, default ~/.cache/kubetask):
#   bin/kubelet-<kube>/kubelet
#   realnode/buildah/                  buildah's own storage: every image, labelled with the hash of its inputs
#   realnode/images/node-<key>.tar     one OCI archive of the images the node loads
#   realnode/images/current            that archive's path; current.refs: the image references in it
#   realnode/wheelhouse-<key>/         the kubetask image's wheels, by the hash of pyproject.toml
# The last line printed is the kubelet's path. Re-runs reuse whatever is cached; progress goes to
# stderr as "[real-node build <seconds>s] ...".
#
# Usage: build-realnode.sh [all|kubelet|images]   (default all)
# Environment: KUBETASK_BUILD_JOBS (go build -p, default 2), KUBETASK_SKIP_APT=1 (never apt-get).
set -euo pipefail
what="${1:-all}"
[[ "$what" =~ ^(all|kubelet|images)$ ]] || { echo "usage: $0 [all|kubelet|images]" >&2; exit 2; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache="${KUBETASK_CACHE:-$HOME/.cache/kubetask}"
kubelet_dir="$cache/bin/kubelet-${KUBE_VERSION}"
kubelet="$kubelet_dir/kubelet"
work="$cache/build"
images="$cache/realnode/images"
# buildah gets its own storage, never the machine's /var/lib/containers: other people may use that.
storage=(--root "$cache/realnode/buildah/root" --runroot "$cache/realnode/buildah/run" --storage-driver overlay)
jobs="${KUBETASK_BUILD_JOBS:-2}"
start=$(date +%s)
# The images are tagged with the names the example TaskTypes use, so the shipped manifests run
# unchanged on the real node (imagePullPolicy IfNotPresent: the tag is not :latest).
app_version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$repo/charts/kubetask/Chart.yaml")"
registry="ghcr.io/kubetask"
rootfs_ref="localhost/kubetask/debian-python:bookworm"
pause_ref="localhost/kubetask/pause:local"
examples=(echo flaky progress cpu-burn gpu-matmul)

mkdir -p "$work"
step() { printf '[real-node build %4ds] %s\n' "$(( $(date +%s) - start ))" "$*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

# --- Debian packages -------------------------------------------------------------------------
# docker-registry: a registry on loopback for the test of `hack/images.sh --push` (tests/sdk/test_images_script.py).
# socat: the API server relay into the node's network namespace (hack/realnode.py).
packages=(containerd runc buildah mmdebstrap containernetworking-plugins docker-registry socat)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
if (( ${#missing[@]} )); then
  [[ -z "${KUBETASK_SKIP_APT:-}" && $(id -u) -eq 0 ]] || die "missing Debian packages: ${missing[*]} (run as root: apt-get install -y ${missing[*]})"
  step "apt-get install ${missing[*]}"
  # The package's postinst may try to start the machine's own containerd; the node never uses it
  # (its containerd has its own config, root, state and socket).
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >"$work/apt.log" 2>&1 \
    || { tail -n 30 "$work/apt.log" >&2; die "apt-get install failed"; }
fi

# --- kubelet ---------------------------------------------------------------------------------
go_build_with_progress() {   # same progress lines as hack/build-controlplane.sh
  local label="$1"; shift
  local log="$work/$label.log"
  step "$label: go build $* (log: $log)"
  set +e
  go build -p "$jobs" -v "$@" 2>&1 | tee "$log" | awk -v label="$label" -v t0="$start" '
    { n++; if (n % 50 == 0) { printf("[real-node build %4ds] %s: %d packages compiled\n", systime()-t0, label, n) > "/dev/stderr"; fflush("/dev/stderr") } }'
  local rc=${PIPESTATUS[0]}
  set -e
  (( rc == 0 )) || { echo "error: building $label failed; last lines of $log:" >&2; tail -n 30 "$log" >&2; exit "$rc"; }
}

if [[ "$what" != images && ! -x "$kubelet" ]]; then
  command -v go >/dev/null || die "Go is required (go 1.26+) to build the kubelet"
  # The control plane's wrapper module (go.mod replacing every staging module) is made by
  # build-controlplane.sh; running it first also means its cache is complete.
  bash "$here/build-controlplane.sh" >/dev/null
  kmod="$work/kubernetes-${KUBE_VERSION}"
  [[ -f "$kmod/go.mod" ]] || die "$kmod/go.mod missing: delete $cache/bin/kube-${KUBE_VERSION}_* and re-run hack/build-controlplane.sh"
  mkdir -p "$kubelet_dir"
  export CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=mod"
  step "kubelet ${KUBE_VERSION}: resolving dependencies"
  (cd "$kmod" && go get "k8s.io/kubernetes/cmd/kubelet@${KUBE_VERSION}" >/dev/null 2>"$work/kubelet-get.log") || {
    tail -n 30 "$work/kubelet-get.log" >&2; die "resolving the kubelet's dependencies failed"; }
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${KUBE_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2) -X k8s.io/client-go/pkg/version.gitVersion=${KUBE_VERSION}"
  (cd "$kmod" && go_build_with_progress kubelet -trimpath -ldflags "$ldflags" -o "$kubelet.tmp" k8s.io/kubernetes/cmd/kubelet)
  mv "$kubelet.tmp" "$kubelet"
  step "kubelet: $(du -h "$kubelet" | cut -f1) in $kubelet_dir"
fi

if [[ "$what" == kubelet ]]; then
  echo "$kubelet"
  exit 0
fi

# --- images ----------------------------------------------------------------------------------
# Each image carries the hash of its inputs as the label kubetask.io/inputs: an image in buildah's
# storage (under the cache) whose label matches is reused, anything else is built again. The node
# then gets one OCI archive of all its images (layers shared, so the base is stored once), named
# by the hash of their keys.
mkdir -p "$images" "$work"
hash_of() {   # a stable hash of strings and of the files under paths (names and contents)
  { for a in "$@"; do
      if [[ -e "$a" ]]; then
        find "$a" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum | sed "s#$repo/##"
      else
        printf '%s\n' "$a"
      fi
    done; } | sha256sum | cut -c1-16
}
built() {   # $1 reference, $2 key: the image exists and was built from these inputs
  [[ "$(buildah "${storage[@]}" inspect --type image --format '{{index .OCIv1.Config.Labels "kubetask.io/inputs"}}' "$1" 2>/dev/null)" == "$2" ]]
}
node_refs=()
keys=()

# 1. The Debian root filesystem, as an image. Keyed by its recipe (suite, packages, options):
# its content moves with Debian's point releases; `buildah rmi` it (or delete the cache) to refresh.
# python3-venv: the kubetask image makes its virtualenv with it (the root Dockerfile).
rootfs_packages="python3,python3-venv,python-is-python3,ca-certificates,tzdata"
rootfs_key="$(hash_of "bookworm" "minbase" "$rootfs_packages" "v1")"
if ! built "$rootfs_ref" "$rootfs_key"; then
  rootfs_tar="$work/rootfs-$rootfs_key.tar"
  step "base root filesystem: mmdebstrap bookworm minbase + $rootfs_packages (apt sources: this machine's)"
  sources="$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true)"
  [[ -n "$sources" ]] || die "no apt sources on this machine for mmdebstrap"
  # Docs, man pages and locales are left out (as in python:*-slim); apt's lists and caches are
  # deleted: the image is a runtime, not a build environment.
  mmdebstrap --variant=minbase --include="$rootfs_packages" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --aptopt='Acquire::Languages "none"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*' \
    bookworm "$rootfs_tar" - <<<"$sources" >"$work/mmdebstrap.log" 2>&1 \
    || { tail -n 30 "$work/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
  ctr_id="$(buildah "${storage[@]}" from --quiet scratch)"
  buildah "${storage[@]}" add --quiet "$ctr_id" "$rootfs_tar" / >/dev/null
  buildah "${storage[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd /usr/bin/python3 --label "kubetask.io/inputs=$rootfs_key" \
    --label "org.opencontainers.image.description=Debian bookworm minbase + python3 (mmdebstrap)" "$ctr_id"
  buildah "${storage[@]}" commit --quiet --rm --format docker "$ctr_id" "$rootfs_ref" >/dev/null
  step "base root filesystem: $(du -h "$rootfs_tar" | cut -f1) uncompressed"
  rm -f "$rootfs_tar"
fi

# 2. The pod sandbox image.
pause_key="$(hash_of "$here/realnode/pause.c" "gcc-static-v1")"
if ! built "$pause_ref" "$pause_key"; then
  step "pause image: gcc -static hack/realnode/pause.c"
  pause_bin="$work/pause-$pause_key"
  gcc -static -Os -s -o "$pause_bin" "$here/realnode/pause.c"
  ctr_id="$(buildah "${storage[@]}" from --quiet scratch)"
  buildah "${storage[@]}" copy --quiet "$ctr_id" "$pause_bin" /pause >/dev/null
  buildah "${storage[@]}" config --entrypoint '["/pause"]' --user 65535:65535 --label "kubetask.io/inputs=$pause_key" "$ctr_id"
  buildah "${storage[@]}" commit --quiet --rm --format docker "$ctr_id" "$pause_ref" >/dev/null
  rm -f "$pause_bin"
fi
node_refs+=("$pause_ref"); keys+=("$pause_key")

# 3. The kubetask image, the handler base and the examples, from the repository's Dockerfiles.
bud() {   # $1 reference, $2 key, $3 Dockerfile, $4 context, then --build-arg ... --volume ...
  local ref="$1" key="$2" dockerfile="$3" context="$4"; shift 4
  # --network none: a build step never reaches anything; --pull-never: FROM resolves locally only.
  buildah "${storage[@]}" bud --quiet --pull-never --network none --format docker --layers=false \
    --label "kubetask.io/inputs=$key" -f "$dockerfile" -t "$ref" "$@" "$context" >"$work/bud.log" 2>&1 \
    || { tail -n 30 "$work/bud.log" >&2; die "buildah bud -f $dockerfile failed"; }
}

# The kubetask image: its context is only what the root Dockerfile copies (hack/kubetask-context.sh,
# as hack/images.sh sends it), keyed by that context; its wheels come from a wheelhouse made on
# this machine for Debian's Python 3.11.
kubetask_ref="$registry/kubetask:$app_version"
context="$work/kubetask-context"
rm -rf "$context"
bash "$here/kubetask-context.sh" "$context"
wheels="$cache/realnode/wheelhouse-$(hash_of "$repo/pyproject.toml" "v1")"
kubetask_key="$(hash_of "$rootfs_key" "wheels:${wheels##*/}" "$context")"
if ! built "$kubetask_ref" "$kubetask_key"; then
  if [[ ! -f "$wheels/.complete" ]]; then
    host_python="$(command -v python3)"
    [[ "$("$host_python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')" == 3.11 ]] \
      || die "the kubetask image's wheels are downloaded for this machine's python3, which must be 3.11 like Debian bookworm's (set PATH to one)"
    step "kubetask image: wheels for Python 3.11 into $wheels (pip download, hack/wheelhouse.sh)"
    rm -rf "$wheels"
    PYTHON="$host_python" bash "$here/wheelhouse.sh" "$wheels.tmp" >"$work/wheelhouse.log" 2>&1 \
      || { tail -n 30 "$work/wheelhouse.log" >&2; die "downloading the kubetask image's wheels failed"; }
    touch "$wheels.tmp/.complete"
    mv "$wheels.tmp" "$wheels"
    for old in "$cache"/realnode/wheelhouse-*; do [[ "$old" == "$wheels" ]] || rm -rf "$old"; done
  fi
  step "kubetask image: buildah bud Dockerfile --build-arg PYTHON_IMAGE=$rootfs_ref (wheels mounted at /wheelhouse)"
  bud "$kubetask_ref" "$kubetask_key" "$context/Dockerfile" "$context" --build-arg "PYTHON_IMAGE=$rootfs_ref" \
    --build-arg "PIP_INSTALL_ARGS=--no-index --find-links /wheelhouse" --volume "$wheels:/wheelhouse:ro"
fi
rm -rf "$context"
node_refs+=("$kubetask_ref"); keys+=("$kubetask_key")

base_ref="$registry/handler-base:$app_version"
base_key="$(hash_of "$rootfs_key" "$repo/handlers-images/base/Dockerfile" "$repo/handlers-images/sdk/kubetask_sdk")"
if ! built "$base_ref" "$base_key"; then
  step "handler base: buildah bud handlers-images/base/Dockerfile --build-arg PYTHON_IMAGE=$rootfs_ref"
  bud "$base_ref" "$base_key" "$repo/handlers-images/base/Dockerfile" "$repo/handlers-images" --build-arg "PYTHON_IMAGE=$rootfs_ref"
fi
node_refs+=("$base_ref"); keys+=("$base_key")

for name in "${examples[@]}"; do
  dockerfile="$repo/handlers-images/examples/$name/Dockerfile"
  if [[ "$name" == gpu-matmul ]]; then
    # Its own base is a CUDA PyTorch image; here it goes on the Debian base with no torch.
    ref="$registry/handler-$name:$app_version-notorch"
    args=(--build-arg "TORCH_IMAGE=$rootfs_ref")
    parent_key="$rootfs_key"
  else
    ref="$registry/handler-$name:$app_version"
    args=(--build-arg "BASE_IMAGE=$base_ref")
    parent_key="$base_key"
  fi
  key="$(hash_of "$parent_key" "$dockerfile" "$repo/handlers-images/examples/$name/handler.py" "$repo/handlers-images/sdk/kubetask_sdk")"
  if ! built "$ref" "$key"; then
    step "handler $name: buildah bud ${dockerfile#"$repo"/} ${args[*]}"
    bud "$ref" "$key" "$dockerfile" "$repo/handlers-images" "${args[@]}"
  fi
  node_refs+=("$ref"); keys+=("$key")
done

# 4. One OCI archive with every image the node loads (`ctr images import` names each image by its
# org.opencontainers.image.ref.name).
archive="$images/node-$(hash_of "${keys[@]}").tar"
if [[ ! -f "$archive" ]]; then
  step "node archive: ${#node_refs[@]} images into $archive"
  layout="$work/oci-layout"
  rm -rf "$layout"
  for ref in "${node_refs[@]}"; do
    buildah "${storage[@]}" push --quiet "$ref" "oci:$layout:$ref" >/dev/null
  done
  tar -C "$layout" -cf "$archive.tmp" .
  mv "$archive.tmp" "$archive"
  rm -rf "$layout"
fi
# Images and archives of older inputs go: the cache holds what the current sources build.
buildah "${storage[@]}" rmi --prune >/dev/null 2>&1 || true
for f in "$images"/*.tar; do [[ "$f" == "$archive" ]] || rm -f "$f"; done
printf '%s\n' "${node_refs[@]}" > "$images/current.refs"
echo "$archive" > "$images/current"
step "done: kubelet $(du -sh "$kubelet_dir" 2>/dev/null | cut -f1), node image archive $(du -h "$archive" | cut -f1) (${#node_refs[@]} images), buildah storage $(du -sh "$cache/realnode/buildah" | cut -f1)"
echo "$kubelet"
