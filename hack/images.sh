#!/usr/bin/env bash
# Builds kubetask's images, and pushes them to a registry you name. No kubetask image is published
# anywhere: a Helm install on a real cluster needs these, built and pushed by you (docs/helm.md).
#
#   hack/images.sh                                    # build with the chart's names: ghcr.io/kubetask/...:<appVersion>
#   REGISTRY=registry.example.com/team hack/images.sh --push
#   make images REGISTRY=registry.example.com/team PUSH=1
#
# Images (every one from the repository's own Dockerfiles):
#   $REGISTRY/kubetask:$TAG            the operator and the gateway (Dockerfile at the root)
#   $REGISTRY/handler-base:$TAG        Python + the handler SDK (handlers-images/base)
#   $REGISTRY/handler-<example>:$TAG   echo, flaky, progress, cpu-burn, gpu-matmul (handlers-images/examples)
#
# The engine is Docker when a Docker daemon answers, else buildah (Debian: apt-get install buildah),
# else the script says so; ENGINE=docker|buildah forces one. Build arguments pass through from the
# environment: PYTHON_IMAGE (the Python base of the kubetask and handler-base images) and
# TORCH_IMAGE (gpu-matmul's base). ONLY=a,b builds just those names (kubetask, handler-base,
# handler-echo, ...). BUILDAH_ARGS adds global buildah options (for example --root/--runroot of a
# storage of your own); PUSH_ARGS adds options to each push (for example --tls-verify=false for
# buildah, towards a registry without TLS). --print lists the commands without running them.
# WHEELHOUSE=dir (buildah only) builds the kubetask image with no network: pip installs from the
# wheels in dir (hack/wheelhouse.sh dir downloads them), mounted at /wheelhouse.
#
# Then install the chart with your registry (docs/helm.md, "Images"):
#   helm install kubetask charts/kubetask --set image.registry=registry.example.com \
#     --set image.repository=team/kubetask --set exampleTaskTypes.imageRegistry=registry.example.com/team
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
app_version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$repo/charts/kubetask/Chart.yaml")"
registry="${REGISTRY:-ghcr.io/kubetask}"
registry="${registry%/}"
tag="${TAG:-$app_version}"
push=0
print=0
for arg in "$@"; do
  case "$arg" in
    --push) push=1 ;;
    --print) print=1 ;;
    *) echo "usage: $0 [--push] [--print]" >&2; exit 2 ;;
  esac
done
[[ "${PUSH:-0}" == "1" ]] && push=1

engine="${ENGINE:-}"
if [[ -z "$engine" ]]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    engine=docker
  elif command -v buildah >/dev/null; then
    engine=buildah
  elif [[ "$print" == 1 ]]; then
    engine=buildah
  else
    echo "error: neither a Docker daemon nor buildah is available (Debian/Ubuntu: apt-get install buildah)" >&2
    exit 1
  fi
fi
[[ "$engine" == docker || "$engine" == buildah ]] || { echo "error: ENGINE must be docker or buildah, not $engine" >&2; exit 2; }
read -r -a buildah_args <<< "${BUILDAH_ARGS:-}"
read -r -a push_args <<< "${PUSH_ARGS:-}"

wanted() {
  [[ -z "${ONLY:-}" ]] && return 0
  [[ ",$ONLY," == *",$1,"* ]]
}

run() {
  if [[ "$print" == 1 ]]; then
    printf '%q ' "$@"
    printf '\n'
  else
    printf '[images] %s\n' "$*" >&2
    "$@"
  fi
}

# build NAME DOCKERFILE CONTEXT [--build-arg K=V ...]
build() {
  local name="$1" dockerfile="$2" context="$3"
  shift 3
  local image="$registry/$name:$tag"
  wanted "$name" || return 0
  if [[ "$engine" == docker ]]; then
    run docker build -f "$dockerfile" -t "$image" "$@" "$context"
  else
    run buildah "${buildah_args[@]}" bud --layers -f "$dockerfile" -t "$image" "$@" "$context"
  fi
  built+=("$image")
}

built=()
python_arg=()
[[ -n "${PYTHON_IMAGE:-}" ]] && python_arg=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")

# The kubetask image's context is only what its Dockerfile copies (as hack/kind-e2e.sh sends it).
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
if wanted kubetask; then
  bash "$here/kubetask-context.sh" "$context"
fi
kubetask_args=("${python_arg[@]}")
if [[ -n "${WHEELHOUSE:-}" ]]; then
  [[ "$engine" == buildah ]] || { echo "error: WHEELHOUSE needs buildah (docker build mounts nothing); with Docker, pip reaches PyPI" >&2; exit 2; }
  [[ "$print" == 1 || -n "$(compgen -G "$WHEELHOUSE/*.whl")" ]] || { echo "error: no wheels in WHEELHOUSE=$WHEELHOUSE (hack/wheelhouse.sh $WHEELHOUSE downloads them)" >&2; exit 2; }
  kubetask_args+=(--build-arg "PIP_INSTALL_ARGS=--no-index --find-links /wheelhouse" --volume "$(cd "$WHEELHOUSE" 2>/dev/null && pwd || echo "$WHEELHOUSE"):/wheelhouse:ro" --network none)
fi
build kubetask "$context/Dockerfile" "$context" "${kubetask_args[@]}"
build handler-base "$repo/handlers-images/base/Dockerfile" "$repo/handlers-images" "${python_arg[@]}"
for dockerfile in "$repo"/handlers-images/examples/*/Dockerfile; do
  example="$(basename "$(dirname "$dockerfile")")"
  extra=(--build-arg "BASE_IMAGE=$registry/handler-base:$tag")
  [[ "$example" == gpu-matmul && -n "${TORCH_IMAGE:-}" ]] && extra+=(--build-arg "TORCH_IMAGE=$TORCH_IMAGE")
  build "handler-$example" "$dockerfile" "$repo/handlers-images" "${extra[@]}"
done

if [[ "$push" == 1 ]]; then
  for image in "${built[@]}"; do
    if [[ "$engine" == docker ]]; then
      run docker push "${push_args[@]}" "$image"
    else
      run buildah "${buildah_args[@]}" push "${push_args[@]}" "$image" "docker://$image"
    fi
  done
fi
[[ "$print" == 1 ]] || printf '[images] built%s: %s\n' "$([[ "$push" == 1 ]] && echo ' and pushed')" "${built[*]}" >&2
