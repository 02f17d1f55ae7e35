"""From a submission to a Task body: checks, names and idempotency. Pure functions.

The spec is checked by the operator's own code: `TaskSpec` (already applied when the request was
parsed) and `resolve()` against the TaskType, so anything the gateway accepts the operator accepts,
and the reverse. What only the gateway sees (metadata, the Idempotency-Key) is checked here.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import string
from typing import Any

from kubetask.api.schemas import SubmitRequest
from kubetask.api.selectors import label_key_problem, label_value_problem
from kubetask.operator.naming import ANNOTATION_SUBMITTED_BY
from kubetask.operator.resolve import EffectiveSpec, resolve
from kubetask.resources.models import API_VERSION, MAX_NAME
from kubetask.resources.validation import Problem

RESERVED_PREFIX = "kubetask.io/"
IDEMPOTENCY_LABEL = "kubetask.io/idempotency-key"
REQUEST_DIGEST_ANNOTATION = "kubetask.io/request-digest"
MAX_ANNOTATION_BYTES = 256 * 1024  # the API server's limit for all annotations of an object together
MAX_ANNOTATION_VALUE_BYTES = 64 * 1024
MAX_IDEMPOTENCY_KEY = 255
_ALPHABET = string.ascii_lowercase + string.digits


def _utf8_size(text: str) -> int | None:
    """Encoded size, or None for text that is not valid Unicode (lone surrogates)."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def idempotency_key_problem(key: str) -> str | None:
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or any(not 0x20 < ord(c) < 0x7F for c in key):
        return f"must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters without spaces"
    return None


def idempotency_hash(namespace: str, username: str, key: str) -> str:
    """Stable per (namespace, user, key): the same key from another user is another submission."""
    return hashlib.sha256(f"{namespace}\x00{username}\x00{key}".encode()).hexdigest()[:40]


def request_digest(request: SubmitRequest) -> str:
    """A fingerprint of what was asked, to tell a retry from a different request reusing a key."""
    canonical = json.dumps(request.model_dump(by_alias=True, exclude_none=True, mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:40]


def generated_name(task_type: str, suffix: str | None = None) -> str:
    """`<type>-<suffix>`, at most 63 characters; a random suffix unless one is given."""
    suffix = suffix or "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return task_type[: MAX_NAME - len(suffix) - 1].rstrip("-.") + "-" + suffix


def metadata_problems(labels: dict[str, str], annotations: dict[str, str]) -> list[Problem]:
    problems: list[Problem] = []
    for key, value in labels.items():
        where = f"labels[{key}]"
        if key.startswith(RESERVED_PREFIX):
            problems.append(Problem(where, f"label keys under {RESERVED_PREFIX} are reserved for kubetask", "Reserved"))
        elif problem := label_key_problem(key):
            problems.append(Problem(where, f"invalid label key: {problem}", "InvalidMetadata"))
        if problem := label_value_problem(value):
            problems.append(Problem(where, f"invalid label value: {problem}", "InvalidMetadata"))
    total = 0
    for key, value in annotations.items():
        where = f"annotations[{key}]"
        if key.startswith(RESERVED_PREFIX):
            problems.append(Problem(where, f"annotation keys under {RESERVED_PREFIX} are reserved for kubetask", "Reserved"))
        elif problem := label_key_problem(key):
            problems.append(Problem(where, f"invalid annotation key: {problem}", "InvalidMetadata"))
        size = _utf8_size(value)
        if size is None:
            problems.append(Problem(where, "the value is not valid Unicode", "InvalidMetadata"))
            continue
        if size > MAX_ANNOTATION_VALUE_BYTES:
            problems.append(Problem(where, f"the value is {size} bytes; at most {MAX_ANNOTATION_VALUE_BYTES} are allowed", "TooLarge"))
        total += len(key) + size
    if total > MAX_ANNOTATION_BYTES - 4096:  # room for the gateway's own annotations
        problems.append(Problem("annotations", f"annotations total {total} bytes; at most {MAX_ANNOTATION_BYTES - 4096} are allowed", "TooLarge"))
    return problems


def _unicode_problems(value: Any, path: str) -> list[Problem]:
    """Strings the API server would silently alter: lone surrogates."""
    if isinstance(value, str):
        return [Problem(path, "contains text that is not valid Unicode", "InvalidParameters")] if _utf8_size(value) is None else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _unicode_problems(k, path) + _unicode_problems(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _unicode_problems(v, f"{path}.{i}")]
    return []


def spec_problems(spec: dict[str, Any]) -> list[Problem]:
    """What TaskSpec allows but a new Task may not carry."""
    problems: list[Problem] = []
    if spec.get("cancel"):
        problems.append(Problem("spec.cancel", "a new Task cannot be cancelled; cancel it after it exists (POST .../tasks/{name}:cancel)", "InvalidSpec"))
    if spec.get("rerun"):
        problems.append(Problem("spec.rerun", "a new Task starts at rerun 0; retry a finished one with POST .../tasks/{name}:retry", "InvalidSpec"))
    parameters = spec.get("parameters")
    if parameters is not None:
        try:
            json.dumps(parameters, allow_nan=False)
        except ValueError:
            problems.append(Problem("spec.parameters", "NaN and Infinity are not JSON numbers", "InvalidParameters"))
        problems += _unicode_problems(parameters, "spec.parameters")
    items = spec.get("items")
    if items is not None:  # a fan-out's items are parameters too, and reach the pods the same way
        try:
            json.dumps(items, allow_nan=False)
        except ValueError:
            problems.append(Problem("spec.items", "NaN and Infinity are not JSON numbers", "InvalidParameters"))
        problems += _unicode_problems(items, "spec.items")[:10]
    return problems


def check(request: SubmitRequest, tasktype_spec: dict[str, Any] | None, namespace: str,
          default_queue: str) -> tuple[EffectiveSpec | None, list[Problem]]:
    """Everything the gateway can check without the API server; the effective spec when it passes."""
    spec = request.spec.to_json()
    problems = metadata_problems(request.labels, request.annotations) + spec_problems(spec)
    if tasktype_spec is None:
        problems.append(Problem("spec.type", f"TaskType {request.spec.type!r} does not exist in namespace {namespace}", "UnknownTaskType"))
        return None, problems
    effective, resolve_problems = resolve(spec, tasktype_spec, default_queue)
    problems += resolve_problems
    return (effective if not problems else None), problems


def build(namespace: str, request: SubmitRequest, name: str, submitted_by: str,
          idempotency: str | None = None, digest: str | None = None) -> dict[str, Any]:
    labels = dict(request.labels)
    annotations = {**request.annotations, ANNOTATION_SUBMITTED_BY: submitted_by}
    if idempotency:
        labels[IDEMPOTENCY_LABEL] = idempotency
    if digest:
        annotations[REQUEST_DIGEST_ANNOTATION] = digest
    return {
        "apiVersion": API_VERSION, "kind": "Task",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations},
        "spec": request.spec.to_json(),
    }


def same_submission(existing: dict[str, Any], idempotency: str, digest: str, submitted_by: str) -> bool:
    """Is `existing` the Task an earlier attempt of this very submission created?"""
    meta = existing.get("metadata") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    return (labels.get(IDEMPOTENCY_LABEL) == idempotency and annotations.get(REQUEST_DIGEST_ANNOTATION) == digest
            and annotations.get(ANNOTATION_SUBMITTED_BY) == submitted_by)


def webhook_problem(name: str, webhook: dict[str, Any] | None, namespace: str) -> Problem | None:
    """spec.webhook must name a TaskWebhook that is not known to be broken. The gateway never reads
    Secrets (it has no access to them): the operator checks the Secret and the url and says so in
    the TaskWebhook's Ready condition, which is what is checked here. A TaskWebhook the operator
    has not looked at yet (no Ready for its generation) is accepted."""
    if webhook is None:
        return Problem("spec.webhook", f"TaskWebhook {name!r} does not exist in namespace {namespace}", "WebhookNotFound")
    generation = (webhook.get("metadata") or {}).get("generation")
    ready = next((c for c in (webhook.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") != "False" or ready.get("observedGeneration") not in (None, generation):
        return None
    return Problem("spec.webhook", f"TaskWebhook {name!r} is not ready ({ready.get('reason')}): {ready.get('message')}", "WebhookNotReady")
