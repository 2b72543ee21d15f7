"""asyncpg access to the monitor schema."""

from __future__ import annotations

import asyncpg

from services.monitor.domain import COUNTER_FOR_EVENT, SectorCounts
from shared.db.types import Conn


async def increment(conn: Conn, *, region: str, sector: str, counter: str) -> None:
    """Add one to ``counter`` of the region's sector."""
    if counter not in COUNTER_FOR_EVENT.values():  # the column name is interpolated below
        msg = f"unknown counter {counter!r}"
        raise ValueError(msg)
    await conn.execute(
        f"INSERT INTO sector_counts (region, sector, {counter}) VALUES ($1, $2, 1)"
        f" ON CONFLICT (region, sector) DO UPDATE SET {counter} = sector_counts.{counter} + 1",
        region,
        sector,
    )


async def all_counts(pool: asyncpg.Pool) -> list[SectorCounts]:
    """Every region's counts, by region then sector."""
    rows = await pool.fetch("SELECT * FROM sector_counts ORDER BY region, sector")
    return [
        SectorCounts(r["region"], r["sector"], r["posted"], r["offered"], r["filled"]) for r in rows
    ]
