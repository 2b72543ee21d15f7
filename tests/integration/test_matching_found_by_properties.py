"""Two defects the use-case properties (tests/unit/test_matching_use_case_properties.py)
found on the in-memory repository, checked again on the real database: a late acceptance
booked over what was offered since, and the sweep never alerting a sector that lent
only by live offers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.matching import SCHEMA, ledger, planning, repository
from services.matching.admin import set_policy
from services.matching.domain import Window
from shared.catalogue import Profession, Role, Sector
from shared.db.types import Conn
from shared.events import Envelope, OfferAccepted, new_envelope
from shared.messaging.emitter import Emitter
from tests.factories import session_posted
from tests.integration.matching_support import hand_made_offer, pool

__all__ = ["pool"]  # the fixture, shared

pytestmark = pytest.mark.integration

DAY0 = (datetime.now(UTC) + timedelta(days=4)).replace(hour=9, minute=0, second=0, microsecond=0)
CP, GP = Sector.COMMUNITY_PHARMACY, Sector.GENERAL_PRACTICE
EMITTER = Emitter(producer="matching", schema=SCHEMA)


async def _window(
    conn: Conn, region: str, who: uuid.UUID, profession: Profession, home: Sector
) -> None:
    window = Window(
        who,
        profession,
        home,
        DAY0 - timedelta(hours=1),
        DAY0 + timedelta(hours=9),
        latitude=53.48,
        longitude=-2.24,
    )
    await repository.insert_window(conn, region=region, availability_id=uuid.uuid4(), window=window)


def _accepted(region: str, offer: asyncpg.Record, at: datetime) -> Envelope[Any]:
    data = OfferAccepted(
        offer_id=offer["id"], session_id=offer["session_id"], clinician_id=offer["clinician_id"]
    )
    envelope = new_envelope(
        data, event_type="offer.accepted", schema_version=1, region=region, producer="bank"
    )
    return envelope.model_copy(update={"occurred_at": at})


async def test_a_late_acceptance_is_refused_once_the_session_or_their_time_was_offered_again(
    pool: asyncpg.Pool, region: str
) -> None:
    """Two GPs, two sessions at one time. Each GP's first offer expired, and each was
    offered the other's session since. A first offer's acceptance, made before it
    expired, arrives now: booking it would give that session two holders (the other GP's
    live offer) and this GP two overlapping sessions. It is refused; nothing is booked."""
    now = datetime.now(UTC)
    first, second = uuid.uuid4(), uuid.uuid4()
    one, other = (session_posted(DAY0, ends_at=DAY0 + timedelta(hours=4)) for _ in range(2))
    async with pool.acquire() as conn, conn.transaction():
        for who in (first, second):
            await _window(conn, region, who, Profession.GP, GP)
        for session in (one, other):
            await repository.insert_session(conn, region, session)
        late = await hand_made_offer(
            conn, region, one, first, home=GP, expires_at=now - timedelta(minutes=5)
        )
        await hand_made_offer(
            conn, region, other, second, home=GP, expires_at=now - timedelta(minutes=5)
        )
        await hand_made_offer(
            conn, region, one, second, home=GP, expires_at=now + timedelta(hours=1)
        )
        await hand_made_offer(
            conn, region, other, first, home=GP, expires_at=now + timedelta(hours=1)
        )
    async with pool.acquire() as conn, conn.transaction():
        accepted_in_time = _accepted(region, late, now - timedelta(minutes=10))
        assert not await planning.confirm(conn, envelope=accepted_in_time, emitter=EMITTER)
    assert await pool.fetchval("SELECT count(*) FROM bookings WHERE clinician_id = $1", first) == 0
    reason = await pool.fetchval(
        "SELECT payload->'data'->>'reason' FROM outbox WHERE event_type = 'offer.refused'"
        " AND payload->'data'->>'offer_id' = $1",
        str(late["id"]),
    )
    assert "offered again" in reason


async def test_the_sweep_alerts_a_sector_that_lends_only_by_live_offers(
    pool: asyncpg.Pool, region: str
) -> None:
    """Live cross-sector offers count in net outflow as if accepted. A pharmacy whose
    pharmacist holds a 4-hour GP offer has lent past 80% of its cap (45% of 10 hours
    offered: 4.5 hours) before anyone accepts: the sweep raises the alert (it looked
    only at regions with a move or an alert standing, so never did)."""
    pharmacist = uuid.uuid4()
    session = session_posted(DAY0, ends_at=DAY0 + timedelta(hours=4), role=Role.CLINICAL_PHARMACIST)
    async with pool.acquire() as conn, conn.transaction():
        await set_policy(conn, region, emitter=EMITTER, changed_by="test", caps={CP: 45.0})
        await _window(conn, region, pharmacist, Profession.PHARMACIST, CP)
        await repository.insert_session(conn, region, session)
        assert await planning.replan(conn, region=region, emitter=EMITTER) == 1
    await ledger.keep_current(pool, emitter=EMITTER)
    alerts = await pool.fetch(
        "SELECT payload->'data'->>'sector' AS sector FROM outbox"
        " WHERE event_type = 'sector.drain_alert' AND message_key = $1",
        region,
    )
    assert [a["sector"] for a in alerts] == [CP.value]
