"""The catalogue of events: type, current schema version, data model and topic.

One topic per producing service (its *stream*), keyed by region: Kafka keeps order
only within a partition, so everything one service says about one region reaches
every consumer in the order it was said (a session posted before it is amended and
before it is cancelled; an offer accepted before its booking is cancelled). Events
of different services still race each other; docs/ordering.md lists each race and
what the handlers do about it.
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
    MoveReversed,
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
from shared.events.timesheets import TimesheetApproved, TimesheetQueried, TimesheetSubmitted

# Every topic is created at start-up with this many partitions; the region key spreads
# regions across them. Four because that is what Tansu gives a topic it creates on a
# producer's metadata request (after it restarted empty, a producer can get there before
# the topic keeper): the same count keeps each region on the same partition either way.
PARTITIONS = 4


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
            "move.reversed", 1, MoveReversed, "matching", "A counted move's booking was released."
        ),
        EventSpec(
            "sector.drain_alert", 1, SectorDrainAlert, "matching", "A sector neared its cap."
        ),
        EventSpec(
            "sector.drain_cleared", 1, SectorDrainCleared, "matching", "A sector's alert ended."
        ),
        EventSpec("policy.changed", 1, PolicyChanged, "matching", "A region's policy changed."),
        EventSpec(
            "timesheet.submitted", 1, TimesheetSubmitted, "bank", "A worked session's hours."
        ),
        EventSpec(
            "timesheet.approved", 1, TimesheetApproved, "vacancies", "A timesheet was approved."
        ),
        EventSpec(
            "timesheet.queried", 1, TimesheetQueried, "vacancies", "A timesheet was queried."
        ),
    )
}

DEAD_LETTER = "deadletter"
PRODUCERS: tuple[str, ...] = tuple(dict.fromkeys(spec.producer for spec in EVENTS.values()))


def spec_for(event_type: str) -> EventSpec:
    """Return the catalogue entry for ``event_type``; KeyError if there is none."""
    return EVENTS[event_type]


def stream_for(producer: str, prefix: str = "") -> str:
    """The topic carrying every event ``producer`` publishes (a prefix isolates runs)."""
    return f"{prefix}{producer}.events"


def topic_for(event_type: str, prefix: str = "") -> str:
    """Kafka topic that carries ``event_type``: its producer's stream."""
    return stream_for(spec_for(event_type).producer, prefix)


def types_on(producer: str) -> list[str]:
    """The event types published on ``producer``'s stream."""
    return [spec.type for spec in EVENTS.values() if spec.producer == producer]


def dead_letter_topic(prefix: str = "") -> str:
    """Topic where consumers park messages they cannot understand."""
    return f"{prefix}{DEAD_LETTER}"


def all_topics(prefix: str = "") -> list[str]:
    """Every topic the system needs, dead letters included."""
    return [stream_for(p, prefix) for p in PRODUCERS] + [dead_letter_topic(prefix)]
