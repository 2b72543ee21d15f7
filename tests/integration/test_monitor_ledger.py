"""The monitor follows matching's ledger as it is now (issue 10, defect 1), over the real
database through the shared consumer: a reversed move leaves the drain figures, and a
session whose booking was released is not counted filled."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from pydantic import BaseModel

from services.monitor import SCHEMA, SERVICE, http
from services.monitor.handlers import handlers
from services.monitor.repository import flows
from services.monitor.settings import MonitorSettings
from shared.catalogue import Sector
from shared.db.pool import create_pool
from shared.events import (
    EVENTS,
    BookingCancelled,
    MoveRecorded,
    MoveReversed,
    SessionCancelled,
    SessionFilled,
    new_envelope,
    topic_for,
)
from shared.messaging.consumer import EventConsumer
from shared.runtime import migrate
from tests.conftest import Infra
from tests.integration.helpers import settings_for

pytestmark = pytest.mark.integration

MIGRATIONS = Path(http.__file__).with_name("migrations")
START = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
GP, CP = Sector.GENERAL_PRACTICE, Sector.COMMUNITY_PHARMACY


class _NoDeadLetters:
    async def publish(self, *, topic: str, key: str, value: bytes, headers: dict[str, str]) -> None:
        """Every message here is valid: a dead letter fails the test."""
        raise AssertionError(f"dead-lettered from {topic}: {headers.get('dlq-reason')}")


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the monitor's schema, migrated."""
    settings = settings_for(MonitorSettings, infra, "")
    await migrate(settings, schema=SCHEMA, migrations_dir=MIGRATIONS)
    p = await create_pool(settings.database_url, SCHEMA)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
def consumer(pool: asyncpg.Pool) -> EventConsumer:
    """The consumer the service runs, minus Kafka."""
    return EventConsumer(
        service=SERVICE, pool=pool, dead_letters=_NoDeadLetters(), handlers=handlers()
    )


async def _feed(consumer: EventConsumer, data: BaseModel, region: str) -> None:
    [spec] = [s for s in EVENTS.values() if s.model is type(data)]
    envelope = new_envelope(
        data,
        event_type=spec.type,
        schema_version=spec.version,
        region=region,
        producer=spec.producer,
    )
    assert await consumer.handle(
        topic_for(spec.type), region.encode(), envelope.model_dump_json().encode()
    )


def _filled(session_id: uuid.UUID, offer_id: uuid.UUID, clinician: uuid.UUID) -> SessionFilled:
    return SessionFilled(
        session_id=session_id,
        offer_id=offer_id,
        clinician_id=clinician,
        organisation="A81001",
        sector=GP,
        clinician_home_sector=CP,
        starts_at=START,
        ends_at=START + timedelta(hours=4),
    )


async def _filled_count(pool: asyncpg.Pool, region: str) -> int:
    count: int | None = await pool.fetchval(
        "SELECT filled FROM sector_counts WHERE region = $1 AND sector = 'general_practice'",
        region,
    )
    return count or 0


async def test_a_released_booking_is_not_counted_filled_and_its_move_leaves_the_drain(
    consumer: EventConsumer, pool: asyncpg.Pool, region: str
) -> None:
    """Filled across sectors, then given up: not filled and no hours moved; filled
    again by someone else: one filled session, one move; then cancelled by the practice:
    nothing filled."""
    session, first, second = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    ann, bob = uuid.uuid4(), uuid.uuid4()
    move = MoveRecorded(
        move_id=uuid.uuid4(),
        kind="session",
        clinician_id=ann,
        from_sector=CP,
        to_sector=GP,
        place="Salford",
        hours=4.0,
        at=START,
        session_id=session,
    )
    await _feed(consumer, _filled(session, first, ann), region)
    await _feed(consumer, move, region)
    assert await _filled_count(pool, region) == 1
    since = datetime.now(UTC) - timedelta(days=28)
    assert [f.hours for f in await flows(pool, since=since, region=region)] == [4.0]

    await _feed(
        consumer,
        BookingCancelled(
            offer_id=first, session_id=session, clinician_id=ann, reason="ill", late=False
        ),
        region,
    )
    await _feed(
        consumer,
        MoveReversed(**move.model_dump(exclude={"place"}), reason="booking_cancelled"),
        region,
    )
    assert await _filled_count(pool, region) == 0
    assert await flows(pool, since=since, region=region) == []

    await _feed(consumer, _filled(session, second, bob), region)
    assert await _filled_count(pool, region) == 1
    await _feed(
        consumer,
        SessionCancelled(
            session_id=session,
            organisation="A81001",
            sector=GP,
            reason="not needed",
            late=False,
            released_clinician_id=bob,
            starts_at=START,
            ends_at=START + timedelta(hours=4),
        ),
        region,
    )
    assert await _filled_count(pool, region) == 0


async def test_a_fill_read_after_its_undoing_is_not_counted(
    consumer: EventConsumer, pool: asyncpg.Pool, region: str
) -> None:
    """Streams race: the bank's cancellation, or the practice's, can be read before
    matching's fill; the fill then counts nothing."""
    given_up, cancelled = uuid.uuid4(), uuid.uuid4()
    offer, ann = uuid.uuid4(), uuid.uuid4()
    await _feed(
        consumer,
        BookingCancelled(
            offer_id=offer, session_id=given_up, clinician_id=ann, reason="", late=False
        ),
        region,
    )
    await _feed(consumer, _filled(given_up, offer, ann), region)
    await _feed(
        consumer,
        SessionCancelled(
            session_id=cancelled,
            organisation="A81001",
            sector=GP,
            reason=None,
            late=False,
            released_clinician_id=None,
            starts_at=START,
            ends_at=START + timedelta(hours=4),
        ),
        region,
    )
    await _feed(consumer, _filled(cancelled, uuid.uuid4(), ann), region)
    assert await _filled_count(pool, region) == 0
