"""Helpers for tests of matching: a pool on its migrated schema."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from fairshare.services import migrations_of
from services.matching import SCHEMA
from services.matching.settings import MatchingSettings
from shared.db.pool import create_pool
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
