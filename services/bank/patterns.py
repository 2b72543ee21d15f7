"""Weekly availability patterns, expanded into dated windows. No I/O.

Times are London wall-clock times: "Tuesdays 09:00 to 17:00" means 09:00 local in
winter and in summer alike, so the UTC instants move with the clocks. A time the clocks
skip (01:30 on the spring change) is read as RFC 5545 reads it, with the offset before
the jump (02:30 BST), and a time they show twice (01:30 on the autumn change) is its
first showing: Python's ``fold=0``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
HORIZON = timedelta(weeks=8)


@dataclass(frozen=True, slots=True)
class Pattern:
    """Every given weekday, from one local time to another, between two dates."""

    id: uuid.UUID
    weekday: int  # Monday is 0
    start_time: time
    end_time: time
    valid_from: date
    valid_until: date | None = None


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One dated window of a pattern."""

    on_date: date
    starts_at: datetime
    ends_at: datetime


def occurrences(
    pattern: Pattern, *, start: date, end: date, exceptions: frozenset[date] = frozenset()
) -> list[Occurrence]:
    """The pattern's windows on dates from ``start`` up to (not including) ``end``."""
    first = max(start, pattern.valid_from)
    last = min(end, pattern.valid_until + timedelta(days=1)) if pattern.valid_until else end
    day = first + timedelta(days=(pattern.weekday - first.weekday()) % 7)
    found = []
    while day < last:
        starts_at = datetime.combine(day, pattern.start_time, LONDON).astimezone(UTC)
        ends_at = datetime.combine(day, pattern.end_time, LONDON).astimezone(UTC)
        # Only a start in the hour skipped in spring and an end just after it (01:30 to
        # 02:00) can come out empty or reversed: that day the clock never shows the
        # window, so there is none (the database refuses a window ending before it starts).
        if day not in exceptions and ends_at > starts_at:
            found.append(Occurrence(day, starts_at, ends_at))
        day += timedelta(days=7)
    return found


def london_date(instant: datetime) -> date:
    """The London calendar date of an instant."""
    return instant.astimezone(LONDON).date()
