"""Fixtures for the handler SDK tests (helpers live in sdk_harness.py, a name no other folder uses)."""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from sdk_harness import FakeApiServer, Handlers, Request


@pytest.fixture
def handlers(tmp_path: Path) -> Handlers:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBETASK_", "KUBERNETES_"))}
    result_file = tmp_path / "termination-log"
    env.update({
        "KUBETASK_TASK_NAME": "demo",
        "KUBETASK_TASK_NAMESPACE": "team-a",
        "KUBETASK_RUN": "0",
        "KUBETASK_RESULT_FILE": str(result_file),
        # Never read the real pod paths, whatever the machine running the tests has there.
        "KUBETASK_PARAMETERS_FILE": str(tmp_path / "no-parameters.json"),
        "KUBETASK_TOKEN_FILE": str(tmp_path / "no-token"),
        "KUBETASK_CA_FILE": str(tmp_path / "no-ca.crt"),
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return Handlers(tmp_path, env, result_file)


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[FakeApiServer]:
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t-token\n")  # the trailing newline must not reach the header
    state: list[FakeApiServer] = []

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            server = state[0]
            server.requests.append(Request(self.command, self.path, dict(self.headers.items()), body, time.monotonic()))
            status, message = server.answers.pop(0) if server.answers else (server.status, 'tasks.kubetask.io "demo" is forbidden')
            payload = json.dumps({"kind": "Status", "message": message}).encode() if status >= 400 else body
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_PATCH = do_GET = do_POST = do_PUT = _record

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.append(FakeApiServer(f"http://127.0.0.1:{httpd.server_address[1]}", token_file))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state[0]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def free_port() -> int:
    """A port with nothing listening on it (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port

