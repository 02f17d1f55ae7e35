"""Completion webhooks against the local control plane, delivered to real HTTP receivers on
127.0.0.1 that verify every signature with the algorithm docs/webhooks.md documents.

The receivers are plain HTTP on loopback, which a TaskWebhook refuses by default (https only, no
private or loopback destinations): their TaskWebhooks set allowInsecureHTTP and
allowPrivateNetworks, except where a test checks exactly that refusal.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from harness import OperatorProcess, wait_for
from kt import apply_queue, apply_tasktype, create_task, get_task, patch_spec, sim, wait_phase
from kubetask.kube import ApiError, KubeSync, core_path, tasks_path
from kubetask.operator.webhooks import delivery_id

pytestmark = pytest.mark.usefixtures("operator")
KEY = b"whsec-test-0123456789abcdef"
TOLERANCE = 300


def verify(secret: bytes, body: bytes, signature_header: str, tolerance: int = TOLERANCE) -> bool:
    """The receiver's check, exactly as docs/webhooks.md gives it."""
    try:
        fields = dict(part.split("=", 1) for part in signature_header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False  # too old (or from the future): a replay
    expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))


class Receiver:
    """An HTTP receiver in a thread: records every request, verifies its signature, and answers
    500 to its first `fail_first` requests (or to all while `failing`)."""

    def __init__(self, key: bytes = KEY, fail_first: int = 0, delay: float = 0.0) -> None:
        self.key = key
        self.fail_first = fail_first
        self.delay = delay  # seconds before answering: a slow receiver
        self.failing = False
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    number = len(receiver.requests) + 1
                    fail = receiver.failing or number <= receiver.fail_first
                    receiver.requests.append({
                        "path": self.path, "headers": dict(self.headers), "body": body,
                        "valid": verify(receiver.key, body, self.headers.get("Kubetask-Signature", "")),
                        "payload": json.loads(body), "answered": 500 if fail else 204,
                    })
                time.sleep(receiver.delay)
                self.send_response(500 if fail else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/kubetask"

    def seen(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.requests)

    def for_task(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.seen() if r["payload"]["task"]["name"] == name]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for receiver in made:
        receiver.close()


def receiver(receivers: list[Receiver], **options: Any) -> Receiver:
    made = Receiver(**options)
    receivers.append(made)
    return made


@pytest.fixture
def ns(kube: KubeSync, namespace: str) -> str:
    """A namespace with a TaskType `sim`, a default queue and the signing-key Secret."""
    apply_tasktype(kube, namespace, "sim", defaults={"resources": {"cpu": "100m", "memory": "64Mi"}})
    apply_queue(kube, namespace, "default", maxRunning=20)
    put_secret(kube, namespace, "hook-key")
    return namespace


def put_secret(kube: KubeSync, namespace: str, name: str, key: bytes = KEY) -> None:
    kube.create(core_path("secrets", namespace), {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                                                   "data": {"key": base64.b64encode(key).decode()}})


def apply_webhook(kube: KubeSync, namespace: str, name: str, url: str, secret: str = "hook-key", loopback: bool = True,
                  **spec: Any) -> dict[str, Any]:
    if loopback:  # the test receivers: plain HTTP on 127.0.0.1, refused unless allowed
        spec = {"allowInsecureHTTP": True, "allowPrivateNetworks": True, **spec}
    body = {"apiVersion": "kubetask.io/v1alpha1", "kind": "TaskWebhook", "metadata": {"name": name},
            "spec": {"url": url, "secretRef": {"name": secret}, **spec}}
    return kube.create(tasks_path(namespace, plural="taskwebhooks"), body)


def ready(kube: KubeSync, namespace: str, name: str, status: str = "True", reason: str | None = None) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        hook = kube.get(tasks_path(namespace, name, plural="taskwebhooks"))
        condition = next(c for c in hook["status"]["conditions"] if c["type"] == "Ready")
        return condition if condition["status"] == status and reason in (None, condition["reason"]) else None

    return wait_for(probe, timeout=30, what=f"TaskWebhook {name} Ready={status} {reason or ''}")


def record(kube: KubeSync, namespace: str, task: str, event: str, state: str | tuple[str, ...] = "Delivered",
           timeout: float = 60) -> dict[str, Any]:
    states = (state,) if isinstance(state, str) else state

    def probe() -> dict[str, Any] | None:
        records = get_task(kube, namespace, task).get("status", {}).get("webhooks") or []
        found = next((r for r in records if r["event"] == event), None)
        return found if found is not None and found["state"] in states else None

    return wait_for(probe, timeout=timeout, what=f"Task {task}: webhook {event} {states}")


def test_succeeded_failed_and_cancelled_each_deliver_once_signed(kube: KubeSync, ns: str, receivers: list[Receiver],
                                                                 operator: OperatorProcess) -> None:
    hook = receiver(receivers)
    apply_webhook(kube, ns, "hooks", hook.url)
    ready(kube, ns, "hooks")
    create_task(kube, ns, "ok", sim(run_for="1s", message='{"answer": 42}'), webhook="hooks")
    create_task(kube, ns, "bad", sim(run_for="1s", exit_code=3, message="disk full"), webhook="hooks")
    create_task(kube, ns, "stop", sim(run_for="120s"), webhook="hooks")
    wait_phase(kube, ns, "stop", "Running")
    patch_spec(kube, ns, "stop", {"cancel": True})
    for name, event in (("ok", "Succeeded"), ("bad", "Failed"), ("stop", "Cancelled")):
        stored = record(kube, ns, name, event)
        task = get_task(kube, ns, name)
        uid = task["metadata"]["uid"]
        assert stored["attempts"] == 1 and stored["webhook"] == "hooks" and stored["run"] == 0
        assert stored["deliveryId"] == delivery_id(uid, 0, event)
        assert stored["lastResult"] == "HTTP 204"
    time.sleep(2)  # anything sent twice would arrive by now
    seen = hook.seen()
    assert sorted(r["payload"]["task"]["name"] for r in seen) == ["bad", "ok", "stop"], [r["payload"] for r in seen]
    assert all(r["valid"] for r in seen), "every request carries a valid signature"
    for request in seen:
        payload, headers = request["payload"], request["headers"]
        task = get_task(kube, ns, payload["task"]["name"])
        meta, status = task["metadata"], task["status"]
        assert request["path"] == "/hooks/kubetask"
        assert headers["Kubetask-Event"] == payload["event"] == payload["phase"] == status["phase"]
        assert headers["Kubetask-Delivery"] == payload["id"] == delivery_id(meta["uid"], 0, payload["event"])
        assert headers["Content-Type"] == "application/json"
        assert payload["task"] == {"apiVersion": "kubetask.io/v1alpha1", "kind": "Task", "namespace": ns, "name": meta["name"],
                                   "uid": meta["uid"], "run": 0, "type": "sim", "queue": "default"}
        assert payload["timestamps"] == {"creationTimestamp": meta["creationTimestamp"], "queuedTime": status.get("queuedTime"),
                                         "startTime": status.get("startTime"), "completionTime": status["completionTime"]}
        assert payload["occurredAt"] == status["completionTime"]
        assert payload["result"] == status.get("result") and payload["lastFailure"] == status.get("lastFailure")
    by_name = {r["payload"]["task"]["name"]: r["payload"] for r in seen}
    assert by_name["ok"]["result"] == {"answer": 42} and by_name["ok"]["reason"] == "Succeeded"
    assert by_name["bad"]["reason"] == "BackoffLimitExceeded" and by_name["bad"]["lastFailure"]["exitCode"] == 3
    assert by_name["stop"]["reason"] == "Cancelled" and by_name["stop"]["result"] is None
    metrics = operator.metrics()
    line = f'kubetask_webhook_deliveries_total{{namespace="{ns}",outcome="Delivered",webhook="hooks"}} 3.0'
    assert line in metrics, [m for m in metrics.splitlines() if "webhook" in m]


def test_a_receiver_failing_twice_gets_the_third_attempt(kube: KubeSync, ns: str, receivers: list[Receiver],
                                                         operator: OperatorProcess) -> None:
    flaky = receiver(receivers, fail_first=2)
    apply_webhook(kube, ns, "flaky", flaky.url)
    ready(kube, ns, "flaky")
    create_task(kube, ns, "ok", sim(run_for="1s"), webhook="flaky")
    stored = record(kube, ns, "ok", "Succeeded")
    assert stored["attempts"] == 3 and stored["lastResult"] == "HTTP 204" and "nextAttemptTime" not in stored
    seen = flaky.seen()
    assert [r["answered"] for r in seen] == [500, 500, 204]
    assert all(r["valid"] for r in seen)
    assert len({r["headers"]["Kubetask-Delivery"] for r in seen}) == 1, "every attempt carries the same delivery id"
    assert f'kubetask_webhook_attempts_total{{namespace="{ns}",result="http_error",webhook="flaky"}} 2.0' in operator.metrics()


def test_a_pending_delivery_survives_an_operator_restart(kube: KubeSync, ns: str, receivers: list[Receiver],
                                                         operator: OperatorProcess) -> None:
    down = receiver(receivers)
    down.failing = True
    apply_webhook(kube, ns, "down", down.url, maxAttempts=20)
    ready(kube, ns, "down")
    create_task(kube, ns, "ok", sim(run_for="1s"), webhook="down")
    pending = record(kube, ns, "ok", "Succeeded", state="Pending")
    assert pending["attempts"] >= 1 and pending["lastResult"] == "HTTP 500" and pending["nextAttemptTime"]
    try:
        operator.stop()
        before = len(down.seen())
        down.failing = False
    finally:
        operator.start()
    stored = record(kube, ns, "ok", "Succeeded")
    seen = down.seen()
    assert len(seen) > before and seen[-1]["answered"] == 204 and seen[-1]["valid"]
    assert stored["attempts"] == len(seen), (stored, [r["answered"] for r in seen])
    assert len({r["headers"]["Kubetask-Delivery"] for r in seen}) == 1


def test_running_is_sent_when_the_webhook_asks_for_it(kube: KubeSync, ns: str, receivers: list[Receiver]) -> None:
    hook = receiver(receivers)
    apply_webhook(kube, ns, "both", hook.url, events=["Running", "Succeeded"])
    ready(kube, ns, "both")
    create_task(kube, ns, "ok", sim(run_for="3s"), webhook="both")
    record(kube, ns, "ok", "Running")
    record(kube, ns, "ok", "Succeeded")
    events = {r["payload"]["event"]: r["payload"] for r in hook.for_task("ok")}
    assert sorted(events) == ["Running", "Succeeded"]
    task = get_task(kube, ns, "ok")
    assert events["Running"]["occurredAt"] == task["status"]["startTime"]
    assert events["Running"]["timestamps"]["completionTime"] is None and events["Running"]["result"] is None


def test_task_then_tasktype_then_queue_and_defaults_only_count_from_when_they_were_set(
        kube: KubeSync, ns: str, receivers: list[Receiver]) -> None:
    by_type, by_queue, own = receiver(receivers), receiver(receivers), receiver(receivers)
    for name, made in (("by-type", by_type), ("by-queue", by_queue), ("own", own)):
        apply_webhook(kube, ns, name, made.url)
        ready(kube, ns, name)
    create_task(kube, ns, "before", sim(run_for="1s"))
    wait_phase(kube, ns, "before", "Succeeded")
    time.sleep(1.1)  # recorded times have whole seconds: the defaults below come a second later
    kube.patch(tasks_path(ns, "default", plural="taskqueues"), {"spec": {"webhook": "by-queue"}})
    apply_tasktype(kube, ns, "typed", defaults={"webhook": "by-type", "resources": {"cpu": "100m", "memory": "64Mi"}})

    def sources() -> list[tuple[str, str]] | None:
        found = {(s["kind"], s["name"]) for name in ("by-type", "by-queue")
                 for s in kube.get(tasks_path(ns, name, plural="taskwebhooks"))["status"].get("sources", [])}
        return sorted(found) if len(found) == 2 else None

    assert wait_for(sources, what="sources recorded") == [("TaskQueue", "default"), ("TaskType", "typed")]
    create_task(kube, ns, "queued", sim(run_for="1s"))
    create_task(kube, ns, "typed", sim(run_for="1s"), type="typed")
    create_task(kube, ns, "mine", sim(run_for="1s"), type="typed", webhook="own")
    assert record(kube, ns, "queued", "Succeeded")["webhook"] == "by-queue"
    assert record(kube, ns, "typed", "Succeeded")["webhook"] == "by-type"
    assert record(kube, ns, "mine", "Succeeded")["webhook"] == "own"
    time.sleep(2)
    assert [r["payload"]["task"]["name"] for r in by_queue.seen()] == ["queued"], "not 'before': it finished before the queue named it"
    assert [r["payload"]["task"]["name"] for r in by_type.seen()] == ["typed"]
    assert [r["payload"]["task"]["name"] for r in own.seen()] == ["mine"]
    assert "webhooks" not in get_task(kube, ns, "before")["status"]


def test_bad_webhooks_are_refused_by_the_api_server_naming_the_field(kube: KubeSync, ns: str) -> None:
    with pytest.raises(ApiError) as refused:
        apply_webhook(kube, ns, "plain", "http://hooks.example.com/kubetask", loopback=False)
    assert refused.value.status == 422
    assert "spec.url" in refused.value.message and "allowInsecureHTTP" in refused.value.message, refused.value.message
    with pytest.raises(ApiError) as refused:
        apply_webhook(kube, ns, "creds", "https://user:pw@hooks.example.com/", loopback=False)
    assert "spec.url" in refused.value.message and "credentials" in refused.value.message
    with pytest.raises(ApiError) as refused:
        apply_webhook(kube, ns, "slow", "https://hooks.example.com/", loopback=False, timeoutSeconds=60)
    assert "spec.timeoutSeconds" in refused.value.message
    with pytest.raises(ApiError) as refused:
        create_task(kube, ns, "bad-name", webhook="Not_A_Name")
    assert refused.value.status == 422 and "spec.webhook" in refused.value.message
    create_task(kube, ns, "fixed", sim(run_for="60s"), webhook="a")
    with pytest.raises(ApiError) as refused:
        patch_spec(kube, ns, "fixed", {"webhook": "b"})
    assert "webhook is immutable" in refused.value.message


def test_loopback_without_allow_private_networks_is_refused_at_delivery(kube: KubeSync, ns: str, receivers: list[Receiver],
                                                                        operator: OperatorProcess) -> None:
    hook = receiver(receivers)
    # Plain HTTP is allowed here; 127.0.0.1 is not (allowPrivateNetworks is false).
    apply_webhook(kube, ns, "local", hook.url, loopback=False, allowInsecureHTTP=True)
    condition = ready(kube, ns, "local", "False", "DestinationRefused")
    assert "loopback" in condition["message"]
    create_task(kube, ns, "ok", sim(run_for="1s"), webhook="local")
    stored = record(kube, ns, "ok", "Succeeded", state="Refused")
    assert stored["attempts"] == 1 and "127.0.0.1 is a loopback address" in stored["lastResult"]
    assert "allowPrivateNetworks" in stored["lastResult"]
    time.sleep(1)
    assert hook.seen() == [], "nothing was sent"
    assert f'kubetask_webhook_deliveries_total{{namespace="{ns}",outcome="Refused",webhook="local"}} 1.0' in operator.metrics()


def test_a_missing_secret_makes_the_delivery_wait_until_it_exists(kube: KubeSync, ns: str, receivers: list[Receiver]) -> None:
    hook = receiver(receivers)
    apply_webhook(kube, ns, "later", hook.url, secret="later-key")
    assert "later-key" in ready(kube, ns, "later", "False", "SecretNotFound")["message"]
    create_task(kube, ns, "ok", sim(run_for="1s"), webhook="later")
    waiting = record(kube, ns, "ok", "Succeeded", state="Waiting")
    assert waiting["attempts"] == 0 and "later-key" in waiting["lastResult"]
    assert hook.seen() == []
    put_secret(kube, ns, "later-key")
    ready(kube, ns, "later")
    assert record(kube, ns, "ok", "Succeeded")["attempts"] == 1
    assert [r["valid"] for r in hook.seen()] == [True]


def test_a_task_naming_a_webhook_created_later_waits_for_it(kube: KubeSync, ns: str, receivers: list[Receiver]) -> None:
    hook = receiver(receivers)
    create_task(kube, ns, "early", sim(run_for="1s"), webhook="not-yet")
    waiting = record(kube, ns, "early", "Succeeded", state="Waiting")
    assert "does not exist" in waiting["lastResult"]
    apply_webhook(kube, ns, "not-yet", hook.url)
    record(kube, ns, "early", "Succeeded")
    assert [r["payload"]["task"]["name"] for r in hook.seen()] == ["early"]


def test_a_slow_receiver_times_out_and_holds_up_nothing(kube: KubeSync, ns: str, receivers: list[Receiver],
                                                       operator: OperatorProcess) -> None:
    slow = receiver(receivers, delay=8)
    apply_webhook(kube, ns, "slow", slow.url, timeoutSeconds=1, maxAttempts=2)
    ready(kube, ns, "slow")
    names = [f"t-{i}" for i in range(4)]
    started = time.monotonic()
    for name in names:
        create_task(kube, ns, name, sim(run_for="1s"), webhook="slow")
    for name in names:
        wait_phase(kube, ns, name, "Succeeded", timeout=30)
    assert time.monotonic() - started < 25, "the Tasks finished on their own schedule"
    for name in names:
        stored = record(kube, ns, name, "Succeeded", state="Failed")
        assert stored["attempts"] == 2 and stored["lastResult"] == "no answer within timeoutSeconds (1s)"
    assert f'kubetask_webhook_attempts_total{{namespace="{ns}",result="timeout",webhook="slow"}} 8.0' in operator.metrics()
