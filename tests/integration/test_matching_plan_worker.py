"""The planning process over the real database: a re-plan sent to it is read, planned
and written there whole (offers and their events in matching's outbox, the service's
own loop only waiting), and a worker that dies is replaced for the next plan."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.matching import SCHEMA, planning, repository
from services.matching.domain import Window
from services.matching.plan_worker import PlanWorker
from shared.catalogue import Profession, Sector
from shared.messaging.emitter import Emitter
from tests.conftest import Infra
from tests.factories import session_posted
from tests.integration.matching_support import pool

__all__ = ["pool"]  # the fixture, shared

pytestmark = pytest.mark.integration

T = (datetime.now(UTC) + timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)


async def _session_and_gp(pool: asyncpg.Pool, region: str, day: int) -> tuple[uuid.UUID, uuid.UUID]:
    """An open GP session on ``day`` and a GP free for it."""
    gp = uuid.uuid4()
    start = T + timedelta(days=day)
    session = session_posted(start, ends_at=start + timedelta(hours=4))
    async with pool.acquire() as conn, conn.transaction():
        await repository.insert_session(conn, region, session)
        window = Window(
            gp,
            Profession.GP,
            Sector.GENERAL_PRACTICE,
            start - timedelta(hours=1),
            start + timedelta(hours=6),
            latitude=53.48,
            longitude=-2.24,
        )
        await repository.insert_window(
            conn, region=region, availability_id=uuid.uuid4(), window=window
        )
    return session.session_id, gp


async def _offered(pool: asyncpg.Pool, session_id: uuid.UUID) -> Any:
    return await pool.fetchval("SELECT clinician_id FROM offers WHERE session_id = $1", session_id)


async def test_a_replan_runs_whole_in_the_worker_and_a_dead_worker_is_replaced(
    pool: asyncpg.Pool, infra: Infra, region: str
) -> None:
    emitter = Emitter(producer="matching", schema=SCHEMA)
    worker = PlanWorker(infra.dsn, service="matching", log_format="json")
    try:
        session_id, gp = await _session_and_gp(pool, region, 0)
        made = await planning.replan_detached(pool, region=region, emitter=emitter, worker=worker)
        assert made == 1
        assert await _offered(pool, session_id) == gp
        # Written there with its event, in the same transaction, for the relay here.
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM outbox WHERE event_type = 'session.offered'"
                " AND payload->'data'->>'session_id' = $1",
                str(session_id),
            )
            == 1
        )

        # Kill the worker process: the plan in hand fails (its request is asked for
        # again by the caller), and the next plan gets a new worker.
        pids = list(worker._executor._processes)  # type: ignore[attr-defined]
        assert pids
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.5)
        second, gp2 = await _session_and_gp(pool, region, 1)
        with pytest.raises(BrokenProcessPool):
            await worker.replan(region=region, emitter=emitter, span=None)
        assert await worker.replan(region=region, emitter=emitter, span=None) == 1
        assert await _offered(pool, second) == gp2
    finally:
        worker.shutdown()


async def test_a_detached_replan_writes_reasons_chunk_by_chunk_and_loses_none(
    pool: asyncpg.Pool, region: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five sessions nobody can take, written two per transaction: each gets its reason
    and one ``session.unmatched``; planned again, nothing new is said."""
    monkeypatch.setattr(planning, "NEWS_CHUNK", 2)
    emitter = Emitter(producer="matching", schema=SCHEMA)
    ids = []
    async with pool.acquire() as conn, conn.transaction():
        for day in range(5):
            start = T + timedelta(days=day, hours=2)
            session = session_posted(start, ends_at=start + timedelta(hours=4))
            await repository.insert_session(conn, region, session)
            ids.append(session.session_id)

    async def told() -> list[str]:
        rows = await pool.fetch(
            "SELECT payload->'data'->>'session_id' AS s FROM outbox"
            " WHERE event_type = 'session.unmatched' AND message_key = $1",
            region,
        )
        return sorted(r["s"] for r in rows)

    assert await planning.replan_detached(pool, region=region, emitter=emitter) == 0
    assert await told() == sorted(str(i) for i in ids)
    whys = await pool.fetch("SELECT unmatched_why FROM sessions WHERE id = ANY($1)", ids)
    assert {r["unmatched_why"] for r in whys} == {"no_eligible_clinician"}
    await planning.replan_detached(pool, region=region, emitter=emitter)
    assert len(await told()) == 5
