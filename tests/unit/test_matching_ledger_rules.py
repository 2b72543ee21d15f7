"""The drain guard's pure parts (issue 10): one window, what one clinician can count
towards the cap's base, and the ledger's events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.matching.policy import OFFERED_HOURS_PER_WEEK, offered_in_window, window
from shared.catalogue import Sector
from shared.events import EVENTS, MoveReversed, PolicyChanged, topic_for

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)
H = timedelta(hours=1)


def test_the_window_is_the_days_before_now_and_as_many_after() -> None:
    assert window(NOW, 28) == (NOW - timedelta(days=28), NOW + timedelta(days=28))


def test_offered_hours_are_clipped_to_the_window() -> None:
    lo, hi = window(NOW, 28)
    spans = [(lo - 5 * H, lo + 5 * H), (hi - 2 * H, hi + 30 * H), (hi + H, hi + 9 * H)]
    assert offered_in_window(spans, lo, hi) == 7.0


def test_one_clinician_counts_at_most_sixty_hours_a_week() -> None:
    lo, hi = window(NOW, 28)
    forever = [(NOW + timedelta(days=20), datetime(2099, 1, 1, tzinfo=UTC))]
    # It touches the last two weeks: 24 hours of the first, the whole of the second (60).
    assert offered_in_window(forever, lo, hi) == 24 + OFFERED_HOURS_PER_WEEK
    everything = [(lo - timedelta(days=1), hi + timedelta(days=1))]
    assert offered_in_window(everything, lo, hi) == 8 * OFFERED_HOURS_PER_WEEK


def test_a_partial_last_week_is_bounded_pro_rata() -> None:
    lo = NOW
    hi = NOW + timedelta(days=10, hours=12)  # a week and a half
    assert offered_in_window([(lo, hi)], lo, hi) == 1.5 * OFFERED_HOURS_PER_WEEK


def test_an_old_policy_changed_without_a_window_still_parses() -> None:
    old = {
        "cap_pct": {"community_pharmacy": 10.0},
        "home_first": True,
        "alert_share": 0.8,
        "changed_by": "ops",
    }
    assert PolicyChanged.model_validate(old).window_days == 28


def test_move_reversed_is_matchings_and_says_why() -> None:
    spec = EVENTS["move.reversed"]
    assert (spec.model, spec.producer, spec.version) == (MoveReversed, "matching", 1)
    assert topic_for("move.reversed") == "matching.events"
    event = MoveReversed(
        move_id=uuid.uuid4(),
        kind="session",
        clinician_id=uuid.uuid4(),
        from_sector=Sector.COMMUNITY_PHARMACY,
        to_sector=Sector.GENERAL_PRACTICE,
        hours=4.0,
        at=NOW,
        session_id=uuid.uuid4(),
        reason="booking_cancelled",
    )
    assert MoveReversed.model_validate_json(event.model_dump_json()) == event
