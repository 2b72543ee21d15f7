"""Faults in messaging, over the real broker and database: poison messages never stall
a partition, failures that pass are waited out, and losing the (in-memory) broker
loses no event: producers publish their kept events again and consumers read the
new log from its start."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from shared.db.outbox import Relay
from shared.db.pool import create_pool
from shared.db.types import Conn
from shared.events import Envelope, SessionCancelled, SessionPosted, new_envelope
from shared.events.registry import PARTITIONS, dead_letter_topic, topic_for
from shared.messaging.consumer import Batched, EventConsumer
from shared.messaging.emitter import Emitter
from shared.messaging.kafka import KafkaPublisher, make_broker
from shared.messaging.topics import ensure_topics
from shared.runtime import migrate
from shared.settings import ServiceSettings
from tests.conftest import Infra
from tests.factories import session_posted
from tests.integration.broker_support import own_broker, restart
from tests.integration.helpers import eventually, read_topic, settings_for

__all__ = ["own_broker"]  # the fixture, shared

pytestmark = pytest.mark.integration

START = datetime.now(UTC) + timedelta(days=2)


@pytest.fixture
async def pool(infra: Infra, tmp_path: Path, topic_prefix: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh schema with the shared outbox and inbox and a table of effects."""
    name = "mf_" + uuid.uuid4().hex[:10]
    (tmp_path / "0001_effects.sql").write_text(
        "CREATE TABLE effects (session_id uuid NOT NULL, event_id uuid NOT NULL);"
    )
    await migrate(
        settings_for(ServiceSettings, infra, topic_prefix), schema=name, migrations_dir=tmp_path
    )
    p = await create_pool(infra.dsn, name)
    yield p
    await p.close()


def _event(region: str, *, site: str = "Surgery") -> Envelope[SessionPosted]:
    posted = session_posted(START).model_copy(update={"site_name": site})
    return new_envelope(
        posted, event_type="session.posted", schema_version=1, region=region, producer="t"
    )


async def _record(conn: Conn, envelope: Envelope[Any]) -> None:
    """The handler under test: records its effect, and fails on data it can't store."""
    if envelope.data.site_name == "poison":
        await conn.execute("SELECT 'poison'::int")  # a data error: never succeeds
    await conn.execute(
        "INSERT INTO effects (session_id, event_id) VALUES ($1, $2)",
        envelope.data.session_id,
        envelope.event_id,
    )


async def _effects(pool: asyncpg.Pool) -> set[uuid.UUID]:
    rows = await pool.fetch("SELECT event_id FROM effects")
    return {r["event_id"] for r in rows}


async def test_poison_messages_are_parked_and_the_partition_moves_on(
    infra: Infra, pool: asyncpg.Pool, topic_prefix: str, region: str
) -> None:
    """A nesting bomb (RecursionError in parsing) and a valid event whose handler hits a
    data error both reach the dead-letter topic with their reasons, the latter after a
    bounded number of attempts; the good event behind them is handled."""
    await ensure_topics(infra.bootstrap, topic_prefix)
    broker = make_broker(infra.bootstrap, None)
    consumer = EventConsumer(
        service="mf",
        pool=pool,
        dead_letters=KafkaPublisher(broker),
        handlers={"session.posted": _record},
        topic_prefix=topic_prefix,
        max_attempts=3,
        retry_delay_s=0.05,
    )
    consumer.subscribe(broker)
    topic = topic_for("session.posted", topic_prefix)
    bomb = b'{"type": "session.posted", "data": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    poison, good = _event(region, site="poison"), _event(region)
    try:
        await broker.start()
        for body in (bomb, poison.model_dump_json().encode(), good.model_dump_json().encode()):
            await broker.publish(body, topic=topic, key=region.encode())

        async def handled() -> bool:
            return good.event_id in await _effects(pool)

        await eventually(handled, timeout_s=30)
        dead = await read_topic(infra.bootstrap, dead_letter_topic(topic_prefix), want=2)
        reasons = [dict(r.headers)["dlq-reason"].decode() for r in dead]
        assert len(reasons) == 2
        assert "nested too deeply" in reasons[0]
        assert "handler failed 3 times: InvalidTextRepresentationError" in reasons[1]
        assert json.loads(dead[1].value)["event_id"] == str(poison.event_id)
        assert consumer.progress.dead_lettered == 2
        assert await _effects(pool) == {good.event_id}
    finally:
        await broker.stop()


async def test_failures_that_pass_are_retried_not_parked(
    pool: asyncpg.Pool, topic_prefix: str, region: str
) -> None:
    """A handler that fails because the database is away is retried for as long as it
    takes (here more times than ``max_attempts``), then has its effect once."""
    sent: list[dict[str, str]] = []

    class Recording:
        async def publish(self, **message: Any) -> None:
            sent.append(message["headers"])

    outages = 4

    async def flaky(conn: Conn, envelope: Envelope[Any]) -> None:
        nonlocal outages
        if outages:
            outages -= 1
            raise ConnectionResetError("database connection lost")
        await _record(conn, envelope)

    consumer = EventConsumer(
        service="mf",
        pool=pool,
        dead_letters=Recording(),
        handlers={"session.posted": flaky},
        topic_prefix=topic_prefix,
        max_attempts=2,
        retry_delay_s=0.01,
    )
    event = _event(region)
    body = event.model_dump_json().encode()
    topic = topic_for("session.posted", topic_prefix)
    for _ in range(4):  # each raise is a redelivery by the broker
        with pytest.raises(ConnectionResetError):
            await consumer.handle(topic, region.encode(), body)
        assert consumer.progress.failing_since is not None
    assert await consumer.handle(topic, region.encode(), body) is True
    assert sent == []
    assert consumer.progress.failing_since is None
    assert await _effects(pool) == {event.event_id}


async def test_a_batch_claims_its_events_at_once_and_handles_each_once(
    pool: asyncpg.Pool, topic_prefix: str, region: str
) -> None:
    """One fetch holding an event twice and an event handled before: the batch claims
    its events in one statement and each new event has its effect once."""
    dead: list[Any] = []

    class Parking:
        async def publish(self, **message: Any) -> None:
            dead.append(message)

    consumer = EventConsumer(
        service="mf",
        pool=pool,
        dead_letters=Parking(),
        handlers={"session.posted": _record},
        topic_prefix=topic_prefix,
    )
    topic = topic_for("session.posted", topic_prefix)
    before, twice, once = _event(region), _event(region), _event(region)
    assert await consumer.handle(topic, region.encode(), before.model_dump_json().encode())

    def record(offset: int, event: Envelope[Any]) -> ConsumerRecord[bytes, bytes]:
        return ConsumerRecord(
            topic,
            0,
            offset,
            0,
            0,
            region.encode(),
            event.model_dump_json().encode(),
            None,
            0,
            0,
            [],
        )

    batch = [record(1, twice), record(2, before), record(3, twice), record(4, once)]
    await consumer.handle_batch(batch)
    rows = await pool.fetch("SELECT event_id FROM effects")
    assert sorted(str(r["event_id"]) for r in rows) == sorted(
        str(e.event_id) for e in (before, twice, once)
    )
    assert (consumer.progress.handled, consumer.progress.duplicates) == (3, 2)
    assert dead == []


async def test_a_batched_handler_takes_runs_in_stream_order(
    pool: asyncpg.Pool, topic_prefix: str, region: str
) -> None:
    """Consecutive new events of a Batched type reach it as one run; another type
    between them ends the run, so every handler still sees the stream's order, and a
    duplicate neither joins a run nor splits one."""
    calls: list[tuple[str, list[uuid.UUID]]] = []

    async def many(conn: Conn, envelopes: list[Envelope[Any]]) -> None:
        calls.append(("posted", [e.event_id for e in envelopes]))
        for envelope in envelopes:
            await _record(conn, envelope)

    async def cancelled(conn: Conn, envelope: Envelope[Any]) -> None:
        calls.append(("cancelled", [envelope.event_id]))

    class Parking:
        async def publish(self, **message: Any) -> None:
            raise AssertionError(message)

    consumer = EventConsumer(
        service="mf",
        pool=pool,
        dead_letters=Parking(),
        handlers={"session.posted": Batched(many), "session.cancelled": cancelled},
        topic_prefix=topic_prefix,
    )
    topic = topic_for("session.posted", topic_prefix)
    a, b, c, d = (_event(region) for _ in range(4))
    stop = new_envelope(
        SessionCancelled(
            session_id=a.data.session_id,
            organisation=a.data.organisation,
            sector=a.data.sector,
            starts_at=a.data.starts_at,
            ends_at=a.data.ends_at,
            reason=None,
            late=False,
            released_clinician_id=None,
        ),
        event_type="session.cancelled",
        schema_version=1,
        region=region,
        producer="t",
    )
    order: list[Envelope[Any]] = [a, b, stop, c, a, d]
    await consumer.handle_batch(
        [
            ConsumerRecord(
                topic, 0, i, 0, 0, region.encode(), e.model_dump_json().encode(), None, 0, 0, []
            )
            for i, e in enumerate(order)
        ]
    )
    assert calls == [
        ("posted", [a.event_id, b.event_id]),
        ("cancelled", [stop.event_id]),
        ("posted", [c.event_id, d.event_id]),
    ]
    assert await _effects(pool) == {a.event_id, b.event_id, c.event_id, d.event_id}
    # Handled on its own (as after a failed batch), an event is a run of one.
    e = _event(region)
    assert await consumer.handle(topic, region.encode(), e.model_dump_json().encode())
    assert calls[-1] == ("posted", [e.event_id])


async def test_a_lost_broker_gets_the_producers_kept_events_again(
    pool: asyncpg.Pool,
    own_broker: tuple[int, list[subprocess.Popen[bytes]]],
    topic_prefix: str,
    region: str,
    tmp_path: Path,
) -> None:
    """Events the broker acknowledged and then lost with its memory are published again:
    found by checking the log's end, or by an acknowledgement below the last one."""
    port, procs = own_broker
    bootstrap = f"127.0.0.1:{port}"
    await ensure_topics(bootstrap, topic_prefix)
    broker = make_broker(bootstrap, None)
    await broker.connect()
    publisher = KafkaPublisher(broker, bootstrap)
    relay = Relay(pool, publisher, log_ends=publisher)
    emitter = Emitter(producer="vacancies", schema="unused", topic_prefix=topic_prefix)
    topic = topic_for("session.posted", topic_prefix)

    async def emit(n: int) -> list[uuid.UUID]:
        ids = []
        async with pool.acquire() as conn, conn.transaction():
            for _ in range(n):
                ids.append(
                    (await emitter.emit(conn, session_posted(START), region=region)).event_id
                )
        return ids

    async def on_broker() -> set[str]:
        records = await read_topic(bootstrap, topic, want=10_000, timeout_s=1)
        return {json.loads(r.value)["event_id"] for r in records}

    try:
        first = await emit(5)
        assert await relay.once() == 5
        assert await on_broker() == {str(i) for i in first}

        restart(port, procs, tmp_path / "tansu-2.log")
        await ensure_topics(bootstrap, topic_prefix)
        assert await relay.verify(force=True) is True  # the log ends before our marks
        while await relay.once():
            pass
        assert await on_broker() == {str(i) for i in first}

        # Lost again, and this time the relay publishes before any check: the broker's
        # acknowledgement, below what the partition held, gives it away.
        restart(port, procs, tmp_path / "tansu-3.log")
        await ensure_topics(bootstrap, topic_prefix)
        second = await emit(1)
        while await relay.once():
            pass
        assert await on_broker() == {str(i) for i in first + second}
        assert relay.replays == 2
    finally:
        with contextlib.suppress(Exception):
            await broker.stop()
        await publisher.close()


async def test_a_consumer_past_the_end_of_a_new_log_reads_it_from_the_start(
    infra: Infra, pool: asyncpg.Pool, topic_prefix: str, region: str
) -> None:
    """A group whose committed positions lie beyond the log's end (what a broker that
    lost its log leaves behind) would wait for ever; the consumer rewinds and handles
    the events of the new log."""
    await ensure_topics(infra.bootstrap, topic_prefix)
    topic = topic_for("session.posted", topic_prefix)
    consumer = EventConsumer(
        service="mf",
        pool=pool,
        dead_letters=KafkaPublisher(make_broker(infra.bootstrap, None)),
        handlers={"session.posted": _record},
        topic_prefix=topic_prefix,
    )
    # Commit positions far past the end, as a consumer that outlived its broker does.
    stale = AIOKafkaConsumer(
        bootstrap_servers=infra.bootstrap, group_id=consumer.group_id, enable_auto_commit=False
    )
    await stale.start()
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    stale.assign(partitions)
    await stale.commit({tp: OffsetAndMetadata(5_000, "") for tp in partitions})
    await stale.stop()

    broker = make_broker(infra.bootstrap, None)
    consumer.subscribe(broker)
    events = [_event(region) for _ in range(3)]
    watch: asyncio.Task[None] | None = None
    try:
        await broker.start()
        watch = asyncio.create_task(consumer.watch(0.5))
        for event in events:
            await broker.publish(event.model_dump_json().encode(), topic=topic, key=region.encode())

        async def all_handled() -> bool:
            return await _effects(pool) == {e.event_id for e in events}

        await eventually(all_handled, timeout_s=40)
        assert consumer.progress.rewinds >= 1
    finally:
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        await broker.stop()


async def test_a_healthy_broker_is_never_taken_for_a_lost_one(
    infra: Infra, pool: asyncpg.Pool, topic_prefix: str, region: str
) -> None:
    """Events published in one batch, then read in one batch: neither the relay nor the
    consumer finds the log short (Tansu's ListOffsets falls short of the end after a
    batch of several records; reading it would replay and rewind for nothing)."""
    await ensure_topics(infra.bootstrap, topic_prefix)
    broker = make_broker(infra.bootstrap, None)
    publisher = KafkaPublisher(broker, infra.bootstrap)
    relay = Relay(pool, publisher, log_ends=publisher)
    emitter = Emitter(producer="vacancies", schema="unused", topic_prefix=topic_prefix)
    consumer = EventConsumer(
        service="mf",
        pool=pool,
        dead_letters=publisher,
        handlers={"session.posted": _record},
        topic_prefix=topic_prefix,
    )
    consumer.subscribe(broker)
    try:
        await broker.start()
        async with pool.acquire() as conn, conn.transaction():
            for _ in range(50):
                await emitter.emit(conn, session_posted(START), region=region)
        assert await relay.once() == 50
        assert await relay.verify(force=True) is False

        async def all_handled() -> bool:
            return len(await _effects(pool)) == 50

        await eventually(all_handled, timeout_s=40)
        await consumer.check_positions()
        assert consumer.progress.rewinds == 0
        assert relay.replays == 0
    finally:
        await broker.stop()
        await publisher.close()
