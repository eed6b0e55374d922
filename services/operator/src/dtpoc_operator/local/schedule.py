"""When a local scheduled service's next run is due (pure functions over croniter).

Like the CronJob controller: only the most recent missed time runs (an
operator that was down for a day does not start a day's worth of runs), and
a run is named ``<child name>-<minutes since epoch>`` of its scheduled time.
"""

from __future__ import annotations

import datetime as dt

from croniter import croniter

from dtpoc_operator import layout


def is_valid(expression: str) -> bool:
    return bool(expression) and len(expression.split()) == 5 and bool(croniter.is_valid(expression))


def due(expression: str, *, last: dt.datetime, now: dt.datetime) -> dt.datetime | None:
    """The latest scheduled time in ``(last, now]``, or None when nothing is due."""
    latest: dt.datetime = croniter(expression, now + dt.timedelta(seconds=1)).get_prev(dt.datetime)
    latest = latest if latest.tzinfo else latest.replace(tzinfo=dt.UTC)
    return latest if last < latest <= now else None


def next_time(expression: str, *, after: dt.datetime) -> dt.datetime:
    nxt: dt.datetime = croniter(expression, after).get_next(dt.datetime)
    return nxt if nxt.tzinfo else nxt.replace(tzinfo=dt.UTC)


def run_name(service_id: str, scheduled: dt.datetime) -> str:
    return f"{layout.child_name(service_id)}-{int(scheduled.timestamp() // 60)}"
