"""asyncpg access to the monitor schema."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from services.monitor.domain import Activity, SectorCounts, Stage
from shared.db.types import Conn

# Enough for any page's list; the table stays a few rows long however long we run.
RECENT_KEPT = 50


async def claim_stage(conn: Conn, *, session_id: uuid.UUID, stage: Stage) -> bool:
    """Record that the session reached ``stage``; False if it already had."""
    inserted = await conn.fetchval(
        "INSERT INTO session_stages (session_id, stage) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING RETURNING true",
        session_id,
        stage.value,
    )
    return bool(inserted)


async def increment(conn: Conn, *, region: str, sector: str, stage: Stage) -> None:
    """Add one to the ``stage`` counter of the region's sector."""
    column = Stage(stage).value  # interpolated below: only the enum's own values get through
    await conn.execute(
        f"INSERT INTO sector_counts (region, sector, {column}) VALUES ($1, $2, 1)"
        f" ON CONFLICT (region, sector) DO UPDATE SET {column} = sector_counts.{column} + 1",
        region,
        sector,
    )


async def add_recent(
    conn: Conn,
    *,
    event_id: uuid.UUID,
    stage: Stage,
    region: str,
    sector: str,
    occurred_at: datetime,
) -> None:
    """Add an event to the activity list and drop all but the newest ``RECENT_KEPT``."""
    await conn.execute(
        "INSERT INTO recent_events (event_id, stage, region, sector, occurred_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        event_id,
        stage.value,
        region,
        sector,
        occurred_at,
    )
    await conn.execute(
        "DELETE FROM recent_events WHERE event_id NOT IN"
        " (SELECT event_id FROM recent_events ORDER BY occurred_at DESC LIMIT $1)",
        RECENT_KEPT,
    )


async def all_counts(conn: Conn | asyncpg.Pool) -> list[SectorCounts]:
    """Every region's counts, by region then sector."""
    rows = await conn.fetch(
        "SELECT region, sector, posted, offered, filled FROM sector_counts ORDER BY region, sector"
    )
    return [
        SectorCounts(r["region"], r["sector"], r["posted"], r["offered"], r["filled"]) for r in rows
    ]


async def recent(conn: Conn | asyncpg.Pool, *, limit: int) -> list[Activity]:
    """The newest ``limit`` events, newest first."""
    rows = await conn.fetch(
        "SELECT stage, region, sector, occurred_at FROM recent_events"
        " ORDER BY occurred_at DESC, event_id LIMIT $1",
        limit,
    )
    return [Activity(Stage(r["stage"]), r["region"], r["sector"], r["occurred_at"]) for r in rows]
