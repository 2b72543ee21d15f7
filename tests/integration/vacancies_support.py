"""Helpers for tests of the vacancies service: apps, organisations, signed deliveries."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from standardwebhooks import Webhook

from services.vacancies import SCHEMA, secret_box
from services.vacancies.admin import add_organisation
from services.vacancies.app import create_app
from services.vacancies.domain import Organisation
from services.vacancies.handlers import handlers
from services.vacancies.settings import VacanciesSettings
from shared.catalogue import Sector
from shared.db.pool import connect
from shared.events import new_envelope
from shared.events.registry import topic_for
from shared.messaging.consumer import EventConsumer
from shared.messaging.kafka import KafkaPublisher
from tests.conftest import Infra
from tests.integration.helpers import settings_for

# This test run's key for the web hook secrets that vacancies apps and registrations here
# seal and open. Installed for the process rather than put in the environment: the
# end-to-end tests' `fairshare` commands inherit the environment, and must use their dev
# system's key.
TEST_SECRET_KEYS = secret_box.generate_key()
TEST_SECRET_BOX = secret_box.SecretBox([TEST_SECRET_KEYS])
secret_box.install(TEST_SECRET_BOX)


@asynccontextmanager
async def running_app(
    infra: Infra, prefix: str, **settings: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The vacancies app with its lifespan running, and an in-process client."""
    app = create_app(settings_for(VacanciesSettings, infra, prefix, **settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://vacancies") as client:
            yield app, client


def new_ods(letter: str = "A") -> str:
    """A fresh ODS-shaped code."""
    return letter + "".join(random.choices("0123456789", k=5))


async def register(
    infra: Infra,
    region: str,
    *,
    ods: str | None = None,
    sector: Sector = Sector.GENERAL_PRACTICE,
    pcn: str | None = None,
    callback_url: str | None = None,
    imd_decile: int | None = None,
    place: str | None = None,
) -> tuple[str, str, str]:
    """Register an organisation; return its ODS code, web hook secret and API key."""
    ods = ods or new_ods()
    conn = await connect(infra.dsn, SCHEMA)
    try:
        org = Organisation(
            ods,
            f"Org {ods}",
            sector,
            region,
            53.4,
            -2.2,
            True,
            pcn=pcn,
            imd_decile=imd_decile,
            place=place,
        )
        secret, key = await add_organisation(conn, org)
        if callback_url:
            await conn.execute(
                "UPDATE organisations SET callback_url = $2 WHERE ods_code = $1", ods, callback_url
            )
    finally:
        await conn.close()
    return ods, secret, key


def session_data(external_id: str = "rota-1", *, days: float = 3, **extra: Any) -> dict[str, Any]:
    """A valid session body, ``days`` from now, 4 h 10 min long."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)
    return {
        "external_id": external_id,
        "role": "gp",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=4, minutes=10)).isoformat(),
        **extra,
    }


def delivery(kind: str, data: dict[str, Any]) -> bytes:
    """A delivery body of type ``kind``."""
    return json.dumps(
        {"type": kind, "timestamp": datetime.now(UTC).isoformat(), "data": data}
    ).encode()


def signed(
    secret: str, body: bytes, *, msg_id: str | None = None, age_s: int = 0
) -> dict[str, str]:
    """Standard Webhooks headers for ``body``."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    when = datetime.now(UTC) - timedelta(seconds=age_s)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, when, body.decode()),
        "content-type": "application/json",
    }


async def post(
    client: httpx.AsyncClient, ods: str, secret: str, kind: str, data: dict[str, Any]
) -> httpx.Response:
    """Sign and post one delivery."""
    body = delivery(kind, data)
    return await client.post(f"/webhooks/{ods}", content=body, headers=signed(secret, body))


async def deliver_event(app: FastAPI, event_type: str, data: Any, region: str) -> None:
    """Hand an event to the app's own consumer, as Kafka would."""
    runtime = app.state.runtime
    consumer = EventConsumer(
        service="vacancies",
        pool=runtime.pool,
        dead_letters=KafkaPublisher(runtime.broker),
        handlers=handlers(timedelta(hours=25)),
    )
    envelope = new_envelope(
        data, event_type=event_type, schema_version=1, region=region, producer="matching"
    )
    await consumer.handle(
        topic_for(event_type), region.encode(), envelope.model_dump_json().encode()
    )


async def outbox_events(app: FastAPI, event_type: str, session_id: str) -> list[dict[str, Any]]:
    """The data of ``event_type`` events about a session, in order."""
    rows = await app.state.runtime.pool.fetch(
        "SELECT payload FROM outbox WHERE event_type = $1"
        " AND payload->'data'->>'session_id' = $2 ORDER BY id",
        event_type,
        session_id,
    )
    return [r["payload"]["data"] for r in rows]
