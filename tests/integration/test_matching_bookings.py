"""Matching over the real database: offers, confirmation, and double-booking made
impossible by the database whatever the timing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.matching import SCHEMA, engine, planning, repository
from services.matching.domain import Window
from shared.catalogue import Profession, Sector
from shared.db.types import Conn
from shared.events import Envelope, OfferAccepted, SessionPosted, new_envelope
from shared.messaging.emitter import Emitter
from tests.factories import session_posted
from tests.integration.matching_support import pool

__all__ = ["pool"]  # the fixture, shared

pytestmark = pytest.mark.integration

START = (datetime.now(UTC) + timedelta(days=5)).replace(microsecond=0)


def _session(region: str, hours_from_start: float = 0) -> SessionPosted:
    return session_posted(START + timedelta(hours=hours_from_start))


def _accepted(region: str, offer: asyncpg.Record) -> Envelope[Any]:
    return new_envelope(
        OfferAccepted(
            offer_id=offer["id"], session_id=offer["session_id"], clinician_id=offer["clinician_id"]
        ),
        event_type="offer.accepted",
        schema_version=1,
        region=region,
        producer="bank",
    )


async def _offers(pool: asyncpg.Pool, region: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT * FROM offers WHERE region = $1 ORDER BY created_at", region
    )
    return rows


async def _gp_window(conn: Conn, region: str, clinician: uuid.UUID, *, until: datetime) -> None:
    """A GP free from an hour before START until ``until``."""
    window = Window(
        clinician,
        Profession.GP,
        Sector.GENERAL_PRACTICE,
        START - timedelta(hours=1),
        until,
        latitude=53.45,  # a few km from the factory's practice
        longitude=-2.2,
    )
    await repository.insert_window(conn, region=region, availability_id=uuid.uuid4(), window=window)


async def _outbox(pool: asyncpg.Pool, event_type: str, clinician: uuid.UUID) -> list[Any]:
    rows = await pool.fetch(
        "SELECT payload FROM outbox WHERE event_type = $1"
        " AND payload->'data'->>'clinician_id' = $2",
        event_type,
        str(clinician),
    )
    return [r["payload"]["data"] for r in rows]


async def test_database_refuses_overlapping_bookings_of_one_clinician(
    pool: asyncpg.Pool, region: str
) -> None:
    """Even bypassing the planner, two overlapping bookings of one clinician can't exist."""
    emitter = Emitter(producer="matching", schema=SCHEMA)
    clinician = uuid.uuid4()
    a, b = _session(region), _session(region, hours_from_start=2)
    async with pool.acquire() as conn, conn.transaction():
        for s in (a, b):
            await repository.insert_session(conn, region, s)
    # Two live offers of overlapping sessions to one clinician, forced in by hand.
    async with pool.acquire() as conn:
        for s in (a, b):
            await conn.execute(
                "INSERT INTO offers (id, session_id, clinician_id, clinician_home_sector, region,"
                " starts_at, ends_at, expires_at, reasons)"
                " VALUES ($1, $2, $3, 'general_practice', $4, $5, $6, $7, '[]'::jsonb)",
                uuid.uuid4(),
                s.session_id,
                clinician,
                region,
                s.starts_at,
                s.ends_at,
                datetime.now(UTC) + timedelta(hours=1),
            )
    offers = await _offers(pool, region)

    async def confirm(offer: asyncpg.Record) -> bool:
        async with pool.acquire() as conn, conn.transaction():
            return await planning.confirm(conn, envelope=_accepted(region, offer), emitter=emitter)

    results = await asyncio.gather(*(confirm(o) for o in offers))
    assert sorted(results) == [False, True]
    bookings = await pool.fetch("SELECT * FROM bookings WHERE clinician_id = $1", clinician)
    assert len(bookings) == 1
    statuses = sorted(r["status"] for r in await _offers(pool, region))
    assert statuses == ["accepted", "lost"]
    [refused] = await _outbox(pool, "offer.refused", clinician)
    assert "already booked" in refused["reason"]


async def test_posted_session_is_offered_then_filled_once(pool: asyncpg.Pool, region: str) -> None:
    """Plan → one offer with reasons; the acceptance delivered twice books once."""
    emitter = Emitter(producer="matching", schema=SCHEMA)
    session = _session(region)
    clinician = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await repository.insert_session(conn, region, session)
        await _gp_window(conn, region, clinician, until=START + timedelta(hours=6))
        assert await planning.replan(conn, region=region, emitter=emitter) == 1
        # Re-planning with the offer live makes no second offer.
        assert await planning.replan(conn, region=region, emitter=emitter) == 0
    [offer] = await _offers(pool, region)
    assert offer["clinician_id"] == clinician
    accepted = _accepted(region, offer)
    async with pool.acquire() as conn, conn.transaction():
        assert await planning.confirm(conn, envelope=accepted, emitter=emitter)
    async with pool.acquire() as conn, conn.transaction():
        assert not await planning.confirm(conn, envelope=accepted, emitter=emitter)
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM bookings WHERE session_id = $1", session.session_id
        )
        == 1
    )
    filled = await pool.fetchval(
        "SELECT count(*) FROM outbox WHERE event_type = 'session.filled'"
        " AND payload->'data'->>'session_id' = $1",
        str(session.session_id),
    )
    assert filled == 1


async def test_expired_acceptance_is_refused(pool: asyncpg.Pool, region: str) -> None:
    """An acceptance made after the offer expired books nothing."""
    emitter = Emitter(producer="matching", schema=SCHEMA)
    session = _session(region)
    async with pool.acquire() as conn, conn.transaction():
        await repository.insert_session(conn, region, session)
        await conn.execute(
            "INSERT INTO offers (id, session_id, clinician_id, clinician_home_sector, region,"
            " starts_at, ends_at, expires_at, reasons)"
            " VALUES ($1, $2, $3, 'general_practice', $4, $5, $6, $7, '[]'::jsonb)",
            uuid.uuid4(),
            session.session_id,
            uuid.uuid4(),
            region,
            session.starts_at,
            session.ends_at,
            datetime.now(UTC) - timedelta(minutes=1),
        )
    [offer] = await _offers(pool, region)
    async with pool.acquire() as conn, conn.transaction():
        assert not await planning.confirm(conn, envelope=_accepted(region, offer), emitter=emitter)
    [refused] = await _outbox(pool, "offer.refused", offer["clinician_id"])
    assert refused["offer_id"] == str(offer["id"])
    assert "expired" in refused["reason"]
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM bookings WHERE session_id = $1", session.session_id
        )
        == 0
    )


async def test_amendment_and_cancellations_free_and_replan(pool: asyncpg.Pool, region: str) -> None:
    """Moving a booked session voids its booking and re-offers it (the same clinician may
    take the new time); the clinician cancelling passes it to someone else; the
    organisation cancelling frees everyone."""
    from services.matching.handlers import handlers  # noqa: PLC0415
    from shared.events import BookingCancelled, SessionAmended, SessionCancelled  # noqa: PLC0415

    emitter = Emitter(producer="matching", schema=SCHEMA)
    table = handlers(emitter)
    session = _session(region)
    first, second = uuid.uuid4(), uuid.uuid4()

    async def handle(event_type: str, data: Any) -> None:
        envelope = new_envelope(
            data, event_type=event_type, schema_version=1, region=region, producer="test"
        )
        async with pool.acquire() as conn, conn.transaction():
            await table[event_type](conn, envelope)
        # What the debounced planner would do once the request falls due.
        async with pool.acquire() as conn, conn.transaction():
            await planning.run_request(conn, region=region, emitter=emitter)

    async with pool.acquire() as conn, conn.transaction():
        await repository.insert_session(conn, region, session)
        await _gp_window(conn, region, first, until=START + timedelta(days=2))
        await planning.replan(conn, region=region, emitter=emitter)
    [offer] = await _offers(pool, region)
    async with pool.acquire() as conn, conn.transaction():
        assert await planning.confirm(conn, envelope=_accepted(region, offer), emitter=emitter)

    moved = session_posted(START + timedelta(hours=6), session_id=session.session_id).model_dump()
    await handle("session.amended", SessionAmended(**moved, released_clinician_id=first))
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM bookings WHERE session_id = $1", session.session_id
        )
        == 0
    )
    live = [o for o in await _offers(pool, region) if o["status"] == "offered"]
    assert [o["clinician_id"] for o in live] == [first]
    assert live[0]["starts_at"] == START + timedelta(hours=6)
    async with pool.acquire() as conn, conn.transaction():
        assert await planning.confirm(conn, envelope=_accepted(region, live[0]), emitter=emitter)

    async with pool.acquire() as conn, conn.transaction():
        await _gp_window(conn, region, second, until=START + timedelta(days=2))
    await handle(
        "booking.cancelled",
        BookingCancelled(
            offer_id=live[0]["id"],
            session_id=session.session_id,
            clinician_id=first,
            reason="Family emergency",
            late=False,
        ),
    )
    live = [o for o in await _offers(pool, region) if o["status"] == "offered"]
    assert [o["clinician_id"] for o in live] == [second]

    await handle(
        "session.cancelled",
        SessionCancelled(
            session_id=session.session_id,
            organisation="A81001",
            sector=Sector.GENERAL_PRACTICE,
            reason="Closed",
            late=False,
            released_clinician_id=None,
            starts_at=START + timedelta(hours=6),
            ends_at=START + timedelta(hours=10),
        ),
    )
    assert [o for o in await _offers(pool, region) if o["status"] == "offered"] == []
    assert (
        await pool.fetchval("SELECT status FROM sessions WHERE id = $1", session.session_id)
        == "cancelled"
    )


async def test_decline_and_withdrawn_time_cascade_to_the_next_clinician(
    pool: asyncpg.Pool, region: str
) -> None:
    """A declined offer goes to the next eligible clinician; when that clinician takes the
    time back, their unanswered offer is withdrawn and nobody is left to offer it to."""
    from services.matching.handlers import handlers  # noqa: PLC0415
    from shared.events import AvailabilityWithdrawn, OfferDeclined  # noqa: PLC0415

    emitter = Emitter(producer="matching", schema=SCHEMA)
    table = handlers(emitter)
    session = _session(region)
    first, second = uuid.uuid4(), uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await repository.insert_session(conn, region, session)
        await _gp_window(conn, region, first, until=START + timedelta(days=1))
        await planning.replan(conn, region=region, emitter=emitter)
    [offer] = await _offers(pool, region)
    assert offer["clinician_id"] == first
    second_window = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        window = Window(
            second,
            Profession.GP,
            Sector.GENERAL_PRACTICE,
            START - timedelta(hours=1),
            START + timedelta(days=1),
            latitude=53.45,
            longitude=-2.2,
        )
        await repository.insert_window(
            conn, region=region, availability_id=second_window, window=window
        )

    async def handle(event_type: str, data: Any) -> None:
        envelope = new_envelope(
            data, event_type=event_type, schema_version=1, region=region, producer="bank"
        )
        async with pool.acquire() as conn, conn.transaction():
            await table[event_type](conn, envelope)
        # What the debounced planner would do once the request falls due.
        async with pool.acquire() as conn, conn.transaction():
            await planning.run_request(conn, region=region, emitter=emitter)

    await handle(
        "offer.declined",
        OfferDeclined(offer_id=offer["id"], session_id=session.session_id, clinician_id=first),
    )
    live = [o for o in await _offers(pool, region) if o["status"] == "offered"]
    assert [o["clinician_id"] for o in live] == [second]
    await handle(
        "availability.withdrawn",
        AvailabilityWithdrawn(availability_id=second_window, clinician_id=second),
    )
    statuses = {o["clinician_id"]: o["status"] for o in await _offers(pool, region)}
    assert statuses == {first: "declined", second: "withdrawn"}


async def test_an_event_replans_only_its_own_stretch_of_time(
    pool: asyncpg.Pool, region: str
) -> None:
    """A re-plan for one session's span offers that session, not one a week later; the
    sweep (no span) then offers the rest."""
    emitter = Emitter(producer="matching", schema=SCHEMA)
    near, far = _session(region), _session(region, hours_from_start=24 * 7)
    clinician = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        for s in (near, far):
            await repository.insert_session(conn, region, s)
        await _gp_window(conn, region, clinician, until=START + timedelta(days=8))
        made = await planning.replan(
            conn, region=region, emitter=emitter, span=(near.starts_at, near.ends_at)
        )
    assert made == 1
    assert [o["session_id"] for o in await _offers(pool, region)] == [near.session_id]
    async with pool.acquire() as conn, conn.transaction():
        assert await planning.replan(conn, region=region, emitter=emitter) == 1
    assert {o["session_id"] for o in await _offers(pool, region)} == {
        near.session_id,
        far.session_id,
    }


async def test_a_plan_overtaken_while_it_was_made_offers_nothing_stale(
    pool: asyncpg.Pool, region: str
) -> None:
    """The running service plans from a snapshot, outside any transaction. Whatever
    changed meanwhile (here the session was cancelled, and the other clinician took back
    their window) is left out when the plan is written, and its time planned again."""
    emitter = Emitter(producer="matching", schema=SCHEMA)
    gone, kept = _session(region), _session(region, hours_from_start=24)
    first, second = uuid.uuid4(), uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await repository.insert_session(conn, region, gone)
        await repository.insert_session(conn, region, kept)
        await _gp_window(conn, region, first, until=START + timedelta(hours=6))
        await _gp_window(conn, region, second, until=START + timedelta(hours=40))
    async with pool.acquire() as conn:
        problem = await planning.read_problem(conn, region=region, now=datetime.now(UTC))
    result = engine.plan(problem)
    assert {p.session.id for p in result.proposals} == {gone.session_id, kept.session_id}
    # Meanwhile: the practice cancels one session; the other's clinician withdraws.
    async with pool.acquire() as conn, conn.transaction():
        await repository.release(conn, gone.session_id, status="cancelled")
        await conn.execute(
            "UPDATE availability SET withdrawn = true WHERE clinician_id = $1", second
        )
    async with pool.acquire() as conn, conn.transaction():
        made = await planning.apply_plan(
            conn, region=region, problem=problem, result=result, emitter=emitter, cause=None
        )
    assert made == 0
    assert await _offers(pool, region) == []
    assert await pool.fetchval("SELECT count(*) FROM plan_requests WHERE region = $1", region) == 1
