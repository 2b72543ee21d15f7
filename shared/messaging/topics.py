"""Explicit topic creation: Tansu (and a locked-down Kafka) create no topic on demand."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from shared.events.registry import (
    PARTITIONS,
    PRODUCERS,
    all_topics,
    dead_letter_topic,
    stream_for,
)

log = structlog.get_logger(__name__)

# Every topic's settings, declared once here and sent with CreateTopics to any broker.
# The event streams are kept for ever: `fairshare monitor rebuild` replays them from the
# earliest offset and gives the same figures only if no event was ever deleted. Deleted,
# never compacted: the key is the region, so compaction would keep one event a region.
# Dead letters are kept 90 days, for someone to read the reason and replay by hand.
# Tansu (make run) takes these settings and, holding topics in memory, has nothing to
# apply them to. The reasoning and the disk it costs: deploy/README.md, "Topic retention".
KEEP_FOREVER: dict[str, str] = {
    "cleanup.policy": "delete",
    "retention.ms": "-1",
    "retention.bytes": "-1",
}
DEAD_LETTER_RETENTION_DAYS = 90
DEAD_LETTER_CONFIG: dict[str, str] = {
    "cleanup.policy": "delete",
    "retention.ms": str(DEAD_LETTER_RETENTION_DAYS * 24 * 3600 * 1000),
    "retention.bytes": "-1",
}


def topic_configs(prefix: str = "") -> dict[str, dict[str, str]]:
    """Each topic's settings (cleanup and retention), by topic name."""
    configs = {stream_for(producer, prefix): dict(KEEP_FOREVER) for producer in PRODUCERS}
    configs[dead_letter_topic(prefix)] = dict(DEAD_LETTER_CONFIG)
    return configs


async def ensure_topics(
    bootstrap: str,
    prefix: str = "",
    *,
    partitions: int = PARTITIONS,
    replication: int = 1,
    timeout_s: float = 30.0,
    client_options: dict[str, Any] | None = None,
) -> list[str]:
    """Create every Fairshare topic that does not exist yet; return all topic names.

    Safe to call from every service at every start: after a broker loss (Tansu keeps
    topics in memory) this is what brings them back.
    """
    wanted = all_topics(prefix)
    configs = topic_configs(prefix)
    deadline = time.monotonic() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(client_options or {}))
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in wanted if t not in existing]
            if missing:
                # Another service may win the race to create a topic; that is fine.
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(
                        [
                            NewTopic(t, partitions, replication, topic_configs=configs[t])
                            for t in missing
                        ]
                    )
                log.info("topics created", topics=missing)
            return wanted
        except KafkaConnectionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


async def keep_topics(
    bootstrap: str,
    prefix: str = "",
    *,
    every_s: float = 5.0,
    client_options: dict[str, Any] | None = None,
) -> None:
    """Recreate missing topics every ``every_s`` seconds, until cancelled.

    Tansu keeps topics in memory, so a broker restart loses them all; consumers
    rejoin by themselves once their topics exist again, and the outbox keeps what
    could not be published meanwhile. Against Apache Kafka this is a cheap no-op.
    """
    while True:
        await asyncio.sleep(every_s)
        try:
            await ensure_topics(bootstrap, prefix, timeout_s=every_s, client_options=client_options)
        except Exception as exc:  # broker still away: try again next tick
            log.warning("topic check failed; will retry", error=repr(exc))
