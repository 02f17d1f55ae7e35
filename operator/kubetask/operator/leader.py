"""Active/standby: only the process that holds a `coordination.k8s.io/v1` Lease runs Kopf.

Queue admission is decided from each process's in-memory view, so two operators acting at once
(a rolling upgrade, a stuck old pod) could together admit more than a queue's `maxRunning`.
Before Kopf starts, the process therefore waits as a standby until it holds the Lease; as the
leader it renews it in the background and, crash-only like client-go's leaderelection with
OnStoppedLeading = exit, it terminates at once (`os._exit(1)`) when a renewal has not succeeded
within the renew deadline or someone else holds the Lease. It never tries to "step down" and
keep running: a restarted process starts clean, as a standby. On a graceful stop it releases the
Lease (holder empty, duration 1 s) so a standby takes over at once.

Timing (client-go's semantics and defaults): a standby takes an existing Lease only once its
`renewTime + leaseDurationSeconds` (the holder's own duration) has passed, while a leader stops
`renewDeadline` after the start of its last successful renewal. The gap between the two (5 s by
default) is the margin for clock skew between nodes and for the last request in flight. Every
write carries the resourceVersion it was decided on (PUT, or create for an absent Lease), so two
candidates can never both win: the API server answers 409 to the loser.

Stopping "at once" has three guards: the renewal task, a watchdog thread (a blocked event loop
cannot renew, and must not keep acting either), and `Kube.write_fence`, checked before every write
of every `Kube` client in the process (a process that was paused wakes up with a stale view; its
next write finds the deadline passed and exits instead). Only a request already on the wire when
the process was paused can still land late; deterministic Job names keep it from duplicating work.

Why hand-written: kubernetes_asyncio (36.1.0, checked 2026-12) has
`kubernetes_asyncio.leaderelection` with a LeaseLock, and it is close to client-go, but not solid
enough to carry queue limits: its renew deadline is measured on the wall clock (`time.time()`),
and only between attempts, so a hung request can outlive it; it stamps local naive time with a
"Z" (wrong on any host not in UTC); it never maintains `leaseTransitions`; it has no release on
shutdown (every rolling upgrade would wait a full lease duration); it GETs before every renewal
(two requests instead of one); it logs a stack trace for every lost race; on loss it cancels the
leader's coroutine instead of exiting; and it refuses a retry period under 1 s. It would also
bring a second generated API client into the image. What is needed here is small: one Lease,
get/create/replace, a pure decision function (below, unit-tested), and the timing rules above.
When the project moves to the kubernetes client (its own issue), revisit: the decision logic
here maps onto its LeaseLock record one to one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, NoReturn

from prometheus_client import Gauge

from kubetask.kube import SERVICE_ACCOUNT_DIR, ApiError, Connection, Kube, TransportError, core_path
from kubetask.operator.config import OperatorSettings

log = logging.getLogger("kubetask.operator.leader")
# Here rather than in metrics.py: only this module sets it.
LEADER = Gauge("kubetask_operator_leader", "1 while this process holds the leader Lease and acts, 0 while it stands by.")
LEASE_GROUP = "coordination.k8s.io"
Action = Literal["create", "renew", "take", "wait"]


# ---------------------------------------------------------------------------------------------
# Pure decisions
# ---------------------------------------------------------------------------------------------

def format_time(when: datetime) -> str:
    """A Kubernetes MicroTime: 2026-12-02T06:00:00.000000Z."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Decision:
    """What a candidate does with the Lease it read: `spec` is what it writes (None for wait);
    `holder` is who holds it now (for wait) and `expires` when that holder's claim lapses."""

    action: Action
    spec: dict[str, Any] | None = None
    holder: str | None = None
    expires: datetime | None = None


def lease_decision(lease: dict[str, Any] | None, identity: str, now: datetime, lease_seconds: int = 15) -> Decision:
    """absent → create; held by me → renew; held by another and fresh → wait; expired or held by
    nobody → take over (leaseTransitions + 1). The Lease's own leaseDurationSeconds (its holder's)
    decides expiry; ours is what we write."""
    stamp = format_time(now)
    if lease is None:
        return Decision("create", {"holderIdentity": identity, "leaseDurationSeconds": lease_seconds,
                                   "acquireTime": stamp, "renewTime": stamp, "leaseTransitions": 0}, identity)
    spec = dict(lease.get("spec") or {})
    holder = spec.get("holderIdentity") or ""
    if holder == identity:
        return Decision("renew", {**spec, "leaseDurationSeconds": lease_seconds, "renewTime": stamp,
                                  "acquireTime": spec.get("acquireTime") or stamp}, identity)
    if holder:
        last = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
        duration = spec.get("leaseDurationSeconds") or lease_seconds
        if last is not None:
            expires = last + timedelta(seconds=duration)
            if now < expires:
                return Decision("wait", None, holder, expires)
    return Decision("take", {**spec, "holderIdentity": identity, "leaseDurationSeconds": lease_seconds, "acquireTime": stamp,
                             "renewTime": stamp, "leaseTransitions": int(spec.get("leaseTransitions") or 0) + 1}, identity)


def release_spec(spec: dict[str, Any], now: datetime) -> dict[str, Any]:
    """What a leader writes on a graceful stop: nobody holds it, so a standby takes it on its next
    try; the 1 s duration is what client-go writes too (its candidates wait out the duration of a
    record they saw change)."""
    return {**spec, "holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": format_time(now)}


def make_identity() -> str:
    """hostname (the pod name in a pod) _ pid _ random: a restarted process is a new candidate."""
    return f"{socket.gethostname()}_{os.getpid()}_{secrets.token_hex(3)}"


def lease_namespace(settings: OperatorSettings) -> str:
    """The setting, else the pod's namespace (the service account's namespace file), else default."""
    if settings.leader_lease_namespace:
        return settings.leader_lease_namespace
    try:
        return (SERVICE_ACCOUNT_DIR / "namespace").read_text().strip() or "default"
    except OSError:
        return "default"


# ---------------------------------------------------------------------------------------------
# The elector
# ---------------------------------------------------------------------------------------------

def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _exit_now(code: int) -> NoReturn:
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:  # nothing may stop the exit
            pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class Elector:
    """One candidate for one Lease. `acquire` waits as standby; `start` renews as the leader;
    `release` gives the Lease up. Clocks and the exit are injectable for the unit tests."""

    def __init__(self, kube: Kube, namespace: str, name: str, identity: str, *, lease_seconds: int = 15,
                 renew_deadline: float = 10.0, retry: float = 2.0, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = _utcnow, exit: Callable[[int], NoReturn] = _exit_now) -> None:
        if not 0 < retry < renew_deadline < lease_seconds:
            raise ValueError(f"leader election needs retry ({retry}) < renew deadline ({renew_deadline}) < lease duration "
                             f"({lease_seconds}) seconds")
        self.kube, self.namespace, self.name, self.identity = kube, namespace, name, identity
        self.lease_seconds, self.renew_deadline, self.retry = lease_seconds, renew_deadline, retry
        self.path = core_path("leases", namespace, name, group=LEASE_GROUP)
        self._clock, self._wall, self._exit = clock, wall, exit
        self.lease: dict[str, Any] | None = None  # the last version we read or wrote
        self.holder: str | None = None  # who holds it, as last seen
        self.renewed_at: float | None = None  # clock() at the start of our last successful write
        self.progress_at = clock()  # the standby loop's last turn (its liveness)
        self.leading = False
        self._renewer: asyncio.Task[None] | None = None
        self._watchdog_stop = threading.Event()

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"

    # -- standby --------------------------------------------------------------------------------

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Try every retry period until this process holds the Lease (True) or `stop` is set (False)."""
        logged: str | None = None
        while not stop.is_set():
            self.progress_at = self._clock()
            try:
                decision = await self.try_acquire()
            except (ApiError, TransportError, OSError) as error:
                log.warning("standby: the Lease %s could not be read or written: %s", self.where, error)
            else:
                if decision.action != "wait":
                    transitions = (decision.spec or {}).get("leaseTransitions")
                    log.info("leader: %s the Lease %s as %s (leaseTransitions %s)",
                             "created" if decision.action == "create" else "took over", self.where, self.identity, transitions)
                    return True
                if decision.holder and decision.holder != logged:
                    until = format_time(decision.expires) if decision.expires else "?"
                    log.info("standby: lease %s held by %s (until %s unless renewed); waiting", self.where, decision.holder, until)
                    logged = decision.holder
            try:
                await asyncio.wait_for(stop.wait(), self.retry)
            except TimeoutError:
                pass
        return False

    async def try_acquire(self) -> Decision:
        """One look at the Lease and, unless someone else holds it, one write."""
        lease = await self._read()
        decision = lease_decision(lease, self.identity, self._wall(), self.lease_seconds)
        if decision.action == "wait":
            self.holder = decision.holder
            return decision
        assert decision.spec is not None
        started = self._clock()
        try:
            if lease is None:
                written = await self.kube.create(core_path("leases", self.namespace, group=LEASE_GROUP), {
                    "apiVersion": f"{LEASE_GROUP}/v1", "kind": "Lease", "metadata": {"name": self.name}, "spec": decision.spec})
            else:
                written = await self.kube.request("PUT", self.path, body={**lease, "spec": decision.spec})
        except ApiError as error:
            if error.status == 409:  # AlreadyExists, or the resourceVersion moved on: another candidate won
                log.info("standby: another candidate wrote the Lease %s first", self.where)
                return Decision("wait")
            raise
        self.lease, self.renewed_at, self.holder = written, started, self.identity
        return decision

    async def _read(self) -> dict[str, Any] | None:
        try:
            return await self.kube.get(self.path)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    # -- leader ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Leading from now on: renew in the background, watch the deadline from a thread, fence writes.
        Call before Kopf starts: Kopf cancels every task created after it started when it stops."""
        self.leading = True
        Kube.write_fence = self.check
        self._renewer = asyncio.create_task(self._renew_forever(), name="leader lease renewal")
        interval = min(0.5, self.retry / 2)
        threading.Thread(target=self._watchdog, args=(interval,), name="leader-lease-watchdog", daemon=True).start()

    def alive(self, stale_after: float) -> bool:
        """The standby loop turned within `stale_after` seconds."""
        return self._clock() - self.progress_at < stale_after

    def fresh(self) -> bool:
        return self.renewed_at is not None and self._clock() - self.renewed_at < self.renew_deadline

    def check(self) -> None:
        """Exit unless the last renewal is within the renew deadline (no-op unless leading)."""
        if self.leading and not self.fresh():
            since = self._clock() - self.renewed_at if self.renewed_at is not None else float("inf")
            self.lost(f"no renewal succeeded for {since:.1f} s (renew deadline {self.renew_deadline:g} s)")

    def lost(self, why: str) -> NoReturn:
        log.error("leader: lost the Lease %s: %s; exiting now so that a standby takes over", self.where, why)
        self._exit(1)

    def _watchdog(self, interval: float) -> None:
        while not self._watchdog_stop.wait(interval):
            self.check()

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.retry)
            try:
                await self.renew()
            except Exception:  # a bug here must not end the renewals silently; the deadline still holds
                log.exception("leader: renewing the Lease %s failed", self.where)
            self.check()

    async def renew(self) -> None:
        """One renewal: a PUT on the version we last wrote (one request). A 409 means someone else
        wrote the Lease: if it is no longer ours, we lost it; if it still is, the next turn renews
        from the fresh version."""
        started = self._clock()
        decision = lease_decision(self.lease, self.identity, self._wall(), self.lease_seconds)
        if decision.action != "renew" or self.lease is None:
            self.lost(f"it is held by {decision.holder or 'nobody'}")
        try:
            self.lease = await self.kube.request("PUT", self.path, body={**self.lease, "spec": decision.spec})
            self.renewed_at = started
        except ApiError as error:
            if error.status != 409:
                log.warning("leader: renewing the Lease %s failed: %s", self.where, error)
                return
            try:
                current = await self._read()
            except (ApiError, TransportError, OSError) as read_error:
                log.warning("leader: reading the Lease %s after a conflict failed: %s", self.where, read_error)
                return
            holder = ((current or {}).get("spec") or {}).get("holderIdentity")
            if current is None or holder != self.identity:
                self.lost("it was deleted" if current is None else f"it is now held by {holder or 'nobody'}")
            self.lease = current
        except (TransportError, OSError) as error:
            log.warning("leader: renewing the Lease %s failed: %s", self.where, error)

    async def release(self) -> None:
        """Stop renewing and give the Lease up, if it is still ours for sure."""
        if not self.leading:
            return
        if self._renewer is not None:
            self._renewer.cancel()
            try:
                await self._renewer
            except BaseException:  # cancelled, as asked (it logs its own failures)
                pass
        self._watchdog_stop.set()
        try:
            for _ in range(2):  # a renewal cancelled in flight may have moved the resourceVersion on
                if not self.fresh() or self.lease is None:
                    log.warning("leader: not releasing the Lease %s: its last renewal is too old to be sure it is ours", self.where)
                    return
                try:
                    await self.kube.request("PUT", self.path, body={
                        **self.lease, "spec": release_spec(self.lease.get("spec") or {}, self._wall())})
                    log.info("leader: released the Lease %s", self.where)
                    return
                except ApiError as error:
                    if error.status != 409:
                        raise
                    current = await self._read()
                    if current is None or (current.get("spec") or {}).get("holderIdentity") != self.identity:
                        return  # not ours any more: nothing to release
                    self.lease = current
        except (ApiError, TransportError, OSError) as error:
            log.warning("leader: releasing the Lease %s failed (a standby takes over once it expires): %s", self.where, error)
        finally:
            self.leading = False
            Kube.write_fence = None
            LEADER.set(0)


# ---------------------------------------------------------------------------------------------
# Liveness while standing by
# ---------------------------------------------------------------------------------------------

async def standby_health(host: str, port: int, elector: Elector, stale_after: float) -> asyncio.Server:
    """/healthz on the health port while Kopf (which serves it once leading) is not running yet:
    200 while the standby loop turns, 503 if it has been stuck for `stale_after` seconds."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            parts = head.split(b" ", 2)
            path = parts[1].split(b"?")[0] if len(parts) > 2 else b""
            if path == b"/healthz":
                status = b"200 OK" if elector.alive(stale_after) else b"503 Service Unavailable"
                body = json.dumps({"role": "standby", "lease": elector.where, "holder": elector.holder}).encode()
            else:
                status, body = b"404 Not Found", b'{"error": "not found"}'
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(answer, host, port)


# ---------------------------------------------------------------------------------------------
# The whole life of a candidate
# ---------------------------------------------------------------------------------------------

async def lead(settings: OperatorSettings, operate: Callable[[], Awaitable[object]]) -> None:
    """Stand by until this process holds the Lease, then `operate()` (Kopf) while renewing it;
    release it when `operate` returns (Kopf returns on SIGTERM/SIGINT)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    operating = False

    def resend(sig: signal.Signals) -> None:
        if operating:
            os.kill(os.getpid(), sig)

    def on_signal(sig: signal.Signals) -> None:
        stop.set()
        if operating:
            # Only in the moment between Kopf's start and its own signal handlers: hand the
            # signal on to Kopf. (Not Kopf's stop_flag: its waiter task would outlive a signal
            # stop and hold every shutdown for 5 s.)
            loop.call_later(0.2, resend, sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    timeout = max(1.0, min(5.0, settings.leader_renew_deadline_seconds / 2))
    # A client of its own: renewals never queue behind the controller's writes.
    kube = Kube(await Connection.resolve(context=settings.kube_context), timeout=timeout, max_in_flight=2)
    elector = Elector(kube, lease_namespace(settings), settings.leader_lease_name, make_identity(),
                      lease_seconds=settings.leader_lease_seconds, renew_deadline=settings.leader_renew_deadline_seconds,
                      retry=settings.leader_retry_seconds)
    LEADER.set(0)
    log.info("standby: %s is a candidate for the leader Lease %s", elector.identity, elector.where)
    health = await standby_health(settings.metrics_host, settings.health_port, elector,
                                  stale_after=max(30.0, 3 * (2 * timeout + settings.leader_retry_seconds)))
    try:
        leading = await elector.acquire(stop)
    finally:
        health.close()
        await health.wait_closed()  # Kopf binds the same port next
    try:
        if not leading:
            log.info("standby: stopped before leading")
            return
        LEADER.set(1)
        elector.start()
        if not stop.is_set():
            operating = True
            try:
                await operate()
            finally:
                operating = False
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)  # a second signal while releasing: the default, die
        await elector.release()
        await kube.close()
