"""Progress reports: the PATCH the SDK sends, its rate limit, and that failures never fail the handler."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from kubetask_sdk.progress import Endpoint, endpoint_from_env, progress_body
from sdk_harness import FakeApiServer, Handlers

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")

REPORTER = """
    import time
    from kubetask_sdk import task, run

    @task("reporter")
    def reporter(params, ctx):
        for percent, message, pause in params["reports"]:
            ctx.progress(percent, message)
            time.sleep(pause)
        return "ok"

    run()
"""


def test_progress_patches_the_task_status(handlers: Handlers, api_server: FakeApiServer) -> None:
    script = handlers.script(REPORTER)
    out = handlers.run(script, {"reports": [[50, "halfway", 0]]}, env=api_server.env())
    assert out.returncode == 0, out.stderr
    assert out.result == "ok"
    assert out.warnings() == []
    assert len(api_server.requests) == 1  # flushed before the handler's process exited
    request = api_server.requests[0]
    assert request.method == "PATCH"
    assert request.path == "/apis/kubetask.io/v1alpha1/namespaces/team-a/tasks/demo/status"
    assert request.headers["Content-Type"] == "application/merge-patch+json"
    assert request.headers["Authorization"] == "Bearer s3cr3t-token"
    body = request.json()
    assert set(body) == {"status"} and set(body["status"]) == {"progress"}
    progress = body["status"]["progress"]
    assert progress["percent"] == 50 and progress["message"] == "halfway"
    assert RFC3339_UTC.match(progress["updatedAt"]), progress["updatedAt"]
    sent = datetime.strptime(progress["updatedAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs(datetime.now(timezone.utc) - sent) < timedelta(seconds=30)


def test_percent_is_clamped_and_message_truncated(handlers: Handlers, api_server: FakeApiServer) -> None:
    script = handlers.script(REPORTER)
    reports = [[150, "x" * 5000, 0.7], [-20, "", 0]]  # 0.7 s apart: both get through the rate limit
    out = handlers.run(script, {"reports": reports}, env=api_server.env())
    assert out.returncode == 0, out.stderr
    sent = [r.json()["status"]["progress"] for r in api_server.requests]
    assert [(p["percent"], len(p["message"])) for p in sent] == [(100, 1024), (0, 0)]


def test_rate_limited_to_one_request_per_half_second_latest_wins(handlers: Handlers, api_server: FakeApiServer) -> None:
    script = handlers.script("""
        import time
        from kubetask_sdk import task, run
        @task("chatty")
        def chatty(params, ctx):
            started = time.monotonic()
            while time.monotonic() - started < 1.2:
                ctx.progress(int((time.monotonic() - started) * 50), "working")
                time.sleep(0.001)
            ctx.progress(100, "done")
            return "ok"
        run()
    """)
    out = handlers.run(script, env=api_server.env())
    assert out.returncode == 0, out.stderr
    times = [r.at for r in api_server.requests]
    assert 2 <= len(times) <= 4, times  # hundreds of calls, a handful of requests
    assert all(b - a >= 0.45 for a, b in zip(times, times[1:])), times
    assert api_server.requests[-1].json()["status"]["progress"] == {
        "percent": 100, "message": "done", "updatedAt": api_server.requests[-1].json()["status"]["progress"]["updatedAt"]}


@pytest.mark.parametrize("status", [403, 500])
def test_api_errors_warn_once_and_the_handler_succeeds(handlers: Handlers, api_server: FakeApiServer, status: int) -> None:
    api_server.status = status
    script = handlers.script(REPORTER)
    out = handlers.run(script, {"reports": [[10, "a", 0.6], [20, "b", 0.6], [30, "c", 0]]}, env=api_server.env())
    assert out.returncode == 0, out.stderr
    assert out.result == "ok"
    assert len(api_server.requests) >= 2  # it keeps trying, quietly
    assert len(out.warnings()) == 1, out.stderr
    assert f"HTTP {status}" in out.warnings()[0]
    if status == 403:
        assert "is forbidden" in out.warnings()[0]  # the API server's message is passed on


NOT_YET_MESSAGE = ("pod demo-abcde-r0-x7k2p is not a pod of this Task's Job (it has none): "
                   "a handler may only report progress for its own Task")


def test_a_report_refused_before_the_task_names_its_job_is_sent_again(handlers: Handlers, api_server: FakeApiServer) -> None:
    """With the status settle window on, the operator writes status.jobName a little after the
    pod starts; until then the admission policy refuses the pod's reports with "(it has none)". That is "not yet": the
    report is kept and sent again, quietly, and lands once the Task names the Job."""
    api_server.answers = [(403, NOT_YET_MESSAGE)] * 2
    script = handlers.script(REPORTER)
    out = handlers.run(script, {"reports": [[40, "working", 2.5], [50, "still", 0.6]]}, env=api_server.env())
    assert out.returncode == 0, out.stderr
    assert out.warnings() == [], out.stderr
    bodies = [r.json()["status"]["progress"] for r in api_server.requests]
    assert [(b["percent"], b["message"]) for b in bodies[:3]] == [(40, "working")] * 3  # refused twice, then accepted
    assert (bodies[-1]["percent"], bodies[-1]["message"]) == (50, "still")
    gaps = [b.at - a.at for a, b in zip(api_server.requests, api_server.requests[1:3])]
    assert all(gap >= 0.45 for gap in gaps), gaps  # not a tight loop


def test_api_server_down_does_not_fail_the_handler(handlers: Handlers, free_port: int, api_server: FakeApiServer) -> None:
    script = handlers.script(REPORTER)
    out = handlers.run(script, {"reports": [[10, "a", 0], [90, "b", 0]]},
                       KUBETASK_API_URL=f"http://127.0.0.1:{free_port}", KUBETASK_TOKEN_FILE=str(api_server.token_file))
    assert out.returncode == 0, out.stderr
    assert out.result == "ok"
    assert len(out.warnings()) == 1
    assert "progress report" in out.warnings()[0] and "failed" in out.warnings()[0]


def test_no_token_warns_once_and_sends_nothing(handlers: Handlers, api_server: FakeApiServer) -> None:
    script = handlers.script(REPORTER)
    out = handlers.run(script, {"reports": [[10, "a", 0], [20, "b", 0]]}, KUBETASK_API_URL=api_server.url)
    assert out.returncode == 0, out.stderr
    assert api_server.requests == []
    assert len(out.warnings()) == 1
    assert "no service-account token" in out.warnings()[0]
    assert "reportProgress: true" in out.warnings()[0]


def test_in_cluster_endpoint_from_service_env(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    ca = tmp_path / "ca.crt"
    ca.write_text("pem")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
           "KUBETASK_TOKEN_FILE": str(token), "KUBETASK_CA_FILE": str(ca)}
    assert endpoint_from_env(env, "job-1", "ns") == Endpoint(
        "https://10.96.0.1:443/apis/kubetask.io/v1alpha1/namespaces/ns/tasks/job-1/status", str(token), str(ca))
    ipv6 = endpoint_from_env({**env, "KUBERNETES_SERVICE_HOST": "fd00::1", "KUBETASK_CA_FILE": str(tmp_path / "none")}, "a", "b")
    assert isinstance(ipv6, Endpoint)
    assert ipv6.url.startswith("https://[fd00::1]:443/")
    assert ipv6.ca_file is None  # no CA file: the system CAs verify
    assert "KUBERNETES_SERVICE_HOST" in str(endpoint_from_env({"KUBETASK_TOKEN_FILE": str(token)}, "a", "b"))
    explicit = endpoint_from_env({**env, "KUBETASK_API_URL": "http://127.0.0.1:1234/"}, "a", "b")
    assert isinstance(explicit, Endpoint)
    assert explicit.url == "http://127.0.0.1:1234/apis/kubetask.io/v1alpha1/namespaces/b/tasks/a/status"


def test_progress_body_shape() -> None:
    assert progress_body(42.9, "m", "2026-11-24T10:00:00Z") == {
        "status": {"progress": {"percent": 42, "message": "m", "updatedAt": "2026-11-24T10:00:00Z"}}}
