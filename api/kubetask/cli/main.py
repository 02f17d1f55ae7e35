"""`kubetask`: submit, inspect, follow, cancel and retry Tasks (and operate TaskSchedules) through the kubetask gateway.

Exit codes: 0 success; 1 the Task failed or was cancelled (watch, submit --watch, retry --watch), or the
TaskGroup Failed (groups watch);
2 usage or configuration error; 3 the gateway answered with an error; 4 the gateway could not be
reached; 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, TextIO

import httpx

from kubetask.cli import render
from kubetask.cli.client import ApiError, ConnectionFailed, Gateway
from kubetask.cli.config import ConfigError, Settings, resolve
from kubetask.cli.submission import (
    Manifest, Overrides, UsageError, load_items, load_manifests, load_parameters, parse_annotations, parse_duration, parse_labels,
    parse_params,
)

EXIT_OK = 0
EXIT_TASK_FAILED = 1
EXIT_USAGE = 2
EXIT_API = 3
EXIT_UNREACHABLE = 4
EXIT_INTERRUPTED = 130

PHASES = ("Pending", "Queued", "Running", "Succeeded", "Failed", "Cancelled")
RECONNECTS = 5

EPILOG = """\
settings (first found wins): flags, then KUBETASK_GATEWAY_URL / KUBETASK_TOKEN / KUBETASK_NAMESPACE,
then the config file ($KUBETASK_CONFIG, default ~/.config/kubetask/config.yaml), then defaults
(http://127.0.0.1:8000; the token's ServiceAccount namespace, else `default`).

exit codes: 0 ok; 1 the Task failed or was cancelled (watch), or the TaskGroup Failed (groups watch); 2 usage or configuration error;
3 the gateway answered with an error; 4 the gateway could not be reached; 130 interrupted.

examples:
  kubetask submit --type resize --param width=640 --param 'opts={"fast": true}' --watch
  kubetask submit -f task.yaml
  kubetask list --phase Failed -l team=a
  kubetask watch resize-1001
  kubetask logs resize-1001 -f
  kubetask schedules get nightly-report
  kubetask schedules trigger nightly-report --watch
  kubetask deadletter --queue default
  kubetask deadletter rerun --all --reason BackoffLimitExceeded
  kubetask submit -f images.yaml --group resize-all --callback-type collect --watch
  kubetask groups get resize-all
"""


class Parser(argparse.ArgumentParser):
    """argparse, with errors raised (and printed by run()) instead of exiting the process."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.format_usage().rstrip()}\n{self.prog}: error: {message}")


@dataclass
class Context:
    settings: Settings
    out: TextIO
    err: TextIO
    transport: httpx.BaseTransport | None = None
    color: bool = False
    unicode: bool = True
    tty: bool = False
    columns: int = 100
    sleep: Callable[[float], None] = time.sleep
    clients: list[Gateway] = field(default_factory=list)
    stdin: TextIO | None = None  # where confirmations are read (deadletter rerun --all)

    def gateway(self) -> Gateway:
        client = Gateway(self.settings, self.transport)
        self.clients.append(client)
        return client

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()


# --- argument parsing -------------------------------------------------------------------------

def _globals(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("connection (also KUBETASK_* variables or the config file)")
    group.add_argument("--gateway", metavar="URL", default=default, help="the gateway's base URL (KUBETASK_GATEWAY_URL)")
    group.add_argument("--token", default=default, help="a Kubernetes bearer token (KUBETASK_TOKEN)")
    group.add_argument("--token-file", metavar="PATH", default=default, help="read the token from a file (KUBETASK_TOKEN_FILE)")
    group.add_argument("-n", "--namespace", default=default, help="the namespace (KUBETASK_NAMESPACE)")
    group.add_argument("--ca-file", metavar="PATH", default=default, help="CA bundle to verify the gateway's TLS certificate (KUBETASK_CA_FILE)")


def _phase(text: str) -> str:
    for phase in PHASES:
        if phase.lower() == text.lower():
            return phase
    raise argparse.ArgumentTypeError(f"invalid phase {text!r} (choose from {', '.join(PHASES)})")


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _exit_codes(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of exit codes") from None


def _positive(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names no Task (use a,b,c)")
    return names


def build_parser() -> Parser:
    common = Parser(add_help=False)
    _globals(common, suppress=True)
    parser = Parser(prog="kubetask", description="Submit, inspect, follow, cancel and retry kubetask Tasks through the gateway.",
                    epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"kubetask {_version()}")
    _globals(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)

    def command(name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help, description=description or help,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    def output(p: argparse.ArgumentParser, choices: Sequence[str] = ("json", "yaml")) -> None:
        p.add_argument("-o", "--output", choices=list(choices), help="print the answer in this format")

    p = command("submit", "submit a Task (from flags, or -f a Task manifest)", description=(
        "Submit a Task. From flags (--type and the rest), or from a file of Task manifests (-f; several documents\n"
        "are submitted as one all-or-nothing batch); flags given with -f override what the file says.\n\n"
        "--param values are JSON when they parse as JSON (n=7 is a number, flag=true a boolean,\n"
        "'tags=[\"a\"]' a list), else strings; quote to force a string: 'id=\"007\"'."))
    p.add_argument("-f", "--filename", metavar="FILE", help="a YAML/JSON file of Task manifests ('-' reads stdin)")
    p.add_argument("--type", "-t", dest="task_type", metavar="TYPE", help="the TaskType")
    p.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE", help="a parameter (repeatable)")
    p.add_argument("--parameters-file", metavar="FILE", help="parameters from a JSON or YAML file ('-' reads stdin); --param wins")
    p.add_argument("--queue", "-q", help="the TaskQueue (default: the type's, else default)")
    p.add_argument("--priority", type=_integer, help="admission order within the queue, -1000..1000")
    p.add_argument("--cpu", help="CPU request and limit, e.g. 500m")
    p.add_argument("--memory", help="memory request and limit, e.g. 256Mi")
    p.add_argument("--gpu", type=_non_negative, help="number of GPUs")
    p.add_argument("--timeout", type=_duration, metavar="DURATION", help="the whole run's deadline: seconds, or 90s, 10m, 2h, 1d")
    p.add_argument("--retries", type=_non_negative, help="how many times a failed pod is retried")
    p.add_argument("--non-retryable-exit-codes", type=_exit_codes, metavar="CODES", help="exit codes that fail at once, e.g. 2,3")
    p.add_argument("--ttl", type=_duration, metavar="DURATION", help="delete the Job (not the Task) this long after it finishes")
    p.add_argument("--after", type=_names, metavar="NAMES", help="start only once these Tasks (comma-separated) have Succeeded")
    p.add_argument("--items", metavar="FILE", help="fan out: a JSON/YAML list of objects, one pod per item ('-' reads stdin)")
    p.add_argument("--parallelism", type=_positive, help="with --items: the most pods at once")
    p.add_argument("--webhook", metavar="NAME", help="the TaskWebhook to notify when it finishes (spec.webhook)")
    p.add_argument("--run-anyway", action="store_true", help="with --after: start once they finished, whatever the outcome (dependencyPolicy Finished)")
    p.add_argument("--label", "-l", action="append", default=[], metavar="KEY=VALUE", help="a label (repeatable)")
    p.add_argument("--annotation", "-a", action="append", default=[], metavar="KEY=VALUE", help="an annotation (repeatable)")
    p.add_argument("--name", help="the Task's name (default: <type>-<random>)")
    p.add_argument("--idempotency-key", metavar="KEY", help="makes a retried submission return the same Task")
    p.add_argument("-w", "--watch", action="store_true", help="then follow it until it finishes (exit code as `watch`; "
                   "with --group, as `groups watch`)")
    group = p.add_argument_group("as a TaskGroup (the Tasks are followed as one; needs create on taskgroups)")
    group.add_argument("--group", metavar="NAME", help="create the TaskGroup NAME with these Tasks as its members (a new name)")
    group.add_argument("--callback-type", metavar="TYPE", help="with --group: a Task of this type runs once the whole group finished")
    group.add_argument("--callback-param", action="append", default=[], metavar="KEY=VALUE",
                       help="a parameter of the callback (repeatable; as --param); the operator adds `group`")
    group.add_argument("--callback-when", choices=["Succeeded", "Finished"], default=None,
                       help="run the callback only if every member Succeeded (default), or once all Finished")
    output(p, ("name", "json", "yaml"))

    p = command("get", "show one Task")
    p.add_argument("name", metavar="NAME")
    output(p)

    p = command("list", "list Tasks as a table", description="List Tasks: NAME, TYPE, QUEUE, PHASE, PROGRESS, AGE.")
    p.add_argument("--type", "-t", dest="task_type", metavar="TYPE", help="only Tasks of this TaskType")
    p.add_argument("--queue", "-q", help="only Tasks of this TaskQueue")
    p.add_argument("--phase", type=_phase, help=f"only Tasks in this phase ({', '.join(PHASES)})")
    p.add_argument("-l", "--selector", metavar="SELECTOR", help="a label selector, e.g. team=a,env in (prod,dev)")
    p.add_argument("--limit", type=_non_negative, help="at most this many Tasks")
    p.add_argument("-w", "--watch", action="store_true", help="after the table, print a row for every change")
    output(p, ("name", "json", "yaml"))

    p = command("watch", "follow a Task with a live progress bar until it finishes",
                description="Follow a Task until its current run finishes. Exit code 0 when it Succeeded, 1 when it Failed or was Cancelled.")
    p.add_argument("name", metavar="NAME")

    p = command("cancel", "cancel a Task (a queued one never starts; a running one is stopped)")
    p.add_argument("name", metavar="NAME")
    output(p)

    p = command("retry", "run a Failed or Cancelled Task again")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--resource-version", metavar="RV", help="retry only if the Task is still at this resourceVersion")
    p.add_argument("-w", "--watch", action="store_true", help="then follow the new run until it finishes")
    output(p)

    p = command("logs", "print a Task's handler log")
    p.add_argument("name", metavar="NAME")
    p.add_argument("-f", "--follow", action="store_true", help="keep streaming while the handler writes")
    p.add_argument("--tail", type=_non_negative, metavar="N", help="only the last N lines")
    p.add_argument("--run", type=_non_negative, metavar="N", help="the log of run N (default: the current run)")
    p.add_argument("--timestamps", action="store_true", help="prefix each line with its time")
    p.add_argument("--previous", action="store_true", help="the previous container of the pod (after a restart)")
    p.add_argument("--limit-bytes", type=_non_negative, metavar="N", help="at most N bytes")

    p = command("queues", "list TaskQueues with pending and running counts")
    output(p)

    p = command("types", "list TaskTypes and their parameters (NAME: show one in full)")
    p.add_argument("name", metavar="NAME", nargs="?")
    output(p)

    p = command("schedules", "list TaskSchedules, see their next runs, trigger one now, suspend or resume", description=(
        "TaskSchedules create Tasks on a cron schedule. Create them with kubectl or the API\n"
        "(POST .../taskschedules); these commands read and operate them."))
    actions = p.add_subparsers(dest="schedules_command", metavar="SUBCOMMAND", required=True, parser_class=Parser)

    def action(name: str, help: str) -> argparse.ArgumentParser:
        return actions.add_parser(name, parents=[common], help=help, description=help)

    q = action("list", "a table: NAME, SCHEDULE, TIMEZONE, SUSPENDED, ACTIVE, LAST, NEXT, MISSED, READY, AGE")
    output(q, ("name", "json", "yaml"))
    q = action("get", "one TaskSchedule with its next run times")
    q.add_argument("name", metavar="NAME")
    output(q)
    q = action("trigger", "create a Task from the schedule's template now")
    q.add_argument("name", metavar="NAME")
    q.add_argument("-w", "--watch", action="store_true", help="then follow the Task until it finishes (exit code as `watch`)")
    output(q, ("name", "json", "yaml"))
    for verb, help in (("suspend", "stop creating Tasks (spec.suspend: true); running Tasks go on"),
                       ("resume", "create Tasks again (spec.suspend: false); runs missed meanwhile are not made up")):
        q = action(verb, help)
        q.add_argument("name", metavar="NAME")
        output(q)

    p = command("groups", "list TaskGroups with one progress bar each, show one, or follow one until it finishes", description=(
        "TaskGroups follow many Tasks as one (create one with `kubetask submit -f FILE --group NAME`).\n"
        "`groups watch NAME` (or `groups get NAME --watch`) exits 0 when the group Succeeded, 1 when it Failed."))
    actions = p.add_subparsers(dest="groups_command", metavar="SUBCOMMAND", required=True, parser_class=Parser)
    q = actions.add_parser("list", parents=[common], help="a table: NAME, PROGRESS, SUCCEEDED, FAILED, RUNNING, WAITING, PHASE, CALLBACK, AGE",
                           description="TaskGroups with their progress (FAILED includes cancelled members, WAITING pending and queued ones).")
    q.add_argument("--limit", type=_non_negative, help="at most this many groups")
    output(q, ("name", "json", "yaml"))
    q = actions.add_parser("get", parents=[common], help="one TaskGroup: progress, counts, callback, conditions",
                           description="One TaskGroup: progress, counts, callback, conditions.")
    q.add_argument("name", metavar="NAME")
    q.add_argument("-w", "--watch", action="store_true", help="then follow it until it finishes (exit code as `groups watch`)")
    output(q)
    q = actions.add_parser("watch", parents=[common], help="a live progress bar until the group finishes (exit 0 only if it Succeeded)",
                           description="Follow a TaskGroup until its Finished condition is True. Exit code 0 when it Succeeded "
                                       "(with its callback), 1 when it Failed.")
    q.add_argument("name", metavar="NAME")

    p = command("deadletter", "list dead-lettered Tasks (their current run Failed), newest first; `deadletter rerun` runs them again",
                description=(
                    "Dead-lettered Tasks: their current run Failed for good (no retries left, a non-retryable exit code,\n"
                    "the deadline, or a spec the TaskType refused), newest first: NAME, QUEUE, TYPE, REASON, EXIT, ATTEMPTS,\n"
                    "FAILED (how long ago), MESSAGE.\n\n"
                    "  kubetask deadletter rerun NAME...            re-run these Tasks\n"
                    "  kubetask deadletter rerun --all [--queue Q]  re-run every matching one (asks first unless --yes)"))
    p.add_argument("--queue", "-q", help="only Tasks of this TaskQueue")
    p.add_argument("--type", "-t", dest="task_type", metavar="TYPE", help="only Tasks of this TaskType")
    p.add_argument("--reason", help="only Tasks that failed for this reason (BackoffLimitExceeded, PodFailurePolicy, DeadlineExceeded, ...)")
    p.add_argument("-l", "--selector", metavar="SELECTOR", help="a label selector, e.g. team=a,env in (prod,dev)")
    p.add_argument("--limit", type=_non_negative, help="at most this many Tasks")
    output(p, ("name", "json", "yaml"))
    actions = p.add_subparsers(dest="deadletter_command", metavar="SUBCOMMAND", parser_class=Parser)
    # Own dests for rerun's filters: a subcommand's defaults would overwrite the same names given before it.
    q = actions.add_parser("rerun", parents=[common], help="re-run dead-lettered Tasks: NAME... or --all matching the filters",
                           description="Re-run dead-lettered Tasks (spec.rerun + 1 each, as `kubetask retry`): the named ones, or with\n"
                                       "--all every one matching --queue/--type/--reason/-l (after a confirmation, unless --yes).",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("names", metavar="NAME", nargs="*", help="the Tasks to re-run")
    q.add_argument("--all", action="store_true", dest="rerun_all", help="every dead-lettered Task matching the filters")
    q.add_argument("--queue", "-q", dest="rerun_queue", metavar="QUEUE", help="with --all: only Tasks of this TaskQueue")
    q.add_argument("--type", "-t", dest="rerun_type", metavar="TYPE", help="with --all: only Tasks of this TaskType")
    q.add_argument("--reason", dest="rerun_reason", metavar="REASON", help="with --all: only Tasks that failed for this reason")
    q.add_argument("-l", "--selector", dest="rerun_selector", metavar="SELECTOR", help="with --all: a label selector")
    q.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    output(q)

    command("config", "show the settings in effect and where each came from")
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("kubetask")
    except Exception:  # not installed (running from a checkout)
        return "unknown"


# --- commands ---------------------------------------------------------------------------------

def cmd_submit(ctx: Context, args: argparse.Namespace) -> int:
    if args.filename == "-" and args.parameters_file == "-":
        raise UsageError("-f - and --parameters-file - cannot both read stdin")
    spec: dict[str, Any] = {}
    for attr, key in (("queue", "queue"), ("priority", "priority"), ("timeout", "timeoutSeconds"), ("retries", "retries"),
                      ("ttl", "ttlSecondsAfterFinished"), ("non_retryable_exit_codes", "nonRetryableExitCodes"), ("after", "after"),
                      ("webhook", "webhook")):
        if getattr(args, attr) is not None:
            spec[key] = getattr(args, attr)
    if args.items is not None:
        if "-" in (args.filename, args.parameters_file) and args.items == "-":
            raise UsageError("only one of -f, --parameters-file and --items can read stdin")
        spec["items"] = load_items(args.items)
    if args.parallelism is not None:
        if args.items is None:
            raise UsageError("--parallelism only means something with --items")
        spec["parallelism"] = args.parallelism
    if args.run_anyway:
        if args.after is None:
            raise UsageError("--run-anyway only means something with --after")
        spec["dependencyPolicy"] = "Finished"
    resources = {k: getattr(args, k) for k in ("cpu", "memory", "gpu") if getattr(args, k) is not None}
    overrides = Overrides(type=args.task_type, name=args.name, params=parse_params(args.param),
                          parameters_file=load_parameters(args.parameters_file) if args.parameters_file else None,
                          spec=spec, resources=resources, labels=parse_labels(args.label), annotations=parse_annotations(args.annotation))
    manifests = load_manifests(args.filename) if args.filename else [Manifest({})]
    if args.name and len(manifests) > 1:
        raise UsageError(f"--name names one Task, but {args.filename} holds {len(manifests)}")
    group = _group_request(args)
    if args.watch and len(manifests) > 1 and group is None:
        raise UsageError("--watch follows one Task; submit the file without it, then `kubetask watch` each (or submit it --group NAME "
                         "and follow the group)")
    namespace = _manifest_namespace(ctx.settings, manifests)
    bodies = [overrides.apply(m.body) for m in manifests]
    gw = ctx.gateway()
    group_view: dict[str, Any] | None = None
    if len(bodies) == 1 and group is None:
        created, task = gw.submit(bodies[0], args.idempotency_key, namespace)
        tasks = [(created, task)]
    else:  # several Tasks, or a group (even of one): one all-or-nothing batch
        answer = gw.submit_batch(bodies, args.idempotency_key, namespace, group)
        tasks = [(item.get("status") == 201, item["task"]) for item in answer.get("items") or [] if item.get("task")]
        group_view = answer.get("group") if isinstance(answer.get("group"), dict) else None
    if args.output in ("json", "yaml"):
        views = [t for _, t in tasks]
        shown: Any = {"group": group_view, "items": views} if group_view is not None else views[0] if len(views) == 1 else views
        ctx.print(render.dump(shown, args.output))
    else:
        for created, task in tasks:
            if args.output == "name":
                ctx.print(task["name"])
            else:
                ctx.print(f"task/{task['name']} {'created' if created else 'unchanged (Idempotency-Key replay of an existing Task)'}")
        if group_view is not None and args.output != "name":
            fresh = any(created for created, _ in tasks)
            what = f"created with {len(tasks)} member Task{'s' if len(tasks) != 1 else ''}" if fresh else "unchanged (Idempotency-Key replay)"
            callback = render.group_callback(group_view)
            ctx.print(f"taskgroup/{group_view['name']} {what}" + (f"; callback {callback}" if callback != "-" else ""))
    if args.watch:
        if group_view is not None:
            return watch_group(ctx, gw, str(group_view["name"]), namespace)
        return watch_task(ctx, gw, tasks[0][1]["name"], namespace)
    return EXIT_OK


def _group_request(args: argparse.Namespace) -> dict[str, Any] | None:
    """The batch's `group` from --group and --callback-*; None without --group."""
    if args.group is None:
        if args.callback_type or args.callback_param or args.callback_when:
            raise UsageError("--callback-type, --callback-param and --callback-when need --group NAME")
        return None
    group: dict[str, Any] = {"name": args.group}
    if args.callback_type:
        spec: dict[str, Any] = {"type": args.callback_type}
        parameters = parse_params(args.callback_param)
        if parameters:
            spec["parameters"] = parameters
        group["callback"] = {"when": args.callback_when or "Succeeded", "taskTemplate": {"spec": spec}}
    elif args.callback_param or args.callback_when:
        raise UsageError("--callback-param and --callback-when need --callback-type TYPE")
    return group


def _manifest_namespace(settings: Settings, manifests: Sequence[Manifest]) -> str | None:
    """The namespace named in the manifests, if any; an explicit --namespace that disagrees is an error."""
    named = {m.namespace for m in manifests if m.namespace}
    if not named:
        return None
    if len(named) > 1:
        raise UsageError(f"the manifests name several namespaces ({', '.join(sorted(named))}); submit each namespace's Tasks separately")
    [namespace] = named
    if settings.sources.get("namespace") == "flag" and settings.namespace != namespace:
        raise UsageError(f"the manifest's namespace {namespace!r} does not match --namespace {settings.namespace!r}")
    return namespace


def cmd_get(ctx: Context, args: argparse.Namespace) -> int:
    task = ctx.gateway().get(args.name)
    ctx.print(render.dump(task, args.output) if args.output else render.describe(task, ctx.color))
    return EXIT_OK


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    gw = ctx.gateway()
    filters = {"type": args.task_type, "queue": args.queue, "phase": args.phase, "selector": args.selector}
    tasks = gw.list_tasks(**filters, limit=args.limit)
    if args.output in ("json", "yaml"):
        ctx.print(render.dump({"items": tasks}, args.output))
    elif args.output == "name":
        for task in tasks:
            ctx.print(task["name"])
    elif tasks or args.watch:
        ctx.print(render.task_table(tasks, ctx.color))
    else:
        where = f" in namespace {ctx.settings.namespace}"
        ctx.err.write(f"No Tasks{' match' if any(filters.values()) else ''}{where}.\n")
    if args.watch:
        return _watch_list(ctx, gw, args, {t["name"]: t.get("resourceVersion") for t in tasks})
    return EXIT_OK


def _watch_list(ctx: Context, gw: Gateway, args: argparse.Namespace, seen: dict[str, Any]) -> int:
    params = {"type": args.task_type, "queue": args.queue, "phase": args.phase, "labelSelector": args.selector}
    widths = [max([len(n) for n in seen] + [36]), 14, 12, 10, 8]
    failures = 0
    while True:
        try:
            for event in gw.watch_list(params):
                failures = 0
                if event.event not in ("added", "modified", "deleted") or not isinstance(event.data, dict):
                    continue
                task = event.data
                name = str(task.get("name", ""))
                if event.event == "added" and seen.get(name) == task.get("resourceVersion"):
                    continue  # already in the table
                seen[name] = task.get("resourceVersion")
                row = render.task_rows([task])[0]
                if event.event == "deleted":
                    row[3] = "(gone)"
                cells = [cell.ljust(widths[i]) if i < len(widths) else cell for i, cell in enumerate(row)]
                cells[3] = render.paint(row[3], row[3], ctx.color) + " " * max(0, widths[3] - len(row[3]))
                ctx.print("   ".join(cells).rstrip())
        except ConnectionFailed:
            failures += 1
            if failures > RECONNECTS:
                raise
        ctx.sleep(min(2.0 ** failures, 10.0))


def watch_task(ctx: Context, gw: Gateway, name: str, namespace: str | None = None) -> int:
    """Follow the Task until the current run finishes; 0 if it Succeeded, 1 if it Failed or was Cancelled."""
    if namespace and namespace != ctx.settings.namespace:
        gw = Gateway(dataclasses.replace(ctx.settings, namespace=namespace), ctx.transport)
        ctx.clients.append(gw)
    last: dict[str, Any] | None = None
    shown: Any = None
    failures = 0
    live = False  # a line is on screen that the next update rewrites

    def show(task: dict[str, Any]) -> None:
        nonlocal shown, live
        progress = task.get("progress") if isinstance(task.get("progress"), dict) else {}
        key = (task.get("phase"), task.get("finished"), render.percent_of(task), (progress or {}).get("message"))
        if ctx.tty:
            line = render.watch_line(task, ctx.unicode, ctx.color, columns=ctx.columns)
            ctx.out.write("\r" + line + "\x1b[K")
            ctx.out.flush()
            live = True
        elif key != shown:
            ctx.print(render.watch_line(task, ctx.unicode, False))
        shown = key

    def end_line() -> None:
        nonlocal live
        if live:
            ctx.out.write("\n")
            live = False

    while True:
        try:
            for event in gw.watch(name):
                failures = 0
                if event.event == "status" and isinstance(event.data, dict):
                    last = event.data
                    show(last)
                elif event.event == "deleted":
                    end_line()
                    ctx.print(f"Task {name} was deleted before it finished")
                    return EXIT_TASK_FAILED
                elif event.event == "error":
                    break  # the gateway gave up on this stream (e.g. fell behind): reconnect
        except ConnectionFailed as error:
            failures += 1
            if failures > RECONNECTS:
                end_line()
                raise
            end_line()
            ctx.err.write(f"{error}; reconnecting ({failures}/{RECONNECTS}) ...\n")
        if last is not None and last.get("finished"):
            end_line()
            ctx.print(render.paint(render.outcome(last), str(last.get("phase")), ctx.color))
            return EXIT_OK if last.get("phase") == "Succeeded" else EXIT_TASK_FAILED
        ctx.sleep(min(2.0 ** failures, 10.0) if failures else 0.5)  # the stream ended early (its lifetime): resume


def cmd_watch(ctx: Context, args: argparse.Namespace) -> int:
    return watch_task(ctx, ctx.gateway(), args.name)


def cmd_cancel(ctx: Context, args: argparse.Namespace) -> int:
    task = ctx.gateway().cancel(args.name)
    if args.output:
        ctx.print(render.dump(task, args.output))
    else:
        ctx.print(f"task/{task['name']} cancellation requested (it was {task.get('phase', 'Pending')})")
    return EXIT_OK


def cmd_retry(ctx: Context, args: argparse.Namespace) -> int:
    gw = ctx.gateway()
    task = gw.retry(args.name, args.resource_version)
    if args.output:
        ctx.print(render.dump(task, args.output))
    else:
        ctx.print(f"task/{task['name']} run {(task.get('spec') or {}).get('rerun', 0)} requested")
    if args.watch:
        return watch_task(ctx, gw, task["name"])
    return EXIT_OK


def cmd_logs(ctx: Context, args: argparse.Namespace) -> int:
    chunks = ctx.gateway().log(args.name, follow=args.follow, tail=args.tail, run=args.run, timestamps=args.timestamps,
                               previous=args.previous, limit_bytes=args.limit_bytes)
    _write_bytes(ctx.out, chunks)
    return EXIT_OK


def _write_bytes(out: TextIO, chunks: Iterator[bytes]) -> None:
    buffer = getattr(out, "buffer", None)
    for chunk in chunks:
        if buffer is not None:
            out.flush()
            buffer.write(chunk)
            buffer.flush()
        else:
            out.write(chunk.decode("utf-8", errors="replace"))
    out.flush()


def cmd_queues(ctx: Context, args: argparse.Namespace) -> int:
    queues = ctx.gateway().queues()
    if args.output:
        ctx.print(render.dump({"items": queues}, args.output))
    elif queues:
        ctx.print(render.queue_table(queues))
    else:
        ctx.err.write(f"No TaskQueues in namespace {ctx.settings.namespace}.\n")
    return EXIT_OK


def cmd_types(ctx: Context, args: argparse.Namespace) -> int:
    gw = ctx.gateway()
    if args.name:
        ctx.print(render.dump(gw.tasktype(args.name), args.output or "yaml"))
        return EXIT_OK
    types = gw.types()
    if args.output:
        ctx.print(render.dump({"items": types}, args.output))
    elif types:
        ctx.print(render.type_table(types))
    else:
        ctx.err.write(f"No TaskTypes in namespace {ctx.settings.namespace}.\n")
    return EXIT_OK


def cmd_schedules(ctx: Context, args: argparse.Namespace) -> int:
    gw = ctx.gateway()
    if args.schedules_command == "list":
        schedules = gw.schedules()
        if args.output in ("json", "yaml"):
            ctx.print(render.dump({"items": schedules}, args.output))
        elif args.output == "name":
            for schedule in schedules:
                ctx.print(schedule["name"])
        elif schedules:
            ctx.print(render.schedule_table(schedules))
        else:
            ctx.err.write(f"No TaskSchedules in namespace {ctx.settings.namespace}.\n")
        return EXIT_OK
    if args.schedules_command == "get":
        schedule = gw.schedule(args.name)
        ctx.print(render.dump(schedule, args.output) if args.output else render.describe_schedule(schedule))
        return EXIT_OK
    if args.schedules_command == "trigger":
        task = gw.schedule_action(args.name, "trigger")
        if args.output in ("json", "yaml"):
            ctx.print(render.dump(task, args.output))
        elif args.output == "name":
            ctx.print(task["name"])
        else:
            ctx.print(f"task/{task['name']} created from taskschedule/{args.name}")
        return watch_task(ctx, gw, task["name"]) if args.watch else EXIT_OK
    schedule = gw.schedule_action(args.name, args.schedules_command)  # suspend | resume
    if args.output:
        ctx.print(render.dump(schedule, args.output))
    else:
        done = "suspended" if args.schedules_command == "suspend" else "resumed"
        runs = schedule.get("nextRuns") or []
        ctx.print(f"taskschedule/{schedule['name']} {done}" + (f"; next run {runs[0]}" if runs else ""))
    return EXIT_OK


GROUP_POLL_SECONDS = 2.0  # groups are read live by the gateway (no event stream): one GET per interval


def watch_group(ctx: Context, gw: Gateway, name: str, namespace: str | None = None) -> int:
    """Follow the group until its Finished condition is True; 0 if it Succeeded, 1 if it Failed (or was deleted)."""
    if namespace and namespace != ctx.settings.namespace:
        gw = Gateway(dataclasses.replace(ctx.settings, namespace=namespace), ctx.transport)
        ctx.clients.append(gw)
    shown: Any = None
    seen = False
    failures = 0
    live = False  # a line is on screen that the next update rewrites

    def end_line() -> None:
        nonlocal live
        if live:
            ctx.out.write("\n")
            live = False

    while True:
        try:
            group = gw.group(name)
            failures = 0
        except ConnectionFailed as error:
            failures += 1
            end_line()
            if failures > RECONNECTS:
                raise
            ctx.err.write(f"{error}; retrying ({failures}/{RECONNECTS}) ...\n")
            ctx.sleep(min(2.0 ** failures, 10.0))
            continue
        except ApiError as error:
            if error.status == 404 and seen:
                end_line()
                ctx.print(f"TaskGroup {name} was deleted before it finished")
                return EXIT_TASK_FAILED
            raise
        seen = True
        if ctx.tty:
            ctx.out.write("\r" + render.group_watch_line(group, ctx.unicode, ctx.color, columns=ctx.columns) + "\x1b[K")
            ctx.out.flush()
            live = True
        else:
            key = (group.get("phase"), json.dumps(group.get("progress"), sort_keys=True), render.group_counts(group), render.group_callback(group))
            if key != shown:
                ctx.print(render.group_watch_line(group, ctx.unicode, False))
            shown = key
        if group.get("finished"):
            end_line()
            ctx.print(render.paint(render.group_outcome(group), str(group.get("phase")), ctx.color))
            return EXIT_OK if group.get("phase") == "Succeeded" else EXIT_TASK_FAILED
        ctx.sleep(GROUP_POLL_SECONDS)


def cmd_groups(ctx: Context, args: argparse.Namespace) -> int:
    gw = ctx.gateway()
    if args.groups_command == "list":
        found = gw.groups(limit=args.limit)
        if args.output in ("json", "yaml"):
            ctx.print(render.dump({"items": found}, args.output))
        elif args.output == "name":
            for group in found:
                ctx.print(group["name"])
        elif found:
            ctx.print(render.group_table(found, ctx.unicode, ctx.color))
        else:
            ctx.err.write(f"No TaskGroups in namespace {ctx.settings.namespace}.\n")
        return EXIT_OK
    if args.groups_command == "watch":
        return watch_group(ctx, gw, args.name)
    group = gw.group(args.name)
    ctx.print(render.dump(group, args.output) if args.output else render.describe_group(group, ctx.unicode, ctx.color))
    return watch_group(ctx, gw, args.name) if args.watch else EXIT_OK


def cmd_deadletter(ctx: Context, args: argparse.Namespace) -> int:
    if args.deadletter_command == "rerun":
        return _rerun_deadletter(ctx, args)
    filters = {"queue": args.queue, "type": args.task_type, "reason": args.reason, "selector": args.selector}
    items = ctx.gateway().deadletter(**filters, limit=args.limit)
    if args.output in ("json", "yaml"):
        ctx.print(render.dump({"items": items}, args.output))
    elif args.output == "name":
        for item in items:
            ctx.print(item["name"])
    elif items:
        ctx.print(render.deadletter_table(items))
    else:
        ctx.err.write(f"No dead-lettered Tasks{' match' if any(filters.values()) else ''} in namespace {ctx.settings.namespace}.\n")
    return EXIT_OK


def _rerun_deadletter(ctx: Context, args: argparse.Namespace) -> int:
    """Exit code 0 when every Task was re-run, 3 when the gateway re-ran some but not others (each is said why)."""
    filters = {"queue": args.rerun_queue or args.queue, "type": args.rerun_type or args.task_type,
               "reason": args.rerun_reason or args.reason, "labelSelector": args.rerun_selector or args.selector}
    if args.names and args.rerun_all:
        raise UsageError("give Task names or --all, not both")
    if not args.names and not args.rerun_all:
        raise UsageError("name the Tasks to re-run, or pass --all (with --queue, --type, --reason or -l to narrow it)")
    if args.names and any(filters.values()):
        raise UsageError("--queue, --type, --reason and -l select Tasks for --all; with names, name exactly the Tasks to re-run")
    gw = ctx.gateway()
    if args.names:
        answers = [gw.rerun_deadletter(names=list(args.names))]
    else:
        # What the person confirms is a count: a filter re-runs what matches when it is sent, and the
        # gateway takes a bounded number per call, so call again until that many were handled.
        wanted = len(gw.deadletter(queue=filters["queue"], type=filters["type"], reason=filters["reason"], selector=filters["labelSelector"]))
        where = ", ".join(f"{k} {v}" for k, v in filters.items() if v)
        scope = f"in namespace {ctx.settings.namespace}" + (f" ({where})" if where else "")
        if not wanted:
            ctx.err.write(f"No dead-lettered Tasks {scope}; nothing to re-run.\n")
            return EXIT_OK
        if not args.yes and not _confirm(ctx, f"Re-run {wanted} dead-lettered Task{'s' if wanted != 1 else ''} {scope}? [y/N] "):
            ctx.err.write("Nothing was re-run (pass --yes to skip the question).\n")
            return EXIT_USAGE
        answers = []
        handled = 0
        while handled < wanted:
            answer = gw.rerun_deadletter(filter=filters)
            answers.append(answer)
            handled += len(answer.get("items") or [])
            if not answer.get("items") or not answer.get("remaining"):
                break
    items = [item for answer in answers for item in answer.get("items") or []]
    summary: dict[str, int] = {}
    for item in items:
        summary[str(item.get("outcome"))] = summary.get(str(item.get("outcome")), 0) + 1
    if args.output:
        ctx.print(render.dump({"items": items, "summary": summary}, args.output))
    else:
        for line in render.rerun_lines({"items": items}):
            ctx.print(line)
        ctx.err.write(render.rerun_summary(summary) + "\n")
    return EXIT_OK if set(summary) <= {"Rerun"} else EXIT_API


def _confirm(ctx: Context, question: str) -> bool:
    ctx.err.write(question)
    ctx.err.flush()
    answer = (ctx.stdin or sys.stdin).readline()
    return answer.strip().lower() in ("y", "yes")


def cmd_config(ctx: Context, args: argparse.Namespace) -> int:
    s = ctx.settings
    token = "(none)" if not s.token else f"{s.token[:6]}…{s.token[-4:]} ({len(s.token)} characters)" if len(s.token) > 16 else "(set)"
    rows = [["gateway", s.gateway, s.sources.get("gateway", "")], ["namespace", s.namespace, s.sources.get("namespace", "")],
            ["token", token, s.sources.get("token", "")], ["ca-file", s.ca_file or "(system)", s.sources.get("ca_file", "")],
            ["config file", str(s.config_path), "exists" if s.config_path and s.config_path.exists() else "not found"]]
    ctx.print(render.table(("SETTING", "VALUE", "FROM"), rows))
    return EXIT_OK


COMMANDS: dict[str, Callable[[Context, argparse.Namespace], int]] = {
    "submit": cmd_submit, "get": cmd_get, "list": cmd_list, "watch": cmd_watch, "cancel": cmd_cancel, "retry": cmd_retry,
    "logs": cmd_logs, "queues": cmd_queues, "types": cmd_types, "schedules": cmd_schedules, "config": cmd_config,
    "deadletter": cmd_deadletter, "groups": cmd_groups,
}


# --- entry point ------------------------------------------------------------------------------

def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def run(argv: Sequence[str] | None = None, *, env: Mapping[str, str] | None = None, stdout: TextIO | None = None,
        stderr: TextIO | None = None, transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep, stdin: TextIO | None = None) -> int:
    """The CLI as a function: returns the exit code (tests pass their own streams, env and transport)."""
    env = os.environ if env is None else env
    out, err = stdout or sys.stdout, stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        settings = resolve(gateway=args.gateway, token=args.token, token_file=args.token_file, namespace=args.namespace,
                           ca_file=args.ca_file, env=env)
    except UsageError as error:
        err.write(f"{error}\n")
        return EXIT_USAGE
    except ConfigError as error:
        err.write(f"error: {error}\n")
        return EXIT_USAGE
    except SystemExit as done:  # --help, --version
        return int(done.code or 0) if not isinstance(done.code, str) else EXIT_USAGE
    tty = _is_tty(out)
    encoding = (getattr(out, "encoding", None) or "").lower()
    ctx = Context(settings, out, err, transport, sleep=sleep, tty=tty, stdin=stdin,
                  color=tty and "NO_COLOR" not in env and env.get("TERM") != "dumb",
                  unicode="utf" in encoding or not encoding, columns=shutil.get_terminal_size((100, 24)).columns)
    try:
        return COMMANDS[args.command](ctx, args)
    except UsageError as error:
        err.write(f"error: {error}\n")
        return EXIT_USAGE
    except ConfigError as error:
        err.write(f"error: {error}\n")
        return EXIT_USAGE
    except ApiError as error:
        err.write(render.api_error(error, str(settings.config_path)) + "\n")
        return EXIT_API
    except ConnectionFailed as error:
        err.write(f"error: {error}\nhint: set the gateway's URL with --gateway, KUBETASK_GATEWAY_URL or `gateway:` in {settings.config_path}\n")
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        err.write("\ninterrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `kubetask list | head`
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keep Python quiet at exit
        except OSError:
            pass
        return EXIT_OK
    finally:
        for client in ctx.clients:
            client.close()


def main(argv: Sequence[str] | None = None) -> int:
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
