"""`kubetask-gateway`: serve the REST gateway with uvicorn. Configuration: KUBETASK_GATEWAY_* (see settings.py)."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError

from kubetask.api.app import create_app
from kubetask.api.settings import GatewaySettings


def load_settings() -> GatewaySettings:
    try:
        return GatewaySettings()
    except ValidationError as error:
        problems = "\n".join(f"  {'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
                             for e in error.errors())
        print(f"kubetask-gateway: refusing to start, invalid settings:\n{problems}", file=sys.stderr)
        raise SystemExit(2) from None


def main() -> None:
    settings = load_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per API request otherwise
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                access_log=settings.access_log, proxy_headers=False, timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
