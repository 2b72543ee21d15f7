"""A ledger true at every moment, on the real database (issue 10): released bookings
reverse their moves and a refill records a new one, existing ledgers are repaired,
transfers count once, both figures of the cap are counted over one window, one
clinician can't inflate the cap's base, and alerts follow the window as it slides."""

from __future__ import annotations

import random
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from fairshare.services import migrations_of
from services.matching import SCHEMA, ledger, planning, repository
from services.matching.admin import set_policy
from services.matching.domain import Window
from services.matching.handlers import handlers
from services.matching.policy import Policy, budget, offered_in_window, window
from shared.catalogue import Profession, Role, Sector
from shared.db.migrations import apply_migrations
from shared.db.pool import create_pool
from shared.db.types import Conn
from shared.events import (
    BookingCancelled,
    ClinicianTransferred,
    Envelope,
    OfferAccepted,
    SessionCancelled,
    new_envelope,
)
from shared.messaging.emitter import Emitter
from tests.conftest import Infra
from tests.factories import session_posted
from tests.integration.matching_support import pool

__all__ = ["pool"]  # the fixture, shared

pytestmark = pytest.mark.integration

START = (datetime.now(UTC) + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
CP, GP = Sector.COMMUNITY_PHARMACY, Sector.GENERAL_PRACTICE
EMITTER = Emitter(producer="matching", schema=SCHEMA)


async def _outbox(pool: asyncpg.Pool, event_type: str, region: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT payload FROM outbox WHERE event_type = $1 AND message_key = $2 ORDER BY id",
        event_type,
        region,
    )
    return [r["payload"]["data"] for r in rows]


def _envelope(data: Any, event_type: str, region: str) -> Envelope[Any]:
    return new_envelope(data, event_type=event_type, schema_version=1, region=region, producer="t")


async def _window(
    conn: Conn,
    region: str,
    who: uuid.UUID,
    starts_at: datetime,
    ends_at: datetime,
    sector: Sector = CP,
) -> None:
    await repository.insert_window(
        conn,
        region=region,
        availability_id=uuid.uuid4(),
        window=Window(
            who, Profession.PHARMACIST, sector, starts_at, ends_at, latitude=53.48, longitude=-2.24
        ),
    )


async def _balance(pool: asyncpg.Pool, region: str, now: datetime | None = None) -> Any:
    async with pool.acquire() as conn:
        return (await repository.balances(conn, region, now or datetime.now(UTC), 28))[CP]


async def _fill(pool: asyncpg.Pool, region: str, session_id: uuid.UUID) -> asyncpg.Record:
    """Plan the region, and the clinician offered the session accepts."""
    async with pool.acquire() as conn, conn.transaction():
        assert await planning.replan(conn, region=region, emitter=EMITTER) == 1
    offer = await pool.fetchrow(
        "SELECT * FROM offers WHERE session_id = $1 AND status = 'offered'", session_id
    )
    assert offer is not None
    accepted = OfferAccepted(
        offer_id=offer["id"], session_id=session_id, clinician_id=offer["clinician_id"]
    )
    async with pool.acquire() as conn, conn.transaction():
        assert await planning.confirm(
            conn, envelope=_envelope(accepted, "offer.accepted", region), emitter=EMITTER
        )
    return offer


async def _cross_sector_fill(pool: asyncpg.Pool, region: str) -> tuple[Any, asyncpg.Record]:
    """A community pharmacist fills a PCN session: 4 hours out of CP's 40 offered, past
    80% of a 12% cap (4.8 hours), so an alert stands."""
    pharmacist = uuid.uuid4()
    session = session_posted(
        START + timedelta(hours=1), role=Role.CLINICAL_PHARMACIST, imd_decile=2, place="Salford"
    )
    async with pool.acquire() as conn, conn.transaction():
        await set_policy(conn, region, emitter=EMITTER, changed_by="test", caps={CP: 12.0})
        for day in range(4):
            await _window(
                conn,
                region,
                pharmacist,
                START + timedelta(days=day),
                START + timedelta(days=day, hours=10),
            )
        await repository.insert_session(conn, region, session)
    offer = await _fill(pool, region, session.session_id)
    [move] = await _outbox(pool, "move.recorded", region)
    assert move["hours"] == 4.0
    assert len(await _outbox(pool, "sector.drain_alert", region)) == 1
    assert (await _balance(pool, region)).net_out_hours == 4.0
    return session, offer


async def test_a_cancelled_booking_reverses_its_move_and_a_refill_records_a_new_one(
    pool: asyncpg.Pool, region: str
) -> None:
    """Defect 1: the clinician cancels their cross-sector booking: the move is reversed
    (`move.reversed`), the sector's net outflow and cap room come back and its alert
    clears; a refill from the same sector by someone else is a new move, counted."""
    session, offer = await _cross_sector_fill(pool, region)
    room = budget(Policy(cap_pct={CP: 12.0}), CP, await _balance(pool, region))
    table = handlers(EMITTER)
    cancelled = BookingCancelled(
        offer_id=offer["id"],
        session_id=session.session_id,
        clinician_id=offer["clinician_id"],
        reason="ill",
        late=False,
    )
    async with pool.acquire() as conn, conn.transaction():
        await table["booking.cancelled"](conn, _envelope(cancelled, "booking.cancelled", region))
    [reversed_] = await _outbox(pool, "move.reversed", region)
    [recorded] = await _outbox(pool, "move.recorded", region)
    assert reversed_["move_id"] == recorded["move_id"]
    assert (reversed_["hours"], reversed_["reason"]) == (4.0, "booking_cancelled")
    after = await _balance(pool, region)
    assert after.net_out_hours == 0.0
    assert budget(Policy(cap_pct={CP: 12.0}), CP, after) == pytest.approx(room + 4.0)
    [cleared] = await _outbox(pool, "sector.drain_cleared", region)
    assert cleared["sector"] == CP.value

    # Someone else from community pharmacy takes it: a new move, counted.
    async with pool.acquire() as conn, conn.transaction():
        await _window(conn, region, uuid.uuid4(), START, START + timedelta(hours=10))
    await _fill(pool, region, session.session_id)
    recorded_now = await _outbox(pool, "move.recorded", region)
    assert len(recorded_now) == 2
    assert recorded_now[1]["move_id"] != recorded["move_id"]
    assert (await _balance(pool, region)).net_out_hours == 4.0
    live = await pool.fetch(
        "SELECT id FROM moves WHERE session_id = $1 AND reversed_at IS NULL", session.session_id
    )
    assert [r["id"] for r in live] == [uuid.UUID(recorded_now[1]["move_id"])]


async def test_a_cancelled_session_gives_its_hours_back(pool: asyncpg.Pool, region: str) -> None:
    """Defect 1: the practice cancels a session filled across sectors: its move goes."""
    session, offer = await _cross_sector_fill(pool, region)
    cancelled = SessionCancelled(
        session_id=session.session_id,
        organisation=session.organisation,
        sector=session.sector,
        reason="no longer needed",
        late=False,
        released_clinician_id=offer["clinician_id"],
        starts_at=session.starts_at,
        ends_at=session.ends_at,
    )
    async with pool.acquire() as conn, conn.transaction():
        await handlers(EMITTER)["session.cancelled"](
            conn, _envelope(cancelled, "session.cancelled", region)
        )
    [reversed_] = await _outbox(pool, "move.reversed", region)
    assert reversed_["reason"] == "session_cancelled"
    assert (await _balance(pool, region)).net_out_hours == 0.0


async def test_the_migration_repairs_a_ledger_with_phantom_moves(
    infra: Infra, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """Defect 1: a schema migrated up to 0007 holds a move whose booking was released
    and one whose booking stands; 0008 reverses the first only, and the sweep publishes
    its `move.reversed`."""
    schema = "matching_repair_" + "".join(random.choices("abcdefghij", k=8))
    own = migrations_of("matching")
    before = tmp_path / "up_to_0007"
    before.mkdir()
    try:
        for path in sorted(own.glob("*.sql")):
            if path.name < "0008":
                shutil.copy(path, before / path.name)
        conn = await asyncpg.connect(infra.dsn)
        try:
            await apply_migrations(conn, schema, before)
            await conn.execute(f"SET search_path TO {schema}, public")
            session, phantom, booked = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            offer, clinician = uuid.uuid4(), uuid.uuid4()
            await conn.execute(
                "INSERT INTO sessions (id, region, organisation, sector, role, starts_at, ends_at)"
                " VALUES ($1, 'QR1', 'A81001', 'general_practice', 'gp', $2, $3),"
                " ($4, 'QR1', 'A81001', 'general_practice', 'gp', $2, $3)",
                session,
                START,
                START + timedelta(hours=4),
                booked,
            )
            await conn.execute(
                "INSERT INTO offers (id, session_id, clinician_id, clinician_home_sector, region,"
                " starts_at, ends_at, expires_at, status, reasons) VALUES ($1, $2, $3,"
                " 'community_pharmacy', 'QR1', $4, $5, $4, 'accepted', '[]'::jsonb)",
                offer,
                booked,
                clinician,
                START,
                START + timedelta(hours=4),
            )
            await conn.execute(
                "INSERT INTO bookings (session_id, offer_id, clinician_id, starts_at, ends_at)"
                " VALUES ($1, $2, $3, $4, $5)",
                booked,
                offer,
                clinician,
                START,
                START + timedelta(hours=4),
            )
            for move_id, session_id in ((phantom, session), (uuid.uuid4(), booked)):
                await conn.execute(
                    "INSERT INTO moves (id, region, kind, clinician_id, from_sector, to_sector,"
                    " hours, at, session_id) VALUES ($1, 'QR1', 'session', $2,"
                    " 'community_pharmacy', 'general_practice', 4, $3, $4)",
                    move_id,
                    clinician,
                    START,
                    session_id,
                )
            await apply_migrations(conn, schema, own)
            live = await conn.fetch("SELECT session_id FROM moves WHERE reversed_at IS NULL")
            assert [r["session_id"] for r in live] == [booked]
        finally:
            await conn.close()
        repaired = await create_pool(infra.dsn, schema)
        try:
            await ledger.keep_current(repaired, emitter=Emitter(producer="matching", schema=schema))
            rows = await repaired.fetch(
                "SELECT payload FROM outbox WHERE event_type = 'move.reversed'"
            )
            [event] = [r["payload"]["data"] for r in rows]
            assert (event["move_id"], event["reason"]) == (str(phantom), "repaired")
        finally:
            await repaired.close()
    finally:
        async with pool.acquire() as c:
            await c.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


async def test_a_transfer_is_charged_once(pool: asyncpg.Pool, region: str) -> None:
    """Defect 7: the 150 hours are the charge; the hours the mover had offered from
    community pharmacy stay its hours, so its room falls by 150 hours' worth, no more."""
    mover, colleague = uuid.uuid4(), uuid.uuid4()
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
    async with pool.acquire() as conn, conn.transaction():
        for day in range(5):  # 50 hours offered by the mover in the last 10 days
            await _window(
                conn,
                region,
                mover,
                past + timedelta(days=day),
                past + timedelta(days=day, hours=10),
            )
        for week in range(8):  # the colleague: 60 hours in every week of the window
            lo = datetime.now(UTC) - timedelta(days=28 - 7 * week)
            await _window(conn, region, colleague, lo, lo + timedelta(hours=60))
    before = await _balance(pool, region)
    moved = ClinicianTransferred(
        clinician_id=mover,
        profession=Profession.PHARMACIST,
        from_sector=CP,
        to_sector=GP,
        from_organisation="FVR79",
        to_organisation="U12345",
    )
    async with pool.acquire() as conn, conn.transaction():
        await handlers(EMITTER)["clinician.transferred"](
            conn, _envelope(moved, "clinician.transferred", region)
        )
    after = await _balance(pool, region)
    assert after.offered_hours == pytest.approx(before.offered_hours)
    assert after.net_out_hours == 150.0
    policy = Policy()
    assert budget(policy, CP, before) - budget(policy, CP, after) == pytest.approx(150.0)
    homes = await pool.fetch(
        "SELECT DISTINCT home_sector FROM availability WHERE clinician_id = $1", mover
    )
    assert [r["home_sector"] for r in homes] == [GP.value]  # planned with their new home


async def test_net_outflow_and_offered_hours_share_one_window(
    pool: asyncpg.Pool, region: str
) -> None:
    """Defect 6: hours offered beyond the window (weekly patterns kept eight weeks
    ahead) don't widen the cap's base; `policy.changed` says which window."""
    who = uuid.uuid4()
    now = datetime.now(UTC)
    lo, hi = window(now, 28)
    async with pool.acquire() as conn, conn.transaction():
        await set_policy(conn, region, emitter=EMITTER, changed_by="test", caps={CP: 10.0})
        for week in range(12):  # 30 hours a week, from 4 weeks back to 8 weeks ahead
            start = lo + timedelta(days=7 * week, hours=1)
            for day in range(3):
                begin = start + timedelta(days=day)
                await _window(conn, region, who, begin, begin + timedelta(hours=10))
    balance = await _balance(pool, region, now)
    # Only the eight weeks of the window count: 240 hours, not 360.
    assert balance.offered_hours == pytest.approx(240.0)
    assert hi - lo == timedelta(days=56)
    [changed] = await _outbox(pool, "policy.changed", region)
    assert changed["window_days"] == 28


async def test_one_clinician_cannot_switch_the_guard_off(pool: asyncpg.Pool, region: str) -> None:
    """Defect 9: one window from 20 days ahead to 2099 moves community pharmacy's room by
    no more than its cap's share of one clinician's plausible hours (60 a week) in the
    weeks it touches; the database counts exactly what `offered_in_window` specifies."""
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        await _window(conn, region, uuid.uuid4(), now, now + timedelta(hours=10))
    before = await _balance(pool, region, now)
    declared = (now + timedelta(days=20), datetime(2099, 1, 1, tzinfo=UTC))
    async with pool.acquire() as conn, conn.transaction():
        await _window(conn, region, uuid.uuid4(), *declared)
    after = await _balance(pool, region, now)
    gained = after.offered_hours - before.offered_hours
    assert gained == pytest.approx(offered_in_window([declared], *window(now, 28)))
    assert gained <= 2 * 60  # it touches two weeks of the window
    policy = Policy()
    assert budget(policy, CP, after) - budget(policy, CP, before) <= 0.10 * 2 * 60 + 1e-9


async def test_alerts_follow_the_window_as_it_slides(pool: asyncpg.Pool, region: str) -> None:
    """Defect 10: a move that leaves the window clears its sector's alert on the sweep's
    check, with no event to prompt it; a sector back over raises it again."""
    await _cross_sector_fill(pool, region)
    later = START + timedelta(days=29)
    await ledger.keep_current(pool, emitter=EMITTER, now=later)
    [cleared] = await _outbox(pool, "sector.drain_cleared", region)
    assert (cleared["sector"], cleared["net_out_hours"]) == (CP.value, 0.0)
    await ledger.keep_current(pool, emitter=EMITTER, now=later)  # once per crossing
    assert len(await _outbox(pool, "sector.drain_cleared", region)) == 1
