"""Issue 10.4 over the real database: a re-plan of a stretch of time offers only sessions
whose every rule it has in view. Home first weighs the overlapping home-sector session
just beyond the stretch, and the 48-hour rule counts commitments 7 days beyond every
session it may offer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.matching import SCHEMA, planning, repository
from services.matching.admin import set_policy
from services.matching.domain import Window
from shared.catalogue import Profession, Role, Sector
from shared.db.types import Conn
from shared.events import SessionPosted
from shared.messaging.emitter import Emitter
from tests.factories import session_posted
from tests.integration.matching_support import hand_made_offer, pool

__all__ = ["pool"]  # the fixture, shared

pytestmark = pytest.mark.integration

# Midnight UTC three days ahead: the stretch re-planned is its first four hours.
T = (datetime.now(UTC) + timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
SPAN = (T, T + timedelta(hours=4))
CP, GP = Sector.COMMUNITY_PHARMACY, Sector.GENERAL_PRACTICE


def _at(start_h: float, hours: float, **override: object) -> SessionPosted:
    start = T + timedelta(hours=start_h)
    return session_posted(start, ends_at=start + timedelta(hours=hours), **override)


async def _window(
    conn: Conn,
    region: str,
    clinician: uuid.UUID,
    profession: Profession,
    home: Sector,
    span: tuple[float, float],
) -> None:
    window = Window(
        clinician,
        profession,
        home,
        T + timedelta(hours=span[0]),
        T + timedelta(hours=span[1]),
        latitude=53.48,
        longitude=-2.24,
    )
    await repository.insert_window(conn, region=region, availability_id=uuid.uuid4(), window=window)


async def _offers(pool: asyncpg.Pool, region: str) -> dict[uuid.UUID, uuid.UUID]:
    rows = await pool.fetch("SELECT session_id, clinician_id FROM offers WHERE region = $1", region)
    return {r["session_id"]: r["clinician_id"] for r in rows}


async def test_home_first_sees_the_overlapping_home_session_beyond_the_stretch(
    pool: asyncpg.Pool, region: str
) -> None:
    """A pharmacist free 11:00 to 23:00 could take a GP session at 12:00 (touching the
    stretch re-planned) or their own pharmacy's overlapping session at 18:00 (beyond
    it). Home first keeps them for the pharmacy: the re-plan must not offer them the
    GP session, and the pharmacy's session is planned next and offered to them."""
    emitter = Emitter(producer="matching", schema=SCHEMA)
    pharmacist = uuid.uuid4()
    gp_session = _at(12, 8, role=Role.CLINICAL_PHARMACIST)
    pharmacy = _at(18, 4, role=Role.COMMUNITY_PHARMACIST, sector=CP, organisation="FA001")
    async with pool.acquire() as conn, conn.transaction():
        # Caps wide open: only home first is at stake here.
        await set_policy(
            conn, region, emitter=emitter, changed_by="test", caps=dict.fromkeys(Sector, 100.0)
        )
        await _window(conn, region, pharmacist, Profession.PHARMACIST, CP, (11, 23))
        await repository.insert_session(conn, region, gp_session)
        await repository.insert_session(conn, region, pharmacy)
        await planning.replan(conn, region=region, emitter=emitter, span=SPAN)
    assert (await _offers(pool, region)).get(gp_session.session_id) != pharmacist
    # And the GP session is explained as held by the drain guard (home first kept its
    # only candidate), not as if a better session had taken them.
    why = await pool.fetchval(
        "SELECT unmatched_why FROM sessions WHERE id = $1", gp_session.session_id
    )
    assert why == "held_by_drain_guard"
    async with pool.acquire() as conn, conn.transaction():
        await planning.run_request(conn, region=region, emitter=emitter)
    assert (await _offers(pool, region)).get(pharmacy.session_id) == pharmacist


async def test_the_48_hour_rule_counts_commitments_beyond_the_stretch(
    pool: asyncpg.Pool, region: str
) -> None:
    """A GP holds offers for three 12-hour days and a 4-hour session a week on. A
    12-hour session at 16:00 (touching the stretch re-planned) would put 52 hours in
    the 7 days from its start; the last 4 of them lie over 7 days past the stretch.
    It must not be offered to them."""
    emitter = Emitter(producer="matching", schema=SCHEMA)
    gp = uuid.uuid4()
    edge = _at(16, 12)
    held = [_at(40, 12), _at(64, 12), _at(88, 12), _at(7 * 24 + 5, 4)]
    async with pool.acquire() as conn, conn.transaction():
        await _window(conn, region, gp, Profession.GP, GP, (15, 29))
        await repository.insert_session(conn, region, edge)
        for session in held:
            await repository.insert_session(conn, region, session)
            await hand_made_offer(conn, region, session, gp)
        await planning.replan(conn, region=region, emitter=emitter, span=SPAN)
    assert (await _offers(pool, region)).get(edge.session_id) is None


async def test_hours_past_the_limit_in_another_week_bar_nothing_later(
    pool: asyncpg.Pool, region: str
) -> None:
    """A GP holds 60 hours of offers in the coming five days (past the 48-hour limit,
    as bookings made by hand or before the rule can be). A session 9 days on, whose 7
    days hold none of those hours, is still offered to them, by the whole-region plan."""
    emitter = Emitter(producer="matching", schema=SCHEMA)
    gp = uuid.uuid4()
    held = [_at(24 * d, 12) for d in range(5)]
    later = _at(24 * 9 + 8, 4)
    async with pool.acquire() as conn, conn.transaction():
        await _window(conn, region, gp, Profession.GP, GP, (24 * 9 + 7, 24 * 9 + 13))
        await repository.insert_session(conn, region, later)
        for session in held:
            await repository.insert_session(conn, region, session)
            await hand_made_offer(conn, region, session, gp)
        assert await planning.replan(conn, region=region, emitter=emitter) == 1
    assert (await _offers(pool, region)).get(later.session_id) == gp
