"""The bank end to end over the real broker: it consumes matching's and vacancies'
events from their topics, and every event it publishes arrives on its topic."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.events import OfferRefused, SessionAmended
from shared.events.registry import topic_for
from tests.conftest import Infra
from tests.factories import session_posted
from tests.integration.bank_support import cancelled, filled, new_clinician, offered, running_bank
from tests.integration.helpers import eventually, kafka_sender, read_topic

pytestmark = pytest.mark.integration


async def test_bank_events_travel_through_kafka(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """session.offered, session.filled, offer.refused, session.amended and
    session.cancelled arrive from Kafka; availability.offered/withdrawn,
    offer.accepted/declined, booking.cancelled and clinician.transferred leave through
    the outbox onto Kafka, keyed by region."""
    async with (
        kafka_sender(infra.bootstrap, topic_prefix, region) as send,
        running_bank(infra, topic_prefix) as (_, client),
    ):
        me, auth, _ = await new_clinician(infra, region)
        keep, refuse, drop, gone, moved = (
            offered(me, hours_ahead=h) for h in (30, 60, 90, 120, 150)
        )
        for offer in (keep, refuse, drop, gone, moved):
            await send("session.offered", offer)

        async def four_offers() -> bool:
            return len((await client.get("/api/offers", headers=auth)).json()) == 5

        await eventually(four_offers, timeout_s=40)
        for offer in (keep, refuse, gone, moved):
            assert (
                await client.post(f"/api/offers/{offer.offer_id}/accept", headers=auth)
            ).status_code == 202
        await client.post(f"/api/offers/{drop.offer_id}/decline", headers=auth)
        await send("session.filled", filled(keep))
        await send("session.filled", filled(gone))
        await send("session.filled", filled(moved))
        later = session_posted(moved.starts_at + timedelta(days=1), session_id=moved.session_id)
        await send(
            "session.amended",
            SessionAmended(**later.model_dump(), released_clinician_id=me),
        )
        await send(
            "offer.refused",
            OfferRefused(
                offer_id=refuse.offer_id,
                session_id=refuse.session_id,
                clinician_id=me,
                reason="Taken",
            ),
        )
        await send(
            "session.cancelled",
            cancelled(gone, "Closed", late=False),
        )

        async def settled() -> dict[str, str]:
            statuses = {}
            for offer in (keep, refuse, drop, gone, moved):
                row = (await client.get(f"/api/offers/{offer.offer_id}", headers=auth)).json()
                statuses[row["site_name"] + str(offer.offer_id)[:4]] = row["status"]
            wanted = ["booked", "refused", "declined", "cancelled", "cancelled"]
            return statuses if list(statuses.values()) == wanted else {}

        await eventually(settled, timeout_s=30)

        start = datetime.now(UTC) + timedelta(days=9)
        window = (
            await client.post(
                "/api/availability",
                json={
                    "starts_at": start.isoformat(),
                    "ends_at": (start + timedelta(hours=6)).isoformat(),
                },
                headers=auth,
            )
        ).json()["availability_id"]
        assert (await client.delete(f"/api/availability/{window}", headers=auth)).status_code == 204
        await client.post(
            f"/api/bookings/{keep.offer_id}/cancel", json={"category": "illness"}, headers=auth
        )
        await client.patch("/api/me", json={"home_sector": "general_practice"}, headers=auth)

        published = {
            "availability.offered": window,
            "availability.withdrawn": window,
            "offer.accepted": str(keep.offer_id),
            "offer.declined": str(drop.offer_id),
            "booking.cancelled": str(keep.offer_id),
            "clinician.transferred": str(me),
        }
        for event_type, marker in published.items():

            async def arrived(kind: str = event_type, mark: str = marker) -> list[Any]:
                topic = topic_for(kind, topic_prefix)
                records = await read_topic(
                    infra.bootstrap, topic, want=100, timeout_s=2, event_type=kind
                )
                return [
                    r for r in records if mark in r.value.decode() and str(me) in r.value.decode()
                ]

            [record, *_] = await eventually(arrived, timeout_s=20)
            assert record.key == region.encode()
            assert json.loads(record.value)["type"] == event_type
            assert uuid.UUID(json.loads(record.value)["data"]["clinician_id"]) == me
