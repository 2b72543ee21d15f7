"""When offers are made (docs/matching.md, "When it plans"), over the in-memory repository.

A region's policy may hold offers back for sessions starting more than ``hold_beyond_h``
hours ahead (they stay open and untouched until they come within), and offer moves
across sectors only for sessions starting within ``cross_sector_within_h`` hours.
Unset, every open session is planned at once, as before. The daily round
(``handlers.sweep_forever``) comes once the clock passes 18:00 UK time.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

import pytest
from typer.testing import CliRunner

from fairshare.cli import app
from fairshare.policy_cli import parse_limit
from services.matching import SCHEMA, handlers, ledger, planning, repository
from services.matching.domain import Window
from services.matching.policy import (
    RECOMMENDED_HOLD_BEYOND_H,
    UK,
    Policy,
    last_round_by,
    next_round_after,
)
from shared.catalogue import Profession, Role, Sector
from shared.events import SessionPosted
from tests.factories import session_posted
from tests.unit.matching_fake import FakeConn, FakeRepository, RecordingEmitter

REGION = "QOP"
GP, CP = Sector.GENERAL_PRACTICE, Sector.COMMUNITY_PHARMACY
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


class Region:
    """One region on the fake: one clinician free all week, and sessions to post."""

    def __init__(self, policy: Policy, *, profession: Profession, home: Sector) -> None:
        self.fake = FakeRepository()
        self.fake.save_policy(REGION, policy)
        self.conn = FakeConn().as_conn()
        self.emitter = RecordingEmitter(producer="matching", schema=SCHEMA)
        self.clinician = uuid.uuid4()
        self.window = Window(
            self.clinician,
            profession,
            home,
            T0 - timedelta(hours=1),
            T0 + timedelta(days=7),
            latitude=53.48,  # where session_posted's sessions are
            longitude=-2.24,
        )

    async def setup(self) -> None:
        await self.fake.insert_window(
            self.conn, region=REGION, availability_id=uuid.uuid4(), window=self.window
        )

    async def post(self, ahead: timedelta, **override: Any) -> SessionPosted:
        session = session_posted(T0 + ahead, **override)
        await self.fake.insert_session(self.conn, REGION, session)
        return session

    async def plan(self, now: datetime, span: tuple[datetime, datetime] | None = None) -> int:
        return await planning.replan(
            self.conn, region=REGION, emitter=self.emitter, now=now, span=span, repo=self.fake
        )

    def offered(self) -> set[uuid.UUID]:
        return {o["session_id"] for o in self.fake.offers.values()}

    def reasons(self) -> dict[uuid.UUID, str]:
        return {e.data.session_id: e.data.why for e in self.emitter.of_type("session.unmatched")}


def _gp_region(policy: Policy) -> Region:
    return Region(policy, profession=Profession.GP, home=GP)


def _pharmacy_region(policy: Policy) -> Region:
    """A community pharmacist, and (below) clinical pharmacist sessions in general
    practice: a move across sectors, within a cap that allows it."""
    return Region(replace(policy, cap_pct={CP: 100.0}), profession=Profession.PHARMACIST, home=CP)


async def test_a_session_beyond_the_hold_waits_untouched_until_it_comes_within() -> None:
    """With a 72-hour hold, a session 1 day ahead is offered at once; one 5 days ahead,
    or 73 hours, gets no offer and no reason from any plan (whole region or its own
    stretch) until a plan made 3 days later, when both start within 72 hours."""
    region = _gp_region(Policy(hold_beyond_h=RECOMMENDED_HOLD_BEYOND_H))
    await region.setup()
    near = await region.post(timedelta(days=1))
    just_beyond = await region.post(timedelta(hours=73))
    far = await region.post(timedelta(days=5))

    assert await region.plan(T0) == 1
    assert region.offered() == {near.session_id}
    for held in (just_beyond, far):
        assert await region.plan(T0, span=(held.starts_at, held.ends_at)) == 0
        assert held.session_id not in region.reasons()
        assert region.fake.sessions[held.session_id]["unmatched_why"] is None

    assert await region.plan(T0 + timedelta(days=3)) == 2
    assert region.offered() == {near.session_id, just_beyond.session_id, far.session_id}


async def test_moves_across_sectors_wait_until_the_session_is_within_the_limit() -> None:
    """With cross-sector moves offered only within 48 hours, a community pharmacist (the
    only candidate) is offered the general-practice session 1 day ahead but not the one
    3 days ahead (left open, held by the drain guard), until 2 days later."""
    region = _pharmacy_region(Policy(cross_sector_within_h=48.0))
    await region.setup()
    near = await region.post(timedelta(days=1), role=Role.CLINICAL_PHARMACIST)
    far = await region.post(timedelta(days=3), role=Role.CLINICAL_PHARMACIST)

    assert await region.plan(T0) == 1
    assert region.offered() == {near.session_id}
    assert region.reasons() == {far.session_id: "held_by_drain_guard"}

    assert await region.plan(T0 + timedelta(days=2)) == 1
    assert region.offered() == {near.session_id, far.session_id}


@pytest.mark.parametrize("make", [_gp_region, _pharmacy_region])
async def test_unset_every_session_is_offered_at_once(make: Any) -> None:
    """Without the limits (the default), both sessions are offered by the first plan."""
    region: Region = make(Policy())
    await region.setup()
    role = Role.GP if region.window.profession is Profession.GP else Role.CLINICAL_PHARMACIST
    near = await region.post(timedelta(days=1), role=role)
    far = await region.post(timedelta(days=5), role=role)

    assert await region.plan(T0) == 2
    assert region.offered() == {near.session_id, far.session_id}


async def test_the_fake_keeps_the_limits_as_the_tables_do() -> None:
    fake = FakeRepository()
    conn = FakeConn().as_conn()
    assert await fake.policy(conn, REGION) == Policy()
    fake.save_policy(REGION, Policy(hold_beyond_h=72.0, cross_sector_within_h=48.0))
    got = await fake.policy(conn, REGION)
    assert (got.hold_beyond_h, got.cross_sector_within_h) == (72.0, 48.0)


def test_limits_are_hours_or_off() -> None:
    assert parse_limit("--hold-beyond-h", "72") == 72.0
    assert parse_limit("--hold-beyond-h", "0.5") == 0.5
    assert parse_limit("--hold-beyond-h", "672") == 672.0
    assert parse_limit("--hold-beyond-h", "OFF") is None
    for bad in ["-1", "0", "673", "nan", "inf", "soon", ""]:
        with pytest.raises(ValueError, match="--cross-sector-within-h"):
            parse_limit("--cross-sector-within-h", bad)


@pytest.mark.parametrize(
    ("option", "value"),
    [("--hold-beyond-h", "-1"), ("--hold-beyond-h", "673"), ("--cross-sector-within-h", "x")],
)
def test_the_cli_refuses_a_bad_limit_naming_the_option(option: str, value: str) -> None:
    """Refused before anything is stored (no database is reached)."""
    result = CliRunner().invoke(app, ["policy", "set", "--region", REGION, option, value])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert option in said
    assert "at most 672" in said or "a number of hours" in said


async def test_the_sweep_runs_the_daily_round_once_the_clock_passes_18_uk() -> None:
    """Ticks every 15 minutes from 16:00 UK time: the round runs once, at the first
    tick at or after 18:00, and not again that day."""
    start = datetime(2027, 6, 14, 16, 0, tzinfo=UK).astimezone(UTC)
    clock = {"now": start}
    rounds: list[datetime] = []
    ticks = 0

    class Clock:
        @staticmethod
        def now(tz: Any = None) -> datetime:
            return clock["now"].astimezone(tz)

    async def sleep(_: float) -> None:
        nonlocal ticks
        ticks += 1
        if ticks > 4 * 8:  # 8 hours
            raise asyncio.CancelledError
        clock["now"] += timedelta(minutes=15)

    async def nothing(*_: Any, **__: Any) -> Any:
        return {}

    async def round_(*_: Any, now: datetime, **__: Any) -> int:
        rounds.append(now)
        return 0

    runtime: Any = type("Runtime", (), {"pool": None, "emitter": None})()
    with (
        patch.object(handlers, "datetime", Clock),
        patch.object(asyncio, "sleep", sleep),
        patch.object(repository, "expired_offer_spans", nothing),
        patch.object(ledger, "keep_current", nothing),
        patch.object(handlers, "daily_round", round_),
        pytest.raises(asyncio.CancelledError),
    ):
        await handlers.sweep_forever(runtime, every_s=900, full_every_s=10**9)
    assert rounds == [datetime(2027, 6, 14, 18, 0, tzinfo=UK).astimezone(UTC)]


async def test_sessions_coming_within_the_hold_wait_for_the_daily_round() -> None:
    """With a 72-hour hold, the whole-region sweeps offer only what the last daily round
    reached: a session starting 80 hours after the last round is not offered by a sweep
    10 hours after that round (though it then starts within 72 hours), only by the next
    round, with the others that came within the hold that day; an event's own stretch
    (a late post) still offers it at once."""
    round_at = last_round_by(T0)
    region = _gp_region(Policy(hold_beyond_h=RECOMMENDED_HOLD_BEYOND_H))
    await region.setup()
    session = await region.post(round_at + timedelta(hours=80) - T0)
    sweep = round_at + timedelta(hours=10)
    assert session.starts_at - sweep <= timedelta(hours=72)
    assert await region.plan(sweep) == 0
    assert await region.plan(next_round_after(round_at)) == 1
    assert region.offered() == {session.session_id}


async def test_a_late_post_is_offered_by_its_own_stretch_before_the_round() -> None:
    """The same session, posted after the round: the stretch plan its post asks for
    offers it at once."""
    round_at = last_round_by(T0)
    region = _gp_region(Policy(hold_beyond_h=RECOMMENDED_HOLD_BEYOND_H))
    await region.setup()
    session = await region.post(round_at + timedelta(hours=80) - T0)
    sweep = round_at + timedelta(hours=10)
    assert await region.plan(sweep, span=(session.starts_at, session.ends_at)) == 1
