"""The matching core's small rules: working time, caps, the objective, the policy CLI."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.matching import objective
from services.matching.domain import OpenSession
from services.matching.policy import (
    Policy,
    SectorBalance,
    budget,
    cap_hours,
    parse_caps,
    past_alert,
)
from services.matching.working_time import (
    breaches,
    most_hours_in_a_week,
    too_little_rest,
    working_day,
)
from shared.catalogue import Role, Sector, Urgency

MON = datetime(2026, 3, 23, 8, 0, tzinfo=UTC)  # a Monday in GMT, before the clocks go forward


def _shift(day: float, start_h: float, hours: float) -> tuple[datetime, datetime]:
    start = MON + timedelta(days=day, hours=start_h)
    return start, start + timedelta(hours=hours)


def test_rest_is_between_working_days_not_within_one() -> None:
    """A morning and an afternoon on one day need no 11 hours between them; an evening
    and the next morning do."""
    morning, afternoon = _shift(0, 0, 4), _shift(0, 5, 4)
    evening, next_morning = _shift(0, 10, 4), _shift(1, 0, 4)  # ends 22:00, starts 08:00
    assert not too_little_rest(morning, afternoon)
    assert too_little_rest(evening, next_morning)
    assert too_little_rest(next_morning, evening)  # order doesn't matter
    assert not too_little_rest(_shift(0, 0, 10), next_morning)  # ends 18:00: 14 h rest


def test_working_day_is_the_london_date() -> None:
    """23:30 UTC in British Summer Time is already the next day in London."""
    assert str(working_day(datetime(2026, 7, 1, 23, 30, tzinfo=UTC))) == "2026-07-02"
    assert str(working_day(datetime(2026, 1, 1, 23, 30, tzinfo=UTC))) == "2026-01-01"


def test_48_hours_in_any_seven_days() -> None:
    """Four 12-hour days are 48 hours (allowed); a fifth in the same 7 days is not; one
    8 days after the first is, because the busiest 7 days then hold only 48."""
    days = [_shift(d, 0, 12) for d in range(4)]
    assert most_hours_in_a_week(days) == 48
    assert breaches(_shift(4, 0, 12), days, opted_out=False)
    assert not breaches(_shift(4, 0, 12), days, opted_out=True)
    assert not breaches(_shift(8, 0, 12), days, opted_out=False)
    clipped = [_shift(0, 0, 12), _shift(6, 12, 12)]  # the second half-inside the window
    assert most_hours_in_a_week(clipped) == 24


def test_only_the_weeks_that_include_a_new_shift_count() -> None:
    """Sixty hours already worked in some 7 days bar a shift inside those 7 days and not
    one 8 days on; and a shift that takes a week just past 48 hours is barred, wherever
    in the week it falls."""
    history = [_shift(d, 0, 12) for d in range(5)]
    assert breaches(_shift(5, 0, 1), history, opted_out=False)
    assert not breaches(_shift(12, 0, 12), history, opted_out=False)
    four = [_shift(d, 0, 12) for d in range(1, 5)]
    assert breaches(_shift(0, 0, 0.5), four, opted_out=False)
    assert not breaches(_shift(-3, 0, 4), four, opted_out=False)  # 7 days from it hold 40
    assert breaches(_shift(-2, 0, 4), four, opted_out=False)  # days -2 to 5 hold 52


def test_cap_budget_and_alert() -> None:
    """10% of 200 offered hours is 20; 15 already out leaves 5; 16 passes 80% of it."""
    policy = Policy()
    balance = SectorBalance(offered_hours=200, net_out_hours=15)
    assert cap_hours(policy, Sector.DENTISTRY, balance) == 20
    assert budget(policy, Sector.DENTISTRY, balance) == 5
    assert not past_alert(policy, Sector.DENTISTRY, SectorBalance(200, 16))
    assert past_alert(policy, Sector.DENTISTRY, SectorBalance(200, 16.5))
    strict = Policy(cap_pct={Sector.DENTISTRY: 5.0})
    assert budget(strict, Sector.DENTISTRY, balance) == -5


def test_objective_tiers_are_lexicographic_per_offer() -> None:
    """An urgent session outranks any deprivation; deprivation outranks continuity,
    which outranks the shortest journey."""
    start = MON

    def session(urgent: bool, decile: int | None) -> OpenSession:
        return OpenSession(
            id=uuid.uuid4(),
            organisation="A81001",
            sector=Sector.GENERAL_PRACTICE,
            role=Role.GP,
            starts_at=start,
            ends_at=start + timedelta(hours=4),
            urgency=Urgency.URGENT if urgent else Urgency.ROUTINE,
            imd_decile=decile,
        )

    def v(s: OpenSession, km: float = 0, worked: bool = False) -> int:
        return objective.value(s, km, cross_sector=False, worked_before=worked)

    assert v(session(True, 10), km=99) > v(session(False, 1), worked=True)
    assert v(session(False, 2), km=99) > v(session(False, 3), worked=True)
    assert v(session(False, None), km=99, worked=True) > v(session(False, None))
    assert v(session(False, None), km=1) > v(session(False, None), km=2)
    assert objective.nearness(1, cross_sector=True) < objective.nearness(25, cross_sector=False)


def test_policy_caps_are_parsed_and_bad_ones_named() -> None:
    """`--cap` takes SECTOR=PERCENT; anything else is refused, saying which and why."""
    assert parse_caps(["community_pharmacy=8", "dentistry=12.5"]) == {
        Sector.COMMUNITY_PHARMACY: 8.0,
        Sector.DENTISTRY: 12.5,
    }
    for bad, why in (
        ("pharmacy=8", "unknown sector"),
        ("dentistry=lots", "must be a number"),
        ("dentistry=150", "0 to 100"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_caps([bad])
