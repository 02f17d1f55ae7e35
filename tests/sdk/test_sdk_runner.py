"""The handler contract, end to end: real handler processes, their exit codes and termination messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdk_harness import Handlers

RETURN_PARAMS = """
    from kubetask_sdk import task, run

    @task("probe")
    def probe(params, ctx):
        return {"params": params, "name": ctx.name, "namespace": ctx.namespace,
                "type": ctx.task_type, "run": ctx.run}

    if __name__ == "__main__":
        run()
"""


@pytest.fixture
def probe(handlers: Handlers) -> Path:
    return handlers.script(RETURN_PARAMS)


def test_parameters_from_env_and_result_in_termination_file(handlers: Handlers, probe: Path) -> None:
    out = handlers.run(probe, {"a": 1, "b": ["x", None], "ü": "é"}, KUBETASK_TASK_TYPE="probe", KUBETASK_RUN="3")
    assert out.returncode == 0, out.stderr
    assert out.result == {"params": {"a": 1, "b": ["x", None], "ü": "é"}, "name": "demo",
                          "namespace": "team-a", "type": "probe", "run": 3}
    assert out.result_text is not None and "\n" not in out.result_text  # compact JSON


def test_parameters_file_wins_over_env(handlers: Handlers, probe: Path) -> None:
    out = handlers.run(probe, {"from": "file"}, via="file", KUBETASK_PARAMETERS='{"from": "env"}')
    assert out.returncode == 0, out.stderr
    assert out.result["params"] == {"from": "file"}


def test_empty_parameters_file_falls_back_to_env(handlers: Handlers, probe: Path) -> None:
    out = handlers.run(probe, "", via="file", KUBETASK_PARAMETERS='{"from": "env"}')
    assert out.result["params"] == {"from": "env"}


def test_no_parameters_is_an_empty_object(handlers: Handlers, probe: Path) -> None:
    out = handlers.run(probe)
    assert out.returncode == 0, out.stderr
    assert out.result["params"] == {}


@pytest.mark.parametrize(("params", "fragment"), [
    ('{"a": ', "not valid JSON"),
    ("[1, 2]", "must be a JSON object, not list"),
])
def test_bad_parameters_are_not_retryable(handlers: Handlers, probe: Path, params: str, fragment: str) -> None:
    out = handlers.run(probe, params)
    assert out.returncode == 65
    assert out.result["type"] == "InvalidParametersError"
    assert fragment in out.result["error"]


def test_none_result_writes_null(handlers: Handlers) -> None:
    script = handlers.script("""
        from kubetask_sdk import task, run
        @task("nothing")
        def nothing(params, ctx):
            return None
        run()
    """)
    out = handlers.run(script)
    assert out.returncode == 0
    assert out.result_text == "null"


def test_unexpected_exception_is_retryable_exit_1(handlers: Handlers) -> None:
    script = handlers.script("""
        from kubetask_sdk import task, run
        @task("boom")
        def boom(params, ctx):
            raise ValueError("disk on fire")
        run()
    """)
    out = handlers.run(script)
    assert out.returncode == 1
    assert out.result == {"error": "ValueError: disk on fire", "type": "ValueError"}
    assert "Traceback (most recent call last)" in out.stderr
    assert 'raise ValueError("disk on fire")' in out.stderr  # the full traceback, with the source line


def test_non_retryable_error_exit_65(handlers: Handlers) -> None:
    script = handlers.script("""
        from kubetask_sdk import task, run, NonRetryableError, EXIT_NON_RETRYABLE
        assert EXIT_NON_RETRYABLE == 65
        @task("fatal")
        def fatal(params, ctx):
            raise NonRetryableError("input bucket does not exist")
        run()
    """)
    out = handlers.run(script)
    assert out.returncode == 65
    assert out.result == {"error": "input bucket does not exist", "type": "NonRetryableError"}
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(("length", "code"), [(4094, 0), (4095, 65)])
def test_result_size_limit_is_4096_bytes(handlers: Handlers, length: int, code: int) -> None:
    script = handlers.script(f"""
        from kubetask_sdk import task, run
        @task("big")
        def big(params, ctx):
            return "x" * {length}   # JSON adds two quotes
        run()
    """)
    out = handlers.run(script)
    assert out.returncode == code, out.stderr
    if code == 0:
        assert out.result_text is not None and len(out.result_text.encode()) == 4096
    else:
        assert out.result["type"] == "ResultTooLargeError"


def test_oversized_result_is_a_clear_non_retryable_error(handlers: Handlers) -> None:
    script = handlers.script("""
        from kubetask_sdk import task, run
        @task("big")
        def big(params, ctx):
            return {"rows": ["é" * 100] * 100}
        run()
    """)
    out = handlers.run(script)
    assert out.returncode == 65
    error = out.result
    assert error["type"] == "ResultTooLargeError"
    size = len(json.dumps({"rows": ["é" * 100] * 100}, ensure_ascii=False, separators=(",", ":")).encode())
    assert f"result is {size} bytes" in error["error"]  # bytes, not characters
    assert "at most 4096" in error["error"]
    assert '"output": "s3://bucket/key"' in error["error"]
    assert "ResultTooLargeError" in out.stderr
    assert out.result_text is not None and len(out.result_text.encode()) <= 4096


def test_result_that_is_not_json_is_non_retryable(handlers: Handlers) -> None:
    script = handlers.script("""
        from kubetask_sdk import task, run
        @task("odd")
        def odd(params, ctx):
            return {"values": {1, 2}}
        run()
    """)
    out = handlers.run(script)
    assert out.returncode == 65
    assert "not JSON-serializable" in out.result["error"]


def test_long_error_messages_are_cut_to_fit(handlers: Handlers) -> None:
    script = handlers.script("""
        from kubetask_sdk import task, run, NonRetryableError
        @task("chatty")
        def chatty(params, ctx):
            raise NonRetryableError('"quoted" ' * 2000)
        run()
    """)
    out = handlers.run(script)
    assert out.returncode == 65
    assert out.result_text is not None and len(out.result_text.encode()) <= 4096
    assert out.result["error"].startswith('"quoted" "quoted"')


MULTI = """
    from kubetask_sdk import task, run
    @task("resize")
    def resize(params, ctx):
        return "resize"
    @task("thumbnail")
    def thumbnail(params, ctx):
        return "thumbnail"
    run()
"""


def test_dispatch_on_task_type(handlers: Handlers) -> None:
    script = handlers.script(MULTI)
    assert handlers.run(script, KUBETASK_TASK_TYPE="thumbnail").result == "thumbnail"
    assert handlers.run(script, KUBETASK_TASK_TYPE="resize").result == "resize"


def test_unknown_task_type_is_non_retryable(handlers: Handlers) -> None:
    out = handlers.run(handlers.script(MULTI), KUBETASK_TASK_TYPE="transcode")
    assert out.returncode == 65
    assert out.result == {"error": "unknown task type 'transcode'; this image handles: resize, thumbnail",
                          "type": "UnknownTaskTypeError"}


def test_single_handler_runs_whatever_the_type_name(handlers: Handlers, probe: Path) -> None:
    out = handlers.run(probe, KUBETASK_TASK_TYPE="probe-large")
    assert out.returncode == 0
    assert out.result["type"] == "probe-large"


def test_no_handler_registered(handlers: Handlers) -> None:
    out = handlers.run(handlers.script("from kubetask_sdk import run\nrun()\n"))
    assert out.returncode == 65
    assert "no task handler is registered" in out.result["error"]


def test_bad_run_index_defaults_to_zero_with_a_warning(handlers: Handlers, probe: Path) -> None:
    out = handlers.run(probe, KUBETASK_RUN="three")
    assert out.returncode == 0
    assert out.result["run"] == 0
    assert any("KUBETASK_RUN" in w for w in out.warnings())


def test_python_dash_m_with_a_path(handlers: Handlers) -> None:
    script = handlers.script("""
        from kubetask_sdk import task
        import helper
        @task("via-m")
        def via_m(params, ctx):
            return helper.double(params["n"])
        # no run() here: `python -m kubetask_sdk` calls it
    """, name="main_handler.py")
    (handlers.tmp / "helper.py").write_text("def double(n):\n    return 2 * n\n")
    out = handlers.run(script, {"n": 21}, module=True)
    assert out.returncode == 0, out.stderr
    assert out.result == 42


def test_python_dash_m_with_a_module_name(handlers: Handlers) -> None:
    handlers.script("""
        from kubetask_sdk import task
        @task("by-name")
        def by_name(params, ctx):
            return "by-name"
    """, name="my_handlers.py")
    out = handlers.run("my_handlers", module=True, PYTHONPATH=str(handlers.tmp))
    assert out.returncode == 0, out.stderr
    assert out.result == "by-name"


def test_python_dash_m_with_a_broken_module(handlers: Handlers) -> None:
    script = handlers.script("import no_such_dependency_xyz\n", name="broken.py")
    out = handlers.run(script, module=True)
    assert out.returncode == 65
    assert "No module named 'no_such_dependency_xyz'" in out.result["error"]


def test_python_dash_m_usage(handlers: Handlers) -> None:
    out = handlers.run("--help", module=True)
    assert out.returncode == 0
    assert "usage: python -m kubetask_sdk" in out.stderr


# --- SIGTERM -----------------------------------------------------------------------------------

COOPERATIVE = """
    import pathlib, sys
    from kubetask_sdk import task, run, on_shutdown

    tmp = pathlib.Path(sys.argv[0]).parent

    @on_shutdown
    def first():
        (tmp / "hook-1").write_text("ran")

    @task("long")
    def long(params, ctx):
        ctx.on_shutdown(lambda: (tmp / "hook-2").write_text("ran"))
        (tmp / "ready").write_text("")
        for _ in range(600):
            if ctx.cancelled.wait(0.1):
                (tmp / "saw-cancel").write_text("yes")
                return {"partial": True}
        return {"partial": False}

    run()
"""


def test_sigterm_runs_hooks_sets_cancelled_and_exits_143(handlers: Handlers) -> None:
    script = handlers.script(COOPERATIVE)
    proc = handlers.start(script)
    out = handlers.terminate(proc, handlers.tmp / "ready")
    assert out.returncode == 143, out.stderr
    assert (handlers.tmp / "hook-1").read_text() == "ran"
    assert (handlers.tmp / "hook-2").read_text() == "ran"
    assert (handlers.tmp / "saw-cancel").read_text() == "yes"
    assert out.elapsed < 5  # it returned as soon as it saw ctx.cancelled, not after the grace
    assert out.result["type"] == "Terminated"  # not the handler's partial result
    assert "SIGTERM" in out.result["error"]


def test_sigterm_handler_that_ignores_cancel_is_stopped_after_the_grace(handlers: Handlers) -> None:
    script = handlers.script("""
        import pathlib, sys, time
        from kubetask_sdk import task, run, on_shutdown
        tmp = pathlib.Path(sys.argv[0]).parent

        @on_shutdown
        def broken():
            raise RuntimeError("hook bug")

        @on_shutdown
        def marker():
            (tmp / "hook").write_text("ran")

        @task("stubborn")
        def stubborn(params, ctx):
            (tmp / "ready").write_text("")
            time.sleep(60)   # ignores ctx.cancelled
            return "finished"
        run()
    """)
    proc = handlers.start(script, KUBETASK_SHUTDOWN_GRACE_SECONDS="0.3")
    out = handlers.terminate(proc, handlers.tmp / "ready")
    assert out.returncode == 143
    assert (handlers.tmp / "hook").read_text() == "ran"  # a failing hook does not skip the next
    assert "hook bug" in out.stderr
    assert 0.25 < out.elapsed < 5
    assert out.result["type"] == "Terminated"


def test_sigterm_after_the_result_is_ignored(handlers: Handlers) -> None:
    # A SIGTERM that arrives while the process exits must not turn success into 143.
    script = handlers.script("""
        import os, signal
        from kubetask_sdk import task, main
        @task("quick")
        def quick(params, ctx):
            return "done"
        code = main()
        os.kill(os.getpid(), signal.SIGTERM)   # handled by the SDK's handler: ignored now
        raise SystemExit(code)
    """)
    out = handlers.run(script)
    assert out.returncode == 0, out.stderr
    assert out.result == "done"
