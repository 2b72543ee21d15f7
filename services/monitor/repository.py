"""asyncpg access to the monitor schema."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

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
from services.monitor.summary import ALL_SECTORS, DayRow, FillTimes, SectorPeriod
from services.monitor.tail import TailLine
from shared.db.types import Conn

# The activity list shows up to 50; the live tail is filtered by sector and kind, so it
# keeps more for a filter to find. The table stays a few hundred rows however long we run.
RECENT_KEPT = 50
TAIL_KEPT = 500


async def add_recent(conn: Conn, events: list[tuple[uuid.UUID, Activity]]) -> None:
    """Add (event id, activity) pairs to the activity list (``add_tail``)."""
    await add_tail(
        conn,
        [
            (event_id, TailLine(f"session.{a.stage.value}", a.region, a.sector, a.occurred_at))
            for event_id, a in events
        ],
    )


async def add_tail(conn: Conn, lines: Sequence[tuple[uuid.UUID, TailLine]]) -> None:
    """Add (event id, line) pairs to the live tail (and the activity list, for posted,
    offered and filled) and drop all but the newest ``TAIL_KEPT``; an event already
    listed is listed once."""
    if not lines:
        return
    # Trimmed only once the list has doubled: a DELETE of the oldest on every event cost
    # round trips that busy regions felt (the intake benchmark). One statement: the trim
    # sees the list as it was before these events, which is near enough.
    await conn.execute(
        "WITH added AS (INSERT INTO recent_events (event_id, stage, event_type, region,"
        " sector, to_sector, detail, occurred_at) SELECT * FROM unnest($1::uuid[],"
        " $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
        " $8::timestamptz[]) ON CONFLICT DO NOTHING)"
        " DELETE FROM recent_events WHERE (SELECT count(*) FROM recent_events) > $9 * 2"
        " AND event_id NOT IN"
        " (SELECT event_id FROM recent_events ORDER BY occurred_at DESC LIMIT $9)",
        [event_id for event_id, _ in lines],
        [line.stage.value if line.stage else None for _, line in lines],
        [line.event_type for _, line in lines],
        [line.region for _, line in lines],
        [line.sector for _, line in lines],
        [line.to_sector for _, line in lines],
        [line.detail for _, line in lines],
        [line.occurred_at for _, line in lines],
        TAIL_KEPT,
    )


async def tail(
    conn: Conn | asyncpg.Pool,
    *,
    limit: int,
    region: str | None = None,
    types: Sequence[str] = (),
    sector: str | None = None,
) -> list[TailLine]:
    """The newest ``limit`` lines of the tail, newest first: of ``region`` (every region
    if None), of the event ``types`` (all if none), touching ``sector`` (from or to)."""
    rows = await conn.fetch(
        "SELECT event_type, region, sector, occurred_at, to_sector, detail FROM recent_events"
        " WHERE ($2::text IS NULL OR region = $2)"
        " AND (cardinality($3::text[]) = 0 OR event_type = ANY($3::text[]))"
        " AND ($4::text IS NULL OR sector = $4 OR to_sector = $4)"
        " ORDER BY occurred_at DESC, event_id LIMIT $1",
        limit,
        region,
        list(types),
        sector,
    )
    return [
        TailLine(
            r["event_type"],
            r["region"],
            r["sector"],
            r["occurred_at"],
            r["to_sector"],
            r["detail"],
        )
        for r in rows
    ]


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
        " WHERE stage IS NOT NULL AND ($2::text IS NULL OR region = $2)"
        " ORDER BY occurred_at DESC, event_id LIMIT $1",
        limit,
        region,
    )
    return [Activity(Stage(r["stage"]), r["region"], r["sector"], r["occurred_at"]) for r in rows]


async def regions_with_data(conn: Conn | asyncpg.Pool) -> list[str]:
    """Every region the monitor holds anything of (sessions, moves, alerts or a policy),
    in code order: the regions a national viewer is offered first."""
    rows = await conn.fetch(
        "SELECT region FROM session_facts WHERE region IS NOT NULL"
        " UNION SELECT region FROM sector_counts UNION SELECT region FROM drain_moves"
        " UNION SELECT region FROM drain_alerts UNION SELECT region FROM drain_policies"
        " ORDER BY region"
    )
    return [r["region"] for r in rows]


async def known_regions(conn: Conn | asyncpg.Pool) -> list[str]:
    """Every region the monitor has counted a session of, in code order."""
    rows = await conn.fetch(
        "SELECT region FROM sector_counts UNION"
        " SELECT region FROM session_facts WHERE region IS NOT NULL ORDER BY region"
    )
    return [r["region"] for r in rows]


def _fill_times(row: asyncpg.Record) -> FillTimes:
    return FillTimes(row["timed"], row["median_minutes"], row["p90_minutes"])


async def period_sectors(
    conn: Conn | asyncpg.Pool, *, regions: list[str], since: datetime, until: datetime
) -> tuple[list[SectorPeriod], dict[str, FillTimes]]:
    """Per region and sector, the figures of the sessions that start in [since, until)
    (their latest start) and the hours of those filled now, with each region's fill
    times over all its sectors. A session vacancies has said nothing of yet has no start
    to place it by and is left out (it is not posted either).

    Time to fill: percentiles of each filled session's ``fill_minutes`` (the domain's
    ``Timeline.minutes_to_fill``); null for a session not filled now, which
    ``percentile_cont`` and ``count`` leave out.
    """
    rows = await conn.fetch(
        "SELECT region, sector, grouping(sector) = 1 AS total,"
        " sum(posted) AS posted, sum(filled) AS filled,"
        " sum(cancelled) AS cancelled, sum(unfilled) AS unfilled,"
        " sum(late_cancelled) AS late_cancelled, sum(late_given_up) AS late_given_up,"
        " coalesce(sum(extract(epoch FROM ends_at - starts_at) / 3600)"
        " FILTER (WHERE filled > 0), 0)::float8 AS hours_filled,"
        " count(fill_minutes) AS timed,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY fill_minutes) AS median_minutes,"
        " percentile_cont(0.9) WITHIN GROUP (ORDER BY fill_minutes) AS p90_minutes"
        " FROM session_facts"
        " WHERE region = ANY($1::text[]) AND starts_at >= $2 AND starts_at < $3"
        " GROUP BY GROUPING SETS ((region, sector), (region)) ORDER BY region, sector",
        regions,
        since,
        until,
    )
    sectors = [
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
            _fill_times(r),
        )
        for r in rows
        if not r["total"]
    ]
    return sectors, {r["region"]: _fill_times(r) for r in rows if r["total"]}


async def daily(
    conn: Conn | asyncpg.Pool, *, regions: list[str], since: datetime, until: datetime
) -> list[DayRow]:
    """Per region, local day of the start (England) and sector, and per region and day
    over all sectors: sessions posted, filled now and cancelled, and the median minutes
    to fill the filled ones (``period_sectors`` says how)."""
    rows = await conn.fetch(
        "SELECT region, (starts_at AT TIME ZONE 'Europe/London')::date AS day, sector,"
        " grouping(sector) = 1 AS total, sum(posted) AS posted, sum(filled) AS filled,"
        " sum(cancelled) AS cancelled,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY fill_minutes) AS median_minutes"
        " FROM session_facts"
        " WHERE region = ANY($1::text[]) AND starts_at >= $2 AND starts_at < $3"
        " GROUP BY GROUPING SETS ((region, day, sector), (region, day))"
        " ORDER BY region, day, sector",
        regions,
        since,
        until,
    )
    return [
        DayRow(
            r["region"],
            r["day"],
            ALL_SECTORS if r["total"] else r["sector"],
            r["posted"],
            r["filled"],
            r["cancelled"],
            r["median_minutes"],
        )
        for r in rows
    ]


async def open_sessions(
    conn: Conn | asyncpg.Pool, *, regions: list[str], since: datetime, until: datetime
) -> list[asyncpg.Record]:
    """Sessions starting in [since, until) that are still open (posted, not filled now,
    not cancelled, not started unfilled): id, region, sector and facts, by start."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT session_id, region, sector, facts FROM session_facts"
        " WHERE region = ANY($1::text[]) AND starts_at >= $2 AND starts_at < $3"
        " AND posted > 0 AND filled = 0 AND cancelled = 0 AND unfilled = 0"
        " ORDER BY starts_at, session_id",
        regions,
        since,
        until,
    )
    return rows


# What an export reads, a chunk at a time: a year of a busy region is a few hundred
# thousand sessions, which must not sit in memory at once.
EXPORT_CHUNK = 1000


async def export_sessions(
    pool: asyncpg.Pool, *, regions: list[str], since: datetime, until: datetime
) -> AsyncIterator[list[asyncpg.Record]]:
    """Every session starting in [since, until) with its figures, timeline and facts,
    by region, start and id, in chunks read through a cursor."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        cursor = await conn.cursor(
            "SELECT session_id, region, sector, facts, starts_at, ends_at, posted_at,"
            f" filled_at, fill_minutes, {', '.join(COUNTED)} FROM session_facts"
            " WHERE region = ANY($1::text[]) AND starts_at >= $2 AND starts_at < $3"
            " ORDER BY region, starts_at, session_id",
            regions,
            since,
            until,
        )
        while chunk := await cursor.fetch(EXPORT_CHUNK):
            yield chunk


async def export_moves(
    conn: Conn | asyncpg.Pool, *, regions: list[str], since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """Every move of matching's ledger that counts in [since, until) (its session's
    start, or the transfer), reversed ones too with when, by region and time."""
    rows = await conn.fetch(
        "SELECT move_id, region, kind, from_sector, to_sector, hours, at, reversed_at"
        " FROM drain_moves WHERE region = ANY($1::text[]) AND at >= $2 AND at < $3"
        " ORDER BY region, at, move_id",
        regions,
        since,
        until,
    )
    return [dict(r) for r in rows]


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
    "drain_cap_bases",
    "inbox",
)


async def truncate_projections(conn: Conn) -> None:
    """Empty every projection and the inbox at once (in the caller's transaction)."""
    await conn.execute(f"TRUNCATE {', '.join(PROJECTIONS)}")
