"""`run()`: read the Task's environment, call the handler, write the result, exit with the right code.

Exit codes: 0 success; 1 unexpected exception (retryable); 65 `NonRetryableError`, unknown task
type, bad parameters or a result over 4096 bytes; 143 SIGTERM (cancel or timeout).

On SIGTERM the SDK sets `ctx.cancelled`, runs the shutdown hooks in registration order and gives
the handler until KUBETASK_SHUTDOWN_GRACE_SECONDS (default 10) after the signal to return; then, or
as soon as the handler returns, the process exits with 143. Keep the grace below the pod's
terminationGracePeriodSeconds (30 by default), after which the kubelet sends SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from types import FrameType
from typing import Any, Mapping, NoReturn

from kubetask_sdk.context import Context, shutdown_hooks
from kubetask_sdk.errors import (
    EXIT_NON_RETRYABLE,
    EXIT_RETRYABLE,
    EXIT_SUCCESS,
    EXIT_TERMINATED,
    InvalidParametersError,
    NonRetryableError,
)
from kubetask_sdk.progress import ProgressReporter, warn
from kubetask_sdk.registry import resolve
from kubetask_sdk.result import encode_error, encode_result, write_termination_message

DEFAULT_PARAMETERS_FILE = "/etc/kubetask/parameters.json"
DEFAULT_SHUTDOWN_GRACE = 10.0
TERMINATED_MESSAGE = "terminated by SIGTERM: the Task was cancelled or timed out"


def log(message: str) -> None:
    print(f"kubetask-sdk: {message}", file=sys.stderr, flush=True)


def load_parameters(env: Mapping[str, str]) -> dict[str, Any]:
    """The parameters object: from KUBETASK_PARAMETERS_FILE if it exists and is not empty, else
    from KUBETASK_PARAMETERS, else `{}`. Anything but a JSON object raises InvalidParametersError."""
    path = env.get("KUBETASK_PARAMETERS_FILE") or DEFAULT_PARAMETERS_FILE
    text, source = "", ""
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                text, source = f.read(), path
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidParametersError(f"cannot read the parameters file {path}: {e}") from e
    if not text.strip():
        text, source = env.get("KUBETASK_PARAMETERS", ""), "KUBETASK_PARAMETERS"
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidParametersError(f"the parameters in {source} are not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise InvalidParametersError(f"the parameters in {source} must be a JSON object, not {type(value).__name__}")
    return value


def load_item(env: Mapping[str, str]) -> tuple[int | None, dict[str, Any] | None]:
    """A fan-out pod's (index, item): items[JOB_COMPLETION_INDEX] of the list in
    KUBETASK_ITEMS_FILE (the Job controller sets JOB_COMPLETION_INDEX). (None, None) for a Task
    without items. A missing or unreadable list, or an index outside it, raises
    InvalidParametersError: the pod cannot know what to work on."""
    path = env.get("KUBETASK_ITEMS_FILE")
    if not path:
        return None, None
    raw_index = env.get("JOB_COMPLETION_INDEX", "")
    if not raw_index.isdigit():
        raise InvalidParametersError(f"KUBETASK_ITEMS_FILE is set but JOB_COMPLETION_INDEX is {raw_index!r}, not an index")
    index = int(raw_index)
    try:
        with open(path, encoding="utf-8") as f:
            items = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidParametersError(f"cannot read the items file {path}: {e}") from e
    if not isinstance(items, list):
        raise InvalidParametersError(f"the items in {path} must be a JSON list, not {type(items).__name__}")
    if index >= len(items):
        raise InvalidParametersError(f"JOB_COMPLETION_INDEX {index} is outside the {len(items)} items in {path}")
    item = items[index]
    if not isinstance(item, dict):
        raise InvalidParametersError(f"item {index} in {path} must be a JSON object, not {type(item).__name__}")
    return index, item


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    try:
        return float(env.get(key, default))
    except ValueError:
        warn(f"{key}={env[key]!r} is not a number; using {default}")
        return default


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    try:
        return int(env.get(key, default))
    except ValueError:
        warn(f"{key}={env[key]!r} is not an integer; using {default}")
        return default


class _Runner:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.reporter = ProgressReporter(env.get("KUBETASK_TASK_NAME", ""), env.get("KUBETASK_TASK_NAMESPACE", ""), env)
        self.ctx = Context(
            name=env.get("KUBETASK_TASK_NAME", ""),
            namespace=env.get("KUBETASK_TASK_NAMESPACE", ""),
            task_type=env.get("KUBETASK_TASK_TYPE", ""),
            run=_int(env, "KUBETASK_RUN", 0),
            reporter=self.reporter,
        )
        self.grace = _float(env, "KUBETASK_SHUTDOWN_GRACE_SECONDS", DEFAULT_SHUTDOWN_GRACE)
        self.finished = False  # the outcome is decided; a late SIGTERM is ignored
        self.terminated = False  # SIGTERM arrived first

    # The signal handler runs in the main thread between two bytecodes of the handler, so the
    # flags need no lock: the main path sets `finished` before it looks at `terminated`.
    def on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if self.finished or self.terminated:
            return
        self.terminated = True
        self.ctx.cancelled.set()
        write_termination_message(encode_error(TERMINATED_MESSAGE, "Terminated"))
        hooks = shutdown_hooks()
        log(f"SIGTERM received: running {len(hooks)} shutdown hook(s); exiting with {EXIT_TERMINATED} "
            f"when the handler returns or after {self.grace:g}s")
        threading.Thread(target=self._force_exit, name="kubetask-shutdown", daemon=True).start()
        for hook in hooks:
            try:
                hook()
            except Exception:  # noqa: BLE001 - one broken hook must not skip the others
                log(f"shutdown hook {getattr(hook, '__name__', hook)!r} failed:")
                traceback.print_exc()

    def _force_exit(self) -> None:
        time.sleep(max(0.0, self.grace))
        log(f"the handler did not return within {self.grace:g}s of SIGTERM; exiting with {EXIT_TERMINATED}")
        self.reporter.flush(timeout=0.5)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_TERMINATED)

    def _outcome(self, code: int, data: bytes) -> int:
        self.finished = True
        if self.terminated:
            self.reporter.flush(timeout=1.0)
            return EXIT_TERMINATED
        self.reporter.flush()
        write_termination_message(data)
        return code

    def main(self) -> int:
        try:
            signal.signal(signal.SIGTERM, self.on_sigterm)
        except ValueError:  # not the main thread: leave SIGTERM alone
            warn("run() is not in the main thread; SIGTERM will not run shutdown hooks")
        started = time.monotonic()
        try:
            name, handler = resolve(self.ctx.task_type or None)
            self.ctx.task_type = self.ctx.task_type or name
            params = load_parameters(self.env)
            self.ctx.index, self.ctx.item = load_item(self.env)
            if self.ctx.item is not None:
                params = {**params, **self.ctx.item}  # the item's keys win over the shared parameters
            if self.terminated:  # SIGTERM before the handler started: do not start it
                return self._outcome(EXIT_TERMINATED, b"")
            item = f", item {self.ctx.index}" if self.ctx.index is not None else ""
            log(f"running {name} for task {self.ctx.namespace or '-'}/{self.ctx.name or '-'} (run {self.ctx.run}{item})")
            data = encode_result(handler(params, self.ctx))
        except NonRetryableError as e:
            log(f"{type(e).__name__}: {e}")
            return self._outcome(EXIT_NON_RETRYABLE, encode_error(str(e), type(e).__name__))
        except Exception as e:  # noqa: BLE001 - any other failure is worth a retry
            traceback.print_exc()
            last_line = traceback.format_exception_only(type(e), e)[-1].strip()
            return self._outcome(EXIT_RETRYABLE, encode_error(last_line, type(e).__name__))
        code = self._outcome(EXIT_SUCCESS, data)
        if code == EXIT_SUCCESS:
            log(f"done in {time.monotonic() - started:.3f}s; result is {len(data)} bytes")
        return code


def main(env: Mapping[str, str] | None = None) -> int:
    """Run the registered handler for this pod's Task and return the exit code."""
    return _Runner(os.environ if env is None else env).main()


def run() -> NoReturn:
    """Run the handler named by KUBETASK_TASK_TYPE (or the only registered one) and exit."""
    sys.exit(main())
