"""The Kubernetes client's own cost: the library's ApiClient (what kubetask.kube.Kube sends through)
against a thin httpx transport on the same resolved Connection (what kubetask.kube was before it
moved to the library), in one process, in alternating rounds, on the same API server.

Figures: client-process CPU per request (time.process_time: this process only, so the API
server's own work is not counted) and wall time per request, for GETs and for merge PATCHes, 8
requests in flight, as the operator's Kube sends them.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from kubetask.kube import MERGE_PATCH, ApiError, Connection, Kube, core_path

IN_FLIGHT = 8


class HttpxTransport:
    """The baseline: the same calls on httpx, as kubetask.kube made them before (bench only)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._in_flight = asyncio.Semaphore(IN_FLIGHT)
        self._client = httpx.AsyncClient(base_url=connection.server, verify=connection.ssl_context(), timeout=30.0,
                                         limits=httpx.Limits(max_connections=None, max_keepalive_connections=None))

    async def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        value = await self.connection.authorization()
        if value:
            headers["Authorization"] = value
        content = None
        if body is not None:
            headers["Content-Type"] = content_type
            content = json.dumps(body)
        async with self._in_flight:
            response = await self._client.request(method, path, content=content, headers=headers)
        if response.status_code >= 400:
            raise ApiError.from_response(response)
        return response.json() if response.content else {}

    async def close(self) -> None:
        await self._client.aclose()


class LibraryTransport:
    def __init__(self, connection: Connection) -> None:
        self.kube = Kube(connection, max_in_flight=IN_FLIGHT)

    async def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> dict[str, Any]:
        return await self.kube.request(method, path, body=body, content_type=content_type)

    async def close(self) -> None:
        await self.kube.close()


async def _round(transport: Any, path: str, method: str, requests: int) -> tuple[float, float]:
    """(client CPU seconds, wall seconds) for `requests` requests, IN_FLIGHT at a time."""
    body = None
    if method == "PATCH":
        body = {"metadata": {"annotations": {"bench.kubetask.io/n": "0"}}}
    cpu0, wall0 = time.process_time(), time.perf_counter()

    async def one(i: int) -> None:
        if body is None:
            await transport.request("GET", path)
        else:
            await transport.request("PATCH", path, {"metadata": {"annotations": {"bench.kubetask.io/n": str(i)}}}, MERGE_PATCH)

    pending = [one(i) for i in range(requests)]
    for start in range(0, len(pending), 64):
        await asyncio.gather(*pending[start:start + 64])
    return time.process_time() - cpu0, time.perf_counter() - wall0


async def _measure(kubeconfig: Path, namespace: str, requests: int, rounds: int) -> dict[str, Any]:
    connection = await Connection.resolve(kubeconfig)
    transports = {"library": LibraryTransport(connection), "httpx": HttpxTransport(connection)}
    path = core_path("configmaps", namespace, "transport-bench")
    setup = transports["library"]
    try:
        await setup.request("DELETE", path)
    except ApiError:
        pass
    await setup.request("POST", core_path("configmaps", namespace),
                        {"metadata": {"name": "transport-bench"}, "data": {"payload": "x" * 2048}})
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {name: {"GET": [], "PATCH": []} for name in transports}
    try:
        for name, transport in transports.items():  # warm: connections open, TLS done
            await _round(transport, path, "GET", 50)
        for _ in range(rounds):
            for method in ("GET", "PATCH"):
                for name, transport in transports.items():
                    samples[name][method].append(await _round(transport, path, method, requests))
    finally:
        await setup.request("DELETE", path)
        for transport in transports.values():
            await transport.close()
    figures: dict[str, Any] = {"requests_per_round": requests, "rounds": rounds, "in_flight": IN_FLIGHT}
    for name, by_method in samples.items():
        for method, rows in by_method.items():
            figures[f"{name}_{method.lower()}_cpu_ms"] = statistics.median(cpu / requests * 1000 for cpu, _ in rows)
            figures[f"{name}_{method.lower()}_wall_ms"] = statistics.median(wall / requests * 1000 for _, wall in rows)
    return figures


def transports(kubeconfig: Path, namespace: str, requests: int, rounds: int = 5) -> dict[str, Any]:
    return asyncio.run(_measure(kubeconfig, namespace, requests, rounds))
