"""Pure pieces of the gateway: settings, selectors, pagination tokens, idempotency names, error paths."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from kubetask.api import pagination, selectors, submit
from kubetask.api.errors import field_path, from_api_error, oversized_parameters
from kubetask.api.schemas import SubmitRequest, TaskView, finished, task_view
from kubetask.api.settings import GatewaySettings, is_loopback
from kubetask.kube import ApiError
from kubetask.resources.models import MAX_NAME


# -- settings ----------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"])
def test_dev_mode_is_allowed_on_loopback(host: str) -> None:
    assert is_loopback(host)
    assert GatewaySettings(dev_no_auth=True, host=host).dev_no_auth


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "gateway.example.com", ""])
def test_dev_mode_is_refused_off_loopback(host: str) -> None:
    with pytest.raises(ValidationError, match="loopback"):
        GatewaySettings(dev_no_auth=True, host=host)
    assert GatewaySettings(dev_no_auth=False, host=host).host == host


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBETASK_GATEWAY_NAMESPACES", '["team-a","team-b"]')
    monkeypatch.setenv("KUBETASK_GATEWAY_PORT", "9000")
    monkeypatch.setenv("KUBETASK_GATEWAY_AUTH_CACHE_SECONDS", "3")
    settings = GatewaySettings()
    assert (settings.namespaces, settings.port, settings.auth_cache_seconds) == (["team-a", "team-b"], 9000, 3)
    assert (settings.host, settings.dev_no_auth, settings.max_body_bytes) == ("127.0.0.1", False, 1024 * 1024)


def test_the_gateway_refuses_to_start_in_dev_mode_off_loopback() -> None:
    env = {"KUBETASK_GATEWAY_DEV_NO_AUTH": "true", "KUBETASK_GATEWAY_HOST": "0.0.0.0", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "kubetask.api.main"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "refusing to start" in result.stderr and "loopback" in result.stderr


# -- label selectors -----------------------------------------------------------------------------

@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("", {}, True),
    ("app=web", {"app": "web"}, True),
    ("app==web", {"app": "db"}, False),
    ("app!=web", {}, True),
    ("app!=web", {"app": "web"}, False),
    ("env in (prod, dev)", {"env": "dev"}, True),
    ("env notin (prod,dev)", {"env": "dev"}, False),
    ("env notin (prod)", {}, True),
    ("gpu", {"gpu": ""}, True),
    ("!gpu", {"gpu": "1"}, False),
    ("team=a,!legacy,tier in (x)", {"team": "a", "tier": "x"}, True),
    ("example.com/owner=me", {"example.com/owner": "me"}, True),
    ("key=", {"key": ""}, True),
])
def test_label_selectors_match_like_kubernetes(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert selectors.parse(selector).matches(labels) is expected


@pytest.mark.parametrize("selector", ["a in (b", "a in ()", "=b", "a=b,", "a b", "a==(", "Bad Key=1", "a=b!c", "a in b", "-a=1"])
def test_malformed_selectors_are_rejected(selector: str) -> None:
    with pytest.raises(ValueError):
        selectors.parse(selector)


# -- pagination -----------------------------------------------------------------------------------

def test_continue_tokens_round_trip_and_are_bound_to_filters() -> None:
    digest = pagination.filters_digest(type="a", phase=None)
    token = pagination.encode("task-17", digest)
    assert "task-17" not in token  # opaque, not the name in clear
    assert pagination.decode(token, digest) == "task-17"
    with pytest.raises(ValueError, match="other filters"):
        pagination.decode(token, pagination.filters_digest(type="b", phase=None))
    for garbage in ("", "!!!", "e30", token[:-3] + "xyz", "a" * 2000):
        with pytest.raises(ValueError):
            pagination.decode(garbage, digest)
    assert pagination.page(["a", "b", "c", "d"], "b", 1) == (2, 3, True)
    assert pagination.page(["a", "b", "c", "d"], None, 10) == (0, 4, False)
    assert pagination.page(["a", "c"], "b", 5) == (1, 2, False)  # the last name may have been deleted meanwhile


# -- idempotency and names ----------------------------------------------------------------------------

def test_idempotency_hash_is_per_namespace_user_and_key() -> None:
    base = submit.idempotency_hash("ns", "alice", "k1")
    assert base == submit.idempotency_hash("ns", "alice", "k1") and len(base) == 40
    assert len({base, submit.idempotency_hash("ns2", "alice", "k1"), submit.idempotency_hash("ns", "bob", "k1"),
                submit.idempotency_hash("ns", "alice", "k2")}) == 4
    assert selectors.label_value_problem(base) is None  # usable as a label value


def test_generated_names_fit_and_are_valid() -> None:
    long_type = "a" * 63
    for name in (submit.generated_name("resize"), submit.generated_name(long_type), submit.generated_name(long_type, "0123456789"),
                 submit.generated_name("a-" * 30 + "b", "x1")):
        assert len(name) <= MAX_NAME
        assert selectors.LABEL_VALUE.match(name) and not name.startswith("-") and "--" not in name[-12:]
    assert submit.generated_name("resize", "abc") == "resize-abc"
    assert submit.generated_name("resize") != submit.generated_name("resize")


def test_request_digest_tells_a_retry_from_another_request() -> None:
    one = SubmitRequest.model_validate({"spec": {"type": "t", "parameters": {"a": 1, "b": 2}}})
    same = SubmitRequest.model_validate({"spec": {"parameters": {"b": 2, "a": 1}, "type": "t"}})
    other = SubmitRequest.model_validate({"spec": {"type": "t", "parameters": {"a": 2, "b": 2}}})
    assert submit.request_digest(one) == submit.request_digest(same) != submit.request_digest(other)


def test_idempotency_keys_are_bounded_printable_ascii() -> None:
    assert submit.idempotency_key_problem("order-17/retry:2") is None
    for bad in ("", "with space", "x" * 256, "tab\t", "é"):
        assert submit.idempotency_key_problem(bad)


def test_metadata_problems_name_each_key() -> None:
    problems = submit.metadata_problems({"kubetask.io/run": "1", "ok": "x" * 64, "UPPER/x": "v"},
                                        {"kubetask.io/submitted-by": "me", "sim.kubetask.io/run-for": "2s", "bad\ud800": "\ud800"})
    fields = {p.field for p in problems}
    assert fields == {"labels[kubetask.io/run]", "labels[ok]", "labels[UPPER/x]", "annotations[kubetask.io/submitted-by]",
                      "annotations[bad\ud800]"}


def test_spec_problems_reject_nan_and_lone_surrogates() -> None:
    assert [p.field for p in submit.spec_problems({"parameters": {"x": float("nan")}})] == ["spec.parameters"]
    assert [p.field for p in submit.spec_problems({"parameters": {"x": ["ok", "\udc00"]}})] == ["spec.parameters.x.1"]
    assert submit.spec_problems({"parameters": {"x": 1.5, "y": "ü"}}) == []


# -- error paths -------------------------------------------------------------------------------------

def test_field_paths_read_like_json_paths() -> None:
    assert field_path(("body", "items", 2, "spec", "type")) == "items[2].spec.type"
    assert field_path(("query", "limit")) == "limit"
    assert field_path(("body",)) == "body"
    assert oversized_parameters({"items": [{"spec": {"parameters": {"x": "y" * 40_000}}}, "junk"]}) == [
        ("items[0].spec.parameters", "parameters are 40008 bytes serialized; at most 32768 are allowed")]
    assert oversized_parameters(["not", "a", "dict"]) == []


@pytest.mark.parametrize(("status", "mapped"), [(400, 422), (422, 422), (404, 404), (409, 409), (413, 413), (429, 429),
                                                (401, 502), (403, 502), (500, 502), (503, 503), (504, 503)])
def test_api_server_errors_map_to_gateway_errors(status: int, mapped: int) -> None:
    error = from_api_error(ApiError(status, "Reason", "msg", {"details": {"causes": [{"field": ".spec.x", "message": "bad"}]}}))
    assert error.status == mapped
    if mapped == 422:
        assert error.details == [("spec.x", "bad")]


# -- views ----------------------------------------------------------------------------------------------

def full_task(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "t", "namespace": "ns", "uid": "u", "resourceVersion": "9", "generation": 2,
                         "annotations": {"kubetask.io/submitted-by": "alice"}},
            "spec": {"type": "sim", "rerun": 1},
            "status": {"phase": "Failed", "run": 1, "attempts": 2, "jobName": "t-abcde-r1",
                       "conditions": [{"type": "Succeeded", "status": "False", "reason": "BackoffLimitExceeded", "message": "m",
                                       "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                       "lastFailure": {"exitCode": 3, "reason": "BackoffLimitExceeded", "message": "disk full"},
                       "history": [{"run": 0, "jobName": "t-abcde-r0", "phase": "Cancelled", "attempts": 1}],
                       "progress": {"percent": 50, "message": "half"}, "result": None, **status}}


def test_task_view_matches_its_documented_model() -> None:
    view = task_view(full_task())
    TaskView.model_validate(view)
    assert (view["submittedBy"], view["phase"], view["finished"], view["lastFailure"]["exitCode"]) == ("alice", "Failed", True, 3)
    TaskView.model_validate(task_view({"metadata": {"name": "x", "namespace": "n", "uid": "u", "resourceVersion": "1"}, "spec": {"type": "t"}}))


def test_finished_means_the_current_run_is_terminal() -> None:
    assert finished(full_task())
    assert not finished(full_task(run=0))  # rerun 1 requested, status still about run 0
    assert not finished(full_task(phase="Running"))
