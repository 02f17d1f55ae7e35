#!/usr/bin/env bash
# Make sure a headless-capable Chromium is installed (Debian's `chromium` package; no downloaded
# browsers). Prints the executable's path. Used by tests/e2e/test_dashboard.py and CI.
#   hack/ensure-chromium.sh            # install if missing (needs root or passwordless sudo), print path
set -euo pipefail

find_chromium() {
  for candidate in "${KUBETASK_CHROMIUM:-}" chromium chromium-browser google-chrome-stable google-chrome; do
    [ -n "$candidate" ] || continue
    if path=$(command -v "$candidate" 2>/dev/null); then
      echo "$path"
      return 0
    fi
  done
  return 1
}

if find_chromium; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: chromium is not installed and apt-get is not available; install Chromium and/or set KUBETASK_CHROMIUM" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "ensure-chromium: chromium is not installed and this user cannot run apt-get (not root, no passwordless sudo); run 'apt-get install -y chromium' as root" >&2
    exit 1
  fi
fi
echo "ensure-chromium: installing Debian's chromium package with apt-get ..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
find_chromium || { echo "ensure-chromium: apt-get finished but no chromium executable was found" >&2; exit 1; }
