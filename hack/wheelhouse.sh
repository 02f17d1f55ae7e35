#!/usr/bin/env bash
# Downloads, on this machine, every wheel the kubetask image's `pip install .` needs (kubetask's
# dependencies and its build backend, hatchling), so that the image builds with no network:
#
#   hack/wheelhouse.sh DIR
#   make images WHEELHOUSE=DIR      (buildah mounts DIR at /wheelhouse; see the root Dockerfile)
#
# The wheels are for the Python that runs this script (PYTHON, default python3): give it the
# same minor version as the image's Python (Debian bookworm's python3 is 3.11). pip's own
# resolver and index settings apply as usual (PIP_INDEX_URL, PIP_FIND_LINKS, ...). Why not the
# image's own pip: no build step reaches a network here (docs/real-node.md, "Networking").
set -euo pipefail
out="${1:?usage: $0 DIR}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
python="${PYTHON:-python3}"
mkdir -p "$out"
# The build backend, as pyproject.toml's [build-system] names it: pip's isolated build of `.`
# inside the image installs it from the wheelhouse too.
backend="$("$python" -c 'import sys, tomllib; print(" ".join(tomllib.load(open(sys.argv[1], "rb"))["build-system"]["requires"]))' "$repo/pyproject.toml")"
read -r -a backend <<< "$backend"
# --only-binary: the image has no compiler; every package must come as a wheel.
"$python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: --dest "$out" "$repo" "${backend[@]}"
# pip download also saves kubetask itself as a source archive of the repository; the image builds
# it from its own copy of the sources instead.
rm -f "$out"/kubetask-*.tar.gz "$out"/kubetask-*.zip
echo "$out"
