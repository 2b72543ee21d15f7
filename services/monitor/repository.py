"""asyncpg access to the monitor schema."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from services.monitor.domain import Activity, SectorCounts, Stage
from shared.db.types import Conn

# Enough for any page's list; the table stays a few rows long however long we run.
RECENT_KEPT = 50


async def count_once(
    conn: Conn, *, session_id: uuid.UUID, region: str, sector: str, stage: Stage
) -> bool:
    """Claim the stage for the session and, if it is new, count it: one round trip."""
    column = Stage(stage).value  # interpolated below: only the enum's own values get through
    counted = await conn.fetchval(
        "WITH claimed AS (INSERT INTO session_stages (session_id, stage) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING RETURNING 1),"
        f" counted AS (INSERT INTO sector_counts (region, sector, {column})"
        " SELECT $3, $4, 1 FROM claimed"
        f" ON CONFLICT (region, sector) DO UPDATE SET {column} = sector_counts.{column} + 1"
        " RETURNING 1)"
        " SELECT count(*) FROM counted",
        session_id,
        stage.value,
        region,
        sector,
    )
    return bool(counted)


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
    # Trimmed only once the list has doubled: a DELETE on every event cost round trips
    # that busy regions felt (the intake benchmark).
    await conn.execute(
        "DELETE FROM recent_events WHERE (SELECT count(*) FROM recent_events) > $1 * 2"
        " AND event_id NOT IN"
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
