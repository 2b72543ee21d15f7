"""Versioned event contracts: the envelope, one model per event, and the topic catalogue."""

from shared.events.contracts import (
    AvailabilityOffered,
    AvailabilityWithdrawn,
    BookingCancelled,
    ClinicianTransferred,
    OfferAccepted,
    OfferDeclined,
    OfferRefused,
    SessionAmended,
    SessionCancelled,
    SessionFilled,
    SessionOffered,
    SessionPosted,
    SessionUnfilled,
)
from shared.events.envelope import Envelope, new_envelope
from shared.events.registry import EVENTS, EventSpec, dead_letter_topic, spec_for, topic_for

__all__ = [
    "EVENTS",
    "AvailabilityOffered",
    "AvailabilityWithdrawn",
    "BookingCancelled",
    "ClinicianTransferred",
    "Envelope",
    "EventSpec",
    "OfferAccepted",
    "OfferDeclined",
    "OfferRefused",
    "SessionAmended",
    "SessionCancelled",
    "SessionFilled",
    "SessionOffered",
    "SessionPosted",
    "SessionUnfilled",
    "dead_letter_topic",
    "new_envelope",
    "spec_for",
    "topic_for",
]
