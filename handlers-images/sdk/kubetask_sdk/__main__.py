"""`python -m kubetask_sdk <module | path/to/handler.py>`: import the handlers, then `run()`."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from typing import NoReturn

from kubetask_sdk.errors import EXIT_NON_RETRYABLE
from kubetask_sdk.result import encode_error, write_termination_message
from kubetask_sdk.runner import run

USAGE = "usage: python -m kubetask_sdk <module | path/to/handler.py>"


def load(target: str) -> None:
    """Import `target`, a module name or a .py file, so that its @task functions register."""
    if target.endswith(".py") or os.sep in target:
        path = os.path.abspath(target)
        sys.path.insert(0, os.path.dirname(path))  # the handler's sibling modules stay importable
        spec = importlib.util.spec_from_file_location("kubetask_handler", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        importlib.import_module(target)


def main(argv: list[str]) -> NoReturn:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr)
        sys.exit(0 if argv[:1] in (["-h"], ["--help"]) else 2)
    try:
        load(argv[0])
    except Exception as e:  # noqa: BLE001 - a broken image does not get better on retry
        traceback.print_exc()
        message = f"cannot load the handler {argv[0]}: {traceback.format_exception_only(type(e), e)[-1].strip()}"
        write_termination_message(encode_error(message, "NonRetryableError"))
        sys.exit(EXIT_NON_RETRYABLE)
    run()


if __name__ == "__main__":
    main(sys.argv[1:])
