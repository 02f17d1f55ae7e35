"""A small synchronous client of the gateway's REST API (httpx), with server-sent events."""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from kubetask.cli.config import ConfigError, Settings

USER_AGENT = "kubetask-cli/0.1"


@dataclass
class ApiError(Exception):
    """The gateway's structured error: {"error": {"status", "reason", "message", "details": [{field, message}]}}."""

    status: int
    reason: str
    message: str
    details: list[tuple[str, str]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)  # per-item results of a failed batch
    retry_after: str | None = None

    def __str__(self) -> str:
        return f"{self.status} {self.reason}: {self.message}"

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        retry_after = response.headers.get("Retry-After")
        try:
            body: Any = json.loads(response.read() or b"null")
        except (ValueError, UnicodeDecodeError):
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            # Not the gateway's shape (a proxy in between, a wrong URL): say what came back.
            text = response.text.strip().replace("\n", " ")[:300] if response.content else ""
            return cls(response.status_code, response.reason_phrase or "Error",
                       f"unexpected answer from {response.request.url}" + (f": {text}" if text else ""), retry_after=retry_after)
        details = [(str(d.get("field", "")), str(d.get("message", ""))) for d in error.get("details") or [] if isinstance(d, dict)]
        items = [i for i in body.get("items") or [] if isinstance(i, dict)] if isinstance(body, dict) else []
        return cls(int(error.get("status") or response.status_code), str(error.get("reason") or response.reason_phrase),
                   str(error.get("message") or ""), details, items, retry_after)


class ConnectionFailed(Exception):
    """The gateway could not be reached (DNS, refused, TLS, timeout)."""


@dataclass
class Event:
    """One server-sent event: its type (`event:`), id and JSON data."""

    event: str
    data: Any
    id: str | None = None


def parse_sse(lines: Iterator[str]) -> Iterator[Event]:
    """Server-sent events from a text/event-stream's lines (comments such as keep-alives are skipped)."""
    event, ident = "message", None
    data: list[str] = []
    for line in lines:
        line = line.rstrip("\r")
        if line == "":
            if data:
                text = "\n".join(data)
                try:
                    payload: Any = json.loads(text)
                except ValueError:
                    payload = text
                yield Event(event, payload, ident)
            event, data, ident = "message", [], None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            ident = value
    if data:  # a stream cut after the last data line still delivers it
        text = "\n".join(data)
        try:
            yield Event(event, json.loads(text), ident)
        except ValueError:
            yield Event(event, text, ident)


class Gateway:
    """The REST API of one namespace of a gateway."""

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None, timeout: float = 30.0) -> None:
        self.settings = settings
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if settings.token:
            headers["Authorization"] = f"Bearer {settings.token}"
        verify: ssl.SSLContext | bool = True
        if settings.ca_file:
            try:
                verify = ssl.create_default_context(cafile=os.path.expanduser(settings.ca_file))
            except (OSError, ssl.SSLError) as error:
                raise ConfigError(f"cannot use the CA file {settings.ca_file}: {error}") from error
        self.http = httpx.Client(base_url=settings.api_base, headers=headers, timeout=httpx.Timeout(timeout, connect=10.0),
                                 transport=transport, verify=verify)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def path(self, *parts: str, namespace: str | None = None) -> str:
        ns = quote(namespace or self.settings.namespace, safe="")
        return f"/api/v1/namespaces/{ns}/" + "/".join(quote(p, safe=":") for p in parts)

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json_body: Any = None,
                headers: Mapping[str, str] | None = None) -> Any:
        try:
            response = self.http.request(method, path, params=_params(params), json=json_body, headers=headers)
        except httpx.HTTPError as error:
            raise ConnectionFailed(_connection_problem(self.settings.gateway, error)) from error
        if response.status_code >= 400:
            raise ApiError.from_response(response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as error:
            raise ApiError(response.status_code, "BadAnswer",
                           f"the gateway at {self.settings.gateway} did not answer JSON (is --gateway right?)") from error

    # --- tasks --------------------------------------------------------------------------------

    def submit(self, body: dict[str, Any], idempotency_key: str | None = None,
               namespace: str | None = None) -> tuple[bool, dict[str, Any]]:
        """(created, the Task): created is False when an Idempotency-Key replay returned an existing Task."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        try:
            response = self.http.post(self.path("tasks", namespace=namespace), json=body, headers=headers)
        except httpx.HTTPError as error:
            raise ConnectionFailed(_connection_problem(self.settings.gateway, error)) from error
        if response.status_code >= 400:
            raise ApiError.from_response(response)
        return response.status_code == 201, dict(response.json())

    def submit_batch(self, items: list[dict[str, Any]], idempotency_key: str | None = None,
                     namespace: str | None = None, group: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST tasks:batch; with `group` ({name, callback?}) the items become the members of a new TaskGroup."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body: dict[str, Any] = {"items": items}
        if group is not None:
            body["group"] = group
        return dict(self.request("POST", self.path("tasks:batch", namespace=namespace), json_body=body, headers=headers))

    def get(self, name: str) -> dict[str, Any]:
        return dict(self.request("GET", self.path("tasks", name)))

    def list_tasks(self, *, type: str | None = None, queue: str | None = None, phase: str | None = None,
             selector: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Every matching Task (following `continue` pages), or the first `limit`."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page_size = min(500, limit - len(items)) if limit else 500
            page = self.request("GET", self.path("tasks"), params={
                "type": type, "queue": queue, "phase": phase, "labelSelector": selector, "limit": page_size, "continue": token})
            items.extend(page.get("items") or [])
            token = page.get("continue")
            if not token or (limit is not None and len(items) >= limit):
                return items

    def cancel(self, name: str) -> dict[str, Any]:
        return dict(self.request("POST", self.path("tasks", f"{name}:cancel")))

    def retry(self, name: str, resource_version: str | None = None) -> dict[str, Any]:
        body = {"resourceVersion": resource_version} if resource_version else None
        return dict(self.request("POST", self.path("tasks", f"{name}:retry"), json_body=body))

    def queues(self) -> list[dict[str, Any]]:
        return list(self.request("GET", self.path("taskqueues")).get("items") or [])

    def types(self) -> list[dict[str, Any]]:
        return list(self.request("GET", self.path("tasktypes")).get("items") or [])

    def tasktype(self, name: str) -> dict[str, Any]:
        return dict(self.request("GET", self.path("tasktypes", name)))

    # --- dead letters -------------------------------------------------------------------------

    def deadletter(self, *, queue: str | None = None, type: str | None = None, reason: str | None = None,
                   selector: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Every matching dead-lettered Task, newest first (following `continue` pages), or the first `limit`."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page_size = min(500, limit - len(items)) if limit else 500
            page = self.request("GET", self.path("deadletter"), params={
                "queue": queue, "type": type, "reason": reason, "labelSelector": selector, "limit": page_size, "continue": token})
            items.extend(page.get("items") or [])
            token = page.get("continue")
            if not token or (limit is not None and len(items) >= limit):
                return items

    def rerun_deadletter(self, *, names: list[str] | None = None, filter: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST deadletter:rerun with names or a filter: {"items": [{name, outcome, message, rerun}], "summary", "remaining"}."""
        body: dict[str, Any] = {"names": names} if names is not None else {"filter": {k: v for k, v in (filter or {}).items() if v}}
        return dict(self.request("POST", self.path("deadletter:rerun"), json_body=body))

    # --- groups -------------------------------------------------------------------------------

    def groups(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Every TaskGroup (following `continue` pages), or the first `limit`."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page_size = min(500, limit - len(items)) if limit else 500
            page = self.request("GET", self.path("taskgroups"), params={"limit": page_size, "continue": token})
            items.extend(page.get("items") or [])
            token = page.get("continue")
            if not token or (limit is not None and len(items) >= limit):
                return items

    def group(self, name: str) -> dict[str, Any]:
        return dict(self.request("GET", self.path("taskgroups", name)))

    # --- schedules ----------------------------------------------------------------------------

    def schedules(self) -> list[dict[str, Any]]:
        return list(self.request("GET", self.path("taskschedules")).get("items") or [])

    def schedule(self, name: str) -> dict[str, Any]:
        return dict(self.request("GET", self.path("taskschedules", name)))

    def schedule_action(self, name: str, action: str) -> dict[str, Any]:
        """POST taskschedules/NAME:ACTION (trigger answers the created Task; suspend and resume the schedule)."""
        return dict(self.request("POST", self.path("taskschedules", f"{name}:{action}")))

    # --- streams ------------------------------------------------------------------------------

    def watch(self, name: str) -> Iterator[Event]:
        """The Task's events until the gateway ends the stream (when the current run finishes)."""
        yield from self._stream(self.path("tasks", f"{name}:watch"), None)

    def watch_list(self, params: Mapping[str, Any] | None = None) -> Iterator[Event]:
        yield from self._stream(self.path("tasks:watch"), params)

    def _stream(self, path: str, params: Mapping[str, Any] | None) -> Iterator[Event]:
        timeout = httpx.Timeout(30.0, connect=10.0, read=None)  # the gateway sends keep-alives; a stream may idle
        try:
            with self.http.stream("GET", path, params=_params(params), timeout=timeout,
                                  headers={"Accept": "text/event-stream"}) as response:
                if response.status_code >= 400:
                    raise ApiError.from_response(response)
                yield from parse_sse(response.iter_lines())
        except httpx.HTTPError as error:
            raise ConnectionFailed(_connection_problem(self.settings.gateway, error)) from error

    def log(self, name: str, *, follow: bool = False, tail: int | None = None, run: int | None = None,
            timestamps: bool = False, previous: bool = False, limit_bytes: int | None = None) -> Iterator[bytes]:
        params = {"follow": _bool(follow), "tailLines": tail, "run": run, "timestamps": _bool(timestamps),
                  "previous": _bool(previous), "limitBytes": limit_bytes}
        timeout = httpx.Timeout(30.0, connect=10.0, read=None if follow else 60.0)
        try:
            with self.http.stream("GET", self.path("tasks", name, "log"), params=_params(params), timeout=timeout,
                                  headers={"Accept": "text/plain"}) as response:
                if response.status_code >= 400:
                    raise ApiError.from_response(response)
                yield from response.iter_bytes()
        except httpx.HTTPError as error:
            raise ConnectionFailed(_connection_problem(self.settings.gateway, error)) from error


def _bool(value: bool) -> str | None:
    return "true" if value else None


def _params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not params:
        return None
    return {k: v for k, v in params.items() if v is not None and v != ""}


def _connection_problem(url: str, error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.ConnectError):
        what = "could not connect"
    elif isinstance(error, httpx.TimeoutException):
        what = "timed out"
    elif isinstance(error, httpx.RemoteProtocolError):
        what = "the connection broke"
    else:
        what = type(error).__name__
    detail = str(error).strip()
    return f"cannot reach the gateway at {url}: {what}" + (f" ({detail})" if detail else "")
