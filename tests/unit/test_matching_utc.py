"""Times are normalised to UTC at the engine's edge (issue 10.8): rest and hours are
real time, also when the times given carry Europe/London across a clock change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.matching import engine
from services.matching.domain import Commitment, OpenSession, Window
from shared.catalogue import Profession, Role, Sector

LONDON = ZoneInfo("Europe/London")
# The clocks go back at 02:00 BST on the last Sunday of October 2026, the 25th.
SAT_AFTERNOON = datetime(2026, 10, 24, 14, 0, tzinfo=LONDON)  # BST
SUN_AFTER_MIDNIGHT = datetime(2026, 10, 25, 0, 30, tzinfo=LONDON)  # still BST: 23:30 UTC
SUN_MORNING = datetime(2026, 10, 25, 10, 30, tzinfo=LONDON)  # GMT: 10:30 UTC


def _session(starts_at: datetime, ends_at: datetime) -> OpenSession:
    return OpenSession(
        id=uuid.uuid4(),
        organisation="A81001",
        sector=Sector.GENERAL_PRACTICE,
        role=Role.GP,
        starts_at=starts_at,
        ends_at=ends_at,
        latitude=53.48,
        longitude=-2.24,
    )


def test_domain_times_are_held_in_utc() -> None:
    """Sessions, windows and commitments keep the instant given, in UTC; a night across
    the change lasts its real 13 hours, not the wall clock's 12."""
    night = _session(
        datetime(2026, 10, 24, 20, 0, tzinfo=LONDON), datetime(2026, 10, 25, 8, 0, tzinfo=LONDON)
    )
    assert night.hours == 13
    commitment = Commitment(uuid.uuid4(), SAT_AFTERNOON, SUN_AFTER_MIDNIGHT)
    window = Window(
        uuid.uuid4(), Profession.GP, Sector.GENERAL_PRACTICE, SAT_AFTERNOON, SUN_MORNING
    )
    for held, given in (
        (night.starts_at, datetime(2026, 10, 24, 19, 0, tzinfo=UTC)),
        (commitment.ends_at, SUN_AFTER_MIDNIGHT),
        (window.ends_at, SUN_MORNING),
    ):
        assert held == given
        assert held.tzinfo is UTC
    with pytest.raises(ValueError, match="no time zone"):
        Commitment(uuid.uuid4(), datetime(2026, 10, 24, 14, 0), SUN_AFTER_MIDNIGHT)  # noqa: DTZ001


def test_eleven_hours_rest_across_the_october_clock_change_is_allowed() -> None:
    """A GP works Saturday 14:00 to Sunday 00:30 (BST); a session at 10:30 on Sunday
    (GMT) leaves 11 hours' real rest, though the wall clock shows 10: it is offered.
    One starting an hour earlier (10 hours' real rest) is not."""
    gp = uuid.uuid4()
    window = Window(
        gp,
        Profession.GP,
        Sector.GENERAL_PRACTICE,
        SUN_MORNING - timedelta(hours=3),
        SUN_MORNING + timedelta(hours=6),
        latitude=53.48,
        longitude=-2.24,
    )
    booked = Commitment(gp, SAT_AFTERNOON, SUN_AFTER_MIDNIGHT)
    for starts_at, offered in ((SUN_MORNING, True), (SUN_MORNING - timedelta(hours=1), False)):
        session = _session(starts_at, starts_at + timedelta(hours=4))
        plan = engine.plan(
            engine.Problem(sessions=[session], windows=[window], commitments=[booked])
        )
        assert [p.clinician_id for p in plan.proposals] == ([gp] if offered else [])
