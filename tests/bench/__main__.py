"""kubetask benchmarks: `make bench` (or `python -m tests.bench --quick`).

Every figure is printed beside a baseline measured in the same run on the same control plane,
because these machines are shared and noisy: raw Job creation next to Task → Job, a direct
API-server GET next to the gateway, an idle operator next to a loaded one.

Runs on its own local control plane (`kubetask-bench`) unless --kubeconfig is given, starts the
operator (and the gateway) as real processes, prints a table and writes JSON to artifacts/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "e2e")]

import httpx  # noqa: E402

from gateway_harness import GatewayProcess, service_account_token  # noqa: E402
from harness import REPO, OperatorProcess, localcluster, wait_for  # noqa: E402
from kubetask.kube import ApiError, Connection, KubeSync, core_path, tasks_path  # noqa: E402
from transport_bench import transports  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# Measuring tools
# ---------------------------------------------------------------------------------------------

def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": pct(values, 50), "p95": pct(values, 95), "p99": pct(values, 99),
            "mean": statistics.fmean(values) if values else float("nan")}


class Watcher:
    """A separate client watching Jobs (and Tasks) of one namespace; records when each was first
    seen, when each Job completed and when each Task reached a phase."""

    def __init__(self, kubeconfig: Path, namespace: str, label: str) -> None:
        self.kube = KubeSync(Connection.from_kubeconfig(kubeconfig), timeout=60)
        self.namespace, self.label = namespace, label
        self.job_seen: dict[str, float] = {}
        self.job_done: dict[str, float] = {}
        self.task_phase: dict[str, dict[str, float]] = defaultdict(dict)
        self.events: dict[str, int] = defaultdict(int)  # watch events per kind: what a watcher of that kind handles
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._jobs, daemon=True), threading.Thread(target=self._tasks, daemon=True),
                         threading.Thread(target=self._pods, daemon=True)]

    def __enter__(self) -> Watcher:
        for thread in self._threads:
            thread.start()
        time.sleep(0.5)  # both watches established before anything is created
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()

    def count(self, phase: str) -> int:
        """Tasks seen in `phase` so far (a snapshot: the watch threads keep adding)."""
        return sum(1 for phases in list(self.task_phase.values()) if phase in phases)

    def last(self, phase: str) -> float:
        return max(phases[phase] for phases in list(self.task_phase.values()) if phase in phases)

    def _loop(self, path: str, selector: str | None, handle: Any, kind: str) -> None:
        version = None
        while not self._stop.is_set():
            try:
                params = {"labelSelector": selector} if selector else {}
                for event in self.kube.watch(path, resource_version=version, timeout_seconds=10, **params):
                    now = time.monotonic()
                    obj = event["object"]
                    version = obj["metadata"].get("resourceVersion", version)
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        self.events[kind] += 1
                    if event["type"] in ("ADDED", "MODIFIED"):
                        handle(obj, now)
                    if self._stop.is_set():
                        return
            except (httpx.HTTPError, ApiError):
                version = None

    def _jobs(self) -> None:
        def handle(job: dict[str, Any], now: float) -> None:
            key = job["metadata"].get("labels", {}).get(self.label) or job["metadata"]["name"]
            self.job_seen.setdefault(key, now)
            if any(c["type"] == "Complete" and c["status"] == "True" for c in job.get("status", {}).get("conditions", [])):
                self.job_done.setdefault(key, now)
        self._loop(core_path("jobs", self.namespace, group="batch"), None, handle, "job")

    def _tasks(self) -> None:
        def handle(task: dict[str, Any], now: float) -> None:
            phase = (task.get("status") or {}).get("phase")
            if phase:
                self.task_phase[task["metadata"]["name"]].setdefault(phase, now)
        self._loop(tasks_path(self.namespace), None, handle, "task")

    def _pods(self) -> None:
        # Only counted: the operator watched pods until 2026-12 (a third of its events); it no longer does.
        self._loop(core_path("pods", self.namespace), None, lambda pod, now: None, "pod")


def apiserver_requests(kube: KubeSync) -> dict[tuple[str, str], float]:
    text = kube._client.get("/metrics", headers=kube.connection.headers()).text  # noqa: SLF001
    counts: dict[tuple[str, str], float] = defaultdict(float)
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(part.split("=", 1) for part in line[line.index("{") + 1:line.index("}")].split(","))
        labels = {k: v.strip('"') for k, v in labels.items()}
        if labels.get("verb") in ("POST", "PATCH", "PUT", "DELETE", "APPLY", "CREATE", "UPDATE"):
            resource = labels.get("resource", "") + ("/" + labels["subresource"] if labels.get("subresource") else "")
            counts[(labels["verb"], resource)] += float(line.rsplit(" ", 1)[1])
    return counts


def process_usage(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return {"rss_mib": rss_kb / 1024, "cpu_seconds": cpu}


# ---------------------------------------------------------------------------------------------
# The benchmarks
# ---------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, kube: KubeSync, kubeconfig: Path, operator: OperatorProcess, args: argparse.Namespace) -> None:
        self.kube, self.kubeconfig, self.operator, self.args = kube, kubeconfig, operator, args
        self.pool = ThreadPoolExecutor(max_workers=args.concurrency)
        self.namespaces: list[str] = []

    def clear(self) -> None:
        """Delete every namespace the earlier phases made and wait until they are gone, so the
        scale figures count only their own Tasks (and the no-Tasks restart has none)."""
        for name in self.namespaces:
            self.kube.delete(core_path("namespaces", name=name))
        wait_for(lambda: not any(self._exists(name) for name in self.namespaces), timeout=900, interval=2, what="namespaces deleted")
        self.namespaces.clear()

    def _exists(self, name: str) -> bool:
        try:
            self.kube.get(core_path("namespaces", name=name))
            return True
        except ApiError as error:
            if error.status == 404:
                return False
            raise

    def namespace(self, purpose: str) -> str:
        name = f"bench-{purpose}-{uuid.uuid4().hex[:6]}"
        self.namespaces.append(name)
        self.kube.create(core_path("namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        wait_for(lambda: self.kube.get(core_path("serviceaccounts", name, "default")), what="default ServiceAccount")
        self.kube.create(tasks_path(name, plural="tasktypes"), {"apiVersion": "kubetask.io/v1alpha1", "kind": "TaskType",
                         "metadata": {"name": "sim"}, "spec": {"image": "example.invalid/handler:1"}})
        self.kube.create(tasks_path(name, plural="taskqueues"), {"apiVersion": "kubetask.io/v1alpha1", "kind": "TaskQueue",
                         "metadata": {"name": "default"}, "spec": {"maxRunning": 100_000}})
        return name

    def task(self, ns: str, name: str, **spec: Any) -> None:
        self.kube.create(tasks_path(ns), {"apiVersion": "kubetask.io/v1alpha1", "kind": "Task", "metadata": {"name": name},
                                          "spec": {"type": "sim", **spec}})

    def raw_job(self, ns: str, name: str) -> None:
        self.kube.create(core_path("jobs", ns, group="batch"), {
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": {"bench": name}},
            "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"bench": name},
                                                                  "annotations": {localcluster.SIM_RUN_FOR: "0s"}}, "spec": {
                "restartPolicy": "Never", "containers": [{"name": "main", "image": "example.invalid/handler:1"}]}}}})

    def steady(self, create: Any, ns: str, label: str, rate: float, duration: float) -> dict[str, float]:
        sent: dict[str, float] = {}
        with Watcher(self.kubeconfig, ns, label) as watcher:
            interval, start, i = 1.0 / rate, time.monotonic(), 0
            futures = []
            while time.monotonic() - start < duration:
                name = f"s-{i:05d}"
                sent[name] = time.monotonic()
                futures.append(self.pool.submit(create, ns, name))
                i += 1
                time.sleep(max(0.0, start + i * interval - time.monotonic()))
            for future in futures:
                future.result()
            wait_for(lambda: len(watcher.job_seen) >= len(sent), timeout=120, interval=0.2, what="every Job seen")
        return summary([watcher.job_seen[n] - sent[n] for n in sent if n in watcher.job_seen]) | {"offered_rate": rate, "seconds": duration}

    def burst(self, create: Any, ns: str, label: str, n: int, done_key: str) -> tuple[dict[str, float], Watcher]:
        names = [f"b-{i:05d}" for i in range(n)]
        with Watcher(self.kubeconfig, ns, label) as watcher:
            start = time.monotonic()
            list(self.pool.map(lambda name: create(ns, name), names))
            created = time.monotonic() - start
            wait_for(lambda: len(watcher.job_seen) >= n, timeout=1800, interval=0.5, what="every Job")
            all_jobs = max(list(watcher.job_seen.values())) - start
            if done_key == "task":
                wait_for(lambda: watcher.count("Succeeded") >= n, timeout=1800, interval=0.5, what="every Task Succeeded")
                all_done = watcher.last("Succeeded") - start
            else:
                wait_for(lambda: len(watcher.job_done) >= n, timeout=1800, interval=0.5, what="every Job Complete")
                all_done = max(list(watcher.job_done.values())) - start
        return {"n": n, "created_s": created, "all_jobs_exist_s": all_jobs, "all_done_s": all_done}, watcher

    def run(self, results: dict[str, Any]) -> dict[str, Any]:
        """Fills `results` phase by phase, so an interrupted run still reports what it measured."""
        a = self.args
        idle = process_usage(self.operator.process.pid)

        # 1. Task → Job latency at a steady offered rate, beside raw Job creation → Job seen.
        print(f"[bench] steady: {a.rate}/s for {a.duration}s (Tasks, then raw Jobs)", file=sys.stderr)
        results["latency_task_to_job"] = self.steady(self.task, self.namespace("steady"), "kubetask.io/task", a.rate, a.duration)
        results["latency_raw_job"] = self.steady(self.raw_job, self.namespace("steadyraw"), "bench", a.rate, a.duration)

        # 2. Burst throughput, with API writes counted by the API server around the Task burst.
        print(f"[bench] burst: {a.burst} Tasks, then {a.burst} raw Jobs, concurrency {a.concurrency}", file=sys.stderr)
        ns = self.namespace("burst")
        before_server, before_operator = apiserver_requests(self.kube), self.operator.metrics()
        cpu_before = process_usage(self.operator.process.pid)["cpu_seconds"]
        results["burst_tasks"], watcher = self.burst(self.task, ns, "kubetask.io/task", a.burst, "task")
        time.sleep(3)  # queue status batching and late events land inside the window
        after_server, after_operator = apiserver_requests(self.kube), self.operator.metrics()
        cpu_ms = (process_usage(self.operator.process.pid)["cpu_seconds"] - cpu_before) * 1000
        results["operator_cpu_ms_per_task"] = round(cpu_ms / a.burst, 2)
        handled = _counter_delta(before_operator, after_operator, "kubetask_watch_events_total")
        results["operator_events_per_task"] = {k: round(v / a.burst, 2) for k, v in handled.items()}
        results["operator_events_per_task_total"] = round(sum(handled.values()) / a.burst, 2)
        # The same burst as any watcher sees it: Task, Job and pod events (a pod-watching operator handled all three).
        results["watch_events_per_task"] = {k: round(v / a.burst, 2) for k, v in sorted(watcher.events.items())}
        results["burst_raw_jobs"], _ = self.burst(self.raw_job, self.namespace("burstraw"), "bench", a.burst, "job")
        results["burst_ratio_all_jobs_exist"] = results["burst_tasks"]["all_jobs_exist_s"] / results["burst_raw_jobs"]["all_jobs_exist_s"]
        results["burst_ratio_all_done"] = results["burst_tasks"]["all_done_s"] / results["burst_raw_jobs"]["all_done_s"]
        writes = {f"{verb} {res}": round((after_server[(verb, res)] - before_server.get((verb, res), 0)) / a.burst, 2)
                  for verb, res in after_server if after_server[(verb, res)] - before_server.get((verb, res), 0) > 0}
        results["apiserver_writes_per_task"] = dict(sorted(writes.items(), key=lambda kv: -kv[1]))
        results["operator_writes_per_task"] = {k: round(v / a.burst, 2) for k, v in _operator_writes(before_operator, after_operator).items()}

        # 3. Status propagation: Job Complete seen → Task Succeeded seen (same watcher process).
        lags = [watcher.task_phase[n]["Succeeded"] - watcher.job_done[n] for n in watcher.job_done if "Succeeded" in watcher.task_phase.get(n, {})]
        results["propagation_job_done_to_task_succeeded"] = summary(lags)

        # 4. Scale: operator memory and CPU with many Tasks; restart time with them present.
        print(f"[bench] scale: {a.scale} finished Tasks (after deleting the earlier phases' namespaces)", file=sys.stderr)
        self.clear()
        results["scale"] = self.scale(a.scale, idle)

        # 5. Gateway beside a direct API-server GET.
        print("[bench] gateway", file=sys.stderr)
        results["gateway"] = self.gateway(a.gateway_requests)

        # 6. Fan-out: one Task with N items beside N separate Tasks.
        if a.fanout > 0:
            print(f"[bench] fan-out: 1 Task with {a.fanout} items vs {a.fanout} Tasks, {a.fanout_parallelism} pods at once", file=sys.stderr)
            self.clear()
            results["fanout"] = self.fanout(a.fanout, a.fanout_parallelism)

        # 7. The Kubernetes client itself: the library's ApiClient beside a thin httpx transport.
        if a.client > 0:
            print(f"[bench] client: {a.client} GETs and PATCHes per round, library vs httpx", file=sys.stderr)
            results["client"] = transports(self.kubeconfig, self.namespace("client"), a.client)

        # 8. Retention soak: memory with a steady stream of short-lived Tasks.
        if a.soak > 0:
            print(f"[bench] retention soak: {a.soak_rate}/s for {a.soak}s, retentionSeconds {a.soak_retention}", file=sys.stderr)
            self.clear()
            results["retention_soak"] = self.retention_soak(a.soak, a.soak_rate, a.soak_retention)
        return results

    def fanout(self, n: int, parallelism: int) -> dict[str, Any]:
        """The "batch over many files" workload both ways, with the same pods at once: one Task
        with `n` items and `parallelism`, then `n` Tasks through a queue of maxRunning =
        `parallelism`. Wall time from the first create to all Succeeded (one watcher), and every
        write the API server counted in that window (apiserver_request_total, all clients: the
        bench's creates, the operator, the Job controller, kwok's pod status), as the burst does."""

        def measure(label: str, create: Any, done: Any) -> dict[str, Any]:
            ns = self.namespace(label)
            self.kube.patch(tasks_path(ns, "default", plural="taskqueues"), {"spec": {"maxRunning": parallelism}})
            before_server, before_operator = apiserver_requests(self.kube), self.operator.metrics()
            with Watcher(self.kubeconfig, ns, "kubetask.io/task") as watcher:
                start = time.monotonic()
                create(ns)
                wait_for(lambda: done(watcher), timeout=3600, interval=0.5, what=f"{label}: every item done")
                all_done = watcher.last("Succeeded") - start
            time.sleep(3)  # late status writes and events land inside the window
            after_server, after_operator = apiserver_requests(self.kube), self.operator.metrics()
            writes = {f"{verb} {res}": after_server[(verb, res)] - before_server.get((verb, res), 0)
                      for verb, res in after_server if after_server[(verb, res)] - before_server.get((verb, res), 0) > 0}
            return {"all_done_s": round(all_done, 2), "apiserver_writes": round(sum(writes.values())),
                    "apiserver_writes_by_resource": {k: round(v) for k, v in sorted(writes.items(), key=lambda kv: -kv[1])},
                    "operator_writes": {k: round(v) for k, v in _operator_writes(before_operator, after_operator).items()}}

        items = [{"file": f"s3://bench/in/{i:06d}.csv"} for i in range(n)]
        one = measure("fanout", lambda ns: self.task(ns, "fan", items=items, parallelism=min(parallelism, n)),
                      lambda w: w.count("Succeeded") >= 1)
        separate = measure("fanoutsep", lambda ns: list(self.pool.map(lambda i: self.task(ns, f"f-{i:06d}", parameters=items[i]), range(n))),
                           lambda w: w.count("Succeeded") >= n)
        return {"items": n, "parallelism": parallelism, "one_task": one, "separate_tasks": separate,
                "writes_ratio": round(one["apiserver_writes"] / max(1, separate["apiserver_writes"]), 3),
                "time_ratio": round(one["all_done_s"] / max(0.001, separate["all_done_s"]), 3)}

    def retention_soak(self, seconds: float, rate: float, retention: int) -> dict[str, Any]:
        """Tasks at a steady rate, each deleted `retention` s after it finished (the operator's
        production sweep interval, 30 s). Operator and gateway memory, the gateway's cache and the
        Tasks present are sampled every 5 s: with retention they level off; the same-run baseline
        is the first quarter of the soak."""
        ns = self.namespace("soak")
        log_dir = REPO / "artifacts" / "bench-logs"
        gateway = GatewayProcess(self.kubeconfig, log_dir, "gateway-soak")
        gateway.start()
        samples: list[dict[str, float]] = []
        stop = threading.Event()

        def cache_objects() -> float:
            for line in httpx.get(f"{gateway.url}/metrics", timeout=10).text.splitlines():
                if line.startswith('kubetask_gateway_cache_objects{resource="tasks"}'):
                    return float(line.split()[-1])
            return -1.0

        def present() -> float:
            listed = self.kube.get(tasks_path(ns), limit=1)
            return float(len(listed["items"]) + int(listed["metadata"].get("remainingItemCount") or 0))

        def sample(start: float) -> None:
            while not stop.wait(5.0):
                assert gateway.process is not None
                samples.append({"t": round(time.monotonic() - start, 1), "operator_rss_mib": round(process_usage(self.operator.process.pid)["rss_mib"], 1),
                                "gateway_rss_mib": round(process_usage(gateway.process.pid)["rss_mib"], 1),
                                "gateway_cache_tasks": cache_objects(), "tasks_present": present()})

        try:
            start = time.monotonic()
            sampler = threading.Thread(target=sample, args=(start,), daemon=True)
            sampler.start()
            interval, i, futures = 1.0 / rate, 0, []
            while time.monotonic() - start < seconds:
                futures.append(self.pool.submit(self.task, ns, f"k-{i:06d}", retentionSeconds=retention))
                i += 1
                time.sleep(max(0.0, start + i * interval - time.monotonic()))
            for future in futures:
                future.result()
            stop.set()
            sampler.join()
        finally:
            stop.set()
            gateway.stop()
        quarter = [x for x in samples if x["t"] <= seconds / 4] or samples[:1]
        last = [x for x in samples if x["t"] >= seconds * 3 / 4] or samples[-1:]

        def mean(rows: list[dict[str, float]], key: str) -> float:
            return round(statistics.fmean(r[key] for r in rows), 1) if rows else 0.0

        return {"seconds": seconds, "rate": rate, "retention_seconds": retention, "tasks_submitted": i,
                "first_quarter": {k: mean(quarter, k) for k in ("operator_rss_mib", "gateway_rss_mib", "gateway_cache_tasks", "tasks_present")},
                "last_quarter": {k: mean(last, k) for k in ("operator_rss_mib", "gateway_rss_mib", "gateway_cache_tasks", "tasks_present")},
                "max": {k: max((r[k] for r in samples), default=0.0) for k in ("operator_rss_mib", "gateway_rss_mib", "gateway_cache_tasks", "tasks_present")},
                "samples": samples}

    def scale(self, count: int, idle: dict[str, float]) -> dict[str, Any]:
        restart_empty = self.restart_to_first_job()
        ns = self.namespace("scale")
        cpu_before = process_usage(self.operator.process.pid)["cpu_seconds"]
        with Watcher(self.kubeconfig, ns, "kubetask.io/task") as watcher:
            start = time.monotonic()
            list(self.pool.map(lambda i: self.task(ns, f"c-{i:05d}", cancel=True), range(count)))  # finished without a Job
            created = time.monotonic() - start
            wait_for(lambda: watcher.count("Cancelled") >= count, timeout=3600, interval=1, what="every Task Cancelled")
            all_finished = watcher.last("Cancelled") - start
        loaded = process_usage(self.operator.process.pid)
        restart_loaded = self.restart_to_first_job()
        time.sleep(10)  # Kopf's per-object workers end after 5 s idle; measure the settled process
        after_restart = process_usage(self.operator.process.pid)
        return {"tasks": count, "created_s": round(created, 1), "all_finished_s": round(all_finished, 1), "rss_mib_idle": round(idle["rss_mib"], 1), "rss_mib_loaded": round(loaded["rss_mib"], 1),
                "cpu_seconds_for_the_tasks": round(loaded["cpu_seconds"] - cpu_before, 1),
                "rss_mib_10s_after_restart": round(after_restart["rss_mib"], 1),
                "restart_to_first_job_s_empty": round(restart_empty, 2), "restart_to_first_job_s_loaded": round(restart_loaded, 2)}

    def restart_to_first_job(self) -> float:
        ns = self.namespace("restart")
        self.operator.stop()
        start = time.monotonic()
        self.operator.process = None
        self.operator.start()
        self.task(ns, "first")
        wait_for(lambda: self.kube.get(core_path("jobs", ns, group="batch"))["items"], timeout=600, interval=0.1, what="first Job")
        return time.monotonic() - start

    def gateway(self, requests: int) -> dict[str, Any]:
        ns = self.namespace("gateway")
        token = service_account_token(self.kube, ns, "bench", [
            {"apiGroups": ["kubetask.io"], "resources": ["tasks"], "verbs": ["create", "get", "list", "watch", "patch"]},
            {"apiGroups": ["kubetask.io"], "resources": ["tasktypes", "taskqueues"], "verbs": ["get", "list", "watch"]}])
        log_dir = REPO / "artifacts" / "bench-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        gateway = GatewayProcess(self.kubeconfig, log_dir, "gateway")
        gateway.start()
        try:
            headers = {"Authorization": f"Bearer {token}"}
            client = httpx.Client(base_url=gateway.url, headers=headers, timeout=30)
            base = f"/api/v1/namespaces/{ns}/tasks"
            client.post(base, json={"name": "probe", "spec": {"type": "sim"}}).raise_for_status()
            wait_for(lambda: client.get(f"{base}/probe").status_code == 200, what="probe in the gateway cache")

            def timed(call: Any) -> list[float]:
                def one(i: int) -> float:
                    t0 = time.perf_counter()
                    response = call(i)
                    assert response.status_code < 300, response.text
                    return time.perf_counter() - t0
                start = time.perf_counter()
                latencies = list(self.pool.map(one, range(requests)))
                return [requests / (time.perf_counter() - start), *latencies]

            submit = timed(lambda i: client.post(base, json={"name": f"g-{i:05d}", "spec": {"type": "sim"}}))
            get = timed(lambda i: client.get(f"{base}/probe"))
            direct_client = httpx.Client(base_url=self.kube.connection.server, verify=self.kube.connection.ssl_context(),
                                         headers=headers, timeout=30)
            direct = timed(lambda i: direct_client.get(tasks_path(ns, "probe")))
            raw_create = timed(lambda i: direct_client.post(tasks_path(ns), json={
                "apiVersion": "kubetask.io/v1alpha1", "kind": "Task", "metadata": {"name": f"d-{i:05d}"}, "spec": {"type": "sim"}}))

            def fig(values: list[float]) -> dict[str, float]:
                return {"rps": round(values[0], 1), "p50_ms": round(pct(values[1:], 50) * 1000, 2), "p99_ms": round(pct(values[1:], 99) * 1000, 2)}
            return {"requests": requests, "concurrency": self.args.concurrency, "submit_via_gateway": fig(submit),
                    "create_direct_baseline": fig(raw_create), "get_via_gateway": fig(get), "get_direct_baseline": fig(direct)}
        finally:
            gateway.stop()


def _counter_delta(before: str, after: str, name: str) -> dict[str, float]:
    def parse(text: str) -> dict[str, float]:
        out = {}
        for line in text.splitlines():
            if line.startswith(name + "{"):
                labels, value = line.rsplit(" ", 1)
                out[labels.removeprefix(name)] = float(value)
        return out
    a, b = parse(before), parse(after)
    return {k: v - a.get(k, 0) for k, v in b.items() if v - a.get(k, 0) > 0}


def _operator_writes(before: str, after: str) -> dict[str, float]:
    def parse(text: str) -> dict[str, float]:
        out = {}
        for line in text.splitlines():
            if line.startswith("kubetask_api_writes_total{"):
                labels, value = line.rsplit(" ", 1)
                out[labels.removeprefix("kubetask_api_writes_total")] = float(value)
        return out
    a, b = parse(before), parse(after)
    return {k: v - a.get(k, 0) for k, v in b.items() if v - a.get(k, 0) > 0}


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------

def _main_rows(r: dict[str, Any], row: Any, lines: list[str]) -> None:
    lt, lr = r["latency_task_to_job"], r["latency_raw_job"]
    for q in ("p50", "p95", "p99"):
        row(f"create → Job seen, {q} (Task vs raw Job)", lt[q], lr[q], "s")
    bt, br = r["burst_tasks"], r["burst_raw_jobs"]
    row(f"burst {bt['n']}: all Jobs exist (Task vs raw Job)", bt["all_jobs_exist_s"], br["all_jobs_exist_s"], "s")
    row(f"burst {bt['n']}: all done (Succeeded vs Complete)", bt["all_done_s"], br["all_done_s"], "s")
    row(f"burst {bt['n']}: operator CPU per Task (ms)", r["operator_cpu_ms_per_task"])
    watched = r["watch_events_per_task"]
    row(f"burst {bt['n']}: events handled per Task (vs Task+Job+pod)", r["operator_events_per_task_total"], sum(watched.values()))
    prop = r["propagation_job_done_to_task_succeeded"]
    row("Job Complete → Task Succeeded, p50", prop["p50"], None, "s")
    row("Job Complete → Task Succeeded, p99", prop["p99"], None, "s")
    s = r["scale"]
    row(f"operator RSS, {s['tasks']} Tasks vs idle (MiB)", s["rss_mib_loaded"], s["rss_mib_idle"])
    row(f"operator CPU for {s['tasks']} Tasks (s)", s["cpu_seconds_for_the_tasks"])
    row(f"{s['tasks']} Tasks created → all finished (s)", s["all_finished_s"], s["created_s"])
    row("operator RSS 10 s after the restart (MiB)", s["rss_mib_10s_after_restart"], s["rss_mib_idle"])
    row(f"restart → new Task's Job, {s['tasks']} Tasks vs none", s["restart_to_first_job_s_loaded"], s["restart_to_first_job_s_empty"], "s")
    g = r["gateway"]
    row("gateway submit p50 vs direct create (ms)", g["submit_via_gateway"]["p50_ms"], g["create_direct_baseline"]["p50_ms"])
    row("gateway submit p99 vs direct create (ms)", g["submit_via_gateway"]["p99_ms"], g["create_direct_baseline"]["p99_ms"])
    row("gateway submit req/s vs direct create", g["submit_via_gateway"]["rps"], g["create_direct_baseline"]["rps"])
    row("gateway get p50 vs direct GET (ms)", g["get_via_gateway"]["p50_ms"], g["get_direct_baseline"]["p50_ms"])
    row("gateway get p99 vs direct GET (ms)", g["get_via_gateway"]["p99_ms"], g["get_direct_baseline"]["p99_ms"])
    row("gateway get req/s vs direct GET", g["get_via_gateway"]["rps"], g["get_direct_baseline"]["rps"])
    lines.append("")
    lines.append("API writes per Task (API server's apiserver_request_total, all clients, burst window):")
    for key, value in r["apiserver_writes_per_task"].items():
        lines.append(f"  {key:<40} {value}")
    lines.append("of which the operator's own (kubetask_api_writes_total): " + json.dumps(r["operator_writes_per_task"]))
    lines.append("watch events per Task the operator handled: " + json.dumps(r["operator_events_per_task"])
                 + "; a watcher of Tasks, Jobs and pods saw: " + json.dumps(r["watch_events_per_task"]))


def table(results: dict[str, Any], settings: dict[str, Any]) -> str:
    r = results
    lines = ["", "kubetask benchmarks — " + ", ".join(f"{k}: {v}" for k, v in settings.items()), ""]
    fmt = "{:<48} {:>14} {:>14} {:>10}"
    lines.append(fmt.format("figure", "kubetask", "baseline", "ratio"))
    lines.append("-" * 90)

    def row(name: str, value: float, base: float | None = None, unit: str = "") -> None:
        ratio = f"{value / base:.2f}x" if base else ""
        lines.append(fmt.format(name, f"{value:.3f}{unit}", f"{base:.3f}{unit}" if base is not None else "", ratio))

    if "gateway" in r:
        _main_rows(r, row, lines)
    elif "scale" in r:  # --only-scale
        sc = r["scale"]
        row(f"operator RSS, {sc['tasks']} Tasks vs idle (MiB)", sc["rss_mib_loaded"], sc["rss_mib_idle"])
        row(f"operator CPU for {sc['tasks']} Tasks (s)", sc["cpu_seconds_for_the_tasks"])
        row(f"restart → new Task's Job, {sc['tasks']} Tasks vs none", sc["restart_to_first_job_s_loaded"], sc["restart_to_first_job_s_empty"], "s")
    fan = r.get("fanout")
    if fan:
        one, sep = fan["one_task"], fan["separate_tasks"]
        row(f"fan-out {fan['items']} items: all done (1 Task vs {fan['items']} Tasks)", one["all_done_s"], sep["all_done_s"], "s")
        row(f"fan-out {fan['items']} items: API writes (1 Task vs {fan['items']} Tasks)", one["apiserver_writes"], sep["apiserver_writes"])
        lines.append(f"fan-out writes by resource, 1 Task: {json.dumps(one['apiserver_writes_by_resource'])}")
        lines.append(f"fan-out writes by resource, {fan['items']} Tasks: {json.dumps(sep['apiserver_writes_by_resource'])}")
    client = r.get("client")
    if client:
        for method in ("get", "patch"):
            row(f"client CPU per {method.upper()}, library vs httpx (ms)", client[f"library_{method}_cpu_ms"], client[f"httpx_{method}_cpu_ms"])
            row(f"client wall per {method.upper()}, library vs httpx (ms)", client[f"library_{method}_wall_ms"], client[f"httpx_{method}_wall_ms"])
    soak = r.get("retention_soak")
    if soak:
        first, last, top = soak["first_quarter"], soak["last_quarter"], soak["max"]
        lines.append(f"retention soak: {soak['tasks_submitted']} Tasks over {soak['seconds']:.0f}s at {soak['rate']}/s, "
                     f"retentionSeconds {soak['retention_seconds']} (baseline: the soak's first quarter)")
        title = "soak"
        row(f"{title}: operator RSS, last vs first quarter (MiB)", last["operator_rss_mib"], first["operator_rss_mib"])
        row(f"{title}: gateway RSS, last vs first quarter (MiB)", last["gateway_rss_mib"], first["gateway_rss_mib"])
        row(f"{title}: gateway cached Tasks, last vs first quarter", last["gateway_cache_tasks"], first["gateway_cache_tasks"])
        row(f"{title}: Tasks present, last quarter vs submitted", last["tasks_present"], float(soak["tasks_submitted"]))
        row(f"{title}: most Tasks present at once", top["tasks_present"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small numbers for development (a few minutes)")
    parser.add_argument("--smoke", action="store_true", help="tiny numbers: only proves a run completes (the test suite uses it)")
    parser.add_argument("--rate", type=float, default=20.0, help="offered Tasks/s for the latency figure")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of steady load")
    parser.add_argument("--burst", type=int, default=2000, help="Tasks created at once")
    parser.add_argument("--concurrency", type=int, default=16, help="client threads (Tasks, raw Jobs and gateway alike)")
    parser.add_argument("--scale", type=int, default=10_000, help="finished Tasks present for the scale figures")
    parser.add_argument("--gateway-requests", type=int, default=1000, help="requests per gateway figure")
    parser.add_argument("--soak", type=float, default=900.0, help="seconds of the retention soak (0 skips it)")
    parser.add_argument("--soak-rate", type=float, default=5.0, help="Tasks/s during the retention soak (half the default retention delete pace)")
    parser.add_argument("--soak-retention", type=int, default=10, help="retentionSeconds of the soak's Tasks")
    parser.add_argument("--only-soak", action="store_true", help="run only the retention soak")
    parser.add_argument("--fanout", type=int, default=1000, help="items of the fan-out phase: one Task with them vs as many Tasks (0 skips it)")
    parser.add_argument("--fanout-parallelism", type=int, default=100, help="pods at once in the fan-out phase, both ways")
    parser.add_argument("--only-fanout", action="store_true", help="run only the fan-out phase")
    parser.add_argument("--client", type=int, default=2000, help="requests per round of the client phase: library vs httpx (0 skips it)")
    parser.add_argument("--only-client", action="store_true", help="run only the client phase")
    parser.add_argument("--only-scale", action="store_true", help="run only the scale phase (memory, restart with --scale Tasks)")
    parser.add_argument("--kubeconfig", type=Path, help="use this cluster instead of starting kubetask-bench")
    parser.add_argument("--out", type=Path, default=REPO / "artifacts", help="folder for the JSON results")
    args = parser.parse_args(argv)
    if args.quick:
        args.rate, args.duration, args.burst, args.scale, args.gateway_requests, args.soak = 10.0, 10.0, 200, 1000, 200, 120.0
    if args.smoke:
        args.rate, args.duration, args.burst, args.scale, args.gateway_requests, args.concurrency = 5.0, 2.0, 10, 20, 10, 4
        args.soak, args.soak_rate, args.soak_retention = 12.0, 2.0, 1
        args.fanout, args.fanout_parallelism = 10, 5
        args.client = 20

    cluster = None
    kubeconfig = args.kubeconfig
    if kubeconfig is None:
        cluster = localcluster.LocalCluster("kubetask-bench")
        cluster.down(quiet=True)
        kubeconfig = Path(cluster.up())
    kube = KubeSync(Connection.from_kubeconfig(kubeconfig), timeout=60)
    log_dir = REPO / "artifacts" / "bench-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    # Production timings, not the test harness's shortened ones.
    operator = OperatorProcess(kubeconfig, log_dir, extra_env={
        "KUBETASK_LOG_LEVEL": "WARNING", "KUBETASK_PENDING_POD_CHECK_SECONDS": "10", "KUBETASK_RETRY_MAX_DELAY": "300",
        "KUBETASK_LEADER_LEASE_SECONDS": "15", "KUBETASK_LEADER_RENEW_DEADLINE_SECONDS": "10", "KUBETASK_LEADER_RETRY_SECONDS": "2",
        # The production TaskQueue status interval (the harness's 0.5 s was in runs before 2026-12-03 evening):
        # each queue status write is a TaskQueue event the operator handles, counted per Task.
        "KUBETASK_QUEUE_STATUS_INTERVAL": "2"})
    operator.start()
    versions = dict(line.split("=", 1) for line in (REPO / "hack" / "versions.env").read_text().splitlines() if "=" in line and not line.startswith("#"))
    settings = {**versions, "controller-manager QPS limits": "disabled (kwokctl disableQPSLimits)",
                "machine": f"{platform.machine()}, {os.cpu_count()} cores", "python": platform.python_version(),
                "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "mode": "smoke" if args.smoke else "quick" if args.quick else "full"}
    results: dict[str, Any] = {}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.json"
    try:
        bench = Bench(kube, kubeconfig, operator, args)
        if args.only_client:
            results["client"] = transports(kubeconfig, bench.namespace("client"), args.client)
        elif args.only_fanout:
            results["fanout"] = bench.fanout(args.fanout, args.fanout_parallelism)
        elif args.only_scale:
            results["scale"] = bench.scale(args.scale, process_usage(operator.process.pid))
        elif args.only_soak:
            results["retention_soak"] = bench.retention_soak(args.soak, args.soak_rate, args.soak_retention)
        else:
            bench.run(results)
    finally:
        operator.stop()
        if cluster is not None and not os.environ.get("KUBETASK_KEEP_CLUSTER"):
            cluster.down(quiet=True)
        path.write_text(json.dumps({"settings": settings, "args": {k: str(v) for k, v in vars(args).items()}, "results": results,
                                    "complete": "gateway" in results and (args.soak <= 0 or "retention_soak" in results)
                                                and (args.fanout <= 0 or "fanout" in results)}, indent=2))
        print(f"\nresults written to {path}")
    print(table(results, settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
