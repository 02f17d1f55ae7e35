"""Each example handler in handlers-images/examples, run as its image would run it."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import subprocess
import textwrap

import pytest

from sdk_harness import PYTHON, FakeApiServer, Handlers, example


# --- echo --------------------------------------------------------------------------------------

def test_echo_returns_its_parameters(handlers: Handlers) -> None:
    params = {"message": "hello", "tags": ["a"], "data": {"n": 1}}
    out = handlers.run(example("echo"), params, via="file", KUBETASK_TASK_TYPE="echo", KUBETASK_RUN="2")
    assert out.returncode == 0, out.stderr
    assert out.result == {"echo": params, "task": "demo", "run": 2}


def test_echo_as_the_image_runs_it(handlers: Handlers) -> None:
    # The base image's entrypoint: python -m kubetask_sdk /opt/kubetask/handler/handler.py
    out = handlers.run(example("echo"), {"message": "hi"}, module=True)
    assert out.returncode == 0, out.stderr
    assert out.result["echo"] == {"message": "hi"}


def test_echo_upper_uppercases_string_values(handlers: Handlers) -> None:
    params = {"message": "hello", "tags": ["a", "b"], "data": {"Key": "value", "n": 1, "ok": True}, "upper": True}
    out = handlers.run(example("echo"), params)
    assert out.returncode == 0, out.stderr
    assert out.result["echo"] == {"message": "HELLO", "tags": ["A", "B"], "data": {"Key": "VALUE", "n": 1, "ok": True}}


# --- progress ----------------------------------------------------------------------------------

def test_progress_reports_every_step(handlers: Handlers, api_server: FakeApiServer) -> None:
    out = handlers.run(example("progress"), {"steps": 4, "sleepSeconds": 0.2}, env=api_server.env())
    assert out.returncode == 0, out.stderr
    assert out.result == {"steps": 4, "completedSteps": 4, "cancelled": False}
    sent = [r.json()["status"]["progress"] for r in api_server.requests]
    assert sent[-1]["percent"] == 100 and sent[-1]["message"] == "step 4/4"  # the last value is flushed
    assert [p["percent"] for p in sent] == sorted(p["percent"] for p in sent)
    assert len(sent) >= 2


def test_progress_stops_on_sigterm(handlers: Handlers, api_server: FakeApiServer) -> None:
    proc = handlers.start(example("progress"), {"steps": 100, "sleepSeconds": 0.05}, env=api_server.env())
    # SIGTERM once the second report (a completed step) reached the API: the handler is mid-loop.
    out = handlers.terminate(proc, lambda: len(api_server.requests) >= 2)
    assert out.returncode == 143, out.stderr
    assert out.elapsed < 3  # ctx.cancelled.wait() woke it at once; no waiting for the grace
    steps = re.search(r"progress: shutting down after (\d+) step", out.stderr)  # its @on_shutdown hook
    assert steps and 1 <= int(steps.group(1)) < 100, out.stderr
    assert out.result["type"] == "Terminated"


# --- flaky -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("mode", "code", "error_type"), [
    ("ok", 0, None),
    ("retryable", 1, "FlakyError"),
    ("fatal", 65, "NonRetryableError"),
    ("sideways", 65, "NonRetryableError"),
])
def test_flaky_modes(handlers: Handlers, mode: str, code: int, error_type: str | None) -> None:
    out = handlers.run(example("flaky"), {"mode": mode, "message": "planned failure"})
    assert out.returncode == code, out.stderr
    if error_type is None:
        assert out.result == {"mode": "ok", "run": 0, "ok": True}
    else:
        assert out.result["type"] == error_type
        assert ("planned failure" if mode != "sideways" else "unknown mode") in out.result["error"]


def test_flaky_succeeds_from_a_later_rerun(handlers: Handlers) -> None:
    params = {"mode": "fatal", "succeedFromRun": 1}
    assert handlers.run(example("flaky"), params, KUBETASK_RUN="0").returncode == 65
    later = handlers.run(example("flaky"), params, KUBETASK_RUN="1")
    assert later.returncode == 0
    assert later.result == {"mode": "fatal", "run": 1, "ok": True}


# --- cpu-burn ----------------------------------------------------------------------------------

def test_cpu_burn_sha256_iterations(handlers: Handlers) -> None:
    out = handlers.run(example("cpu-burn"), {"algorithm": "sha256", "iterations": 2500})
    assert out.returncode == 0, out.stderr
    digest = b"kubetask"
    for _ in range(2500):
        digest = hashlib.sha256(digest).digest()
    assert out.result["iterations"] == 2500
    assert out.result["lastDigest"] == digest.hex()


def test_cpu_burn_primes_iterations(handlers: Handlers) -> None:
    out = handlers.run(example("cpu-burn"), {"algorithm": "primes", "iterations": 1000})
    assert out.returncode == 0, out.stderr
    assert out.result["primes"] == 168  # primes below 1000
    assert out.result["iterations"] == 1000


def test_cpu_burn_for_seconds(handlers: Handlers) -> None:
    out = handlers.run(example("cpu-burn"), {"algorithm": "sha256", "seconds": 0.2})
    assert out.returncode == 0, out.stderr
    assert 0.2 <= out.result["elapsedSeconds"] < 2
    assert out.result["iterations"] > 0 and out.result["iterationsPerSecond"] > 0


def test_cpu_burn_rejects_seconds_and_iterations(handlers: Handlers) -> None:
    out = handlers.run(example("cpu-burn"), {"algorithm": "sha256", "seconds": 1, "iterations": 5})
    assert out.returncode == 65
    assert "not both" in out.result["error"]


# --- gpu-matmul --------------------------------------------------------------------------------

def test_gpu_matmul_imports_without_torch() -> None:
    code = textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("gpu_matmul", {str(example("gpu-matmul"))!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        from kubetask_sdk import registered
        assert registered() == ["gpu-matmul"], registered()
        assert "torch" not in sys.modules, "torch must be imported lazily"
    """)
    subprocess.run([PYTHON, "-c", code], check=True, timeout=20)


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed here")
def test_gpu_matmul_without_torch_is_a_clear_non_retryable_error(handlers: Handlers) -> None:
    out = handlers.run(example("gpu-matmul"), {"n": 64, "iterations": 1})
    assert out.returncode == 65
    assert out.result["type"] == "NonRetryableError"
    assert "PyTorch is not installed" in out.result["error"]


def test_gpu_matmul_without_a_gpu_is_a_clear_non_retryable_error(handlers: Handlers) -> None:
    # A stand-in torch whose CUDA is unavailable, as on a node without a GPU.
    fake = handlers.tmp / "fake-torch" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("class cuda:\n    @staticmethod\n    def is_available():\n        return False\n")
    out = handlers.run(example("gpu-matmul"), {"n": 64}, PYTHONPATH=str(fake.parent))
    assert out.returncode == 65
    assert out.result["type"] == "NonRetryableError"
    assert "no CUDA GPU is visible" in out.result["error"]
    assert "resources.gpu" in out.result["error"]
