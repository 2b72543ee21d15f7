"""Topics as production needs them: `fairshare topics create` and `check` against a real
broker, services that only check their topics (FAIRSHARE_TOPICS=require) and stop when
one is missing, and the recreating keeper only where the broker forgets topics."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from typer.testing import CliRunner

from fairshare.cli import app
from fairshare.infra import free_port
from services.monitor import SCHEMA, SERVICE
from services.monitor.settings import MonitorSettings
from shared.events.registry import PARTITIONS, all_topics, dead_letter_topic
from shared.messaging.topics import TopicsMissingError, declared_topics, inspect_topics
from shared.runtime import emitter_for, running
from tests.conftest import Infra
from tests.integration.broker_support import OwnBroker, own_broker
from tests.integration.helpers import settings_for

__all__ = ["own_broker"]  # the fixture, shared

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "services" / "monitor" / "migrations"
runner = CliRunner()


def _topics(*args: str) -> tuple[int, str]:
    # Wide enough that rich never wraps a topic name or a status across lines.
    result = runner.invoke(app, ["topics", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def _status(output: str, topic: str) -> str:
    """The status cell of ``topic``'s row in the printed table."""
    row = next(line for line in output.splitlines() if f" {topic} " in line)
    return row.split("│")[-2].strip()


def test_create_makes_every_declared_topic_once_and_check_reports_what_is_missing(
    own_broker: OwnBroker,
) -> None:
    port, _ = own_broker
    bootstrap, prefix = f"127.0.0.1:{port}", "cli."
    common = ["--bootstrap", bootstrap, "--prefix", prefix, "--timeout", "5"]
    streams = [t for t in all_topics(prefix) if t != dead_letter_topic(prefix)]
    code, out = _topics("check", *common)  # nothing there yet
    assert code == 1, out
    assert [_status(out, t) for t in all_topics(prefix)] == ["missing"] * 4
    assert asyncio.run(_list(bootstrap)) == []  # checking created nothing

    # Someone made the dead-letter topic by hand, with too few partitions.
    asyncio.run(_create_dead_letters(bootstrap, prefix, partitions=2))
    code, out = _topics("check", *common)
    assert code == 1, out
    for topic in streams:
        assert _status(out, topic) == "missing"
    assert _status(out, dead_letter_topic(prefix)) == "differs: partitions 2, declared 4"
    assert "run `fairshare topics create`" in out

    code, out = _topics("create", *common)
    assert code == 0, out
    assert [_status(out, t) for t in streams] == ["created"] * len(streams)
    assert "3 created, 1 already there" in out
    code, out = _topics("create", *common)  # again: nothing to do, nothing changed
    assert code == 0, out
    assert [_status(out, t) for t in streams] == ["exists"] * len(streams)
    assert "0 created, 4 already there" in out

    # As declared: partitions, replication and settings, read back from the broker.
    states = asyncio.run(inspect_topics(bootstrap, declared_topics(prefix)))
    for state in states:
        if state.spec.name == dead_letter_topic(prefix):
            assert state.partitions == 2  # left as it was: never changed, only shown
            continue
        assert (state.exists, state.partitions, state.replication) == (True, PARTITIONS, 1)
        assert state.config is not None
        assert {k: state.config[k] for k in state.spec.config} == state.spec.config
        assert state.config["retention.ms"] == "-1"

    code, out = _topics("check", *common)
    assert code == 1, out  # the hand-made topic still differs
    assert "missing" not in out
    assert f"Differ from the declaration: {dead_letter_topic(prefix)}." in out


def test_create_says_plainly_when_the_broker_is_unreachable() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"  # nothing listens there
    code, out = _topics("create", "--bootstrap", bootstrap, "--timeout", "0")
    assert code == 1
    assert f"Kafka at {bootstrap} is unreachable" in out


async def test_a_service_requiring_its_topics_stops_naming_the_missing_ones(
    own_broker: OwnBroker,
) -> None:
    """In require mode nothing creates a topic: the service stops before it touches the
    database (there is none here), naming each missing topic and the command to run."""
    port, _ = own_broker
    bootstrap, prefix = f"127.0.0.1:{port}", "req."
    await _create_dead_letters(bootstrap, prefix, partitions=PARTITIONS)
    settings = MonitorSettings.model_validate(
        {
            "FAIRSHARE_KAFKA_BOOTSTRAP": bootstrap,
            "FAIRSHARE_TOPIC_PREFIX": prefix,
            "FAIRSHARE_TOPICS": "require",
            "FAIRSHARE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        }
    )
    with pytest.raises(TopicsMissingError) as caught:
        async with running(
            settings,
            service=SERVICE,
            schema=SCHEMA,
            migrations_dir=MIGRATIONS,
            emitter=emitter_for(settings, service=SERVICE, schema=SCHEMA),
        ):
            pytest.fail("the service started without its topics")
    missing = [t for t in all_topics(prefix) if t != dead_letter_topic(prefix)]
    assert caught.value.missing == missing
    for topic in missing:
        assert topic in str(caught.value)
    assert "fairshare topics create" in str(caught.value)
    assert dead_letter_topic(prefix) not in str(caught.value)
    assert set(await _list(bootstrap)) == {dead_letter_topic(prefix)}  # none created


def test_fairshare_serve_in_require_mode_exits_non_zero_with_the_error(
    own_broker: OwnBroker,
) -> None:
    """The process as compose runs it: it exits (so compose shows it failed) and its log
    names the missing topics and the command."""
    port, _ = own_broker
    env = {
        **os.environ,
        "FAIRSHARE_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}",
        "FAIRSHARE_TOPIC_PREFIX": "srv.",
        "FAIRSHARE_TOPICS": "require",
        "FAIRSHARE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "FAIRSHARE_MONITOR_PORT": str(free_port()),
        "FAIRSHARE_LOG_FORMAT": "json",
    }
    done = subprocess.run(
        [sys.executable, "-m", "fairshare", "serve", "monitor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 3, output  # uvicorn's "startup failed"
    assert '"event": "topics missing; not starting"' in output, output
    for topic in all_topics("srv."):
        assert topic in output
    assert "fairshare topics create" in output


async def test_the_topic_keeper_runs_only_when_services_create_their_topics(
    infra: Infra, own_broker: OwnBroker, topic_prefix: str
) -> None:
    port, _ = own_broker
    bootstrap = f"127.0.0.1:{port}"
    await _create_declared(bootstrap, topic_prefix)
    keepers = {}
    for mode in ("require", "create"):
        settings = settings_for(
            MonitorSettings,
            infra,
            topic_prefix,
            FAIRSHARE_KAFKA_BOOTSTRAP=bootstrap,
            FAIRSHARE_TOPICS=mode,
        )
        async with running(
            settings,
            service=SERVICE,
            schema=SCHEMA,
            migrations_dir=MIGRATIONS,
            emitter=emitter_for(settings, service=SERVICE, schema=SCHEMA),
        ):
            keepers[mode] = [
                t.get_name() for t in asyncio.all_tasks() if t.get_name().endswith("-topic-keeper")
            ]
    assert keepers == {"require": [], "create": [f"{SERVICE}-topic-keeper"]}


async def _admin(bootstrap: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    return admin


async def _create_dead_letters(bootstrap: str, prefix: str, *, partitions: int) -> None:
    """The dead-letter topic alone, with its declared settings and ``partitions``."""
    topic = dead_letter_topic(prefix)
    config = {s.name: s.config for s in declared_topics(prefix)}[topic]
    admin = await _admin(bootstrap)
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=config)])
    finally:
        await admin.close()


async def _create_declared(bootstrap: str, prefix: str) -> None:
    admin = await _admin(bootstrap)
    try:
        await admin.create_topics(
            [
                NewTopic(s.name, s.partitions, s.replication, topic_configs=s.config)
                for s in declared_topics(prefix)
            ]
        )
    finally:
        await admin.close()


async def _list(bootstrap: str) -> list[str]:
    admin = await _admin(bootstrap)
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()
