"""What the dashboard counts and how it lays the counts out. No I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.catalogue import Sector


class Stage(StrEnum):
    """How far a session got; each stage is one counter (and one column)."""

    POSTED = "posted"
    OFFERED = "offered"
    FILLED = "filled"


# The only events the monitor counts. Stage values double as column names in SQL,
# so they are fixed here and never come from input.
STAGE_OF_EVENT: dict[str, Stage] = {
    "session.posted": Stage.POSTED,
    "session.offered": Stage.OFFERED,
    "session.filled": Stage.FILLED,
}

SECTOR_LABELS: dict[str, str] = {
    Sector.GENERAL_PRACTICE: "General practice",
    Sector.COMMUNITY_PHARMACY: "Community pharmacy",
    Sector.DENTISTRY: "Dentistry",
    Sector.OPTOMETRY: "Optometry",
    Sector.COMMUNITY_NURSING: "Community nursing",
}


@dataclass(frozen=True, slots=True)
class SectorCounts:
    """Sessions of one sector of one region, by how far they got."""

    region: str
    sector: str
    posted: int
    offered: int
    filled: int


@dataclass(frozen=True, slots=True)
class DashboardRow:
    """One line of a region's table: a sector's counts and its fill rate."""

    region: str
    sector: str
    label: str
    posted: int
    offered: int
    filled: int
    fill_rate: float | None


@dataclass(frozen=True, slots=True)
class RegionView:
    """One region's table: every sector, in catalogue order."""

    region: str
    rows: tuple[DashboardRow, ...]


@dataclass(frozen=True, slots=True)
class Activity:
    """One line of the "latest activity" list."""

    stage: Stage
    region: str
    sector: str
    occurred_at: datetime


def stage_for(event_type: str) -> Stage:
    """The stage ``event_type`` marks; KeyError for events the monitor does not count."""
    return STAGE_OF_EVENT[event_type]


def sector_label(sector: str) -> str:
    """Plain-words name of ``sector``; a sector the catalogue lacks is spelt out from its code."""
    return SECTOR_LABELS.get(sector) or sector.replace("_", " ").capitalize()


def fill_rate(posted: int, filled: int) -> float | None:
    """Share of posted sessions filled, between 0 and 1; None before anything is posted.

    Each event type has its own topic and topics are read independently, so a fill
    can be counted before its post: the rate is capped at 1 rather than shown above it.
    """
    if posted <= 0:
        return None
    return min(1.0, max(0, filled) / posted)


def _sector_order(sector: str) -> tuple[int, str]:
    # Catalogue order first (stable columns to read down); unknown codes after, by name.
    order = [str(s) for s in SECTOR_LABELS]
    return (order.index(sector), "") if sector in order else (len(order), sector)


def build_dashboard(counts: Iterable[SectorCounts]) -> list[RegionView]:
    """Regions in code order, each listing every catalogue sector (zero if none seen).

    Zero rows are kept on purpose: a sector that never posts is something the ICB
    wants to see, and a table whose rows don't come and go is easier to read.
    """
    by_region: dict[str, dict[str, SectorCounts]] = {}
    for c in counts:
        by_region.setdefault(c.region, {})[c.sector] = c
    views = []
    for region in sorted(by_region):
        seen = by_region[region]
        sectors = sorted({str(s) for s in SECTOR_LABELS} | set(seen), key=_sector_order)
        rows = []
        for sector in sectors:
            c = seen.get(sector) or SectorCounts(region, sector, 0, 0, 0)
            rows.append(
                DashboardRow(
                    region=region,
                    sector=sector,
                    label=sector_label(sector),
                    posted=c.posted,
                    offered=c.offered,
                    filled=c.filled,
                    fill_rate=fill_rate(c.posted, c.filled),
                )
            )
        views.append(RegionView(region, tuple(rows)))
    return views
