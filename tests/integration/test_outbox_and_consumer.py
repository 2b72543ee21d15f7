"""The outbox relay and the idempotent consumer, over the real broker and database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from shared.db import outbox
from shared.db.pool import create_pool
from shared.db.types import Conn
from shared.events import Envelope, SessionPosted, new_envelope
from shared.events.registry import topic_for
from shared.messaging.consumer import EventConsumer
from shared.messaging.emitter import Emitter
from shared.messaging.kafka import KafkaPublisher, make_broker
from shared.messaging.topics import ensure_topics
from shared.runtime import migrate
from shared.settings import ServiceSettings
from tests.conftest import Infra
from tests.factories import session_posted
from tests.integration.helpers import eventually, read_topic, settings_for

pytestmark = pytest.mark.integration

START = datetime.now(UTC) + timedelta(days=2)


def _posted() -> SessionPosted:
    return session_posted(START)


@pytest.fixture
async def schema(infra: Infra, tmp_path: Path, topic_prefix: str) -> str:
    """A fresh schema with the shared outbox/inbox and a table a handler writes to."""
    name = "it_" + uuid.uuid4().hex[:10]
    (tmp_path / "0001_effects.sql").write_text(
        "CREATE TABLE effects (session_id uuid NOT NULL, event_id uuid NOT NULL);"
    )
    settings = settings_for(ServiceSettings, infra, topic_prefix)
    await migrate(settings, schema=name, migrations_dir=tmp_path)
    await ensure_topics(infra.bootstrap, topic_prefix)
    return name


async def test_outbox_publishes_committed_events_only(
    infra: Infra, schema: str, topic_prefix: str, region: str
) -> None:
    """A committed event reaches Kafka keyed by region; a rolled-back one never does."""
    pool = await create_pool(infra.dsn, schema)
    broker = make_broker(infra.bootstrap, None)
    await broker.connect()
    emitter = Emitter(producer="test", schema=schema, topic_prefix=topic_prefix)
    try:
        async with pool.acquire() as conn:
            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    await emitter.emit(conn, _posted(), region=region)
                    raise RuntimeError("the state change failed")
            async with conn.transaction():
                kept = await emitter.emit(conn, _posted(), region=region)
        assert await outbox.pending_count(pool) == 1
        assert await outbox.relay_once(pool, KafkaPublisher(broker)) == 1
        assert await outbox.pending_count(pool) == 0
        records = await read_topic(
            infra.bootstrap, topic_for("session.posted", topic_prefix), want=2
        )
        assert len(records) == 1
        assert records[0].key == region.encode()
        assert json.loads(records[0].value)["event_id"] == str(kept.event_id)
        headers = {k: v.decode() for k, v in records[0].headers}
        assert headers["event-type"] == "session.posted"
    finally:
        await broker.stop()
        await pool.close()


async def test_relay_keeps_rows_when_publishing_fails(
    infra: Infra, schema: str, region: str
) -> None:
    """A broker failure mid-batch leaves the rows unpublished, to be sent again."""

    class Failing:
        async def publish(self, **_: Any) -> None:
            raise ConnectionError("broker away")

    pool = await create_pool(infra.dsn, schema)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await Emitter(producer="t", schema=schema).emit(conn, _posted(), region=region)
        with pytest.raises(ConnectionError):
            await outbox.relay_once(pool, Failing())
        assert await outbox.pending_count(pool) == 1
    finally:
        await pool.close()


async def test_consumer_dead_letters_bad_messages_and_applies_good_ones_once(
    infra: Infra, schema: str, topic_prefix: str, region: str
) -> None:
    """Over a real subscriber: garbage goes to the dead-letter topic with its reason,
    the consumer carries on, and an event delivered twice has one effect."""
    pool = await create_pool(infra.dsn, schema)
    broker = make_broker(infra.bootstrap, None)

    async def record(conn: Conn, envelope: Envelope[Any]) -> None:
        await conn.execute(
            "INSERT INTO effects (session_id, event_id) VALUES ($1, $2)",
            envelope.data.session_id,
            envelope.event_id,
        )

    consumer = EventConsumer(
        service="it",
        pool=pool,
        dead_letters=KafkaPublisher(broker),
        handlers={"session.posted": record},
        topic_prefix=topic_prefix,
    )
    consumer.subscribe(broker)
    topic = topic_for("session.posted", topic_prefix)
    envelope = new_envelope(
        _posted(), event_type="session.posted", schema_version=1, region=region, producer="t"
    )
    good = envelope.model_dump_json().encode()
    try:
        await broker.start()
        await broker.publish(b"{not json", topic=topic, key=region.encode())
        await broker.publish(good, topic=topic, key=region.encode())
        await broker.publish(good, topic=topic, key=region.encode())  # a redelivery

        async def effects() -> list[asyncpg.Record]:
            async with pool.acquire() as conn:
                rows: list[asyncpg.Record] = await conn.fetch("SELECT * FROM effects")
                return rows

        await eventually(effects, timeout_s=30)
        dead = await read_topic(infra.bootstrap, f"{topic_prefix}deadletter", want=1)
        assert len(dead) == 1
        assert dead[0].value == b"{not json"
        reason = dict(dead[0].headers)["dlq-reason"].decode()
        assert "not JSON" in reason
        # Give the duplicate time to arrive and be ignored, then count effects.
        await asyncio.sleep(1.5)
        assert len(await effects()) == 1
    finally:
        await broker.stop()
        await pool.close()


async def test_pruning_drops_only_what_has_been_kept_long_enough(
    infra: Infra, schema: str, region: str
) -> None:
    """Published outbox rows past a day and inbox rows past a week go; unpublished rows
    stay whatever their age, and recent rows stay."""
    pool = await create_pool(infra.dsn, schema)
    emitter = Emitter(producer="t", schema=schema)
    try:
        async with pool.acquire() as conn, conn.transaction():
            envelopes = [await emitter.emit(conn, _posted(), region=region) for _ in range(3)]
            old, recent, waiting = envelopes
            await conn.execute(
                "UPDATE outbox SET published_at = now() - interval '25 hours',"
                " created_at = now() - interval '26 hours' WHERE event_id = $1",
                old.event_id,
            )
            await conn.execute(
                "UPDATE outbox SET published_at = now() WHERE event_id = $1", recent.event_id
            )
            await conn.execute(
                "UPDATE outbox SET created_at = now() - interval '30 days' WHERE event_id = $1",
                waiting.event_id,
            )
            stale, fresh = uuid.uuid4(), uuid.uuid4()
            await conn.execute(
                "INSERT INTO inbox (event_id, event_type, processed_at) VALUES"
                " ($1, 'x', now() - interval '8 days'), ($2, 'x', now() - interval '6 days')",
                stale,
                fresh,
            )
        assert await outbox.prune(pool) == (1, 1)
        kept = {r["event_id"] for r in await pool.fetch("SELECT event_id FROM outbox")}
        assert kept == {recent.event_id, waiting.event_id}
        assert {r["event_id"] for r in await pool.fetch("SELECT event_id FROM inbox")} == {fresh}
    finally:
        await pool.close()


async def test_relay_listens_again_after_losing_its_database_connection(
    infra: Infra, schema: str, region: str
) -> None:
    """When the listening connection dies (a database restart), the relay opens it again:
    a committed event is published at once, not at the next slow poll."""
    published: list[str] = []

    class Recording:
        async def publish(self, *, topic: str, **_: Any) -> None:
            published.append(topic)

    pool = await create_pool(infra.dsn, schema)
    relay = asyncio.create_task(
        outbox.run_relay(outbox.Relay(pool, Recording()), schema=schema, dsn=infra.dsn, poll_s=60)
    )
    emitter = Emitter(producer="t", schema=schema)
    try:

        async def listening() -> int:
            found: int = await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"
                " AND query LIKE $1",
                f"%{schema}_outbox%",
            )
            return found

        await eventually(listening, timeout_s=10)
        await pool.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"
            " AND query LIKE $1",
            f"%{schema}_outbox%",
        )
        # The relay notices at its next pass; a NOTIFY of its own schema gives it one.
        async with pool.acquire() as conn, conn.transaction():
            await emitter.emit(conn, _posted(), region=region)

        async def sent() -> int:
            return len(published)

        await eventually(sent, timeout_s=10)
        await eventually(listening, timeout_s=10)
        async with pool.acquire() as conn, conn.transaction():
            await emitter.emit(conn, _posted(), region=region)

        async def both() -> bool:
            return len(published) == 2

        await eventually(both, timeout_s=5)
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        await pool.close()


@pytest.mark.parametrize("gather_s", [0.0, 1.0])
async def test_relay_gathers_events_committed_one_at_a_time(
    infra: Infra, schema: str, region: str, gather_s: float
) -> None:
    """Five events committed one at a time, 20 ms apart: with a gather after the wake-up
    the relay publishes them in one round; without, it starts on the first at once."""
    rounds: list[int] = []

    class Recording:
        async def publish_many(self, messages: list[dict[str, Any]]) -> list[None]:
            rounds.append(len(messages))
            return [None] * len(messages)

    pool = await create_pool(infra.dsn, schema)
    emitter = Emitter(producer="t", schema=schema)
    relay_obj = outbox.Relay(pool, Recording())  # type: ignore[arg-type]
    # Known idle, not guessed: the relay parks on its wake-up only after a pass that found
    # nothing (a fixed sleep here failed under CI load: the first event was taken by the
    # pass the LISTEN asks for, before the wake-up it was meant to gather on).
    idle = asyncio.Event()
    passing = relay_obj.once

    async def once() -> int:
        found = await passing()
        if not found:
            idle.set()
        return found

    relay_obj.once = once  # type: ignore[method-assign]
    relay = asyncio.create_task(
        outbox.run_relay(relay_obj, schema=schema, dsn=infra.dsn, poll_s=60, gather_s=gather_s)
    )
    try:
        await asyncio.wait_for(idle.wait(), timeout=10)
        started = time.monotonic()
        for _ in range(5):
            async with pool.acquire() as conn, conn.transaction():
                await emitter.emit(conn, _posted(), region=region)
            await asyncio.sleep(0.02)
        committing_s = time.monotonic() - started

        async def all_published() -> bool:
            return sum(rounds) >= 5

        await eventually(all_published, timeout_s=10)
        if gather_s:
            # All five committed inside one gather window (1 s for ~0.1 s of commits, so
            # load has room), so one round; the measured time says if that premise broke.
            assert committing_s < gather_s, committing_s
            assert rounds == [5]
        else:
            assert rounds[0] < 5
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        await pool.close()
