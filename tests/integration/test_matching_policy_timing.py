"""When offers are made, on the real database: the policy's hold and cross-sector limit
are stored, published and cleared; a held session is left untouched by the plans (in
the planning process too) until the daily round finds it within the hold."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

import asyncpg
import pytest
from typer.testing import CliRunner

from fairshare.cli import app
from services.matching import SCHEMA, handlers, planning, repository
from services.matching.admin import set_policy
from services.matching.domain import Window
from services.matching.plan_worker import PlanWorker
from shared.catalogue import Profession, Sector
from shared.messaging.emitter import Emitter
from tests.conftest import Infra
from tests.factories import session_posted
from tests.integration.matching_support import pool

__all__ = ["pool"]  # the fixture, shared

pytestmark = pytest.mark.integration

T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
CP = Sector.COMMUNITY_PHARMACY


async def _published(pool: asyncpg.Pool, region: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT payload FROM outbox WHERE event_type = 'policy.changed' AND message_key = $1"
        " ORDER BY id",
        region,
    )
    return [r["payload"]["data"] for r in rows]


async def test_the_limits_are_stored_published_kept_and_cleared(
    pool: asyncpg.Pool, region: str
) -> None:
    emitter = Emitter(producer="matching", schema=SCHEMA)
    async with pool.acquire() as conn, conn.transaction():
        assert (await repository.policy(conn, region)).hold_beyond_h is None
        await set_policy(
            conn,
            region,
            emitter=emitter,
            changed_by="test",
            hold_beyond_h=72.0,
            cross_sector_within_h=48.0,
        )
        got = await repository.policy(conn, region)
        assert (got.hold_beyond_h, got.cross_sector_within_h) == (72.0, 48.0)
        # Another change keeps them; None clears one.
        await set_policy(conn, region, emitter=emitter, changed_by="test", caps={CP: 5.0})
        await set_policy(conn, region, emitter=emitter, changed_by="test", hold_beyond_h=None)
        got = await repository.policy(conn, region)
        assert (got.hold_beyond_h, got.cross_sector_within_h, got.cap_for(CP)) == (None, 48.0, 5.0)
        with pytest.raises(asyncpg.CheckViolationError):
            async with conn.transaction():
                await set_policy(
                    conn, region, emitter=emitter, changed_by="test", hold_beyond_h=673.0
                )
    published = [
        (p["hold_beyond_h"], p["cross_sector_within_h"]) for p in await _published(pool, region)
    ]
    assert published == [(72.0, 48.0), (72.0, 48.0), (None, 48.0)]


class _ThreeDaysOn:
    """``datetime`` as planning calls it, three days on."""

    @staticmethod
    def now(tz: Any = None) -> datetime:
        return datetime.now(tz) + timedelta(days=3)


async def test_a_held_session_waits_for_the_daily_round(
    pool: asyncpg.Pool, infra: Infra, region: str
) -> None:
    """Held beyond 72 hours: the round now (run in the planning process) offers the
    session a day ahead, not the one five days ahead, which keeps no reason; the round
    three days on offers it."""
    emitter = Emitter(producer="matching", schema=SCHEMA)
    gp = uuid.uuid4()
    near, far = session_posted(T0 + timedelta(days=1)), session_posted(T0 + timedelta(days=5))
    async with pool.acquire() as conn, conn.transaction():
        await set_policy(conn, region, emitter=emitter, changed_by="test", hold_beyond_h=72.0)
        window = Window(
            gp,
            Profession.GP,
            Sector.GENERAL_PRACTICE,
            T0,
            T0 + timedelta(days=6),
            latitude=53.48,
            longitude=-2.24,
        )
        await repository.insert_window(
            conn, region=region, availability_id=uuid.uuid4(), window=window
        )
        for session in (near, far):
            await repository.insert_session(conn, region, session)
    assert region in await repository.regions_holding(pool, datetime.now(UTC))

    worker = PlanWorker(infra.dsn, service="matching", log_format="json")
    try:
        made = await handlers.daily_round(
            pool, emitter=emitter, now=datetime.now(UTC), worker=worker
        )
    finally:
        worker.shutdown()
    assert made >= 1
    offered = "SELECT count(*) FROM offers WHERE session_id = $1"
    assert await pool.fetchval(offered, near.session_id) == 1
    assert await pool.fetchval(offered, far.session_id) == 0
    async with pool.acquire() as conn, conn.transaction():
        assert await repository.unmatched_why(conn, far.session_id) is None
        # Its own stretch, planned (as session.posted asks), is held too.
        span = (far.starts_at, far.ends_at)
        assert await planning.replan(conn, region=region, emitter=emitter, span=span) == 0

    with patch.object(planning, "datetime", _ThreeDaysOn):
        await handlers.daily_round(pool, emitter=emitter, now=_ThreeDaysOn.now(UTC))
    assert await pool.fetchval(offered, far.session_id) == 1


def test_the_cli_sets_shows_and_clears_the_limits(
    pool: asyncpg.Pool, infra: Infra, region: str
) -> None:
    """``fairshare policy set`` stores them, ``show`` says them, ``off`` clears one."""
    del pool  # the matching schema, migrated
    runner = CliRunner()
    env = {"FAIRSHARE_DATABASE_URL": infra.dsn}

    def run(*args: str) -> str:
        result = runner.invoke(app, ["policy", *args, "--region", region], env=env)
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    run("set", "--hold-beyond-h", "72", "--cross-sector-within-h", "48")
    shown = run("show")
    assert "hold beyond 72 h" in shown
    assert "only for sessions within 48 h" in shown
    run("set", "--hold-beyond-h", "off")
    shown = run("show")
    assert "no hold" in shown
    assert "only for sessions within 48 h" in shown
