"""The bank's domain: clinicians, their windows and what they may do with offers. No I/O."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.catalogue import Profession, Sector, Skill


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


@dataclass(frozen=True, slots=True)
class Clinician:
    """A member of the bank, as the bank's own services see them."""

    id: uuid.UUID
    display_name: str
    profession: Profession
    home_sector: Sector
    region: str
    skills: frozenset[Skill] = frozenset()


@dataclass(frozen=True, slots=True)
class Offer:
    """An offer of a session made to one clinician."""

    id: uuid.UUID
    session_id: uuid.UUID
    clinician_id: uuid.UUID
    status: OfferStatus
    expires_at: datetime


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
