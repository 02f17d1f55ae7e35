"""kubetask.kube's configuration on the kubernetes_asyncio library: KUBECONFIG lists, contexts,
exec credential plugins, inline TLS material that never stays on disk, and the library internals
kubetask.kube leans on (checked loudly, so a library upgrade that moves them fails here first).

No API server here: tests/integration/test_kubeconfigs.py runs the operator and the gateway on
such kubeconfigs against the local control plane."""

from __future__ import annotations

import asyncio
import base64
import inspect
import os
import ssl
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio.config import kube_config

from kubetask.kube import Connection, KubeconfigError


def kubeconfig(path: Path, *, clusters: dict[str, dict[str, Any]] | None = None, users: dict[str, dict[str, Any]] | None = None,
               contexts: dict[str, tuple[str, str]] | None = None, current: str | None = None) -> Path:
    config: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in (clusters or {}).items()],
        "users": [{"name": n, "user": u} for n, u in (users or {}).items()],
        "contexts": [{"name": n, "context": {"cluster": c, "user": u}} for n, (c, u) in (contexts or {}).items()],
    }
    if current:
        config["current-context"] = current
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """A self-signed certificate and its key (PEM), made by openssl for this run."""
    folder = tmp_path_factory.mktemp("pki")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=kubetask-test",
                    "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")], check=True, capture_output=True)
    return (folder / "cert.pem").read_bytes(), (folder / "key.pem").read_bytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def leftovers() -> set[str]:
    return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith("kubetask-")}


def test_library_internals_that_kubetask_kube_relies_on() -> None:
    """If this fails after a kubernetes_asyncio upgrade, re-verify kubetask/kube.py against the new
    loader (temporary files, the user section, the exec plugin's expiry) before widening the pin."""
    assert isinstance(kube_config._temp_files, dict)
    loader = kube_config.KubeConfigLoader({"current-context": "c", "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                                           "clusters": [{"name": "k", "cluster": {"server": "http://x"}}],
                                           "users": [{"name": "u", "user": {"exec": {"command": "x", "apiVersion": "v1"}}}]})
    assert "exec" in loader._user
    source = inspect.getsource(kube_config.KubeConfigLoader.load_from_exec_plugin)
    assert "self.exec_plugin_expiry" in source and "self.token" in source and "self._temp_file_path" in source
    assert "_temp_files[content_key] = name" in inspect.getsource(kube_config.FileOrData._create_temp_file_with_content)


def test_a_kubeconfig_list_merges_as_kubectl_does(tmp_path: Path) -> None:
    first = kubeconfig(tmp_path / "one", clusters={"a": {"server": "http://127.0.0.1:1"}}, users={"ua": {"token": "token-a"}},
                       contexts={"ctx-a": ("a", "ua")}, current="ctx-a")
    # The second file redefines the cluster `a` (ignored: the first file to name it wins), adds its
    # own context and user, and sets current-context too (ignored: the first file's wins).
    second = kubeconfig(tmp_path / "two", clusters={"a": {"server": "http://127.0.0.1:9"}, "b": {"server": "http://127.0.0.1:2"}},
                        users={"ub": {"token": "token-b"}}, contexts={"ctx-b": ("b", "ub")}, current="ctx-b")
    listed = f"{first}{os.pathsep}{second}"
    current = Connection.load(listed)
    assert (current.server, current.headers()) == ("http://127.0.0.1:1", {"Authorization": "Bearer token-a"})
    named = Connection.load(listed, context="ctx-b")
    assert (named.server, named.headers()) == ("http://127.0.0.1:2", {"Authorization": "Bearer token-b"})


def test_kubeconfig_env_list_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    users = kubeconfig(tmp_path / "users", users={"u": {"token": "from-env"}})
    rest = kubeconfig(tmp_path / "rest", clusters={"k": {"server": "http://127.0.0.1:3"}}, contexts={"c": ("k", "u")}, current="c")
    monkeypatch.setenv("KUBECONFIG", f"{users}{os.pathsep}{tmp_path / 'missing'}{os.pathsep}{rest}")
    connection = Connection.load()
    assert (connection.server, connection.headers()) == ("http://127.0.0.1:3", {"Authorization": "Bearer from-env"})


def test_a_missing_context_or_file_is_a_clear_error(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", clusters={"k": {"server": "http://127.0.0.1:1"}}, users={"u": {"token": "t"}},
                      contexts={"c": ("k", "u")}, current="c")
    with pytest.raises(KubeconfigError, match="'nope'"):
        Connection.load(path, context="nope")
    with pytest.raises(KubeconfigError, match="no kubeconfig found"):
        Connection.load(tmp_path / "absent")


def test_inline_tls_material_is_kept_in_memory_not_on_disk(tmp_path: Path, key_pair: tuple[bytes, bytes]) -> None:
    cert, key = key_pair
    before = leftovers()
    path = kubeconfig(tmp_path / "config", clusters={"k": {"server": "https://127.0.0.1:6443", "certificate-authority-data": b64(cert)}},
                      users={"u": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}},
                      contexts={"c": ("k", "u")}, current="c")
    connection = Connection.load(path)
    assert connection.tls == type(connection.tls)(ca=cert, cert=cert, key=key)
    assert leftovers() == before, "the library's temporary files were removed at once"
    assert not [p for p in kube_config._temp_files.values() if os.path.exists(p)]
    context = connection.ssl_context()
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert leftovers() == before, "the files an ssl context loads from are gone once it has loaded them"
    # Loading the same content again works although its files are gone (the library's memo is cleared).
    assert Connection.load(path).tls.key == key


def test_insecure_skip_tls_verify_keeps_the_client_certificate(tmp_path: Path, key_pair: tuple[bytes, bytes]) -> None:
    cert, key = key_pair
    path = kubeconfig(tmp_path / "config", clusters={"k": {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}},
                      users={"u": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}},
                      contexts={"c": ("k", "u")}, current="c")
    connection = Connection.load(path)
    assert connection.verify is False and connection.tls.cert == cert and connection.tls.key == key
    context = connection.ssl_context()
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_NONE


def exec_plugin(tmp_path: Path, lifetime_seconds: int | None) -> tuple[Path, Path]:
    """A credential plugin that prints token-1, token-2, ... (one more each run) and counts its runs."""
    runs = tmp_path / "runs"
    script = tmp_path / "plugin.py"
    expiry = (f"(datetime.now(timezone.utc) + timedelta(seconds={lifetime_seconds})).strftime('%Y-%m-%dT%H:%M:%SZ')"
              if lifetime_seconds is not None else "None")
    script.write_text(f"""import json, os, sys
from datetime import datetime, timedelta, timezone
runs = {str(runs)!r}
n = (int(open(runs).read()) if os.path.exists(runs) else 0) + 1
open(runs, "w").write(str(n))
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
status = {{"token": f"token-{{n}}"}}
expiry = {expiry}
if expiry:
    status["expirationTimestamp"] = expiry
print(json.dumps({{"apiVersion": info["apiVersion"], "kind": "ExecCredential", "status": status}}))
""")
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable, "args": [str(script)],
                     "interactiveMode": "Never"}}
    path = kubeconfig(tmp_path / "config", clusters={"k": {"server": "http://127.0.0.1:1"}}, users={"u": user},
                      contexts={"c": ("k", "u")}, current="c")
    return path, runs


def test_an_exec_plugin_gives_the_token_and_runs_again_when_it_expires(tmp_path: Path) -> None:
    path, runs = exec_plugin(tmp_path, lifetime_seconds=5)  # inside EXPIRY_MARGIN: due at once

    async def scenario() -> list[str | None]:
        connection = await Connection.resolve(path)
        assert connection.refreshable and connection.expiration is not None
        assert connection.expiration <= datetime.now(timezone.utc) + timedelta(seconds=6)
        return [connection.authorization_now(), await connection.authorization()]

    assert asyncio.run(scenario()) == ["Bearer token-1", "Bearer token-2"]
    assert runs.read_text() == "2"


def test_an_exec_token_without_expiry_is_reused_until_a_401_asks_again(tmp_path: Path) -> None:
    path, runs = exec_plugin(tmp_path, lifetime_seconds=None)

    async def scenario() -> list[str | None]:
        connection = await Connection.resolve(path)
        seen = [await connection.authorization(), await connection.authorization()]
        await connection.refresh()  # what Kube does on a 401
        return [*seen, await connection.authorization()]

    assert asyncio.run(scenario()) == ["Bearer token-1", "Bearer token-1", "Bearer token-2"]
    assert runs.read_text() == "2"


def test_a_failing_exec_plugin_is_a_clear_error(tmp_path: Path) -> None:
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable, "args": ["-c", "import sys; sys.exit(3)"]}}
    path = kubeconfig(tmp_path / "config", clusters={"k": {"server": "http://127.0.0.1:1"}}, users={"u": user},
                      contexts={"c": ("k", "u")}, current="c")
    with pytest.raises(KubeconfigError, match="returned 3"):
        Connection.load(path)


def test_with_token_keeps_server_and_ca_but_no_client_certificate(tmp_path: Path, key_pair: tuple[bytes, bytes]) -> None:
    cert, key = key_pair
    path = kubeconfig(tmp_path / "config", clusters={"k": {"server": "https://127.0.0.1:6443", "certificate-authority-data": b64(cert)}},
                      users={"u": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}},
                      contexts={"c": ("k", "u")}, current="c")
    caller = Connection.load(path).with_token("caller")
    assert (caller.server, caller.tls.ca, caller.tls.cert, caller.headers()) == (
        "https://127.0.0.1:6443", cert, None, {"Authorization": "Bearer caller"})


def test_kopf_login_gets_the_same_credentials_in_memory(tmp_path: Path, key_pair: tuple[bytes, bytes]) -> None:
    from kubetask.operator.handlers import login_info

    cert, key = key_pair
    path = kubeconfig(tmp_path / "config", clusters={"k": {"server": "https://127.0.0.1:6443", "certificate-authority-data": b64(cert)}},
                      users={"u": {"client-certificate-data": b64(cert), "client-key-data": b64(key), "token": "t"}},
                      contexts={"c": ("k", "u")}, current="c")
    connection = Connection.load(path)
    info = login_info(connection, connection.authorization_now())
    assert (info.server, info.ca_data, info.certificate_data, info.private_key_data, info.scheme, info.token, info.ca_path) == (
        "https://127.0.0.1:6443", cert, cert, key, "Bearer", "t", None)


def test_requests_read_the_environment_once_not_per_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No thread hop per request for ~/.netrc and the proxy variables (aiohttp's trust_env): the
    proxy the environment names for the server is read once, when the client is made, and still
    used; NO_PROXY still exempts a server. Requests go to a real local HTTP server."""
    from aiohttp import web

    from kubetask.kube import Kube

    async def scenario() -> tuple[int, int, str | None, str | None]:
        async def versions(request: web.Request) -> web.Response:
            return web.json_response({"kind": "APIVersions"})

        app = web.Application()
        app.router.add_get("/api", versions)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        path = kubeconfig(tmp_path / "config", clusters={"k": {"server": f"http://127.0.0.1:{port}"}}, users={"u": {"token": "t"}},
                          contexts={"c": ("k", "u")}, current="c")
        loop = asyncio.get_running_loop()
        hops = 0
        original = loop.run_in_executor

        def counting(*args: Any) -> Any:
            nonlocal hops
            hops += 1
            return original(*args)

        monkeypatch.setattr(loop, "run_in_executor", counting)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
        kube = Kube(Connection.load(str(path)))
        answers = [await kube.get("/api") for _ in range(5)]
        exempt = kube._api.rest_client.proxy
        await kube.close()
        monkeypatch.delenv("NO_PROXY")
        proxied = Kube(Connection.load(str(path)))
        proxy = proxied._api.rest_client.proxy  # made, not used: the proxy does not exist
        await proxied.close()
        await runner.cleanup()
        return hops, len(answers), exempt, proxy

    hops, answered, exempt, proxy = asyncio.run(scenario())
    assert answered == 5
    assert hops == 0  # aiohttp's trust_env would take 2 per request
    assert exempt is None  # NO_PROXY names the server
    assert proxy == "http://proxy.invalid:3128"
