"""The monitor's pure rules: which counter an event moves, fill rates, the dashboard layout."""

from __future__ import annotations

import pytest

from services.monitor.domain import (
    SectorCounts,
    Stage,
    build_dashboard,
    fill_rate,
    sector_label,
    stage_for,
)
from services.monitor.handlers import handlers
from shared.catalogue import Sector


def test_each_session_event_moves_its_own_counter() -> None:
    """posted, offered and filled events map to the counter of the same name."""
    assert stage_for("session.posted") is Stage.POSTED
    assert stage_for("session.offered") is Stage.OFFERED
    assert stage_for("session.filled") is Stage.FILLED


def test_events_the_monitor_does_not_count_are_refused() -> None:
    """Any other event type has no counter: KeyError, never a guessed column."""
    with pytest.raises(KeyError):
        stage_for("session.cancelled")


def test_the_consumer_subscribes_to_exactly_the_counted_events() -> None:
    """handlers() covers the three session events, what releases a booking (so a session
    no longer filled is not counted so), matching's reasons for no offer (the at-risk
    list) and the drain ledger's, nothing else."""
    assert set(handlers()) == {
        "session.unmatched",
        "session.posted",
        "session.offered",
        "session.filled",
        "session.amended",
        "session.cancelled",
        "session.unfilled",
        "booking.cancelled",
        "move.recorded",
        "move.reversed",
        "sector.drain_alert",
        "sector.drain_cleared",
        "policy.changed",
    }


def test_fill_rate_is_filled_over_posted() -> None:
    """Two of four posted sessions filled is a rate of one half."""
    assert fill_rate(posted=4, filled=2) == 0.5


def test_fill_rate_is_unknown_before_anything_is_posted() -> None:
    """No posted sessions: no rate (None), not zero and not a division error."""
    assert fill_rate(posted=0, filled=0) is None
    assert fill_rate(posted=0, filled=1) is None


def test_fill_rate_leaves_out_sessions_the_organisation_cancelled() -> None:
    """Four posted, one cancelled, two filled: two of the three still wanted; all
    cancelled: none wanted, so no rate (a cancelled session is not a failure to fill)."""
    assert fill_rate(posted=4, filled=2, cancelled=1) == pytest.approx(2 / 3)
    assert fill_rate(posted=1, filled=0, cancelled=1) is None


def test_fill_rate_never_exceeds_one() -> None:
    """A fill counted before its post (topics are read independently) caps at 100%."""
    assert fill_rate(posted=1, filled=2) == 1.0


def test_sector_labels_are_plain_words() -> None:
    """Catalogue sectors have their names; an unknown code is spelt out, not dropped."""
    assert sector_label(Sector.COMMUNITY_PHARMACY) == "Community pharmacy"
    assert sector_label("social_care") == "Social care"


def test_dashboard_groups_by_region_in_code_order() -> None:
    """Counts arrive in any order; regions come out sorted by code."""
    view = build_dashboard(
        [
            SectorCounts("QOP", "dentistry", 1, 0, 0),
            SectorCounts("QE1", "general_practice", 2, 1, 1),
        ]
    )
    assert [r.region for r in view] == ["QE1", "QOP"]


def test_dashboard_lists_every_catalogue_sector_with_zeros() -> None:
    """A region shows all five sectors in catalogue order; unseen ones count zero."""
    (region,) = build_dashboard([SectorCounts("QOP", "dentistry", 3, 2, 1)])
    assert [row.sector for row in region.rows] == [s.value for s in Sector]
    dentistry = next(r for r in region.rows if r.sector == "dentistry")
    assert (dentistry.counts.posted, dentistry.counts.offered, dentistry.counts.filled) == (3, 2, 1)
    assert dentistry.fill_rate == pytest.approx(1 / 3)
    optometry = next(r for r in region.rows if r.sector == "optometry")
    assert optometry.counts.numbers() == (0,) * 7
    assert optometry.fill_rate is None


def test_dashboard_keeps_sectors_the_catalogue_lacks_after_known_ones() -> None:
    """A sector code unknown here still shows, after the catalogue's, with a label."""
    (region,) = build_dashboard([SectorCounts("QOP", "social_care", 1, 0, 0)])
    assert region.rows[-1].sector == "social_care"
    assert region.rows[-1].label == "Social care"
    assert len(region.rows) == len(Sector) + 1


def test_dashboard_of_nothing_is_empty() -> None:
    """No counts yet: no regions (the page says so rather than drawing empty tables)."""
    assert build_dashboard([]) == []
