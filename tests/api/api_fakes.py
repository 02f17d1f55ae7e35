"""An in-memory stand-in for the Kubernetes API, for the gateway's pure unit tests only.

It knows just enough (kubetask objects with resourceVersions, merge patch with a resourceVersion
precondition, watch, TokenReview, SubjectAccessReview) to exercise the gateway's own logic. The
real API server's behaviour is tested in tests/e2e against the local control plane.
"""

from __future__ import annotations

import asyncio
import copy
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from kubetask.api.app import create_app
from kubetask.api.settings import GatewaySettings
from kubetask.kube import ApiError, Connection

PATH = re.compile(r"^/apis/kubetask\.io/v1alpha1(?:/namespaces/([^/]+))?/(tasks|tasktypes|taskqueues|taskschedules|taskwebhooks|taskgroups)(?:/([^/]+))?(?:/(status))?$")
ADMIN_TOKEN = "admin-token"


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


class FakeKube:
    def __init__(self) -> None:
        self.connection = Connection(server="http://fake.invalid")
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.version = 100
        self.watchers: list[tuple[str, str | None, asyncio.Queue[dict[str, Any]]]] = []
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.tokens: dict[str, dict[str, Any]] = {ADMIN_TOKEN: {"username": "alice", "uid": "u-1", "groups": ["team-a"]}}
        self.allow: Callable[[dict[str, Any], dict[str, Any]], bool] = lambda user, attributes: True
        self.watch_error: BaseException | None = None  # raised by every watch while set (a bug's stand-in), also mid-watch at the next event

    # -- helpers for tests ---------------------------------------------------------------------
    def put(self, plural: str, namespace: str, name: str, spec: dict[str, Any], status: dict[str, Any] | None = None,
            **metadata: Any) -> dict[str, Any]:
        self.version += 1
        obj: dict[str, Any] = {"apiVersion": "kubetask.io/v1alpha1", "kind": plural[:-1],
                               "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()),
                                            "resourceVersion": str(self.version), "generation": 1,
                                            "creationTimestamp": "2026-01-01T00:00:00Z", **metadata},
                               "spec": spec}
        if status is not None:
            obj["status"] = status
        kind = "MODIFIED" if (plural, namespace, name) in self.objects else "ADDED"
        self.objects[(plural, namespace, name)] = obj
        self._publish(plural, kind, obj)
        return obj

    def set_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        obj = self.objects[("tasks", namespace, name)]
        self.version += 1
        obj["status"] = copy.deepcopy(status)
        obj["metadata"]["resourceVersion"] = str(self.version)
        self._publish("tasks", "MODIFIED", obj)
        return obj

    def created(self, plural: str = "tasks") -> list[dict[str, Any]]:
        return [o for (p, _, _), o in self.objects.items() if p == plural]

    def _publish(self, plural: str, kind: str, obj: dict[str, Any]) -> None:
        for watched, namespace, queue in self.watchers:
            if watched == plural and namespace in (None, obj["metadata"]["namespace"]):
                queue.put_nowait({"type": kind, "object": copy.deepcopy(obj)})

    # -- the Kube interface ----------------------------------------------------------------------
    async def get(self, path: str, **params: Any) -> dict[str, Any]:
        self.calls.append(("GET", path, params))
        if path == "/version":
            return {"gitVersion": "v1.34.0-fake"}
        match = PATH.match(path)
        if not match:
            raise ApiError(404, "NotFound", f"no such path {path}")
        namespace, plural, name, _ = match.groups()
        if name is None:
            items = [copy.deepcopy(o) for (p, ns, _), o in sorted(self.objects.items())
                     if p == plural and (namespace is None or ns == namespace)]
            metadata: dict[str, Any] = {"resourceVersion": str(self.version)}
            if params.get("continue"):  # the fake's continue token is the last name of the previous page
                items = [o for o in items if o["metadata"]["name"] > params["continue"]]
            if params.get("limit") and len(items) > int(params["limit"]):
                items = items[:int(params["limit"])]
                metadata["continue"] = items[-1]["metadata"]["name"]
            return {"items": items, "metadata": metadata}
        obj = self.objects.get((plural, namespace or "", name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{plural}.kubetask.io "{name}" not found')
        return copy.deepcopy(obj)

    async def create(self, path: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        self.calls.append(("POST", path, params))
        if path.endswith("/tokenreviews"):
            user = self.tokens.get(body["spec"]["token"])
            return {**body, "status": {"authenticated": True, "user": user} if user else {"authenticated": False, "error": "invalid bearer token"}}
        if path.endswith("/subjectaccessreviews"):
            spec = body["spec"]
            allowed = self.allow({"username": spec["user"], "groups": spec["groups"]}, spec["resourceAttributes"])
            return {**body, "status": {"allowed": allowed, **({} if allowed else {"reason": "RBAC: no rule allows it"})}}
        match = PATH.match(path)
        if not match:
            raise ApiError(404, "NotFound", f"no such path {path}")
        namespace, plural, _, _ = match.groups()
        name = body["metadata"]["name"]
        if (plural, namespace, name) in self.objects:
            raise ApiError(409, "AlreadyExists", f'{plural}.kubetask.io "{name}" already exists')
        if params.get("dryRun") == "All":
            return copy.deepcopy(body)
        meta = {k: v for k, v in body["metadata"].items() if k not in ("name", "namespace")}
        return copy.deepcopy(self.put(plural, namespace or "", name, body["spec"], **meta))

    async def patch(self, path: str, body: Any, content_type: str = "", **params: Any) -> dict[str, Any]:
        self.calls.append(("PATCH", path, {"body": body}))
        match = PATH.match(path)
        assert match, path
        namespace, plural, name, _ = match.groups()
        obj = self.objects.get((plural, namespace or "", name or ""))
        if obj is None:
            raise ApiError(404, "NotFound", "not found")
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != obj["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified")
        merge(obj, {k: v for k, v in body.items() if k != "metadata"})
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self._publish(plural, "MODIFIED", obj)
        return copy.deepcopy(obj)

    async def delete(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        match = PATH.match(path)
        assert match, path
        namespace, plural, name, _ = match.groups()
        obj = self.objects.pop((plural, namespace or "", name or ""))
        self._publish(plural, "DELETED", obj)
        return obj

    async def watch(self, path: str, resource_version: str | None = None, timeout_seconds: int = 300,
                    **params: Any) -> AsyncIterator[dict[str, Any]]:
        match = PATH.match(path)
        assert match, path
        namespace, plural, _, _ = match.groups()
        if self.watch_error is not None:
            raise self.watch_error
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        entry = (plural, namespace, queue)
        self.watchers.append(entry)
        try:
            while True:
                event = await queue.get()
                if self.watch_error is not None:
                    raise self.watch_error
                if event.get("type") == "ERROR" and event["object"].get("code") == 410:
                    yield event
                    return
                yield event
        finally:
            self.watchers.remove(entry)

    async def close(self) -> None:
        pass


def settings(**overrides: Any) -> GatewaySettings:
    return GatewaySettings(**{"host": "127.0.0.1", "auth_cache_seconds": 0, "max_body_bytes": 64 * 1024, **overrides})


SIM_SCHEMA = {"type": "object", "properties": {"n": {"type": "integer", "maximum": 10}}, "additionalProperties": False}


def seed(kube: FakeKube, namespace: str = "team-a") -> None:
    kube.put("tasktypes", namespace, "sim", {"image": "example.invalid/h:1", "parametersSchema": SIM_SCHEMA,
                                             "limits": {"cpu": "2", "retries": 3}})
    kube.put("taskqueues", namespace, "default", {"maxRunning": 2}, {"pending": 1, "running": 2})


@asynccontextmanager
async def client(kube: FakeKube, token: str | None = ADMIN_TOKEN, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app in this event loop, lifespan included, caches synced."""
    app = create_app(settings(**overrides), kube)
    async with app.router.lifespan_context(app):
        gateway = app.state.gateway
        for _ in range(200):
            if all(c.synced for c in gateway.caches):
                break
            await asyncio.sleep(0.01)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway", headers=headers) as http:
            yield http


async def settle(kube: FakeKube) -> None:
    """Let the caches see what the fake just published."""
    for _ in range(5):
        await asyncio.sleep(0)
