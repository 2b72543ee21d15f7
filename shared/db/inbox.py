"""The idempotent-consumer inbox: record an event id once, with its effect."""

from __future__ import annotations

import uuid

from shared.db.types import Conn


async def claim(conn: Conn, *, event_id: uuid.UUID, event_type: str) -> bool:
    """Record ``event_id`` as handled; False if it already was (a redelivery).

    Call inside the transaction that applies the event's effect, so both commit or
    neither does.
    """
    inserted = await conn.fetchval(
        "INSERT INTO inbox (event_id, event_type) VALUES ($1, $2)"
        " ON CONFLICT (event_id) DO NOTHING RETURNING true",
        event_id,
        event_type,
    )
    return bool(inserted)


async def claim_many(conn: Conn, events: list[tuple[uuid.UUID, str]]) -> set[uuid.UUID]:
    """Record many (event id, type) as handled in one statement; the ids not handled
    before (a batch's redeliveries are left out). Inside the effects' transaction."""
    rows = await conn.fetch(
        "INSERT INTO inbox (event_id, event_type)"
        " SELECT * FROM unnest($1::uuid[], $2::text[])"
        " ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
        [event_id for event_id, _ in events],
        [event_type for _, event_type in events],
    )
    return {r["event_id"] for r in rows}
