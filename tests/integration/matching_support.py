"""Helpers for tests of matching: a pool on its migrated schema."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from fairshare.services import migrations_of
from services.matching import SCHEMA
from services.matching.settings import MatchingSettings
from shared.catalogue import Sector
from shared.db.pool import create_pool
from shared.db.types import Conn
from shared.events import SessionPosted
from shared.runtime import migrate
from tests.conftest import Infra
from tests.integration.helpers import settings_for


@pytest.fixture
async def pool(infra: Infra, topic_prefix: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the migrated matching schema."""
    settings = settings_for(MatchingSettings, infra, topic_prefix)
    await migrate(settings, schema=SCHEMA, migrations_dir=migrations_of("matching"))
    p = await create_pool(infra.dsn, SCHEMA)
    yield p
    await p.close()


async def hand_made_offer(
    conn: Conn,
    region: str,
    session: SessionPosted,
    clinician: uuid.UUID,
    *,
    home: Sector = Sector.GENERAL_PRACTICE,
    expires_at: datetime | None = None,
) -> asyncpg.Record:
    """A live offer of ``session`` to ``clinician``, written by hand: as a plan from an
    older state would have made it, or to set its expiry (an hour ahead by default)."""
    row = await conn.fetchrow(
        "INSERT INTO offers (id, session_id, clinician_id, clinician_home_sector, region,"
        " starts_at, ends_at, expires_at, reasons)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '[]'::jsonb) RETURNING *",
        uuid.uuid4(),
        session.session_id,
        clinician,
        home.value,
        region,
        session.starts_at,
        session.ends_at,
        expires_at or datetime.now(UTC) + timedelta(hours=1),
    )
    assert row is not None
    return row
