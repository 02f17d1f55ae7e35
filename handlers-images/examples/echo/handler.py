"""echo: returns its parameters; with `upper: true` every string value is uppercased."""

from __future__ import annotations

from typing import Any

from kubetask_sdk import Context, run, task


def upper(value: Any) -> Any:
    """`value` with every string in it uppercased (keys stay as they are)."""
    if isinstance(value, str):
        return value.upper()
    if isinstance(value, list):
        return [upper(v) for v in value]
    if isinstance(value, dict):
        return {k: upper(v) for k, v in value.items()}
    return value


@task("echo")
def echo(params: dict[str, Any], ctx: Context) -> dict[str, Any]:
    params = dict(params)
    if params.pop("upper", False):
        params = upper(params)
    result: dict[str, Any] = {"echo": params, "task": ctx.name, "run": ctx.run}
    if ctx.index is not None:  # one item of a fan-out Task (spec.items)
        result["index"] = ctx.index
    return result


if __name__ == "__main__":
    run()
