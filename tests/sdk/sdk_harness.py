"""Helpers for the handler SDK tests: run handlers as real subprocesses, fake the API server.

Nothing here needs a cluster. Handlers run with `sys.executable` (the repo's .venv python), with
the Task environment the operator would set and KUBETASK_RESULT_FILE pointing into tmp_path.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pytest

REPO = Path(__file__).resolve().parents[2]
HANDLERS = REPO / "handlers-images"
EXAMPLES = HANDLERS / "examples"
PYTHON = sys.executable


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    result_text: str | None
    elapsed: float

    @property
    def result(self) -> Any:
        assert self.result_text is not None, f"no termination message written; stderr:\n{self.stderr}"
        return json.loads(self.result_text)

    def warnings(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("kubetask-sdk: warning:")]


@dataclass
class Handlers:
    """Builds a handler environment and runs handler scripts in subprocesses."""

    tmp: Path
    env: dict[str, str]
    result_file: Path

    def script(self, source: str, name: str = "handler.py") -> Path:
        path = self.tmp / name
        path.write_text(textwrap.dedent(source))
        return path

    def command(self, target: Path | str, module: bool = False) -> list[str]:
        if module:
            return [PYTHON, "-m", "kubetask_sdk", str(target)]
        return [PYTHON, str(target)]

    def environ(self, params: Any = None, via: str = "env", more: Mapping[str, str] | None = None,
                **extra: str) -> dict[str, str]:
        env = dict(self.env)
        if params is not None:
            text = params if isinstance(params, str) else json.dumps(params)
            if via == "env":
                env["KUBETASK_PARAMETERS"] = text
            else:
                path = self.tmp / "parameters.json"
                path.write_text(text)
                env["KUBETASK_PARAMETERS_FILE"] = str(path)
        env.update(more or {})
        env.update(extra)
        return env

    def run(self, target: Path | str, params: Any = None, *, via: str = "env", module: bool = False,
            timeout: float = 20, env: Mapping[str, str] | None = None, **extra: str) -> Run:
        self.result_file.unlink(missing_ok=True)
        started = time.monotonic()
        proc = subprocess.run(self.command(target, module), env=self.environ(params, via, env, **extra),
                              capture_output=True, text=True, timeout=timeout, cwd=self.tmp)
        return self._done(proc.returncode, proc.stdout, proc.stderr, started)

    def start(self, target: Path | str, params: Any = None, env: Mapping[str, str] | None = None,
              **extra: str) -> subprocess.Popen[str]:
        self.result_file.unlink(missing_ok=True)
        return subprocess.Popen(self.command(target), env=self.environ(params, "env", env, **extra), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self.tmp)

    def terminate(self, proc: subprocess.Popen[str], ready: Path | Callable[[], bool], timeout: float = 15) -> Run:
        """Wait until the handler is running (`ready` exists or returns True), send SIGTERM, collect the outcome."""
        is_ready = ready.exists if isinstance(ready, Path) else ready
        deadline = time.monotonic() + 10
        while not is_ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                out, err = proc.communicate()
                pytest.fail(f"handler never became ready (rc={proc.returncode}):\n{err}")
            time.sleep(0.02)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"handler did not exit after SIGTERM:\n{err}")
        return self._done(proc.returncode, out, err, started)

    def _done(self, returncode: int, stdout: str, stderr: str, started: float) -> Run:
        text = self.result_file.read_text() if self.result_file.exists() else None
        return Run(returncode, stdout, stderr, text, time.monotonic() - started)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeApiServer:
    """A stand-in for the Kubernetes API: records requests, answers `status`."""

    url: str
    token_file: Path
    requests: list[Request] = field(default_factory=list)
    status: int = 200
    answers: list[tuple[int, str]] = field(default_factory=list)  # (status, message) for the next requests, before `status`

    def env(self) -> dict[str, str]:
        return {"KUBETASK_API_URL": self.url, "KUBETASK_TOKEN_FILE": str(self.token_file)}


def example(name: str) -> Path:
    """The handler.py of an example in handlers-images/examples/."""
    return EXAMPLES / name / "handler.py"
