"""Matching over the real broker: events in from Kafka, offers out onto Kafka, and the
cascade on decline, expiry, withdrawn time and a cancelled booking."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.matching.app import create_app
from services.matching.settings import MatchingSettings
from shared.catalogue import Employment, Profession, Sector
from shared.events import (
    AvailabilityOffered,
    AvailabilityWithdrawn,
    BookingCancelled,
    OfferAccepted,
    OfferDeclined,
)
from shared.events.registry import topic_for
from tests.conftest import Infra
from tests.factories import session_posted
from tests.integration.helpers import Send, eventually, kafka_sender, read_topic, settings_for

pytestmark = pytest.mark.integration


@asynccontextmanager
async def _running(infra: Infra, prefix: str, region: str) -> AsyncIterator[Send]:
    """The matching app with its consumer, planner and sweep running; a way to send."""
    settings = settings_for(
        MatchingSettings,
        infra,
        prefix,
        FAIRSHARE_MATCHING_SWEEP_S=0.5,
        FAIRSHARE_MATCHING_DEBOUNCE_S=0.05,
    )
    app = create_app(settings)
    async with (
        kafka_sender(infra.bootstrap, prefix, region) as send,
        app.router.lifespan_context(app),
    ):
        yield send


def _window(clinician: uuid.UUID, start: datetime) -> AvailabilityOffered:
    return AvailabilityOffered(
        availability_id=uuid.uuid4(),
        clinician_id=clinician,
        profession=Profession.GP,
        home_sector=Sector.GENERAL_PRACTICE,
        skills=[],
        latitude=53.47,
        longitude=-2.23,
        travel_km=20,
        employment=Employment.LOCUM,
        wtr_opt_out=False,
        self_employed=True,
        starts_at=start - timedelta(hours=1),
        ends_at=start + timedelta(hours=8),
    )


async def _offers_of(infra: Infra, prefix: str, session_id: uuid.UUID, want: int) -> list[Any]:
    """Offers of one session read from the session.offered topic, in order."""

    async def enough() -> list[Any] | None:
        records = await read_topic(
            infra.bootstrap,
            topic_for("session.offered", prefix),
            want=10_000,
            timeout_s=0.5,
            event_type="session.offered",
        )
        mine = [
            json.loads(r.value)["data"]
            for r in records
            if json.loads(r.value)["data"]["session_id"] == str(session_id)
        ]
        return mine if len(mine) >= want else None

    found: list[Any] = await eventually(enough, timeout_s=40, every_s=0.2)
    return found


async def test_decline_withdrawal_and_cancellation_cascade_over_kafka(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """Posted → offered to one of three GPs; declined → the next; that one takes the
    time back → the third; the third accepts → filled; then cancels → nobody is left
    who hasn't been asked, and matching says so (session.unmatched, declined_by_all)."""
    start = (datetime.now(UTC) + timedelta(days=4)).replace(microsecond=0)
    gps = [uuid.uuid4() for _ in range(3)]
    windows = {gp: _window(gp, start) for gp in gps}
    session = session_posted(start)
    async with _running(infra, topic_prefix, region) as send:
        for w in windows.values():
            await send("availability.offered", w)
        await send("session.posted", session)
        [first] = await _offers_of(infra, topic_prefix, session.session_id, 1)
        assert first["reasons"]
        await send(
            "offer.declined",
            OfferDeclined(
                offer_id=first["offer_id"],
                session_id=session.session_id,
                clinician_id=first["clinician_id"],
            ),
        )
        second = (await _offers_of(infra, topic_prefix, session.session_id, 2))[1]
        assert second["clinician_id"] != first["clinician_id"]
        taker = uuid.UUID(second["clinician_id"])
        await send(
            "availability.withdrawn",
            AvailabilityWithdrawn(
                availability_id=windows[taker].availability_id, clinician_id=taker
            ),
        )
        third = (await _offers_of(infra, topic_prefix, session.session_id, 3))[2]
        assert third["clinician_id"] not in {first["clinician_id"], second["clinician_id"]}
        await send(
            "offer.accepted",
            OfferAccepted(
                offer_id=third["offer_id"],
                session_id=session.session_id,
                clinician_id=third["clinician_id"],
            ),
        )
        filled = await read_topic(
            infra.bootstrap,
            topic_for("session.filled", topic_prefix),
            want=1,
            event_type="session.filled",
        )
        assert json.loads(filled[0].value)["data"]["clinician_id"] == third["clinician_id"]
        await send(
            "booking.cancelled",
            BookingCancelled(
                offer_id=third["offer_id"],
                session_id=session.session_id,
                clinician_id=third["clinician_id"],
                reason="Unwell",
                late=False,
            ),
        )

        async def told_why() -> list[Any]:
            records = await read_topic(
                infra.bootstrap,
                topic_for("session.unmatched", topic_prefix),
                want=10,
                timeout_s=0.5,
                event_type="session.unmatched",
            )
            return [
                json.loads(r.value)["data"]["why"]
                for r in records
                if json.loads(r.value)["data"]["session_id"] == str(session.session_id)
            ]

        assert (await eventually(told_why, timeout_s=30))[-1] == "declined_by_all"
    assert len(await _offers_of(infra, topic_prefix, session.session_id, 3)) == 3


async def test_an_expired_offer_passes_to_the_next_clinician(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """A session starting in 20 s gets an offer that expires halfway to its start;
    unanswered, the sweep passes it to the other GP."""
    start = (datetime.now(UTC) + timedelta(seconds=20)).replace(microsecond=0)
    gps = [uuid.uuid4() for _ in range(2)]
    session = session_posted(start)
    async with _running(infra, topic_prefix, region) as send:
        for gp in gps:
            await send("availability.offered", _window(gp, start))
        await send("session.posted", session)
        first, second = await _offers_of(infra, topic_prefix, session.session_id, 2)
    assert first["clinician_id"] != second["clinician_id"]
    expires = datetime.fromisoformat(first["expires_at"])
    assert expires <= start - timedelta(seconds=4)
