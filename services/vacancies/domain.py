"""The vacancies domain: what a valid session is and how its status moves. No I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.catalogue import Profession, Sector

MAX_SESSION = timedelta(hours=13)


class SessionStatus(StrEnum):
    """Where a posted session is in its life."""

    OPEN = "open"
    OFFERED = "offered"
    FILLED = "filled"


@dataclass(frozen=True, slots=True)
class Organisation:
    """A practice, PCN, pharmacy, dental practice or optometrist that posts sessions."""

    ods_code: str
    name: str
    sector: Sector
    region: str
    latitude: float
    longitude: float
    active: bool


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session as a practice describes it."""

    external_id: str
    profession: Profession
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class RuleBroken:
    """A field of a posted session and the rule it breaks."""

    field: str
    message: str


def check_session(session: NewSession, *, now: datetime) -> list[RuleBroken]:
    """Every rule ``session`` breaks; empty when it may be posted."""
    broken: list[RuleBroken] = []
    if session.ends_at <= session.starts_at:
        broken.append(RuleBroken("data.ends_at", "must be after starts_at"))
    elif session.ends_at - session.starts_at > MAX_SESSION:
        broken.append(RuleBroken("data.ends_at", "a session may last at most 13 hours"))
    if session.starts_at <= now:
        broken.append(RuleBroken("data.starts_at", "must be in the future"))
    return broken


def next_status(current: SessionStatus, event: str) -> SessionStatus:
    """Status after ``event``; a filled session stays filled whatever arrives late."""
    if current is SessionStatus.FILLED:
        return current
    if event == "session.filled":
        return SessionStatus.FILLED
    if event == "session.offered":
        return SessionStatus.OFFERED
    return current


def new_session_id() -> uuid.UUID:
    """Fairshare's id for a newly posted session."""
    return uuid.uuid4()
