"""Completion webhooks, the I/O part: a delivery worker of its own, and the TaskWebhooks' status.

Separate from reconciliation on purpose: its own work queue (keys per Task run and event), its own
workers, its own HTTP client for receivers and its own API connection, so a receiver that is slow
or down never holds up a Task's status, a Job create or a queue. What is decided (what is due,
what is sent, when it is retried, whether a destination is allowed) is in webhooks.py.

Every delivery's state is written to its Task's status.webhooks (a JSON merge patch of that key
only, conditional on the resourceVersion it was built on), so nothing here needs to survive a
restart: the indexes say what is still due (`on_task`, `scan`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from kubetask.kube import ApiError, Kube, TransportError, core_path, tasks_path
from kubetask.operator import metrics, webhooks
from kubetask.operator.config import OperatorSettings
from kubetask.operator.controller import Views
from kubetask.operator.records import FinishedTask
from kubetask.operator.resolve import effective_queue

from kubetask.operator.workqueue import WorkQueue, run_workers

log = logging.getLogger("kubetask.operator.webhooks")
SECRET_CACHE_SECONDS = 10.0  # one GET per Secret per burst of deliveries, not one per delivery
CONFLICT_RETRIES = 3
GAUGE_SECONDS = 5.0


@dataclass(frozen=True)
class DeliveryKey:
    """One delivery: an event of one run of one Task (the name, to read it without an index)."""

    namespace: str
    name: str
    uid: str
    run: int
    event: str


@dataclass(frozen=True)
class WebhookKey:
    """A TaskWebhook whose status (Ready, sources) is to be brought up to date."""

    namespace: str
    name: str


WebhookWork = DeliveryKey | WebhookKey


@dataclass
class WebhookViews:
    """Read access to the indexes deliveries need beyond the controller's Views."""

    webhook: Callable[[str, str], dict[str, Any] | None]  # (namespace, name) → TaskWebhook body
    all_webhooks: Callable[[], Iterable[tuple[str, str]]]
    tasktypes_in: Callable[[str], Iterable[tuple[str, dict[str, Any]]]]  # namespace → (name, spec)
    queues_in: Callable[[str], Iterable[tuple[str, str | None]]]  # namespace → (name, spec.webhook)


@dataclass(frozen=True)
class SigningKey:
    key: bytes | None
    problem: tuple[str, str] | None = None  # (reason, message) when there is no usable key


@dataclass(frozen=True)
class Attempt:
    ok: bool
    final: bool  # refused for good: retrying cannot help
    result: str  # status.webhooks[].lastResult
    kind: str  # the metric label


def facts_from_finished(record: FinishedTask) -> webhooks.DeliveryFacts:
    return webhooks.DeliveryFacts(
        namespace=record.namespace, name=record.name, uid=record.uid, type=record.type, queue=record.queue, webhook=record.webhook,
        run=record.run, phase=record.phase, started=record.started, finished=record.finished, records=record.webhooks)


class SecretReader:
    """Signing keys, read by name (the operator may `get` Secrets, never list or watch them)."""

    def __init__(self, kube: Kube, clock: Callable[[], float] = time.monotonic) -> None:
        self.kube = kube
        self.clock = clock
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}

    async def read(self, namespace: str, name: str, key: str, fresh: bool = False) -> SigningKey:
        cached = self._cache.get((namespace, name))
        if cached is not None and not fresh and self.clock() - cached[0] < SECRET_CACHE_SECONDS:
            secret = cached[1]
        else:
            try:
                secret = await self.kube.get(core_path("secrets", namespace, name))
            except ApiError as error:
                if error.status == 403:
                    return SigningKey(None, ("SecretForbidden", f"the operator may not read Secret {name!r}: {error.message}"))
                if error.status != 404:
                    raise
                secret = None
            if len(self._cache) > 1000:
                self._cache.clear()  # bounded: one entry per TaskWebhook's Secret
            self._cache[(namespace, name)] = (self.clock(), secret)
        return signing_key(secret, name, key)


def signing_key(secret: Mapping[str, Any] | None, name: str, key: str) -> SigningKey:
    if secret is None:
        return SigningKey(None, ("SecretNotFound", f"Secret {name!r} does not exist; deliveries wait for it"))
    encoded = (secret.get("data") or {}).get(key)
    if encoded is None:
        return SigningKey(None, ("SecretKeyMissing", f"Secret {name!r} has no key {key!r}; deliveries wait for it"))
    try:
        value = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return SigningKey(None, ("SecretKeyMissing", f"Secret {name!r} key {key!r} is not base64"))
    if not value:
        return SigningKey(None, ("SecretKeyMissing", f"Secret {name!r} key {key!r} is empty; deliveries wait for a key"))
    return SigningKey(value)


class Deliverer:
    def __init__(self, kube: Kube, settings: OperatorSettings, views: Views, hooks: WebhookViews,
                 client: httpx.AsyncClient | None = None, clock: Callable[[], float] = time.time) -> None:
        self.kube = kube
        self.settings = settings
        self.views = views
        self.hooks = hooks
        self.clock = clock
        self.secrets = SecretReader(kube)
        # Its own queue: retries of failed API calls back off here, never in the reconcile queue.
        self.work: WorkQueue[WebhookWork] = WorkQueue(base_delay=1.0, max_delay=60.0)
        # No redirects (a 3xx is a failed attempt), no proxies or netrc from the environment (the
        # connection must go to the address that was checked), time-outs per attempt (below).
        self.client = client or httpx.AsyncClient(follow_redirects=False, trust_env=False,
                                                  limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))

    async def close(self) -> None:
        await self.client.aclose()
        await self.kube.close()

    # -- what is due (from watch events and the indexes) ---------------------------------------
    def _resolve(self, facts: webhooks.DeliveryFacts, spec: Mapping[str, Any]) -> webhooks.Resolved | None:
        tasktype = self.views.tasktype(facts.namespace, facts.type) if facts.type else None
        queue_name = facts.queue or effective_queue(dict(spec), tasktype, self.settings.default_queue)
        queue = self.views.queue(facts.namespace, queue_name)
        return webhooks.resolve_webhook(facts.name, spec, tasktype, queue_name, queue.webhook if queue is not None else None)

    def _enqueue_due(self, facts: webhooks.DeliveryFacts, spec: Mapping[str, Any]) -> None:
        resolved = self._resolve(facts, spec)
        if resolved is None and not facts.records:
            return  # the common case: no webhook anywhere, nothing recorded
        hook = self.hooks.webhook(facts.namespace, resolved.name) if resolved is not None else None
        for run, event in webhooks.due(facts, resolved, hook):
            self.work.add(DeliveryKey(facts.namespace, facts.name, facts.uid, run, event))

    def on_task(self, body: Mapping[str, Any]) -> None:
        """A Task event: enqueue its deliveries that are due (after a restart, Kopf's initial
        listing brings every Task here, finished ones too). Never raises: it runs inside Kopf's
        event handler, which is not retried, before the Task's own reconcile is enqueued."""
        try:
            self._enqueue_due(webhooks.facts_from_body(body), body.get("spec") or {})
        except Exception:  # our own bug: loud, and the resync looks again
            log.exception("task %s: deciding its webhook deliveries failed", (body.get("metadata") or {}).get("name"))

    def scan(self, namespace: str | None = None) -> None:
        """Every Task (of a namespace) again, from the indexes: the safety net, and what a
        TaskWebhook appearing or becoming ready wakes."""
        for uid in list(self.views.all_task_uids()):
            body = self.views.task_by_uid(uid)
            if body is not None and (namespace is None or body["metadata"].get("namespace") == namespace):
                self.on_task(body)
        for record in list(self.views.finished_tasks()):
            if namespace is None or record.namespace == namespace:
                try:
                    self._enqueue_due(facts_from_finished(record), {"webhook": record.webhook, "type": record.type})
                except Exception:  # our own bug: loud; the other Tasks are still looked at
                    log.exception("task %s/%s: deciding its webhook deliveries failed", record.namespace, record.name)

    def webhook_changed(self, namespace: str, name: str) -> None:
        self.work.add(WebhookKey(namespace, name))
        self.scan(namespace)

    def sources_changed(self, namespace: str) -> None:
        """A TaskType or TaskQueue changed: the TaskWebhooks it may name update their sources."""
        for hook_namespace, name in list(self.hooks.all_webhooks()):
            if hook_namespace == namespace:
                self.work.add(WebhookKey(namespace, name))

    # -- the loops ---------------------------------------------------------------------------------
    async def run(self) -> None:
        await asyncio.gather(run_workers(self.work, self.process, self._on_error, self.settings.webhook_workers),
                             self._resync(), self._gauges())

    async def _resync(self) -> None:
        while True:
            for namespace, name in list(self.hooks.all_webhooks()):
                self.work.add(WebhookKey(namespace, name))
            self.scan()
            await asyncio.sleep(self.settings.resync_seconds)

    async def _gauges(self) -> None:
        while True:
            metrics.WEBHOOK_QUEUE_DEPTH.set(len(self.work))
            metrics.WEBHOOK_QUEUE_RETRIES.set(self.work.waiting_retry)
            await asyncio.sleep(GAUGE_SECONDS)

    def _on_error(self, key: WebhookWork, error: BaseException) -> float:
        failures = self.work.failures(key) + 1
        if isinstance(error, (ApiError, TransportError, OSError, httpx.TransportError, asyncio.TimeoutError)):
            log.warning("%s failed (try %d, retried with backoff): %s", key, failures, error)
        else:  # our own bug: loud, with the traceback, and still retried
            log.error("%s failed (try %d, retried with backoff)", key, failures, exc_info=error)
        return 0.0

    async def process(self, key: WebhookWork) -> None:
        if isinstance(key, DeliveryKey):
            await self.deliver(key)
        else:
            await self.reconcile_webhook(key)

    # -- one delivery --------------------------------------------------------------------------------
    async def _get_task(self, key: DeliveryKey) -> dict[str, Any] | None:
        try:
            task = await self.kube.get(tasks_path(key.namespace, key.name))
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        return task if task["metadata"].get("uid") == key.uid else None

    async def deliver(self, key: DeliveryKey) -> None:
        task = await self._get_task(key)  # fresh: the result, and the records to build on
        if task is None:
            return  # deleted: nothing to tell
        record = webhooks.find_record(task.get("status") or {}, key.run, key.event)
        if record is not None and record.get("state") in webhooks.FINAL_STATES:
            return
        if record is not None:
            name = str(record.get("webhook") or "")  # fixed at the first attempt
        else:
            facts = webhooks.facts_from_body(task)
            resolved = self._resolve(facts, task.get("spec") or {})
            if resolved is None:
                return
            if (key.run, key.event) not in webhooks.due(facts, resolved, self.hooks.webhook(key.namespace, resolved.name)):
                return
            name = resolved.name
        hook = self.hooks.webhook(key.namespace, name)
        if hook is None:
            await self._record(task, key, webhooks.waiting(record, uid=key.uid, run=key.run, event=key.event, webhook=name,
                               result=f"TaskWebhook {name!r} does not exist in namespace {key.namespace}; sent once it is created"))
            return  # its creation (webhook_changed) wakes this delivery
        if key.event not in webhooks.subscribed(hook):
            if record is not None:
                await self._record(task, key, None)  # it waited for a TaskWebhook that does not send this event
            return
        wait = webhooks.next_attempt_in(record, self.clock())
        if wait > 0:
            self.work.add_after(key, wait)  # e.g. after a restart: the recorded schedule holds
            return
        spec = hook.get("spec") or {}
        ref = spec.get("secretRef") or {}
        signing = await self.secrets.read(key.namespace, str(ref.get("name") or ""), str(ref.get("key") or "key"))
        if signing.key is None:
            assert signing.problem is not None
            await self._record(task, key, webhooks.waiting(record, uid=key.uid, run=key.run, event=key.event, webhook=name,
                                                           result=signing.problem[1]))
            self.work.add_after(key, self.settings.webhook_secret_check_seconds)
            return
        attempt = await self.send(task, key, spec, signing.key)
        now = self.clock()
        updated = webhooks.after_attempt(record, uid=key.uid, run=key.run, event=key.event, webhook=name, ok=attempt.ok,
                                         final=attempt.final, result=attempt.result, max_attempts=int(spec.get("maxAttempts") or 8),
                                         now=now, base=self.settings.webhook_retry_base_seconds, cap=self.settings.webhook_retry_max_seconds)
        metrics.WEBHOOK_ATTEMPTS.labels(key.namespace, name, attempt.kind).inc()
        if updated["state"] in webhooks.FINAL_STATES:
            metrics.WEBHOOK_DELIVERIES.labels(key.namespace, name, updated["state"]).inc()
        log.log(logging.INFO if attempt.ok or updated["state"] in webhooks.FINAL_STATES else logging.DEBUG,
                "task %s/%s: webhook %s %s (run %d), attempt %d: %s → %s", key.namespace, key.name, name, key.event, key.run,
                updated["attempts"], attempt.result, updated["state"])
        await self._record(task, key, updated)
        if updated["state"] == "Pending":
            self.work.add_after(key, webhooks.next_attempt_in(updated, self.clock()))

    async def _record(self, task: dict[str, Any], key: DeliveryKey, record: dict[str, Any] | None) -> None:
        """Write this delivery's record: a merge patch of status.webhooks only (the operator's
        other status writes never carry that key, so neither drops the other's), conditional on
        the resourceVersion the list was built on; a conflict rebuilds it on a fresh read."""
        for attempt in range(CONFLICT_RETRIES):
            status = task.get("status") or {}
            if webhooks.find_record(status, key.run, key.event) == record:
                return
            records = webhooks.with_record(status.get("webhooks") or [], record, key.run, key.event)
            patch = {"metadata": {"resourceVersion": task["metadata"]["resourceVersion"]}, "status": {"webhooks": records}}
            try:
                await self.kube.patch(tasks_path(key.namespace, key.name, subresource="status"), patch)
                metrics.API_WRITES.labels("patch", "tasks/status").inc()
                return
            except ApiError as error:
                if error.status == 404:
                    return
                if error.status != 409 or attempt == CONFLICT_RETRIES - 1:
                    raise
            fetched = await self._get_task(key)
            if fetched is None:
                return
            task = fetched

    async def send(self, task: Mapping[str, Any], key: DeliveryKey, spec: Mapping[str, Any], signing_key: bytes) -> Attempt:
        """One attempt: check the destination, resolve it and check every address, connect to the
        checked address, POST the signed payload, and read only the status line."""
        target, problem = webhooks.destination(str(spec.get("url") or ""), bool(spec.get("allowInsecureHTTP")),
                                               bool(spec.get("allowPrivateNetworks")))
        if target is None:
            return Attempt(False, True, f"refused: {problem}", "refused")
        timeout = float(spec.get("timeoutSeconds") or 10)
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):  # the whole attempt, a slow trickle of an answer included
                private = bool(spec.get("allowPrivateNetworks"))
                addresses = [target.host] if target.literal else await resolve(target.host, target.port, absolute=not private)
                for address in addresses:
                    refused = webhooks.address_problem(address, private)
                    if refused:  # names can move: retried, in case the name is fixed
                        return Attempt(False, False, f"refused: {target.host} resolves to {refused}", "refused")
                body = webhooks.body_bytes(webhooks.payload(task, key.run, key.event))
                sent = webhooks.headers(signing_key, webhooks.delivery_id(key.uid, key.run, key.event), key.event, body, int(self.clock()))
                sent["Host"] = target.host_header
                # TLS is checked against the name (SNI and certificate), while the connection goes
                # to the address that was checked: no second lookup, no DNS rebinding.
                extensions = {"sni_hostname": target.host.rstrip(".")} if target.scheme == "https" and not target.literal else {}
                async with self.client.stream("POST", target.pinned_url(addresses[0]), content=body, headers=sent,
                                              timeout=httpx.Timeout(timeout), extensions=extensions) as response:
                    code = response.status_code  # the body is never read: its size is the receiver's choice
        except (TimeoutError, httpx.TimeoutException):
            return Attempt(False, False, f"no answer within timeoutSeconds ({timeout:g}s)", "timeout")
        except (httpx.TransportError, OSError) as error:
            return Attempt(False, False, f"could not send to {target.host_header}: {type(error).__name__}: {error}"[:1024], "connection_error")
        finally:
            metrics.WEBHOOK_ATTEMPT_SECONDS.observe(time.monotonic() - started)
        if 200 <= code < 300:
            return Attempt(True, False, f"HTTP {code}", "delivered")
        if 300 <= code < 400:
            return Attempt(False, False, f"HTTP {code}: redirects are not followed", "redirect")
        return Attempt(False, False, f"HTTP {code}", "http_error")

    # -- TaskWebhook status ------------------------------------------------------------------------
    async def reconcile_webhook(self, key: WebhookKey) -> None:
        """Ready (the url is allowed, the Secret holds the key) and sources (TaskTypes and
        TaskQueues naming it, with since), then back after an interval: Secrets are not watched."""
        hook = self.hooks.webhook(key.namespace, key.name)
        if hook is None:
            return
        meta, spec, status = hook["metadata"], hook.get("spec") or {}, hook.get("status") or {}
        ref = spec.get("secretRef") or {}
        signing = await self.secrets.read(key.namespace, str(ref.get("name") or ""), str(ref.get("key") or "key"), fresh=True)
        now = webhooks.rfc3339(self.clock())
        generation = meta.get("generation")
        references = [("TaskType", name) for name, tasktype in self.hooks.tasktypes_in(key.namespace)
                      if (tasktype.get("defaults") or {}).get("webhook") == key.name]
        references += [("TaskQueue", name) for name, webhook in self.hooks.queues_in(key.namespace) if webhook == key.name]
        desired = {"conditions": [webhooks.ready_condition(spec, signing.problem, status.get("conditions") or [], generation, now)],
                   "observedGeneration": generation,
                   "sources": webhooks.merged_sources(status.get("sources") or [], references, now)}
        self.work.add_after(key, self.settings.webhook_secret_check_seconds)
        if all(status.get(k) == v for k, v in desired.items()):
            return
        try:
            await self.kube.patch(tasks_path(key.namespace, key.name, plural="taskwebhooks", subresource="status"),
                                  {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "status": desired})
            metrics.API_WRITES.labels("patch", "taskwebhooks/status").inc()
        except ApiError as error:
            if error.status == 409:
                self.work.add_after(key, 1.0)  # changed meanwhile: again on the index's newer body
            elif error.status != 404:
                raise


async def resolve(host: str, port: int, absolute: bool) -> list[str]:
    """Every address the name resolves to. `absolute` (unless allowPrivateNetworks) resolves it
    with a trailing dot: the pod's DNS search path must not turn `api.example` into a cluster
    service. With private networks allowed, cluster names such as `hooks.team.svc` are meant."""
    name = host + "." if absolute and not host.endswith(".") else host
    infos = await asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise OSError(f"{host} resolves to no address")
    return addresses
