"""Honest edges of the gateway (issue #16, part 5): readiness means a live cache, event streams are
capped per identity and in total, and dev mode checks the socket it bound, not the host it was given."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from api_fakes import ADMIN_TOKEN, FakeKube, client, seed, settle
from kubetask.api.main import check_bound
from kubetask.api.settings import GatewaySettings

NS = "/api/v1/namespaces/team-a"
pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def kube() -> FakeKube:
    fake = FakeKube()
    seed(fake)
    fake.tokens["bob-token"] = {"username": "bob", "uid": "u-2", "groups": []}
    return fake


async def ready(http: httpx.AsyncClient) -> httpx.Response:
    return await http.get("/readyz")


async def test_an_informer_failing_on_an_unexpected_exception_is_not_ready_and_recovers(kube: FakeKube) -> None:
    async with client(kube, token=None) as http:
        assert (await ready(http)).status_code == 200
        kube.watch_error = RuntimeError("a bug in the watch loop")
        kube.put("tasks", "team-a", "t1", {"type": "sim"})  # ends the running watches: the next ones raise
        await settle(kube)
        answer = await ready(http)
        assert answer.status_code == 503, answer.text
        assert "unexpected RuntimeError: a bug in the watch loop" in answer.json()["checks"]["cache:tasks"]
        kube.watch_error = None
        for _ in range(100):  # the informer retries with backoff (0.5 s, then doubling)
            if (await ready(http)).status_code == 200:
                break
            await asyncio.sleep(0.05)
        assert (await ready(http)).status_code == 200
        assert (await http.get(f"{NS}/tasks/t1", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})).status_code == 200


async def test_an_informer_loop_that_ended_is_not_ready(kube: FakeKube) -> None:
    async with client(kube, token=None) as http:
        gateway = http._transport.app.state.gateway  # type: ignore[attr-defined]
        assert (await ready(http)).status_code == 200
        loop = gateway.tasks._tasks[0]
        loop.cancel()  # stands in for anything that ends the loop: its flags stay frozen at "healthy"
        await asyncio.gather(loop, return_exceptions=True)
        answer = await ready(http)
        assert answer.status_code == 503
        assert "stopped: cancelled" in answer.json()["checks"]["cache:tasks"]


class Stream:
    """An SSE request driven at the ASGI level: httpx's ASGITransport returns only finished responses."""

    def __init__(self, http: httpx.AsyncClient, path: str, token: str) -> None:
        self.app = http._transport.app  # type: ignore[attr-defined]
        self.scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
                      "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
                      "headers": [(b"host", b"gateway"), (b"authorization", f"Bearer {token}".encode())],
                      "client": ("127.0.0.1", 1), "server": ("gateway", 80)}
        self.started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.gone = asyncio.Event()
        self.requested = False
        self.task: asyncio.Task[None] | None = None

    async def receive(self) -> dict[str, object]:
        if not self.requested:
            self.requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, object]) -> None:
        if message["type"] == "http.response.start" and not self.started.done():
            self.started.set_result(int(message["status"]))  # type: ignore[call-overload]

    async def open(self) -> int:
        self.task = asyncio.create_task(self.app(self.scope, self.receive, self.send))
        return await asyncio.wait_for(self.started, 5)

    async def close(self) -> None:
        self.gone.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)


async def open_stream(http: httpx.AsyncClient, path: str, token: str) -> Stream:
    stream = Stream(http, path, token)
    assert await stream.open() == 200
    return stream


async def test_event_streams_are_capped_per_identity_and_in_total(kube: FakeKube) -> None:
    kube.put("tasks", "team-a", "t1", {"type": "sim"})
    async with client(kube, sse_max_streams_per_identity=2, sse_max_streams=3, sse_retry_after_seconds=7,
                      sse_keepalive_seconds=0.05) as http:
        gateway = http._transport.app.state.gateway  # type: ignore[attr-defined]
        first = await open_stream(http, f"{NS}/tasks:watch", ADMIN_TOKEN)
        second = await open_stream(http, f"{NS}/tasks/t1:watch", ADMIN_TOKEN)  # both kinds count together
        refused = await http.get(f"{NS}/tasks:watch")
        assert refused.status_code == 429 and refused.headers["retry-after"] == "7"
        error = refused.json()["error"]
        assert set(error) == {"status", "reason", "message", "details"}
        assert error["reason"] == "TooManyStreams" and "per identity" in error["message"]
        bobs = await open_stream(http, f"{NS}/tasks:watch", "bob-token")  # another identity has its own share
        total = await http.get(f"{NS}/tasks:watch", headers={"Authorization": "Bearer bob-token"})
        assert total.status_code == 429 and "sse_max_streams" in total.json()["error"]["message"]
        assert len(gateway.streams) == 3
        for stream in (first, second, bobs):
            await stream.close()
        for _ in range(100):  # closing a stream frees its slot
            if len(gateway.streams) == 0:
                break
            await asyncio.sleep(0.02)
        assert len(gateway.streams) == 0 and gateway.streams.open == {}
        again = await open_stream(http, f"{NS}/tasks:watch", ADMIN_TOKEN)
        await again.close()


async def test_a_refused_or_failed_watch_takes_no_slot(kube: FakeKube) -> None:
    async with client(kube, sse_max_streams_per_identity=1) as http:
        gateway = http._transport.app.state.gateway  # type: ignore[attr-defined]
        assert (await http.get(f"{NS}/tasks/missing:watch")).status_code == 404
        assert (await http.get(f"{NS}/tasks:watch", params={"labelSelector": "a in ("})).status_code == 422
        assert len(gateway.streams) == 0


def bound(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    return sock


def test_dev_mode_checks_the_bound_address_not_the_configured_name() -> None:
    dev = GatewaySettings(host="localhost", dev_no_auth=True)  # the name passes the settings check
    with bound("127.0.0.1") as loopback:
        check_bound(dev, [loopback])
    with bound("0.0.0.0") as everywhere:  # what a hosts file mapping localhost elsewhere would give
        with pytest.raises(SystemExit, match="not a loopback address"):
            check_bound(dev, [everywhere])
        check_bound(GatewaySettings(host="0.0.0.0"), [everywhere])  # with authentication on, any address
