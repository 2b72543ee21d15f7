"""asyncpg access to the bank schema."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from services.bank.domain import Clinician, Offer, OfferStatus
from shared.catalogue import Profession, Sector, Skill
from shared.db.types import Conn


def _clinician(row: asyncpg.Record) -> Clinician:
    return Clinician(
        id=row["id"],
        display_name=row["display_name"],
        profession=Profession(row["profession"]),
        home_sector=Sector(row["home_sector"]),
        region=row["region"],
        skills=frozenset(Skill(k) for k in row["skills"]),
    )


async def insert_clinician(conn: Conn, clinician: Clinician, token_hash: str) -> None:
    """Register a clinician with the hash of their sign-in token."""
    await conn.execute(
        "INSERT INTO clinicians"
        " (id, display_name, profession, home_sector, region, token_hash, skills)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        clinician.id,
        clinician.display_name,
        clinician.profession.value,
        clinician.home_sector.value,
        clinician.region,
        token_hash,
        sorted(k.value for k in clinician.skills),
    )


async def clinician_by_token_hash(conn: Conn | asyncpg.Pool, token_hash: str) -> Clinician | None:
    """The clinician signed in with this token, if any."""
    row = await conn.fetchrow("SELECT * FROM clinicians WHERE token_hash = $1", token_hash)
    return _clinician(row) if row else None


async def clinician_exists(conn: Conn, clinician_id: uuid.UUID) -> bool:
    """Whether the bank knows this clinician."""
    return bool(await conn.fetchval("SELECT true FROM clinicians WHERE id = $1", clinician_id))


async def insert_availability(
    conn: Conn,
    *,
    availability_id: uuid.UUID,
    clinician_id: uuid.UUID,
    starts_at: datetime,
    ends_at: datetime,
) -> None:
    """Store a window; ExclusionViolationError if it overlaps one of theirs."""
    await conn.execute(
        "INSERT INTO availability (id, clinician_id, starts_at, ends_at) VALUES ($1, $2, $3, $4)",
        availability_id,
        clinician_id,
        starts_at,
        ends_at,
    )


async def availability_of(conn: asyncpg.Pool, clinician_id: uuid.UUID) -> list[asyncpg.Record]:
    """A clinician's windows, soonest first."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT id, starts_at, ends_at FROM availability WHERE clinician_id = $1"
        " ORDER BY starts_at",
        clinician_id,
    )
    return rows


async def insert_offer(conn: Conn, values: dict[str, object]) -> None:
    """Store an offer made by matching; a redelivered one is ignored."""
    await conn.execute(
        "INSERT INTO offers (id, session_id, clinician_id, organisation, sector, role,"
        " starts_at, ends_at, expires_at, reasons)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
        values["id"],
        values["session_id"],
        values["clinician_id"],
        values["organisation"],
        values["sector"],
        values["role"],
        values["starts_at"],
        values["ends_at"],
        values["expires_at"],
        values["reasons"],
    )


async def offer_for_update(conn: Conn, offer_id: uuid.UUID) -> Offer | None:
    """The offer, locked so that two acceptances can't both pass the checks."""
    row = await conn.fetchrow("SELECT * FROM offers WHERE id = $1 FOR UPDATE", offer_id)
    if row is None:
        return None
    return Offer(
        id=row["id"],
        session_id=row["session_id"],
        clinician_id=row["clinician_id"],
        status=OfferStatus(row["status"]),
        expires_at=row["expires_at"],
    )


async def set_offer_status(
    conn: Conn, offer_id: uuid.UUID, status: OfferStatus, *, refusal: str | None = None
) -> None:
    """Move an offer on (with matching's reason when it refused the acceptance)."""
    await conn.execute(
        "UPDATE offers SET status = $2, responded_at = COALESCE(responded_at, now()),"
        " refusal = COALESCE($3, refusal) WHERE id = $1",
        offer_id,
        status.value,
        refusal,
    )


async def offer_of(
    conn: asyncpg.Pool, clinician_id: uuid.UUID, offer_id: uuid.UUID
) -> asyncpg.Record | None:
    """One of the clinician's offers, or None (someone else's looks the same as none)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM offers WHERE id = $1 AND clinician_id = $2", offer_id, clinician_id
    )
    return row


async def offers_of(
    conn: asyncpg.Pool, clinician_id: uuid.UUID, statuses: list[str]
) -> list[asyncpg.Record]:
    """A clinician's offers in the given statuses, soonest first."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM offers WHERE clinician_id = $1 AND status = ANY($2::text[])"
        " ORDER BY starts_at",
        clinician_id,
        statuses,
    )
    return rows


async def close_session_offers(
    conn: Conn, session_id: uuid.UUID, *, booked_to: OfferStatus, note: str
) -> None:
    """The organisation changed or cancelled a session: withdraw open offers, and move
    any booking to ``booked_to``, each with ``note`` to show the clinician."""
    await conn.execute(
        "UPDATE offers SET status = CASE WHEN status IN ('accepted', 'booked') THEN $2"
        " ELSE 'withdrawn' END, refusal = $3"
        " WHERE session_id = $1 AND status IN ('offered', 'accepted', 'booked')",
        session_id,
        booked_to.value,
        note,
    )
