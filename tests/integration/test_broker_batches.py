"""The producer sends a burst as large record batches (shared/messaging/kafka.py); a
consumer that starts reading inside one (a rewind after a failure, a committed
position mid-batch) must still get every later record once, in order. Over the real
broker, as the services build their producer."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.messaging.kafka import KafkaPublisher, make_broker
from tests.conftest import Infra

pytestmark = pytest.mark.integration

COUNT = 500


async def test_reading_from_inside_a_large_batch_loses_nothing(infra: Infra) -> None:
    topic = f"batches-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    broker = make_broker(infra.bootstrap, None)
    await broker.connect()
    try:
        positions = await KafkaPublisher(broker).publish_many(
            [
                {
                    "topic": topic,
                    "key": "R1",
                    "value": json.dumps({"i": i, "pad": "x" * 900}).encode(),
                    "headers": {},
                }
                for i in range(COUNT)
            ]
        )
    finally:
        await broker.stop()
    assert [p[1] for p in positions if p] == list(range(COUNT))
    tp = TopicPartition(topic, 0)
    for start in (0, 57, 199, 333, COUNT - 1):
        reader = AIOKafkaConsumer(
            bootstrap_servers=infra.bootstrap,
            enable_auto_commit=False,
            max_partition_fetch_bytes=64 * 1024,  # less than one batch
        )
        await reader.start()
        got: list[int] = []
        try:
            reader.assign([tp])
            reader.seek(tp, start)
            deadline = asyncio.get_running_loop().time() + 10
            while (
                not got or got[-1] != COUNT - 1
            ) and asyncio.get_running_loop().time() < deadline:
                fetched = await reader.getmany(tp, timeout_ms=200)
                got += [json.loads(r.value)["i"] for r in fetched.get(tp, [])]
        finally:
            await reader.stop()
        assert got == list(range(start, COUNT)), f"read from {start}"
