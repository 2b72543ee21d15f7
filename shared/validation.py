"""Input types that refuse what the database or the clock can't hold.

Found by generated requests (schemathesis): a NUL character passes pydantic but
PostgreSQL text refuses it, a year-9999 instant overflows when moved to UTC, a date
at the end of the calendar overflows when a day is added to it, and a wall-clock time
sent with a UTC offset can't be stored in a ``time`` column (and compares with the
other end of its range by the offset, not as the clock reads). Each is refused here,
at the edge, with a message naming the field.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, StringConstraints, WithJsonSchema

EARLIEST_YEAR, LATEST_YEAR = 2000, 2100


def _sane_year(value: date) -> None:
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        msg = f"must be between the years {EARLIEST_YEAR} and {LATEST_YEAR}"
        raise ValueError(msg)


def _sane_instant(value: datetime) -> datetime:
    _sane_year(value)
    return value


def _sane_day(value: date) -> date:
    _sane_year(value)
    return value


def _wall_clock(value: time) -> time:
    if value.tzinfo is not None:
        msg = "must be a time of day as the clock reads, without a UTC offset (e.g. 09:00)"
        raise ValueError(msg)
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_sane_instant)]
"""An instant with its UTC offset, within years any session could plausibly fall in."""

Day = Annotated[date, AfterValidator(_sane_day)]
"""A calendar date within years any session could plausibly fall in."""

WallClock = Annotated[
    time,
    AfterValidator(_wall_clock),
    # JSON Schema's "time" format is RFC 3339's full-time, which requires an offset:
    # the opposite of what is accepted, so the document gives the shape itself.
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$",
            "examples": ["09:00"],
        }
    ),
]
"""A time of day as a clock reads it (HH:MM, seconds optional), without a UTC offset:
which zone it is in is the caller's to say (the bank's patterns are London time)."""

Text = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]
"""Free text PostgreSQL can store (no NUL character)."""
