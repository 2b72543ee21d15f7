"""The FastStream Kafka broker as every service builds it, and the outbox's publisher."""

from __future__ import annotations

from typing import Any

from faststream.kafka import KafkaBroker


def make_broker(bootstrap: str, logger: Any) -> KafkaBroker:
    """A broker with small producer batches.

    Tansu can skip the rest of a record batch when a consumer fetches from inside
    it, so batches are kept small (``linger_ms`` of 1) and idempotence stays off
    (Tansu 0.6 refuses InitProducerId).
    """
    return KafkaBroker(
        bootstrap,
        linger_ms=1,
        enable_idempotence=False,
        acks="all",
        logger=logger,
        client_id="fairshare",
    )


class KafkaPublisher:
    """Publishes raw bytes through a connected broker; awaits the broker's ack."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def publish(self, *, topic: str, key: str, value: bytes, headers: dict[str, str]) -> None:
        """Send one message keyed by region."""
        await self._broker.publish(value, topic=topic, key=key.encode(), headers=headers)
