"""Issue 10 (statuses always current), over the real broker and database: the practice's
read API and callbacks follow matching when a session loses its only offer."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.matching import SCHEMA as MATCHING
from services.matching.app import create_app
from services.matching.settings import MatchingSettings
from shared.catalogue import Employment, Profession, Sector
from shared.db.pool import connect
from shared.events import AvailabilityOffered, OfferDeclined
from tests.conftest import Infra
from tests.integration.helpers import eventually, kafka_sender, settings_for
from tests.integration.vacancies_support import post, register, running_app, session_data

pytestmark = pytest.mark.integration


async def test_a_session_whose_only_candidate_declined_reads_open_with_why_and_calls_back(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """A practice posts a session; matching offers it to the only GP, who declines. The
    read API then says ``open`` (not ``offered``) with matching's why, and the practice
    gets a ``session.unmatched`` callback saying so."""
    matching = create_app(
        settings_for(MatchingSettings, infra, topic_prefix, FAIRSHARE_MATCHING_DEBOUNCE_S=0.05)
    )
    data = session_data(days=3)
    starts_at = datetime.fromisoformat(data["starts_at"])
    gp = uuid.uuid4()
    async with (
        running_app(infra, topic_prefix) as (vacancies, client),
        matching.router.lifespan_context(matching),
        kafka_sender(infra.bootstrap, topic_prefix, region) as send,
    ):
        ods, secret, key = await register(
            infra,
            region,
            callback_url="http://127.0.0.1:9/fairshare",  # nobody listens
        )
        await send(
            "availability.offered",
            AvailabilityOffered(
                availability_id=uuid.uuid4(),
                clinician_id=gp,
                profession=Profession.GP,
                home_sector=Sector.GENERAL_PRACTICE,
                skills=[],
                latitude=53.42,
                longitude=-2.21,
                travel_km=20,
                employment=Employment.LOCUM,
                wtr_opt_out=False,
                self_employed=False,
                starts_at=starts_at - timedelta(hours=1),
                ends_at=starts_at + timedelta(hours=8),
            ),
        )
        posted = await post(client, ods, secret, "session.posted", data)
        assert posted.status_code == 202, posted.text
        session_id = posted.json()["session_id"]

        async def read() -> dict[str, Any]:
            response = await client.get(
                f"/organisations/{ods}/sessions/{session_id}",
                headers={"Authorization": f"Bearer {key}"},
            )
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body

        async def status_is(status: str) -> dict[str, Any] | None:
            body = await read()
            return body if body["status"] == status else None

        offered = await eventually(lambda: status_is("offered"), timeout_s=30, every_s=0.1)
        assert offered["unmatched_why"] is None
        pool = vacancies.state.runtime.pool
        [callback] = await pool.fetch(
            "SELECT payload FROM callbacks WHERE session_id = $1 AND event_type = $2",
            uuid.UUID(session_id),
            "session.offered",
        )
        offer_expiry = _data(callback["payload"])["offer_expires_at"]
        assert datetime.fromisoformat(offer_expiry) > datetime.now(UTC)
        offer_id = await _offer_of(infra, session_id)
        await send(
            "offer.declined",
            OfferDeclined(offer_id=offer_id, session_id=uuid.UUID(session_id), clinician_id=gp),
        )
        reopened = await eventually(lambda: status_is("open"), timeout_s=30, every_s=0.1)
        assert reopened["unmatched_why"] == "declined_by_all"
        assert reopened["unmatched_detail"]
        rows = await pool.fetch(
            "SELECT payload FROM callbacks WHERE session_id = $1 AND event_type = $2 ORDER BY id",
            uuid.UUID(session_id),
            "session.unmatched",
        )
    # Matching may read the post before the GP's availability (two producers' streams)
    # and first say no clinician is eligible; the decline's news is the one told after.
    told = _data(rows[-1]["payload"])
    assert [_data(r["payload"])["why"] for r in rows].count("declined_by_all") == 1
    assert (told["status"], told["why"]) == ("open", "declined_by_all")
    assert told["detail"] == reopened["unmatched_detail"]


def _data(payload: Any) -> dict[str, Any]:
    body: dict[str, Any] = payload if isinstance(payload, dict) else json.loads(payload)
    return dict(body["data"])


async def _offer_of(infra: Infra, session_id: str) -> uuid.UUID:
    """The id of matching's offer of the session (from matching's own table)."""
    conn = await connect(infra.dsn, MATCHING)
    try:
        offer_id: uuid.UUID = await conn.fetchval(
            "SELECT id FROM offers WHERE session_id = $1", uuid.UUID(session_id)
        )
    finally:
        await conn.close()
    return offer_id
