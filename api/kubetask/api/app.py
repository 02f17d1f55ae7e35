"""`create_app(settings, kube)`: the FastAPI application (tests build it directly; main() serves it)."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError

from kubetask.api import dashboard, errors
from kubetask.api.auth import Authorizer, DevAuthorizer, KubeAuthorizer
from kubetask.api.errors import GatewayError
from kubetask.api.logs import LogSource
from kubetask.api.metrics import GatewayMetrics
from kubetask.api.middleware import BodyLimitMiddleware, MetricsMiddleware
from kubetask.api.routes import deadletter, groups, health, registry, schedules, tasks
from kubetask.api.service import Gateway, KubeClient, batch_failure
from kubetask.api.settings import GatewaySettings
from kubetask.kube import Connection, Kube

log = logging.getLogger("kubetask.gateway")
_ITEM = re.compile(r"^items\[(\d+)\]")

DESCRIPTION = """\
Submit, inspect, follow, cancel and retry kubetask Tasks over REST; list the dead-lettered ones
(failed for good) and re-run them in bulk; list, create, trigger, suspend and resume TaskSchedules; submit a batch
as a TaskGroup and follow its progress. Every call carries a Kubernetes bearer token (`Authorization: Bearer ...`);
the cluster's RBAC decides what it may do (TokenReview + SubjectAccessReview on `tasks.kubetask.io`,
`taskschedules.kubetask.io`, ... in the path's namespace). Task reads come from a watch-backed
cache, TaskSchedule and TaskGroup reads from the API server; writes go to the API server. Errors share one shape:
`{"error": {"status", "reason", "message", "details": [{"field", "message"}]}}`.
See docs/gateway.md.
"""


def _batch_validation(request: Request, exc: RequestValidationError, error: GatewayError) -> GatewayError:
    """A batch whose items fail the request schema still gets one result per item."""
    body = getattr(exc, "body", None)
    if not request.url.path.endswith("/tasks:batch") or error.status not in (413, 422) or not isinstance(body, dict):
        return error
    items = body.get("items")
    if not isinstance(items, list) or not items:
        return error
    by_item: dict[int, list[tuple[str, str]]] = {}
    for field, message in error.details:
        match = _ITEM.match(field)
        if match is None:
            return error  # a problem with the batch as a whole (e.g. too many items)
        by_item.setdefault(int(match.group(1)), []).append((field, message))
    found = {index: errors.error_info(error.status, f"item {index} is invalid: " + "; ".join(f"{f}: {m}" for f, m in details[:3]),
                                      details=details)
             for index, details in by_item.items() if index < len(items)}
    if not found:
        return error
    names = [item.get("name") if isinstance(item, dict) and isinstance(item.get("name"), str) else None for item in items]
    return batch_failure(found, len(items), names)


def create_app(settings: GatewaySettings | None = None, kube: KubeClient | None = None,
               authorizer: Authorizer | None = None) -> FastAPI:
    """The gateway. Without `kube`, it connects with settings.kubeconfig (else $KUBECONFIG / in-cluster)
    at start and closes the client at shutdown; a given `kube` stays the caller's."""
    settings = settings or GatewaySettings()
    settings.check_dev_mode()
    metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own: Kube | None = None
        client: KubeClient
        if kube is None:
            own = Kube(Connection.load(settings.kubeconfig))
            client = own
        else:
            client = kube
        auth: Authorizer
        if authorizer is not None:
            auth = authorizer
        elif settings.dev_no_auth:
            auth = DevAuthorizer()
        else:
            auth = KubeAuthorizer(client, settings.auth_cache_seconds, settings.auth_cache_size, settings.token_audiences, metrics)
        if auth.dev_mode:
            banner = "!" * 100
            log.warning("%s\nDEVELOPMENT MODE: authentication and authorization are OFF (KUBETASK_GATEWAY_DEV_NO_AUTH=true). "
                        "Anyone who reaches %s:%s acts with the gateway's own permissions. Never use this outside a laptop.\n%s",
                        banner, settings.host, settings.port, banner)
        gw = Gateway(settings, client, auth, metrics)
        app.state.gateway = gw
        app.state.logs = LogSource(client.connection)
        gw.start()
        scope = ", ".join(settings.namespaces) or "all namespaces"
        log.info("kubetask gateway serving %s on %s:%s", scope, settings.host, settings.port)
        try:
            yield
        finally:
            await gw.stop()
            await app.state.logs.close()
            if own is not None:
                await own.close()

    app = FastAPI(title="kubetask gateway", version="v1", description=DESCRIPTION, lifespan=lifespan,
                  root_path=settings.root_path, openapi_tags=[
                      {"name": "tasks", "description": "Submit, read, follow, cancel and retry Tasks."},
                      {"name": "registry", "description": "TaskTypes (what may run) and TaskQueues (admission)."},
                      {"name": "schedules", "description": "TaskSchedules: list, see the next runs, create, trigger now, suspend and resume."},
                      {"name": "deadletter", "description": "Tasks whose current run Failed for good, newest first; re-run them in bulk."},
                      {"name": "groups", "description": "TaskGroups: many Tasks followed as one, with counts, progress and a callback."},
                      {"name": "health", "description": "Probes and metrics (no authentication)."}])
    app.state.on_validation_error = _batch_validation
    errors.install(app)
    app.include_router(tasks.router)
    app.include_router(registry.router)
    app.include_router(schedules.router)
    app.include_router(deadletter.router)
    app.include_router(groups.router)
    app.include_router(health.router)
    dashboard.mount(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.state.metrics = metrics
    return app


def openapi(settings: GatewaySettings | None = None) -> dict[str, Any]:
    """The OpenAPI document, without a cluster (for docs and clients)."""
    return create_app(settings or GatewaySettings(dev_no_auth=False)).openapi()
