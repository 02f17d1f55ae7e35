"""How GitOps tools judge a Task: Argo CD's Lua health check, run for real, and Flux's kstatus.

argocd_health(task) runs charts/kubetask/files/argocd-health-task.lua the way Argo CD does: the
object as a global table `obj`, the script's return value a table {status, message}. Argo CD runs
health checks with gopher-lua, a Lua 5.1 implementation, so this uses lupa's Lua 5.1 runtime (the
`lupa` wheel from PyPI bundles Lua 5.1 to 5.5 and LuaJIT; no system Lua needed).

kstatus(obj) is kstatus's Compute() (sigs.k8s.io/cli-utils/pkg/kstatus/status, v0.37), which Flux's
kustomize-controller and helm-controller use for `wait`/`healthChecks` on custom resources,
transcribed rule by rule:
  1. metadata.deletionTimestamp set                             -> Terminating
  2. status.observedGeneration present and != metadata.generation -> InProgress
  3. the first condition, in list order, that is Reconciling=True -> InProgress, Stalled=True -> Failed
  4. (built-in kinds have their own rules; a Task is not one)
  5. a Ready condition: True -> Current, False or Unknown -> InProgress
  6. otherwise                                                   -> Current
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

LUA = Path(__file__).resolve().parents[2] / "charts" / "kubetask" / "files" / "argocd-health-task.lua"


@cache
def _runtime() -> Any:
    from lupa import lua51

    # Argo CD opens only the safe standard libraries; so does this runtime (no os, io, require).
    return lua51.LuaRuntime(unpack_returned_tuples=True, register_eval=False, register_builtins=False)


def _to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, v) for v in value])
    return value


def argocd_health(obj: dict[str, Any], script: str | None = None) -> dict[str, str]:
    runtime = _runtime()
    runtime.globals().obj = _to_lua(runtime, obj)
    result = runtime.execute(script if script is not None else LUA.read_text())
    return {"status": result["status"], "message": result["message"]}


def kstatus(obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) as kstatus computes them for a custom resource."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return "Terminating", "Resource scheduled for deletion"
    generation = meta.get("generation")
    if generation is not None and "observedGeneration" in status and status["observedGeneration"] != generation:
        return "InProgress", f"{obj.get('kind')} generation is {generation}, but latest observed generation is {status['observedGeneration']}"
    conditions = status.get("conditions") or []
    for condition in conditions:
        if condition.get("type") == "Reconciling" and condition.get("status") == "True":
            return "InProgress", condition.get("message", "")
        if condition.get("type") == "Stalled" and condition.get("status") == "True":
            return "Failed", condition.get("message", "")
    for condition in conditions:
        if condition.get("type") == "Ready":
            if condition.get("status") == "True":
                return "Current", "Resource is Ready"
            if condition.get("status") in ("False", "Unknown"):
                return "InProgress", condition.get("message", "")
    return "Current", "Resource is current"
