"""asyncpg access to the vacancies schema."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.vacancies import secret_box
from services.vacancies.domain import NewSession, Organisation, SessionStatus, StoredSession
from shared.catalogue import Role, Sector, Skill, Urgency
from shared.db.types import Conn

Db = Conn | asyncpg.Pool


def _organisation(row: asyncpg.Record) -> Organisation:
    return Organisation(
        ods_code=row["ods_code"],
        name=row["name"],
        sector=Sector(row["sector"]),
        region=row["region"],
        latitude=row["latitude"],
        longitude=row["longitude"],
        active=row["active"],
        pcn=row["pcn"],
        callback_url=row["callback_url"],
        imd_decile=row["imd_decile"],
        place=row["place"],
    )


async def organisation(conn: Db, ods_code: str) -> Organisation | None:
    """The organisation, or None if unknown."""
    row = await conn.fetchrow("SELECT * FROM organisations WHERE ods_code = $1", ods_code)
    return _organisation(row) if row else None


async def organisation_with_secrets(
    conn: Db, ods_code: str, *, now: datetime
) -> tuple[Organisation, list[str]] | None:
    """The organisation and every signing secret valid now (two during a rotation),
    decrypted with this process's keys (SecretKeyError if they can't be)."""
    row = await conn.fetchrow("SELECT * FROM organisations WHERE ods_code = $1", ods_code)
    if row is None:
        return None
    secrets = [opened_secret(row["webhook_secret_sealed"], ods_code)]
    if (
        row["previous_secret_sealed"]
        and row["previous_secret_until"]
        and row["previous_secret_until"] > now
    ):
        secrets.append(opened_secret(row["previous_secret_sealed"], ods_code))
    return _organisation(row), secrets


def opened_secret(sealed: str | None, ods_code: str) -> str:
    """A stored signing secret decrypted with this process's keys; SecretKeyError if
    they can't, or if it is not sealed yet."""
    if sealed is None:
        # Only between the upgrade's migration and the start-up step that seals the
        # plaintext it left: the sender retries a 5xx, and by then it is sealed.
        msg = f"the signing secret of {ods_code} is not sealed yet (the service seals it at start)"
        raise secret_box.SecretKeyError(msg)
    return secret_box.installed().open(sealed)


async def organisation_by_api_key(conn: Db, api_key_hash: str) -> Organisation | None:
    """The organisation holding this API key, if any."""
    row = await conn.fetchrow("SELECT * FROM organisations WHERE api_key_hash = $1", api_key_hash)
    return _organisation(row) if row else None


async def insert_organisation(
    conn: Conn, organisation: Organisation, *, secret: str, api_key_hash: str
) -> None:
    """Register a new organisation, its secret sealed with this process's first key;
    UniqueViolationError if its ODS code is taken."""
    await conn.execute(
        "INSERT INTO organisations (ods_code, name, sector, region, latitude, longitude,"
        " webhook_secret_sealed, active, pcn, callback_url, api_key_hash, imd_decile, place)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        organisation.ods_code,
        organisation.name,
        organisation.sector.value,
        organisation.region,
        organisation.latitude,
        organisation.longitude,
        secret_box.installed().seal(secret),
        organisation.active,
        organisation.pcn,
        organisation.callback_url,
        api_key_hash,
        organisation.imd_decile,
        organisation.place,
    )


async def update_organisation(conn: Conn, ods_code: str, **columns: Any) -> bool:
    """Set the given columns (fixed names from admin code); False if no such organisation."""
    # Signing secrets go through rotate_secret and set_sealed, which seal them.
    allowed = {"active", "callback_url", "api_key_hash"}
    if not columns or set(columns) - allowed:
        msg = f"cannot update {sorted(set(columns) - allowed)}"
        raise ValueError(msg)
    names = list(columns)
    sets = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(names))
    result: str = await conn.execute(
        f"UPDATE organisations SET {sets} WHERE ods_code = $1",
        ods_code,
        *(columns[n] for n in names),
    )
    return result.endswith(" 1")


async def rotate_secret(
    conn: Conn, ods_code: str, secret: str, *, previous_until: datetime | None
) -> bool:
    """Make ``secret`` (sealed here) the organisation's signing secret, keeping the current
    one valid until ``previous_until`` (None: not at all); False if no such organisation."""
    # The current secret moves over still sealed: rotating never needs it decrypted.
    # Without a grace period nothing is kept (nor needs the key it was sealed with).
    result: str = await conn.execute(
        "UPDATE organisations SET previous_secret_sealed = CASE WHEN $3::timestamptz"
        " IS NOT NULL THEN webhook_secret_sealed END, webhook_secret_sealed = $2,"
        " previous_secret_until = $3 WHERE ods_code = $1",
        ods_code,
        secret_box.installed().seal(secret),
        previous_until,
    )
    return result.endswith(" 1")


async def secrets_in_plaintext(conn: Conn) -> list[asyncpg.Record]:
    """Organisations whose secrets an upgrade left in the legacy plaintext columns, locked."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT ods_code, webhook_secret_sealed, previous_secret_sealed,"
        " legacy_webhook_secret, legacy_previous_secret FROM organisations"
        " WHERE legacy_webhook_secret IS NOT NULL OR legacy_previous_secret IS NOT NULL"
        " ORDER BY ods_code FOR UPDATE"
    )
    return rows


async def sealed_secrets(conn: Db, *, lock: bool) -> list[asyncpg.Record]:
    """Every organisation's sealed secrets, the previous one only while it is still valid
    (``lock``: for update, to re-seal them)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT ods_code, webhook_secret_sealed, CASE WHEN previous_secret_until > now()"
        " THEN previous_secret_sealed END AS previous_secret_sealed FROM organisations"
        " WHERE webhook_secret_sealed IS NOT NULL ORDER BY ods_code"
        + (" FOR UPDATE" if lock else "")
    )
    return rows


async def newest_sealed_secret(conn: Conn) -> str | None:
    """The sealed secret of the organisation registered last, if any."""
    value: str | None = await conn.fetchval(
        "SELECT webhook_secret_sealed FROM organisations WHERE webhook_secret_sealed IS NOT NULL"
        " ORDER BY created_at DESC LIMIT 1"
    )
    return value


async def set_sealed(conn: Conn, secrets: list[tuple[str, str, str | None]]) -> None:
    """Store (ODS code, sealed secret, sealed previous secret or None) for each
    organisation, and empty its legacy plaintext columns."""
    await conn.executemany(
        "UPDATE organisations SET webhook_secret_sealed = $2, previous_secret_sealed = $3,"
        " legacy_webhook_secret = NULL, legacy_previous_secret = NULL WHERE ods_code = $1",
        secrets,
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
    conn: Conn, *, organisation: str, webhook_id: str, status_code: int, response: dict[str, Any]
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


def stored_session(row: asyncpg.Record) -> StoredSession:
    """A sessions row as the domain sees it."""
    return StoredSession(
        id=row["id"],
        organisation=row["organisation"],
        details=NewSession(
            external_id=row["external_id"],
            role=Role(row["role"]),
            starts_at=row["starts_at"],
            ends_at=row["ends_at"],
            site=row["site"],
            skills=frozenset(Skill(k) for k in row["skills"]),
            rate_pence_per_hour=row["rate_pence_per_hour"],
            urgency=Urgency(row["urgency"]),
            notes=row["notes"],
        ),
        status=SessionStatus(row["status"]),
        clinician_id=row["clinician_id"],
    )


async def session_by_external_id(
    conn: Conn, *, organisation: str, external_id: str
) -> StoredSession | None:
    """The organisation's session with that external id, locked for update."""
    row = await conn.fetchrow(
        "SELECT * FROM sessions WHERE organisation = $1 AND external_id = $2 FOR UPDATE",
        organisation,
        external_id,
    )
    return stored_session(row) if row else None


async def session_by_id(conn: Conn, session_id: uuid.UUID) -> StoredSession | None:
    """A session by Fairshare's id, locked for update."""
    row = await conn.fetchrow("SELECT * FROM sessions WHERE id = $1 FOR UPDATE", session_id)
    return stored_session(row) if row else None


async def sessions_by_ids(
    conn: Conn, session_ids: list[uuid.UUID]
) -> dict[uuid.UUID, StoredSession]:
    """Sessions by Fairshare's id, locked for update in id order; unknown ids left out."""
    rows = await conn.fetch(
        "SELECT * FROM sessions WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
        session_ids,
    )
    return {row["id"]: stored_session(row) for row in rows}


async def insert_session(conn: Conn, session: StoredSession) -> bool:
    """Store a newly posted session; False if its external id is already used."""
    d = session.details
    inserted = await conn.fetchval(
        "INSERT INTO sessions (id, organisation, external_id, role, starts_at, ends_at, site,"
        " skills, rate_pence_per_hour, urgency, notes, status)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        " ON CONFLICT (organisation, external_id) DO NOTHING RETURNING true",
        session.id,
        session.organisation,
        d.external_id,
        d.role.value,
        d.starts_at,
        d.ends_at,
        d.site,
        sorted(k.value for k in d.skills),
        d.rate_pence_per_hour,
        d.urgency.value,
        d.notes,
        session.status.value,
    )
    return bool(inserted)


async def save_session(conn: Conn, session: StoredSession) -> None:
    """Write back a session's details, status and clinician."""
    d = session.details
    await conn.execute(
        "UPDATE sessions SET role = $2, starts_at = $3, ends_at = $4, site = $5, skills = $6,"
        " rate_pence_per_hour = $7, urgency = $8, notes = $9, status = $10, clinician_id = $11,"
        # Nobody booked, no booked offer.
        " offer_id = CASE WHEN $11::uuid IS NULL THEN NULL ELSE offer_id END,"
        " updated_at = now() WHERE id = $1",
        session.id,
        d.role.value,
        d.starts_at,
        d.ends_at,
        d.site,
        sorted(k.value for k in d.skills),
        d.rate_pence_per_hour,
        d.urgency.value,
        d.notes,
        session.status.value,
        session.clinician_id,
    )


async def prune_receipts(pool: asyncpg.Pool, *, older_than: timedelta) -> int:
    """Delete web hook receipts older than ``older_than``; how many went."""
    result: str = await pool.execute(
        "DELETE FROM webhook_receipts WHERE received_at < now() - $1::interval", older_than
    )
    return int(result.rsplit(maxsplit=1)[-1])


async def set_booked_offer(conn: Conn, session_id: uuid.UUID, offer_id: uuid.UUID) -> None:
    """Record the accepted offer the session's booking came from."""
    await conn.execute("UPDATE sessions SET offer_id = $2 WHERE id = $1", session_id, offer_id)


async def booked_offer(conn: Conn, session_id: uuid.UUID) -> uuid.UUID | None:
    """The accepted offer the session's booking came from, if booked."""
    offer_id: uuid.UUID | None = await conn.fetchval(
        "SELECT offer_id FROM sessions WHERE id = $1", session_id
    )
    return offer_id


async def remember_cancelled_offer(conn: Conn, offer_id: uuid.UUID, session_id: uuid.UUID) -> None:
    """The clinician gave up the booking this offer made: its fill, if late, books nobody."""
    await conn.execute(
        "INSERT INTO cancelled_offers (offer_id, session_id) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING",
        offer_id,
        session_id,
    )


async def offer_was_cancelled(conn: Conn, offer_id: uuid.UUID) -> bool:
    """Whether the clinician gave up the booking this offer made."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM cancelled_offers WHERE offer_id = $1)", offer_id
    )
    return found


async def mark_cancelled(
    conn: Conn, session_id: uuid.UUID, *, reason: str | None, late: bool
) -> None:
    """Record a cancellation, and whether it was late."""
    await conn.execute(
        "UPDATE sessions SET status = 'cancelled', cancel_reason = $2, cancelled_late = $3,"
        " cancelled_at = now(), updated_at = now() WHERE id = $1",
        session_id,
        reason,
        late,
    )


async def list_sessions(
    conn: Db,
    *,
    organisation: str | None = None,
    status: str | None = None,
    starts_from: datetime | None = None,
    starts_before: datetime | None = None,
    limit: int = 500,
) -> list[asyncpg.Record]:
    """Sessions by start, filtered by organisation, status and start range."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM sessions WHERE ($1::text IS NULL OR organisation = $1)"
        " AND ($2::text IS NULL OR status = $2)"
        " AND ($3::timestamptz IS NULL OR starts_at >= $3)"
        " AND ($4::timestamptz IS NULL OR starts_at < $4)"
        " ORDER BY starts_at, id LIMIT $5",
        organisation,
        status,
        starts_from,
        starts_before,
        limit,
    )
    return rows


async def due_unfilled(conn: Conn, *, now: datetime, limit: int = 200) -> list[StoredSession]:
    """Open or offered sessions whose start has passed, locked, skipping busy rows."""
    rows = await conn.fetch(
        "SELECT * FROM sessions WHERE status IN ('open', 'offered') AND starts_at <= $1"
        " ORDER BY starts_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )
    return [stored_session(r) for r in rows]


async def organisations(conn: Conn, codes: list[str]) -> dict[str, Organisation]:
    """Several organisations at once, by ODS code."""
    rows = await conn.fetch("SELECT * FROM organisations WHERE ods_code = ANY($1::text[])", codes)
    return {r["ods_code"]: _organisation(r) for r in rows}


async def sessions_by_external_ids(
    conn: Conn, *, organisation: str, external_ids: list[str]
) -> dict[str, StoredSession]:
    """The organisation's sessions with these external ids, locked for update."""
    rows = await conn.fetch(
        "SELECT * FROM sessions WHERE organisation = $1 AND external_id = ANY($2::text[])"
        " FOR UPDATE",
        organisation,
        external_ids,
    )
    return {r["external_id"]: stored_session(r) for r in rows}


async def insert_sessions(conn: Conn, sessions: list[StoredSession]) -> set[uuid.UUID]:
    """Store many new sessions in one statement; return the ids actually inserted.

    A session whose external id another request stored meanwhile is skipped, not an error.
    """
    rows = await conn.fetch(
        "INSERT INTO sessions (id, organisation, external_id, role, starts_at, ends_at, site,"
        " skills, rate_pence_per_hour, urgency, notes, status)"
        " SELECT i, o, e, r, s, f, t, COALESCE(string_to_array(k, ','), '{}'), p, u, n, 'open'"
        " FROM unnest("
        "$1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[],"
        " $7::text[], $8::text[], $9::int[], $10::text[], $11::text[])"
        " AS x(i, o, e, r, s, f, t, k, p, u, n)"
        " ON CONFLICT (organisation, external_id) DO NOTHING RETURNING id",
        [x.id for x in sessions],
        [x.organisation for x in sessions],
        [x.details.external_id for x in sessions],
        [x.details.role.value for x in sessions],
        [x.details.starts_at for x in sessions],
        [x.details.ends_at for x in sessions],
        [x.details.site for x in sessions],
        [",".join(sorted(k.value for k in x.details.skills)) or None for x in sessions],
        [x.details.rate_pence_per_hour for x in sessions],
        [x.details.urgency.value for x in sessions],
        [x.details.notes for x in sessions],
    )
    return {r["id"] for r in rows}


async def set_unmatched(
    conn: Conn, session_id: uuid.UUID, why: str | None, detail: str | None
) -> bool:
    """Remember matching's reason for a session having no offer (None: it has one now);
    False if not ours."""
    result: str = await conn.execute(
        "UPDATE sessions SET unmatched_why = $2, unmatched_detail = $3 WHERE id = $1",
        session_id,
        why,
        detail,
    )
    return result.endswith(" 1")


async def set_unmatched_many(
    conn: Conn, reasons: dict[uuid.UUID, tuple[str | None, str | None]]
) -> None:
    """``set_unmatched`` for many sessions in one statement."""
    if not reasons:
        return
    await conn.execute(
        "UPDATE sessions s SET unmatched_why = r.why, unmatched_detail = r.detail"
        " FROM unnest($1::uuid[], $2::text[], $3::text[]) AS r(id, why, detail)"
        " WHERE s.id = r.id",
        list(reasons),
        [why for why, _ in reasons.values()],
        [detail for _, detail in reasons.values()],
    )


async def unmatched(conn: Conn, session_id: uuid.UUID) -> tuple[str | None, str | None]:
    """Matching's last reason for the session having no offer (why, in words)."""
    row = await conn.fetchrow(
        "SELECT unmatched_why, unmatched_detail FROM sessions WHERE id = $1", session_id
    )
    return (row["unmatched_why"], row["unmatched_detail"]) if row else (None, None)
