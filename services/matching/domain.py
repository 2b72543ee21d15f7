"""The matching core: who may be offered which session, and in what order. No I/O.

The foundation's rule set is deliberately simple and correct: a profession that may
fill the role, every skill asked for, available for the whole session, within
travel distance, not already committed at that time, never the same clinician twice
for one session; home-sector clinicians are preferred.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.catalogue import Profession, Role, Sector, Skill, Urgency, may_fill

OFFER_TTL = timedelta(hours=2)


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


@dataclass(frozen=True, slots=True)
class Window:
    """Time a clinician offered the bank."""

    clinician_id: uuid.UUID
    profession: Profession
    home_sector: Sector
    starts_at: datetime
    ends_at: datetime
    skills: frozenset[Skill] = frozenset()
    latitude: float = 0.0
    longitude: float = 0.0
    travel_km: float = 30.0


@dataclass(frozen=True, slots=True)
class Commitment:
    """Time a clinician is booked or holds a live offer for."""

    clinician_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class Proposal:
    """An offer to make: this session to this clinician, and why."""

    session: OpenSession
    clinician_id: uuid.UUID
    home_sector: Sector
    reasons: tuple[str, ...]
    distance_km: float = 0.0


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    """Whether two half-open intervals share any instant."""
    return a_start < b_end and b_start < a_end


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres (haversine; road distance needs a map we lack)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))


def reach(session: OpenSession, window: Window) -> float:
    """How far the session is from the clinician's base."""
    return distance_km(session.latitude, session.longitude, window.latitude, window.longitude)


def offer_expiry(now: datetime, starts_at: datetime) -> datetime:
    """The sooner of two hours and half the time left before the session starts."""
    return now + min(OFFER_TTL, max((starts_at - now) / 2, timedelta(0)))


def _reasons(session: OpenSession, window: Window) -> tuple[str, ...]:
    reasons = [
        f"As a {window.profession.value.replace('_', ' ')} you may fill a"
        f" {session.role.value.replace('_', ' ')} session.",
        "You are free for the whole session.",
        f"It is {reach(session, window):.0f} km from your base, within your"
        f" {window.travel_km:.0f} km.",
    ]
    if window.home_sector is session.sector:
        reasons.append("It is in your home sector.")
    else:
        reasons.append("No one from the session's own sector was free for it.")
    return tuple(reasons)


def plan_offers(
    sessions: Iterable[OpenSession],
    windows: Iterable[Window],
    commitments: Iterable[Commitment],
    *,
    already_tried: frozenset[tuple[uuid.UUID, uuid.UUID]] = frozenset(),
) -> list[Proposal]:
    """Propose at most one offer per session, never two overlapping ones per clinician.

    Eligible: the profession may fill the role, the clinician holds every skill asked
    for, is free for the whole session, the session is within their travel distance,
    and they are not already committed then.

    Sessions are taken soonest first; for each, an eligible home-sector clinician is
    preferred over one from another sector, then the lowest id (to be deterministic).
    """
    busy: dict[uuid.UUID, list[tuple[datetime, datetime]]] = {}
    for c in commitments:
        busy.setdefault(c.clinician_id, []).append((c.starts_at, c.ends_at))
    window_list = list(windows)
    proposals: list[Proposal] = []
    for session in sorted(sessions, key=lambda s: (s.starts_at, str(s.id))):
        candidates = [
            w
            for w in window_list
            if may_fill(w.profession, session.role)
            and session.skills <= w.skills
            and w.starts_at <= session.starts_at
            and w.ends_at >= session.ends_at
            and reach(session, w) <= w.travel_km
            and (session.id, w.clinician_id) not in already_tried
            and not any(
                overlaps(s, e, session.starts_at, session.ends_at)
                for s, e in busy.get(w.clinician_id, [])
            )
        ]
        if not candidates:
            continue
        best = min(
            candidates, key=lambda w: (w.home_sector is not session.sector, str(w.clinician_id))
        )
        busy.setdefault(best.clinician_id, []).append((session.starts_at, session.ends_at))
        proposals.append(
            Proposal(
                session=session,
                clinician_id=best.clinician_id,
                home_sector=best.home_sector,
                reasons=_reasons(session, best),
                distance_km=reach(session, best),
            )
        )
    return proposals
