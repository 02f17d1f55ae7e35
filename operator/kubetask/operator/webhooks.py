"""Completion webhooks, the pure part: which deliveries are due, what is sent, how it is signed,
when it is retried, which destinations are allowed. No I/O; webhook_delivery.py executes.

The state of every delivery lives in the Task's `status.webhooks` (one record per run and event,
bounded), so a restarted operator finds what is still due from its indexes: a terminal phase (or a
started run, for Running) without a final record is due. See docs/webhooks.md.

Why inherited webhooks (a TaskType's or TaskQueue's default) carry a `since`: pointing an existing
TaskWebhook at a TaskType must not notify every Task of that type that finished last week and is
still kept. The operator records in the TaskWebhook's status when it first saw each TaskType or
TaskQueue name it, and only events after that are sent for their Tasks. A Task's own
`spec.webhook` is immutable and explicit: all its events are sent, even if its TaskWebhook is
created later (the delivery waits for it).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import urlsplit

from kubetask.operator.status import epoch
from kubetask.resources.models import API_VERSION, DEFAULT_WEBHOOK_EVENTS, MAX_WEBHOOK_RECORDS, webhook_url_problem

SIGNATURE_HEADER = "Kubetask-Signature"
DELIVERY_HEADER = "Kubetask-Delivery"
EVENT_HEADER = "Kubetask-Event"
USER_AGENT = "kubetask-webhooks/1"
TERMINAL_EVENTS = ("Succeeded", "Failed", "Cancelled")
FINAL_STATES = frozenset({"Delivered", "Failed", "Refused"})
# Delivery ids are UUIDv5 in a namespace of kubetask's own: stable for (Task uid, run, event).
DELIVERY_NAMESPACE = uuid.UUID("0f8d4c52-7f0e-5a3e-9a52-6b7562657461")
Source = Literal["Task", "TaskType", "TaskQueue"]


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# Identity, payload, signature, retries
# ---------------------------------------------------------------------------------------------

def delivery_id(uid: str, run: int, event: str) -> str:
    """The same for every attempt of one delivery (and after restarts): receivers de-duplicate on it."""
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{uid}/{run}/{event}"))


def body_bytes(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact JSON with sorted keys."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")


def signature(key: bytes, timestamp: int, body: bytes) -> str:
    """The Kubetask-Signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>." + body)>`.
    The timestamp is signed with the body, so a receiver that rejects old timestamps is safe
    from replays (as Stripe signs)."""
    mac = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def headers(key: bytes, delivery: str, event: str, body: bytes, timestamp: int) -> dict[str, str]:
    return {"Content-Type": "application/json", "User-Agent": USER_AGENT, SIGNATURE_HEADER: signature(key, timestamp, body),
            DELIVERY_HEADER: delivery, EVENT_HEADER: event}


def _ready(status: Mapping[str, Any]) -> Mapping[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})


def payload(task: Mapping[str, Any], run: int, event: str) -> dict[str, Any]:
    """What is POSTed for one event of one run: the Task's identity, phase, reason, result and
    timestamps. An event of an earlier run (the Task was re-run meanwhile) is described from
    status.history, which keeps no result."""
    meta, spec, status = task["metadata"], task.get("spec") or {}, task.get("status") or {}
    current = int(status.get("run") or 0) == run
    past: Mapping[str, Any] = next((h for h in status.get("history") or [] if int(h.get("run") or 0) == run), {})
    source: Mapping[str, Any] = status if current else past
    started, completed = source.get("startTime"), source.get("completionTime")
    body: dict[str, Any] = {
        "id": delivery_id(meta["uid"], run, event),
        "event": event,
        "task": {"apiVersion": API_VERSION, "kind": "Task", "namespace": meta["namespace"], "name": meta["name"],
                 "uid": meta["uid"], "run": run, "type": spec.get("type"), "queue": status.get("queue")},
        "phase": event,
        "reason": "", "message": "", "result": None, "lastFailure": None,
        "attempts": int(source.get("attempts") or 0),
        "timestamps": {"creationTimestamp": meta.get("creationTimestamp"),
                       "queuedTime": status.get("queuedTime") if current else None,
                       "startTime": started, "completionTime": None},
    }
    if event == "Running":
        body["occurredAt"] = started
        running_now = current and status.get("phase") == "Running"
        body["reason"] = str(_ready(status).get("reason") or "Started") if running_now else "Started"
        body["message"] = str(_ready(status).get("message") or "") if running_now else "the run started: its Job was created"
        return body
    body["occurredAt"] = completed
    body["timestamps"]["completionTime"] = completed
    if current:
        ready = _ready(status)
        body["reason"], body["message"] = str(ready.get("reason") or event), str(ready.get("message") or "")
        body["result"], body["lastFailure"] = status.get("result"), status.get("lastFailure")
    else:
        body["reason"] = str(past.get("reason") or event)
    return body


def retry_delay(attempts: int, base: float, cap: float, delivery: str) -> float:
    """Seconds after attempt number `attempts` (1 = the first) before the next: base·2^(attempts-1),
    capped, then "equal jitter" (a point in the upper half) so receivers that failed together are not
    hit in lockstep. The jitter is a hash of the delivery and attempt, not random: the schedule
    recorded in status.nextAttemptTime is the one a restarted operator keeps."""
    exponent = min(max(attempts - 1, 0), 40)
    delay = min(cap, base * float(2 ** exponent))
    jitter = int.from_bytes(hashlib.sha256(f"{delivery}/{attempts}".encode()).digest()[:8], "big") / 2.0 ** 64
    return delay / 2 + delay / 2 * jitter


# ---------------------------------------------------------------------------------------------
# Which webhook, which events are due
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Resolved:
    name: str
    source: Source
    source_name: str  # the Task's, TaskType's or TaskQueue's name


def resolve_webhook(task_name: str, spec: Mapping[str, Any], tasktype_spec: Mapping[str, Any] | None,
                    queue: str, queue_webhook: str | None) -> Resolved | None:
    """The Task's own webhook, else its TaskType's defaults.webhook, else its TaskQueue's."""
    if spec.get("webhook"):
        return Resolved(str(spec["webhook"]), "Task", task_name)
    default = ((tasktype_spec or {}).get("defaults") or {}).get("webhook")
    if default:
        return Resolved(str(default), "TaskType", str(spec.get("type") or ""))
    if queue_webhook:
        return Resolved(queue_webhook, "TaskQueue", queue)
    return None


@dataclass(frozen=True)
class Record:
    """status.webhooks[] as the index keeps it (no result text)."""

    run: int
    event: str
    state: str
    webhook: str


@dataclass(frozen=True)
class DeliveryFacts:
    """What deciding which deliveries are due needs, from a Task body or a finished-Task record."""

    namespace: str
    name: str
    uid: str
    type: str
    queue: str  # status.queue (empty until the operator resolved it)
    webhook: str | None  # spec.webhook
    run: int  # the run status describes
    phase: str
    started: float | None  # status.startTime
    finished: float | None  # status.completionTime
    records: tuple[Record, ...] = ()


def records_of(status: Mapping[str, Any]) -> tuple[Record, ...]:
    return tuple(Record(int(r.get("run") or 0), str(r.get("event") or ""), str(r.get("state") or ""), str(r.get("webhook") or ""))
                 for r in status.get("webhooks") or [])


def facts_from_body(body: Mapping[str, Any]) -> DeliveryFacts:
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    return DeliveryFacts(
        namespace=str(meta.get("namespace") or ""), name=str(meta["name"]), uid=str(meta["uid"]), type=str(spec.get("type") or ""),
        queue=str(status.get("queue") or ""), webhook=spec.get("webhook"), run=int(status.get("run") or 0),
        phase=str(status.get("phase") or ""), started=epoch(status.get("startTime")), finished=epoch(status.get("completionTime")),
        records=records_of(status))


def reached(facts: DeliveryFacts) -> list[tuple[str, float | None]]:
    """The events the described run has reached, with when. Running means the run started (its
    Job was created: phase Running), so a finished run that started has reached it too, even if
    it finished before its Running status was ever written."""
    events: list[tuple[str, float | None]] = []
    if facts.phase == "Running" or (facts.phase in TERMINAL_EVENTS and facts.started is not None):
        events.append(("Running", facts.started))
    if facts.phase in TERMINAL_EVENTS:
        events.append((facts.phase, facts.finished))
    return events


def since_of(webhook: Mapping[str, Any] | None, resolved: Resolved) -> float | None:
    """When the operator first saw the TaskType or TaskQueue name this webhook (status.sources)."""
    for source in ((webhook or {}).get("status") or {}).get("sources") or []:
        if source.get("kind") == resolved.source and source.get("name") == resolved.source_name:
            return epoch(source.get("since"))
    return None


def subscribed(webhook: Mapping[str, Any] | None) -> tuple[str, ...]:
    events = ((webhook or {}).get("spec") or {}).get("events")
    return tuple(events) if events else DEFAULT_WEBHOOK_EVENTS


def due(facts: DeliveryFacts, resolved: Resolved | None, webhook: Mapping[str, Any] | None) -> list[tuple[int, str]]:
    """(run, event) of every delivery still to do: recorded and not final, or reached and not
    recorded yet (subscribed, and for an inherited webhook not before its `since`)."""
    recorded = {(r.run, r.event): r for r in facts.records}
    out = [(r.run, r.event) for r in facts.records if r.state not in FINAL_STATES]
    if resolved is None:
        return out
    inherited = resolved.source != "Task"
    if inherited and webhook is None:
        return out  # no since is known for a TaskWebhook that does not exist (see the module docstring)
    since = since_of(webhook, resolved) if inherited else None
    for event, when in reached(facts):
        if (facts.run, event) in recorded or event not in subscribed(webhook):
            continue
        if inherited and (since is None or when is None or when < since):  # both in whole seconds: the same second counts
            continue
        out.append((facts.run, event))
    return out


# ---------------------------------------------------------------------------------------------
# Records in status.webhooks
# ---------------------------------------------------------------------------------------------

def find_record(status: Mapping[str, Any], run: int, event: str) -> dict[str, Any] | None:
    return next((dict(r) for r in status.get("webhooks") or [] if int(r.get("run") or 0) == run and r.get("event") == event), None)


def after_attempt(previous: Mapping[str, Any] | None, *, uid: str, run: int, event: str, webhook: str, ok: bool, final: bool,
                  result: str, max_attempts: int, now: float, base: float, cap: float) -> dict[str, Any]:
    """The record after one attempt: Delivered on a 2xx; Refused when the destination is not
    allowed (retrying cannot help); Failed once maxAttempts are used up; else Pending until the
    backoff has passed."""
    delivery = delivery_id(uid, run, event)
    attempts = int((previous or {}).get("attempts") or 0) + 1
    state = "Delivered" if ok else "Refused" if final else "Failed" if attempts >= max_attempts else "Pending"
    record: dict[str, Any] = {"event": event, "run": run, "webhook": webhook, "deliveryId": delivery, "state": state,
                              "attempts": attempts, "lastAttemptTime": rfc3339(now), "lastResult": result[:1024]}
    if state == "Pending":
        record["nextAttemptTime"] = rfc3339(math.ceil(now + retry_delay(attempts, base, cap, delivery)))
    return record


def waiting(previous: Mapping[str, Any] | None, *, uid: str, run: int, event: str, webhook: str, result: str) -> dict[str, Any]:
    """Not sent: its TaskWebhook or Secret is missing. No attempt is used up; it is sent once they exist."""
    record = {k: v for k, v in (previous or {}).items() if k != "nextAttemptTime"}
    record.update({"event": event, "run": run, "webhook": webhook, "deliveryId": delivery_id(uid, run, event), "state": "Waiting",
                   "attempts": int((previous or {}).get("attempts") or 0), "lastResult": result[:1024]})
    return record


def with_record(records: Iterable[Mapping[str, Any]], record: Mapping[str, Any] | None, run: int, event: str,
                limit: int = MAX_WEBHOOK_RECORDS) -> list[dict[str, Any]]:
    """status.webhooks with this delivery's record replaced (None: removed), newest last, bounded:
    past the limit the oldest final records go first, so a delivery still to do is kept."""
    kept = [dict(r) for r in records if not (int(r.get("run") or 0) == run and r.get("event") == event)]
    if record is not None:
        kept.append(dict(record))
    while len(kept) > limit:
        index = next((i for i, r in enumerate(kept[:-1]) if r.get("state") in FINAL_STATES), 0)
        kept.pop(index)
    return kept


def next_attempt_in(record: Mapping[str, Any] | None, now: float) -> float:
    """Seconds until a Pending record may be sent again (0: now)."""
    if not record or record.get("state") != "Pending":
        return 0.0
    when = epoch(record.get("nextAttemptTime"))
    return max(0.0, when - now) if when is not None else 0.0


# ---------------------------------------------------------------------------------------------
# Outbound safety (SSRF)
# ---------------------------------------------------------------------------------------------

RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
SHARED = ipaddress.ip_network("100.64.0.0/10")
ULA = ipaddress.ip_network("fc00::/7")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Names that resolve inside the cluster or the host, never on the internet. A name without a dot is
# cluster-internal too: the pod's DNS search path turns `api` into `api.<namespace>.svc.cluster.local`.
INTERNAL_SUFFIXES = (".localhost", ".local", ".svc", ".cluster.local", ".internal", ".home.arpa")
ALWAYS_REFUSED = frozenset({"unspecified", "multicast"})
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_class(address: IPAddress) -> str | None:
    """Why an address is not a public destination (None: it is)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in NAT64 else None)
        if embedded is not None:
            return address_class(embedded)
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"  # 169.254.169.254 is the cloud metadata service
    if isinstance(address, ipaddress.IPv4Address) and address in SHARED:
        return "shared (RFC 6598)"  # carrier-grade NAT; often a cluster's pod or service range
    if any(address in n for n in RFC1918) or (isinstance(address, ipaddress.IPv6Address) and address in ULA):
        return "private"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"
    if not address.is_global:
        return "reserved"
    return None


def address_problem(text: str, allow_private: bool) -> str | None:
    address = ipaddress.ip_address(text.split("%", 1)[0])
    kind = address_class(address)
    if kind is None:
        return None
    if kind in ALWAYS_REFUSED:
        return f"{text} is a {kind} address, which cannot receive webhooks"
    if allow_private:
        return None
    return f"{text} is a {kind} address; set allowPrivateNetworks: true on the TaskWebhook to allow it"


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def host_problem(host: str, allow_private: bool) -> str | None:
    """What the url's host alone rules out: an address literal that is not public, or a
    cluster-internal name. Names are checked again by what they resolve to (address_problem)."""
    if _literal(host) is not None:
        return address_problem(host, allow_private)
    name = host.rstrip(".").lower()
    if not name:
        return "the url has no host"
    if allow_private:
        return None
    if "." not in name:
        return f"{host} has no dot: inside a cluster it names a cluster-internal service; set allowPrivateNetworks: true on the TaskWebhook to allow it"
    if name == "localhost" or name.endswith(INTERNAL_SUFFIXES):
        return f"{host} is a cluster-internal or local name; set allowPrivateNetworks: true on the TaskWebhook to allow it"
    return None


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str  # lower case, no brackets
    port: int
    target: str  # path and query
    host_header: str  # what the receiver sees as Host

    @property
    def literal(self) -> bool:
        return _literal(self.host) is not None

    def pinned_url(self, address: str) -> str:
        """The url with the checked address instead of the name: the connection goes where the
        check looked, whatever the name resolves to a moment later (DNS rebinding)."""
        shown = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{shown}:{self.port}{self.target}"


def destination(url: str, allow_insecure_http: bool, allow_private: bool) -> tuple[Destination | None, str | None]:
    """The parsed destination, or why it is refused (the url rules, then the host rules)."""
    problem = webhook_url_problem(url, allow_insecure_http)
    if problem:
        return None, problem
    parts = urlsplit(url)
    host = parts.hostname or ""
    problem = host_problem(host, allow_private)
    if problem:
        return None, problem
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    shown = f"[{host}]" if ":" in host else host
    default_port = port == (443 if scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(scheme, host, port, target, shown if default_port else f"{shown}:{port}"), None


# ---------------------------------------------------------------------------------------------
# The TaskWebhook's own status
# ---------------------------------------------------------------------------------------------

def ready_condition(spec: Mapping[str, Any], secret_problem: tuple[str, str] | None, previous: list[dict[str, Any]],
                    generation: int | None, now: str) -> dict[str, Any]:
    """Ready: the url is allowed and the Secret holds the key. `secret_problem` is (reason, message)."""
    _, url_problem = destination(str(spec.get("url") or ""), bool(spec.get("allowInsecureHTTP")), bool(spec.get("allowPrivateNetworks")))
    if url_problem:
        status, reason, message = "False", "DestinationRefused", url_problem
    elif secret_problem is not None:
        status, (reason, message) = "False", secret_problem
    else:
        ref = spec.get("secretRef") or {}
        status, reason, message = "True", "Ready", f"Secret {ref.get('name')!r} holds key {ref.get('key', 'key')!r}; deliveries go to {spec.get('url')}"
    old = next((c for c in previous if c.get("type") == "Ready"), None)
    transition = old["lastTransitionTime"] if old and old.get("status") == status and old.get("lastTransitionTime") else now
    condition = {"type": "Ready", "status": status, "reason": reason, "message": message[:32768], "lastTransitionTime": transition}
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def merged_sources(previous: Iterable[Mapping[str, Any]], current: Iterable[tuple[str, str]], now: str) -> list[dict[str, Any]]:
    """status.sources: the (kind, name) that name this webhook now, each keeping the time it was
    first seen; one that stopped naming it is dropped (naming it again starts a new since)."""
    known = {(str(s.get("kind")), str(s.get("name"))): str(s.get("since")) for s in previous}
    return [{"kind": kind, "name": name, "since": known.get((kind, name)) or now} for kind, name in sorted(set(current))]
