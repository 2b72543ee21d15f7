"""The transactional outbox: append in the caller's transaction, publish from a relay.

The relay claims unpublished rows with ``FOR UPDATE SKIP LOCKED`` so that two relays
never publish the same row at once, publishes them in id order, and marks them
published in the same transaction; a crash between publish and commit publishes
again (at-least-once), which consumers absorb through their inbox. LISTEN/NOTIFY
only wakes the relay early; a timed sweep still finds anything a lost NOTIFY missed.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Protocol

import asyncpg
import structlog
from pydantic import BaseModel

from shared.db.types import Conn
from shared.events.envelope import Envelope

log = structlog.get_logger(__name__)


class Publisher(Protocol):
    """Sends one message and returns once the broker has acknowledged it."""

    async def publish(
        self, *, topic: str, key: str, value: bytes, headers: dict[str, str]
    ) -> None: ...


def channel_for(schema: str) -> str:
    """NOTIFY channel that wakes the relay of ``schema``."""
    return f"{schema}_outbox"


async def append(conn: Conn, *, topic: str, envelope: Envelope[Any], schema: str) -> None:
    """Record ``envelope`` for publication; call inside the state change's transaction."""
    # One round trip for both. The NOTIFY is delivered only if the transaction commits,
    # which is exactly when it is useful.
    await conn.execute(
        "WITH added AS (INSERT INTO outbox (event_id, event_type, topic, message_key, payload)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING 1) SELECT pg_notify($6, '') FROM added",
        envelope.event_id,
        envelope.type,
        topic,
        envelope.region,
        envelope.model_dump(mode="json"),
        channel_for(schema),
    )


async def append_many(conn: Conn, items: list[tuple[str, Envelope[Any]]], *, schema: str) -> None:
    """Record many (topic, envelope) pairs in one statement; for bulk intake."""
    if not items:
        return
    await conn.execute(
        "INSERT INTO outbox (event_id, event_type, topic, message_key, payload)"
        " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[])",
        [e.event_id for _, e in items],
        [e.type for _, e in items],
        [topic for topic, _ in items],
        [e.region for _, e in items],
        [e.model_dump(mode="json") for _, e in items],
    )
    await conn.execute("SELECT pg_notify($1, '')", channel_for(schema))


def headers_for(payload: dict[str, Any]) -> dict[str, str]:
    """Kafka headers that let a consumer route or trace without parsing the body."""
    return {
        "content-type": "application/json",
        "event-type": str(payload["type"]),
        "schema-version": str(payload["schema_version"]),
        "event-id": str(payload["event_id"]),
        "correlation-id": str(payload["correlation_id"]),
    }


def encode(payload: dict[str, Any] | BaseModel) -> bytes:
    """Serialise an envelope (or its stored JSON) to the bytes sent on the wire."""
    if isinstance(payload, BaseModel):
        return payload.model_dump_json().encode()
    import json  # noqa: PLC0415 - only this branch needs it

    return json.dumps(payload, separators=(",", ":")).encode()


async def relay_once(pool: asyncpg.Pool, publisher: Publisher, *, batch: int = 200) -> int:
    """Publish up to ``batch`` pending rows in order; return how many were published."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT id, topic, message_key, payload FROM outbox"
            " WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            batch,
        )
        for row in rows:
            payload: dict[str, Any] = row["payload"]
            await publisher.publish(
                topic=row["topic"],
                key=row["message_key"],
                value=encode(payload),
                headers=headers_for(payload),
            )
        if rows:
            await conn.execute(
                "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                [r["id"] for r in rows],
            )
    return len(rows)


async def pending_count(pool: asyncpg.Pool) -> int:
    """How many events wait to be published (a health signal)."""
    async with pool.acquire() as conn:
        value: int = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        return value


async def run_relay(
    pool: asyncpg.Pool,
    publisher: Publisher,
    *,
    schema: str,
    dsn: str,
    poll_s: float = 1.0,
) -> None:
    """Publish the outbox until cancelled, woken by NOTIFY or every ``poll_s`` seconds."""
    wake = asyncio.Event()
    listener: asyncpg.Connection | None = None
    backoff = 0.2
    try:
        listener = await asyncpg.connect(dsn)
        await listener.add_listener(channel_for(schema), lambda *_: wake.set())
        while True:
            try:
                while await relay_once(pool, publisher):
                    continue  # some went out: there may be more waiting
                backoff = 0.2
            except Exception as exc:
                # Broker or database away: keep the rows, retry with capped backoff.
                log.warning("outbox relay failed; will retry", error=repr(exc), backoff_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=poll_s)
            wake.clear()
    finally:
        if listener is not None:
            await listener.close()
