"""Helpers for tests of the bank: a running app, clinicians, and events from matching."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from services.bank import SCHEMA
from services.bank.admin import add_clinician, invite
from services.bank.app import create_app
from services.bank.domain import Clinician
from services.bank.handlers import handlers
from services.bank.settings import BankSettings
from shared.catalogue import Profession, Role, Sector, Urgency
from shared.db.pool import connect
from shared.events import SessionCancelled, SessionFilled, SessionOffered, new_envelope
from shared.events.registry import topic_for
from shared.messaging.consumer import EventConsumer
from shared.messaging.kafka import KafkaPublisher
from tests.conftest import Infra
from tests.integration.helpers import settings_for


@asynccontextmanager
async def running_bank(
    infra: Infra, prefix: str, **settings: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The bank app with its lifespan running, and an in-process client."""
    app = create_app(settings_for(BankSettings, infra, prefix, **settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bank") as client:
            yield app, client


async def new_clinician(
    infra: Infra, region: str, *, with_invite: bool = False
) -> tuple[uuid.UUID, dict[str, str], str | None]:
    """A pharmacist in Manchester: id, bearer headers, and an invite code if asked."""
    clinician = Clinician(
        id=uuid.uuid4(),
        display_name="Priya Shah",
        profession=Profession.PHARMACIST,
        home_sector=Sector.COMMUNITY_PHARMACY,
        region=region,
        register="GPhC",
        register_number="2012345",
    )
    conn = await connect(infra.dsn, SCHEMA)
    try:
        token = await add_clinician(conn, clinician)
        code = await invite(conn, clinician.id) if with_invite else None
    finally:
        await conn.close()
    return clinician.id, {"Authorization": f"Bearer {token}"}, code


async def deliver(app: FastAPI, event_type: str, data: Any, region: str) -> None:
    """Hand one event to the bank's own consumer, as Kafka would."""
    runtime = app.state.runtime
    consumer = EventConsumer(
        service="bank",
        pool=runtime.pool,
        dead_letters=KafkaPublisher(runtime.broker),
        handlers=handlers(),
    )
    envelope = new_envelope(
        data, event_type=event_type, schema_version=1, region=region, producer="matching"
    )
    await consumer.handle(
        topic_for(event_type), region.encode(), envelope.model_dump_json().encode()
    )


def offered(
    clinician: uuid.UUID, *, hours_ahead: float = 24, expires_in: timedelta = timedelta(hours=1)
) -> SessionOffered:
    """An offer of a 4-hour pharmacy session."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=hours_ahead)
    return SessionOffered(
        offer_id=uuid.uuid4(),
        session_id=uuid.uuid4(),
        clinician_id=clinician,
        organisation="FVR79",
        sector=Sector.COMMUNITY_PHARMACY,
        role=Role.COMMUNITY_PHARMACIST,
        site_name="Corner Pharmacy",
        latitude=53.47,
        longitude=-2.29,
        rate_pence_per_hour=3500,
        urgency=Urgency.ROUTINE,
        starts_at=start,
        ends_at=start + timedelta(hours=4),
        expires_at=datetime.now(UTC) + expires_in,
        reasons=["You are free for the whole session."],
    )


def filled(offer: SessionOffered) -> SessionFilled:
    """Matching's confirmation of an accepted offer."""
    return SessionFilled(
        session_id=offer.session_id,
        offer_id=offer.offer_id,
        clinician_id=offer.clinician_id,
        organisation=offer.organisation,
        sector=offer.sector,
        clinician_home_sector=Sector.COMMUNITY_PHARMACY,
        starts_at=offer.starts_at,
        ends_at=offer.ends_at,
    )


def cancelled(
    offer: SessionOffered, reason: str = "Closed", *, late: bool = False
) -> SessionCancelled:
    """The organisation's cancellation of an offered (perhaps booked) session."""
    return SessionCancelled(
        session_id=offer.session_id,
        organisation=offer.organisation,
        sector=offer.sector,
        reason=reason,
        late=late,
        released_clinician_id=offer.clinician_id,
        starts_at=offer.starts_at,
        ends_at=offer.ends_at,
    )


async def outbox(app: FastAPI, event_type: str, clinician: uuid.UUID) -> list[dict[str, Any]]:
    """Data of the bank's outbox events of one type about one clinician, oldest first."""
    rows = await app.state.runtime.pool.fetch(
        "SELECT payload FROM outbox WHERE event_type = $1"
        " AND payload->'data'->>'clinician_id' = $2 ORDER BY id",
        event_type,
        str(clinician),
    )
    return [r["payload"]["data"] for r in rows]
