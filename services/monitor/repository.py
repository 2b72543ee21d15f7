"""asyncpg access to the monitor schema."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from services.monitor.domain import (
    COUNTED,
    Activity,
    DrainAlert,
    Flow,
    RegionPolicy,
    SectorCounts,
    Stage,
)
from services.monitor.summary import SectorPeriod
from shared.db.types import Conn

# Enough for any page's list; the table stays a few rows long however long we run.
RECENT_KEPT = 50


async def add_recent(conn: Conn, events: list[tuple[uuid.UUID, Activity]]) -> None:
    """Add (event id, activity) pairs to the activity list and drop all but the newest
    ``RECENT_KEPT``; an event already listed is listed once."""
    if not events:
        return
    # Trimmed only once the list has doubled: a DELETE of the oldest on every event cost
    # round trips that busy regions felt (the intake benchmark). One statement: the trim
    # sees the list as it was before these events, which is near enough.
    await conn.execute(
        "WITH added AS (INSERT INTO recent_events (event_id, stage, region, sector,"
        " occurred_at) SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[],"
        " $5::timestamptz[]) ON CONFLICT DO NOTHING)"
        " DELETE FROM recent_events WHERE (SELECT count(*) FROM recent_events) > $6 * 2"
        " AND event_id NOT IN"
        " (SELECT event_id FROM recent_events ORDER BY occurred_at DESC LIMIT $6)",
        [event_id for event_id, _ in events],
        [a.stage.value for _, a in events],
        [a.region for _, a in events],
        [a.sector for _, a in events],
        [a.occurred_at for _, a in events],
        RECENT_KEPT,
    )


async def all_counts(conn: Conn | asyncpg.Pool, *, region: str | None = None) -> list[SectorCounts]:
    """Every region's counts (or only ``region``'s), by region then sector."""
    rows = await conn.fetch(
        f"SELECT region, sector, {', '.join(COUNTED)} FROM sector_counts"
        " WHERE $1::text IS NULL OR region = $1 ORDER BY region, sector",
        region,
    )
    return [SectorCounts(r["region"], r["sector"], *(r[c] for c in COUNTED)) for r in rows]


async def recent(
    conn: Conn | asyncpg.Pool, *, limit: int, region: str | None = None
) -> list[Activity]:
    """The newest ``limit`` events (of ``region`` only, if given), newest first."""
    rows = await conn.fetch(
        "SELECT stage, region, sector, occurred_at FROM recent_events"
        " WHERE $2::text IS NULL OR region = $2"
        " ORDER BY occurred_at DESC, event_id LIMIT $1",
        limit,
        region,
    )
    return [Activity(Stage(r["stage"]), r["region"], r["sector"], r["occurred_at"]) for r in rows]


async def known_regions(conn: Conn | asyncpg.Pool) -> list[str]:
    """Every region the monitor has counted a session of, in code order."""
    rows = await conn.fetch(
        "SELECT region FROM sector_counts UNION"
        " SELECT region FROM session_facts WHERE region IS NOT NULL ORDER BY region"
    )
    return [r["region"] for r in rows]


# A session's start and end as vacancies last said them: its latest word that is not a
# closing one (a cancellation repeats the session as it stood), else its closing word.
# The kept figures say whether it is filled or cancelled now; only the time is read here.
_CURRENT_TIMES = (
    "SELECT (e->>'starts_at')::timestamptz AS starts_at,"
    " (e->>'ends_at')::timestamptz AS ends_at"
    " FROM jsonb_array_elements(f.facts->'stated') AS e"
    " ORDER BY e->>'said' IN ('cancelled', 'unfilled'), (e->>'at')::timestamptz DESC,"
    " e->>'event_id' DESC LIMIT 1"
)


async def period_sectors(
    conn: Conn | asyncpg.Pool, *, regions: list[str], since: datetime, until: datetime
) -> list[SectorPeriod]:
    """Per region and sector, the figures of the sessions that start in [since, until)
    and the hours of those filled now. A session vacancies has said nothing of yet has
    no start to place it by and is left out (it is not posted either)."""
    rows = await conn.fetch(
        "SELECT f.region, f.sector, sum(f.posted) AS posted, sum(f.filled) AS filled,"
        " sum(f.cancelled) AS cancelled, sum(f.unfilled) AS unfilled,"
        " sum(f.late_cancelled) AS late_cancelled, sum(f.late_given_up) AS late_given_up,"
        " coalesce(sum(extract(epoch FROM t.ends_at - t.starts_at) / 3600)"
        " FILTER (WHERE f.filled > 0), 0)::float8 AS hours_filled"
        f" FROM session_facts AS f CROSS JOIN LATERAL ({_CURRENT_TIMES}) AS t"
        " WHERE f.region = ANY($1::text[]) AND t.starts_at >= $2 AND t.starts_at < $3"
        " GROUP BY f.region, f.sector ORDER BY f.region, f.sector",
        regions,
        since,
        until,
    )
    return [
        SectorPeriod(
            r["region"],
            r["sector"],
            r["posted"],
            r["filled"],
            r["cancelled"],
            r["unfilled"],
            r["late_cancelled"],
            r["late_given_up"],
            r["hours_filled"],
        )
        for r in rows
    ]


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
    """Keep ``alert`` as its sector's latest, unless a later one is already kept (ties
    go to the larger event id, so the order alerts are read in makes no difference).
    A clearing read before it stands (``clear_alert``)."""
    await conn.execute(
        "INSERT INTO drain_alerts (region, sector, event_id, net_out_hours, offered_hours,"
        " cap_pct, used_pct, window_days, raised_at, cleared_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, (SELECT cleared_at FROM drain_clears"
        " WHERE region = $1 AND sector = $2))"
        " ON CONFLICT (region, sector) DO UPDATE SET event_id = EXCLUDED.event_id,"
        " net_out_hours = EXCLUDED.net_out_hours, offered_hours = EXCLUDED.offered_hours,"
        " cap_pct = EXCLUDED.cap_pct, used_pct = EXCLUDED.used_pct,"
        " window_days = EXCLUDED.window_days, raised_at = EXCLUDED.raised_at"
        " WHERE (drain_alerts.raised_at, drain_alerts.event_id)"
        " < (EXCLUDED.raised_at, EXCLUDED.event_id)",
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
    """Keep ``policy`` as its region's latest, unless a later one is already kept (ties
    go to the larger event id)."""
    await conn.execute(
        "INSERT INTO drain_policies (region, event_id, cap_pct, home_first, alert_share,"
        " changed_at) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (region) DO UPDATE SET event_id = EXCLUDED.event_id,"
        " cap_pct = EXCLUDED.cap_pct, home_first = EXCLUDED.home_first,"
        " alert_share = EXCLUDED.alert_share, changed_at = EXCLUDED.changed_at"
        " WHERE (drain_policies.changed_at, drain_policies.event_id)"
        " < (EXCLUDED.changed_at, EXCLUDED.event_id)",
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
    """The sector fell back under its alert share at ``at``: its alert, if raised before
    then, no longer stands. The latest clearing is kept whatever the order, and kept
    for an alert not yet read (a replay can bring a clearing first)."""
    await conn.execute(
        "INSERT INTO drain_clears (region, sector, cleared_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (region, sector) DO UPDATE"
        " SET cleared_at = greatest(drain_clears.cleared_at, EXCLUDED.cleared_at)",
        region,
        sector,
        at,
    )
    await conn.execute(
        "UPDATE drain_alerts SET cleared_at = greatest(cleared_at, $3)"
        " WHERE region = $1 AND sector = $2",
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


# Every table the monitor builds from events, and the inbox of the events it handled:
# what a rebuild empties before reading the topics again. The outbox, its marks and the
# migrations' record are not projections and stay.
PROJECTIONS: tuple[str, ...] = (
    "session_facts",
    "sector_counts",
    "recent_events",
    "drain_moves",
    "drain_alerts",
    "drain_clears",
    "drain_policies",
    "inbox",
)


async def truncate_projections(conn: Conn) -> None:
    """Empty every projection and the inbox at once (in the caller's transaction)."""
    await conn.execute(f"TRUNCATE {', '.join(PROJECTIONS)}")
