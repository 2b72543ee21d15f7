"""The wiring every service's composition root shares.

Opens the pool, migrates the service's schema, creates topics, starts the broker
with the service's consumer and runs the outbox relay, the consumer's position
watch and the pruning of kept records; tears it all down in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from faststream.kafka import KafkaBroker

from shared.db.migrations import apply_migrations
from shared.db.outbox import Relay, pending_count, prune, run_relay
from shared.db.pool import connect, create_pool
from shared.db.roles import act_as_schema_owner
from shared.messaging.consumer import EventConsumer, Handler
from shared.messaging.emitter import Emitter
from shared.messaging.kafka import KafkaPublisher, make_broker
from shared.messaging.security import broker_security, client_options
from shared.messaging.topics import (
    TopicsMissingError,
    ensure_topics,
    keep_topics,
    require_topics,
)
from shared.metrics import Metrics
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
    publisher: KafkaPublisher | None = None
    relay: Relay | None = None
    consumer: EventConsumer | None = None

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether the service can do its work now, and what each check found.

        Ready means: the database answers, the broker answers, the consumer (if any)
        is making progress and the outbox relay is publishing.
        """
        problems: list[str] = []
        report: dict[str, Any] = {"service": self.service}
        try:
            report["outbox_pending"] = await asyncio.wait_for(pending_count(self.pool), 2)
            report["database"] = "ok"
        except Exception as exc:
            report["database"] = f"unreachable: {type(exc).__name__}"
            problems.append("database unreachable")
        if self.publisher is not None:
            try:
                await asyncio.wait_for(self.publisher.ping(), 2)
                report["broker"] = "ok"
            except Exception as exc:
                report["broker"] = f"unreachable: {type(exc).__name__}"
                problems.append("broker unreachable")
        if self.consumer is not None:
            progress = self.consumer.progress
            report["consumer"] = {
                "handled": progress.handled,
                "duplicates": progress.duplicates,
                "dead_lettered": progress.dead_lettered,
                "rewinds": progress.rewinds,
                "lag": progress.lag,
                "total_lag": sum(progress.lag.values()),
                "lag_s": round(progress.lag_s(), 3),
                "last_progress_s_ago": round(time.monotonic() - progress.last_progress, 1),
            }
            stalled = self.consumer.stalled(self.settings.stall_s)
            if stalled:
                problems.append(f"consumer stalled: {stalled}")
        if self.relay is not None:
            report["outbox_replays"] = self.relay.replays
            failing = self.relay.failing_since
            if failing is not None and time.monotonic() - failing > self.settings.stall_s:
                problems.append("outbox relay cannot publish")
        report["status"] = "ok" if not problems else "unready"
        report["problems"] = problems
        return not problems, report

    async def health(self) -> dict[str, Any]:
        """The readiness report (kept for callers that only want the details)."""
        return (await self.readiness())[1]


async def migrate(settings: ServiceSettings, *, schema: str, migrations_dir: Path) -> list[str]:
    """Apply the service's migrations; return the ones applied now.

    As the schema's owner whoever connects (the service's role itself, or the admin
    role or the superuser acting as it), so everything made is the service's.
    """
    conn = await connect(settings.database_url, "public")
    try:
        await act_as_schema_owner(conn, schema, local=False)
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
    metrics: Metrics | None = None,
) -> AsyncIterator[Runtime]:
    """Run the service's infrastructure for the duration of the context.

    FAIRSHARE_TOPICS=require (production): the topics must exist already (made once by
    `fairshare topics create`), checked before anything else; a missing one stops the
    service, naming it. create (the default; the embedded broker): the service creates
    them, and a keeper recreates them while it runs, since Tansu loses them on restart.
    """
    security = broker_security(settings)
    kafka_options = client_options(security)
    if settings.topics == "require":
        try:
            await require_topics(
                settings.kafka_bootstrap, settings.topic_prefix, client_options=kafka_options
            )
        except TopicsMissingError as exc:
            log.error("topics missing; not starting", topics=exc.missing, error=str(exc))
            raise
    applied = await migrate(settings, schema=schema, migrations_dir=migrations_dir)
    if applied:
        log.info("migrations applied", migrations=applied)
    if settings.topics == "create":
        await ensure_topics(
            settings.kafka_bootstrap, settings.topic_prefix, client_options=kafka_options
        )
    pool = await create_pool(settings.database_url, schema)
    broker = make_broker(settings.kafka_bootstrap, structlog.get_logger("faststream"), security)
    publisher = KafkaPublisher(broker, settings.kafka_bootstrap, kafka_options)
    consumer: EventConsumer | None = None
    if handlers:
        consumer = EventConsumer(
            service=service,
            pool=pool,
            dead_letters=publisher,
            handlers=handlers,
            topic_prefix=settings.topic_prefix,
            max_attempts=settings.consumer_max_attempts,
            retry_delay_s=settings.consumer_retry_s,
            session_timeout_ms=settings.consumer_session_timeout_ms,
            metrics=metrics or Metrics(),
        )
        consumer.subscribe(broker)
    await broker.start()
    relay = Relay(pool, publisher, log_ends=publisher, verify_every_s=settings.topic_check_s)
    runtime = Runtime(
        service=service,
        schema=schema,
        settings=settings,
        pool=pool,
        broker=broker,
        emitter=emitter,
        publisher=publisher,
        relay=relay,
        consumer=consumer,
    )
    tasks = [
        asyncio.create_task(
            run_relay(
                relay,
                schema=schema,
                dsn=settings.database_url,
                poll_s=settings.outbox_poll_s,
                gather_s=settings.outbox_gather_s,
            ),
            name=f"{service}-outbox-relay",
        ),
        asyncio.create_task(_prune_forever(runtime), name=f"{service}-pruning"),
    ]
    if settings.topics == "create":  # only the embedded broker loses its topics
        tasks.append(
            asyncio.create_task(
                keep_topics(
                    settings.kafka_bootstrap,
                    settings.topic_prefix,
                    every_s=settings.topic_check_s,
                    client_options=kafka_options,
                ),
                name=f"{service}-topic-keeper",
            )
        )
    if consumer is not None:
        tasks.append(
            asyncio.create_task(consumer.watch(settings.lag_check_s), name=f"{service}-watch")
        )
    try:
        yield runtime
    finally:
        await _shut_down(tasks, broker, publisher, pool)


async def _shut_down(
    tasks: list[asyncio.Task[None]],
    broker: KafkaBroker,
    publisher: KafkaPublisher,
    pool: asyncpg.Pool,
) -> None:
    """Stop in order, each step bounded: a stop that hangs must not keep the process up
    (a supervisor or orchestrator would have to kill it, and a restart waits on that)."""
    for task in tasks:
        task.cancel()
    steps: list[tuple[str, Any]] = [
        ("background tasks", asyncio.gather(*tasks, return_exceptions=True)),
        ("broker", broker.stop()),
        ("log reader", publisher.close()),
        ("database pool", pool.close()),
    ]
    for name, step in steps:
        try:
            await asyncio.wait_for(step, timeout=SHUTDOWN_STEP_S)
        except (TimeoutError, Exception) as exc:
            log.warning("shutdown step did not finish cleanly", step=name, error=repr(exc))
    pool.terminate()  # anything still open after a stuck close


SHUTDOWN_STEP_S = 5.0


async def _prune_forever(runtime: Runtime) -> None:
    """Prune published outbox rows and old inbox rows (see shared/db/outbox.py)."""
    while True:
        try:
            outbox, inbox = await prune(runtime.pool)
            if outbox or inbox:
                log.info("pruned kept records", outbox=outbox, inbox=inbox)
        except Exception as exc:
            log.warning("pruning failed; will retry", error=repr(exc))
        await asyncio.sleep(runtime.settings.prune_every_s)
