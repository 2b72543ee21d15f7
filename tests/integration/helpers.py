"""Helpers for integration tests: settings, topics, and reading a topic to the end."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal, TypeVar

import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from fairshare.infra import free_port
from shared.events import new_envelope, topic_for
from shared.settings import ServiceSettings
from tests.conftest import Infra

S = TypeVar("S", bound=ServiceSettings)


def settings_for(cls: type[S], infra: Infra, prefix: str, **extra: Any) -> S:
    """Settings of ``cls`` pointing at the test session's real infrastructure."""
    return cls.model_validate(
        {
            "FAIRSHARE_DATABASE_URL": infra.dsn,
            "FAIRSHARE_KAFKA_BOOTSTRAP": infra.bootstrap,
            "FAIRSHARE_TOPIC_PREFIX": prefix,
            "FAIRSHARE_OUTBOX_POLL_S": 0.2,
            **extra,
        }
    )


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    want: int,
    timeout_s: float = 20.0,
    event_type: str | None = None,
) -> list[Any]:
    """Read ``topic`` from the beginning until ``want`` records arrive (or time runs out).

    With ``event_type``, only records of that type count (a stream carries several).
    """
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < want and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend(
                    r for r in part if event_type is None or _type_of(r.value) == event_type
                )
    finally:
        await consumer.stop()
    return records


def _type_of(value: bytes) -> str | None:
    try:
        found = json.loads(value).get("type")
    except (ValueError, AttributeError):
        return None
    return str(found) if found is not None else None


async def eventually(check: Any, *, timeout_s: float = 20.0, every_s: float = 0.1) -> Any:
    """Await ``check()`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            msg = f"condition not met in {timeout_s} s (last: {result!r})"
            raise AssertionError(msg)
        await asyncio.sleep(every_s)


Send = Callable[[str, Any], Awaitable[None]]


@asynccontextmanager
async def kafka_sender(bootstrap: str, prefix: str, region: str) -> AsyncIterator[Send]:
    """``send(event_type, data)``: publish an event onto its topic, keyed by region."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()

    async def send(event_type: str, data: Any) -> None:
        envelope = new_envelope(
            data, event_type=event_type, schema_version=1, region=region, producer="test"
        )
        await producer.send_and_wait(
            topic_for(event_type, prefix), envelope.model_dump_json().encode(), key=region.encode()
        )

    try:
        yield send
    finally:
        await producer.stop()


@asynccontextmanager
async def served(
    app: Any,
    *,
    config: uvicorn.Config | None = None,
    lifespan: Literal["auto", "on", "off"] = "auto",
    ready: Callable[[], bool] | None = None,
    timeout_s: float = 30.0,
) -> AsyncIterator[str]:
    """``app`` served by a real uvicorn on a free loopback port, in this process, until
    the block ends; yields its base URL once the server (and ``ready``) says it is up.

    ``config`` replaces the default uvicorn.Config (e.g. the services' own, with its
    trusted proxies); it must name the port it is given as ``config.port``.
    """
    if config is None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan=lifespan
        )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def up() -> bool:
        return task.done() or (bool(server.started) and (ready is None or ready()))

    try:
        await eventually(up, timeout_s=timeout_s, every_s=0.02)
        assert not task.done(), "the server stopped while starting"
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        await task
