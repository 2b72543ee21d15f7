"""asyncpg access to the monitor schema."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from services.monitor.domain import (
    Activity,
    DrainAlert,
    Flow,
    RegionPolicy,
    SectorCounts,
    Stage,
)
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


async def add_move(
    conn: Conn,
    *,
    move_id: uuid.UUID,
    region: str,
    kind: str,
    from_sector: str,
    to_sector: str,
    hours: float,
    at: datetime,
) -> bool:
    """Keep one move of matching's ledger; False if that move is already kept."""
    added = await conn.fetchval(
        "INSERT INTO drain_moves (move_id, region, kind, from_sector, to_sector, hours, at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING 1",
        move_id,
        region,
        kind,
        from_sector,
        to_sector,
        hours,
        at,
    )
    return added is not None


async def save_alert(conn: Conn, *, event_id: uuid.UUID, alert: DrainAlert) -> None:
    """Keep ``alert`` as its sector's latest, unless a later one is already kept."""
    await conn.execute(
        "INSERT INTO drain_alerts (region, sector, event_id, net_out_hours, offered_hours,"
        " cap_pct, used_pct, window_days, raised_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (region, sector) DO UPDATE SET event_id = EXCLUDED.event_id,"
        " net_out_hours = EXCLUDED.net_out_hours, offered_hours = EXCLUDED.offered_hours,"
        " cap_pct = EXCLUDED.cap_pct, used_pct = EXCLUDED.used_pct,"
        " window_days = EXCLUDED.window_days, raised_at = EXCLUDED.raised_at"
        " WHERE drain_alerts.raised_at <= EXCLUDED.raised_at",
        alert.region,
        alert.sector,
        event_id,
        alert.net_out_hours,
        alert.offered_hours,
        alert.cap_pct,
        alert.used_pct,
        alert.window_days,
        alert.raised_at,
    )


async def save_policy(conn: Conn, *, event_id: uuid.UUID, policy: RegionPolicy) -> None:
    """Keep ``policy`` as its region's latest, unless a later one is already kept."""
    await conn.execute(
        "INSERT INTO drain_policies (region, event_id, cap_pct, home_first, alert_share,"
        " changed_at) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (region) DO UPDATE SET event_id = EXCLUDED.event_id,"
        " cap_pct = EXCLUDED.cap_pct, home_first = EXCLUDED.home_first,"
        " alert_share = EXCLUDED.alert_share, changed_at = EXCLUDED.changed_at"
        " WHERE drain_policies.changed_at <= EXCLUDED.changed_at",
        policy.region,
        event_id,
        dict(policy.cap_pct),
        policy.home_first,
        policy.alert_share,
        policy.changed_at,
    )


async def flows(
    conn: Conn | asyncpg.Pool, *, since: datetime, region: str | None = None
) -> list[Flow]:
    """Hours moved per region and (from, to) pair by moves that count after ``since``
    and have not been reversed."""
    rows = await conn.fetch(
        "SELECT region, from_sector, to_sector, sum(hours) AS hours FROM drain_moves"
        " WHERE at > $1 AND reversed_at IS NULL AND ($2::text IS NULL OR region = $2)"
        " GROUP BY region, from_sector, to_sector ORDER BY region, from_sector, to_sector",
        since,
        region,
    )
    return [Flow(r["region"], r["from_sector"], r["to_sector"], r["hours"]) for r in rows]


async def alerts(conn: Conn | asyncpg.Pool, *, region: str | None = None) -> list[DrainAlert]:
    """The latest alert of every sector that has had one."""
    rows = await conn.fetch(
        "SELECT region, sector, net_out_hours, offered_hours, cap_pct, used_pct, window_days,"
        " raised_at, cleared_at FROM drain_alerts WHERE $1::text IS NULL OR region = $1"
        " ORDER BY region, sector",
        region,
    )
    return [
        DrainAlert(
            r["region"],
            r["sector"],
            r["net_out_hours"],
            r["offered_hours"],
            r["cap_pct"],
            r["used_pct"],
            r["window_days"],
            r["raised_at"],
            r["cleared_at"],
        )
        for r in rows
    ]


async def policies(conn: Conn | asyncpg.Pool, *, region: str | None = None) -> list[RegionPolicy]:
    """The latest policy of every region that has had one."""
    rows = await conn.fetch(
        "SELECT region, cap_pct, home_first, alert_share, changed_at FROM drain_policies"
        " WHERE $1::text IS NULL OR region = $1 ORDER BY region",
        region,
    )
    return [
        RegionPolicy(
            r["region"],
            {str(k): float(v) for k, v in r["cap_pct"].items()},
            r["home_first"],
            r["alert_share"],
            r["changed_at"],
        )
        for r in rows
    ]


async def clear_alert(conn: Conn, *, region: str, sector: str, at: datetime) -> None:
    """Mark the sector's alert ended, unless it was raised again after ``at``."""
    await conn.execute(
        "UPDATE drain_alerts SET cleared_at = $3 WHERE region = $1 AND sector = $2"
        " AND raised_at <= $3",
        region,
        sector,
        at,
    )


async def reverse_move(
    conn: Conn,
    *,
    move_id: uuid.UUID,
    region: str,
    kind: str,
    from_sector: str,
    to_sector: str,
    hours: float,
    at: datetime,
    reversed_at: datetime,
) -> None:
    """Mark a move reversed, keeping it (as reversed) if its recording is yet to come."""
    await conn.execute(
        "INSERT INTO drain_moves (move_id, region, kind, from_sector, to_sector, hours, at,"
        " reversed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (move_id) DO UPDATE SET reversed_at = EXCLUDED.reversed_at"
        " WHERE drain_moves.reversed_at IS NULL",
        move_id,
        region,
        kind,
        from_sector,
        to_sector,
        hours,
        at,
        reversed_at,
    )


async def count_fill(
    conn: Conn,
    *,
    session_id: uuid.UUID,
    offer_id: uuid.UUID,
    clinician_id: uuid.UUID,
    region: str,
    sector: str,
) -> bool:
    """Count the session filled by this offer, unless the fill was undone (booking given
    up, session cancelled or gone unfilled) before this event was read."""
    undone = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM undone_fills WHERE offer_id = $1)"
        " OR EXISTS (SELECT 1 FROM closed_sessions WHERE session_id = $2)",
        offer_id,
        session_id,
    )
    if undone:
        return False
    await conn.execute(
        "INSERT INTO standing_fills (session_id, offer_id, clinician_id, region, sector)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (session_id) DO UPDATE SET"
        " offer_id = EXCLUDED.offer_id, clinician_id = EXCLUDED.clinician_id",
        session_id,
        offer_id,
        clinician_id,
        region,
        sector,
    )
    return await count_once(
        conn, session_id=session_id, region=region, sector=sector, stage=Stage.FILLED
    )


async def undo_fill(
    conn: Conn,
    *,
    session_id: uuid.UUID,
    offer_id: uuid.UUID | None = None,
    clinician_id: uuid.UUID | None = None,
    closed_in: tuple[str, str] | None = None,
) -> bool:
    """The session's booking was released: it is no longer counted filled (a refill will
    count it again). ``offer_id`` or ``clinician_id`` name the booking released (a later
    fill by someone else stands); ``closed_in`` = (region, sector) of a session closed
    for good, which no later fill can count. True if a fill was taken back."""
    if offer_id is not None:
        await conn.execute(
            "INSERT INTO undone_fills (offer_id) VALUES ($1) ON CONFLICT DO NOTHING", offer_id
        )
    if closed_in is not None:
        await conn.execute(
            "INSERT INTO closed_sessions (session_id) VALUES ($1) ON CONFLICT DO NOTHING",
            session_id,
        )
    fill = await conn.fetchrow(
        "DELETE FROM standing_fills WHERE session_id = $1"
        " AND ($2::uuid IS NULL OR offer_id = $2) AND ($3::uuid IS NULL OR clinician_id = $3)"
        " RETURNING region, sector",
        session_id,
        offer_id,
        clinician_id,
    )
    if fill is not None:
        where: tuple[str, str] | None = (fill["region"], fill["sector"])
    else:
        # Counted before the monitor kept fills (or never): a closed session's own
        # region and sector still take it back.
        where = closed_in
    if where is None:
        return False
    uncounted = await conn.fetchval(
        "WITH gone AS (DELETE FROM session_stages WHERE session_id = $1 AND stage = 'filled'"
        " RETURNING 1) UPDATE sector_counts SET filled = filled - 1"
        " WHERE region = $2 AND sector = $3 AND EXISTS (SELECT 1 FROM gone) RETURNING 1",
        session_id,
        *where,
    )
    return uncounted is not None
