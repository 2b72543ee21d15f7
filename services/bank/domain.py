"""The bank's domain: clinicians, their windows and what they may do with offers. No I/O."""

from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from shared.catalogue import Employment, Profession, Sector, Skill


class OfferStatus(StrEnum):
    """Where an offer stands: offered → accepted → booked, or refused by matching,
    withdrawn (the session changed or went before an answer), or cancelled (by the
    organisation after it was booked)."""

    OFFERED = "offered"
    ACCEPTED = "accepted"
    BOOKED = "booked"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"
    CANCELLED = "cancelled"
    DECLINED = "declined"
    CANCELLED_BY_ME = "cancelled_by_me"


@dataclass(frozen=True, slots=True)
class Clinician:
    """A member of the bank. Name, e-mail and phone never leave the bank."""

    id: uuid.UUID
    display_name: str
    profession: Profession
    home_sector: Sector
    region: str
    skills: frozenset[Skill] = frozenset()
    email: str | None = None
    phone: str | None = None
    register: str | None = None
    register_number: str | None = None
    home_organisation: str | None = None
    employment: Employment = Employment.BANK_ONLY
    latitude: float = 53.48
    longitude: float = -2.24
    travel_km: float = 30.0
    wtr_opt_out: bool = False
    self_employed: bool = False
    late_cancellations: int = 0


@dataclass(frozen=True, slots=True)
class Offer:
    """An offer of a session made to one clinician."""

    id: uuid.UUID
    session_id: uuid.UUID
    clinician_id: uuid.UUID
    status: OfferStatus
    expires_at: datetime
    starts_at: datetime | None = None


class OfferRefused(Exception):  # noqa: N818 - a refusal, not a crash
    """The clinician may not accept this offer; ``status`` is the HTTP answer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def check_acceptance(offer: Offer | None, *, clinician_id: uuid.UUID, now: datetime) -> Offer:
    """The offer if ``clinician_id`` may accept it now; OfferRefused says why not.

    Someone else's offer answers exactly like a missing one, so ids can't be probed.
    """
    if offer is None or offer.clinician_id != clinician_id:
        raise OfferRefused(404, "No such offer for you.")
    if offer.status is not OfferStatus.OFFERED:
        raise OfferRefused(409, f"This offer was already {offer.status.value}.")
    if offer.expires_at <= now:
        raise OfferRefused(410, "This offer has expired and can no longer be accepted.")
    return offer


LATE_CANCELLATION = timedelta(hours=48)
INVITE_TTL = timedelta(days=3)
SESSION_TTL = timedelta(days=30)


def is_late(starts_at: datetime, *, now: datetime) -> bool:
    """Cancelling within 48 hours of the start is late, and counted."""
    return starts_at.astimezone(UTC) - now.astimezone(UTC) < LATE_CANCELLATION


def check_cancellation(offer: Offer | None, *, clinician_id: uuid.UUID, now: datetime) -> Offer:
    """The booking if the clinician may cancel it now; OfferRefused says why not."""
    if offer is None or offer.clinician_id != clinician_id:
        raise OfferRefused(404, "No such booking for you.")
    if offer.status not in (OfferStatus.ACCEPTED, OfferStatus.BOOKED):
        raise OfferRefused(409, f"This is not a booking you hold (it is {offer.status.value}).")
    if offer.starts_at is not None and offer.starts_at <= now:
        raise OfferRefused(409, "This session has already started; contact the practice.")
    return offer


def transferred(before: Clinician, after: Clinician) -> bool:
    """A change of home sector or employer is a permanent move the ICB must see."""
    return (before.home_sector, before.home_organisation) != (
        after.home_sector,
        after.home_organisation,
    )


def check_window(starts_at: datetime, ends_at: datetime, *, now: datetime) -> list[str]:
    """Problems with an availability window, as ``field: message`` pairs."""
    problems = []
    if ends_at <= starts_at:
        problems.append("ends_at: must be after starts_at")
    if ends_at <= now:
        problems.append("ends_at: must be in the future")
    return problems


def new_token() -> str:
    """A sign-in token for a clinician (shown once, stored only as a hash)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token; SHA-256 suffices for 256-bit random tokens."""
    return hashlib.sha256(token.encode()).hexdigest()


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres (straight line: no road map offline)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))
