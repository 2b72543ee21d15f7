"""The wiring every service's composition root shares.

Opens the pool, migrates the service's schema, creates topics, starts the broker
with the service's consumer and runs the outbox relay; tears it all down in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from faststream.kafka import KafkaBroker

from shared.db.migrations import apply_migrations
from shared.db.outbox import pending_count, run_relay
from shared.db.pool import connect, create_pool
from shared.messaging.consumer import EventConsumer, Handler
from shared.messaging.emitter import Emitter
from shared.messaging.kafka import KafkaPublisher, make_broker
from shared.messaging.topics import ensure_topics, keep_topics
from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)


@dataclass
class Runtime:
    """What a running service holds: its pool, broker and outbox emitter."""

    service: str
    schema: str
    settings: ServiceSettings
    pool: asyncpg.Pool
    broker: KafkaBroker
    emitter: Emitter

    async def health(self) -> dict[str, Any]:
        """A liveness answer that also proves the database is reachable."""
        return {
            "status": "ok",
            "service": self.service,
            "outbox_pending": await pending_count(self.pool),
        }


async def migrate(settings: ServiceSettings, *, schema: str, migrations_dir: Path) -> list[str]:
    """Apply the service's migrations; return the ones applied now."""
    conn = await connect(settings.database_url, "public")
    try:
        return await apply_migrations(conn, schema, migrations_dir)
    finally:
        await conn.close()


def emitter_for(settings: ServiceSettings, *, service: str, schema: str) -> Emitter:
    """The outbox emitter of ``service``; build it first, handlers need it."""
    return Emitter(producer=service, schema=schema, topic_prefix=settings.topic_prefix)


@contextlib.asynccontextmanager
async def running(
    settings: ServiceSettings,
    *,
    service: str,
    schema: str,
    migrations_dir: Path,
    emitter: Emitter,
    handlers: dict[str, Handler] | None = None,
) -> AsyncIterator[Runtime]:
    """Run the service's infrastructure for the duration of the context."""
    applied = await migrate(settings, schema=schema, migrations_dir=migrations_dir)
    if applied:
        log.info("migrations applied", migrations=applied)
    await ensure_topics(settings.kafka_bootstrap, settings.topic_prefix)
    pool = await create_pool(settings.database_url, schema)
    broker = make_broker(settings.kafka_bootstrap, structlog.get_logger("faststream"))
    publisher = KafkaPublisher(broker)
    if handlers:
        EventConsumer(
            service=service,
            pool=pool,
            dead_letters=publisher,
            handlers=handlers,
            topic_prefix=settings.topic_prefix,
        ).subscribe(broker)
    await broker.start()
    relay = asyncio.create_task(
        run_relay(
            pool,
            publisher,
            schema=schema,
            dsn=settings.database_url,
            poll_s=settings.outbox_poll_s,
        ),
        name=f"{service}-outbox-relay",
    )
    keeper = asyncio.create_task(
        keep_topics(
            settings.kafka_bootstrap, settings.topic_prefix, every_s=settings.topic_check_s
        ),
        name=f"{service}-topic-keeper",
    )
    try:
        yield Runtime(
            service=service,
            schema=schema,
            settings=settings,
            pool=pool,
            broker=broker,
            emitter=emitter,
        )
    finally:
        for task in (keeper, relay):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await broker.stop()
        await pool.close()
