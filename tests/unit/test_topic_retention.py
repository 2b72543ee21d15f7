"""Topic retention is declared once and sent with every topic created: the event streams
are kept for ever (so `fairshare monitor rebuild` can replay them from the start in
production), never compacted, and the dead letters for a bounded time."""

from __future__ import annotations

from typing import Any

import pytest

from shared.events.registry import PARTITIONS, PRODUCERS, all_topics, dead_letter_topic
from shared.messaging import topics
from shared.messaging.topics import DEAD_LETTER_RETENTION_DAYS, ensure_topics, topic_configs

DAY_MS = 24 * 3600 * 1000
# Topic-level settings of Apache Kafka 3.9 this declaration may use (Kafka refuses an
# unknown one at CreateTopics, while Tansu takes anything, so a typo would pass locally).
KAFKA_TOPIC_SETTINGS = {
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "segment.ms",
    "segment.bytes",
    "min.insync.replicas",
    "max.message.bytes",
    "compression.type",
}


@pytest.mark.parametrize("prefix", ["", "run42."])
def test_every_topic_has_its_settings_and_nothing_else_does(prefix: str) -> None:
    assert set(topic_configs(prefix)) == set(all_topics(prefix))


def test_event_streams_are_kept_for_ever_and_never_compacted() -> None:
    """Replaying from the earliest offset gives the same figures only if no event was
    deleted; compaction would keep one event per key, and the key is the region."""
    configs = topic_configs()
    streams = [f"{p}.events" for p in PRODUCERS]
    assert streams, "no producers?"
    for stream in streams:
        assert configs[stream]["retention.ms"] == "-1", stream
        assert configs[stream]["retention.bytes"] == "-1", stream
        assert configs[stream]["cleanup.policy"] == "delete", stream


def test_dead_letters_are_kept_long_enough_to_read_but_not_for_ever() -> None:
    config = topic_configs()[dead_letter_topic()]
    assert config["cleanup.policy"] == "delete"
    assert int(config["retention.ms"]) == DEAD_LETTER_RETENTION_DAYS * DAY_MS
    assert 30 <= DEAD_LETTER_RETENTION_DAYS <= 365


def test_settings_are_ones_kafka_knows_with_values_it_accepts() -> None:
    for topic, config in topic_configs().items():
        assert set(config) <= KAFKA_TOPIC_SETTINGS, topic
        for key, value in config.items():
            if key.endswith((".ms", ".bytes")):
                assert int(value) == -1 or int(value) > 0, (topic, key, value)
        assert set(config["cleanup.policy"].split(",")) <= {"delete", "compact"}


class _FakeAdmin:
    """Stands in for aiokafka's admin client: some topics exist, the rest are created."""

    created: list[Any]

    def __init__(self, bootstrap_servers: str, **options: Any) -> None:
        self.existing = [dead_letter_topic("t.")]
        _FakeAdmin.created = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def list_topics(self) -> list[str]:
        return self.existing

    async def create_topics(self, new: list[Any]) -> None:
        _FakeAdmin.created.extend(new)


async def test_ensure_topics_creates_each_missing_topic_with_its_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", _FakeAdmin)
    await ensure_topics("broker:9092", "t.", replication=3)
    created = {t.name: t for t in _FakeAdmin.created}
    assert set(created) == set(all_topics("t.")) - {dead_letter_topic("t.")}
    for name, new in created.items():
        assert new.topic_configs == topic_configs("t.")[name], name
        assert (new.num_partitions, new.replication_factor) == (PARTITIONS, 3)
