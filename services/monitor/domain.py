"""What the dashboard counts and shows. No I/O."""

from __future__ import annotations

from dataclasses import dataclass

# Which counter each event moves; the column names are fixed here, never from input.
COUNTER_FOR_EVENT: dict[str, str] = {
    "session.posted": "posted",
    "session.offered": "offered",
    "session.filled": "filled",
}


@dataclass(frozen=True, slots=True)
class SectorCounts:
    """Sessions of one sector of one region, by how far they got."""

    region: str
    sector: str
    posted: int
    offered: int
    filled: int

    @property
    def fill_rate(self) -> float | None:
        """Share of posted sessions filled; None before anything is posted."""
        return self.filled / self.posted if self.posted else None


def counter_for(event_type: str) -> str:
    """The counter ``event_type`` increments; KeyError for events we don't count."""
    return COUNTER_FOR_EVENT[event_type]
