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
