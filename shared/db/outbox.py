"""The transactional outbox: append in the caller's transaction, publish from a relay.

The relay claims unpublished rows with ``FOR UPDATE SKIP LOCKED`` so that two relays
never publish the same row at once, publishes them in id order, and marks them
published in the same transaction; a crash between publish and commit publishes
again (at-least-once), which consumers absorb through their inbox. LISTEN/NOTIFY
only wakes the relay early; a timed sweep still finds anything a lost NOTIFY missed,
and the listening connection is opened again after the database restarts.

Published rows are kept (``keep``, a day by default) because a broker can lose what
it acknowledged: Tansu keeps its log in memory. The relay remembers, per partition,
the next offset the broker should hand out; a broker whose log ends before that (or
that acknowledges an offset below it) has lost our events, and every kept row is
published again in id order. Consumers' inboxes, kept longer, absorb the repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

import asyncpg
import structlog
from pydantic import BaseModel

from shared.db.types import Conn
from shared.events.envelope import Envelope

log = structlog.get_logger(__name__)


Partition = tuple[str, int]


class Publisher(Protocol):
    """Sends one message and returns once the broker has acknowledged it.

    Returns the (partition, offset) the broker gave it, where the broker says.
    """

    async def publish(
        self, *, topic: str, key: str, value: bytes, headers: dict[str, str]
    ) -> tuple[int, int] | None: ...


class LogEnds(Protocol):
    """Reads where the broker's log of each partition ends (the next offset)."""

    async def end_offsets(self, partitions: list[Partition]) -> dict[Partition, int]: ...


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


@dataclass
class Relay:
    """Publishes a schema's outbox, and publishes it again after a broker lost it."""

    pool: asyncpg.Pool
    publisher: Publisher
    log_ends: LogEnds | None = None
    # Rows per transaction: a plan's burst is thousands of events, and each round is a
    # read, a publish awaited and a commit (at 200 a round, matching's relay was a
    # second behind such a burst). 500 of our events fit one 512 KiB producer batch.
    batch: int = 500
    verify_every_s: float = 5.0
    replays: int = 0
    published: int = 0
    failing_since: float | None = None
    _verified_at: float = field(default=-math.inf, repr=False)

    def suspect(self) -> None:
        """Check the broker's logs before the next publish (after an error, say)."""
        self._verified_at = -math.inf

    async def verify(self, *, force: bool = False) -> bool:
        """Re-queue every kept row if the broker's log ends before our marks.

        Returns True when the broker had lost events we published.
        """
        if self.log_ends is None:
            return False
        if not force and time.monotonic() - self._verified_at < self.verify_every_s:
            return False
        async with self.pool.acquire() as conn:
            marks = await conn.fetch("SELECT topic, partition, next_offset FROM outbox_marks")
        lost: list[str] = []
        if marks:
            ends = await self.log_ends.end_offsets([(m["topic"], m["partition"]) for m in marks])
            for m in marks:
                end = ends.get((m["topic"], m["partition"]), 0)
                if end < m["next_offset"]:
                    where = f"{m['topic']}[{m['partition']}]"
                    lost.append(f"{where} ends at {end} < {m['next_offset']}")
        if lost:
            async with self.pool.acquire() as conn, conn.transaction():
                await self._requeue(conn, lost)
        self._verified_at = time.monotonic()
        return bool(lost)

    async def _requeue(self, conn: Conn, lost: list[str]) -> None:
        result: str = await conn.execute(
            "UPDATE outbox SET published_at = NULL WHERE published_at IS NOT NULL"
        )
        await conn.execute("DELETE FROM outbox_marks")
        self.replays += 1
        log.warning(
            "the broker lost events this service published; publishing every kept one again",
            partitions=lost[:10],
            requeued=int(result.rsplit(maxsplit=1)[-1]),
        )

    async def once(self) -> int:
        """Publish up to ``batch`` pending rows in order; return how many were published."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, topic, message_key, payload FROM outbox"
                " WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self.batch,
            )
            if not rows:
                return 0
            marks = {
                (m["topic"], m["partition"]): m["next_offset"]
                for m in await conn.fetch("SELECT topic, partition, next_offset FROM outbox_marks")
            }
            acked: dict[Partition, int] = {}
            reset: list[str] = []
            messages = [
                {
                    "topic": row["topic"],
                    "key": row["message_key"],
                    "value": encode(row["payload"]),
                    "headers": headers_for(row["payload"]),
                }
                for row in rows
            ]
            many = getattr(self.publisher, "publish_many", None)
            if many is not None:
                positions = await many(messages)
            else:
                positions = [await self.publisher.publish(**m) for m in messages]
            for row, where in zip(rows, positions, strict=True):
                if where is None:
                    continue
                tp = (row["topic"], where[0])
                if where[1] < marks.get(tp, 0) and not reset:
                    # Acknowledged below what this partition already held: a new log.
                    reset.append(f"{tp[0]}[{tp[1]}] acknowledged {where[1]} < {marks[tp]}")
                acked[tp] = max(acked.get(tp, 0), where[1] + 1)
            if reset:
                await self._requeue(conn, reset)
            else:
                await conn.execute(
                    "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                    [r["id"] for r in rows],
                )
            if acked:
                await conn.executemany(
                    "INSERT INTO outbox_marks (topic, partition, next_offset) VALUES ($1, $2, $3)"
                    " ON CONFLICT (topic, partition) DO UPDATE"
                    " SET next_offset = greatest(outbox_marks.next_offset, excluded.next_offset)",
                    [(t, p, o) for (t, p), o in acked.items()],
                )
        self.published += len(rows)
        return len(rows)


async def relay_once(pool: asyncpg.Pool, publisher: Publisher, *, batch: int = 200) -> int:
    """Publish up to ``batch`` pending rows in order; return how many were published."""
    return await Relay(pool, publisher, batch=batch).once()


async def pending_count(pool: asyncpg.Pool) -> int:
    """How many events wait to be published (a health signal)."""
    async with pool.acquire() as conn:
        value: int = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        return value


async def _listen(dsn: str, schema: str, wake: asyncio.Event) -> asyncpg.Connection | None:
    """A connection LISTENing for the schema's NOTIFY, or None if the database is away."""
    try:
        listener: asyncpg.Connection = await asyncpg.connect(dsn, timeout=5)
        await listener.add_listener(channel_for(schema), lambda *_: wake.set())
        # Wake at once when the connection dies (a database restart) to listen again.
        listener.add_termination_listener(lambda *_: wake.set())
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        log.warning("outbox relay cannot LISTEN yet; polling meanwhile", error=repr(exc))
        return None
    wake.set()  # anything committed while we were not listening is waiting
    return listener


async def run_relay(
    relay: Relay,
    *,
    schema: str,
    dsn: str,
    poll_s: float = 1.0,
    gather_s: float = 0.0,
) -> None:
    """Publish the outbox until cancelled, woken by NOTIFY or every ``poll_s`` seconds.

    Woken by a NOTIFY, it waits ``gather_s`` first. Vacancies commits a session at a
    time (100 a second under load), and publishing each at once made a produce request,
    and a fetch by every consumer, per event: most of the local broker's work, which
    slowed every relay's publishing (measured: Tansu used more CPU than any service).
    Gathered for 50 ms, they go as one batch, for at most 50 ms of delay.
    """
    wake = asyncio.Event()
    listener: asyncpg.Connection | None = None
    backoff = 0.2
    try:
        while True:
            if listener is None or listener.is_closed():
                # The database restarted (or never answered): listen again.
                listener = await _listen(dsn, schema, wake)
            try:
                await relay.verify()
                while await relay.once():
                    continue  # some went out: there may be more waiting
                backoff = 0.2
                relay.failing_since = None
            except Exception as exc:
                # Broker or database away: keep the rows, retry with capped backoff, and
                # check the broker's logs first when it answers again.
                relay.suspect()
                if relay.failing_since is None:
                    relay.failing_since = time.monotonic()
                log.warning("outbox relay failed; will retry", error=repr(exc), backoff_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=poll_s)
                if gather_s:
                    await asyncio.sleep(gather_s)
            wake.clear()
    finally:
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close()


# How long each kind of record is kept, and why. Published outbox rows: a day, the
# window in which a lost broker's events can be published again. Inbox rows: a week,
# so that anything the outbox can replay is still recognised as handled. Web hook
# receipts (vacancies): a day; Standard Webhooks refuses a timestamp older than five
# minutes anyway, so a retried delivery older than that never reaches the receipt.
OUTBOX_KEEP = timedelta(days=1)
INBOX_KEEP = timedelta(days=7)


async def prune(
    pool: asyncpg.Pool, *, outbox_keep: timedelta = OUTBOX_KEEP, inbox_keep: timedelta = INBOX_KEEP
) -> tuple[int, int]:
    """Delete published outbox rows and inbox rows past their keeping; (outbox, inbox)."""
    async with pool.acquire() as conn:
        out: str = await conn.execute(
            "DELETE FROM outbox WHERE published_at < now() - $1::interval", outbox_keep
        )
        inn: str = await conn.execute(
            "DELETE FROM inbox WHERE processed_at < now() - $1::interval", inbox_keep
        )
    return int(out.rsplit(maxsplit=1)[-1]), int(inn.rsplit(maxsplit=1)[-1])
