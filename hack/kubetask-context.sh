#!/usr/bin/env bash
# Fills DIR with the kubetask image's build context: exactly what the root Dockerfile copies, and
# nothing else (no .venv, no caches). hack/images.sh, hack/build-realnode.sh and hack/kind-e2e.sh
# all build from it, so the list lives here once.
#
#   hack/kubetask-context.sh DIR
set -euo pipefail
out="${1:?usage: $0 DIR}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$out"
tar -C "$repo" --exclude=__pycache__ -c Dockerfile pyproject.toml README.md operator api handlers-images/sdk | tar -C "$out" -x
