"""The matching core's vocabulary: sessions, clinicians' windows, commitments, offers.

Pure data and the per-pair rules; the planner that uses them is ``engine``. No I/O.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.catalogue import Profession, Role, Sector, Skill, Urgency, may_fill

OFFER_TTL = timedelta(hours=2)


def utc(at: datetime) -> datetime:
    """``at`` in UTC: the engine's edge.

    Python subtracts and compares two datetimes that share a tzinfo by their wall
    clocks: with Europe/London times a rest across the October clock change measured
    an hour short (a legal 11 hours refused) and across March an hour long (10 hours
    passed as 11). In UTC every difference is real time. A naive datetime is refused.
    """
    if at.tzinfo is None:
        msg = f"{at!r} has no time zone; matching needs an instant"
        raise ValueError(msg)
    return at if at.tzinfo is UTC else at.astimezone(UTC)


def _normalise(obj: object) -> None:
    """Store a frozen dataclass's ``starts_at`` and ``ends_at`` in UTC."""
    for name in ("starts_at", "ends_at"):
        object.__setattr__(obj, name, utc(getattr(obj, name)))


@dataclass(frozen=True, slots=True)
class OpenSession:
    """A session that still needs an offer."""

    id: uuid.UUID
    organisation: str
    sector: Sector
    role: Role
    starts_at: datetime
    ends_at: datetime
    skills: frozenset[Skill] = frozenset()
    site_name: str = ""
    latitude: float = 0.0
    longitude: float = 0.0
    rate_pence_per_hour: int | None = None
    urgency: Urgency = Urgency.ROUTINE
    # Index of Multiple Deprivation decile of the organisation's area: 1 is the most
    # deprived tenth of England, 10 the least; None when the organisation didn't say.
    imd_decile: int | None = None
    place: str = ""

    def __post_init__(self) -> None:
        _normalise(self)

    @property
    def hours(self) -> float:
        """Length of the session in hours."""
        return (self.ends_at - self.starts_at).total_seconds() / 3600


@dataclass(frozen=True, slots=True)
class Window:
    """Time a clinician offered the bank, with what matching needs to know of them."""

    clinician_id: uuid.UUID
    profession: Profession
    home_sector: Sector
    starts_at: datetime
    ends_at: datetime
    skills: frozenset[Skill] = frozenset()
    latitude: float = 0.0
    longitude: float = 0.0
    travel_km: float = 30.0
    # Opted out of the 48-hour week (the 11-hour rest still applies).
    wtr_opt_out: bool = False
    # Self-employed: working-time limits are warnings they may override, not blocks.
    self_employed: bool = False

    def __post_init__(self) -> None:
        _normalise(self)


@dataclass(frozen=True, slots=True)
class Commitment:
    """Time a clinician is booked or holds a live offer for."""

    clinician_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime

    def __post_init__(self) -> None:
        _normalise(self)


@dataclass(frozen=True, slots=True)
class Proposal:
    """An offer to make: this session to this clinician, and why."""

    session: OpenSession
    clinician_id: uuid.UUID
    home_sector: Sector
    reasons: tuple[str, ...]
    distance_km: float = 0.0
    # Working-time limits this offer would pass, for a self-employed clinician to weigh.
    warnings: tuple[str, ...] = ()

    @property
    def cross_sector(self) -> bool:
        """Whether filling it moves the clinician out of their home sector."""
        return self.home_sector is not self.session.sector


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    """Whether two half-open intervals share any instant."""
    return a_start < b_end and b_start < a_end


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres (haversine; road distance needs a map we lack)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, a)))


def reach(session: OpenSession, window: Window) -> float:
    """How far the session is from the clinician's base."""
    return distance_km(session.latitude, session.longitude, window.latitude, window.longitude)


def offer_expiry(now: datetime, starts_at: datetime) -> datetime:
    """The sooner of two hours and half the time left before the session starts."""
    return now + min(OFFER_TTL, max((starts_at - now) / 2, timedelta(0)))


def eligible(session: OpenSession, window: Window, busy: list[Commitment]) -> bool:
    """The per-pair hard rules: profession, skills, whole session, distance, not busy.

    ``busy`` are the clinician's commitments. The engine applies the same rules in bulk;
    this one-pair form is the specification its tests compare against.
    """
    return (
        may_fill(window.profession, session.role)
        and session.skills <= window.skills
        and window.starts_at <= session.starts_at
        and window.ends_at >= session.ends_at
        and reach(session, window) <= window.travel_km
        and not any(
            overlaps(c.starts_at, c.ends_at, session.starts_at, session.ends_at) for c in busy
        )
    )
