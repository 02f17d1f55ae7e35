"""A small Kubernetes API client on httpx, shared by the operator, the gateway and the tests.

Why not the official clients: kubetask only needs JSON in, JSON out (create, get, list, patch,
delete, watch) on a handful of paths, and dicts are what the pure functions take. Kopf keeps its
own connection for watching; this one does the writes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
import yaml

from kubetask.resources.models import GROUP, VERSION

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MERGE_PATCH = "application/merge-patch+json"
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
    def from_response(cls, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = {"message": response.text}
        return cls(response.status_code, body.get("reason", response.reason_phrase), body.get("message", response.text), body)


@dataclass
class Connection:
    """Where the API server is and how to authenticate to it."""

    server: str
    ca_file: str | None = None
    verify: bool = True
    client_cert: tuple[str, str] | None = None
    token: str | None = None
    token_file: str | None = None
    _temp: list[str] = field(default_factory=list, repr=False)

    @classmethod
    def load(cls, kubeconfig: str | os.PathLike[str] | None = None) -> Connection:
        """Explicit kubeconfig, else $KUBECONFIG, else the in-cluster service account, else ~/.kube/config."""
        path = kubeconfig or os.environ.get("KUBECONFIG")
        if not path and (SERVICE_ACCOUNT_DIR / "token").exists() and os.environ.get("KUBERNETES_SERVICE_HOST"):
            return cls.in_cluster()
        return cls.from_kubeconfig(Path(path or Path.home() / ".kube" / "config"))

    @classmethod
    def in_cluster(cls) -> Connection:
        host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if ":" in host:
            host = f"[{host}]"
        return cls(server=f"https://{host}:{port}", ca_file=str(SERVICE_ACCOUNT_DIR / "ca.crt"),
                   token_file=str(SERVICE_ACCOUNT_DIR / "token"))

    @classmethod
    def from_kubeconfig(cls, path: Path) -> Connection:
        config = yaml.safe_load(path.read_text())
        context_name = config.get("current-context")
        context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user: dict[str, Any] = next((u["user"] for u in config.get("users", []) if u["name"] == context.get("user")), {})
        conn = cls(server=cluster["server"].rstrip("/"), verify=not cluster.get("insecure-skip-tls-verify", False))
        base = path.parent

        def file_of(key: str, data_key: str, holder: dict[str, Any]) -> str | None:
            if holder.get(data_key):
                handle = tempfile.NamedTemporaryFile(delete=False, prefix="kubetask-", suffix=".pem")
                handle.write(base64.b64decode(holder[data_key]))
                handle.close()
                conn._temp.append(handle.name)
                return handle.name
            if holder.get(key):
                return str((base / holder[key]).resolve())
            return None

        conn.ca_file = file_of("certificate-authority", "certificate-authority-data", cluster)
        cert = file_of("client-certificate", "client-certificate-data", user)
        key = file_of("client-key", "client-key-data", user)
        if cert and key:
            conn.client_cert = (cert, key)
        conn.token = user.get("token")
        conn.token_file = user.get("tokenFile")
        return conn

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https"):
            return False
        if not self.verify:
            return False
        context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()
        if self.client_cert:
            context.load_cert_chain(*self.client_cert)
        return context

    def headers(self) -> dict[str, str]:
        token = self.token
        if self.token_file:
            token = Path(self.token_file).read_text().strip()  # re-read: projected tokens rotate
        return {"Authorization": f"Bearer {token}"} if token else {}

    def with_token(self, token: str) -> Connection:
        """The same server and CA, authenticated as someone else (used by tests and the gateway)."""
        return Connection(server=self.server, ca_file=self.ca_file, verify=self.verify, token=token)


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


class Kube:
    """Async JSON client. One instance per process; it keeps a connection pool.

    At most `max_in_flight` requests are on the wire at once; the rest wait on a semaphore, not
    in httpcore's pool queue. httpcore scans every queued request against every connection each
    time one starts or ends, so a thousand queued status patches (a burst of Tasks) cost O(n²)
    and were 40 % of the operator's CPU; even without a queue each scan checks every idle
    connection's socket, so the limit is small. Watches hold their own connection outside it.
    """

    # Called before every write when set, in every instance of the process: the operator's leader
    # election (kubetask.operator.leader) sets it so that a process whose Lease may have lapsed
    # (a renewal overdue, say after the process was paused) exits instead of writing. Reads are
    # never fenced.
    write_fence: ClassVar[Callable[[], None] | None] = None

    def __init__(self, connection: Connection, timeout: float = 30.0, max_in_flight: int = 8) -> None:
        self.connection = connection
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._client = httpx.AsyncClient(
            base_url=connection.server, verify=connection.ssl_context(), timeout=timeout,
            # No pool limits: the semaphore bounds requests, and a keep-alive limit would count the
            # gateway's long-lived watches too and close a connection after every request (a TLS
            # handshake each time: a fifth of the gateway's CPU on submit).
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def request(self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None,
                      content_type: str = "application/json") -> dict[str, Any]:
        headers = {**self.connection.headers(), "Accept": "application/json"}
        content = None
        if body is not None:
            headers["Content-Type"] = content_type
            content = json.dumps(body)
        async with self._in_flight:
            fence = Kube.write_fence
            if fence is not None and method != "GET":
                fence()  # last thing before the request leaves: after any wait for the semaphore
            response = await self._client.request(method, path, content=content, params=params, headers=headers)
        if response.status_code >= 400:
            raise ApiError.from_response(response)
        return response.json() if response.content else {}

    async def get(self, path: str, **params: Any) -> dict[str, Any]:
        return await self.request("GET", path, params=params or None)

    async def create(self, path: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        return await self.request("POST", path, body=body, params=params or None)

    async def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH, **params: Any) -> dict[str, Any]:
        return await self.request("PATCH", path, body=body, content_type=content_type, params=params or None)

    async def delete(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.request("DELETE", path, body=body)

    async def watch(self, path: str, resource_version: str | None = None, timeout_seconds: int = 300,
                    **params: Any) -> AsyncIterator[dict[str, Any]]:
        """Yields watch events ({type, object}) until the server closes the stream."""
        query = {"watch": "true", "timeoutSeconds": timeout_seconds, "allowWatchBookmarks": "true", **params}
        if resource_version:
            query["resourceVersion"] = resource_version
        headers = {**self.connection.headers(), "Accept": "application/json"}
        async with self._client.stream("GET", path, params=query, headers=headers,
                                       timeout=httpx.Timeout(timeout_seconds + 30, connect=10)) as response:
            if response.status_code >= 400:
                await response.aread()
                raise ApiError.from_response(response)
            async for line in response.aiter_lines():
                if line.strip():
                    yield json.loads(line)


class KubeSync:
    """The same client, synchronous: for tests, scripts and benchmarks."""

    def __init__(self, connection: Connection, timeout: float = 30.0) -> None:
        self.connection = connection
        self._client = httpx.Client(base_url=connection.server, verify=connection.ssl_context(), timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None,
                content_type: str = "application/json", raw: str | None = None) -> dict[str, Any]:
        headers = {**self.connection.headers(), "Accept": "application/json"}
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
        headers = {**self.connection.headers(), "Accept": "application/json"}
        with self._client.stream("GET", path, params=query, headers=headers,
                                 timeout=httpx.Timeout(timeout_seconds + 30, connect=10)) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiError.from_response(response)
            for line in response.iter_lines():
                if line.strip():
                    yield json.loads(line)
