"""asyncpg access to the callback schedule: enqueue, claim due, record, list, replay."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from shared.db.types import Conn


async def enqueue(
    conn: Conn,
    *,
    organisation: str,
    session_id: uuid.UUID | None,
    event_type: str,
    payload: dict[str, Any],
    give_up_at: datetime,
) -> str:
    """Schedule a delivery now, in the caller's transaction; return its webhook-id."""
    [webhook_id] = await enqueue_many(
        conn, [NewCallback(organisation, session_id, event_type, payload, give_up_at)]
    )
    return webhook_id


@dataclass(frozen=True)
class NewCallback:
    """A delivery to schedule (see ``enqueue``)."""

    organisation: str
    session_id: uuid.UUID | None
    event_type: str
    payload: dict[str, Any]
    give_up_at: datetime


async def enqueue_many(conn: Conn, callbacks: list[NewCallback]) -> list[str]:
    """``enqueue`` for many deliveries in one statement; their webhook-ids, in order."""
    if not callbacks:
        return []
    ids = [f"msg_{uuid.uuid4().hex}" for _ in callbacks]
    await conn.execute(
        "INSERT INTO callbacks (webhook_id, organisation, session_id, event_type, payload,"
        " give_up_at) SELECT w, o, s, e, p, g FROM unnest($1::text[], $2::text[],"
        " $3::uuid[], $4::text[], $5::jsonb[], $6::timestamptz[])"
        " WITH ORDINALITY AS c(w, o, s, e, p, g, n) ORDER BY n",
        ids,
        [c.organisation for c in callbacks],
        [c.session_id for c in callbacks],
        [c.event_type for c in callbacks],
        [c.payload for c in callbacks],
        [c.give_up_at for c in callbacks],
    )
    await conn.execute("SELECT pg_notify('vacancies_callbacks', '')")
    return ids


async def claim_due(
    conn: Conn, *, now: datetime, lease: timedelta, limit: int = 20
) -> list[asyncpg.Record]:
    """Due deliveries, leased so that no other sender takes them while in flight.

    A crash mid-send leaves the lease to run out, and the delivery is tried again.
    Each row carries the organisation's callback URL and its signing secret, still sealed
    (``webhook_secret_sealed``): the sender opens it just before signing.
    """
    rows: list[asyncpg.Record] = await conn.fetch(
        "UPDATE callbacks c SET next_attempt_at = $1 + $2::interval, attempts = c.attempts + 1"
        " FROM organisations o WHERE c.id IN (SELECT id FROM callbacks WHERE status = 'pending'"
        " AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)"
        " AND o.ods_code = c.organisation"
        " RETURNING c.*, o.callback_url, o.webhook_secret_sealed",
        now,
        lease,
        limit,
    )
    return rows


async def record(
    conn: Conn,
    callback_id: int,
    *,
    status: str,
    next_attempt_at: datetime | None,
    last_status: int | None,
    last_error: str | None,
) -> None:
    """Write the outcome of one attempt."""
    await conn.execute(
        "UPDATE callbacks SET status = $2, next_attempt_at = COALESCE($3, next_attempt_at),"
        " last_status = $4, last_error = $5,"
        " delivered_at = CASE WHEN $2 = 'delivered' THEN now() ELSE delivered_at END"
        " WHERE id = $1",
        callback_id,
        status,
        next_attempt_at,
        last_status,
        last_error,
    )


async def list_callbacks(
    conn: Conn, *, organisation: str | None, status: str | None, limit: int = 100
) -> list[asyncpg.Record]:
    """The delivery log, newest first."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM callbacks WHERE ($1::text IS NULL OR organisation = $1)"
        " AND ($2::text IS NULL OR status = $2) ORDER BY id DESC LIMIT $3",
        organisation,
        status,
        limit,
    )
    return rows


async def replay(conn: Conn, callback_id: int, *, give_up_at: datetime) -> bool:
    """Send a delivery again now, whatever became of it; False if there is none."""
    result: str = await conn.execute(
        "UPDATE callbacks SET status = 'pending', next_attempt_at = now(), attempts = 0,"
        " give_up_at = $2, last_error = NULL WHERE id = $1",
        callback_id,
        give_up_at,
    )
    await conn.execute("SELECT pg_notify('vacancies_callbacks', '')")
    return result.endswith(" 1")
