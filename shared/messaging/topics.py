"""Explicit topic creation: Tansu (and a locked-down Kafka) create no topic on demand."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError, for_code

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


@dataclass(frozen=True)
class TopicSpec:
    """One topic as declared: its name, partitions, replication and settings."""

    name: str
    partitions: int
    replication: int
    config: dict[str, str] = field(default_factory=dict)


def declared_topics(prefix: str = "", *, replication: int = 1) -> list[TopicSpec]:
    """Every Fairshare topic as it should be: the one declaration that `fairshare topics
    create`, the services and `fairshare dev` all create from. Replication is the
    deployment's (1 on one broker, 3 on a three-broker cluster); the rest is fixed."""
    configs = topic_configs(prefix)
    return [TopicSpec(t, PARTITIONS, replication, configs[t]) for t in all_topics(prefix)]


@dataclass(frozen=True)
class TopicState:
    """A declared topic and what the broker holds of it (None: the broker did not say)."""

    spec: TopicSpec
    exists: bool
    partitions: int | None = None
    replication: int | None = None
    config: dict[str, str] | None = None

    def differences(self) -> list[str]:
        """How the topic on the broker differs from its declaration (empty: it doesn't)."""
        if not self.exists:
            return ["missing"]
        spec, found = self.spec, []
        if self.partitions is not None and self.partitions != spec.partitions:
            found.append(f"partitions {self.partitions}, declared {spec.partitions}")
        if self.replication is not None and self.replication != spec.replication:
            found.append(f"replication {self.replication}, declared {spec.replication}")
        for key, want in (spec.config if self.config is not None else {}).items():
            have = (self.config or {}).get(key)
            if have is not None and have != want:
                found.append(f"{key}={have}, declared {want}")
        return found


class TopicsMissingError(RuntimeError):
    """Topics a service needs are not on the broker, and it was told not to create them."""

    def __init__(self, missing: list[str], bootstrap: str) -> None:
        self.missing = missing
        super().__init__(
            f"Kafka topics missing on {bootstrap}: {', '.join(missing)}. Create them with"
            " `fairshare topics create` (in compose: `docker compose run --rm topics`),"
            " or set FAIRSHARE_TOPICS=create to let services create their own."
        )


async def _admin(
    bootstrap: str, timeout_s: float, client_options: dict[str, Any] | None
) -> AIOKafkaAdminClient:
    """A started admin client, retrying until the broker answers or ``timeout_s`` passes
    (then KafkaConnectionError)."""
    deadline = time.monotonic() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(client_options or {}))
        try:
            await admin.start()
            return admin
        except KafkaConnectionError:
            await admin.close()
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _states(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> list[TopicState]:
    # Only topics already listed are described: a metadata request naming a missing
    # topic creates it on a broker that creates topics on demand (Tansu does).
    existing = set(await admin.list_topics())
    present = [spec.name for spec in specs if spec.name in existing]
    shapes: dict[str, tuple[int, int]] = {}
    configs: dict[str, dict[str, str]] = {}
    if present:
        for topic in await admin.describe_topics(present):
            parts = topic.get("partitions") or []
            replicas = max((len(p.get("replicas") or []) for p in parts), default=0)
            shapes[topic["topic"]] = (len(parts), replicas)
        with contextlib.suppress(Exception):  # a broker without DescribeConfigs: unknown
            resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in present]
            for response in await admin.describe_configs(resources):
                for resource in response.resources:
                    _code, _message, _type, name, entries = resource[:5]
                    configs[name] = {entry[0]: entry[1] for entry in entries}
    states = []
    for spec in specs:
        if spec.name not in existing:
            states.append(TopicState(spec, exists=False))
            continue
        partitions, replication = shapes.get(spec.name, (None, None))
        states.append(
            TopicState(
                spec,
                exists=True,
                partitions=partitions or None,
                replication=replication or None,
                config=configs.get(spec.name),
            )
        )
    return states


async def inspect_topics(
    bootstrap: str,
    specs: list[TopicSpec],
    *,
    timeout_s: float = 30.0,
    client_options: dict[str, Any] | None = None,
) -> list[TopicState]:
    """What the broker holds of each declared topic; creates nothing."""
    admin = await _admin(bootstrap, timeout_s, client_options)
    try:
        return await _states(admin, specs)
    finally:
        await admin.close()


async def create_declared(
    bootstrap: str,
    specs: list[TopicSpec],
    *,
    timeout_s: float = 30.0,
    client_options: dict[str, Any] | None = None,
) -> tuple[list[str], dict[str, str], list[TopicState]]:
    """Create each declared topic that is missing, as declared. Return the names created
    now, the broker's reason for each it refused (such as a replication factor larger
    than its brokers), and every topic's state afterwards. Existing topics are left as
    they are."""
    admin = await _admin(bootstrap, timeout_s, client_options)
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        refused: dict[str, str] = {}
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(s.name, s.partitions, s.replication, topic_configs=s.config)
                    for s in missing
                ]
            )
            for error in getattr(response, "topic_errors", ()):
                name, code = error[0], error[1]
                # Already there: another service or job was quicker, which is fine.
                if code not in (0, TopicAlreadyExistsError.errno):
                    message = error[2] if len(error) > 2 and error[2] else None
                    refused[name] = message or for_code(code).__name__
        created = [s.name for s in missing if s.name not in refused]
        return created, refused, await _states(admin, specs)
    finally:
        await admin.close()


async def require_topics(
    bootstrap: str,
    prefix: str = "",
    *,
    timeout_s: float = 30.0,
    client_options: dict[str, Any] | None = None,
) -> list[str]:
    """Check that every Fairshare topic exists, creating none; return their names, or
    raise TopicsMissingError naming the missing ones and how to create them."""
    wanted = all_topics(prefix)
    admin = await _admin(bootstrap, timeout_s, client_options)
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    missing = [t for t in wanted if t not in existing]
    if missing:
        raise TopicsMissingError(missing, bootstrap)
    return wanted


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
    configs = {s.name: s.config for s in declared_topics(prefix, replication=replication)}
    wanted = list(configs)
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
