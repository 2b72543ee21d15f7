"""asyncpg access to the bank schema."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import asyncpg

from services.bank.domain import Clinician, Offer, OfferStatus
from services.bank.live import OFFERS_CHANNEL
from services.bank.patterns import Pattern
from shared.catalogue import Employment, Profession, Sector, Skill
from shared.db.types import Conn

Db = Conn | asyncpg.Pool

_PROFILE = (
    "display_name",
    "email",
    "phone",
    "register",
    "register_number",
    "home_sector",
    "home_organisation",
    "employment",
    "latitude",
    "longitude",
    "travel_km",
    "wtr_opt_out",
    "self_employed",
    "skills",
)


def _clinician(row: asyncpg.Record) -> Clinician:
    return Clinician(
        id=row["id"],
        display_name=row["display_name"],
        profession=Profession(row["profession"]),
        home_sector=Sector(row["home_sector"]),
        region=row["region"],
        skills=frozenset(Skill(k) for k in row["skills"]),
        email=row["email"],
        phone=row["phone"],
        register=row["register"],
        register_number=row["register_number"],
        home_organisation=row["home_organisation"],
        employment=Employment(row["employment"]),
        latitude=row["latitude"],
        longitude=row["longitude"],
        travel_km=row["travel_km"],
        wtr_opt_out=row["wtr_opt_out"],
        self_employed=row["self_employed"],
        late_cancellations=row["late_cancellations"],
    )


def _pattern(r: asyncpg.Record) -> Pattern:
    return Pattern(
        r["id"], r["weekday"], r["start_time"], r["end_time"], r["valid_from"], r["valid_until"]
    )


def _values(clinician: Clinician) -> list[Any]:
    return [
        clinician.display_name,
        clinician.email,
        clinician.phone,
        clinician.register,
        clinician.register_number,
        clinician.home_sector.value,
        clinician.home_organisation,
        clinician.employment.value,
        clinician.latitude,
        clinician.longitude,
        clinician.travel_km,
        clinician.wtr_opt_out,
        clinician.self_employed,
        sorted(k.value for k in clinician.skills),
    ]


async def insert_clinician(conn: Conn, clinician: Clinician) -> None:
    """Register a clinician."""
    columns = ", ".join(("id", "profession", "region", *_PROFILE))
    marks = ", ".join(f"${i}" for i in range(1, len(_PROFILE) + 4))
    await conn.execute(
        f"INSERT INTO clinicians ({columns}) VALUES ({marks})",
        clinician.id,
        clinician.profession.value,
        clinician.region,
        *_values(clinician),
    )


async def save_profile(conn: Conn, clinician: Clinician) -> None:
    """Write back what a clinician may change about themselves."""
    sets = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(_PROFILE))
    await conn.execute(
        f"UPDATE clinicians SET {sets} WHERE id = $1", clinician.id, *_values(clinician)
    )


async def clinician(conn: Db, clinician_id: uuid.UUID, *, lock: bool = False) -> Clinician | None:
    """A clinician by id (locked for update if asked)."""
    suffix = " FOR UPDATE" if lock else ""
    row = await conn.fetchrow(f"SELECT * FROM clinicians WHERE id = $1{suffix}", clinician_id)
    return _clinician(row) if row else None


async def clinician_exists(conn: Conn, clinician_id: uuid.UUID) -> bool:
    """Whether the bank knows this clinician."""
    return bool(await conn.fetchval("SELECT true FROM clinicians WHERE id = $1", clinician_id))


async def add_invite(
    conn: Conn, *, code_hash: str, clinician_id: uuid.UUID, expires_at: datetime
) -> None:
    """Record a one-time sign-in code (its hash)."""
    await conn.execute(
        "INSERT INTO invites (code_hash, clinician_id, expires_at) VALUES ($1, $2, $3)",
        code_hash,
        clinician_id,
        expires_at,
    )


async def use_invite(conn: Conn, code_hash: str, *, now: datetime) -> uuid.UUID | None:
    """Spend a code once; the clinician it names, or None if unknown, used or expired."""
    value: uuid.UUID | None = await conn.fetchval(
        "UPDATE invites SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL"
        " AND expires_at > $2 RETURNING clinician_id",
        code_hash,
        now,
    )
    return value


async def add_session(
    conn: Conn, *, token_hash: str, clinician_id: uuid.UUID, expires_at: datetime
) -> None:
    """Record a sign-in session (its token's hash)."""
    await conn.execute(
        "INSERT INTO auth_sessions (token_hash, clinician_id, expires_at) VALUES ($1, $2, $3)",
        token_hash,
        clinician_id,
        expires_at,
    )


async def clinician_by_session(conn: Db, token_hash: str, *, now: datetime) -> Clinician | None:
    """The clinician signed in with this token, if it is live."""
    row = await conn.fetchrow(
        "SELECT c.* FROM auth_sessions s JOIN clinicians c ON c.id = s.clinician_id"
        " WHERE s.token_hash = $1 AND s.expires_at > $2",
        token_hash,
        now,
    )
    return _clinician(row) if row else None


async def end_session(conn: Db, token_hash: str) -> None:
    """Sign out."""
    await conn.execute("DELETE FROM auth_sessions WHERE token_hash = $1", token_hash)


async def insert_availability(
    conn: Conn,
    *,
    availability_id: uuid.UUID,
    clinician_id: uuid.UUID,
    starts_at: datetime,
    ends_at: datetime,
    pattern_id: uuid.UUID | None = None,
) -> None:
    """Store a window; ExclusionViolationError if it overlaps a live one of theirs."""
    await conn.execute(
        "INSERT INTO availability (id, clinician_id, starts_at, ends_at, pattern_id)"
        " VALUES ($1, $2, $3, $4, $5)",
        availability_id,
        clinician_id,
        starts_at,
        ends_at,
        pattern_id,
    )


async def availability_of(
    conn: Db,
    clinician_id: uuid.UUID,
    *,
    starts_from: datetime | None = None,
    starts_before: datetime | None = None,
) -> list[asyncpg.Record]:
    """A clinician's live windows, soonest first, optionally within a range."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT id, starts_at, ends_at, pattern_id FROM availability WHERE clinician_id = $1"
        " AND withdrawn_at IS NULL AND ($2::timestamptz IS NULL OR ends_at > $2)"
        " AND ($3::timestamptz IS NULL OR starts_at < $3) ORDER BY starts_at",
        clinician_id,
        starts_from,
        starts_before,
    )
    return rows


async def window_for_update(
    conn: Conn, clinician_id: uuid.UUID, availability_id: uuid.UUID
) -> asyncpg.Record | None:
    """One of the clinician's live windows, locked."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM availability WHERE id = $1 AND clinician_id = $2"
        " AND withdrawn_at IS NULL FOR UPDATE",
        availability_id,
        clinician_id,
    )
    return row


async def withdraw_window(conn: Conn, availability_id: uuid.UUID) -> None:
    """Take a window back (kept for history)."""
    await conn.execute(
        "UPDATE availability SET withdrawn_at = now() WHERE id = $1", availability_id
    )


async def bookings_within(
    conn: Conn, clinician_id: uuid.UUID, starts_at: datetime, ends_at: datetime
) -> list[asyncpg.Record]:
    """Accepted or booked sessions of the clinician overlapping a span."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM offers WHERE clinician_id = $1 AND status IN ('accepted', 'booked')"
        " AND starts_at < $3 AND ends_at > $2 ORDER BY starts_at",
        clinician_id,
        starts_at,
        ends_at,
    )
    return rows


async def insert_pattern(conn: Conn, clinician_id: uuid.UUID, pattern: Pattern) -> None:
    """Store a weekly pattern."""
    await conn.execute(
        "INSERT INTO patterns (id, clinician_id, weekday, start_time, end_time, valid_from,"
        " valid_until) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        pattern.id,
        clinician_id,
        pattern.weekday,
        pattern.start_time,
        pattern.end_time,
        pattern.valid_from,
        pattern.valid_until,
    )


async def patterns_of(conn: Db, clinician_id: uuid.UUID) -> list[Pattern]:
    """A clinician's live weekly patterns."""
    rows = await conn.fetch(
        "SELECT * FROM patterns WHERE clinician_id = $1 AND withdrawn_at IS NULL"
        " ORDER BY weekday, start_time",
        clinician_id,
    )
    return [_pattern(r) for r in rows]


async def pattern_for_update(
    conn: Conn, clinician_id: uuid.UUID, pattern_id: uuid.UUID
) -> Pattern | None:
    """One of the clinician's live patterns, locked."""
    r = await conn.fetchrow(
        "SELECT * FROM patterns WHERE id = $1 AND clinician_id = $2 AND withdrawn_at IS NULL"
        " FOR UPDATE",
        pattern_id,
        clinician_id,
    )
    return _pattern(r) if r else None


async def add_exception(conn: Conn, pattern_id: uuid.UUID, on_date: date) -> None:
    """Take one date out of a pattern."""
    await conn.execute(
        "INSERT INTO pattern_exceptions (pattern_id, on_date) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING",
        pattern_id,
        on_date,
    )


async def exceptions_of(conn: Db, pattern_id: uuid.UUID) -> frozenset[date]:
    """Dates taken out of a pattern."""
    rows = await conn.fetch(
        "SELECT on_date FROM pattern_exceptions WHERE pattern_id = $1", pattern_id
    )
    return frozenset(r["on_date"] for r in rows)


async def pattern_windows(conn: Conn, pattern_id: uuid.UUID) -> list[asyncpg.Record]:
    """Live windows made from a pattern."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM availability WHERE pattern_id = $1 AND withdrawn_at IS NULL"
        " ORDER BY starts_at",
        pattern_id,
    )
    return rows


async def withdraw_pattern(conn: Conn, pattern_id: uuid.UUID) -> None:
    """Stop a pattern making new windows."""
    await conn.execute("UPDATE patterns SET withdrawn_at = now() WHERE id = $1", pattern_id)


async def live_patterns(conn: Db) -> list[tuple[uuid.UUID, Pattern]]:
    """Every live pattern with its clinician (for extending them week by week)."""
    rows = await conn.fetch("SELECT * FROM patterns WHERE withdrawn_at IS NULL")
    return [(r["clinician_id"], _pattern(r)) for r in rows]


async def insert_offer(conn: Conn, values: dict[str, Any]) -> None:
    """Store an offer made by matching; a redelivered one is ignored."""
    columns = list(values)
    marks = ", ".join(f"${i + 1}" for i in range(len(columns)))
    await conn.execute(
        f"INSERT INTO offers ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING",
        *values.values(),
    )


async def offer_for_update(conn: Conn, offer_id: uuid.UUID) -> Offer | None:
    """The offer, locked so that two answers can't both pass the checks."""
    row = await conn.fetchrow("SELECT * FROM offers WHERE id = $1 FOR UPDATE", offer_id)
    if row is None:
        return None
    return Offer(
        id=row["id"],
        session_id=row["session_id"],
        clinician_id=row["clinician_id"],
        status=OfferStatus(row["status"]),
        expires_at=row["expires_at"],
        starts_at=row["starts_at"],
    )


async def set_offer_status(
    conn: Conn, offer_id: uuid.UUID, status: OfferStatus, *, refusal: str | None = None
) -> None:
    """Move an offer on (with a note to show the clinician, when there is one)."""
    await conn.execute(
        "UPDATE offers SET status = $2, responded_at = COALESCE(responded_at, now()),"
        " refusal = COALESCE($3, refusal) WHERE id = $1",
        offer_id,
        status.value,
        refusal,
    )


async def refuse_offer(conn: Conn, offer_id: uuid.UUID, *, reason: str) -> bool:
    """Matching could not honour the acceptance; True if the offer was still standing.

    An offer the session's cancellation or amendment already closed keeps that news.
    """
    result: str = await conn.execute(
        "UPDATE offers SET status = 'refused', responded_at = COALESCE(responded_at, now()),"
        " refusal = $2 WHERE id = $1 AND status IN ('offered', 'accepted')",
        offer_id,
        reason,
    )
    return result.endswith(" 1")


async def hear_cancelled(conn: Conn, session_id: uuid.UUID) -> None:
    """Remember that the organisation cancelled the session."""
    await conn.execute(
        "INSERT INTO session_news (session_id, cancelled) VALUES ($1, true)"
        " ON CONFLICT (session_id) DO UPDATE SET cancelled = true, heard_at = now()",
        session_id,
    )


async def hear_amended(
    conn: Conn, session_id: uuid.UUID, *, starts_at: datetime, ends_at: datetime, role: str
) -> None:
    """Remember the session's time and role as the organisation last set them."""
    await conn.execute(
        "INSERT INTO session_news (session_id, starts_at, ends_at, role) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (session_id) DO UPDATE SET starts_at = $2, ends_at = $3, role = $4,"
        " heard_at = now()",
        session_id,
        starts_at,
        ends_at,
        role,
    )


async def close_reshaped_offers(
    conn: Conn, session_id: uuid.UUID, *, starts_at: datetime, ends_at: datetime, role: str
) -> list[uuid.UUID]:
    """Close offers and bookings of the session as it stood before; the clinicians.

    Matching releases any booking whose time or role changed, whether or not the
    organisation knew of the booking when it made the change (``released_clinician_id``
    names the clinician only when it did), so the bank follows the shape, not the name.
    """
    rows = await conn.fetch(
        "UPDATE offers SET status = CASE WHEN status = 'offered' THEN 'withdrawn'"
        " ELSE 'cancelled' END,"
        " refusal = CASE WHEN status = 'offered'"
        " THEN 'The organisation changed the session before you answered.'"
        " ELSE 'The organisation changed the session''s time or role; you are not booked.' END"
        " WHERE session_id = $1 AND status IN ('offered', 'accepted', 'booked')"
        " AND (starts_at, ends_at, role) IS DISTINCT FROM ($2, $3, $4) RETURNING clinician_id",
        session_id,
        starts_at,
        ends_at,
        role,
    )
    return [r["clinician_id"] for r in rows]


async def offer_is_stale(
    conn: Conn, session_id: uuid.UUID, *, starts_at: datetime, ends_at: datetime, role: str
) -> bool:
    """Whether an offer of this shape is overtaken by what the organisation said since."""
    row = await conn.fetchrow("SELECT * FROM session_news WHERE session_id = $1", session_id)
    if row is None:
        return False
    if row["cancelled"]:
        return True
    if row["starts_at"] is None:
        return False
    return (row["starts_at"], row["ends_at"], row["role"]) != (starts_at, ends_at, role)


async def confirm_booking(conn: Conn, offer_id: uuid.UUID) -> bool:
    """Matching booked it: an acceptance still standing becomes a booking.

    Conditional because events on different topics arrive in any order: a fill that
    lands after the session was cancelled (or after the clinician gave it up) must not
    bring the booking back.
    """
    result: str = await conn.execute(
        "UPDATE offers SET status = 'booked' WHERE id = $1 AND status IN ('offered', 'accepted')",
        offer_id,
    )
    return result.endswith(" 1")


async def count_late_cancellation(conn: Conn, clinician_id: uuid.UUID) -> None:
    """Add one to the clinician's late cancellations."""
    await conn.execute(
        "UPDATE clinicians SET late_cancellations = late_cancellations + 1 WHERE id = $1",
        clinician_id,
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
    conn: Db,
    clinician_id: uuid.UUID,
    statuses: list[str],
    *,
    ending_after: datetime | None = None,
    ending_before: datetime | None = None,
) -> list[asyncpg.Record]:
    """A clinician's offers in the given statuses, soonest first."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM offers WHERE clinician_id = $1 AND status = ANY($2::text[])"
        " AND ($3::timestamptz IS NULL OR ends_at > $3)"
        " AND ($4::timestamptz IS NULL OR ends_at <= $4) ORDER BY starts_at",
        clinician_id,
        statuses,
        ending_after,
        ending_before,
    )
    return rows


async def close_session_offers(
    conn: Conn, session_id: uuid.UUID, *, booked_to: OfferStatus, note: str
) -> list[uuid.UUID]:
    """The organisation changed or cancelled a session: withdraw open offers, and move
    any booking to ``booked_to``, each with ``note`` to show the clinician. Return the
    clinicians affected."""
    rows = await conn.fetch(
        "UPDATE offers SET status = CASE WHEN status IN ('accepted', 'booked') THEN $2"
        " ELSE 'withdrawn' END, refusal = $3"
        " WHERE session_id = $1 AND status IN ('offered', 'accepted', 'booked')"
        " RETURNING clinician_id",
        session_id,
        booked_to.value,
        note,
    )
    return [r["clinician_id"] for r in rows]


async def wake_app(conn: Conn, clinician_id: uuid.UUID) -> None:
    """Tell the clinician's open app to look again (delivered on commit)."""
    await conn.execute("SELECT pg_notify($1, $2)", OFFERS_CHANNEL, str(clinician_id))
