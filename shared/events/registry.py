"""The catalogue of events: type, current schema version, data model and topic.

One topic per event type keeps consumers simple (subscribe to what you need) and
makes the AsyncAPI catalogue read like the list of things that can happen.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass

from pydantic import BaseModel

from shared.events.contracts import (
    AvailabilityOffered,
    AvailabilityWithdrawn,
    BookingCancelled,
    ClinicianTransferred,
    MoveRecorded,
    OfferAccepted,
    OfferDeclined,
    OfferRefused,
    PolicyChanged,
    SectorDrainAlert,
    SectorDrainCleared,
    SessionAmended,
    SessionCancelled,
    SessionFilled,
    SessionOffered,
    SessionPosted,
    SessionUnfilled,
    SessionUnmatched,
)

# Tansu creates no topic on demand, so every topic is created at start-up with this
# many partitions; the region key spreads regions across them.
PARTITIONS = 3


@dataclass(frozen=True, slots=True)
class EventSpec:
    """What the catalogue knows of one event type."""

    type: str
    version: int
    model: builtins.type[BaseModel]
    producer: str
    summary: str


EVENTS: dict[str, EventSpec] = {
    spec.type: spec
    for spec in (
        EventSpec("session.posted", 1, SessionPosted, "vacancies", "A vacant session was posted."),
        EventSpec("session.amended", 1, SessionAmended, "vacancies", "A session was changed."),
        EventSpec(
            "session.cancelled", 1, SessionCancelled, "vacancies", "A session was cancelled."
        ),
        EventSpec(
            "session.unfilled", 1, SessionUnfilled, "vacancies", "A session started unfilled."
        ),
        EventSpec(
            "availability.offered", 1, AvailabilityOffered, "bank", "A clinician offered time."
        ),
        EventSpec("session.offered", 1, SessionOffered, "matching", "A session was offered."),
        EventSpec("offer.accepted", 1, OfferAccepted, "bank", "A clinician accepted an offer."),
        EventSpec("session.filled", 1, SessionFilled, "matching", "A session was filled."),
        EventSpec(
            "availability.withdrawn",
            1,
            AvailabilityWithdrawn,
            "bank",
            "A clinician took time back.",
        ),
        EventSpec("offer.declined", 1, OfferDeclined, "bank", "A clinician declined an offer."),
        EventSpec(
            "clinician.transferred",
            1,
            ClinicianTransferred,
            "bank",
            "A clinician changed home sector or employer.",
        ),
        EventSpec(
            "booking.cancelled", 1, BookingCancelled, "bank", "A clinician cancelled a booking."
        ),
        EventSpec(
            "offer.refused", 1, OfferRefused, "matching", "An acceptance could not be honoured."
        ),
        EventSpec(
            "session.unmatched", 1, SessionUnmatched, "matching", "A session has no offer, and why."
        ),
        EventSpec("move.recorded", 1, MoveRecorded, "matching", "A cross-sector move counted."),
        EventSpec(
            "sector.drain_alert", 1, SectorDrainAlert, "matching", "A sector neared its cap."
        ),
        EventSpec(
            "sector.drain_cleared", 1, SectorDrainCleared, "matching", "A sector's alert ended."
        ),
        EventSpec("policy.changed", 1, PolicyChanged, "matching", "A region's policy changed."),
    )
}

DEAD_LETTER = "deadletter"


def spec_for(event_type: str) -> EventSpec:
    """Return the catalogue entry for ``event_type``; KeyError if there is none."""
    return EVENTS[event_type]


def topic_for(event_type: str, prefix: str = "") -> str:
    """Kafka topic that carries ``event_type`` (a prefix isolates test runs)."""
    return f"{prefix}{spec_for(event_type).type}"


def dead_letter_topic(prefix: str = "") -> str:
    """Topic where consumers park messages they cannot understand."""
    return f"{prefix}{DEAD_LETTER}"


def all_topics(prefix: str = "") -> list[str]:
    """Every topic the system needs, dead letters included."""
    return [topic_for(t, prefix) for t in EVENTS] + [dead_letter_topic(prefix)]
