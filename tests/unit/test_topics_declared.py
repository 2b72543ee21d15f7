"""The one declaration of every topic, and what `fairshare topics create` makes of a
broker's answer (Tansu accepts every request, so its refusals are played here)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import InvalidReplicationFactorError, TopicAlreadyExistsError

from shared.events.registry import PARTITIONS, all_topics, stream_for
from shared.messaging import topics
from shared.messaging.topics import (
    TopicState,
    create_declared,
    declared_topics,
    topic_configs,
)


def test_every_topic_is_declared_once_with_its_partitions_replication_and_settings() -> None:
    specs = declared_topics("p.", replication=3)
    assert [s.name for s in specs] == all_topics("p.")
    for spec in specs:
        assert (spec.partitions, spec.replication) == (PARTITIONS, 3)
        assert spec.config == topic_configs("p.")[spec.name]


def test_a_topic_differs_by_partitions_replication_or_a_declared_setting() -> None:
    spec = declared_topics("", replication=1)[0]
    same = TopicState(spec, exists=True, partitions=PARTITIONS, replication=1, config=spec.config)
    assert same.differences() == []
    assert TopicState(spec, exists=False).differences() == ["missing"]
    shorter = {**spec.config, "retention.ms": "604800000", "unrelated": "x"}
    other = TopicState(spec, exists=True, partitions=8, replication=3, config=shorter)
    assert other.differences() == [
        f"partitions 8, declared {PARTITIONS}",
        "replication 3, declared 1",
        "retention.ms=604800000, declared -1",
    ]
    # What the broker did not say is not a difference.
    assert TopicState(spec, exists=True).differences() == []


class _RefusingAdmin:
    """A broker with one topic already made elsewhere and too few brokers for the rest."""

    def __init__(self, bootstrap_servers: str, **options: Any) -> None:
        self.topics: list[str] = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def list_topics(self) -> list[str]:
        return self.topics

    async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [{"topic": name, "partitions": []} for name in names]

    async def describe_configs(self, resources: list[Any]) -> list[Any]:
        return []

    async def create_topics(self, new: list[Any]) -> Any:
        errors: list[tuple[str, int, str | None]] = []
        for topic in new:
            if topic.name == stream_for("bank"):  # another job was quicker: fine
                self.topics.append(topic.name)
                errors.append((topic.name, TopicAlreadyExistsError.errno, None))
            else:
                reason = "Replication factor: 3 larger than available brokers: 1."
                errors.append((topic.name, InvalidReplicationFactorError.errno, reason))
        return SimpleNamespace(topic_errors=errors)


async def test_create_reports_the_brokers_reason_for_each_topic_it_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", _RefusingAdmin)
    created, refused, states = await create_declared("b:9092", declared_topics(replication=3))
    assert created == [stream_for("bank")]
    assert set(refused) == set(all_topics()) - {stream_for("bank")}
    assert all("larger than available brokers" in reason for reason in refused.values())
    assert [s.spec.name for s in states if s.exists] == [stream_for("bank")]
