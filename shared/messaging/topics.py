"""Explicit topic creation: Tansu (and a locked-down Kafka) create no topic on demand."""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from shared.events.registry import PARTITIONS, all_topics

log = structlog.get_logger(__name__)


async def ensure_topics(
    bootstrap: str,
    prefix: str = "",
    *,
    partitions: int = PARTITIONS,
    replication: int = 1,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create every Fairshare topic that does not exist yet; return all topic names.

    Safe to call from every service at every start: after a broker loss (Tansu keeps
    topics in memory) this is what brings them back.
    """
    wanted = all_topics(prefix)
    deadline = time.monotonic() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in wanted if t not in existing]
            if missing:
                # Another service may win the race to create a topic; that is fine.
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(
                        [NewTopic(t, partitions, replication) for t in missing]
                    )
                log.info("topics created", topics=missing)
            return wanted
        except KafkaConnectionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


async def keep_topics(bootstrap: str, prefix: str = "", *, every_s: float = 5.0) -> None:
    """Recreate missing topics every ``every_s`` seconds, until cancelled.

    Tansu keeps topics in memory, so a broker restart loses them all; consumers
    rejoin by themselves once their topics exist again, and the outbox keeps what
    could not be published meanwhile. Against Apache Kafka this is a cheap no-op.
    """
    while True:
        await asyncio.sleep(every_s)
        try:
            await ensure_topics(bootstrap, prefix, timeout_s=every_s)
        except Exception as exc:  # broker still away: try again next tick
            log.warning("topic check failed; will retry", error=repr(exc))
