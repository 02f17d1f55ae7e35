"""Progress reports: a JSON merge patch of the Task's status.progress, sent by a background thread.

Reporting never fails the handler. Without a token (the TaskType has no `reportProgress: true`)
or when a request fails, one warning goes to stderr and the handler carries on. Requests are
rate-limited to one per `min_interval` seconds; only the latest value is kept, and `flush()`
sends it before the handler's result is written.

One refusal is only "not yet": the handler-progress admission policy (policies/) checks the pod
against the Task's status.jobName, and the operator may write a run's first status a little after
its pod starts (the status settle window, docs/operator.md, "Fewer events per Task"). A report
refused for that reason is kept (unless a newer one replaced it) and sent again, a little later
each time, for up to `NOT_YET_PATIENCE` seconds.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_TOKEN_FILE = f"{SA_DIR}/token"
DEFAULT_CA_FILE = f"{SA_DIR}/ca.crt"
API_PATH = "/apis/kubetask.io/v1alpha1/namespaces/{namespace}/tasks/{name}/status"
MAX_MESSAGE = 1024
MIN_INTERVAL = 0.5
REQUEST_TIMEOUT = 5.0
# The policy's words when the Task does not name its Job yet (policies/kubetask.io_handler-progress-only.yaml).
NOT_YET = "(it has none)"
NOT_YET_PATIENCE = 60.0  # the operator writes it once the settle window ends (seconds, off by default)
NOT_YET_MAX_WAIT = 4.0


def warn(message: str) -> None:
    print(f"kubetask-sdk: warning: {message}", file=sys.stderr, flush=True)


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def progress_body(percent: int, message: str, updated_at: str) -> dict[str, Any]:
    """The merge patch for one report: percent clamped to 0..100, message cut to 1024 chars."""
    percent = max(0, min(100, int(percent)))
    return {"status": {"progress": {"percent": percent, "message": str(message)[:MAX_MESSAGE], "updatedAt": updated_at}}}


@dataclass(frozen=True)
class Endpoint:
    url: str
    token_file: str
    ca_file: str | None


def endpoint_from_env(env: Mapping[str, str], name: str, namespace: str) -> Endpoint | str:
    """Where to send reports, or why they cannot be sent."""
    if not name or not namespace:
        return "KUBETASK_TASK_NAME or KUBETASK_TASK_NAMESPACE is not set"
    api = env.get("KUBETASK_API_URL", "").rstrip("/")
    if not api:
        host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            return "neither KUBETASK_API_URL nor KUBERNETES_SERVICE_HOST is set"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 address
        api = f"https://{host}:{port}"
    token_file = env.get("KUBETASK_TOKEN_FILE", DEFAULT_TOKEN_FILE)
    if not os.path.isfile(token_file):
        return (
            f"no service-account token at {token_file} "
            "(give the TaskType serviceAccountName: kubetask-handler and reportProgress: true)"
        )
    ca_file = env.get("KUBETASK_CA_FILE", DEFAULT_CA_FILE)
    path = API_PATH.format(namespace=urllib.parse.quote(namespace, safe=""), name=urllib.parse.quote(name, safe=""))
    return Endpoint(url=api + path, token_file=token_file, ca_file=ca_file if os.path.isfile(ca_file) else None)


def send(endpoint: Endpoint, body: dict[str, Any], timeout: float = REQUEST_TIMEOUT) -> None:
    """PATCH the status subresource once; raises on any failure."""
    with open(endpoint.token_file, encoding="utf-8") as f:
        token = f.read().strip()  # re-read each time: projected tokens rotate
    request = urllib.request.Request(
        endpoint.url,
        data=json.dumps(body).encode("utf-8"),
        method="PATCH",
        headers={
            "Content-Type": "application/merge-patch+json",
            "Accept": "application/json",
            "Authorization": f"Bearer {token}",
            "User-Agent": "kubetask-sdk",
        },
    )
    context = None
    if endpoint.url.startswith("https:"):
        context = ssl.create_default_context(cafile=endpoint.ca_file)  # None: the system CAs
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        response.read()


class ProgressReporter:
    """Coalesces progress reports and sends the latest at most once per `min_interval` seconds."""

    def __init__(self, name: str, namespace: str, env: Mapping[str, str] | None = None, min_interval: float = MIN_INTERVAL) -> None:
        self._name, self._namespace = name, namespace
        self._env = dict(os.environ if env is None else env)
        self._min_interval = min_interval
        self._cond = threading.Condition()
        self._pending: dict[str, Any] | None = None
        self._busy = False
        self._last_sent = float("-inf")
        self._endpoint: Endpoint | None = None
        self._disabled = False
        self._warned = False
        self._thread: threading.Thread | None = None
        self._not_yet_since: float | None = None  # the first "not yet" refusal of the reports still unsent
        self._not_yet_wait = 0.0
        self.sent = 0
        self.failed = 0

    def report(self, percent: int, message: str = "") -> None:
        """Queue a report; returns at once. Never raises for a bad value or an unreachable API."""
        try:
            body = progress_body(percent, message, now_rfc3339())
        except (TypeError, ValueError) as e:
            self._warn_once(f"progress({percent!r}, ...) ignored: {e}")
            return
        with self._cond:
            if self._disabled:
                return
            if self._endpoint is None:
                found = endpoint_from_env(self._env, self._name, self._namespace)
                if isinstance(found, str):
                    self._disabled = True
                    self._warn_once(f"progress reports are off: {found}")
                    return
                self._endpoint = found
            self._pending = body
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="kubetask-progress", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: float = REQUEST_TIMEOUT + 1) -> None:
        """Wait (at most `timeout` seconds) until the latest report has been sent or has failed.
        A report kept for later ("not yet", above) is not waited for: the run's outcome matters more."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._pending is not None and self._not_yet_since is None) or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None:
                    self._cond.wait()
                wait = self._last_sent + max(self._min_interval, self._not_yet_wait) - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)  # a newer report may replace the pending one meanwhile
                    continue
                body, self._pending, self._busy = self._pending, None, True
                endpoint = self._endpoint
            try:
                assert endpoint is not None
                send(endpoint, body)
                self.sent += 1
                self._not_yet_since, self._not_yet_wait = None, 0.0
            except urllib.error.HTTPError as e:
                detail = _describe(e)
                if e.code == 403 and NOT_YET in detail and self._keep_for_later(body):
                    continue  # the finally below runs first
                self.failed += 1
                self._warn_once(f"progress report to {endpoint.url if endpoint else '?'} failed ({detail}); "
                                "the task continues and further progress errors are not logged")
            except Exception as e:  # noqa: BLE001 - progress must never break the handler
                self.failed += 1
                self._warn_once(f"progress report to {endpoint.url if endpoint else '?'} failed ({_describe(e)}); "
                                "the task continues and further progress errors are not logged")
            finally:
                with self._cond:
                    self._busy = False
                    self._last_sent = time.monotonic()
                    self._cond.notify_all()

    def _keep_for_later(self, body: dict[str, Any]) -> bool:
        """The Task does not name this pod's Job yet: keep the report to send again later,
        unless a newer one replaced it meanwhile or this has lasted too long."""
        moment = time.monotonic()
        if self._not_yet_since is None:
            self._not_yet_since = moment
        if moment - self._not_yet_since > NOT_YET_PATIENCE:
            return False
        self._not_yet_wait = min(NOT_YET_MAX_WAIT, max(self._min_interval, self._not_yet_wait * 2))
        with self._cond:
            if self._pending is None:
                self._pending = body
        return True

    def _warn_once(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            warn(message)


def _describe(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        detail = ""
        try:
            detail = json.loads(error.read() or b"{}").get("message", "")
        except Exception:  # noqa: BLE001
            pass
        return f"HTTP {error.code}" + (f": {detail}" if detail else "")
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return f"{type(error).__name__}: {error}"
