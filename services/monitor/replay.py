"""Rebuild the monitor's projections by reading its topics again from the start.

Every projection and the inbox are emptied in one transaction. Then each partition of
the streams the monitor reads is assigned by hand (no consumer group, nothing
committed, so the running service's own group is left alone) and read from its
earliest offset up to where its log ended just after the emptying, through the
service's own consumer and handlers.

The service may keep running meanwhile: whatever it handles after the emptying is kept
(an event both it and the replay read is handled once, by the inbox), because every
projection is indifferent to the order of events. Its page shows the figures coming
back as the replay goes. The figures are those of the events the broker still keeps:
Apache Kafka keeps them as long as the topics' retention says; the local broker (Tansu)
keeps them in memory only, until it restarts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.monitor import SERVICE, repository
from services.monitor.handlers import handlers
from shared.messaging.consumer import EventConsumer

log = structlog.get_logger(__name__)

# Attempts at one batch whose handling fails (the database away, say) before giving up.
ATTEMPTS = 5


@dataclass
class Replayed:
    """What a rebuild read and did."""

    total: int = 0  # messages in the logs between their starts and the ends taken
    read: int = 0
    handled: int = 0
    passed_over: int = 0  # other services' business, on a stream the monitor reads
    duplicates: int = 0  # handled already (by the running service, since the emptying)
    unreadable: int = 0  # dead-lettered when first read; counted, not sent again
    seconds: float = 0.0
    # "topic[partition]" → first offset still kept, where the broker no longer keeps the
    # log from its start (retention): what was before it can't come back.
    trimmed: dict[str, int] = field(default_factory=dict)
    missing_topics: list[str] = field(default_factory=list)


@dataclass
class _Counted:
    """Stands in for the dead-letter topic: an unreadable message was parked there when
    the service first read it, so a replay counts it instead of parking it again."""

    count: int = 0

    async def publish(
        self,
        *,
        topic: str,
        key: str,  # noqa: ARG002 - the message itself stays where it was parked
        value: bytes,  # noqa: ARG002
        headers: dict[str, str],
    ) -> tuple[int, int] | None:
        self.count += 1
        log.warning("unreadable message passed over", topic=topic, reason=headers.get("dlq-reason"))
        return None


async def empty(pool: asyncpg.Pool) -> None:
    """Empty every projection and the inbox, in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        await repository.truncate_projections(conn)


async def _log_ends(
    reader: AIOKafkaConsumer, partitions: list[TopicPartition], timeout_s: float
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, list[Any]]]:
    """Where each partition's log ends now, and the records fetched finding out.

    Read as the high watermark of a fetch, not with ListOffsets: Tansu answers
    ListOffsets short of the end (see shared/messaging/kafka.py).
    """
    fetched: dict[TopicPartition, list[Any]] = {}
    deadline = time.monotonic() + timeout_s
    while any(reader.highwater(tp) is None for tp in partitions):
        if time.monotonic() > deadline:
            msg = f"the broker gave no high watermark within {timeout_s:g} s"
            raise TimeoutError(msg)
        for tp, records in (await reader.getmany(*partitions, timeout_ms=200)).items():
            fetched.setdefault(tp, []).extend(records)
    return {tp: reader.highwater(tp) or 0 for tp in partitions}, fetched


async def _handle(consumer: EventConsumer, records: list[Any]) -> None:
    """Handle one batch as the service does; a failing batch is tried again (the inbox
    makes that safe), up to ``ATTEMPTS`` times."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            await consumer.handle_batch(records)
        except Exception as exc:
            if attempt == ATTEMPTS:
                raise
            log.warning("replayed batch failed; trying it again", error=repr(exc)[:300])
            await asyncio.sleep(0.5 * attempt)
        else:
            return


async def rebuild(
    pool: asyncpg.Pool,
    *,
    bootstrap: str,
    topic_prefix: str = "",
    on_progress: Callable[[int, int], None] | None = None,
    stall_s: float = 30.0,
    client_options: dict[str, Any] | None = None,
) -> Replayed:
    """Empty the projections behind ``pool`` and replay the monitor's topics into them.

    ``on_progress(read, total)`` is called once the ends are known and after each
    batch. Raises TimeoutError if the broker gives nothing for ``stall_s`` seconds
    while messages remain.
    """
    started = time.monotonic()
    unreadable = _Counted()
    consumer = EventConsumer(
        service=SERVICE,
        pool=pool,
        dead_letters=unreadable,
        handlers=handlers(),
        topic_prefix=topic_prefix,
        retry_delay_s=0.2,
        max_attempts=3,
    )
    await empty(pool)
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **(client_options or {}),
    )
    await asyncio.wait_for(reader.start(), timeout=10)
    result = Replayed()
    try:
        known = await asyncio.wait_for(reader.topics(), timeout=10)
        result.missing_topics = [t for t in consumer.topics() if t not in known]
        partitions = [
            TopicPartition(topic, p)
            for topic in consumer.topics()
            if topic in known
            for p in sorted(reader.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return result
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        starts = {tp: await reader.position(tp) for tp in partitions}
        result.trimmed = {f"{tp.topic}[{tp.partition}]": n for tp, n in starts.items() if n > 0}
        ends, fetched = await _log_ends(reader, partitions, stall_s)
        result.total = sum(max(0, ends[tp] - starts[tp]) for tp in partitions)
        if on_progress:
            on_progress(0, result.total)
        remaining = {tp for tp in partitions if starts[tp] < ends[tp]}
        reader.pause(*(set(partitions) - remaining))
        last_news = time.monotonic()
        while remaining:
            batch = fetched or await reader.getmany(*remaining, timeout_ms=500, max_records=500)
            fetched = {}
            records = [
                r for tp, rs in batch.items() if tp in remaining for r in rs if r.offset < ends[tp]
            ]
            if records:
                last_news = time.monotonic()
                await _handle(consumer, records)
                result.read += len(records)
                if on_progress:
                    on_progress(result.read, result.total)
            elif time.monotonic() - last_news > stall_s:
                msg = f"no messages for {stall_s:g} s with {len(remaining)} partitions unread"
                raise TimeoutError(msg)
            for tp in list(remaining):
                if await reader.position(tp) >= ends[tp]:
                    remaining.discard(tp)
                    reader.pause(tp)  # what comes after the end is the service's to read
    finally:
        await reader.stop()
    progress = consumer.progress
    result.handled, result.passed_over = progress.handled, progress.passed_over
    result.duplicates, result.unreadable = progress.duplicates, unreadable.count
    result.seconds = round(time.monotonic() - started, 2)
    return result
