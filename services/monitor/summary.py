"""The headline figures of one region for a period: what "where do I act today?" opens
with. No I/O: the sessions' figures come from ``repository.period_sectors``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from services.monitor.domain import SECTOR_LABELS, fill_rate

# Days are the bank's days: an ICB's "today" starts at midnight in England, not in UTC.
LOCAL = ZoneInfo("Europe/London")


class Period(StrEnum):
    """The periods the page offers, each ending with today."""

    TODAY = "today"
    DAYS_7 = "7d"
    DAYS_28 = "28d"


_DAYS = {Period.TODAY: 1, Period.DAYS_7: 7, Period.DAYS_28: 28}


def period_bounds(period: Period, now: datetime) -> tuple[datetime, datetime]:
    """[since, until): whole local days, the last being today (``now``'s day in England).

    Built from local dates, so a day across a clock change is 23 or 25 hours long.
    """
    today = now.astimezone(LOCAL).date()
    first = today - timedelta(days=_DAYS[period] - 1)
    since = datetime.combine(first, time(), tzinfo=LOCAL)
    until = datetime.combine(today + timedelta(days=1), time(), tzinfo=LOCAL)
    return since, until


@dataclass(frozen=True, slots=True)
class SectorPeriod:
    """One sector's sessions starting in the period, as their figures stand now."""

    region: str
    sector: str
    posted: int
    filled: int
    cancelled: int
    unfilled: int
    late_cancelled: int
    late_given_up: int
    hours_filled: float


@dataclass(frozen=True, slots=True)
class Summary:
    """One region's headline figures for a period, and its sectors' share of them."""

    region: str
    period: Period
    since: datetime
    until: datetime
    totals: SectorPeriod
    fill_rate: float | None
    sectors: tuple[SectorPeriod, ...]


def _sum(region: str, sector: str, rows: list[SectorPeriod]) -> SectorPeriod:
    return SectorPeriod(
        region,
        sector,
        sum(r.posted for r in rows),
        sum(r.filled for r in rows),
        sum(r.cancelled for r in rows),
        sum(r.unfilled for r in rows),
        sum(r.late_cancelled for r in rows),
        sum(r.late_given_up for r in rows),
        round(sum(r.hours_filled for r in rows), 2),
    )


def summarise(
    rows: Iterable[SectorPeriod],
    *,
    regions: Iterable[str],
    period: Period,
    since: datetime,
    until: datetime,
) -> list[Summary]:
    """A summary of each of ``regions`` (in code order), every catalogue sector listed:
    a region or sector with nothing in the period shows zeros, not a gap."""
    by_region: dict[str, dict[str, SectorPeriod]] = {}
    for r in rows:
        by_region.setdefault(r.region, {})[r.sector] = r
    summaries = []
    for region in sorted(set(regions)):
        seen = by_region.get(region, {})
        order = [str(s) for s in SECTOR_LABELS]
        sectors = tuple(
            seen.get(s) or _sum(region, s, []) for s in [*order, *sorted(set(seen) - set(order))]
        )
        totals = _sum(region, "", list(sectors))
        summaries.append(
            Summary(
                region=region,
                period=period,
                since=since,
                until=until,
                totals=totals,
                fill_rate=fill_rate(totals.posted, totals.filled, totals.cancelled),
                sectors=sectors,
            )
        )
    return summaries
