"""kubetask's door to the Kubernetes API, on the `kubernetes_asyncio` library.

The library does what every user's kubeconfig needs: `KUBECONFIG` lists merged the way kubectl
merges them, context selection, `exec` credential plugins (how EKS, GKE, AKS and OIDC logins work),
auth providers, in-cluster service accounts with rotating tokens, and TLS. Requests go through the
library's `ApiClient` too, raw (`_preload_content=False`): kubetask's pure functions take and return
plain dicts, so the generated model classes would only be converted there and back. The operator,
the gateway and Kopf's own login (`kubetask.operator.handlers.login`) all start from
`Connection.resolve`.

What is ours, and why:
- `Connection` keeps the TLS material in memory. The library writes inline certificate and key
  data to temporary files and removes them only at exit (atexit, which SIGKILL skips); we read
  them and remove them at once, and write them again only for the instant an ssl context loads
  them (Python's ssl loads a client certificate from a file only), as Kopf does.
- An exec plugin is run again when its token expires or the API server answers 401, as client-go
  does; the library runs the plugin and parses its ExecCredential, but refreshes only from a
  polling loop of the caller's.
- `Kube` bounds the requests in flight and fences writes for leader election (see the class).
- `KubeSync` is the tests', scripts' and benchmarks' synchronous client: httpx on the same resolved
  configuration (the library has no synchronous flavour; the `kubernetes` package would be a second
  copy of it for tests alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import ssl
import tempfile
import threading
from importlib.metadata import version as _version
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import httpx
import orjson
import yaml
import yarl

from kubetask import lazy_client

lazy_client.install()  # before the first import of kubernetes_asyncio (the gateway's path): see lazy_client
from kubernetes_asyncio.client import ApiClient, Configuration  # noqa: E402
from kubernetes_asyncio.config import ConfigException, incluster_config, kube_config  # noqa: E402

from kubetask.resources.models import GROUP, VERSION

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
def decode_json(data: str | bytes) -> Any:
    """The API server's JSON, decoded by orjson: several times faster than the standard library on
    Kubernetes objects, and every watch event and answer of the operator and the gateway passes
    here. The same objects as `json.loads` gives for what the API server sends: orjson reads an
    integer beyond 64 bits as a float, but the API server never sends one (it stores such a number
    as a float itself: 123456789012345678901234567890 in a Task's parameters comes back as
    1.2345678901234568e+29, tried on the local control plane). Anything orjson refuses goes to the
    standard library, so an error reads the same too."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


MERGE_PATCH = "application/merge-patch+json"
USER_AGENT = f"kubetask/{_version('kubetask')}"
EXPIRY_MARGIN = timedelta(seconds=10)  # run an exec plugin again this long before its token expires
JSON_PATCH = "application/json-patch+json"


class ApiError(Exception):
    """An error answer from the API server, with its Status fields."""

    def __init__(self, status: int, reason: str, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body or {}

    @classmethod
    def from_answer(cls, status: int, phrase: str, text: str) -> ApiError:
        try:
            body = decode_json(text)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {"message": text}
        return cls(status, body.get("reason") or phrase, body.get("message") or text, body)

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        return cls.from_answer(response.status_code, response.reason_phrase, response.text)


class TransportError(Exception):
    """The API server could not be reached or did not answer in time (no HTTP status)."""


class KubeconfigError(Exception):
    """No usable configuration: a missing file or context, a failed exec plugin. The message says which."""


# ---------------------------------------------------------------------------------------------
# Configuration and credentials
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TlsMaterial:
    """The CA, client certificate and key as bytes in memory, never as files that outlive a load."""

    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None

    @contextlib.contextmanager
    def files(self) -> Iterator[tuple[str | None, str | None, str | None]]:
        """Paths to the material for as long as the block runs: a private directory, then gone."""
        folder = tempfile.mkdtemp(prefix="kubetask-tls-")  # mode 0700
        try:
            paths: list[str | None] = []
            for name, data in (("ca.crt", self.ca), ("client.crt", self.cert), ("client.key", self.key)):
                if data is None:
                    paths.append(None)
                    continue
                path = os.path.join(folder, name)
                with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
                    handle.write(data)
                paths.append(path)
            yield paths[0], paths[1], paths[2]
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


@dataclass
class Connection:
    """Where the API server is and how to authenticate to it, as the library resolved it.

    Build one with `await Connection.resolve()` (or `Connection.load()` where nothing is async).
    """

    server: str
    tls: TlsMaterial = TlsMaterial()
    verify: bool = True
    tls_server_name: str | None = None
    proxy: str | None = None
    # The library's resolved configuration and loader: their api_key holds the Authorization
    # value, refreshed by the in-cluster hook (rotating projected tokens) or by re-running the exec plugin.
    _resolved: Configuration | None = field(default=None, repr=False)
    _loader: kube_config.KubeConfigLoader | None = field(default=None, repr=False)
    _authorization: str | None = field(default=None, repr=False)
    _refreshing: asyncio.Lock | None = field(default=None, repr=False)
    _scratch: str | None = field(default=None, repr=False)  # where the library writes inline data; removed after each load

    @classmethod
    async def resolve(cls, kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None) -> Connection:
        """kubeconfig (a path, or a list like $KUBECONFIG's), else $KUBECONFIG, else the in-cluster
        service account, else ~/.kube/config; `context` names a context, else the current one."""
        paths = os.fspath(kubeconfig) if kubeconfig else os.environ.get("KUBECONFIG", "")
        resolved: Configuration = type.__call__(Configuration)  # a fresh one, not the library's process default
        loader: kube_config.KubeConfigLoader | None = None
        if not paths and (SERVICE_ACCOUNT_DIR / "token").exists() and os.environ.get("KUBERNETES_SERVICE_HOST"):
            incluster_config.load_incluster_config(client_configuration=resolved)  # type: ignore[no-untyped-call]
        else:
            paths = paths or os.path.expanduser(kube_config.KUBE_CONFIG_DEFAULT_LOCATION)
            present = [p for p in paths.split(os.pathsep) if p and os.path.exists(os.path.expanduser(p))]
            if not present:
                raise KubeconfigError(f"no kubeconfig found at {paths} (set KUBECONFIG, or run inside a cluster)")
            context = context or _first_current_context(present)
            scratch = tempfile.mkdtemp(prefix="kubetask-kubeconfig-")
            try:
                loader = await kube_config.load_kube_config(config_file=paths, context=context, client_configuration=resolved,
                                                            persist_config=False, temp_file_path=scratch)
                tls = TlsMaterial(_read(resolved.ssl_ca_cert), _read(resolved.cert_file), _read(resolved.key_file))
            except (ConfigException, AssertionError, KeyError, TypeError) as error:
                raise KubeconfigError(_kubeconfig_problem(paths, context, error)) from error
            finally:
                _forget_library_files(scratch)
            connection = cls._of(resolved, loader, tls)
            connection._scratch = scratch
            return connection
        return cls._of(resolved, loader, TlsMaterial(_read(resolved.ssl_ca_cert)))

    @classmethod
    def load(cls, kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None) -> Connection:
        """`resolve` for callers that are not async (tests, scripts, benchmarks)."""
        connection: Connection = _run_sync(cls.resolve(kubeconfig, context))
        return connection

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str], context: str | None = None) -> Connection:
        return cls.load(path, context)

    @classmethod
    def _of(cls, resolved: Configuration, loader: kube_config.KubeConfigLoader | None, tls: TlsMaterial) -> Connection:
        return cls(server=str(resolved.host).rstrip("/"), tls=tls, verify=bool(resolved.verify_ssl),
                   tls_server_name=resolved.tls_server_name, proxy=resolved.proxy, _resolved=resolved, _loader=loader,
                   _authorization=resolved.api_key.get("BearerToken"))

    def with_token(self, token: str) -> Connection:
        """The same server and CA, authenticated by this bearer token alone (the gateway's callers, tests)."""
        return Connection(server=self.server, tls=TlsMaterial(ca=self.tls.ca), verify=self.verify,
                          tls_server_name=self.tls_server_name, proxy=self.proxy, _authorization=f"Bearer {token}")

    # -- credentials ------------------------------------------------------------------------

    def authorization_now(self) -> str | None:
        """The Authorization header value as it stands (rotating in-cluster tokens re-read)."""
        hook: Callable[[Configuration], None] | None = getattr(self._resolved, "refresh_api_key_hook", None)
        if hook is not None and self._resolved is not None and self._loader is None:
            hook(self._resolved)  # the library's in-cluster hook (synchronous): re-reads the rotating token file
            self._authorization = self._resolved.api_key.get("BearerToken")
        return self._authorization

    def headers(self) -> dict[str, str]:
        """The Authorization header as it stands, for a plain HTTP client (KubeSync, tests)."""
        value = self.authorization_now()
        return {"Authorization": value} if value else {}

    async def authorization(self) -> str | None:
        """The Authorization header value, running the exec plugin again first if its token expired."""
        expiry = self.expiration
        if expiry is not None and expiry - EXPIRY_MARGIN <= datetime.now(timezone.utc):
            await self.refresh()
        return self.authorization_now()

    @property
    def refreshable(self) -> bool:
        """True when new credentials can be had by asking again (an exec plugin)."""
        # The loader keeps the context's user section private and offers no accessor for it.
        user = getattr(self._loader, "_user", None)
        return user is not None and "exec" in user

    async def refresh(self) -> None:
        """Run the exec plugin again (after a 401, or once its token expired); one run at a time."""
        if not self.refreshable or self._loader is None or self._resolved is None or self._scratch is None:
            return
        if self._refreshing is None:
            self._refreshing = asyncio.Lock()
        async with self._refreshing:
            before = self._authorization
            with contextlib.suppress(AttributeError):
                del self._loader.exec_plugin_expiry  # the library skips the plugin while its expiry is ahead
            scratch = self._scratch  # the loader's temp_file_path: the library makes the directory again
            try:
                await self._loader.load_from_exec_plugin()
                if getattr(self._loader, "token", None):
                    self._authorization = self._loader.token
                cert_file, key_file = getattr(self._loader, "cert_file", None), getattr(self._loader, "key_file", None)
                if cert_file and key_file and str(cert_file).startswith(scratch):
                    self.tls = replace(self.tls, cert=_read(cert_file), key=_read(key_file))
            except ConfigException as error:
                raise KubeconfigError(f"the exec credential plugin failed: {error}") from error
            finally:
                _forget_library_files(scratch)
            if self._authorization != before:
                self._resolved.api_key["BearerToken"] = self._authorization

    @property
    def expiration(self) -> datetime | None:
        """When the exec plugin's token expires, if it said so."""
        expiry = getattr(self._loader, "exec_plugin_expiry", None)
        return expiry if isinstance(expiry, datetime) else None

    # -- TLS --------------------------------------------------------------------------------

    @property
    def https(self) -> bool:
        return self.server.startswith("https")

    def ssl_context(self) -> ssl.SSLContext | bool:
        """For httpx (KubeSync, the tests): the CA and client certificate, from memory."""
        if not self.https:
            return False
        context = ssl.create_default_context(cadata=self.tls.ca.decode()) if self.tls.ca else ssl.create_default_context()
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.tls.cert and self.tls.key:
            with self.tls.files() as (_, cert, key):
                assert cert and key
                context.load_cert_chain(cert, key)  # an insecure server still gets our client certificate
        return context

    def api_client(self) -> ApiClient:
        """The library's client for this connection. Its ssl context loads the material from files
        that exist only while the client is built."""
        configuration: Configuration = type.__call__(Configuration)
        configuration.host = self.server
        configuration.verify_ssl = self.verify
        configuration.tls_server_name = self.tls_server_name
        configuration.proxy = self.proxy
        if self._authorization:
            configuration.api_key["BearerToken"] = self._authorization

        async def current_credentials(target: Configuration) -> None:
            value = await self.authorization()  # called by the library before every request
            if value:
                target.api_key["BearerToken"] = value

        configuration.refresh_api_key_hook = current_credentials
        with self.tls.files() as (ca, cert, key):
            configuration.ssl_ca_cert, configuration.cert_file, configuration.key_file = ca, cert, key
            client = ApiClient(configuration)
        # The API server names the field manager of every write after the User-Agent's product:
        # "kubetask" in managedFields and audit logs, not the generated client's "OpenAPI-Generator".
        client.user_agent = USER_AGENT
        _environment_read_once(client, self.server)
        return client


def _environment_read_once(client: ApiClient, server: str) -> None:
    """The library opens its aiohttp session with `trust_env=True`, so every request looks up
    `~/.netrc` and the proxy variables again, each in a worker thread: two thread hops per request,
    about 3 % of the operator's busy time in a burst (docs/benchmarks.md). Read once instead: the
    proxy the environment names for this server (HTTPS_PROXY, NO_PROXY, as kubectl reads them)
    becomes the client's proxy unless the kubeconfig set one; `.netrc` is not read (kubectl never
    reads it; credentials come from the kubeconfig)."""
    rest = client.rest_client
    if not rest.proxy:
        try:
            proxy, proxy_auth = aiohttp.helpers.get_env_proxy_for_url(yarl.URL(server))
        except LookupError:
            proxy, proxy_auth = None, None
        if proxy is not None:
            rest.proxy = str(proxy)
            if proxy_auth is not None:
                rest.proxy_headers = {**(rest.proxy_headers or {}), "Proxy-Authorization": proxy_auth.encode()}
    # aiohttp has no public setter; tests/unit/test_kube_config.py checks the attribute is there.
    rest.pool_manager._trust_env = False


def _forget_library_files(scratch: str) -> None:
    """Remove the temporary files the library wrote inline kubeconfig data to, now instead of at exit.

    The library memoizes content → file in a module dict: entries pointing into our scratch directory
    must go too, or the next load of the same content would get a path that no longer exists.
    """
    files: dict[str, str] = kube_config._temp_files
    for key, path in list(files.items()):
        if path.startswith(scratch):
            del files[key]
    shutil.rmtree(scratch, ignore_errors=True)


def _first_current_context(paths: list[str]) -> str | None:
    """kubectl's rule for a KUBECONFIG list: the first file that sets current-context wins. The
    library's merger lets the last one win, so the context is chosen here and passed to it."""
    for path in paths:
        with open(os.path.expanduser(path)) as handle:
            config = yaml.safe_load(handle) or {}
        if isinstance(config, dict) and config.get("current-context"):
            return str(config["current-context"])
    return None


def _kubeconfig_problem(paths: str, context: str | None, error: Exception) -> str:
    if context and (isinstance(error, (AssertionError, KeyError, TypeError)) or f"name {context} in" in str(error)):
        return f"context {context!r} is not in the kubeconfig {paths}"
    if isinstance(error, (AssertionError, KeyError, TypeError)):
        return f"the kubeconfig {paths} has no usable current context, cluster or user ({type(error).__name__}: {error})"
    return f"the kubeconfig {paths} could not be used: {error}"


def _run_sync(coroutine: Any) -> Any:
    """Run a coroutine to its end from synchronous code, even where an event loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    result: list[Any] = []
    failure: list[BaseException] = []

    def worker() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as error:  # re-raised in the caller's thread
            failure.append(error)

    thread = threading.Thread(target=worker, name="kubetask-resolve")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------

def tasks_path(namespace: str | None = None, name: str | None = None, plural: str = "tasks", subresource: str | None = None) -> str:
    path = f"/apis/{GROUP}/{VERSION}"
    if namespace:
        path += f"/namespaces/{namespace}"
    path += f"/{plural}"
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


def core_path(resource: str, namespace: str | None = None, name: str | None = None, group: str = "", version: str = "v1") -> str:
    path = f"/apis/{group}/{version}" if group else f"/api/{version}"
    if namespace:
        path += f"/namespaces/{namespace}"
    path += f"/{resource}"
    if name:
        path += f"/{name}"
    return path


# ---------------------------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------------------------

class Kube:
    """Async JSON client on the library's ApiClient. One instance per purpose; it keeps a connection pool.

    At most `max_in_flight` requests are on the wire at once; the rest wait on a semaphore, so a
    burst of a thousand status patches queues here, in order, instead of opening a thousand
    connections. Watches and streams hold their own connection outside it.
    """

    # Called before every write when set, in every instance of the process: the operator's leader
    # election (kubetask.operator.leader) sets it so that a process whose Lease may have lapsed
    # (a renewal overdue, say after the process was paused) exits instead of writing. Reads are
    # never fenced.
    write_fence: ClassVar[Callable[[], None] | None] = None

    def __init__(self, connection: Connection, timeout: float = 30.0, max_in_flight: int = 8) -> None:
        self.connection = connection
        self.timeout = timeout
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._client: ApiClient | None = None  # made on first use: aiohttp wants a running event loop

    @property
    def _api(self) -> ApiClient:
        if self._client is None:
            self._client = self.connection.api_client()
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def request(self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None,
                      content_type: str = "application/json") -> dict[str, Any]:
        async with self._in_flight:
            fence = Kube.write_fence
            if fence is not None and method != "GET":
                fence()  # last thing before the request leaves: after any wait for the semaphore
            status, phrase, text = await self._send(method, path, body, params, content_type)
            if status == 401 and self.connection.refreshable:
                await self.connection.refresh()  # an exec plugin's token expired early: ask it again, once
                status, phrase, text = await self._send(method, path, body, params, content_type)
        if status >= 400:
            raise ApiError.from_answer(status, phrase, text)
        return decode_json(text) if text else {}

    async def _send(self, method: str, path: str, body: Any, params: dict[str, Any] | None,
                    content_type: str) -> tuple[int, str, str]:
        try:
            response = await self._api.call_api(
                path, method, query_params=_query(params), header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body, auth_settings=["BearerToken"], _preload_content=False, _request_timeout=self.timeout)
            async with response:
                return response.status, response.reason or "", await response.text()
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise TransportError(f"{method} {path}: {type(error).__name__}: {error}") from error

    async def get(self, path: str, **params: Any) -> dict[str, Any]:
        return await self.request("GET", path, params=params or None)

    async def create(self, path: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        return await self.request("POST", path, body=body, params=params or None)

    async def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH, **params: Any) -> dict[str, Any]:
        return await self.request("PATCH", path, body=body, content_type=content_type, params=params or None)

    async def delete(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.request("DELETE", path, body=body)

    @contextlib.asynccontextmanager
    async def stream(self, path: str, params: dict[str, Any] | None = None,
                     read_timeout: float | None = None) -> AsyncIterator[aiohttp.ClientResponse]:
        """A GET whose body is read as it arrives (watches, pod logs); ApiError before the first byte."""
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=read_timeout)
        try:
            response = await self._api.call_api(path, "GET", query_params=_query(params), header_params={"Accept": "application/json"},
                                                auth_settings=["BearerToken"], _preload_content=False, _request_timeout=timeout)
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise TransportError(f"GET {path}: {type(error).__name__}: {error}") from error
        async with response:
            if response.status >= 400:
                raise ApiError.from_answer(response.status, response.reason or "", await response.text())
            yield response

    async def watch(self, path: str, resource_version: str | None = None, timeout_seconds: int = 300,
                    **params: Any) -> AsyncIterator[dict[str, Any]]:
        """Yields watch events ({type, object}) until the server closes the stream."""
        query = {"watch": "true", "timeoutSeconds": timeout_seconds, "allowWatchBookmarks": "true", **params}
        if resource_version:
            query["resourceVersion"] = resource_version
        async with self.stream(path, query, read_timeout=timeout_seconds + 30) as response:
            try:
                async for line in response.content:  # one JSON event per line
                    if line.strip():
                        yield decode_json(line)
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                raise TransportError(f"watch {path}: {type(error).__name__}: {error}") from error


def _query(params: dict[str, Any] | None) -> list[tuple[str, str]] | None:
    if not params:
        return None
    return [(key, ("true" if value else "false") if isinstance(value, bool) else str(value)) for key, value in params.items()]


class KubeSync:
    """The same calls, synchronous, on httpx: for tests, scripts and benchmarks."""

    def __init__(self, connection: Connection, timeout: float = 30.0) -> None:
        self.connection = connection
        self._client = httpx.Client(base_url=connection.server, verify=connection.ssl_context(), timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def _headers(self) -> dict[str, str]:
        return {"Accept": "application/json", **self.connection.headers()}

    def request(self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None,
                content_type: str = "application/json", raw: str | None = None) -> dict[str, Any]:
        headers = self._headers()
        content: str | None = raw
        if body is not None:
            content = json.dumps(body)
        if content is not None:
            headers["Content-Type"] = content_type
        response = self._client.request(method, path, content=content, params=params, headers=headers)
        if response.status_code >= 400:
            raise ApiError.from_response(response)
        return response.json() if response.content else {}

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        return self.request("GET", path, params=params or None)

    def create(self, path: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        return self.request("POST", path, body=body, params=params or None)

    def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH, **params: Any) -> dict[str, Any]:
        return self.request("PATCH", path, body=body, content_type=content_type, params=params or None)

    def delete(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.request("DELETE", path, body=body)

    def watch(self, path: str, resource_version: str | None = None, timeout_seconds: int = 300, **params: Any) -> Iterator[dict[str, Any]]:
        """Yields watch events ({type, object}) until the server closes the stream."""
        query = {"watch": "true", "timeoutSeconds": timeout_seconds, **params}
        if resource_version:
            query["resourceVersion"] = resource_version
        with self._client.stream("GET", path, params=query, headers=self._headers(),
                                 timeout=httpx.Timeout(timeout_seconds + 30, connect=10)) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiError.from_response(response)
            for line in response.iter_lines():
                if line.strip():
                    yield decode_json(line)
