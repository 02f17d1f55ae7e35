"""Completion webhooks, the pure rules: signature, payload, delivery id, backoff, what is due,
the bounded records, SSRF address and name checks, URL rules; and one attempt's HTTP against a
mock transport (the connection goes to the checked address, redirects are not followed)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import re
import time
import uuid
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from kubetask.operator import webhook_delivery, webhooks
from kubetask.operator.config import OperatorSettings
from kubetask.operator.controller import Views
from kubetask.operator.records import summarize_finished
from kubetask.resources import crdgen, models

KEY = b"whsec-unit"


def verify(secret: bytes, body: bytes, signature_header: str, now: float, tolerance: int = 300) -> bool:
    """docs/webhooks.md's receiver check (with the clock as an argument)."""
    fields = dict(part.split("=", 1) for part in signature_header.split(","))
    timestamp = int(fields["t"])
    if abs(now - timestamp) > tolerance:
        return False
    expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


# ---------------------------------------------------------------------------------------------
# Signature, delivery id, payload
# ---------------------------------------------------------------------------------------------

def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"event":"Succeeded"}'
    header = webhooks.signature(KEY, 1700000000, body)
    expected = hmac.new(KEY, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)


def test_the_documented_verification_accepts_good_and_rejects_tampered_stale_or_foreign() -> None:
    body = webhooks.body_bytes({"id": "x", "event": "Failed"})
    header = webhooks.signature(KEY, 1700000000, body)
    assert verify(KEY, body, header, now=1700000100)
    assert not verify(KEY, body + b" ", header, now=1700000100), "a changed body"
    assert not verify(KEY, body, header.replace("t=1700000000", "t=1700000001"), now=1700000100), "a changed timestamp"
    assert not verify(KEY, body, header, now=1700000000 + 301), "a replay after the tolerance"
    assert not verify(b"other key", body, header, now=1700000100)


def test_headers_carry_signature_delivery_and_event() -> None:
    body = b"{}"
    sent = webhooks.headers(KEY, "d-1", "Cancelled", body, 1700000000)
    assert sent["Kubetask-Delivery"] == "d-1" and sent["Kubetask-Event"] == "Cancelled"
    assert sent["Kubetask-Signature"] == webhooks.signature(KEY, 1700000000, body)
    assert sent["Content-Type"] == "application/json"


def test_delivery_id_is_a_pure_function_of_uid_run_and_event() -> None:
    first = webhooks.delivery_id("uid-1", 0, "Succeeded")
    assert first == webhooks.delivery_id("uid-1", 0, "Succeeded")
    assert uuid.UUID(first).version == 5
    others = {webhooks.delivery_id("uid-2", 0, "Succeeded"), webhooks.delivery_id("uid-1", 1, "Succeeded"),
              webhooks.delivery_id("uid-1", 0, "Running")}
    assert first not in others and len(others) == 3


def task(**status: Any) -> dict[str, Any]:
    base = {"phase": "Succeeded", "run": 0, "queue": "images", "attempts": 1, "queuedTime": "2026-01-01T00:00:01Z",
            "startTime": "2026-01-01T00:00:02Z", "completionTime": "2026-01-01T00:00:09Z", "result": {"answer": 42},
            "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": "the handler finished successfully",
                            "lastTransitionTime": "2026-01-01T00:00:09Z"}]}
    return {"metadata": {"namespace": "ns", "name": "resize-1", "uid": "u-1", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"type": "resize"}, "status": {**base, **status}}


def test_payload_of_a_terminal_event() -> None:
    sent = webhooks.payload(task(), 0, "Succeeded")
    assert sent == {
        "id": webhooks.delivery_id("u-1", 0, "Succeeded"), "event": "Succeeded", "occurredAt": "2026-01-01T00:00:09Z",
        "task": {"apiVersion": "kubetask.io/v1alpha1", "kind": "Task", "namespace": "ns", "name": "resize-1", "uid": "u-1", "run": 0,
                 "type": "resize", "queue": "images"},
        "phase": "Succeeded", "reason": "Succeeded", "message": "the handler finished successfully", "result": {"answer": 42},
        "lastFailure": None, "attempts": 1,
        "timestamps": {"creationTimestamp": "2026-01-01T00:00:00Z", "queuedTime": "2026-01-01T00:00:01Z",
                       "startTime": "2026-01-01T00:00:02Z", "completionTime": "2026-01-01T00:00:09Z"},
    }


def test_payload_of_running_and_of_an_earlier_run() -> None:
    running = webhooks.payload(task(), 0, "Running")
    assert running["phase"] == "Running" and running["reason"] == "Started" and running["result"] is None
    assert running["occurredAt"] == "2026-01-01T00:00:02Z" and running["timestamps"]["completionTime"] is None
    rerun = task(run=1, phase="Running", history=[{"run": 0, "phase": "Failed", "reason": "BackoffLimitExceeded", "attempts": 2,
                                                   "startTime": "2026-01-01T00:00:02Z", "completionTime": "2026-01-01T00:00:05Z"}])
    earlier = webhooks.payload(rerun, 0, "Failed")
    assert earlier["task"]["run"] == 0 and earlier["reason"] == "BackoffLimitExceeded" and earlier["attempts"] == 2
    assert earlier["result"] is None and earlier["occurredAt"] == "2026-01-01T00:00:05Z"


def test_body_bytes_are_compact_sorted_json() -> None:
    assert webhooks.body_bytes({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


# ---------------------------------------------------------------------------------------------
# Retries
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("attempts", "low", "high"), [
    (1, 5, 10), (2, 10, 20), (3, 20, 40), (4, 40, 80), (8, 640, 1280), (9, 1280, 2560), (10, 1800, 3600), (20, 1800, 3600),
])
def test_backoff_doubles_with_jitter_up_to_the_cap(attempts: int, low: float, high: float) -> None:
    delay = webhooks.retry_delay(attempts, base=10, cap=3600, delivery="d-1")
    assert low <= delay <= high
    assert delay == webhooks.retry_delay(attempts, base=10, cap=3600, delivery="d-1"), "deterministic: the same after a restart"


def test_jitter_spreads_deliveries_that_failed_together() -> None:
    delays = {webhooks.retry_delay(1, 10, 3600, f"d-{i}") for i in range(20)}
    assert len(delays) == 20


def attempt(previous: dict[str, Any] | None, ok: bool = False, final: bool = False, max_attempts: int = 3) -> dict[str, Any]:
    return webhooks.after_attempt(previous, uid="u-1", run=0, event="Succeeded", webhook="hooks", ok=ok, final=final,
                                  result="HTTP 204" if ok else "HTTP 500", max_attempts=max_attempts, now=1700000000, base=10, cap=3600)


def test_attempts_end_delivered_failed_or_refused() -> None:
    first = attempt(None)
    assert first["state"] == "Pending" and first["attempts"] == 1 and first["lastResult"] == "HTTP 500"
    assert first["lastAttemptTime"] == "2023-11-14T22:13:20Z"
    assert 5 <= webhooks.next_attempt_in(first, 1700000000) <= 11  # rounded up to whole seconds, never early
    second = attempt(first)
    assert second["state"] == "Pending" and second["attempts"] == 2
    third = attempt(second)
    assert third["state"] == "Failed" and third["attempts"] == 3 and "nextAttemptTime" not in third
    assert attempt(first, ok=True)["state"] == "Delivered"
    assert attempt(None, final=True)["state"] == "Refused"
    assert first["deliveryId"] == webhooks.delivery_id("u-1", 0, "Succeeded")


def test_waiting_uses_no_attempt() -> None:
    first = attempt(None)
    waited = webhooks.waiting(first, uid="u-1", run=0, event="Succeeded", webhook="hooks", result="Secret 's' does not exist")
    assert waited["state"] == "Waiting" and waited["attempts"] == 1 and "nextAttemptTime" not in waited
    assert webhooks.next_attempt_in(waited, 1700000000) == 0


def test_records_are_bounded_and_keep_what_is_still_to_do() -> None:
    records = [{"run": run, "event": "Succeeded", "state": "Delivered"} for run in range(15)]
    records.insert(0, {"run": 99, "event": "Failed", "state": "Pending"})
    kept = webhooks.with_record(records, {"run": 15, "event": "Succeeded", "state": "Delivered"}, 15, "Succeeded")
    assert len(kept) == models.MAX_WEBHOOK_RECORDS
    assert {"run": 99, "event": "Failed", "state": "Pending"} in kept, "a delivery still to do is not dropped"
    assert {"run": 0, "event": "Succeeded", "state": "Delivered"} not in kept, "the oldest final one went"
    replaced = webhooks.with_record(kept, {"run": 99, "event": "Failed", "state": "Delivered"}, 99, "Failed")
    assert [r for r in replaced if r["run"] == 99] == [{"run": 99, "event": "Failed", "state": "Delivered"}]
    assert all(r["run"] != 99 for r in webhooks.with_record(kept, None, 99, "Failed"))


# ---------------------------------------------------------------------------------------------
# What is due
# ---------------------------------------------------------------------------------------------

def facts(phase: str = "Succeeded", started: float | None = 100.0, finished: float | None = 200.0, run: int = 0,
          records: tuple[webhooks.Record, ...] = ()) -> webhooks.DeliveryFacts:
    return webhooks.DeliveryFacts(namespace="ns", name="t", uid="u", type="resize", queue="images", webhook="hooks", run=run,
                                  phase=phase, started=started, finished=finished, records=records)


def hook(events: list[str] | None = None, sources: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"url": "https://hooks.example.com/"}
    if events is not None:
        spec["events"] = events
    return {"spec": spec, "status": {"sources": sources or []}}


OWN = webhooks.Resolved("hooks", "Task", "t")
BY_TYPE = webhooks.Resolved("hooks", "TaskType", "resize")


def test_resolution_is_task_then_tasktype_then_queue() -> None:
    typed = {"defaults": {"webhook": "by-type"}}
    assert webhooks.resolve_webhook("t", {"webhook": "own", "type": "x"}, typed, "q", "by-queue") == webhooks.Resolved("own", "Task", "t")
    assert webhooks.resolve_webhook("t", {"type": "x"}, typed, "q", "by-queue") == webhooks.Resolved("by-type", "TaskType", "x")
    assert webhooks.resolve_webhook("t", {"type": "x"}, {}, "q", "by-queue") == webhooks.Resolved("by-queue", "TaskQueue", "q")
    assert webhooks.resolve_webhook("t", {"type": "x"}, None, "q", None) is None


@pytest.mark.parametrize(("case", "facts_", "resolved", "webhook", "expected"), [
    ("terminal, not recorded", facts(), OWN, hook(), [(0, "Succeeded")]),
    ("delivered already", facts(records=(webhooks.Record(0, "Succeeded", "Delivered", "hooks"),)), OWN, hook(), []),
    ("failed for good", facts(records=(webhooks.Record(0, "Succeeded", "Failed", "hooks"),)), OWN, hook(), []),
    ("pending", facts(records=(webhooks.Record(0, "Succeeded", "Pending", "hooks"),)), OWN, hook(), [(0, "Succeeded")]),
    ("an earlier run still waits", facts(phase="Running", run=1, records=(webhooks.Record(0, "Failed", "Waiting", "hooks"),)),
     OWN, hook(), [(0, "Failed")]),
    ("not subscribed", facts(phase="Cancelled"), OWN, hook(["Succeeded"]), []),
    ("running asked", facts(phase="Running", finished=None), OWN, hook(["Running", "Succeeded"]), [(0, "Running")]),
    ("running reached by a finished run", facts(), OWN, hook(["Running", "Succeeded"]), [(0, "Running"), (0, "Succeeded")]),
    ("cancelled before it started: no Running", facts(phase="Cancelled", started=None), OWN, hook(["Running", "Cancelled"]),
     [(0, "Cancelled")]),
    ("not finished", facts(phase="Queued", started=None, finished=None), OWN, hook(), []),
    ("own webhook missing: still due (it waits)", facts(), OWN, None, [(0, "Succeeded")]),
    ("inherited, webhook missing", facts(), BY_TYPE, None, []),
    ("inherited, source not recorded yet", facts(), BY_TYPE, hook(), []),
    ("inherited, finished before since", facts(finished=199.0), BY_TYPE,
     hook(sources=[{"kind": "TaskType", "name": "resize", "since": webhooks.rfc3339(200)}]), []),
    ("inherited, finished in since's second", facts(finished=200.0), BY_TYPE,
     hook(sources=[{"kind": "TaskType", "name": "resize", "since": webhooks.rfc3339(200)}]), [(0, "Succeeded")]),
    ("inherited, another kind's since", facts(), BY_TYPE,
     hook(sources=[{"kind": "TaskQueue", "name": "resize", "since": webhooks.rfc3339(0)}]), []),
    ("no webhook", facts(), None, None, []),
])
def test_what_is_due(case: str, facts_: webhooks.DeliveryFacts, resolved: webhooks.Resolved | None,
                     webhook: dict[str, Any] | None, expected: list[tuple[int, str]]) -> None:
    assert webhooks.due(facts_, resolved, webhook) == expected, case


def test_finished_records_carry_what_due_needs() -> None:
    body = task(webhooks=[{"run": 0, "event": "Succeeded", "state": "Pending", "webhook": "hooks", "deliveryId": "d", "attempts": 1}])
    body["spec"]["webhook"] = "hooks"
    record = summarize_finished(body)
    assert record is not None
    derived = webhook_delivery.facts_from_finished(record)
    assert derived == webhooks.facts_from_body(body)
    assert derived.records == (webhooks.Record(0, "Succeeded", "Pending", "hooks"),)


# ---------------------------------------------------------------------------------------------
# SSRF
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "loopback"), ("127.1.2.3", "loopback"), ("::1", "loopback"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("10.96.0.1", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"), ("192.168.1.1", "private"),
    ("fd00::1", "private"), ("100.64.0.10", "shared (RFC 6598)"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("192.0.2.1", "reserved"), ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"), ("2001:db8::1", "reserved"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"), ("64:ff9b::a9fe:a9fe", "link-local"),
    ("fec0::1", "site-local"),
    ("93.184.216.34", None), ("8.8.8.8", None), ("172.32.0.1", None), ("2606:4700::1111", None), ("::ffff:8.8.8.8", None),
])
def test_address_classes(address: str, kind: str | None) -> None:
    assert webhooks.address_class(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(("address", "allow_private", "refused"), [
    ("127.0.0.1", False, True), ("127.0.0.1", True, False), ("169.254.169.254", False, True), ("169.254.169.254", True, False),
    ("10.0.0.1", False, True), ("10.0.0.1", True, False), ("0.0.0.0", True, True), ("224.0.0.1", True, True),
    ("8.8.8.8", False, False),
])
def test_allow_private_networks_opens_all_but_unspecified_and_multicast(address: str, allow_private: bool, refused: bool) -> None:
    problem = webhooks.address_problem(address, allow_private)
    assert (problem is not None) == refused
    if problem and not allow_private:
        assert "allowPrivateNetworks" in problem


@pytest.mark.parametrize(("host", "refused"), [
    ("hooks.example.com", False), ("hooks.example.com.", False), ("api", True), ("localhost", True), ("LOCALHOST", True),
    ("foo.localhost", True), ("kubernetes.default.svc", True), ("api.team.svc.cluster.local", True), ("printer.local", True),
    ("metadata.google.internal", True), ("127.0.0.1", True), ("::1", True), ("8.8.8.8", False),
])
def test_host_rules(host: str, refused: bool) -> None:
    assert (webhooks.host_problem(host, allow_private=False) is not None) == refused
    assert webhooks.host_problem(host, allow_private=True) is None


def test_destination_parses_and_pins_the_address() -> None:
    target, problem = webhooks.destination("https://Hooks.Example.com:8443/a/b?c=1", False, False)
    assert problem is None and target is not None
    assert (target.scheme, target.host, target.port, target.target, target.host_header) == ("https", "hooks.example.com", 8443, "/a/b?c=1",
                                                                                            "hooks.example.com:8443")
    assert target.pinned_url("93.184.216.34") == "https://93.184.216.34:8443/a/b?c=1"
    assert target.pinned_url("2606:4700::1111") == "https://[2606:4700::1111]:8443/a/b?c=1"
    plain, _ = webhooks.destination("http://[::1]/", True, True)
    assert plain is not None and plain.port == 80 and plain.host_header == "[::1]" and plain.literal and plain.target == "/"
    assert webhooks.destination("http://hooks.example.com/", False, False)[1] == "url must use https: plain http is allowed only with allowInsecureHTTP: true"
    assert "loopback" in (webhooks.destination("https://127.0.0.1/", False, False)[1] or "")


# ---------------------------------------------------------------------------------------------
# URL rules, the CRD, the TaskWebhook's status
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "insecure", "problem"), [
    ("https://hooks.example.com/kubetask", False, None),
    ("HTTPS://hooks.example.com", False, None),
    ("http://hooks.example.com/", True, None),
    ("http://hooks.example.com/", False, "must use https"),
    ("ftp://hooks.example.com/", True, "absolute URL"),
    ("/hooks", False, "absolute URL"),
    ("https://", False, "absolute URL"),
    ("https://user:secret@hooks.example.com/", False, "credentials"),
    ("https://hooks.example.com:70000/", False, "not a valid URL"),
])
def test_url_rules(url: str, insecure: bool, problem: str | None) -> None:
    found = models.webhook_url_problem(url, insecure)
    assert (found is None) if problem is None else (found is not None and problem in found), found


def test_the_model_applies_the_url_rules_and_defaults() -> None:
    spec = models.TaskWebhookSpec.model_validate({"url": "https://hooks.example.com/", "secretRef": {"name": "hook-key"}})
    assert spec.to_json() == {"url": "https://hooks.example.com/", "secretRef": {"name": "hook-key", "key": "key"},
                              "events": ["Succeeded", "Failed", "Cancelled"], "allowInsecureHTTP": False,
                              "allowPrivateNetworks": False, "timeoutSeconds": 10, "maxAttempts": 8}
    with pytest.raises(ValidationError, match="must use https"):
        models.TaskWebhookSpec.model_validate({"url": "http://hooks.example.com/", "secretRef": {"name": "k"}})
    with pytest.raises(ValidationError):
        models.TaskWebhookSpec.model_validate({"url": "https://h.example.com/", "secretRef": {"name": "k"}, "timeoutSeconds": 31})
    with pytest.raises(ValidationError):
        models.TaskWebhookSpec.model_validate({"url": "https://h.example.com/", "secretRef": {"name": "k"}, "events": ["Queued"]})
    with pytest.raises(ValidationError):
        models.TaskSpec.model_validate({"type": "echo", "webhook": "Not_A_Name"})


def test_the_crd_carries_the_url_rules_and_defaults() -> None:
    crd = crdgen.taskwebhook_crd()
    version = crd["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert crd["spec"]["names"]["shortNames"] == ["ktw"]
    assert [r["fieldPath"] for r in spec["x-kubernetes-validations"]] == [".url"] * 4
    assert any("allowInsecureHTTP" in r["rule"] for r in spec["x-kubernetes-validations"])
    assert spec["properties"]["events"]["default"] == ["Succeeded", "Failed", "Cancelled"]
    assert spec["properties"]["timeoutSeconds"]["maximum"] == 30 and spec["properties"]["maxAttempts"]["maximum"] == 20
    assert "webhook" in crdgen.task_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert "webhook" in models.IMMUTABLE_TASK_FIELDS


def test_ready_condition() -> None:
    spec = {"url": "https://hooks.example.com/", "secretRef": {"name": "k"}}
    ready = webhooks.ready_condition(spec, None, [], 2, "2026-01-01T00:00:00Z")
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("True", "Ready", 2)
    missing = webhooks.ready_condition(spec, ("SecretNotFound", "Secret 'k' does not exist"), [ready], 2, "2026-01-01T00:01:00Z")
    assert (missing["status"], missing["reason"], missing["lastTransitionTime"]) == ("False", "SecretNotFound", "2026-01-01T00:01:00Z")
    still = webhooks.ready_condition(spec, ("SecretNotFound", "Secret 'k' does not exist"), [missing], 2, "2026-01-01T00:02:00Z")
    assert still["lastTransitionTime"] == "2026-01-01T00:01:00Z", "unchanged: no new transition time (no write)"
    local = webhooks.ready_condition({**spec, "url": "https://10.0.0.5/"}, None, [], 1, "2026-01-01T00:00:00Z")
    assert (local["status"], local["reason"]) == ("False", "DestinationRefused") and "private" in local["message"]


def test_sources_keep_when_they_were_first_seen() -> None:
    first = webhooks.merged_sources([], [("TaskType", "resize")], "2026-01-01T00:00:00Z")
    later = webhooks.merged_sources(first, [("TaskType", "resize"), ("TaskQueue", "images")], "2026-01-02T00:00:00Z")
    assert later == [{"kind": "TaskQueue", "name": "images", "since": "2026-01-02T00:00:00Z"},
                     {"kind": "TaskType", "name": "resize", "since": "2026-01-01T00:00:00Z"}]
    assert webhooks.merged_sources(later, [("TaskQueue", "images")], "2026-01-03T00:00:00Z") == [later[0]]


@pytest.mark.parametrize(("secret", "reason"), [
    (None, "SecretNotFound"), ({"data": {}}, "SecretKeyMissing"), ({"data": {"key": ""}}, "SecretKeyMissing"),
    ({"data": {"key": "!!"}}, "SecretKeyMissing"), ({"data": {"key": "a2V5"}}, None),
])
def test_signing_key_from_the_secret(secret: dict[str, Any] | None, reason: str | None) -> None:
    found = webhook_delivery.signing_key(secret, "hook-key", "key")
    assert (found.problem[0] if found.problem else None) == reason
    assert found.key == (b"key" if reason is None else None)


# ---------------------------------------------------------------------------------------------
# One attempt's HTTP (mock transport; the real thing is tests/integration/test_webhooks.py)
# ---------------------------------------------------------------------------------------------

def deliverer(handler: Any) -> webhook_delivery.Deliverer:
    views = Views(tasks=lambda ns: (), task_by_uid=lambda uid: None, all_task_uids=lambda: (), jobs_of_task=lambda uid: (),
                  running_jobs=lambda ns, q: (), all_running_jobs=lambda: (), tasktype=lambda ns, name: None,
                  queue=lambda ns, name: None, all_queues=lambda: ())
    hooks = webhook_delivery.WebhookViews(webhook=lambda ns, name: None, all_webhooks=lambda: (), tasktypes_in=lambda ns: (),
                                          queues_in=lambda ns: ())
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=False, trust_env=False)
    return webhook_delivery.Deliverer(None, OperatorSettings(), views, hooks, client=client)  # type: ignore[arg-type]  # no API calls


KEY_OF_TASK = webhook_delivery.DeliveryKey("ns", "resize-1", "u-1", 0, "Succeeded")


def test_an_attempt_connects_to_the_checked_address_with_the_name_for_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202)

    async def resolve(host: str, port: int, absolute: bool) -> list[str]:
        assert (host, port, absolute) == ("hooks.example.com", 8443, True)
        return ["93.184.216.34"]

    monkeypatch.setattr(webhook_delivery, "resolve", resolve)
    spec = {"url": "https://hooks.example.com:8443/in?x=1", "timeoutSeconds": 5}
    result = asyncio.run(deliverer(handler).send(task(), KEY_OF_TASK, spec, KEY))
    assert result == webhook_delivery.Attempt(True, False, "HTTP 202", "delivered")
    [request] = seen
    assert str(request.url) == "https://93.184.216.34:8443/in?x=1"
    assert request.headers["Host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    assert verify(KEY, request.content, request.headers["Kubetask-Signature"], now=time.time())


def test_a_name_resolving_to_a_private_address_is_not_contacted(monkeypatch: pytest.MonkeyPatch) -> None:
    async def resolve(host: str, port: int, absolute: bool) -> list[str]:
        return ["93.184.216.34", "10.0.0.7"]  # one bad address is enough

    monkeypatch.setattr(webhook_delivery, "resolve", resolve)
    result = asyncio.run(deliverer(lambda request: pytest.fail("contacted")).send(task(), KEY_OF_TASK, {"url": "https://rebind.example.com/"}, KEY))
    assert not result.ok and not result.final and result.kind == "refused"
    assert "10.0.0.7 is a private address" in result.result


def test_a_redirect_is_a_failed_attempt_not_followed() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/meta-data"})

    spec = {"url": "http://127.0.0.1:9/hook", "allowInsecureHTTP": True, "allowPrivateNetworks": True}
    result = asyncio.run(deliverer(handler).send(task(), KEY_OF_TASK, spec, KEY))
    assert result == webhook_delivery.Attempt(False, False, "HTTP 302: redirects are not followed", "redirect")
    assert len(seen) == 1


def test_a_refused_destination_is_final_and_sends_nothing() -> None:
    result = asyncio.run(deliverer(lambda request: pytest.fail("contacted")).send(task(), KEY_OF_TASK, {"url": "https://169.254.169.254/"}, KEY))
    assert result.final and result.kind == "refused" and "link-local" in result.result


def test_names_resolve_as_absolute_names_unless_private_networks_are_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        asked.append(host)
        return [(None, None, None, "", ("93.184.216.34", port))]

    async def both() -> None:
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
        assert await webhook_delivery.resolve("hooks.example.com", 443, absolute=True) == ["93.184.216.34"]
        await webhook_delivery.resolve("hooks.team.svc", 443, absolute=False)

    asyncio.run(both())
    assert asked == ["hooks.example.com.", "hooks.team.svc"]


def test_a_slow_receiver_times_out() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    spec = {"url": "http://127.0.0.1:9/", "allowInsecureHTTP": True, "allowPrivateNetworks": True, "timeoutSeconds": 1}
    started = time.monotonic()
    result = asyncio.run(deliverer(handler).send(task(), KEY_OF_TASK, spec, KEY))
    assert result.kind == "timeout" and not result.final and time.monotonic() - started < 3


def test_the_operators_own_status_writes_never_carry_webhooks() -> None:
    """status.webhooks is written only by the delivery worker: a JSON merge patch keeps every key
    it does not name, so the reconciler's writes (phase, conditions, history, ...) leave it alone
    as long as they never compute it. A rerun keeps it too (the records carry their run)."""
    from datetime import datetime, timezone

    from kubetask.operator.decide import Decision, archive_run, desired_status
    from kubetask.operator.status import Verdict

    previous = task(webhooks=[{"run": 0, "event": "Succeeded", "state": "Delivered"}])["status"]
    moment = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for verdict, base in ((Verdict(models.Phase.SUCCEEDED, "Succeeded", "done"), previous),
                          (Verdict(models.Phase.QUEUED, "WaitingForCapacity", "waits"), archive_run(previous))):
        written = desired_status(Decision(verdict=verdict, base=base, queue="images"), generation=1, run=0, now=moment)
        assert "webhooks" not in written
