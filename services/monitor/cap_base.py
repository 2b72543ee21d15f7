"""Each sector's drain cap in hours, where the monitor can know it honestly.

The cap is a percentage of the hours the sector *offered* over matching's rolling
window; those hours are matching's own figure (from clinicians' availability, capped
per week), and matching publishes them only inside ``sector.drain_alert`` and
``sector.drain_cleared``. The latest of either is kept per sector (``drain_cap_bases``),
with when matching counted it: the cap in hours is the region's cap percentage of that
base, shown with its date, and left out for a sector matching has not said it of.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.monitor.domain import SectorDrain
from shared.db.types import Conn


@dataclass(frozen=True, slots=True)
class CapBase:
    """The hours a sector offered over matching's window, as matching last said them."""

    region: str
    sector: str
    offered_hours: float
    window_days: int
    counted_at: datetime


async def save(conn: Conn, *, event_id: uuid.UUID, base: CapBase) -> None:
    """Keep ``base`` as its sector's latest unless a later one is kept (ties go to the
    larger event id): the same whatever order alerts and clearings are read in."""
    await conn.execute(
        "INSERT INTO drain_cap_bases (region, sector, event_id, offered_hours, window_days,"
        " counted_at) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (region, sector) DO UPDATE SET event_id = EXCLUDED.event_id,"
        " offered_hours = EXCLUDED.offered_hours, window_days = EXCLUDED.window_days,"
        " counted_at = EXCLUDED.counted_at"
        " WHERE (drain_cap_bases.counted_at, drain_cap_bases.event_id)"
        " < (EXCLUDED.counted_at, EXCLUDED.event_id)",
        base.region,
        base.sector,
        event_id,
        base.offered_hours,
        base.window_days,
        base.counted_at,
    )


async def bases(conn: Conn | asyncpg.Pool, *, region: str | None = None) -> list[CapBase]:
    """The latest base of every sector matching has said one of (of ``region`` only)."""
    rows = await conn.fetch(
        "SELECT region, sector, offered_hours, window_days, counted_at FROM drain_cap_bases"
        " WHERE $1::text IS NULL OR region = $1 ORDER BY region, sector",
        region,
    )
    return [
        CapBase(r["region"], r["sector"], r["offered_hours"], r["window_days"], r["counted_at"])
        for r in rows
    ]


def cap_json(sector: SectorDrain, base: CapBase | None, *, now: datetime) -> dict[str, Any]:
    """The sector's cap in hours (its cap percentage of the base), the hours it may still
    lose (negative: past its cap), and the base with when matching counted it; nulls
    where matching has not said the base, or said it a whole window ago or more (its
    window then shares nothing with today's)."""
    if base is None or base.counted_at <= now - timedelta(days=base.window_days):
        return {"cap_hours": None, "headroom_hours": None, "cap_base": None}
    cap = round(sector.cap_pct / 100 * base.offered_hours, 2) + 0.0
    return {
        "cap_hours": cap,
        "headroom_hours": round(cap - sector.net_out_hours, 2) + 0.0,
        "cap_base": {
            "offered_hours": base.offered_hours,
            "window_days": base.window_days,
            "counted_at": base.counted_at.isoformat(),
        },
    }
