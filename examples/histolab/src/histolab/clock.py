"""Simulated time: hours since Monday 00:00 of the first week.

Staff work shifts on some weekdays; tissue processors start their runs at
fixed times of day. Both are answered here so the model asks one question,
"when may this happen next?", and never does calendar arithmetic itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HOURS_PER_DAY = 24.0
HOURS_PER_WEEK = 7 * HOURS_PER_DAY
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def weekday(t: float) -> int:
    """0 (Monday) .. 6 (Sunday) of simulated time ``t``."""
    return int(t // HOURS_PER_DAY) % 7


def hour_of_day(t: float) -> float:
    """Hours since midnight of simulated time ``t``."""
    return t % HOURS_PER_DAY


def parse_days(text: str) -> frozenset[int]:
    """Weekday numbers of ``"all"``, ``"mon-fri"``, ``"mon,wed,fri"`` or ``"sat-sun"``.

    Raises ValueError naming the part it could not read.
    """
    cleaned = text.strip().lower()
    if cleaned in ("all", "daily", "mon-sun", "*"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in cleaned.replace(" ", "").split(","):
        if not part:
            continue
        if "-" in part:
            first, last = part.split("-", 1)
            if first not in WEEKDAYS or last not in WEEKDAYS:
                raise ValueError(f"unknown day range {part!r} (use e.g. mon-fri)")
            start, end = WEEKDAYS.index(first), WEEKDAYS.index(last)
            days.update(
                range(start, end + 1) if start <= end else [*range(start, 7), *range(end + 1)]
            )
        elif part in WEEKDAYS:
            days.add(WEEKDAYS.index(part))
        else:
            raise ValueError(f"unknown day {part!r} (use mon..sun, a range, or all)")
    if not days:
        raise ValueError("no days given")
    return frozenset(days)


@dataclass(frozen=True)
class Shift:
    """Working hours: ``start``..``end`` (hours of day) on ``days``.

    ``end`` may be below ``start`` for a night shift that runs past midnight
    (it belongs to the day it starts on); ``0..24`` on every day means always.
    """

    start: float
    end: float
    days: frozenset[int]

    @property
    def always(self) -> bool:
        return len(self.days) == 7 and self.length >= HOURS_PER_DAY

    @property
    def length(self) -> float:
        """Hours per working day."""
        span = self.end - self.start
        return span if span > 0 else span + HOURS_PER_DAY

    def _windows_from(self, day: int) -> tuple[float, float]:
        """The shift window that starts on absolute day number ``day``."""
        begin = day * HOURS_PER_DAY + self.start
        return begin, begin + self.length

    def next_on(self, t: float) -> float:
        """``t`` if the shift is on at ``t``, else when it next starts."""
        if self.always:
            return t
        today = math.floor(t / HOURS_PER_DAY)
        # Yesterday's window may run past midnight into today.
        for day in range(today - 1, today + 8):
            if day % 7 not in self.days:
                continue
            begin, end = self._windows_from(day)
            if t < end:
                return max(t, begin)
        raise AssertionError("a shift with at least one day always has a window within a week")

    def hours_between(self, t0: float, t1: float) -> float:
        """On-shift hours in ``[t0, t1)``, for utilisation of working time."""
        if self.always:
            return t1 - t0
        total = 0.0
        for day in range(math.floor(t0 / HOURS_PER_DAY) - 1, math.ceil(t1 / HOURS_PER_DAY) + 1):
            if day % 7 not in self.days:
                continue
            begin, end = self._windows_from(day)
            total += max(0.0, min(end, t1) - max(begin, t0))
        return total


def next_run_time(t: float, *, times: tuple[float, ...], days: frozenset[int]) -> float:
    """The first scheduled start at or after ``t`` (``times`` are hours of day)."""
    today = math.floor(t / HOURS_PER_DAY)
    for day in range(today, today + 8):
        if day % 7 not in days:
            continue
        for hour in sorted(times):
            start = day * HOURS_PER_DAY + hour
            if start >= t:
                return start
    raise AssertionError("a schedule with at least one time and day recurs within a week")
