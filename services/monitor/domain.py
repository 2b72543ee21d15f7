"""What the dashboard counts and how it lays the counts out. No I/O.

A session's figures are worked out from everything the monitor has read about it
(``SessionFacts``), never from the last event alone: the facts are a set, so an event
read twice, or events read in any order across the three services' streams, give the
same figures once all of them are read (``record``, ``figures``, ``fold``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeAlias, TypeVar

from shared.catalogue import Sector


class Stage(StrEnum):
    """How far a session got, as the "latest activity" list names it."""

    POSTED = "posted"
    OFFERED = "offered"
    FILLED = "filled"


# The events the activity list shows. Stage values are stored in SQL as they are, so
# they are fixed here and never come from input.
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
    """Sessions of one sector of one region: posted, offered (ever), filled (now),
    cancelled by the organisation, started unfilled, and the late cancellations of
    either side (within 48 hours of the start).

    Also what one session adds to its sector (each figure 0 or 1, bar
    ``late_given_up``), and a change to add (figures may then be negative).
    """

    region: str
    sector: str
    posted: int
    offered: int
    filled: int
    cancelled: int = 0
    unfilled: int = 0
    # Cancelled by the organisation within 48 hours of the start.
    late_cancelled: int = 0
    # Bookings given up by their clinicians within 48 hours of the start.
    late_given_up: int = 0

    def numbers(self) -> tuple[int, ...]:
        """The figures in field order, without region and sector."""
        return tuple(getattr(self, f) for f in COUNTED)


# The counted fields of ``SectorCounts``, in order; also the columns of sector_counts.
COUNTED: tuple[str, ...] = tuple(f.name for f in fields(SectorCounts))[2:]


@dataclass(frozen=True, slots=True)
class DashboardRow:
    """One line of a region's table: a sector's counts and its fill rate."""

    region: str
    sector: str
    label: str
    counts: SectorCounts
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


def fill_rate(posted: int, filled: int, cancelled: int = 0) -> float | None:
    """Share of the sessions still wanted that are filled, between 0 and 1: filled over
    posted less those the organisation cancelled (a cancelled session was not a failure
    to fill). None when no session is wanted.

    The streams are read independently, so a fill can be counted before its post:
    the rate is capped at 1 rather than shown above it.
    """
    wanted = posted - cancelled
    if wanted <= 0:
        return None
    return min(1.0, max(0, filled) / wanted)


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
                    counts=c,
                    fill_rate=fill_rate(c.posted, c.filled, c.cancelled),
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


# --- Each session's lifecycle, from every event about it, in any order ---


class Said(StrEnum):
    """What vacancies said of a session."""

    POSTED = "posted"
    AMENDED = "amended"
    UNFILLED = "unfilled"
    CANCELLED = "cancelled"


# A tie on vacancies' clock is broken by what can follow what.
_SAID_RANK = {said: rank for rank, said in enumerate(Said)}
_CLOSING = (Said.CANCELLED, Said.UNFILLED)


@dataclass(frozen=True, slots=True)
class Stated:
    """One thing vacancies said of a session (``session.posted``, ``.amended``,
    ``.cancelled`` or ``.unfilled``), as it stood then."""

    event_id: uuid.UUID
    said: Said
    at: datetime
    region: str
    sector: str
    organisation: str
    starts_at: datetime
    ends_at: datetime
    # Posted and amended only: the role and skills asked for (skills sorted).
    role: str | None = None
    skills: tuple[str, ...] = ()
    # Amended only: the clinician whose booking vacancies said the change released.
    released: uuid.UUID | None = None
    # Cancelled only: within 48 hours of the start.
    late: bool = False
    # Posted and amended only: the name of the organisation where it is worked (events
    # read before this was kept have none).
    site_name: str | None = None
    # Posted and amended only: where the organisation is, as the ICB plans (equity.py):
    # its area's deprivation decile (1 most deprived), its place and its PCN, each if
    # vacancies recorded it (events read before these were kept have none).
    imd_decile: int | None = None
    place: str | None = None
    pcn: str | None = None

    def shape(self) -> tuple[object, ...]:
        """What a booking is of: matching releases bookings when any of it changes."""
        return (self.organisation, self.starts_at, self.ends_at, self.role, self.skills)


@dataclass(frozen=True, slots=True)
class Offered:
    """Matching offered the session to a clinician (``session.offered``)."""

    event_id: uuid.UUID
    offer_id: uuid.UUID
    at: datetime
    region: str
    sector: str
    role: str


@dataclass(frozen=True, slots=True)
class Filled:
    """Matching booked a clinician into the session (``session.filled``), as the
    session stood when it was offered."""

    event_id: uuid.UUID
    offer_id: uuid.UUID
    clinician_id: uuid.UUID
    at: datetime
    region: str
    sector: str
    organisation: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class GivenUp:
    """The clinician gave the booking of one offer up (``booking.cancelled``)."""

    event_id: uuid.UUID
    offer_id: uuid.UUID
    clinician_id: uuid.UUID
    at: datetime
    late: bool


@dataclass(frozen=True, slots=True)
class Unmatched:
    """Matching left the session without an offer, and said why (``session.unmatched``:
    published when its reason changes, and again after an offer lapses)."""

    event_id: uuid.UUID
    at: datetime
    # One of matching's reasons (services/matching/engine.py, ``Why``), and its words.
    why: str
    detail: str


Fact: TypeAlias = Stated | Offered | Filled | GivenUp | Unmatched
F = TypeVar("F", Stated, Offered, Filled, GivenUp, Unmatched)


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """Everything the monitor has read about one session.

    Keyed so that the same fact read twice is kept once: vacancies' words by event id,
    matching's offers and fills and the bank's cancellations by offer id (an offer is
    filled, or given up, once, whatever event says it), matching's reasons for leaving
    it without an offer by event id.
    """

    stated: Mapping[uuid.UUID, Stated] = field(default_factory=dict)
    offered: Mapping[uuid.UUID, Offered] = field(default_factory=dict)
    filled: Mapping[uuid.UUID, Filled] = field(default_factory=dict)
    given_up: Mapping[uuid.UUID, GivenUp] = field(default_factory=dict)
    unmatched: Mapping[uuid.UUID, Unmatched] = field(default_factory=dict)


def _kept(facts: Mapping[uuid.UUID, F], key: uuid.UUID, fact: F) -> Mapping[uuid.UUID, F]:
    # Of two facts under one key the earlier is kept, whichever came first: the
    # result must not depend on the order they were read in.
    old = facts.get(key)
    if old is not None and (old.at, old.event_id) <= (fact.at, fact.event_id):
        return facts
    return {**facts, key: fact}


def record(facts: SessionFacts, fact: Fact) -> SessionFacts:
    """``facts`` with ``fact`` added; a fact already there changes nothing."""
    if isinstance(fact, Stated):
        return replace(facts, stated=_kept(facts.stated, fact.event_id, fact))
    if isinstance(fact, Offered):
        return replace(facts, offered=_kept(facts.offered, fact.offer_id, fact))
    if isinstance(fact, Filled):
        return replace(facts, filled=_kept(facts.filled, fact.offer_id, fact))
    if isinstance(fact, Unmatched):
        return replace(facts, unmatched=_kept(facts.unmatched, fact.event_id, fact))
    return replace(facts, given_up=_kept(facts.given_up, fact.offer_id, fact))


def _said_order(s: Stated) -> tuple[datetime, int, uuid.UUID]:
    return (s.at, _SAID_RANK[s.said], s.event_id)


def _releases(states: Sequence[Stated]) -> list[datetime]:
    """When amendments released the session's booking, as matching does: on a change of
    place, time, role or skills (or when vacancies names the clinician released)."""
    return [
        s.at
        for before, s in zip([None, *states], states, strict=False)
        if s.said is Said.AMENDED
        and (s.released is not None or (before is not None and before.shape() != s.shape()))
    ]


def _stands(
    fill: Filled, facts: SessionFacts, now: Stated | None, releases: list[datetime]
) -> bool:
    """Whether a booking still stands: not given up, not released by a later amendment,
    and of the session as it is now (a booking of an older time, place or role was
    released when matching read the amendment, whenever the fill was read here).

    "Later" compares vacancies' clock with matching's: an amendment made after a booking
    follows it by at least a round trip through the broker, which clocks kept by NTP
    resolve. One race the facts can't tell: a booking of the old offer made after a
    change of skills alone was said but before matching read it (a fill names no
    skills) is counted filled, though matching releases it.
    """
    if fill.offer_id in facts.given_up or any(at > fill.at for at in releases):
        return False
    if now is None:
        return True  # nothing read from vacancies yet: the fill is all there is
    offer = facts.offered.get(fill.offer_id)
    return (fill.organisation, fill.starts_at, fill.ends_at) == (
        now.organisation,
        now.starts_at,
        now.ends_at,
    ) and (offer is None or offer.role == now.role)


def _standing(facts: SessionFacts) -> tuple[list[Stated], Stated | None, list[Filled]]:
    """Vacancies' words in order, its first closing word (if any) and the fills that
    stand, of the session as its facts say it is now."""
    stated = sorted(facts.stated.values(), key=_said_order)
    states = [s for s in stated if s.said not in _CLOSING]
    closings = [s for s in stated if s.said in _CLOSING]
    closed = closings[0] if closings else None
    releases = _releases(states)
    now = states[-1] if states else None
    standing = (
        []
        if closed is not None
        else [f for f in facts.filled.values() if _stands(f, facts, now, releases)]
    )
    return stated, closed, standing


def figures(facts: SessionFacts) -> SectorCounts | None:
    """What the session adds to its region's and sector's counts; None while nothing
    read says where it is.

    Where: from vacancies' latest word, else matching's. Posted once vacancies has said
    anything of it; cancelled or unfilled by vacancies' first closing word (a closed
    session stays closed); filled while a booking of it stands and it is not closed.
    """
    stated, closed, standing = _standing(facts)
    latest: Stated | Offered | Filled | None = stated[-1] if stated else None
    if latest is None:
        matched: list[Offered | Filled] = [*facts.filled.values(), *facts.offered.values()]
        latest = max(matched, key=lambda f: (f.at, f.event_id), default=None)
    if latest is None:
        return None
    filled = bool(standing)
    return SectorCounts(
        region=latest.region,
        sector=latest.sector,
        posted=int(bool(stated)),
        offered=int(bool(facts.offered)),
        filled=int(filled),
        cancelled=int(closed is not None and closed.said is Said.CANCELLED),
        unfilled=int(closed is not None and closed.said is Said.UNFILLED),
        late_cancelled=int(closed is not None and closed.said is Said.CANCELLED and closed.late),
        late_given_up=sum(g.late for g in facts.given_up.values()),
    )


@dataclass(frozen=True, slots=True)
class Timeline:
    """When a session is and what happened to it when, as its facts stand now: what the
    period figures, time to fill and the at-risk list are worked out from.

    ``starts_at``/``ends_at``: the time vacancies last said (a closing word repeats the
    session as it stood, and is used only when nothing else is read). ``posted_at``:
    when vacancies said it was posted. ``filled_at``: when matching booked the booking
    that stands now; None if none stands (a fill given up, released or closed is no
    fill), so time to fill counts only fills that still stand.
    """

    starts_at: datetime | None = None
    ends_at: datetime | None = None
    posted_at: datetime | None = None
    filled_at: datetime | None = None

    def minutes_to_fill(self) -> float | None:
        """Minutes from posting to the standing fill; None unless both are known.

        The two times come from two services' clocks; a fill follows its post through
        the broker, so a negative difference is clock skew, counted as no wait at all.
        """
        if self.posted_at is None or self.filled_at is None:
            return None
        return max(0.0, (self.filled_at - self.posted_at).total_seconds() / 60)


def current(facts: SessionFacts) -> Stated | None:
    """The session as vacancies last said it: its latest word that is not a closing one
    (a cancellation repeats the session as it stood), else its first closing word."""
    stated = sorted(facts.stated.values(), key=_said_order)
    states = [s for s in stated if s.said not in _CLOSING]
    closings = [s for s in stated if s.said in _CLOSING]
    return states[-1] if states else (closings[0] if closings else None)


def released_at(facts: SessionFacts) -> list[datetime]:
    """When amendments released the session's booking (``_releases``), in order."""
    stated = sorted(facts.stated.values(), key=_said_order)
    return _releases([s for s in stated if s.said not in _CLOSING])


def timeline(facts: SessionFacts) -> Timeline:
    """The session's ``Timeline``, from all its facts in any order."""
    stated, _, standing = _standing(facts)
    where = current(facts)
    posts = [s.at for s in stated if s.said is Said.POSTED]
    return Timeline(
        starts_at=where.starts_at if where else None,
        ends_at=where.ends_at if where else None,
        posted_at=min(posts, default=None),
        # Only one booking stands at a time; the latest if the facts ever say more.
        filled_at=max((f.at for f in standing), default=None),
    )


def changes(pairs: Iterable[tuple[SectorCounts | None, SectorCounts | None]]) -> list[SectorCounts]:
    """What to add to the counters when sessions' figures go from ``before`` to
    ``after``: one row per region and sector that changed, in (region, sector) order."""
    sums: dict[tuple[str, str], list[int]] = {}
    for before, after in pairs:
        for counts, sign in ((before, -1), (after, 1)):
            if counts is None:
                continue
            row = sums.setdefault((counts.region, counts.sector), [0] * len(COUNTED))
            for i, n in enumerate(counts.numbers()):
                row[i] += sign * n
    return [SectorCounts(r, s, *row) for (r, s), row in sorted(sums.items()) if any(row)]


@dataclass(frozen=True, slots=True)
class Folded:
    """Sessions after new facts: their facts, their figures and timelines, and the
    counters' change."""

    facts: dict[uuid.UUID, SessionFacts]
    figures: dict[uuid.UUID, SectorCounts | None]
    changes: list[SectorCounts]
    timelines: dict[uuid.UUID, Timeline] = field(default_factory=dict)


def fold(
    known: Mapping[uuid.UUID, tuple[SessionFacts, SectorCounts | None]],
    new: Iterable[tuple[uuid.UUID, Fact]],
) -> Folded:
    """Add ``new`` (session id, fact) to the sessions ``known`` (facts, and the figures
    the counters hold for them); sessions not known start empty.

    The change is against the figures the counters hold, not figures worked out again
    from the old facts, so the counters stay the sum of the sessions' kept figures.
    """
    facts = {sid: f for sid, (f, _) in known.items()}
    touched: list[uuid.UUID] = []
    for sid, fact in new:
        if sid not in touched:
            touched.append(sid)
        facts[sid] = record(facts.get(sid, SessionFacts()), fact)
    after = {sid: figures(facts[sid]) for sid in touched}
    before = {sid: known[sid][1] if sid in known else None for sid in touched}
    return Folded(
        facts={sid: facts[sid] for sid in touched},
        figures=after,
        changes=changes((before[sid], after[sid]) for sid in touched),
        timelines={sid: timeline(facts[sid]) for sid in touched},
    )
