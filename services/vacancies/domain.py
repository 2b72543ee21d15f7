"""The vacancies domain: what a valid session is and how its life goes. No I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from shared.catalogue import Role, Sector, Skill, Urgency

MAX_SESSION = timedelta(hours=13)
LATE_CANCELLATION = timedelta(hours=48)


class SessionStatus(StrEnum):
    """open → offered → filled; or unfilled (start passed) or cancelled."""

    OPEN = "open"
    OFFERED = "offered"
    FILLED = "filled"
    UNFILLED = "unfilled"
    CANCELLED = "cancelled"


FINAL = frozenset({SessionStatus.UNFILLED, SessionStatus.CANCELLED})


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
    pcn: str | None = None
    callback_url: str | None = None
    # Index of Multiple Deprivation decile of its area (1 most deprived): matching
    # fills sessions in deprived areas first. Place: the ICB place it belongs to.
    imd_decile: int | None = None
    place: str | None = None


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session as the organisation's rota system describes it."""

    external_id: str
    role: Role
    starts_at: datetime
    ends_at: datetime
    site: str | None = None
    skills: frozenset[Skill] = frozenset()
    rate_pence_per_hour: int | None = None
    urgency: Urgency = Urgency.ROUTINE
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A session as Fairshare holds it."""

    id: uuid.UUID
    organisation: str
    details: NewSession
    status: SessionStatus
    clinician_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class RuleBroken:
    """A field and the rule it breaks."""

    field: str
    message: str


def check_session(session: NewSession, *, now: datetime, prefix: str = "data") -> list[RuleBroken]:
    """Every timing rule ``session`` breaks; empty when it may be posted."""
    broken: list[RuleBroken] = []
    # In UTC: Python compares and subtracts two datetimes sharing a tzinfo by wall clock,
    # which would misjudge a night session across the clock change by an hour.
    starts, ends = session.starts_at.astimezone(UTC), session.ends_at.astimezone(UTC)
    if ends <= starts:
        broken.append(RuleBroken(f"{prefix}.ends_at", "must be after starts_at"))
    elif ends - starts > MAX_SESSION:
        broken.append(RuleBroken(f"{prefix}.ends_at", "a session may last at most 13 hours"))
    if starts <= now:
        broken.append(RuleBroken(f"{prefix}.starts_at", "must be in the future"))
    return broken


def check_site(
    poster: Organisation, site: Organisation | None, site_code: str
) -> RuleBroken | None:
    """A session is worked at the poster itself or, for a PCN, at one of its practices."""
    if site_code == poster.ods_code:
        return None
    if site is None:
        return RuleBroken("data.site", f"{site_code} is not a registered organisation")
    if site.pcn != poster.ods_code:
        return RuleBroken("data.site", f"{site_code} is not a member practice of {poster.ods_code}")
    if not site.active:
        return RuleBroken("data.site", f"{site_code} is deactivated")
    return None


class Outcome(StrEnum):
    """What a delivery did to one session."""

    CREATED = "created"
    AMENDED = "amended"
    UNCHANGED = "unchanged"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Amendment:
    """The result of posting an external id that already exists."""

    outcome: Outcome
    session: StoredSession
    released_clinician: uuid.UUID | None = None
    refusal: RuleBroken | None = None


def amend(existing: StoredSession, incoming: NewSession) -> Amendment:
    """Apply ``incoming`` to ``existing``: an external id names one session, never two.

    Changing the time or role of a filled session releases the clinician and opens
    it again; changing only its notes, rate or urgency leaves the booking alone.
    """
    if existing.status in FINAL:
        refusal = RuleBroken(
            "data.external_id",
            f"session {existing.details.external_id} is {existing.status.value};"
            " post a new external_id for a new session",
        )
        return Amendment(Outcome.REJECTED, existing, refusal=refusal)
    details = replace(incoming, site=incoming.site or existing.details.site)
    if details == existing.details:
        return Amendment(Outcome.UNCHANGED, existing)
    old = existing.details
    material = (old.starts_at, old.ends_at, old.role, old.site, old.skills) != (
        details.starts_at,
        details.ends_at,
        details.role,
        details.site,
        details.skills,
    )
    if existing.status is SessionStatus.FILLED and material:
        reopened = replace(existing, details=details, status=SessionStatus.OPEN, clinician_id=None)
        return Amendment(Outcome.AMENDED, reopened, released_clinician=existing.clinician_id)
    if existing.status is SessionStatus.OFFERED and material:
        # Whoever holds the offer was offered the old session: it goes back to matching.
        return Amendment(
            Outcome.AMENDED, replace(existing, details=details, status=SessionStatus.OPEN)
        )
    return Amendment(Outcome.AMENDED, replace(existing, details=details))


@dataclass(frozen=True, slots=True)
class Cancellation:
    """The result of a cancellation request."""

    outcome: Outcome
    late: bool = False
    released_clinician: uuid.UUID | None = None
    refusal: RuleBroken | None = None


def cancel(existing: StoredSession, reason: str | None, *, now: datetime) -> Cancellation:
    """Cancel a session; a filled one needs a reason, and its clinician is told."""
    if existing.status is SessionStatus.CANCELLED:
        return Cancellation(Outcome.UNCHANGED)
    if existing.status is SessionStatus.UNFILLED:
        refusal = RuleBroken("data.external_id", "the session already started unfilled")
        return Cancellation(Outcome.REJECTED, refusal=refusal)
    if existing.status is SessionStatus.FILLED and not (reason and reason.strip()):
        refusal = RuleBroken(
            "data.reason", "required to cancel a session a clinician is booked for"
        )
        return Cancellation(Outcome.REJECTED, refusal=refusal)
    return Cancellation(
        Outcome.CANCELLED,
        late=is_late(existing.details.starts_at, now=now),
        released_clinician=existing.clinician_id,
    )


def is_late(starts_at: datetime, *, now: datetime) -> bool:
    """A cancellation within 48 hours of the start is late (the ICB counts these)."""
    return starts_at.astimezone(UTC) - now.astimezone(UTC) < LATE_CANCELLATION


def after_event(current: SessionStatus, event: str) -> SessionStatus:
    """Status after a matching or bank event; final states and fills are not undone late."""
    if current in FINAL:
        return current
    if event == "session.filled":
        return SessionStatus.FILLED
    if event == "session.offered" and current is SessionStatus.OPEN:
        return SessionStatus.OFFERED
    if event == "booking.cancelled" and current is SessionStatus.FILLED:
        return SessionStatus.OPEN
    return current


def is_due_unfilled(status: SessionStatus, starts_at: datetime, *, now: datetime) -> bool:
    """A session whose start passed with nobody booked goes unfilled."""
    return status in (SessionStatus.OPEN, SessionStatus.OFFERED) and starts_at <= now


def retry_delay(attempt: int, *, base_s: float, cap_s: float) -> timedelta:
    """Exponential backoff for callback retries: base, twice that, four times, ... up to a cap."""
    return timedelta(seconds=min(cap_s, base_s * 2 ** max(attempt - 1, 0)))


def new_session_id() -> uuid.UUID:
    """Fairshare's id for a newly posted session."""
    return uuid.uuid4()
