"""Text output: tables, ages, progress bars, Task summaries and error messages."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import yaml

from kubetask.cli.client import ApiError

TERMINAL = ("Succeeded", "Failed", "Cancelled")
_COLORS = {"Succeeded": "32", "Failed": "31", "Cancelled": "33", "Running": "36", "Queued": "34", "Pending": "90"}
_EIGHTHS = " ▏▎▍▌▋▊▉"


# --- time -------------------------------------------------------------------------------------

def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def human_duration(seconds: float) -> str:
    """kubectl's style: 45s, 3m20s, 45m, 3h20m, 20h, 3d4h, 45d, 2y100d."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"


def age(value: Any, now: datetime | None = None) -> str:
    moment = parse_time(value)
    if moment is None:
        return "<unknown>"
    return human_duration(((now or datetime.now(timezone.utc)) - moment).total_seconds())


def run_duration(task: dict[str, Any], now: datetime | None = None) -> str | None:
    start = parse_time(task.get("startTime"))
    if start is None or (task.get("phase") in TERMINAL and not task.get("finished")):
        return None  # not started, or the times are the previous run's (a rerun was requested)
    end = parse_time(task.get("completionTime")) if task.get("finished") else None
    seconds = ((end or now or datetime.now(timezone.utc)) - start).total_seconds()
    if seconds < 10:
        return f"{max(0.0, seconds):.1f}s"
    return human_duration(seconds)


# --- tables -----------------------------------------------------------------------------------

def width(text: str) -> int:
    """Display width (East Asian wide characters take two columns)."""
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 0 if unicodedata.combining(c) else 1 for c in text)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], colorize: dict[int, Any] | None = None) -> str:
    """A kubectl-style table: upper-case headers, columns separated by three spaces, no borders.
    `colorize` maps a column index to a function(cell, padded) -> the padded cell with color."""
    cells = [[("" if c is None else str(c)).replace("\n", " ") for c in row] for row in rows]
    widths = [width(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], width(cell))
    lines = []
    for r, row in enumerate([list(headers), *cells]):
        out = []
        for i, cell in enumerate(row):
            last = i == len(row) - 1
            padded = cell if last else cell + " " * (widths[i] - width(cell))
            if colorize and r > 0 and i in colorize:
                padded = colorize[i](cell, padded)
            out.append(padded)
        lines.append("   ".join(out).rstrip())
    return "\n".join(lines)


def color_phase(enabled: bool) -> Any:
    def paint(cell: str, padded: str) -> str:
        code = _COLORS.get(cell)
        return f"\x1b[{code}m{cell}\x1b[0m{padded[len(cell):]}" if enabled and code else padded
    return paint


def paint(text: str, phase: str, enabled: bool) -> str:
    code = _COLORS.get(phase)
    return f"\x1b[{code}m{text}\x1b[0m" if enabled and code else text


def percent_of(task: dict[str, Any]) -> int | None:
    """What the progress bar shows: the handler's percent; 100 once succeeded; None when unknown."""
    if task.get("phase") == "Succeeded" and task.get("finished"):
        return 100
    progress = task.get("progress")
    if isinstance(progress, dict) and isinstance(progress.get("percent"), (int, float)):
        return max(0, min(100, int(progress["percent"])))
    return None


def task_type(task: dict[str, Any]) -> str:
    return str((task.get("spec") or {}).get("type") or "")


def task_queue(task: dict[str, Any]) -> str:
    return str(task.get("queue") or (task.get("spec") or {}).get("queue") or "")


def task_rows(tasks: Sequence[dict[str, Any]], now: datetime | None = None) -> list[list[str]]:
    rows = []
    for task in tasks:
        percent = percent_of(task)
        phase = str(task.get("phase") or "Pending")
        if phase in TERMINAL and not task.get("finished"):
            phase = f"{phase} (rerun)"  # a retry was requested; the operator has not picked it up yet
        rows.append([str(task.get("name", "")), task_type(task), task_queue(task) or "-", phase,
                     "-" if percent is None else f"{percent}%", age(task.get("creationTimestamp"), now)])
    return rows


TASK_HEADERS = ("NAME", "TYPE", "QUEUE", "PHASE", "PROGRESS", "AGE")


def task_table(tasks: Sequence[dict[str, Any]], color: bool = False, now: datetime | None = None) -> str:
    return table(TASK_HEADERS, task_rows(tasks, now), {3: color_phase(color)})


def queue_table(queues: Sequence[dict[str, Any]], now: datetime | None = None) -> str:
    rows = []
    for q in queues:
        gpus = f"{q.get('runningGpus', 0)}/{q['maxGpus']}" if q.get("maxGpus") is not None else "-"
        limit = q.get("rateLimit") if isinstance(q.get("rateLimit"), dict) else None
        rate = f"{limit.get('starts')}/{limit.get('per')}" if limit else "-"
        rows.append([q.get("name", ""), "paused" if q.get("paused") else "active", q.get("pending", 0), q.get("running", 0),
                     q.get("maxRunning", ""), gpus, rate, q.get("throttled", 0), q.get("deadLetter", 0),
                     age(q.get("creationTimestamp"), now)])
    return table(("NAME", "STATE", "PENDING", "RUNNING", "MAX-RUNNING", "GPUS", "RATE", "THROTTLED", "DEAD-LETTER", "AGE"), rows)


DEADLETTER_HEADERS = ("NAME", "QUEUE", "TYPE", "REASON", "EXIT", "ATTEMPTS", "FAILED", "MESSAGE")
MESSAGE_WIDTH = 60


def deadletter_table(items: Sequence[dict[str, Any]], now: datetime | None = None) -> str:
    """Dead-lettered Tasks as the gateway lists them (newest first); FAILED is how long ago the run failed."""
    rows = []
    for item in items:
        message = " ".join(str(item.get("message") or "").split())
        if len(message) > MESSAGE_WIDTH:
            message = message[:MESSAGE_WIDTH - 1] + "…"
        code = item.get("exitCode")
        rows.append([item.get("name", ""), item.get("queue") or "-", item.get("type", ""), item.get("reason", ""),
                     "-" if code is None else code, item.get("attempts", 0), age(item.get("completionTime"), now), message or "-"])
    return table(DEADLETTER_HEADERS, rows)


RERUN_WORDS = {"Rerun": "re-run", "Conflict": "conflict", "NotDeadLettered": "not dead-lettered", "NotFound": "not found", "Error": "error"}


def rerun_lines(answer: dict[str, Any]) -> list[str]:
    """One line per Task of a deadletter:rerun answer."""
    lines = []
    for item in answer.get("items") or []:
        kind = str(item.get("outcome", ""))
        if kind == "Rerun":
            lines.append(f"task/{item.get('name')} re-run (run {item.get('rerun')})")
        else:
            lines.append(f"task/{item.get('name')} {RERUN_WORDS.get(kind, kind)}: {item.get('message', '')}")
    return lines


def rerun_summary(summary: dict[str, int]) -> str:
    parts = [f"{n} {RERUN_WORDS.get(kind, kind)}" for kind, n in summary.items() if n]
    return ", ".join(parts) if parts else "nothing to re-run"


def schema_summary(schema: Any) -> str:
    """`n:integer, *name:string` (* = required) from a JSON Schema's top-level properties."""
    if not isinstance(schema, dict):
        return "(any)"
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return "(any)" if schema.get("additionalProperties", True) is not False else "(none)"
    required = set(schema.get("required") or [])
    parts = []
    for key, sub in properties.items():
        kind = sub.get("type", "any") if isinstance(sub, dict) else "any"
        if isinstance(kind, list):
            kind = "|".join(str(k) for k in kind)
        parts.append(f"{'*' if key in required else ''}{key}:{kind}")
    return ", ".join(parts)


def type_table(types: Sequence[dict[str, Any]], now: datetime | None = None) -> str:
    rows = []
    for t in types:
        defaults = t.get("defaults") or {}
        rows.append([t.get("name", ""), t.get("image") or "", defaults.get("queue") or "-",
                     schema_summary(t.get("parametersSchema")), age(t.get("creationTimestamp"), now)])
    return table(("NAME", "IMAGE", "QUEUE", "PARAMETERS", "AGE"), rows)


# --- schedules --------------------------------------------------------------------------------

def until(value: Any, now: datetime | None = None) -> str:
    """`in 5m` for a time ahead, `now` for one that has come, `-` when there is none."""
    moment = parse_time(value)
    if moment is None:
        return "-"
    seconds = (moment - (now or datetime.now(timezone.utc))).total_seconds()
    return f"in {human_duration(seconds)}" if seconds >= 1 else "now"


def next_run(schedule: dict[str, Any]) -> Any:
    """The gateway's first computed run, else the operator's status.nextScheduleTime."""
    runs = schedule.get("nextRuns") or []
    return runs[0] if runs else (schedule.get("status") or {}).get("nextScheduleTime")


def ready_reason(schedule: dict[str, Any]) -> str:
    for condition in (schedule.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("reason") or condition.get("status") or "")
    return "-"


SCHEDULE_HEADERS = ("NAME", "SCHEDULE", "TIMEZONE", "SUSPENDED", "ACTIVE", "LAST", "NEXT", "MISSED", "READY", "AGE")


def schedule_table(schedules: Sequence[dict[str, Any]], now: datetime | None = None) -> str:
    rows = []
    for item in schedules:
        spec, status = item.get("spec") or {}, item.get("status") or {}
        last = status.get("lastScheduleTime")
        suspended = bool(spec.get("suspend"))
        rows.append([item.get("name", ""), spec.get("schedule", ""), spec.get("timeZone") or "UTC", "yes" if suspended else "no",
                     status.get("activeCount", 0), age(last, now) if last else "-", "-" if suspended else until(next_run(item), now),
                     status.get("missedRuns", 0), ready_reason(item), age(item.get("creationTimestamp"), now)])
    return table(SCHEDULE_HEADERS, rows)


def _in_zone(value: str, zone: str | None) -> str:
    """The time as the schedule reads it (`Thu 2026-12-03 03:00 CET`); empty without tzdata."""
    moment = parse_time(value)
    if moment is None:
        return ""
    try:
        from zoneinfo import ZoneInfo

        return moment.astimezone(ZoneInfo(zone or "UTC")).strftime("%a %Y-%m-%d %H:%M %Z")
    except (ValueError, OSError):  # no tzdata on this machine, or a zone it does not know
        return ""


def describe_schedule(schedule: dict[str, Any], now: datetime | None = None) -> str:
    spec, status = schedule.get("spec") or {}, schedule.get("status") or {}
    template = (spec.get("taskTemplate") or {}).get("spec") or {}
    zone = spec.get("timeZone")
    rows: list[tuple[str, str]] = [
        ("Name", str(schedule.get("name", ""))), ("Namespace", str(schedule.get("namespace", ""))),
        ("Schedule", f"{spec.get('schedule', '')}   ({zone or 'UTC'})"),
        ("Suspended", "yes" if spec.get("suspend") else "no"),
        ("Concurrency", str(spec.get("concurrencyPolicy") or "Allow")),
    ]
    if spec.get("startingDeadlineSeconds") is not None:
        rows.append(("Deadline", f"{spec['startingDeadlineSeconds']}s after each scheduled time"))
    rows.append(("History", f"keeps {spec.get('successfulHistoryLimit', 3)} succeeded, {spec.get('failedHistoryLimit', 1)} failed"))
    task = f"type {template.get('type', '')}" + (f", queue {template['queue']}" if template.get("queue") else "")
    if template.get("parameters") is not None:
        task += f", parameters {compact_json(template['parameters'])}"
    rows.append(("Task", task))
    if schedule.get("submittedBy"):
        rows.append(("Created by", str(schedule["submittedBy"])))
    for label, key, holder in (("Created", "creationTimestamp", schedule), ("Last run", "lastScheduleTime", status),
                               ("Last success", "lastSuccessfulTime", status)):
        if holder.get(key):
            rows.append((label, f"{holder[key]} ({age(holder[key], now)} ago)"))
    active = [str(a.get("name", "")) for a in status.get("active") or [] if isinstance(a, dict)]
    rows.append(("Active", str(status.get("activeCount", len(active))) + (f": {', '.join(active)}" if active else "")))
    rows.append(("Missed runs", str(status.get("missedRuns", 0))))
    lines = [f"{label + ':':<14}{value}" for label, value in rows]
    runs = schedule.get("nextRuns") or []
    if runs:
        lines.append("Next runs:")
        lines.extend(f"  {run}  {until(run, now):<10}  {_in_zone(run, zone)}".rstrip() for run in runs)
    else:
        lines.append(f"{'Next runs:':<14}none: {schedule.get('nextRunsMessage') or 'the gateway computed none'}")
    conditions = status.get("conditions") or []
    if conditions:
        lines.append("Conditions:")
        cond_rows = [[c.get("type", ""), c.get("status", ""), c.get("reason", ""), age(c.get("lastTransitionTime"), now),
                      c.get("message", "")] for c in conditions]
        lines.extend("  " + line for line in table(("TYPE", "STATUS", "REASON", "AGE", "MESSAGE"), cond_rows).splitlines())
    return "\n".join(lines)


# --- progress ---------------------------------------------------------------------------------

def progress_bar(percent: float | None, size: int = 30, unicode: bool = True) -> str:
    """A bar `size` cells wide; None (unknown) draws an empty bar."""
    if unicode:
        if percent is None:
            return "░" * size
        filled = max(0.0, min(100.0, float(percent))) * size / 100
        full = int(filled)
        eighth = int((filled - full) * 8)
        bar = "█" * full + (_EIGHTHS[eighth] if full < size and eighth else "")
        return bar + "░" * (size - width(bar))
    if percent is None:
        return "[" + "." * size + "]"
    full = int(max(0, min(100, percent)) * size / 100)
    return "[" + "#" * full + "." * (size - full) + "]"


def watch_line(task: dict[str, Any], unicode: bool = True, color: bool = False, now: datetime | None = None,
               columns: int | None = None) -> str:
    """One status line: `name  ██████░░░░  60%  Running  copying files  (12s)`."""
    percent = percent_of(task)
    phase = str(task.get("phase") or "Pending")
    if phase in TERMINAL and not task.get("finished"):
        phase = "Pending (rerun requested)"  # the status still shows the previous run
    progress = task.get("progress") if isinstance(task.get("progress"), dict) else None
    message = str(progress.get("message") or "") if progress else ""
    elapsed = run_duration(task, now)
    pct = "    " if percent is None else f"{percent:>3}%"
    head = f"{task.get('name', '')}  {progress_bar(percent, 24, unicode)} {pct}  "
    tail = f"{'  ' + message if message else ''}{f'  ({elapsed})' if elapsed else ''}"
    line = head + phase + tail
    if columns and width(line) > columns - 1:  # never wrap: \r could not go back to the start
        keep = max(0, columns - 2 - width(head + phase))
        tail = tail[:keep - 1] + "…" if keep > 1 and len(tail) > keep else tail[:keep]
    return head + paint(phase, phase, color) + tail


def outcome(task: dict[str, Any]) -> str:
    """The final line of `watch`."""
    name, phase = task.get("name", ""), task.get("phase", "")
    took = run_duration(task)
    if phase == "Succeeded":
        result = task.get("result")
        shown = "" if result is None else "; result: " + (result if isinstance(result, str) else json.dumps(result, ensure_ascii=False))
        return f"Task {name} Succeeded" + (f" in {took}" if took else "") + shown
    if phase == "Failed":
        return f"Task {name} Failed" + (f" after {took}" if took else "") + ": " + failure_text(task)
    if phase == "Cancelled":
        return f"Task {name} Cancelled" + (f" after {took}" if took else "")
    return f"Task {name} is {phase}"


def failure_text(task: dict[str, Any]) -> str:
    failure = task.get("lastFailure") or {}
    parts = []
    if failure.get("reason"):
        parts.append(str(failure["reason"]))
    if failure.get("exitCode") is not None:
        parts.append(f"exit code {failure['exitCode']}")
    text = ", ".join(parts)
    if failure.get("message"):
        text = f"{text}: {failure['message']}" if text else str(failure["message"])
    if not text:
        for condition in task.get("conditions") or []:
            if condition.get("type") == "Finished" and condition.get("status") == "True":
                text = f"{condition.get('reason', '')}: {condition.get('message', '')}"
    return text or "(no reason given)"


# --- one Task ---------------------------------------------------------------------------------

def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def describe(task: dict[str, Any], color: bool = False, now: datetime | None = None) -> str:
    spec = task.get("spec") or {}
    phase = str(task.get("phase") or "Pending")
    rows: list[tuple[str, str]] = [
        ("Name", str(task.get("name", ""))), ("Namespace", str(task.get("namespace", ""))),
        ("Type", task_type(task)), ("Queue", task_queue(task) or "-"),
        ("Priority", str(spec.get("priority", 0))),
    ]
    state = paint(phase, phase, color)
    if not task.get("finished") and phase in TERMINAL:
        state += f" (run {spec.get('rerun', 0)} requested, not started yet)"
    attempts = task.get("attempts", 0)
    rows.append(("Phase", f"{state}   run {task.get('run', 0)}, {attempts} attempt{'s' if attempts != 1 else ''}"))
    percent = percent_of(task)
    progress = task.get("progress") if isinstance(task.get("progress"), dict) else None
    if percent is not None or progress:
        text = f"{progress_bar(percent, 20)} {percent if percent is not None else '-'}%"
        if progress and progress.get("message"):
            text += f"  {progress['message']}"
        rows.append(("Progress", text))
    if task.get("submittedBy"):
        rows.append(("Submitted by", str(task["submittedBy"])))
    for label, key in (("Created", "creationTimestamp"), ("Queued", "queuedTime"), ("Started", "startTime"), ("Completed", "completionTime")):
        if task.get(key):
            rows.append((label, f"{task[key]} ({age(task[key], now)} ago)"))
    took = run_duration(task, now)
    if took:
        rows.append(("Duration", took))
    if task.get("jobName"):
        rows.append(("Job", str(task["jobName"])))
    if task.get("labels"):
        rows.append(("Labels", ", ".join(f"{k}={v}" for k, v in sorted(task["labels"].items()))))
    if spec.get("parameters") is not None:
        rows.append(("Parameters", compact_json(spec["parameters"])))
    resources = spec.get("resources")
    if resources:
        rows.append(("Resources", ", ".join(f"{k}={v}" for k, v in resources.items())))
    if task.get("result") is not None:
        result = task["result"]
        rows.append(("Result", result if isinstance(result, str) else compact_json(result)))
    if task.get("lastFailure"):
        rows.append(("Last failure", failure_text(task)))
    label_width = 14  # "Submitted by: " and "Last failure: ", the longest labels
    lines = [f"{label + ':':<{label_width}}{value}" for label, value in rows]
    conditions = task.get("conditions") or []
    if conditions:
        lines.append("Conditions:")
        cond_rows = [[c.get("type", ""), c.get("status", ""), c.get("reason", ""), age(c.get("lastTransitionTime"), now),
                      c.get("message", "")] for c in conditions]
        lines.extend("  " + line for line in table(("TYPE", "STATUS", "REASON", "AGE", "MESSAGE"), cond_rows).splitlines())
    history = task.get("history") or []
    if history:
        lines.append("History:")
        hist_rows = [[h.get("run", ""), h.get("phase", ""), h.get("reason", ""), h.get("attempts", 0), h.get("jobName", "") or "-",
                      h.get("completionTime") or "-"] for h in history]
        lines.extend("  " + line for line in table(("RUN", "PHASE", "REASON", "ATTEMPTS", "JOB", "COMPLETED"), hist_rows).splitlines())
    return "\n".join(lines)


# --- TaskGroups -------------------------------------------------------------------------------

GROUP_COUNTS = ("succeeded", "failed", "cancelled", "running", "queued", "pending")


def _group_progress(group: dict[str, Any]) -> tuple[int, int, int]:
    """(finished, total, percent) from the gateway's `progress` (it knows spec.size)."""
    progress = group.get("progress")
    values = [progress.get(k) if isinstance(progress, dict) else None for k in ("finished", "total", "percent")]
    finished, total, percent = (v if isinstance(v, int) else 0 for v in values)
    return finished, total, percent


def group_bar(group: dict[str, Any], size: int = 20, unicode: bool = True) -> str:
    """The group's one progress bar: finished members of the expected ones, e.g. `[#######.....] 7/12`."""
    finished, total, _ = _group_progress(group)
    # The exact fraction, not the rounded percent: 7 of 12 members fill 7 of 12 cells.
    return f"{progress_bar(min(finished, total) * 100 / total if total else None, size, unicode)} {finished}/{total}"


def group_counts(group: dict[str, Any]) -> str:
    """`6 succeeded, 1 failed, 2 running`: the non-zero counts, in the order a person reads an outcome."""
    counts = (group.get("status") or {}).get("counts") or {}
    parts = [f"{counts[k]} {k}" for k in GROUP_COUNTS if isinstance(counts.get(k), int) and counts[k]]
    return ", ".join(parts) if parts else "no members yet"


def group_callback(group: dict[str, Any]) -> str:
    """The callback Task and its phase once created, else when it will run; `-` without one."""
    spec, status = group.get("spec") or {}, group.get("status") or {}
    callback = spec.get("callback")
    if not isinstance(callback, dict):
        return "-"
    if status.get("callbackTask"):
        return f"{status['callbackTask']} ({status.get('callbackPhase') or 'Pending'})"
    return "when all Succeeded" if callback.get("when", "Succeeded") == "Succeeded" else "when all Finished"


GROUP_HEADERS = ("NAME", "PROGRESS", "SUCCEEDED", "FAILED", "RUNNING", "WAITING", "PHASE", "CALLBACK", "AGE")


def _counted(group: dict[str, Any], *keys: str) -> int:
    counts = (group.get("status") or {}).get("counts") or {}
    return sum(counts[k] for k in keys if isinstance(counts.get(k), int))


def group_table(groups: Sequence[dict[str, Any]], unicode: bool = True, color: bool = False, now: datetime | None = None) -> str:
    """FAILED includes the cancelled members (neither succeeded), WAITING the pending and queued ones."""
    rows = []
    for group in groups:
        rows.append([group.get("name", ""), group_bar(group, 12, unicode), _counted(group, "succeeded"), _counted(group, "failed", "cancelled"),
                     _counted(group, "running"), _counted(group, "pending", "queued"), str(group.get("phase") or "Pending"),
                     group_callback(group), age(group.get("creationTimestamp"), now)])
    return table(GROUP_HEADERS, rows, {6: color_phase(color)})


def describe_group(group: dict[str, Any], unicode: bool = True, color: bool = False, now: datetime | None = None) -> str:
    spec, status = group.get("spec") or {}, group.get("status") or {}
    phase = str(group.get("phase") or "Pending")
    finished, total, percent = _group_progress(group)
    why = group.get("message") or group.get("reason")
    counts = status.get("counts") or {}
    exist = counts.get("total", 0) if isinstance(counts.get("total"), int) else 0
    rows: list[tuple[str, str]] = [
        ("Name", str(group.get("name", ""))), ("Namespace", str(group.get("namespace", ""))),
        ("Phase", paint(phase, phase, color) + (f"   ({why})" if why else "")),
        ("Progress", f"{group_bar(group, 24, unicode)}  {percent}%"),
        ("Members", group_counts(group) + (f"   ({exist} of {spec['size']} exist)" if isinstance(spec.get("size"), int) and exist < spec["size"] else "")),
        ("Selector", str(group.get("memberSelector") or "")),
    ]
    callback = spec.get("callback")
    if isinstance(callback, dict):
        template = (callback.get("taskTemplate") or {}).get("spec") or {}
        text = f"type {template.get('type', '')}, when all {callback.get('when', 'Succeeded')}"
        if status.get("callbackTask"):
            text += f": task {status['callbackTask']} {status.get('callbackPhase') or 'Pending'}"
        rows.append(("Callback", text))
    if group.get("submittedBy"):
        rows.append(("Created by", str(group["submittedBy"])))
    for label, key, holder in (("Created", "creationTimestamp", group), ("Completed", "completionTime", status)):
        if holder.get(key):
            rows.append((label, f"{holder[key]} ({age(holder[key], now)} ago)"))
    lines = [f"{label + ':':<12}{value}" for label, value in rows]
    conditions = status.get("conditions") or []
    if conditions:
        lines.append("Conditions:")
        cond_rows = [[c.get("type", ""), c.get("status", ""), c.get("reason", ""), age(c.get("lastTransitionTime"), now),
                      c.get("message", "")] for c in conditions]
        lines.extend("  " + line for line in table(("TYPE", "STATUS", "REASON", "AGE", "MESSAGE"), cond_rows).splitlines())
    return "\n".join(lines)


def group_watch_line(group: dict[str, Any], unicode: bool = True, color: bool = False, columns: int | None = None) -> str:
    """One status line: `resize-all  ████████░░░░ 7/12  Running  6 succeeded, 1 failed, 2 running`."""
    phase = str(group.get("phase") or "Pending")
    head = f"{group.get('name', '')}  {group_bar(group, 24, unicode)}  "
    tail = f"  {group_counts(group)}"
    callback = group_callback(group)
    if (group.get("status") or {}).get("callbackTask"):
        tail += f"; callback {callback}"
    if columns and width(head + phase + tail) > columns - 1:  # never wrap: \r could not go back to the start
        keep = max(0, columns - 2 - width(head + phase))
        tail = tail[:keep - 1] + "…" if keep > 1 and len(tail) > keep else tail[:keep]
    return head + paint(phase, phase, color) + tail


def group_outcome(group: dict[str, Any]) -> str:
    """The final line of `groups watch`."""
    phase = str(group.get("phase") or "Pending")
    text = f"TaskGroup {group.get('name', '')} {phase}"
    if group.get("reason") and group.get("reason") != phase:
        text += f" ({group['reason']})"
    if group.get("message"):
        text += f": {group['message']}"
    return text + f" [{group_counts(group)}]"


def dump(value: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(value, indent=2, ensure_ascii=False)
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=False).rstrip("\n")


# --- errors -----------------------------------------------------------------------------------

def api_error(error: ApiError, config_hint: str | None = None) -> str:
    """The gateway's error, every field named: what a person needs to fix the request."""
    lines = [f"error: {error.message or error.reason} ({error.status} {error.reason})"]
    shown = set()
    for field, message in error.details:
        shown.add(field)
        lines.append(f"  - {field}: {message}" if field else f"  - {message}")
    for item in error.items:
        status = item.get("status")
        item_error = item.get("error") or {}
        if status in (200, 201, 424) or not item_error:
            continue
        fields = [d.get("field") for d in item_error.get("details") or [] if isinstance(d, dict)]
        if fields and all(f in shown for f in fields):
            continue
        who = f" ({item['name']})" if item.get("name") else ""
        lines.append(f"  - item {item.get('index')}{who}: {status} {item_error.get('reason', '')}: {item_error.get('message', '')}")
    if error.status == 401:
        where = f" or `token:` in {config_hint}" if config_hint else ""
        lines.append(f"hint: pass a Kubernetes token with --token, KUBETASK_TOKEN{where} (e.g. `kubectl create token <serviceaccount>`)")
    elif error.status == 403:
        lines.append("hint: the cluster's RBAC decides; a Role for gateway users is in docs/gateway.md")
    elif error.retry_after:
        lines.append(f"hint: try again in {error.retry_after}s")
    return "\n".join(lines)
