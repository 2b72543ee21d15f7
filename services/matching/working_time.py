"""Working Time Regulations as matching applies them. No I/O.

- At most 48 hours in any 7 days, unless the clinician opted out. (The law averages 48
  hours over 17 weeks; a bank that sees only the shifts it books can't know the other
  16 weeks, so it holds every 7 days to 48 hours, which is stricter, never looser.) A
  new shift may not take any 7 days that include it past 48 hours; hours past the limit
  in 7 days that don't include it (bookings made before the rule, or elsewhere) bar
  nothing new.
- 11 hours' rest between working days: two sessions on different days (London dates of
  their starts) must be 11 hours apart. Two sessions on one day are one working day.
- For the self-employed both are warnings to weigh, not blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
WEEK = timedelta(days=7)
WEEK_LIMIT_H = 48.0
REST = timedelta(hours=11)

Interval = tuple[datetime, datetime]


# Planning asks about the same few thousand session starts millions of times; the time
# zone conversion was a tenth of a region's planning time.
@lru_cache(maxsize=65_536)
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


def busiest_week_with(new: Interval, others: Sequence[Interval], *, stop_above: float) -> float:
    """The most hours in any 7 days that include ``new``, with it; once some stretch is
    over ``stop_above`` hours, that stretch's hours (the search stops there).

    Only stretches that include the new shift count: hours a clinician once worked over
    the limit elsewhere (booked before, or somewhere else) must not bar every later
    shift. The early stop is for planning, which asks this of every candidate pair, and
    asks most of clinicians already at the limit.
    """
    week = WEEK.total_seconds()
    start, end = new[0].timestamp(), new[1].timestamp()
    lo, hi = start - week, end + week
    shifts = [(start, end)]
    for s, e in others:
        a, b = s.timestamp(), e.timestamp()
        if b > lo and a < hi:  # only shifts within 7 days of the new one share a week
            shifts.append((a, b))
    # The busiest stretch starts when some shift starts, or 7 days before one ends; of
    # those, only the ones whose 7 days overlap the new shift.
    best = 0.0
    for t in [a for a, _ in shifts] + [b - week for _, b in shifts]:
        if t >= end or t + week <= start:
            continue
        t_end = t + week
        seconds = 0.0
        for a, b in shifts:
            if b > t and a < t_end:
                seconds += min(b, t_end) - max(a, t)
        best = max(best, seconds / 3600)
        if best > stop_above:
            break
    return best


def breaks_week_limit(new: Interval, others: Sequence[Interval]) -> bool:
    """Whether some 7 days that include ``new`` would hold more than 48 hours with it."""
    total = (new[1] - new[0]).total_seconds() + sum((e - s).total_seconds() for s, e in others)
    # Fewer than 48 hours all told can't be over 48 in any 7 days: skip the search.
    if total <= WEEK_LIMIT_H * 3600:
        return False
    return busiest_week_with(new, others, stop_above=WEEK_LIMIT_H + 1e-9) > WEEK_LIMIT_H + 1e-9


def breaches(new: Interval, others: Sequence[Interval], *, opted_out: bool) -> list[str]:
    """What adding ``new`` to ``others`` would break, in plain words (empty: nothing)."""
    found: list[str] = []
    if any(too_little_rest(new, o) for o in others):
        found.append("It leaves less than 11 hours' rest between working days.")
    if not opted_out and breaks_week_limit(new, others):
        hours = busiest_week_with(new, others, stop_above=float("inf"))
        found.append(f"It takes you to {hours:.1f} hours in 7 days, over the 48-hour limit.")
    return found


def breaks_any(new: Interval, others: Sequence[Interval], *, opted_out: bool) -> bool:
    """``bool(breaches(...))`` without the words, for planning's inner loop."""
    if any(too_little_rest(new, o) for o in others):
        return True
    return not opted_out and breaks_week_limit(new, others)
