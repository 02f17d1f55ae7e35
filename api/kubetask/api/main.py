"""`kubetask-gateway`: serve the REST gateway with uvicorn. Configuration: KUBETASK_GATEWAY_* (see settings.py)."""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Sequence

import uvicorn
from pydantic import ValidationError

from kubetask.api.app import create_app
from kubetask.api.settings import GatewaySettings, is_loopback


def load_settings() -> GatewaySettings:
    try:
        return GatewaySettings()
    except ValidationError as error:
        problems = "\n".join(f"  {'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
                             for e in error.errors())
        print(f"kubetask-gateway: refusing to start, invalid settings:\n{problems}", file=sys.stderr)
        raise SystemExit(2) from None


def check_bound(settings: GatewaySettings, sockets: Sequence[socket.socket]) -> None:
    """Refuse dev mode unless every socket really listens on a loopback address.

    The settings check reads the configured host, which is only a name: `localhost` can resolve to
    a routable address (a hosts file, a resolver), and what matters is where the socket listens."""
    if not settings.dev_no_auth:
        return
    for sock in sockets:
        address = str(sock.getsockname()[0])  # always a numeric address, never a name
        if not is_loopback(address):
            raise SystemExit(f"kubetask-gateway: refusing to start: KUBETASK_GATEWAY_DEV_NO_AUTH=true turns authentication off, "
                             f"and {settings.host!r} bound {address}, which is not a loopback address")


def main() -> None:
    settings = load_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per API request otherwise
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                            access_log=settings.access_log, proxy_headers=False, timeout_graceful_shutdown=5)
    sock = config.bind_socket()  # bound here, so the address checked is the one served
    check_bound(settings, [sock])
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
