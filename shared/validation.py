"""Input types that refuse what the database or the clock can't hold.

Found by generated requests (schemathesis): a NUL character passes pydantic but
PostgreSQL text refuses it, and a year-9999 instant overflows when moved to UTC. Each
is refused here, at the edge, with a message naming the field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, StringConstraints

EARLIEST_YEAR, LATEST_YEAR = 2000, 2100


def _sane_instant(value: datetime) -> datetime:
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        msg = f"must be between the years {EARLIEST_YEAR} and {LATEST_YEAR}"
        raise ValueError(msg)
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_sane_instant)]
"""An instant with its UTC offset, within years any session could plausibly fall in."""

Text = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]
"""Free text PostgreSQL can store (no NUL character)."""
