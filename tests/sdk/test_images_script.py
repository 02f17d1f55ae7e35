"""`hack/images.sh` (`make images`): the images a user builds and pushes for a real cluster.

The build-and-push test is real: buildah builds the handler base and the echo handler from the
repository's Dockerfiles (on the local Debian base that hack/build-realnode.sh makes, since no
public registry is reachable here) and pushes them to Debian's docker-registry on loopback; the
registry's own API then lists the tags and serves the manifests.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "hack" / "images.sh"
CACHE = Path(os.environ.get("KUBETASK_CACHE", Path.home() / ".cache" / "kubetask"))
STORAGE = f"--root {CACHE}/realnode/buildah/root --runroot {CACHE}/realnode/buildah/run --storage-driver overlay"
LOCAL_BASE = "localhost/kubetask/debian-python:bookworm"
EXAMPLES = sorted(p.parent.name for p in (REPO / "handlers-images" / "examples").glob("*/Dockerfile"))


def images(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=900, env={**os.environ, **env})


def test_print_names_every_image_with_the_registry_and_pushes_each() -> None:
    done = images("--print", "--push", ENGINE="buildah", REGISTRY="registry.example.com/team/", TAG="1.2.3")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    builds = [line for line in lines if " bud " in line]
    pushes = [line for line in lines if " push " in line]
    names = ["kubetask", "handler-base", *(f"handler-{e}" for e in EXAMPLES)]
    assert [line.split(" -t ")[1].split()[0] for line in builds] == [f"registry.example.com/team/{n}:1.2.3" for n in names]
    assert [line.split()[-1] for line in pushes] == [f"docker://registry.example.com/team/{n}:1.2.3" for n in names]
    # The handlers build on the base just built, under the same registry and tag.
    assert all("BASE_IMAGE=registry.example.com/team/handler-base:1.2.3" in line for line in builds[2:])


def test_docker_is_used_where_asked_and_the_default_names_are_the_charts() -> None:
    done = images("--print", ENGINE="docker", ONLY="kubetask")
    assert done.returncode == 0, done.stderr
    chart = (REPO / "charts" / "kubetask" / "Chart.yaml").read_text()
    app_version = next(line.split(":", 1)[1].strip().strip('"') for line in chart.splitlines() if line.startswith("appVersion:"))
    [line] = done.stdout.splitlines()
    assert line.startswith("docker build ") and f"-t ghcr.io/kubetask/kubetask:{app_version}" in line


def test_a_wheelhouse_builds_the_kubetask_image_offline_with_buildah_only(tmp_path: Path) -> None:
    (tmp_path / "six-1.17.0-py2.py3-none-any.whl").write_bytes(b"")
    done = images("--print", ENGINE="buildah", ONLY="kubetask", WHEELHOUSE=str(tmp_path))
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    assert f"--volume {tmp_path}:/wheelhouse:ro" in line and "--network none" in line
    assert "PIP_INSTALL_ARGS=--no-index\\ --find-links\\ /wheelhouse" in line, line
    refused = images("--print", ENGINE="docker", ONLY="kubetask", WHEELHOUSE=str(tmp_path))
    assert refused.returncode == 2 and "WHEELHOUSE needs buildah" in refused.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """Debian's docker-registry (the CNCF distribution registry) on loopback, storing in tmp_path."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry not installed (hack/build-realnode.sh installs it)")
    port = _free_port()
    config = tmp_path / "registry.yml"
    config.write_text(json.dumps({"version": 0.1, "log": {"level": "warn"},
                                  "storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}},
                                  "http": {"addr": f"127.0.0.1:{port}"}}))
    log = (tmp_path / "registry.log").open("w")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "registry.log").read_text()
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_buildah_builds_and_pushes_to_the_registry_named(registry: str) -> None:
    if shutil.which("buildah") is None or os.geteuid() != 0:
        pytest.skip("needs buildah and root (hack/build-realnode.sh installs buildah)")
    probe = subprocess.run(["buildah", *STORAGE.split(), "inspect", "--type", "image", LOCAL_BASE], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no local Debian base {LOCAL_BASE} (hack/build-realnode.sh builds it)")
    wheelhouses = sorted((CACHE / "realnode").glob("wheelhouse-*/"))
    if not wheelhouses:
        pytest.skip("no wheelhouse for the kubetask image (hack/build-realnode.sh downloads one)")
    # The kubetask image too: no build container has a network here, so its wheels come from the
    # wheelhouse (WHEELHOUSE), as a user without one would build it.
    done = images("--push", ENGINE="buildah", BUILDAH_ARGS=STORAGE, PUSH_ARGS="--tls-verify=false", PYTHON_IMAGE=LOCAL_BASE,
                  REGISTRY=f"{registry}/kubetask", TAG="0.0.0-test", ONLY="kubetask,handler-base,handler-echo",
                  WHEELHOUSE=str(wheelhouses[-1]))
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("kubetask", "handler-base", "handler-echo"):
        tags = httpx.get(f"http://{registry}/v2/kubetask/{name}/tags/list", timeout=10).json()
        assert tags == {"name": f"kubetask/{name}", "tags": ["0.0.0-test"]}
        manifest = httpx.get(f"http://{registry}/v2/kubetask/{name}/manifests/0.0.0-test", timeout=10, headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"})
        assert manifest.status_code == 200 and manifest.json()["layers"], manifest.text[:500]
    # The echo image runs the echo handler on the SDK: its config says so.
    config_digest = httpx.get(f"http://{registry}/v2/kubetask/handler-echo/manifests/0.0.0-test", timeout=10, headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json"}).json()["config"]["digest"]
    config = httpx.get(f"http://{registry}/v2/kubetask/handler-echo/blobs/{config_digest}", timeout=10).json()
    assert config["config"]["User"].startswith("65532")  # the base's numeric non-root user
    # The kubetask image: the operator by default, as the same numeric user.
    config_digest = httpx.get(f"http://{registry}/v2/kubetask/kubetask/manifests/0.0.0-test", timeout=10, headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json"}).json()["config"]["digest"]
    config = httpx.get(f"http://{registry}/v2/kubetask/kubetask/blobs/{config_digest}", timeout=10).json()
    assert config["config"]["Cmd"] == ["kubetask-operator"] and config["config"]["User"] == "65532:65532", config["config"]
