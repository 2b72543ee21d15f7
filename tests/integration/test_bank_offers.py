"""The bank over the real database and broker: offers arrive, acceptance rules hold,
refusals reach the clinician, and no clinician sees another's offers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.events import (
    OfferRefused,
    SessionAmended,
    SessionOffered,
)
from tests.conftest import Infra
from tests.factories import session_posted
from tests.integration.bank_support import (
    cancelled,
    deliver,
    filled,
    new_clinician,
    offered,
    running_bank,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def bank(infra: Infra, topic_prefix: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The bank app with its lifespan running, and a client."""
    async with running_bank(infra, topic_prefix) as running:
        yield running


@pytest.fixture
def app(bank: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    """The running bank app."""
    return bank[0]


@pytest.fixture
def client(bank: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    """A client of the running bank app."""
    return bank[1]


async def _clinician(infra: Infra, region: str) -> tuple[uuid.UUID, dict[str, str]]:
    clinician_id, auth, _ = await new_clinician(infra, region)
    return clinician_id, auth


async def _deliver(app: FastAPI, event_type: str, data: Any, region: str) -> None:
    await deliver(app, event_type, data, region)


def _offered(clinician: uuid.UUID, *, expires_in: timedelta) -> SessionOffered:
    return offered(clinician, expires_in=expires_in)


async def test_refusal_reaches_the_clinician(
    app: FastAPI, client: httpx.AsyncClient, infra: Infra, region: str
) -> None:
    """Offer arrives → accepted (202) → matching refuses → the offer says why."""
    me, auth = await _clinician(infra, region)
    offer = _offered(me, expires_in=timedelta(hours=1))
    await _deliver(app, "session.offered", offer, region)
    listed = (await client.get("/api/offers", headers=auth)).json()
    assert [o["offer_id"] for o in listed] == [str(offer.offer_id)]
    assert (
        await client.post(f"/api/offers/{offer.offer_id}/accept", headers=auth)
    ).status_code == 202
    await _deliver(
        app,
        "offer.refused",
        OfferRefused(
            offer_id=offer.offer_id,
            session_id=offer.session_id,
            clinician_id=me,
            reason="The session was filled or withdrawn before you accepted.",
        ),
        region,
    )
    shown = (await client.get(f"/api/offers/{offer.offer_id}", headers=auth)).json()
    assert shown["status"] == "refused"
    assert "withdrawn" in shown["note"]


async def test_expired_offer_cannot_be_accepted(
    app: FastAPI, client: httpx.AsyncClient, infra: Infra, region: str
) -> None:
    """An expired offer: 410 problem+json, and it stays unanswered."""
    me, auth = await _clinician(infra, region)
    offer = _offered(me, expires_in=timedelta(seconds=-1))
    await _deliver(app, "session.offered", offer, region)
    response = await client.post(f"/api/offers/{offer.offer_id}/accept", headers=auth)
    assert response.status_code == 410
    assert response.headers["content-type"] == "application/problem+json"
    shown = (await client.get(f"/api/offers/{offer.offer_id}", headers=auth)).json()
    assert shown["status"] == "offered"


async def test_a_clinician_reaches_only_their_own_offers(
    app: FastAPI, client: httpx.AsyncClient, infra: Infra, region: str
) -> None:
    """B can neither list, read nor accept A's offer; without a token, 401."""
    a, auth_a = await _clinician(infra, region)
    _, auth_b = await _clinician(infra, region)
    offer = _offered(a, expires_in=timedelta(hours=1))
    await _deliver(app, "session.offered", offer, region)
    assert (await client.get("/api/offers", headers=auth_b)).json() == []
    assert (await client.get(f"/api/offers/{offer.offer_id}", headers=auth_b)).status_code == 404
    refused = await client.post(f"/api/offers/{offer.offer_id}/accept", headers=auth_b)
    assert refused.status_code == 404
    assert (await client.get("/api/offers")).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert (await client.get("/api/offers", headers=bad)).status_code == 401
    assert (await client.get(f"/api/offers/{offer.offer_id}", headers=auth_a)).json()[
        "status"
    ] == "offered"


async def test_availability_rules(client: httpx.AsyncClient, infra: Infra, region: str) -> None:
    """A window ending before it starts or already over: 422 naming the field;
    an overlapping window: 409; a good one: 201."""
    _, auth = await _clinician(infra, region)
    now = datetime.now(UTC)

    def window(start: timedelta, end: timedelta) -> dict[str, str]:
        return {"starts_at": (now + start).isoformat(), "ends_at": (now + end).isoformat()}

    inverted = await client.post(
        "/api/availability",
        json=window(timedelta(days=1, hours=2), timedelta(days=1)),
        headers=auth,
    )
    assert inverted.status_code == 422
    assert inverted.json()["errors"][0]["field"] == "ends_at"
    past = await client.post(
        "/api/availability", json=window(timedelta(days=-2), timedelta(days=-1)), headers=auth
    )
    assert past.status_code == 422
    good = window(timedelta(days=1), timedelta(days=1, hours=8))
    assert (await client.post("/api/availability", json=good, headers=auth)).status_code == 201
    overlap = window(timedelta(days=1, hours=4), timedelta(days=1, hours=10))
    assert (await client.post("/api/availability", json=overlap, headers=auth)).status_code == 409


async def test_cancelled_or_moved_session_is_shown_to_the_booked_clinician(
    app: FastAPI, client: httpx.AsyncClient, infra: Infra, region: str
) -> None:
    """Booked, then the organisation cancels: the offer says cancelled, and why. An open
    offer of a session that is moved is withdrawn."""
    me, auth = await _clinician(infra, region)
    booked = _offered(me, expires_in=timedelta(hours=1))
    pending = _offered(me, expires_in=timedelta(hours=1))
    for offer in (booked, pending):
        await _deliver(app, "session.offered", offer, region)
    assert (
        await client.post(f"/api/offers/{booked.offer_id}/accept", headers=auth)
    ).status_code == 202
    await _deliver(
        app,
        "session.filled",
        filled(booked),
        region,
    )
    assert [b["offer_id"] for b in (await client.get("/api/bookings", headers=auth)).json()] == [
        str(booked.offer_id)
    ]
    await _deliver(
        app,
        "session.cancelled",
        cancelled(booked, "Pharmacy closed for refit", late=True),
        region,
    )
    shown = (await client.get(f"/api/offers/{booked.offer_id}", headers=auth)).json()
    assert shown["status"] == "cancelled"
    assert "closed for refit" in shown["note"]
    assert (await client.get("/api/bookings", headers=auth)).json() == []

    moved = session_posted(
        pending.starts_at + timedelta(days=1), session_id=pending.session_id
    ).model_dump()
    await _deliver(
        app, "session.amended", SessionAmended(**moved, released_clinician_id=None), region
    )
    # Matching withdraws every offer of the session as it stood (and emits no event for
    # that), so the bank withdraws an unanswered offer whose time or role changed too.
    shown = (await client.get(f"/api/offers/{pending.offer_id}", headers=auth)).json()
    assert shown["status"] == "withdrawn"
    assert "changed the session" in shown["note"]


async def test_a_fill_arriving_after_the_cancellation_does_not_rebook(
    app: FastAPI, client: httpx.AsyncClient, infra: Infra, region: str
) -> None:
    """Topics are not ordered with each other: cancelled-then-filled stays cancelled."""
    me, auth = await _clinician(infra, region)
    offer = _offered(me, expires_in=timedelta(hours=1))
    await _deliver(app, "session.offered", offer, region)
    await client.post(f"/api/offers/{offer.offer_id}/accept", headers=auth)
    await _deliver(
        app,
        "session.cancelled",
        cancelled(offer, "Closed", late=False),
        region,
    )
    await _deliver(
        app,
        "session.filled",
        filled(offer),
        region,
    )
    assert (await client.get(f"/api/offers/{offer.offer_id}", headers=auth)).json()[
        "status"
    ] == "cancelled"
