"""The FastStream Kafka broker as every service builds it, and the outbox's publisher."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity

from shared.db.outbox import Partition

# A produce request's record batch per partition, at most. The client's default (16 KiB,
# about 16 of our events) made the outbox relay send 200 events as 13 requests one after
# another (one in flight per partition, to keep order); with Tansu answering each in
# 20-60 ms under load, matching's relay published 200 events in 300 ms and a plan's
# burst of thousands reached vacancies seconds late. Half of Apache Kafka's default
# 1 MB message limit, so a batch is never refused there.
MAX_BATCH_BYTES = 512 * 1024


def make_broker(bootstrap: str, logger: Any, security: BaseSecurity | None = None) -> KafkaBroker:
    """A broker whose producer sends a burst as few, large batches.

    Consumers may start reading inside a batch (a rewind after a failure, a committed
    position mid-batch); tests/integration/test_broker_batches.py reads a burst of 500
    from five offsets inside its batches and gets every later event once, in order.
    Idempotence stays off (Tansu 0.6 refuses InitProducerId).
    """
    return KafkaBroker(
        bootstrap,
        linger_ms=5,
        max_batch_size=MAX_BATCH_BYTES,
        enable_idempotence=False,
        acks="all",
        logger=logger,
        # FastStream's "Received" and "Processed" for every message go to debug: our
        # consumer logs each batch it handles, and two lines per message were most of
        # a busy service's log volume.
        log_level=logging.DEBUG,
        client_id="fairshare",
        security=security,
    )


class KafkaPublisher:
    """Publishes raw bytes through a connected broker; awaits the broker's ack.

    Also reads where partitions' logs end, with a group-less consumer of its own, so
    the outbox relay can tell a broker that lost its log (see shared/db/outbox.py).
    """

    def __init__(
        self,
        broker: KafkaBroker,
        bootstrap: str | None = None,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self._broker = broker
        self._bootstrap = bootstrap
        # TLS and SASL for its own readers, as the broker has them (shared/messaging/security.py).
        self._options = client_options or {}
        self._reader: AIOKafkaConsumer | None = None

    async def publish(
        self, *, topic: str, key: str, value: bytes, headers: dict[str, str]
    ) -> tuple[int, int] | None:
        """Send one message keyed by region; (partition, offset) as acknowledged."""
        meta = await self._broker.publish(value, topic=topic, key=key.encode(), headers=headers)
        partition, offset = getattr(meta, "partition", None), getattr(meta, "offset", None)
        if isinstance(partition, int) and isinstance(offset, int):
            return partition, offset
        return None

    async def publish_many(self, messages: list[dict[str, Any]]) -> list[tuple[int, int] | None]:
        """Send many messages at once and await every ack; positions in the same order.

        One await per message capped the outbox relay at a few hundred a second. The
        producer keeps the order within a partition (one batch in flight per partition).
        """
        futures = [
            await self._broker.publish(
                m["value"],
                topic=m["topic"],
                key=m["key"].encode(),
                headers=m["headers"],
                no_confirm=True,
            )
            for m in messages
        ]
        positions: list[tuple[int, int] | None] = []
        for meta in await asyncio.gather(*futures):
            partition, offset = getattr(meta, "partition", None), getattr(meta, "offset", None)
            ok = isinstance(partition, int) and isinstance(offset, int)
            positions.append((partition, offset) if ok else None)  # type: ignore[arg-type]
        return positions

    async def _started_reader(self) -> AIOKafkaConsumer:
        if self._bootstrap is None:
            msg = "reading the broker's logs needs the bootstrap address"
            raise RuntimeError(msg)
        if self._reader is None:
            reader = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap, enable_auto_commit=False, **self._options
            )
            await asyncio.wait_for(reader.start(), timeout=10)
            self._reader = reader
        return self._reader

    async def offsets_reader(self) -> AIOKafkaConsumer:
        """The group-less consumer kept for reading the broker's offsets (ListOffsets).

        It never fetches, so its requests are answered at once: on a fetching consumer's
        connection a ListOffsets waits behind the fetch's long poll (500 ms, measured).
        """
        return await self._started_reader()

    async def ping(self) -> None:
        """Ask the broker for its topics: raises if it does not answer."""
        reader = await self._started_reader()
        await reader.topics()

    async def end_offsets(self, partitions: list[Partition]) -> dict[Partition, int]:
        """Next offset of each partition's log; 0 for a topic the broker no longer has.

        Read as the high watermark of a fetch, not with ListOffsets: Tansu answers
        ListOffsets with the first offset of the last record batch plus one, short of
        the end whenever that batch held more than one record (checked against Tansu
        0.6 here), which would look like a lost log. A fresh reader each time, so that
        no high watermark from before a broker restart can stand in for the new one.
        """
        known = await asyncio.wait_for((await self._started_reader()).topics(), timeout=10)
        ends = {(t, p): 0 for t, p in partitions if t not in known}
        present = [TopicPartition(t, p) for t, p in partitions if t in known]
        if not present:
            return ends
        reader = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            enable_auto_commit=False,
            max_partition_fetch_bytes=1024,
            **self._options,
        )
        await asyncio.wait_for(reader.start(), timeout=10)
        try:
            reader.assign(present)
            for tp in present:
                reader.seek(tp, 0)
            deadline = asyncio.get_running_loop().time() + 10
            while any(reader.highwater(tp) is None for tp in present):
                if asyncio.get_running_loop().time() > deadline:
                    msg = "the broker gave no high watermark within 10 s"
                    raise TimeoutError(msg)
                await reader.getmany(*present, timeout_ms=200, max_records=1)
            ends.update({(tp.topic, tp.partition): reader.highwater(tp) or 0 for tp in present})
        finally:
            await reader.stop()
        return ends

    async def close(self) -> None:
        """Stop the log-end reader, if one was started."""
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.stop()
