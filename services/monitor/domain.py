"""What the dashboard counts and how it lays the counts out. No I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
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


# --- The drain picture: hours moved between sectors over matching's rolling window ---

# Matching's own defaults (services/matching/policy.py), repeated rather than imported:
# the monitor knows matching only through its events. They apply to a region until its
# first `policy.changed` arrives.
DRAIN_WINDOW_DAYS = 28
DEFAULT_CAP_PCT = 10.0
DEFAULT_ALERT_SHARE = 0.8


@dataclass(frozen=True, slots=True)
class Flow:
    """Hours moved from one sector to another in one region, summed over the window."""

    region: str
    from_sector: str
    to_sector: str
    hours: float


@dataclass(frozen=True, slots=True)
class DrainAlert:
    """The latest `sector.drain_alert` of one sector, as matching raised it."""

    region: str
    sector: str
    net_out_hours: float
    offered_hours: float
    cap_pct: float
    used_pct: float
    window_days: int
    raised_at: datetime
    # When matching said the sector fell back under the alert share, if it has.
    cleared_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RegionPolicy:
    """The latest `policy.changed` of one region: what the caps are."""

    region: str
    cap_pct: Mapping[str, float]
    home_first: bool
    alert_share: float
    changed_at: datetime

    def cap_for(self, sector: str) -> float:
        """The sector's cap in percent (matching's default if the policy lacks it)."""
        return float(self.cap_pct.get(sector, DEFAULT_CAP_PCT))


@dataclass(frozen=True, slots=True)
class SectorDrain:
    """One sector's line of the drain picture."""

    region: str
    sector: str
    label: str
    out_hours: float
    in_hours: float
    net_out_hours: float
    cap_pct: float
    alert: DrainAlert | None
    alert_standing: bool


@dataclass(frozen=True, slots=True)
class RegionDrain:
    """One region's drain picture: every sector, and which way the hours went."""

    region: str
    window_days: int
    since: datetime
    policy: RegionPolicy | None
    sectors: tuple[SectorDrain, ...]
    flows: tuple[Flow, ...]


def drain_window_start(now: datetime, window_days: int = DRAIN_WINDOW_DAYS) -> datetime:
    """Moves at or before this instant no longer count.

    As in matching, the window is the ``window_days`` up to now *and everything after*:
    a cross-sector session booked for next week counts already.
    """
    return now - timedelta(days=window_days)


def alert_standing(alert: DrainAlert, *, net_out_hours: float, now: datetime) -> bool:
    """Whether a drain alert still shows as standing (the red badge).

    Matching says when a sector falls back under its alert share
    (`sector.drain_cleared`); until then an alert stands for its window after it was
    raised, unless the sector has since stopped losing hours at all here.
    """
    if alert.cleared_at is not None and alert.cleared_at >= alert.raised_at:
        return False
    return alert.raised_at > now - timedelta(days=alert.window_days) and net_out_hours > 0


def _hours(value: float) -> float:
    return round(value, 2) + 0.0  # + 0.0 turns a -0.0 into 0.0


def build_drain(
    flows: Iterable[Flow],
    alerts: Iterable[DrainAlert],
    policies: Iterable[RegionPolicy],
    *,
    now: datetime,
    regions: Iterable[str] = (),
) -> list[RegionDrain]:
    """Regions in code order (those seen, plus ``regions``), each with every sector.

    A sector's out hours are what its clinicians worked elsewhere (or took with them
    on a transfer), in hours what others brought to it; net outflow is out minus in,
    the figure matching holds within the cap. Flows within one sector are not moves
    and are left out.
    """
    flows_by: dict[str, list[Flow]] = {}
    for f in flows:
        if f.from_sector != f.to_sector and f.hours:
            flows_by.setdefault(f.region, []).append(f)
    alerts_by: dict[str, dict[str, DrainAlert]] = {}
    for a in alerts:
        alerts_by.setdefault(a.region, {})[a.sector] = a
    policy_of = {p.region: p for p in policies}
    views = []
    for region in sorted(set(flows_by) | set(alerts_by) | set(policy_of) | set(regions)):
        region_flows = flows_by.get(region, [])
        out: dict[str, float] = {}
        into: dict[str, float] = {}
        for f in region_flows:
            out[f.from_sector] = out.get(f.from_sector, 0.0) + f.hours
            into[f.to_sector] = into.get(f.to_sector, 0.0) + f.hours
        region_alerts = alerts_by.get(region, {})
        policy = policy_of.get(region)
        seen = set(out) | set(into) | set(region_alerts)
        sectors = sorted({str(s) for s in SECTOR_LABELS} | seen, key=_sector_order)
        rows = []
        for sector in sectors:
            net = _hours(out.get(sector, 0.0) - into.get(sector, 0.0))
            alert = region_alerts.get(sector)
            rows.append(
                SectorDrain(
                    region=region,
                    sector=sector,
                    label=sector_label(sector),
                    out_hours=_hours(out.get(sector, 0.0)),
                    in_hours=_hours(into.get(sector, 0.0)),
                    net_out_hours=net,
                    cap_pct=policy.cap_for(sector) if policy else DEFAULT_CAP_PCT,
                    alert=alert,
                    alert_standing=alert is not None
                    and alert_standing(alert, net_out_hours=net, now=now),
                )
            )
        merged: dict[tuple[str, str], float] = {}
        for f in region_flows:
            key = (f.from_sector, f.to_sector)
            merged[key] = merged.get(key, 0.0) + f.hours
        ordered = sorted(merged, key=lambda k: (_sector_order(k[0]), _sector_order(k[1])))
        views.append(
            RegionDrain(
                region=region,
                window_days=DRAIN_WINDOW_DAYS,
                since=drain_window_start(now),
                policy=policy,
                sectors=tuple(rows),
                flows=tuple(Flow(region, a, b, _hours(merged[a, b])) for a, b in ordered),
            )
        )
    return views
