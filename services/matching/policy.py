"""A region's drain-guard policy and each sector's balance of moves. No I/O.

The cap is on *net* outflow: hours a sector's clinicians worked in other sectors minus
hours others worked in it, over a rolling window, as a share of the hours that sector's
clinicians offered the bank in that same window (each clinician counting at most
``OFFERED_HOURS_PER_WEEK``). A sector may lend as much as it borrows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from shared.catalogue import Sector

DEFAULT_CAP_PCT = 10.0

# When offers are made, for a region whose policy holds offers back (docs/matching.md,
# "When it plans"): the daily planning round, at ROUND_HOUR UK time, plans together every
# open session that has come within the policy's ``hold_beyond_h`` of its start; until
# the next round, the whole-region sweeps offer no session the round did not reach (a
# session planned alone as it came within, slot by slot, filled 791 of a week where the
# round filled 817: measured with the benchmark's online replay).
ROUND_HOUR = 18
UK = ZoneInfo("Europe/London")

# The most one clinician counts towards their sector's offered hours in any week of the
# window (a partial week pro rata): more than the 48-hour average the law allows, short
# of what anyone works. Without it one declaration (a window to 2099) set a sector's
# cap, and so what it may lend, at will.
OFFERED_HOURS_PER_WEEK = 60.0


@dataclass(frozen=True, slots=True)
class Policy:
    """What a region's ICB has set; every field has the issue's default."""

    # Net outflow cap per sector, as a percentage of the hours that sector offered.
    cap_pct: Mapping[Sector, float] = field(default_factory=dict)
    # A clinician is offered outside their home sector only when no session of their
    # own sector that they could fill, overlapping in time, is left open.
    home_first: bool = True
    # `sector.drain_alert` once a sector's net outflow passes this share of its cap.
    alert_share: float = 0.8
    # Net outflow and hours offered are both counted over `window(now, window_days)`.
    window_days: int = 28
    # A permanent move (`clinician.transferred`) counts as this many hours moved: one
    # full-time clinician's 37.5 hours a week over the four-week window.
    transfer_hours: float = 150.0
    # Online planning close to planning the week at once (docs/matching.md, "When it
    # plans"). A session is offered only once it starts within ``hold_beyond_h`` hours;
    # one posted further ahead waits, and is planned with the others at the daily round
    # once it comes within them. Moves across sectors are offered only for sessions
    # starting within ``cross_sector_within_h`` hours, so that a clinician is not lent out
    # before their own sector has posted what it needs then. None: no such limit.
    hold_beyond_h: float | None = None
    cross_sector_within_h: float | None = None

    def cap_for(self, sector: Sector) -> float:
        """The sector's cap in percent."""
        return self.cap_pct.get(sector, DEFAULT_CAP_PCT)


@dataclass(frozen=True, slots=True)
class SectorBalance:
    """A sector's standing over the rolling window."""

    offered_hours: float
    # Out minus in: filled cross-sector sessions, transfers, and live cross-sector offers
    # (counted as if accepted, so a burst of acceptances can't overshoot the cap).
    net_out_hours: float = 0.0


# What the benchmark's online replay measured best (docs/matching.md has the figures).
RECOMMENDED_HOLD_BEYOND_H = 72.0
RECOMMENDED_CROSS_SECTOR_WITHIN_H = 24.0


def last_round_by(at: datetime) -> datetime:
    """The latest daily planning round at or before ``at`` (ROUND_HOUR, UK time)."""
    local = at.astimezone(UK)
    today = datetime(local.year, local.month, local.day, ROUND_HOUR, tzinfo=UK)
    if today <= local:
        return today.astimezone(at.tzinfo)
    yesterday = local.date() - timedelta(days=1)
    return datetime(
        yesterday.year, yesterday.month, yesterday.day, ROUND_HOUR, tzinfo=UK
    ).astimezone(at.tzinfo)


def next_round_after(at: datetime) -> datetime:
    """The first daily planning round strictly after ``at`` (ROUND_HOUR, UK time)."""
    local = at.astimezone(UK)
    today = datetime(local.year, local.month, local.day, ROUND_HOUR, tzinfo=UK)
    if today > local:
        return today.astimezone(at.tzinfo)
    tomorrow = local.date() + timedelta(days=1)
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, ROUND_HOUR, tzinfo=UK).astimezone(
        at.tzinfo
    )


def window(now: datetime, window_days: int) -> tuple[datetime, datetime]:
    """The rolling window, ``(start, end]``: the ``window_days`` before ``now`` and the
    ``window_days`` after. Net outflow and hours offered are both counted over it."""
    span = timedelta(days=window_days)
    return now - span, now + span


def offered_in_window(
    spans: list[tuple[datetime, datetime]],
    start: datetime,
    end: datetime,
    per_week: float = OFFERED_HOURS_PER_WEEK,
) -> float:
    """What one clinician's windows count towards their sector's offered hours: clipped
    to ``(start, end]``, at most ``per_week`` hours in each week of it counted from
    ``start`` (the last, partial week pro rata). The database computes the same
    (``repository.balances``); this is its specification, for tests."""
    total = 0.0
    lo = start
    while lo < end:
        hi = min(lo + timedelta(days=7), end)
        hours = sum(max(0.0, (min(e, hi) - max(s, lo)).total_seconds() / 3600) for s, e in spans)
        total += min(hours, per_week * (hi - lo).total_seconds() / (7 * 86400))
        lo = hi
    return total


def cap_hours(policy: Policy, sector: Sector, balance: SectorBalance) -> float:
    """The most net hours the sector may lose over the window."""
    return policy.cap_for(sector) / 100 * balance.offered_hours


def budget(policy: Policy, sector: Sector, balance: SectorBalance) -> float:
    """Hours the sector may still lose; negative when already over its cap."""
    return cap_hours(policy, sector, balance) - balance.net_out_hours


def drain_pct(balance: SectorBalance) -> float:
    """Net outflow as a percentage of the sector's offered hours (0 when it offered none)."""
    if balance.offered_hours <= 0:
        return 0.0
    return 100 * balance.net_out_hours / balance.offered_hours


def past_alert(policy: Policy, sector: Sector, balance: SectorBalance) -> bool:
    """Whether the sector has passed the alert share of its cap."""
    cap = cap_hours(policy, sector, balance)
    return balance.net_out_hours > policy.alert_share * cap


def balances_from(
    offered: Mapping[Sector, float], net_out: Mapping[Sector, float]
) -> dict[Sector, SectorBalance]:
    """One balance per sector from two totals (missing sectors count zero)."""
    return {s: SectorBalance(offered.get(s, 0.0), net_out.get(s, 0.0)) for s in Sector}


def parse_caps(values: list[str]) -> dict[Sector, float]:
    """``["community_pharmacy=8"]`` → {COMMUNITY_PHARMACY: 8.0}; ValueError says what's wrong."""
    caps: dict[Sector, float] = {}
    for value in values:
        name, _, pct = value.partition("=")
        try:
            sector = Sector(name.strip())
        except ValueError:
            known = ", ".join(s.value for s in Sector)
            msg = f"cap {value!r}: unknown sector {name!r} (one of {known})"
            raise ValueError(msg) from None
        try:
            caps[sector] = float(pct)
        except ValueError:
            msg = f"cap {value!r}: the cap must be a number, e.g. {name}=10"
            raise ValueError(msg) from None
        if not 0 <= caps[sector] <= 100:
            msg = f"cap {value!r}: the cap is a percentage, 0 to 100"
            raise ValueError(msg)
    return caps
