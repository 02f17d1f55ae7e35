"""Schemathesis hooks for tests/e2e/test_gateway_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

A schema-valid request can still name things that must exist in the cluster, or carry values whose
validity no JSON Schema states. For positive cases only (negative ones stay as generated), these
hooks put in what the OpenAPI document cannot promise:

- `spec.type`, `spec.queue`: a TaskType and a TaskQueue that exist (`any`, `default`, made by the
  test); `spec.webhook` is dropped (it must name a Ready TaskWebhook);
- `parallelism` and `maxFailedItems` only with `items`, and `maxFailedItems` at most their number
  (relations between fields);
- `spec.after` without the Task's own name (a Task cannot wait for itself);
- `continue`: dropped: only a previous page issues a valid token (the document says so);
- a TaskSchedule's `schedule` and `timeZone`: a cron expression and an IANA zone name (the
  document describes both in words, not as a pattern or an enum).
"""

from __future__ import annotations

from typing import Any

import schemathesis


def _fix(value: Any, key: str = "") -> None:
    if isinstance(value, dict):
        if key == "spec" and "type" in value:
            value["type"] = "any"
            if "queue" in value:
                value["queue"] = "default"
            value.pop("webhook", None)
            items = value.get("items")
            if not (isinstance(items, list) and items):
                value.pop("parallelism", None)
                value.pop("maxFailedItems", None)
            elif isinstance(value.get("maxFailedItems"), (int, float)):  # 235.0 is a JSON Schema integer too
                value["maxFailedItems"] = min(int(value["maxFailedItems"]), len(items))
        if "taskTemplate" in value:
            if "schedule" in value:
                value["schedule"] = "@hourly"
            if "timeZone" in value:
                value["timeZone"] = "UTC"
        for child_key, child in value.items():
            _fix(child, child_key)
    elif isinstance(value, list):
        for child in value:
            _fix(child, key)


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    if isinstance(case.query, dict):
        case.query.pop("continue", None)
    _fix(case.body)
    body = case.body
    submissions = body.get("items") if isinstance(body, dict) and isinstance(body.get("items"), list) else [body]
    for item in submissions:
        spec = item.get("spec") if isinstance(item, dict) else None
        if not isinstance(spec, dict):
            continue
        if isinstance(spec.get("after"), list):
            spec["after"] = [name for name in spec["after"] if name != item.get("name")]
        # Again per submission, after the walk: a batch item's fan-out fields must agree with its own items.
        items = spec.get("items")
        if not (isinstance(items, list) and items):
            spec.pop("parallelism", None)
            spec.pop("maxFailedItems", None)
        elif isinstance(spec.get("maxFailedItems"), (int, float)) and spec["maxFailedItems"] > len(items):
            spec["maxFailedItems"] = len(items)  # JSON Schema counts 235.0 as an integer; so does the gateway


@schemathesis.check
def kubetask_error_shape(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every JSON error answer has the gateway's one error shape (errors.py)."""
    if response.status_code < 400 or "json" not in (response.headers.get("content-type") or [""])[0]:
        return None
    error = response.json().get("error") if isinstance(response.json(), dict) else None
    if not (isinstance(error, dict) and {"status", "reason", "message", "details"} <= set(error)):
        raise AssertionError(f"{response.status_code} without the error shape: {response.text[:300]}")
    return None
