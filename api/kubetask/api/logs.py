"""The handler's log: the API server's pods/log of the Task's latest pod, proxied as it streams.

Where the cluster serves no logs (simulated nodes such as kwok, a kubelet that cannot be reached,
a container that has not started), the answer is a structured 502/503 that says so, with the API
server's own words, instead of an empty body.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from kubetask.api.errors import GatewayError
from kubetask.kube import ApiError, Connection, Kube, core_path
from kubetask.operator.jobs import CONTAINER_NAME
from kubetask.operator.naming import LABEL_RUN, LABEL_TASK_UID


class LogSource:
    """A client of its own: log streams may last long and must not hold the main pool's connections
    nor its in-flight slots."""

    def __init__(self, connection: Connection) -> None:
        self.kube = Kube(connection, timeout=30.0)

    async def close(self) -> None:
        await self.kube.close()

    async def pods(self, namespace: str, task: dict[str, Any], run: int) -> list[dict[str, Any]]:
        selector = f"{LABEL_TASK_UID}={task['metadata']['uid']},{LABEL_RUN}={run}"
        try:
            found = await self.kube.get(core_path("pods", namespace), labelSelector=selector)
        except ApiError as error:
            raise GatewayError(502, f"listing the Task's pods failed: {error.status} {error.message[:500]}") from error
        items: list[dict[str, Any]] = found.get("items") or []
        return sorted(items, key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]))

    async def open(self, namespace: str, pod: dict[str, Any], params: dict[str, Any]) -> AsyncIterator[bytes]:
        """Start the upstream stream; errors are raised before the first byte is returned."""
        name = pod["metadata"]["name"]
        upstream = contextlib.AsyncExitStack()
        try:
            response = await upstream.enter_async_context(
                self.kube.stream(core_path("pods", namespace, name) + "/log", {"container": CONTAINER_NAME, **params}))
        except ApiError as error:
            raise unavailable(pod, error) from error

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.content.iter_any():
                    yield chunk
            finally:
                await upstream.aclose()

        return body()


def unavailable(pod: dict[str, Any], error: ApiError) -> GatewayError:
    message = error.message
    name = pod["metadata"]["name"]
    node = (pod.get("spec") or {}).get("nodeName") or "no node yet"
    if error.status == 404:
        return GatewayError(404, f"pod {name} is gone (deleted with its Job, e.g. by ttlSecondsAfterFinished): {message}")
    if "waiting to start" in message or "ContainerCreating" in message or "PodInitializing" in message:
        return GatewayError(503, f"the handler container of pod {name} has not started yet: {message}",
                            reason="LogsUnavailable", headers={"Retry-After": "2"})
    return GatewayError(502, f"the cluster did not serve the log of pod {name} (node {node}): {message}. "
                        "Nodes that only simulate pods (kwok, as in the local control plane) keep no container logs.",
                        reason="LogsUnavailable")
