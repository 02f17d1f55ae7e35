"""The handler's log: the API server's pods/log of the Task's latest pod, proxied as it streams.

Where the cluster serves no logs (simulated nodes such as kwok, a kubelet that cannot be reached,
a container that has not started), the answer is a structured 502/503 that says so, with the API
server's own words, instead of an empty body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from kubetask.api.errors import GatewayError
from kubetask.kube import Connection, core_path
from kubetask.operator.jobs import CONTAINER_NAME
from kubetask.operator.naming import LABEL_RUN, LABEL_TASK_UID


class LogSource:
    """Its own HTTP client: log streams may last long and must not hold the main pool's connections."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.client = httpx.AsyncClient(base_url=connection.server, verify=connection.ssl_context(),
                                        timeout=httpx.Timeout(30.0, read=None))

    async def close(self) -> None:
        await self.client.aclose()

    async def pods(self, namespace: str, task: dict[str, Any], run: int) -> list[dict[str, Any]]:
        selector = f"{LABEL_TASK_UID}={task['metadata']['uid']},{LABEL_RUN}={run}"
        response = await self.client.get(core_path("pods", namespace), params={"labelSelector": selector},
                                         headers={**self.connection.headers(), "Accept": "application/json"})
        if response.status_code >= 400:
            raise GatewayError(502, f"listing the Task's pods failed: {response.status_code} {response.text[:500]}")
        items: list[dict[str, Any]] = response.json().get("items") or []
        return sorted(items, key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]))

    async def open(self, namespace: str, pod: dict[str, Any], params: dict[str, Any]) -> AsyncIterator[bytes]:
        """Start the upstream stream; errors are raised before the first byte is returned."""
        name = pod["metadata"]["name"]
        request = self.client.build_request("GET", core_path("pods", namespace, name) + "/log",
                                            params={"container": CONTAINER_NAME, **params}, headers=self.connection.headers())
        response = await self.client.send(request, stream=True)
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            raise unavailable(pod, response)

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            finally:
                await response.aclose()

        return body()


def unavailable(pod: dict[str, Any], response: httpx.Response) -> GatewayError:
    try:
        message = str(response.json().get("message") or response.text)
    except ValueError:
        message = response.text
    name = pod["metadata"]["name"]
    node = (pod.get("spec") or {}).get("nodeName") or "no node yet"
    if response.status_code == 404:
        return GatewayError(404, f"pod {name} is gone (deleted with its Job, e.g. by ttlSecondsAfterFinished): {message}")
    if "waiting to start" in message or "ContainerCreating" in message or "PodInitializing" in message:
        return GatewayError(503, f"the handler container of pod {name} has not started yet: {message}",
                            reason="LogsUnavailable", headers={"Retry-After": "2"})
    return GatewayError(502, f"the cluster did not serve the log of pod {name} (node {node}): {message}. "
                        "Nodes that only simulate pods (kwok, as in the local control plane) keep no container logs.",
                        reason="LogsUnavailable")
