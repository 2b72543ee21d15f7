"""Working Time Regulations as matching applies them. No I/O.

- At most 48 hours in any 7 days, unless the clinician opted out. (The law averages 48
  hours over 17 weeks; a bank that sees only the shifts it books can't know the other
  16 weeks, so it holds every 7 days to 48 hours, which is stricter, never looser.)
- 11 hours' rest between working days: two sessions on different days (London dates of
  their starts) must be 11 hours apart. Two sessions on one day are one working day.
- For the self-employed both are warnings to weigh, not blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
WEEK = timedelta(days=7)
WEEK_LIMIT_H = 48.0
REST = timedelta(hours=11)

Interval = tuple[datetime, datetime]


def working_day(at: datetime) -> date:
    """The London date a shift starting at ``at`` belongs to."""
    return at.astimezone(LONDON).date()


def too_little_rest(a: Interval, b: Interval) -> bool:
    """Whether two shifts on different working days are less than 11 hours apart."""
    first, second = sorted((a, b))
    if second[0] < first[1]:
        return False  # overlapping shifts are another rule's business
    if working_day(first[0]) == working_day(second[0]):
        return False
    return second[0] - first[1] < REST


def most_hours_in_a_week(shifts: Sequence[Interval]) -> float:
    """The most hours worked in any 7-day stretch.

    The busiest stretch starts when some shift starts or ends exactly 7 days after some
    shift ends, so those instants are the only ones to try.
    """
    starts = [s for s, _ in shifts] + [e - WEEK for _, e in shifts]
    best = 0.0
    for t in starts:
        end = t + WEEK
        hours = sum(max(0.0, (min(e, end) - max(s, t)).total_seconds()) for s, e in shifts) / 3600
        best = max(best, hours)
    return best


def breaches(new: Interval, others: Sequence[Interval], *, opted_out: bool) -> list[str]:
    """What adding ``new`` to ``others`` would break, in plain words (empty: nothing)."""
    found: list[str] = []
    if any(too_little_rest(new, o) for o in others):
        found.append("It leaves less than 11 hours' rest between working days.")
    total = sum((e - s).total_seconds() for s, e in [*others, new]) / 3600
    # Fewer than 48 hours all told can't be over 48 in any 7 days: skip the search.
    if not opted_out and total > WEEK_LIMIT_H:
        hours = most_hours_in_a_week([*others, new])
        if hours > WEEK_LIMIT_H + 1e-9:
            found.append(f"It takes you to {hours:.1f} hours in 7 days, over the 48-hour limit.")
    return found
