"""The live tail: one plain line per event the page lists, and the kinds a viewer can
filter it by. No I/O.

A line carries no id and nothing personal: which kind of event, where (region and
sector, and the sector hours moved to), when, and a few words of detail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.monitor.domain import STAGE_OF_EVENT, Stage, sector_label
from shared.events import (
    BookingCancelled,
    Envelope,
    MoveRecorded,
    MoveReversed,
    SectorDrainAlert,
    SessionAmended,
    SessionCancelled,
    SessionFilled,
    SessionOffered,
    SessionPosted,
    SessionUnfilled,
)

# Event type → what the filter calls it, in the order the filter lists them. Matching's
# reasons (`session.unmatched`) are left out: one plan can say thousands at once, which
# would push everything else out of the tail; the at-risk list shows them instead.
KINDS: dict[str, str] = {
    "session.posted": "Posted",
    "session.amended": "Changed",
    "session.offered": "Offered",
    "session.filled": "Filled",
    "session.cancelled": "Cancelled by the organisation",
    "booking.cancelled": "Given up by the clinician",
    "session.unfilled": "Started unfilled",
    "move.recorded": "Moved between sectors",
    "move.reversed": "Move undone",
    "sector.drain_alert": "Drain alert",
    "sector.drain_cleared": "Drain alert ended",
}


@dataclass(frozen=True, slots=True)
class TailLine:
    """One line of the tail."""

    event_type: str
    region: str
    sector: str
    occurred_at: datetime
    to_sector: str | None = None
    detail: str | None = None

    @property
    def stage(self) -> Stage | None:
        """The activity list's stage, for posted, offered and filled."""
        return STAGE_OF_EVENT.get(self.event_type)


def _words(code: str) -> str:
    return code.replace("_", " ")


def _hours(start: datetime, end: datetime) -> str:
    return f"{(end - start).total_seconds() / 3600:.1f} h"


def _late(late: bool) -> str | None:
    return "late (within 48 hours of the start)" if late else None


def _session_words(data: SessionPosted | SessionAmended) -> str:
    words = f"{_words(data.role.value)}, {_hours(data.starts_at, data.ends_at)}"
    if isinstance(data, SessionAmended) and data.released_clinician_id is not None:
        words += "; the booking was released"
    return words


def line_for(envelope: Envelope[Any], *, sector: str | None = None) -> TailLine | None:
    """The tail's line for an event; None for a kind the tail does not list, or for one
    that says no sector and whose session's sector (``sector``) is not known yet."""
    data = envelope.data
    if envelope.type not in KINDS:
        return None
    where: str | None = None
    to_sector: str | None = None
    detail: str | None = None
    match data:
        case SessionPosted() | SessionAmended():
            where, detail = data.sector.value, _session_words(data)
        case SessionOffered():
            where = data.sector.value
        case SessionFilled():
            where = data.sector.value
            home = data.clinician_home_sector
            if home is not data.sector:
                detail = f"by a clinician from {sector_label(home).lower()}"
        case SessionCancelled():
            where, detail = data.sector.value, _late(data.late)
        case SessionUnfilled():
            where = data.sector.value
            detail = _words(data.why) if data.why else data.reason
        case BookingCancelled():
            where, detail = sector, _late(data.late)
        case MoveRecorded() | MoveReversed():
            where, to_sector = data.from_sector.value, data.to_sector.value
            detail = f"{data.hours:.1f} h ({_words(data.kind)})"
            if isinstance(data, MoveReversed):
                detail += f": {_words(data.reason)}"
        case SectorDrainAlert():  # and SectorDrainCleared, its subclass
            where = data.sector.value
            detail = f"net outflow {data.used_pct:.1f}% of its {data.cap_pct:g}% cap"
    if where is None:
        return None
    return TailLine(envelope.type, envelope.region, where, envelope.occurred_at, to_sector, detail)
