"""The web dashboard end to end, in headless Chromium: gateway + operator + the local control plane.

The browser is Debian's `chromium` (installed by hack/ensure-chromium.sh when missing; no
downloaded browsers), driven over the Chrome DevTools Protocol with `websockets`. The test signs
in with a real ServiceAccount token, watches Tasks appear and change phase without a reload,
cancels and retries from the buttons, and saves screenshots of the main pages in
artifacts/screenshots/.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser_harness import Browser, find_chromium
from gateway_harness import TASK_RULES, GatewayProcess, service_account_token
from harness import wait_for
from kubetask.kube import KubeSync, tasks_path

pytestmark = pytest.mark.timeout(150)
RUN_FOR = "sim.kubetask.io/run-for"
EXIT_CODE = "sim.kubetask.io/exit-code"
MESSAGE = "sim.kubetask.io/message"


@pytest.fixture(scope="module")
def chromium() -> str:
    return find_chromium()


@pytest.fixture
def browser(chromium: str) -> Iterator[Browser]:
    # Chromium's helper processes can still write to the profile for a moment after the browser
    # exits; a leftover file there is no test failure.
    with tempfile.TemporaryDirectory(prefix="kubetask-chromium-", ignore_cleanup_errors=True) as workdir:
        session = Browser(chromium, Path(workdir))
        try:
            yield session
        finally:
            session.close()


def base(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}"


def submit(http: httpx.Client, namespace: str, name: str, annotations: dict[str, str], **spec: Any) -> None:
    response = http.post(f"{base(namespace)}/tasks", json={"name": name, "spec": {"type": "sim", **spec}, "annotations": annotations,
                                                           "labels": {"demo": "dashboard"}})
    assert response.status_code == 201, response.text


def task(http: httpx.Client, namespace: str, name: str) -> dict[str, Any]:
    response = http.get(f"{base(namespace)}/tasks/{name}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_dashboard_files_are_served_with_a_strict_policy(gateway: GatewayProcess) -> None:
    with gateway.client() as http:
        redirect = http.get("/ui")
        assert redirect.status_code == 307 and redirect.headers["location"] == "ui/"
        page = http.get("/ui/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
        assert "{{version}}" not in page.text and "static/app.js?v=" in page.text
        assert "http://" not in page.text and "https://" not in page.text.replace("http://www.w3.org/2000/svg", "")  # nothing remote
        for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css"), ("favicon.svg", "image/svg+xml")):
            asset = http.get(f"/ui/static/{name}")
            assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind), name
            assert http.get(f"/ui/static/{name}", headers={"If-None-Match": asset.headers["etag"]}).status_code == 304
        missing = http.get("/ui/static/../app.py")
        assert missing.status_code == 404 and missing.json()["error"]["reason"] == "NotFound"
        assert "/ui/" not in json.dumps(http.get("/openapi.json").json()["paths"])  # not part of the API description


def test_dashboard_live_updates_cancel_and_retry(gateway: GatewayProcess, kube: KubeSync, sim_namespace: str, token: str,
                                                 browser: Browser) -> None:
    ns = sim_namespace
    with gateway.client(token) as http:
        submit(http, ns, "resize-0001", {RUN_FOR: "1s", MESSAGE: '{"url": "s3://out/0001.png", "bytes": 48213}'}, parameters={"n": 7})
        submit(http, ns, "resize-0002", {RUN_FOR: "1s", MESSAGE: '{"url": "s3://out/0002.png", "bytes": 51007}'}, parameters={"n": 8})
        submit(http, ns, "broken-0003", {EXIT_CODE: "3", MESSAGE: "disk full: /tmp has 0 bytes left"}, parameters={"n": 9})

        # Sign in: the namespace comes from the ServiceAccount token when left empty.
        browser.open(f"{gateway.url}/ui/")
        browser.wait("!document.querySelector('#login').hidden", "the login box")
        browser.screenshot("login")
        browser.type("#login-token", "not-a-token")
        browser.click("#login-submit")
        assert "did not accept" in browser.wait("document.querySelector('#login-error').hidden ? '' : document.querySelector('#login-error').textContent",
                                                "the login error")
        browser.type("#login-token", token)
        browser.click("#login-submit")
        browser.wait("document.body.dataset.stream === 'live' && document.querySelector('#login').hidden", "signed in, stream live")
        assert browser.evaluate("document.querySelector('#ns-input').value") == ns
        assert browser.evaluate("sessionStorage.getItem('kubetask.token')") == token

        # Overview: queues (pending/running), types, recent tasks, charts once runs finished.
        browser.wait("document.querySelector('#queue-rows tr[data-queue=\"default\"]')", "the default queue row")
        browser.wait("document.querySelector('#type-rows tr[data-type=\"sim\"]')", "the sim type row")
        wait_for(lambda: task(http, ns, "resize-0001")["finished"] and task(http, ns, "resize-0002")["finished"]
                 and task(http, ns, "broken-0003")["finished"], timeout=60, what="the first Tasks to finish")
        browser.wait("document.querySelectorAll('#task-rows tr[data-phase=\"Succeeded\"]').length === 2 && "
                     "document.querySelector('#task-rows tr[data-name=\"broken-0003\"][data-phase=\"Failed\"]')", "finished rows")
        browser.wait("document.querySelector('#chart-throughput svg .seg') && document.querySelector('#chart-failures svg .dot.bad')", "charts")
        assert "33.3%" in browser.text("#failure-rate")

        # A Task submitted while the page is open appears and changes phase without a reload.
        browser.evaluate("window.__sameDocument = 'yes'")
        submit(http, ns, "render-0004", {RUN_FOR: "10m"}, parameters={"n": 42})
        browser.wait("document.querySelector('#task-rows tr[data-name=\"render-0004\"]')", "the new Task's row")
        browser.wait("document.querySelector('#task-rows tr[data-name=\"render-0004\"][data-phase=\"Running\"]')", "the new Task Running")
        browser.wait("document.querySelector('#queue-rows tr[data-queue=\"default\"] .running').textContent === '1'", "the queue's running count")
        assert browser.evaluate("window.__sameDocument") == "yes"
        browser.screenshot("overview")

        # The Tasks page, with filters.
        browser.evaluate("location.hash = '#/tasks'")
        browser.wait("document.querySelectorAll('#task-rows tr[data-name]').length === 4", "all four rows")
        browser.screenshot("tasks")
        browser.click("#filter-phase button[data-phase='Failed']")
        browser.wait("[...document.querySelectorAll('#task-rows tr[data-name]')].map(r => r.dataset.name).join() === 'broken-0003'",
                     "only the failed Task")
        assert "phase=Failed" in browser.evaluate("location.hash")

        # The running Task's page: progress reported by the handler shows up live, then Cancel.
        browser.evaluate("location.hash = '#/tasks/render-0004'")
        browser.wait("document.querySelector('#task-phase [data-phase=\"Running\"]')", "the task page")
        kube.patch(tasks_path(ns, "render-0004", subresource="status"),
                   {"status": {"progress": {"percent": 40, "message": "rendering frame 400 of 1000",
                                            "updatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}})
        browser.wait("document.querySelector('#task-percent').textContent === '40%'", "the progress bar at 40%")
        assert "frame 400" in browser.text("#task-progress-message")
        assert browser.evaluate("document.querySelectorAll('#task-conditions li').length") == 8
        browser.wait("document.querySelector('#logs-notice .notice')", "the logs answer")
        browser.screenshot("task-running")
        browser.click("#btn-cancel")
        browser.wait("!document.querySelector('#confirm').hidden", "the confirmation")
        browser.click("#confirm-yes")
        browser.wait("document.querySelector('#task-phase [data-phase=\"Cancelled\"]')", "the Task Cancelled on the page")
        cancelled = task(http, ns, "render-0004")
        assert cancelled["spec"]["cancel"] is True and cancelled["phase"] == "Cancelled"

        # The failed Task's page: failure, conditions, the cluster's "logs unavailable" answer; Retry.
        browser.evaluate("location.hash = '#/tasks/broken-0003'")
        browser.wait("document.querySelector('#task-failure')", "the failure panel")
        assert "disk full" in browser.text("#task-failure") and "exit code 3" in browser.text("#task-failure")
        browser.wait("document.querySelector('#logs-notice [data-reason=\"LogsUnavailable\"]')", "the logs-unavailable notice")
        assert "kwok" in browser.text("#logs-notice")
        browser.screenshot("task-failed")
        browser.click("#btn-retry")
        browser.wait("document.querySelector('#task-history tbody tr.current td').textContent.startsWith('1')", "run 1 on the page")
        assert task(http, ns, "broken-0003")["spec"]["rerun"] == 1

        # A succeeded Task's page shows its result.
        browser.evaluate("location.hash = '#/tasks/resize-0001'")
        browser.wait("document.querySelector('#task-result')", "the result")
        assert "s3://out/0001.png" in browser.text("#task-result")
        browser.screenshot("task-succeeded")

        # A Task that runs after two others shows the chain, each a link to its page.
        submit(http, ns, "report-0005", {RUN_FOR: "1s"}, parameters={"n": 1}, after=["resize-0001", "resize-0002"])
        browser.evaluate("location.hash = '#/tasks/report-0005'")
        browser.wait("document.querySelectorAll('#task-after a').length === 2", "the chain on the page")
        assert [a for a in browser.evaluate("[...document.querySelectorAll('#task-after a')].map(a => a.textContent).join()").split(",")] == \
            ["resize-0001", "resize-0002"]
        browser.click("#task-after a")
        browser.wait("location.hash === '#/tasks/resize-0001' && document.querySelector('#task-result')", "the upstream's page")

        # Completion webhook deliveries (status.webhooks, written by the operator's delivery worker) show on the Task's page.
        kube.patch(tasks_path(ns, "resize-0002", subresource="status"), {"status": {"webhooks": [
            {"event": "Succeeded", "run": 0, "webhook": "ops", "deliveryId": "d-1", "state": "Delivered", "attempts": 3,
             "lastResult": "HTTP 200"}]}})
        browser.evaluate("location.hash = '#/tasks/resize-0002'")
        browser.wait("document.querySelector('#task-webhooks [data-state=\"Delivered\"]')", "the webhook delivery")
        assert "Succeeded: Delivered (3 attempts)" in browser.text("#task-webhooks")

        # A fan-out Task's items as one bar, with the failed indexes.
        kube.patch(tasks_path(ns, "resize-0002", subresource="status"), {"status": {"items": {
            "total": 10, "succeeded": 8, "failed": 2, "completedIndexes": "0-2,4-6,8-9", "failedIndexes": "3,7"}}})
        browser.wait("document.querySelector('#task-items[data-failed=\"2\"]')", "the items bar")
        assert "8 of 10 succeeded, 2 failed (items 3,7)" in browser.text("#task-items")
    assert browser.problems() == []


def test_dashboard_schedules_view_triggers_suspends_and_resumes(gateway: GatewayProcess, kube: KubeSync, sim_namespace: str,
                                                               browser: Browser) -> None:
    ns = sim_namespace
    rules = [{"apiGroups": ["kubetask.io"], "resources": ["taskschedules"], "verbs": ["get", "list", "create", "patch"]}, *TASK_RULES]
    token = service_account_token(kube, ns, "scheduler", rules)
    template = {"metadata": {"annotations": {RUN_FOR: "1s"}}, "spec": {"type": "sim", "parameters": {"n": 1}}}
    kube.create(tasks_path(ns, plural="taskqueues"), {"apiVersion": "kubetask.io/v1alpha1", "kind": "TaskQueue", "metadata": {"name": "limited"},
                                                      "spec": {"maxRunning": 5, "rateLimit": {"starts": 10, "per": "1m"}}})
    with gateway.client(token) as http:
        for name, spec in (("nightly-report", {"schedule": "0 3 * * *", "timeZone": "Europe/Berlin"}),
                           ("paused-sync", {"schedule": "*/15 * * * *", "suspend": True})):
            response = http.post(f"{base(ns)}/taskschedules", json={"name": name, "spec": {**spec, "taskTemplate": template}})
            assert response.status_code == 201, response.text

        browser.open(f"{gateway.url}/ui/")
        browser.wait("!document.querySelector('#login').hidden", "the login box")
        browser.type("#login-token", token)
        browser.click("#login-submit")
        browser.wait("document.body.dataset.stream === 'live' && document.querySelector('#login').hidden", "signed in, stream live")

        # The queue panel shows the rate limit and the throttled count.
        throttled = "#queue-rows tr[data-queue=\"limited\"] .throttled"
        browser.wait(f"document.querySelector({json.dumps(throttled)})", "the limited queue's throttled cell")
        assert "10 starts per 1m" in browser.evaluate(f"document.querySelector({json.dumps(throttled)}).title")
        assert browser.text(throttled + " .count").isdigit()

        browser.evaluate("location.hash = '#/schedules'")
        row = "#schedule-rows tr[data-schedule=\"nightly-report\"]"
        browser.wait(f"document.querySelector({json.dumps(row)})", "the schedule row")
        assert browser.evaluate(f"document.querySelectorAll({json.dumps(row + ' .next-runs .run')}).length") == 3
        assert browser.text(row + " .next-runs").startswith("in ") and browser.text(row + " td:nth-child(3)") == "Europe/Berlin"
        paused = "#schedule-rows tr[data-schedule=\"paused-sync\"]"
        assert browser.text(paused + " .next-runs").startswith("suspended") and "suspended" in browser.text(paused + " .pill")
        assert browser.evaluate("document.querySelector('.tabs a[data-tab=\"schedules\"]').classList.contains('on')") is True
        browser.screenshot("schedules")

        browser.click(row + " button[data-action='trigger']")
        wait_for(lambda: http.get(f"{base(ns)}/tasks", params={"labelSelector": "kubetask.io/schedule=nightly-report"}).json()["items"],
                 timeout=20, what="the triggered Task")
        browser.wait("[...document.querySelectorAll('#toasts .toast')].some(t => t.textContent.includes('created from nightly-report'))",
                     "the trigger's note")

        suspended_row, resumed_row, runs = (json.dumps(row + '[data-suspended="true"]'), json.dumps(row + '[data-suspended="false"]'),
                                            json.dumps(row + " .next-runs .run"))
        browser.click(row + " button[data-action='suspend']")
        browser.wait(f"document.querySelector({suspended_row})", "the row suspended")
        assert http.get(f"{base(ns)}/taskschedules/nightly-report").json()["spec"]["suspend"] is True
        browser.click(row + " button[data-action='resume']")
        browser.wait(f"document.querySelector({resumed_row}) && document.querySelectorAll({runs}).length === 3", "the row resumed")
        assert http.get(f"{base(ns)}/taskschedules/nightly-report").json()["spec"]["suspend"] is False
    assert browser.problems() == []


def test_dashboard_on_a_development_gateway_needs_no_sign_in(dev_gateway: GatewayProcess, sim_namespace: str, browser: Browser) -> None:
    browser.open(f"{dev_gateway.url}/ui/?namespace={sim_namespace}")
    browser.wait("document.body.dataset.stream === 'live'", "the stream without a token")
    assert browser.evaluate("document.querySelector('#login').hidden") is True
    assert "dev mode" in browser.text("#whoami") and browser.evaluate("document.querySelector('#ns-input').value") == sim_namespace
    browser.wait("document.querySelector('#queue-rows tr[data-queue=\"default\"]')", "the queue row")
    assert browser.problems() == []


def test_dashboard_dead_letter_page_reruns_selected_and_all_matching(gateway: GatewayProcess, kube: KubeSync, sim_namespace: str,
                                                                     token: str, browser: Browser) -> None:
    ns = sim_namespace
    kube.create(tasks_path(ns, plural="taskqueues"), {"apiVersion": "kubetask.io/v1alpha1", "kind": "TaskQueue", "metadata": {"name": "batch"},
                                                      "spec": {"maxRunning": 5}})
    with gateway.client(token) as http:
        submit(http, ns, "fail-a", {EXIT_CODE: "3", MESSAGE: "disk full"}, parameters={"n": 1}, retries=0)
        submit(http, ns, "fail-b", {EXIT_CODE: "65", MESSAGE: "bad input file"}, parameters={"n": 2}, nonRetryableExitCodes=[65])
        submit(http, ns, "fail-c", {EXIT_CODE: "4"}, parameters={"n": 3}, retries=0, queue="batch")
        submit(http, ns, "ok-d", {RUN_FOR: "1s"}, parameters={"n": 4})
        wait_for(lambda: all(task(http, ns, n)["finished"] for n in ("fail-a", "fail-b", "fail-c", "ok-d")), timeout=60,
                 what="the Tasks to finish")

        browser.open(f"{gateway.url}/ui/")
        browser.wait("!document.querySelector('#login').hidden", "the login box")
        browser.type("#login-token", token)
        browser.click("#login-submit")
        browser.wait("document.body.dataset.stream === 'live' && document.querySelector('#login').hidden", "signed in, stream live")

        # The queue panel shows each queue's dead-letter count (the operator's status.deadLetter).
        cell = "#queue-rows tr[data-queue=\"{}\"] .dead-letter a"
        browser.wait(f"document.querySelector({json.dumps(cell.format('default'))})?.textContent === '2' && "
                     f"document.querySelector({json.dumps(cell.format('batch'))})?.textContent === '1'", "the dead-letter counts", timeout=40)
        browser.click(cell.format("default"))
        browser.wait("location.hash === '#/deadletter?queue=default' && document.querySelectorAll('.dl-rows tr[data-name]').length === 2",
                     "the Dead letter page of the default queue")
        assert browser.evaluate("document.querySelector('.tabs a[data-tab=\"deadletter\"]').classList.contains('on')") is True
        expected = [i["name"] for i in http.get(f"{base(ns)}/deadletter", params={"queue": "default"}).json()["items"]]
        assert browser.evaluate("[...document.querySelectorAll('.dl-rows tr[data-name]')].map(r => r.dataset.name).join()") == ",".join(expected)
        assert sorted(expected) == ["fail-a", "fail-b"]
        row_b = ".dl-rows tr[data-name=\"fail-b\"]"
        assert browser.text(row_b + " .reason") == "PodFailurePolicy" and browser.text(row_b + " .exit-code") == "65"
        assert "bad input file" in browser.text(row_b + " .message")

        # Every queue, grouped per queue.
        browser.evaluate("(() => { const s = document.querySelector('#dl-queue'); s.value = ''; s.dispatchEvent(new Event('change')); })()")
        browser.wait("[...document.querySelectorAll('.dl-group')].map(g => g.dataset.queue).join() === 'batch,default' && "
                     "document.querySelectorAll('.dl-rows tr[data-name]').length === 3", "both queues' groups")
        assert browser.text("#btn-rerun-all") == "Re-run all matching (3)" and browser.evaluate("document.querySelector('#btn-rerun-selected').disabled")
        browser.screenshot("deadletter")

        # Re-run selected: only the checked Task gets a new run.
        browser.click(".dl-select[data-name=\"fail-a\"]")
        browser.wait("document.querySelector('#btn-rerun-selected').textContent === 'Re-run selected (1)'", "one selected")
        browser.click("#btn-rerun-selected")
        browser.wait("[...document.querySelectorAll('#toasts .toast')].some(t => t.textContent.includes('1 re-run'))", "the re-run's note")
        assert task(http, ns, "fail-a")["spec"]["rerun"] == 1
        assert task(http, ns, "fail-b")["spec"].get("rerun", 0) == 0 and task(http, ns, "fail-c")["spec"].get("rerun", 0) == 0

        # Re-run all matching a filter, after a confirmation.
        browser.evaluate("(() => { const s = document.querySelector('#dl-reason'); s.value = 'PodFailurePolicy'; s.dispatchEvent(new Event('change')); })()")
        browser.wait("[...document.querySelectorAll('.dl-rows tr[data-name]')].map(r => r.dataset.name).join() === 'fail-b'", "only fail-b")
        assert "reason=PodFailurePolicy" in browser.evaluate("location.hash")
        browser.click("#btn-rerun-all")
        browser.wait("!document.querySelector('#confirm').hidden", "the confirmation")
        assert "reason PodFailurePolicy" in browser.text("#confirm-text")
        browser.click("#confirm-yes")
        wait_for(lambda: task(http, ns, "fail-b")["spec"].get("rerun") == 1, timeout=20, what="fail-b re-run")
        browser.wait("[...document.querySelectorAll('#toasts .toast')].some(t => t.textContent.includes('Re-run of all matching: 1 re-run'))",
                     "the re-run's note")
        assert task(http, ns, "fail-c")["spec"].get("rerun", 0) == 0
    assert browser.problems() == []


def test_dashboard_groups_view_shows_one_bar_per_group(gateway: GatewayProcess, kube: KubeSync, sim_namespace: str,
                                                      browser: Browser) -> None:
    ns = sim_namespace
    rules = [{"apiGroups": ["kubetask.io"], "resources": ["taskgroups"], "verbs": ["get", "list", "create"]}, *TASK_RULES]
    token = service_account_token(kube, ns, "grouper", rules)
    # The callback's TaskType accepts the `group` parameter the operator adds.
    kube.create(tasks_path(ns, plural="tasktypes"), {"apiVersion": "kubetask.io/v1alpha1", "kind": "TaskType", "metadata": {"name": "collect"},
                                                     "spec": {"image": "example.invalid/collect:1",
                                                              "parametersSchema": {"type": "object", "properties": {"group": {"type": "object"}}}}})
    callback = {"taskTemplate": {"metadata": {"annotations": {RUN_FOR: "1s"}}, "spec": {"type": "collect"}}}
    with gateway.client(token) as http:
        quick = [{"spec": {"type": "sim", "parameters": {"n": i}}, "annotations": {RUN_FOR: "1s"}} for i in range(3)]
        response = http.post(f"{base(ns)}/tasks:batch", json={"items": quick, "group": {"name": "thumbs", "callback": callback}})
        assert response.status_code == 201, response.text
        slow = [{"spec": {"type": "sim", "parameters": {"n": 1}}, "annotations": {RUN_FOR: "1s"}},
                {"spec": {"type": "sim", "parameters": {"n": 2}}, "annotations": {RUN_FOR: "10m"}}]
        response = http.post(f"{base(ns)}/tasks:batch", json={"items": slow, "group": {"name": "render"}})
        assert response.status_code == 201, response.text
        wait_for(lambda: http.get(f"{base(ns)}/taskgroups/thumbs").json()["finished"], timeout=90, what="group thumbs Finished")

        browser.open(f"{gateway.url}/ui/")
        browser.wait("!document.querySelector('#login').hidden", "the login box")
        browser.type("#login-token", token)
        browser.click("#login-submit")
        browser.wait("document.body.dataset.stream === 'live' && document.querySelector('#login').hidden", "signed in, stream live")
        browser.evaluate("location.hash = '#/groups'")
        thumbs, render = "#group-rows tr[data-group=\"thumbs\"]", "#group-rows tr[data-group=\"render\"]"
        thumbs_done = json.dumps(thumbs + '[data-phase="Succeeded"]')
        browser.wait(f"document.querySelector({thumbs_done})", "the finished group's row")
        assert browser.evaluate("document.querySelector('.tabs a[data-tab=\"groups\"]').classList.contains('on')") is True
        assert browser.text(thumbs + " .pct.of") == "3/3" and "3 succeeded" in browser.text(thumbs + " .members")
        assert browser.text(thumbs + " .finished") == "yes" and browser.text(thumbs + " .succeeded") == "yes"
        assert browser.evaluate(f"document.querySelectorAll({json.dumps(thumbs + ' .bar.group .seg-succeeded')}).length") == 1
        render_of = json.dumps(render + " .pct.of")
        browser.wait(f"document.querySelector({render_of})?.textContent === '1/2'", "the running group at 1/2", timeout=40)
        assert browser.text(render + " .finished") == "no" and "1 running" in browser.text(render + " .members")
        assert browser.text(render + " .callback") == "—"
        browser.wait(f"document.querySelector({json.dumps(thumbs + ' .callback a')})", "the callback link")
        assert browser.text(thumbs + " .callback a") == "thumbs-callback"
        browser.screenshot("groups")

        # The callback is a link to its Task's page; the group's name opens its members in the Task list.
        browser.click(thumbs + " .callback a")
        browser.wait("location.hash === '#/tasks/thumbs-callback' && document.querySelector('#task-phase [data-phase=\"Succeeded\"]')",
                     "the callback Task's page")
        browser.evaluate("location.hash = '#/groups'")
        browser.wait(f"document.querySelector({json.dumps(thumbs + ' td.name a')})", "the groups page again")
        browser.click(thumbs + " td.name a")
        browser.wait("location.hash.startsWith('#/tasks?q=') && document.querySelectorAll('#task-rows tr[data-name]').length === 3",
                     "the group's three members")
    assert browser.problems() == []
