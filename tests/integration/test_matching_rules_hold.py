"""Issue 10 over the real database: the working-time rules and the cap hold in the
running service, not only in the pure engine. Commitments are counted once each and
read only as far as a rule reaches; an acceptance is checked again against the state
when it is handled."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.matching import SCHEMA, planning, repository
from services.matching.admin import set_policy
from services.matching.domain import Window
from shared.catalogue import Profession, Role, Sector
from shared.db.types import Conn
from shared.events import Envelope, OfferAccepted, SessionPosted, new_envelope
from shared.messaging.emitter import Emitter
from tests.factories import session_posted
from tests.integration.matching_support import hand_made_offer, pool

__all__ = ["pool"]  # the fixture, shared

pytestmark = pytest.mark.integration

# 07:00 UTC five days ahead: 12-hour days from here leave 12 hours' rest between them.
DAY0 = (datetime.now(UTC) + timedelta(days=5)).replace(hour=7, minute=0, second=0, microsecond=0)
CP = Sector.COMMUNITY_PHARMACY


def _day(day: int, **override: Any) -> SessionPosted:
    """A 12-hour GP session on day ``day`` from DAY0."""
    start = DAY0 + timedelta(days=day)
    return session_posted(start, ends_at=start + timedelta(hours=12), **override)


async def _gp_window(
    conn: Conn, region: str, clinician: uuid.UUID, *, self_employed: bool = False
) -> None:
    """A GP free for the whole week from DAY0."""
    window = Window(
        clinician,
        Profession.GP,
        Sector.GENERAL_PRACTICE,
        DAY0 - timedelta(hours=1),
        DAY0 + timedelta(days=7),
        latitude=53.45,  # a few km from the factory's practice
        longitude=-2.2,
        self_employed=self_employed,
    )
    await repository.insert_window(conn, region=region, availability_id=uuid.uuid4(), window=window)


def _accepted(region: str, offer: asyncpg.Record, *, at: datetime | None = None) -> Envelope[Any]:
    envelope = new_envelope(
        OfferAccepted(
            offer_id=offer["id"], session_id=offer["session_id"], clinician_id=offer["clinician_id"]
        ),
        event_type="offer.accepted",
        schema_version=1,
        region=region,
        producer="bank",
    )
    return envelope.model_copy(update={"occurred_at": at}) if at else envelope


async def _confirm(pool: asyncpg.Pool, envelope: Envelope[Any]) -> bool:
    emitter = Emitter(producer="matching", schema=SCHEMA)
    async with pool.acquire() as conn, conn.transaction():
        return await planning.confirm(conn, envelope=envelope, emitter=emitter)


async def _refusals(pool: asyncpg.Pool, offer_id: uuid.UUID) -> list[str]:
    rows = await pool.fetch(
        "SELECT payload->'data'->>'reason' AS reason FROM outbox"
        " WHERE event_type = 'offer.refused' AND payload->'data'->>'offer_id' = $1",
        str(offer_id),
    )
    return [r["reason"] for r in rows]


async def test_two_12_hour_bookings_leave_two_more_12_hour_sessions_offerable(
    pool: asyncpg.Pool, region: str
) -> None:
    """Two 12-hour bookings are 24 hours, not 48: two more 12-hour sessions in the same
    week are still offered (48 hours in 7 days is within the limit). Commitments hold
    each booking once, and none that ended beyond any rule's reach."""
    emitter = Emitter(producer="matching", schema=SCHEMA)
    gp = uuid.uuid4()
    booked = [_day(0), _day(1)]
    async with pool.acquire() as conn, conn.transaction():
        await _gp_window(conn, region, gp)
        for s in booked:
            await repository.insert_session(conn, region, s)
        assert await planning.replan(conn, region=region, emitter=emitter) == 2
    for offer in await pool.fetch("SELECT * FROM offers WHERE region = $1", region):
        assert await _confirm(pool, _accepted(region, offer))
    later = [_day(2), _day(3)]
    async with pool.acquire() as conn, conn.transaction():
        for s in later:
            await repository.insert_session(conn, region, s)
        held = await repository.commitments(conn, region, datetime.now(UTC))
        assert sorted((c.clinician_id, c.starts_at) for c in held) == [
            (gp, s.starts_at) for s in booked
        ]
        assert await planning.replan(conn, region=region, emitter=emitter) == 2
    # Bounded in time: what ended within the 7 days before now is read (the 48-hour
    # rule reaches it), what ended earlier is not.
    async with pool.acquire() as conn:
        soon = await repository.commitments(conn, region, DAY0 + timedelta(days=3))
        assert sorted(c.starts_at for c in soon) == [s.starts_at for s in booked]
        assert await repository.commitments(conn, region, DAY0 + timedelta(days=9)) == []


async def test_an_acceptance_that_would_pass_48_hours_is_refused(
    pool: asyncpg.Pool, region: str
) -> None:
    """Offers made against an older state (four 12-hour days, then a fifth) are each
    checked when accepted: the fifth would make 60 hours in 7 days and is refused, with
    why; a self-employed GP is booked all the same (a warning, not a block)."""
    employed, self_employed = uuid.uuid4(), uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await _gp_window(conn, region, employed)
        await _gp_window(conn, region, self_employed, self_employed=True)
        offers: dict[uuid.UUID, list[asyncpg.Record]] = {employed: [], self_employed: []}
        for who, offered in offers.items():
            for day in range(5):
                session = _day(day)
                await repository.insert_session(conn, region, session)
                offered.append(await hand_made_offer(conn, region, session, who))
    for offered in offers.values():
        for offer in offered[:4]:
            assert await _confirm(pool, _accepted(region, offer))
    fifth = offers[employed][4]
    assert not await _confirm(pool, _accepted(region, fifth))
    [reason] = await _refusals(pool, fifth["id"])
    assert "working-time rules" in reason
    assert "60.0 hours in 7 days, over the 48-hour limit" in reason
    status = await pool.fetchval("SELECT status FROM offers WHERE id = $1", fifth["id"])
    assert status == "refused"
    # Its stretch of time is planned again, so the session can go to someone else.
    assert await pool.fetchval("SELECT count(*) FROM plan_requests WHERE region = $1", region)
    assert await _confirm(pool, _accepted(region, offers[self_employed][4]))


async def test_a_late_acceptance_is_refused_once_its_cap_room_went_to_another_move(
    pool: asyncpg.Pool, region: str
) -> None:
    """A pharmacist accepted a GP session before their offer expired, but the acceptance
    is handled after expiry; meanwhile community pharmacy's cap room (6 hours: 15% of
    40 offered) went to a colleague's 4-hour move. Booking both would take the sector
    to 8 hours out: the late acceptance is refused, with why, and re-planned."""
    emitter = Emitter(producer="matching", schema=SCHEMA)
    late, colleague = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        await set_policy(conn, region, emitter=emitter, changed_by="test", caps={CP: 15.0})
        for who in (late, colleague):
            for day in range(2):
                window = Window(
                    who,
                    Profession.PHARMACIST,
                    CP,
                    DAY0 + timedelta(days=day),
                    DAY0 + timedelta(days=day, hours=10),
                )
                await repository.insert_window(
                    conn, region=region, availability_id=uuid.uuid4(), window=window
                )
        mine, theirs = (
            session_posted(DAY0 + timedelta(hours=h), role=Role.CLINICAL_PHARMACIST) for h in (1, 5)
        )
        for session in (mine, theirs):
            await repository.insert_session(conn, region, session)
        expired = await hand_made_offer(
            conn, region, mine, late, home=CP, expires_at=now - timedelta(minutes=1)
        )
        live = await hand_made_offer(conn, region, theirs, colleague, home=CP)
    assert await _confirm(pool, _accepted(region, live))
    accepted_in_time = _accepted(region, expired, at=now - timedelta(minutes=2))
    assert not await _confirm(pool, accepted_in_time)
    [reason] = await _refusals(pool, expired["id"])
    assert "community pharmacy" in reason
    assert "cap" in reason
    assert await pool.fetchval("SELECT count(*) FROM bookings WHERE clinician_id = $1", late) == 0
