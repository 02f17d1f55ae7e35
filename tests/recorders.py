"""Watch-based recorders for integration tests: what every Task showed, every Job ever created.

A poll can miss a state that lasted a moment; a watch sees every version the API server stored.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from kt import TERMINAL
from kubetask.kube import Connection, KubeSync, core_path, tasks_path

PHASE_ORDER = {"Pending": 0, "Queued": 1, "Running": 2, "Succeeded": 3, "Failed": 3, "Cancelled": 3}


class _Recorder:
    def __init__(self, kubeconfig: Path, path: str, **params: Any) -> None:
        self.kube = KubeSync(Connection.from_kubeconfig(kubeconfig))
        self.path = path
        self.params = params
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = threading.Event()

    def __enter__(self) -> _Recorder:
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()

    def _run(self) -> None:
        version = None
        while not self._stop.is_set():
            try:
                if version is None:  # list first, so nothing created before the watch is missed
                    listed = self.kube.get(self.path, **self.params)
                    for item in listed["items"]:
                        self.record("ADDED", item)
                    version = listed["metadata"]["resourceVersion"]
                    self._started.set()
                for event in self.kube.watch(self.path, resource_version=version, timeout_seconds=5, **self.params):
                    obj = event["object"]
                    version = obj["metadata"].get("resourceVersion", version)
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        self.record(event["type"], obj)
                    if self._stop.is_set():
                        return
            except Exception:  # API server restarts, expired versions: list again
                time.sleep(0.2)
                version = None

    def record(self, kind: str, obj: dict[str, Any]) -> None:
        raise NotImplementedError


class PhaseRecorder(_Recorder):
    """Every (run, phase, reason) each Task of a namespace showed, in order."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        super().__init__(kubeconfig, tasks_path(namespace))
        self.phases: dict[str, list[tuple[int, str]]] = defaultdict(list)
        self.reasons: dict[str, list[str]] = defaultdict(list)

    def __enter__(self) -> PhaseRecorder:
        super().__enter__()
        return self

    def record(self, kind: str, obj: dict[str, Any]) -> None:
        status = obj.get("status") or {}
        name = obj["metadata"]["name"]
        if kind != "DELETED" and status.get("phase"):
            seq = self.phases[name]
            entry = (int(status.get("run", 0)), status["phase"])
            if not seq or seq[-1] != entry:
                seq.append(entry)
            ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)
            if ready and (not self.reasons[name] or self.reasons[name][-1] != ready["reason"]):
                self.reasons[name].append(ready["reason"])

    def backwards(self) -> dict[str, list[tuple[int, str]]]:
        """Tasks whose phase left a terminal phase, or moved to an earlier one, within a run."""
        bad = {}
        for name, seq in self.phases.items():
            for (run_a, a), (run_b, b) in zip(seq, seq[1:]):
                if run_a == run_b and ((a in TERMINAL and b != a) or PHASE_ORDER[b] < PHASE_ORDER[a]):
                    bad[name] = seq
        return bad


class JobRecorder(_Recorder):
    """The name of every kubetask Job ever created in a namespace, per Task, and the most that
    were unfinished at once (sampled on every Job event)."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        super().__init__(kubeconfig, core_path("jobs", namespace, group="batch"),
                         labelSelector="app.kubernetes.io/managed-by=kubetask")
        self.created: dict[str, set[str]] = defaultdict(set)
        self.creation: dict[str, str] = {}  # Job name → its creationTimestamp (whole seconds)
        self._unfinished: set[str] = set()
        self.most_unfinished = 0

    def __enter__(self) -> JobRecorder:
        super().__enter__()
        return self

    def record(self, kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        self.created[obj["metadata"]["labels"]["kubetask.io/task"]].add(name)
        self.creation.setdefault(name, obj["metadata"]["creationTimestamp"])
        done = any(c["type"] in ("Complete", "Failed") and c["status"] == "True"
                   for c in (obj.get("status") or {}).get("conditions", []))
        if kind == "DELETED" or done:
            self._unfinished.discard(name)
        else:
            self._unfinished.add(name)
        self.most_unfinished = max(self.most_unfinished, len(self._unfinished))

    def duplicates(self) -> dict[str, set[str]]:
        return {task: jobs for task, jobs in self.created.items() if len(jobs) != 1}
