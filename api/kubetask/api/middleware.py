"""ASGI middleware: request metrics, and the body-size limit enforced before anything parses a body."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kubetask.api.errors import error_bytes
from kubetask.api.metrics import GatewayMetrics

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


async def _send_error(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = error_bytes(status, message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """413 for bodies over `max_bytes`: by Content-Length at once, else while reading (chunked uploads).

    The body is read here, up to the limit, and replayed to the app, so the app never parses more
    than `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        too_large = f"the request body is larger than {self.max_bytes} bytes"
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _send_error(send, 400, "the Content-Length header is not a number")
                return
            if length > self.max_bytes:
                await _send_error(send, 413, too_large, [(b"connection", b"close")])
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _send_error(send, 413, too_large, [(b"connection", b"close")])
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the server would deliver it

        await self.app(scope, replay, send)


def _literal(template: str) -> int:
    """How much of a path template is fixed text: `/tasks/{name}:cancel` beats `/tasks/{name}`."""
    return len(re.sub(r"\{[^}]*\}", "", template))


class MethodMiddleware:
    """405 with an `Allow` that lists every method of the path, decided by the most specific template.

    Starlette answers 405 only when no route matches path and method, with the `Allow` of one route
    (one method, as every operation is its own route). And `GET .../tasks/x:cancel` matches
    `GET .../tasks/{name}` with the name `x:cancel`, so it became a 422 for an invalid name. Here
    the path belongs to its most specific template of the OpenAPI document (most fixed text; no valid
    name contains a colon), and a method that template does not have is 405, whatever a looser
    template would take. Paths outside the document (/docs, the dashboard) pass untouched."""

    def __init__(self, app: ASGIApp, document: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self.document = document
        self._templates: list[tuple[re.Pattern[str], list[str]]] | None = None

    def templates(self) -> list[tuple[re.Pattern[str], list[str]]]:
        """(path regex, its methods), most specific first; built once from the document."""
        if self._templates is None:
            found = []
            for template, operations in self.document().get("paths", {}).items():
                regex = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{[^}]*\})", template))
                methods = sorted(m.upper() for m in operations if m.upper() in KNOWN_METHODS)
                found.append((_literal(template), re.compile(f"^{regex}$"), methods))
            self._templates = [(regex, methods) for _, regex, methods in sorted(found, key=lambda t: -t[0])]
        return self._templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
            path = path[len(root):] if root and path.startswith(root) else path
            method = str(scope.get("method", ""))
            for regex, methods in self.templates():
                if regex.match(path):
                    if method not in methods:
                        allow = ", ".join(methods)
                        await _send_error(send, 405, f"{method} is not allowed on {scope.get('path')}; use {allow}",
                                          [(b"allow", allow.encode())])
                        return
                    break
        await self.app(scope, receive, send)


class MetricsMiddleware:
    """Count requests and time them by route template (never the raw path: bounded label values)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = str(scope.get("method", ""))
            method = method if method in KNOWN_METHODS else "other"
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
