"""asyncpg access to the vacancies schema."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from services.vacancies.domain import NewSession, Organisation, SessionStatus
from shared.catalogue import Sector
from shared.db.types import Conn


def _organisation(row: asyncpg.Record) -> Organisation:
    return Organisation(
        ods_code=row["ods_code"],
        name=row["name"],
        sector=Sector(row["sector"]),
        region=row["region"],
        latitude=row["latitude"],
        longitude=row["longitude"],
        active=row["active"],
    )


async def organisation_with_secret(
    conn: Conn | asyncpg.Pool, ods_code: str
) -> tuple[Organisation, str] | None:
    """The organisation and its web hook secret, or None if unknown."""
    row = await conn.fetchrow("SELECT * FROM organisations WHERE ods_code = $1", ods_code)
    if row is None:
        return None
    return _organisation(row), row["webhook_secret"]


async def insert_organisation(conn: Conn, organisation: Organisation, *, secret: str) -> None:
    """Register a new organisation; UniqueViolationError if its ODS code is taken."""
    await conn.execute(
        "INSERT INTO organisations"
        " (ods_code, name, sector, region, latitude, longitude, webhook_secret, active)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        organisation.ods_code,
        organisation.name,
        organisation.sector.value,
        organisation.region,
        organisation.latitude,
        organisation.longitude,
        secret,
        organisation.active,
    )


async def claim_receipt(
    conn: Conn, *, organisation: str, webhook_id: str
) -> tuple[int, dict[str, Any]] | None:
    """Reserve ``webhook_id``; return the stored answer if it was seen before.

    A concurrent duplicate waits on the primary key until the first commits, then
    sees its answer, so a delivery is never processed twice.
    """
    inserted = await conn.fetchval(
        "INSERT INTO webhook_receipts (organisation, webhook_id, status_code, response)"
        " VALUES ($1, $2, 0, '{}'::jsonb) ON CONFLICT DO NOTHING RETURNING true",
        organisation,
        webhook_id,
    )
    if inserted:
        return None
    row = await conn.fetchrow(
        "SELECT status_code, response FROM webhook_receipts"
        " WHERE organisation = $1 AND webhook_id = $2",
        organisation,
        webhook_id,
    )
    assert row is not None
    return row["status_code"], row["response"]


async def save_receipt(
    conn: Conn,
    *,
    organisation: str,
    webhook_id: str,
    status_code: int,
    response: dict[str, Any],
) -> None:
    """Store the answer given to ``webhook_id``."""
    await conn.execute(
        "UPDATE webhook_receipts SET status_code = $3, response = $4"
        " WHERE organisation = $1 AND webhook_id = $2",
        organisation,
        webhook_id,
        status_code,
        response,
    )


async def session_by_external_id(
    conn: Conn, *, organisation: str, external_id: str
) -> asyncpg.Record | None:
    """The organisation's session with that external id, if any."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM sessions WHERE organisation = $1 AND external_id = $2",
        organisation,
        external_id,
    )
    return row


async def insert_session(
    conn: Conn, *, session_id: uuid.UUID, organisation: str, session: NewSession
) -> None:
    """Store a newly posted session as open."""
    await conn.execute(
        "INSERT INTO sessions (id, organisation, external_id, profession, starts_at, ends_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        session_id,
        organisation,
        session.external_id,
        session.profession.value,
        session.starts_at,
        session.ends_at,
    )


async def session_status(conn: Conn, session_id: uuid.UUID) -> SessionStatus | None:
    """Current status of a session, locked for update; None if unknown."""
    value = await conn.fetchval("SELECT status FROM sessions WHERE id = $1 FOR UPDATE", session_id)
    return SessionStatus(value) if value else None


async def set_status(
    conn: Conn,
    session_id: uuid.UUID,
    status: SessionStatus,
    clinician_id: uuid.UUID | None = None,
) -> None:
    """Move a session to ``status`` (recording the clinician once filled)."""
    await conn.execute(
        "UPDATE sessions SET status = $2, clinician_id = COALESCE($3, clinician_id),"
        " updated_at = now() WHERE id = $1",
        session_id,
        status.value,
        clinician_id,
    )


async def list_sessions(conn: Conn, *, organisation: str | None = None) -> list[asyncpg.Record]:
    """Sessions, newest first, optionally of one organisation."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM sessions WHERE $1::text IS NULL OR organisation = $1"
        " ORDER BY posted_at DESC",
        organisation,
    )
    return rows
