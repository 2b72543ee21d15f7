"""The headline figures of one region for a period, and its trends per day: what "where
do I act today?" opens with. No I/O: the sessions' figures come from
``repository.period_sectors`` and ``repository.daily``.

A session belongs to the period its start (the start vacancies last said) falls in, and
counts as it stands now: a session filled and then cancelled is cancelled, not filled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from services.monitor.domain import SECTOR_LABELS, fill_rate

# Days are the bank's days: an ICB's "today" starts at midnight in England, not in UTC.
LOCAL = ZoneInfo("Europe/London")


class Period(StrEnum):
    """The periods the page offers: three ending with today, and any run of days."""

    TODAY = "today"
    DAYS_7 = "7d"
    DAYS_28 = "28d"
    CUSTOM = "custom"


_DAYS = {Period.TODAY: 1, Period.DAYS_7: 7, Period.DAYS_28: 28}
# A custom period is at most a year and a day (a leap year, both ends included): what an
# annual report needs, and a bound on what one request reads.
MAX_CUSTOM_DAYS = 366
# Days the bank can have sessions on: no earlier than its first, no later than anyone
# plans (and far from the calendar's end, where the day after the last would not exist).
FIRST_DAY, LAST_DAY = date(2020, 1, 1), date(2100, 12, 31)


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=LOCAL)


def period_bounds(period: Period, now: datetime) -> tuple[datetime, datetime]:
    """[since, until): whole local days, the last being today (``now``'s day in England).

    Built from local dates, so a day across a clock change is 23 or 25 hours long.
    """
    today = now.astimezone(LOCAL).date()
    first = today - timedelta(days=_DAYS[period] - 1)
    return _local_midnight(first), _local_midnight(today + timedelta(days=1))


@dataclass(frozen=True, slots=True)
class Window:
    """A period as whole local days ``first`` to ``last`` (both included), and the
    instants [since, until) they span."""

    period: Period
    first: date
    last: date

    @property
    def since(self) -> datetime:
        """Midnight in England at the start of ``first``."""
        return _local_midnight(self.first)

    @property
    def until(self) -> datetime:
        """Midnight in England at the end of ``last``."""
        return _local_midnight(self.last + timedelta(days=1))

    def days(self) -> list[date]:
        """Every local day of the window, in order."""
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]


class PeriodError(ValueError):
    """A period asked for that can't be answered: each (field, why) that is wrong."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {why}" for name, why in errors))
        self.errors = errors


def window_for(
    period: Period | None, first: date | None, last: date | None, *, now: datetime
) -> Window:
    """The window asked for: ``period`` ending today, or the custom days ``first`` to
    ``last``. Dates alone mean custom; a named period with dates is refused rather than
    one of them silently ignored. Future days are allowed (next week's sessions are
    posted already). ``PeriodError`` names each field that is wrong and why."""
    if period is None:
        period = Period.CUSTOM if first is not None or last is not None else Period.TODAY
    if period is not Period.CUSTOM:
        given = [name for name, value in (("from", first), ("to", last)) if value is not None]
        if given:
            raise PeriodError([(name, f"only with period=custom, not {period}") for name in given])
        since, _ = period_bounds(period, now)
        today = now.astimezone(LOCAL).date()
        return Window(period, since.date(), today)
    errors = [
        (name, "required for a custom period (a date, YYYY-MM-DD)")
        for name, value in (("from", first), ("to", last))
        if value is None
    ]
    errors += [
        (name, f"must be between {FIRST_DAY} and {LAST_DAY}")
        for name, value in (("from", first), ("to", last))
        if value is not None and not FIRST_DAY <= value <= LAST_DAY
    ]
    if first is not None and last is not None and not errors:
        if last < first:
            errors.append(("to", f"must be on or after from ({first.isoformat()})"))
        elif (last - first).days + 1 > MAX_CUSTOM_DAYS:
            errors.append(("to", f"at most {MAX_CUSTOM_DAYS} days from from, both included"))
    if errors or first is None or last is None:  # either date missing is an error above
        raise PeriodError(errors)
    return Window(Period.CUSTOM, first, last)


@dataclass(frozen=True, slots=True)
class FillTimes:
    """Minutes from a session's posting to its fill, over the sessions filled now whose
    post was read: how many, their median and 90th percentile (linear interpolation
    between the nearest ranks, as PostgreSQL's ``percentile_cont``); None without any."""

    count: int = 0
    median: float | None = None
    p90: float | None = None


NO_FILL_TIMES = FillTimes()


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
    fill_times: FillTimes = NO_FILL_TIMES


@dataclass(frozen=True, slots=True)
class Summary:
    """One region's headline figures for a period, and its sectors' share of them."""

    region: str
    window: Window
    totals: SectorPeriod
    fill_rate: float | None
    sectors: tuple[SectorPeriod, ...]

    @property
    def period(self) -> Period:
        """Which kind of period."""
        return self.window.period

    @property
    def since(self) -> datetime:
        """Start of the period's first day in England."""
        return self.window.since

    @property
    def until(self) -> datetime:
        """End of the period's last day in England."""
        return self.window.until


def _sum(region: str, sector: str, rows: list[SectorPeriod], times: FillTimes) -> SectorPeriod:
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
        times,
    )


def _catalogue_first(seen: Iterable[str]) -> list[str]:
    order = [str(s) for s in SECTOR_LABELS]
    return [*order, *sorted(set(seen) - set(order))]


def summarise(
    rows: Iterable[SectorPeriod],
    *,
    regions: Iterable[str],
    window: Window,
    fill_times: Mapping[str, FillTimes] | None = None,
) -> list[Summary]:
    """A summary of each of ``regions`` (in code order), every catalogue sector listed:
    a region or sector with nothing in the period shows zeros, not a gap.

    Counts add up across sectors; percentiles do not, so each region's own fill times
    (over all its sectors' sessions at once) come in ``fill_times``.
    """
    by_region: dict[str, dict[str, SectorPeriod]] = {}
    for r in rows:
        by_region.setdefault(r.region, {})[r.sector] = r
    summaries = []
    for region in sorted(set(regions)):
        seen = by_region.get(region, {})
        sectors = tuple(
            seen.get(s) or _sum(region, s, [], NO_FILL_TIMES) for s in _catalogue_first(seen)
        )
        times = (fill_times or {}).get(region, NO_FILL_TIMES)
        totals = _sum(region, "", list(sectors), times)
        summaries.append(
            Summary(
                region=region,
                window=window,
                totals=totals,
                fill_rate=fill_rate(totals.posted, totals.filled, totals.cancelled),
                sectors=sectors,
            )
        )
    return summaries


# --- Trends: the same figures per local day of the period ---

ALL_SECTORS = ""  # the key of the line that adds every sector up


@dataclass(frozen=True, slots=True)
class DayFigures:
    """One day's sessions of one sector (or of all, ``ALL_SECTORS``): those starting
    that day, as they stand now, and the median minutes to fill the filled ones."""

    day: date
    posted: int = 0
    filled: int = 0
    cancelled: int = 0
    median_minutes: float | None = None

    @property
    def fill_rate(self) -> float | None:
        """Filled over posted less cancelled, as the headline's."""
        return fill_rate(self.posted, self.filled, self.cancelled)


@dataclass(frozen=True, slots=True)
class DayRow:
    """What ``repository.daily`` reads: one region, day and sector (``ALL_SECTORS`` for
    the region's total, whose median is over all its sectors' sessions at once)."""

    region: str
    day: date
    sector: str
    posted: int
    filled: int
    cancelled: int
    median_minutes: float | None


@dataclass(frozen=True, slots=True)
class Trends:
    """One region's figures per day of the window: a series per sector (catalogue order,
    every one listed) and one of all sectors, each with a value for every day."""

    region: str
    window: Window
    series: Mapping[str, tuple[DayFigures, ...]] = field(default_factory=dict)


def build_trends(rows: Iterable[DayRow], *, regions: Iterable[str], window: Window) -> list[Trends]:
    """Each of ``regions`` (in code order) with a series per sector and one of all
    sectors, every day of ``window`` present (a day without sessions is zeros, so the
    days line up across series and a gap is never drawn as a straight line)."""
    found: dict[str, dict[str, dict[date, DayFigures]]] = {}
    for r in rows:
        found.setdefault(r.region, {}).setdefault(r.sector, {})[r.day] = DayFigures(
            r.day, r.posted, r.filled, r.cancelled, r.median_minutes
        )
    days = window.days()
    built = []
    for region in sorted(set(regions)):
        seen = found.get(region, {})
        keys = [ALL_SECTORS, *_catalogue_first(k for k in seen if k != ALL_SECTORS)]
        series = {
            key: tuple(seen.get(key, {}).get(day) or DayFigures(day) for day in days)
            for key in keys
        }
        built.append(Trends(region, window, series))
    return built
