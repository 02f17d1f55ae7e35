"""When a TaskSchedule creates a Task, and what its status says. Pure: no I/O, the clock is an argument.

`plan(schedule, tasks, now)` holds every rule; the controller (ScheduleController) only executes
the plan: cancel (Replace), create, delete past the history limits, write the status, and come
back at the next run time.

Missed runs (the operator was down, or a run was skipped on purpose):
- The runs due since the last one are counted. Only the newest of them is created (one catch-up
  run), the older ones are skipped and counted in status.missedRuns, as CronJob does.
- With startingDeadlineSeconds, the catch-up run is created only within that many seconds of
  its time; a later one is skipped and counted too.
- Forbid skips (and counts) a run that comes due while an earlier Task of the schedule is
  unfinished; Replace cancels that Task and creates the new one.
- Runs due while the schedule is suspended are neither created nor counted: after a resume, the
  next run is the first one after the resume.
A run's Task name comes from the schedule and the scheduled time, so it is created at most once
(a second create answers 409), across restarts and with two operator processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from cronsim import CronSim

from kubetask.operator.records import ScheduledTask
from kubetask.operator.status import condition, epoch, rfc3339
from kubetask.resources.cron import parse_schedule, run_times, zone
from kubetask.resources.models import Phase
from kubetask.resources.scheduling import scheduled_task_name

SKIP_REASONS = frozenset({"MissedDeadline", "ForbidSkipped"})

MAX_COUNTED = 10_000  # missed runs counted per reconcile at most: a minutely schedule down for a week is 10,080
MAX_ACTIVE_LISTED = 100  # status.active holds the newest ones; activeCount counts all


@dataclass(frozen=True)
class SchedulePlan:
    create: datetime | None = None  # the scheduled time to create a Task for now
    cancel: tuple[str, ...] = ()  # unfinished Tasks to cancel first (Replace)
    delete: tuple[tuple[str, str], ...] = ()  # (name, uid) of finished Tasks past the history limits
    status: dict[str, Any] | None = None  # the desired status
    skipped: str = ""  # why a due run was not created (an Event says so), else ""
    requeue_after: float | None = None  # seconds until the next run is due (None: no run will come)


def _utc(timestamp: Any) -> datetime | None:
    seconds = epoch(timestamp)
    return datetime.fromtimestamp(seconds, timezone.utc) if seconds is not None else None


def latest_due(expression: str, time_zone: str | None, since: datetime, now: datetime) -> tuple[datetime | None, int]:
    """The newest run time t with since < t <= now, and how many there are (at most MAX_COUNTED)."""
    tz = zone(time_zone)
    # cronsim walks backwards: the newest due time without walking forward through a long
    # outage. It starts past `now` (its reverse walk excludes the start) so a run exactly at now counts.
    newest = None
    for when in CronSim(parse_schedule(expression), (now + timedelta(minutes=1)).astimezone(tz), reverse=True):
        if when.astimezone(timezone.utc) <= now:
            newest = when.astimezone(timezone.utc)
            break
    if newest is None or newest <= since:
        return None, 0
    count = 0
    for when in run_times(expression, time_zone, since):
        if when > now or count >= MAX_COUNTED:
            break
        count += 1
    return newest, count


def history_to_delete(tasks: list[ScheduledTask], successful_limit: int, failed_limit: int) -> list[tuple[str, str]]:
    """Finished Tasks beyond the limits, newest kept (by completion, else scheduled, time)."""
    def newest_first(group: list[ScheduledTask]) -> list[ScheduledTask]:
        return sorted(group, key=lambda t: (t.completed or t.scheduled or 0.0, t.name), reverse=True)

    succeeded = newest_first([t for t in tasks if t.finished and t.phase == Phase.SUCCEEDED.value])
    failed = newest_first([t for t in tasks if t.finished and t.phase in (Phase.FAILED.value, Phase.CANCELLED.value)])
    return [(t.name, t.uid) for t in succeeded[successful_limit:] + failed[failed_limit:]]


def plan(schedule: dict[str, Any], tasks: list[ScheduledTask], now: datetime) -> SchedulePlan:
    meta, spec, previous = schedule["metadata"], schedule.get("spec") or {}, schedule.get("status") or {}
    generation = meta.get("generation")
    stamp = rfc3339(now)
    old_conditions = {c["type"]: c for c in previous.get("conditions") or []}
    suspended = bool(spec.get("suspend"))

    active = sorted((t for t in tasks if not t.finished), key=lambda t: (t.created, t.name), reverse=True)
    successes = [t.completed for t in tasks if t.phase == Phase.SUCCEEDED.value and t.completed is not None]
    last_success = max([s for s in [epoch(previous.get("lastSuccessfulTime")), *successes] if s is not None], default=None)
    delete = tuple(history_to_delete(tasks, int(spec.get("successfulHistoryLimit", 3)), int(spec.get("failedHistoryLimit", 1))))

    was = old_conditions.get("Suspended") or {}
    resumed = not suspended and (was.get("status") == "True" or was.get("reason") == "Resumed")
    suspended_condition = condition(old_conditions, "Suspended", "True" if suspended else "False",
                                    "Suspended" if suspended else "Resumed" if resumed else "Active",
                                    "spec.suspend is true: no Tasks are created" if suspended else
                                    "resumed: runs due while suspended were not made up" if resumed else "", generation, stamp)
    status: dict[str, Any] = {
        "lastScheduleTime": previous.get("lastScheduleTime"),
        "lastSuccessfulTime": rfc3339(datetime.fromtimestamp(last_success, timezone.utc)) if last_success else None,
        "nextScheduleTime": None,
        "active": [{"name": t.name, "uid": t.uid} for t in active[:MAX_ACTIVE_LISTED]],
        "activeCount": len(active),
        "missedRuns": int(previous.get("missedRuns") or 0),
        "observedGeneration": generation,
    }

    def finish(ready: str, reason: str, message: str, **fields: Any) -> SchedulePlan:
        status["conditions"] = [condition(old_conditions, "Ready", ready, reason, message, generation, stamp), suspended_condition]
        next_time = status["nextScheduleTime"]
        requeue = None
        if next_time is not None:
            requeue = max(0.0, (next_time - now).total_seconds())
            status["nextScheduleTime"] = rfc3339(next_time)
        if isinstance(status["lastScheduleTime"], datetime):
            status["lastScheduleTime"] = rfc3339(status["lastScheduleTime"])
        return SchedulePlan(delete=delete, status=status, requeue_after=requeue, **fields)

    try:
        expression, time_zone = spec["schedule"], spec.get("timeZone")
        following = next(run_times(expression, time_zone, now), None)
    except (KeyError, ValueError) as error:
        return finish("False", "InvalidSchedule", str(error))
    if suspended:
        return finish("True", "Suspended", "suspended: no Tasks are created until spec.suspend is false")
    status["nextScheduleTime"] = following

    # Since when are runs due: the last one created or skipped, else the schedule's creation (as
    # CronJob); and never before the last resume (the Suspended condition's turn to False), so
    # runs due while suspended are not made up.
    since = _utc(previous.get("lastScheduleTime")) or _utc(meta.get("creationTimestamp")) or now
    if resumed:
        since = max(since, _utc(suspended_condition["lastTransitionTime"]) or since)
    newest, count = latest_due(expression, time_zone, since, now)
    if newest is None:
        ready = old_conditions.get("Ready") or {}
        if ready.get("reason") in SKIP_REASONS:  # the last skip stays visible until the next run
            return finish("True", ready["reason"], ready.get("message", ""))
        return finish("True", "Scheduled", _next_message(following))
    status["lastScheduleTime"] = newest
    status["missedRuns"] += count - 1  # only the newest due run is made up
    deadline = spec.get("startingDeadlineSeconds")
    late = (now - newest).total_seconds()
    if deadline is not None and late > float(deadline):
        status["missedRuns"] += 1
        return finish("True", "MissedDeadline", f"the run of {rfc3339(newest)} was {late:.0f}s late, past startingDeadlineSeconds {deadline}; skipped. " + _next_message(following),
                      skipped=f"run of {rfc3339(newest)} skipped: {late:.0f}s past its time, startingDeadlineSeconds is {deadline}")
    policy = spec.get("concurrencyPolicy", "Allow")
    # This very run's Task may exist already (created, then the status write failed): it is not
    # an earlier run in the way, and creating it again only answers 409.
    this_run = scheduled_task_name(meta["name"], newest)
    if any(t.name == this_run for t in tasks):
        return finish("True", "Scheduled", _next_message(following), create=newest)
    if active and policy == "Forbid":
        status["missedRuns"] += 1
        names = ", ".join(t.name for t in active[:3])
        return finish("True", "ForbidSkipped", f"the run of {rfc3339(newest)} was skipped: {names} is unfinished (concurrencyPolicy Forbid). " + _next_message(following),
                      skipped=f"run of {rfc3339(newest)} skipped: {names} is unfinished (concurrencyPolicy Forbid)")
    cancel = tuple(t.name for t in active) if policy == "Replace" else ()
    return finish("True", "Scheduled", _next_message(following), create=newest, cancel=cancel)


def _next_message(following: datetime | None) -> str:
    return f"next run at {rfc3339(following)}" if following else "no further run times"


