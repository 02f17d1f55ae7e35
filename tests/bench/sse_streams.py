"""Gateway memory with many event streams, and after they close: a leak or the allocator?

    python tests/bench/sse_streams.py --kubeconfig PATH [--streams 500] [--rounds 3]

Starts a gateway (development mode, loopback only) on the given cluster with both stream caps at
`--streams`, then `--rounds` times: opens that many `GET /tasks:watch` streams at once, holds them
5 s, closes them all, waits 10 s. Prints the gateway's RSS (from /proc) idle, with the streams
open and after each close. A leak grows round by round; memory the allocator keeps for reuse
stays at the first round's level.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "e2e")]

import httpx  # noqa: E402

from gateway_harness import GatewayProcess  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def hold(url: str, streams: int, seconds: float, on_open: asyncio.Event, opened: list[int]) -> None:
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None), limits=limits) as client:
        async def one() -> None:
            async with client.stream("GET", f"{url}/api/v1/namespaces/default/tasks:watch") as response:
                assert response.status_code == 200, response.status_code
                opened.append(1)
                if len(opened) == streams:
                    on_open.set()
                await asyncio.sleep(seconds)

        await asyncio.gather(*(one() for _ in range(streams)))


async def scenario(url: str, pid: int, streams: int, rounds: int) -> dict[str, object]:
    figures: dict[str, object] = {"streams": streams, "idle_mib": round(rss_mib(pid), 1), "rounds": []}
    for _ in range(rounds):
        opened: list[int] = []
        all_open = asyncio.Event()
        holder = asyncio.create_task(hold(url, streams, 5.0, all_open, opened))
        await asyncio.wait_for(all_open.wait(), 120)
        await asyncio.sleep(1)
        open_mib = rss_mib(pid)
        await holder
        await asyncio.sleep(10)
        figures["rounds"].append({"open_mib": round(open_mib, 1), "closed_10s_mib": round(rss_mib(pid), 1)})  # type: ignore[attr-defined]
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    gateway = GatewayProcess(args.kubeconfig, Path(tempfile.mkdtemp(prefix="sse-bench-")), "sse-bench",
                             KUBETASK_GATEWAY_DEV_NO_AUTH="true", KUBETASK_GATEWAY_SSE_MAX_STREAMS=str(args.streams),
                             KUBETASK_GATEWAY_SSE_MAX_STREAMS_PER_IDENTITY=str(args.streams))
    gateway.start()
    try:
        assert gateway.process is not None
        time.sleep(2)
        figures = asyncio.run(scenario(gateway.url, gateway.process.pid, args.streams, args.rounds))
    finally:
        gateway.stop()
    print(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(), **figures}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
