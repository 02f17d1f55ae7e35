"""Cron schedules: parsing, time zones and the next run times. Pure, used by the operator and the gateway.

The cron arithmetic is cronsim's (https://github.com/cuu508/cronsim, maintained, no dependencies),
chosen over croniter for one reason that matters to a scheduler: it follows Debian cron's rules
at daylight-saving changes. A daily job at 02:30 runs once on the day the clocks go back (croniter
runs it twice) and, on the day they spring forward past 02:30, at the first moment after the gap
(03:00). Jobs whose hour is `*` run every real hour. cronsim has no @macros; the five lines of
CRON_MACROS map them, as Kubernetes' CronJob does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from kubetask.resources.models import CRON_MACROS, CRON_MESSAGE, CRON_PATTERN

UTC = timezone.utc


def parse_schedule(expression: str) -> str:
    """The five-field form of `expression` (macros expanded); ValueError naming the problem.
    The pattern is the CRD's CEL rule, so the gateway refuses exactly what the API server refuses,
    and cronsim then catches what a pattern cannot (February 30th never comes)."""
    text = expression.strip()
    if not re.fullmatch(CRON_PATTERN, text):
        raise ValueError(f"{expression!r}: {CRON_MESSAGE}")
    fields = CRON_MACROS.get(text.lower(), text)
    try:
        CronSim(fields, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as error:
        raise ValueError(f"{expression!r}: {error} (the schedule can never fire or is not a valid cron expression)") from error
    return " ".join(fields.split())


def zone(name: str | None) -> ZoneInfo:
    """The IANA time zone `name` (UTC when unset); ValueError for an unknown name."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:  # OSError: "America" is a folder of zones
        raise ValueError(f"{name!r} is not an IANA time zone name such as UTC or Europe/Berlin") from error


def run_times(expression: str, time_zone: str | None, after: datetime) -> Iterator[datetime]:
    """The schedule's times strictly after `after`, in UTC, without end."""
    tz = zone(time_zone)
    for when in CronSim(parse_schedule(expression), after.astimezone(tz)):
        utc = when.astimezone(UTC)
        if utc > after:
            yield utc


def next_time(expression: str, time_zone: str | None, after: datetime) -> datetime:
    return next(run_times(expression, time_zone, after))


def due_times(expression: str, time_zone: str | None, since: datetime, until: datetime, limit: int) -> tuple[list[datetime], bool]:
    """The schedule's times t with since < t <= until, oldest first, at most the `limit` newest
    (and whether more were left out): after a long outage only the count and the last one matter."""
    due: list[datetime] = []
    truncated = False
    for when in run_times(expression, time_zone, since):
        if when > until:
            break
        due.append(when)
        if len(due) > limit:
            due.pop(0)
            truncated = True
    return due, truncated
