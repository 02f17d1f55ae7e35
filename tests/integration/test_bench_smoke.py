"""`make bench` is not part of pass/fail; this only proves a tiny run completes and reports every figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness import REPO, OperatorProcess


def test_benchmark_smoke_run_completes(kubeconfig: Path, tmp_path: Path, operator: OperatorProcess) -> None:
    # The bench runs its own operator; the session's would otherwise hold the leader Lease (and
    # do the work the bench measures), so it steps aside for the run.
    operator.stop()
    try:
        done = subprocess.run([sys.executable, str(REPO / "tests" / "bench" / "__main__.py"), "--smoke", "--kubeconfig", str(kubeconfig),
                               "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    finally:
        operator.start()
    assert done.returncode == 0, done.stderr[-3000:]
    assert "create → Job seen, p50" in done.stdout and "gateway get p50" in done.stdout
    [report] = list(tmp_path.glob("bench-*.json"))
    results = json.loads(report.read_text())["results"]
    assert results["burst_tasks"]["n"] == 10
    assert results["latency_task_to_job"]["n"] == results["latency_raw_job"]["n"] == 10
    assert results["operator_writes_per_task"]
    assert results["operator_events_per_task_total"] > 0 and results["operator_cpu_ms_per_task"] > 0
    assert "task" in results["watch_events_per_task"]
    assert results["scale"]["tasks"] == 20
    assert results["gateway"]["get_direct_baseline"]["rps"] > 0
    assert results["fanout"]["items"] == 10 and results["fanout"]["one_task"]["apiserver_writes"] > 0
