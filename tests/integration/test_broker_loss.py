"""A running service survives the loss of the (in-memory) broker: it recreates the
topics, its consumer rejoins, and events flow again."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from fairshare.infra import start_broker
from services.monitor.app import create_app
from services.monitor.settings import MonitorSettings
from shared.events import new_envelope
from shared.events.registry import all_topics, topic_for
from tests.conftest import Infra
from tests.factories import session_posted
from tests.integration.broker_support import own_broker
from tests.integration.helpers import eventually, settings_for

__all__ = ["own_broker"]  # the fixture, shared

pytestmark = pytest.mark.integration


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def _publish_posted(bootstrap: str, prefix: str, region: str) -> None:
    envelope = new_envelope(
        session_posted(),
        event_type="session.posted",
        schema_version=1,
        region=region,
        producer="test",
    )
    # A plain producer: it must not be what brings the topics back.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic_for("session.posted", prefix),
            envelope.model_dump_json().encode(),
            key=region.encode(),
        )
    finally:
        await producer.stop()


async def test_service_recreates_topics_and_consumes_after_broker_restart(
    infra: Infra,
    own_broker: tuple[int, list[subprocess.Popen[bytes]]],
    topic_prefix: str,
    region: str,
    tmp_path: Path,
) -> None:
    """Kill Tansu under a running monitor service and start it again, empty: the
    service recreates every topic within seconds and counts the next event."""
    port, procs = own_broker
    bootstrap = f"127.0.0.1:{port}"
    settings = settings_for(
        MonitorSettings,
        infra,
        topic_prefix,
        FAIRSHARE_KAFKA_BOOTSTRAP=bootstrap,
        FAIRSHARE_TOPIC_CHECK_S=0.5,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        pool = app.state.runtime.pool

        async def posted() -> int:
            value: int = await pool.fetchval(
                "SELECT coalesce(sum(posted), 0) FROM sector_counts WHERE region = $1", region
            )
            return value

        await _publish_posted(bootstrap, topic_prefix, region)
        await eventually(posted, timeout_s=30)

        procs[0].kill()
        procs[0].wait()
        procs.append(start_broker(port, log_file=tmp_path / "tansu-2.log"))
        # The consumer's own metadata requests may bring back the topics it reads
        # (every producer's stream, now that the monitor follows the bank's booking
        # cancellations); nothing but the keeper touches the dead-letter topic.
        unread = {f"{topic_prefix}deadletter"}
        assert not unread & await _topics(bootstrap)

        async def recreated() -> bool:
            return set(all_topics(topic_prefix)) <= await _topics(bootstrap)

        await eventually(recreated, timeout_s=20)
        await _publish_posted(bootstrap, topic_prefix, region)

        async def two() -> bool:
            return await posted() == 2

        await eventually(two, timeout_s=60)
