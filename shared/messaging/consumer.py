"""The idempotent consumer every service uses.

Each message is parsed against the catalogue; one that fails validation goes to the
dead-letter topic with the reason in its headers and the consumer carries on. A
valid one is handled in one transaction with its inbox record, so a redelivery has
no second effect. A handler that fails for another reason (database away) raises:
the message is not committed and is delivered again (at-least-once).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from shared.db import inbox
from shared.db.outbox import Publisher
from shared.db.types import Conn
from shared.events.envelope import Envelope
from shared.events.registry import EVENTS, dead_letter_topic, topic_for

log = structlog.get_logger(__name__)

Handler = Callable[[Conn, Envelope[Any]], Awaitable[None]]


class Undeliverable(Exception):  # noqa: N818 - reads as what it is: a message we can't use
    """A message that can never be handled: it belongs in the dead-letter topic."""


def parse(topic_type: str, body: bytes) -> Envelope[Any]:
    """Validate ``body`` as an envelope of ``topic_type``; Undeliverable if it is not."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"not JSON: {exc}"
        raise Undeliverable(msg) from exc
    if not isinstance(raw, dict):
        msg = "envelope must be a JSON object"
        raise Undeliverable(msg)
    spec = EVENTS[topic_type]
    if raw.get("type") != spec.type:
        msg = f"type {raw.get('type')!r} does not belong on topic for {spec.type!r}"
        raise Undeliverable(msg)
    if raw.get("schema_version") != spec.version:
        msg = f"schema_version {raw.get('schema_version')!r} unsupported (expects {spec.version})"
        raise Undeliverable(msg)
    try:
        return Envelope[spec.model].model_validate(raw)  # type: ignore[name-defined]
    except ValidationError as exc:
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        msg = f"invalid envelope: {fields}"
        raise Undeliverable(msg) from exc


@dataclass
class EventConsumer:
    """Routes a service's subscribed event types to handlers, idempotently."""

    service: str
    pool: asyncpg.Pool
    dead_letters: Publisher
    handlers: dict[str, Handler]
    topic_prefix: str = ""
    retry_delay_s: float = 0.5

    @property
    def group_id(self) -> str:
        """Consumer group: one per service, so each service sees every event once."""
        return f"{self.topic_prefix}fairshare-{self.service}"

    def topics(self) -> list[str]:
        """Topics this consumer reads."""
        return [topic_for(t, self.topic_prefix) for t in self.handlers]

    def subscribe(self, broker: KafkaBroker) -> None:
        """Register one subscriber for all topics (one group join, not one per topic)."""

        # NACK_ON_ERROR commits each message after it is handled and rewinds on an
        # exception: at-least-once, where FastStream's default would be at-most-once.
        @broker.subscriber(
            *self.topics(),
            group_id=self.group_id,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            title=f"{self.service}-consumer",
        )
        async def on_message(message: KafkaMessage) -> None:
            record: ConsumerRecord[bytes, bytes] = message.raw_message
            await self.handle(record.topic, record.key, message.body, record)

    def _type_of(self, topic: str) -> str:
        return topic.removeprefix(self.topic_prefix)

    async def handle(self, topic: str, key: bytes | None, body: bytes, record: Any = None) -> bool:
        """Handle one message; True if it had an effect, False if duplicate or dead-lettered."""
        started = time.perf_counter()
        event_type = self._type_of(topic)
        try:
            envelope = parse(event_type, body)
        except Undeliverable as exc:
            await self._dead_letter(topic, key, body, str(exc), record)
            return False
        with structlog.contextvars.bound_contextvars(
            event_id=str(envelope.event_id),
            event_type=envelope.type,
            correlation_id=str(envelope.correlation_id),
            region=envelope.region,
        ):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    fresh = await inbox.claim(
                        conn, event_id=envelope.event_id, event_type=envelope.type
                    )
                    if fresh:
                        await self.handlers[event_type](conn, envelope)
            except Exception:
                log.exception("handler failed; message will be redelivered")
                await asyncio.sleep(self.retry_delay_s)
                raise
            log.info(
                "event handled" if fresh else "duplicate event ignored",
                ms=round((time.perf_counter() - started) * 1000, 2),
            )
            return fresh

    async def _dead_letter(
        self, topic: str, key: bytes | None, body: bytes, reason: str, record: Any
    ) -> None:
        headers = {
            "dlq-reason": reason[:2000],
            "dlq-source-topic": topic,
            "dlq-consumer": self.group_id,
        }
        if record is not None:
            headers["dlq-source-partition"] = str(record.partition)
            headers["dlq-source-offset"] = str(record.offset)
        await self.dead_letters.publish(
            topic=dead_letter_topic(self.topic_prefix),
            key=(key or b"").decode(errors="replace"),
            value=body,
            headers=headers,
        )
        log.warning("message dead-lettered", source_topic=topic, reason=reason[:300])
