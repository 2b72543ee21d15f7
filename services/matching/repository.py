"""asyncpg access to the matching schema."""

from __future__ import annotations

import uuid
import zlib
from datetime import datetime

import asyncpg

from services.matching.domain import Commitment, OpenSession, Proposal, Window
from shared.catalogue import Profession, Sector
from shared.db.types import Conn
from shared.events import SessionPosted


async def lock_region(conn: Conn, region: str) -> None:
    """Serialise planning of one region until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", zlib.crc32(f"plan:{region}".encode()))


async def insert_session(conn: Conn, region: str, data: SessionPosted) -> None:
    """Remember a posted session as open."""
    await conn.execute(
        "INSERT INTO sessions (id, region, organisation, sector, profession, starts_at, ends_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        data.session_id,
        region,
        data.organisation,
        data.sector.value,
        data.profession.value,
        data.starts_at,
        data.ends_at,
    )


async def insert_window(
    conn: Conn, *, region: str, availability_id: uuid.UUID, window: Window
) -> None:
    """Remember a clinician's offered window."""
    await conn.execute(
        "INSERT INTO availability"
        " (id, clinician_id, region, profession, home_sector, starts_at, ends_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        availability_id,
        window.clinician_id,
        region,
        window.profession.value,
        window.home_sector.value,
        window.starts_at,
        window.ends_at,
    )


async def sessions_needing_offer(conn: Conn, region: str, now: datetime) -> list[OpenSession]:
    """Open, future sessions of the region with no live offer."""
    rows = await conn.fetch(
        "SELECT s.* FROM sessions s WHERE s.region = $1 AND s.status = 'open'"
        " AND s.starts_at > $2 AND NOT EXISTS (SELECT 1 FROM offers o WHERE"
        " o.session_id = s.id AND (o.status = 'accepted'"
        " OR (o.status = 'offered' AND o.expires_at > $2)))",
        region,
        now,
    )
    return [
        OpenSession(
            id=r["id"],
            organisation=r["organisation"],
            sector=Sector(r["sector"]),
            profession=Profession(r["profession"]),
            starts_at=r["starts_at"],
            ends_at=r["ends_at"],
        )
        for r in rows
    ]


async def windows(conn: Conn, region: str, now: datetime) -> list[Window]:
    """The region's windows that have not ended."""
    rows = await conn.fetch(
        "SELECT * FROM availability WHERE region = $1 AND ends_at > $2", region, now
    )
    return [
        Window(
            clinician_id=r["clinician_id"],
            profession=Profession(r["profession"]),
            home_sector=Sector(r["home_sector"]),
            starts_at=r["starts_at"],
            ends_at=r["ends_at"],
        )
        for r in rows
    ]


async def commitments(conn: Conn, region: str, now: datetime) -> list[Commitment]:
    """Bookings and live or accepted offers: time clinicians can't be offered again."""
    rows = await conn.fetch(
        "SELECT clinician_id, starts_at, ends_at FROM bookings WHERE ends_at > $2"
        " UNION ALL SELECT clinician_id, starts_at, ends_at FROM offers WHERE region = $1"
        " AND (status = 'accepted' OR (status = 'offered' AND expires_at > $2))",
        region,
        now,
    )
    return [Commitment(r["clinician_id"], r["starts_at"], r["ends_at"]) for r in rows]


async def tried_pairs(conn: Conn, region: str) -> frozenset[tuple[uuid.UUID, uuid.UUID]]:
    """(session, clinician) pairs already offered once, live or not."""
    rows = await conn.fetch(
        "SELECT o.session_id, o.clinician_id FROM offers o JOIN sessions s ON s.id = o.session_id"
        " WHERE o.region = $1 AND s.status = 'open'",
        region,
    )
    return frozenset((r["session_id"], r["clinician_id"]) for r in rows)


async def insert_offer(
    conn: Conn,
    *,
    offer_id: uuid.UUID,
    region: str,
    proposal: Proposal,
    expires_at: datetime,
) -> None:
    """Record an offer about to be published."""
    await conn.execute(
        "INSERT INTO offers (id, session_id, clinician_id, clinician_home_sector, region,"
        " starts_at, ends_at, expires_at, reasons) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        offer_id,
        proposal.session.id,
        proposal.clinician_id,
        proposal.home_sector.value,
        region,
        proposal.session.starts_at,
        proposal.session.ends_at,
        expires_at,
        list(proposal.reasons),
    )


async def offer_for_update(conn: Conn, offer_id: uuid.UUID) -> asyncpg.Record | None:
    """An offer joined with its session, both locked."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT o.*, s.status AS session_status, s.organisation, s.sector"
        " FROM offers o JOIN sessions s ON s.id = o.session_id WHERE o.id = $1"
        " FOR UPDATE OF o, s",
        offer_id,
    )
    return row


async def set_offer_status(conn: Conn, offer_id: uuid.UUID, status: str) -> None:
    """Move an offer on."""
    await conn.execute("UPDATE offers SET status = $2 WHERE id = $1", offer_id, status)


async def book(conn: Conn, offer: asyncpg.Record) -> None:
    """Book the offer's clinician; the constraints refuse a double booking."""
    await conn.execute(
        "INSERT INTO bookings (session_id, offer_id, clinician_id, starts_at, ends_at)"
        " VALUES ($1, $2, $3, $4, $5)",
        offer["session_id"],
        offer["id"],
        offer["clinician_id"],
        offer["starts_at"],
        offer["ends_at"],
    )
    await conn.execute("UPDATE sessions SET status = 'filled' WHERE id = $1", offer["session_id"])


async def regions_with_open_sessions(conn: asyncpg.Pool, now: datetime) -> list[str]:
    """Regions that have something left to plan."""
    rows = await conn.fetch(
        "SELECT DISTINCT region FROM sessions WHERE status = 'open' AND starts_at > $1", now
    )
    return [r["region"] for r in rows]
